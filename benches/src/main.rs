//! dingbridge benchmarks (DESIGN §10): one subcommand per scenario, each writing a JSON report
//! to `<out-dir>/<scenario>.json` and a short summary to stdout. Run through `scripts/bench`.
//!
//! Adding a scenario: a module under `scenarios/` with a `clap::Args` struct and an
//! `async fn run(args) -> anyhow::Result<Outcome>`, plus one variant in [`Scenario`].
//! Reports carry measurements only: no timing threshold is checked anywhere.

mod db;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dingbridge-bench",
    about = "dingbridge benchmarks with JSON reports"
)]
struct Cli {
    /// Where reports go (`<out-dir>/<scenario>.json`); created if missing.
    #[arg(long, global = true, env = "DINGBRIDGE_BENCH_OUT", default_value_os_t = default_out_dir())]
    out_dir: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The job queue against the store (SQLite, PostgreSQL) and a plain-SQL reference.
    Queue(scenarios::queue::Args),
    /// N employees through Kingdee BatchSave at several batch sizes, against the sandbox.
    KingdeeBatchsave(scenarios::kingdee_batchsave::Args),
    /// A generated org enumerated from the DingTalk sandbox at the standard edition's QPS.
    DingtalkWalk(scenarios::dingtalk_walk::Args),
    /// Full org sync DingTalk → Kingdee by the `dingbridge` binary (time, quota use, peak RSS),
    /// event latency through `dingbridge serve`, and the naive one-call-per-user walk.
    OrgSync(scenarios::org_sync::Args),
    /// Approved 费用报销 claims → audited Kingdee bills by `dingbridge serve` (flow
    /// `expense_to_kingdee`): finish → audited latency, throughput, time per platform.
    Approvals(scenarios::approvals::Args),
}

/// `target/bench` of the workspace (or of `CARGO_TARGET_DIR`).
fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("bench")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let outcome = match cli.scenario {
        Scenario::Queue(args) => scenarios::queue::run(args).await?,
        Scenario::KingdeeBatchsave(args) => scenarios::kingdee_batchsave::run(args).await?,
        Scenario::DingtalkWalk(args) => scenarios::dingtalk_walk::run(args).await?,
        Scenario::OrgSync(args) => scenarios::org_sync::run(args).await?,
        Scenario::Approvals(args) => scenarios::approvals::run(args).await?,
    };
    let path = outcome.write(&cli.out_dir)?;
    print!("{}", outcome.summary);
    println!("report: {}", path.display());
    Ok(())
}
