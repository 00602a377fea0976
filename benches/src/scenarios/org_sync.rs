//! `org-sync`: the org sync of `examples/dingbridge.toml` (flow `org_to_kingdee`) on a generated
//! organisation, run by the real `dingbridge` binary against simulators served by this process.
//!
//! Setup: the DingTalk simulator with `Seed::generate(users, depts)` at the standard edition
//! (20 calls/s per app × API, the real quota) and an empty Kingdee simulator
//! (`seed_org: false`), both in-process on loopback; the example configuration pointed at them
//! and at a fresh store (a temporary SQLite file, or a PostgreSQL schema of its own with
//! `--backend postgres`). Pacing is the configuration's own (`Config::limiter_registry`).
//!
//! 1. **Full sync** in a child process, `dingbridge sync run org_to_kingdee -c <config> --json`,
//!    so the simulators' CPU and memory are not the hub's. Measured: wall time, users/s, the
//!    DingTalk calls per API and 90018 answers (the simulator's counters through its admin API),
//!    each API's busy window (the counters sampled every 50 ms) and quota utilisation, the
//!    Kingdee calls per method, the child's `--json` summary. Kingdee must then hold every
//!    active DingTalk user (BD_Empinfo, by staff number, with the right name) and every
//!    department below the root (BD_Department, `DT<id>`), or the run fails.
//! 2. **Peak RSS of the hub**: the child's `VmHWM` (the kernel's high-water mark of its resident
//!    set), read from `/proc/<pid>/status` every 50 ms until it exits. (`wait4`'s `ru_maxrss`
//!    would need `unsafe`, which the workspace forbids.)
//! 3. **Event latency**: `dingbridge serve` as a child on the same store; contact events reach it
//!    over Stream. `--events` users are renamed through the DingTalk API (`user/update`), spread
//!    over `--event-seconds`; for each, the time from the call to the moment the Kingdee
//!    simulator holds the new name (polled in-process every 20 ms). A change that never arrives
//!    fails the run.
//! 4. **Naive comparison**: department tree (`listsub`), then `user/listid` per department, then
//!    one `user/get` per user, measured on the same simulator through the same limiter preset on
//!    the first `--naive-users` users (breadth-first department order), extrapolated to the
//!    whole organisation as calls ÷ 20 QPS.
//!
//! Numbers are reported, never asserted; only correctness (missing employees or departments,
//! any 90018, a lost event, a failed run) fails the benchmark.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use dingtalk::contacts::UserInput;
use dingtalk::{Credentials, DeptId, DingTalkClient, DingTalkConfig, TokenEndpoint, UserId};
use engine::config::{Config, Lang};
use futures::{StreamExt, TryStreamExt};
use limits::{ConnectionLimiter, ConnectionLimits, DingTalkEdition};
use sandbox::admin_client::AdminClient;
use sandbox::dingtalk::{
    DEFAULT_AGENT_ID, DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandbox, DingTalkSandboxConfig,
    Edition,
};
use sandbox::kingdee::store::get_ci;
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;
use serde::Serialize;
use serde_json::{Value, json};
use store_testkit::scratch::ScratchSchema;
use tokio::sync::{mpsc, oneshot};

use crate::db::{DEFAULT_POSTGRES_URL, probe_postgres};
use crate::report::{Machine, Outcome, Percentiles, per_second, round, timestamp};

const SCENARIO: &str = "org-sync";
const EXAMPLE: &str = include_str!("../../../examples/dingbridge.toml");
const FLOW: &str = "org_to_kingdee";
const EMP: &str = "BD_Empinfo";
const DEPT: &str = "BD_Department";
/// The configuration's department numbers: `template = "DT{value}"`.
const DEPT_PREFIX: &str = "DT";

const LISTSUB: &str = "/topapi/v2/department/listsub";
const LISTID: &str = "/topapi/user/listid";
const USER_GET: &str = "/topapi/v2/user/get";

/// How often the simulator's counters are sampled for the busy windows, and the child's
/// `VmHWM` for its peak RSS.
const SAMPLE: Duration = Duration::from_millis(50);
/// How often Kingdee is polled for an event's new name.
const POLL: Duration = Duration::from_millis(20);
/// How long after the last change the event phase waits for stragglers.
const EVENT_GRACE: Duration = Duration::from_secs(120);
/// `user/get` calls in flight in the naive walk (the hub's `options.concurrency` default).
const NAIVE_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// People in the generated organisation (the simulator caps it at 100,000).
    #[arg(long, default_value_t = 100_000, value_parser = at_least_one)]
    users: usize,
    /// Departments below the root in the generated organisation (at most 5,000).
    #[arg(long, default_value_t = 5_000, value_parser = at_least_one)]
    depts: usize,
    /// The hub's store: a temporary SQLite file, or a fresh schema on PostgreSQL.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// The PostgreSQL server for `--backend postgres`; the run gets a schema of its own,
    /// dropped at the end.
    #[arg(long, env = "DINGBRIDGE_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// Users renamed through the DingTalk API in the event-latency phase.
    #[arg(long, default_value_t = 200, value_parser = at_least_one)]
    events: usize,
    /// Seconds the renames are spread over.
    #[arg(long, default_value_t = 60, value_parser = at_least_one)]
    event_seconds: usize,
    /// Users the naive walk is measured on (the first ones in breadth-first department order).
    #[arg(long, default_value_t = 2_000, value_parser = at_least_one)]
    naive_users: usize,
    /// The dingbridge binary (default: `dingbridge` next to this benchmark's binary, i.e.
    /// `target/release/dingbridge`; `scripts/bench org-sync` builds it first).
    #[arg(long)]
    bin: Option<PathBuf>,
}

pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a count of at least 1")),
    }
}

// ── Simulators ─────────────────────────────────────────────────────────────────────────────

/// Both simulators, served on loopback until dropped.
struct Sims {
    dt: DingTalkSandbox,
    dt_origin: String,
    kd: KingdeeSandbox,
    kd_origin: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Sims {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start_sims(seed: &Seed) -> anyhow::Result<Sims> {
    let dt_cfg = DingTalkSandboxConfig::default();
    ensure!(
        dt_cfg.apps.iter().all(|a| a.edition == Edition::Standard),
        "the default DingTalk simulator app is not standard edition"
    );
    let dt = DingTalkSandbox::new(dt_cfg, seed);
    let kd = KingdeeSandbox::new(
        KingdeeSandboxConfig {
            seed_org: false,
            ..KingdeeSandboxConfig::default()
        },
        seed,
    );
    let dl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let kl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dt_origin = format!("http://{}", dl.local_addr()?);
    let kd_origin = format!("http://{}", kl.local_addr()?);
    let (d, k) = (dt.clone(), kd.clone());
    let tasks = vec![
        tokio::spawn(async move {
            if let Err(e) = sandbox::dingtalk::serve(dl, d).await {
                eprintln!("{SCENARIO}: DingTalk simulator stopped: {e}");
            }
        }),
        tokio::spawn(async move {
            if let Err(e) = sandbox::kingdee::serve(kl, k).await {
                eprintln!("{SCENARIO}: Kingdee simulator stopped: {e}");
            }
        }),
    ];
    Ok(Sims {
        dt,
        dt_origin,
        kd,
        kd_origin,
        tasks,
    })
}

/// Counters through the simulators' admin API (docs/sandbox.md).
async fn dingtalk_counters(sims: &Sims) -> anyhow::Result<Value> {
    AdminClient::new(&sims.dt_origin, "dingtalk")
        .get("counters")
        .await
        .context("reading the DingTalk simulator's counters")
}

async fn kingdee_counters(sims: &Sims) -> anyhow::Result<Value> {
    AdminClient::new(&sims.kd_origin, "kingdee")
        .get("counters")
        .await
        .context("reading the Kingdee simulator's counters")
}

/// `after[key] − before[key]` for every numeric entry of the object `key` of two counter dumps.
pub(crate) fn delta_map(before: &Value, after: &Value, key: &str) -> BTreeMap<String, u64> {
    let Some(a) = after.get(key).and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    a.iter()
        .filter_map(|(k, v)| {
            let was = before
                .get(key)
                .and_then(|m| m.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let d = v.as_u64()?.saturating_sub(was);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn is_token_api(api: &str) -> bool {
    api == "/gettoken" || api.starts_with("/v1.0/oauth2/")
}

// ── Configuration and child processes ──────────────────────────────────────────────────────

/// `examples/dingbridge.toml` pointed at the simulators and the store, its reconcile schedule
/// moved to 1 January (so no reconcile runs during the event phase); written to `dir`.
fn write_config(dir: &Path, sims: &Sims, store_url: &str) -> anyhow::Result<(PathBuf, Config)> {
    let mut text = EXAMPLE.to_owned();
    for (from, to) in [
        (
            "url = \"sqlite://dingbridge.sqlite\"".to_owned(),
            format!("url = \"{store_url}\""),
        ),
        ("http://127.0.0.1:8089".to_owned(), sims.dt_origin.clone()),
        ("http://127.0.0.1:8090".to_owned(), sims.kd_origin.clone()),
        (
            "schedule = \"0 */10 * * * *\"".to_owned(),
            "schedule = \"0 0 0 1 1 *\"".to_owned(),
        ),
    ] {
        ensure!(
            text.contains(&from),
            "examples/dingbridge.toml no longer contains `{from}`; update benches/src/scenarios/org_sync.rs"
        );
        text = text.replace(&from, &to);
    }
    ensure!(
        text.contains("edition = \"standard\""),
        "examples/dingbridge.toml's DingTalk connection is not `edition = \"standard\"`"
    );
    let path = dir.join("dingbridge.toml");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let cfg = Config::from_str(&text, &path.display().to_string())
        .map_err(|e| anyhow!("{}", e.render(Lang::En)))?;
    Ok((path, cfg))
}

/// The DingTalk connection's limits from the configuration (`Config::limiter_registry`, as the
/// hub builds them).
fn dingtalk_limits(cfg: &Config) -> anyhow::Result<ConnectionLimits> {
    let registry = cfg.limiter_registry()?;
    let limiter = registry
        .get("dingtalk")
        .ok_or_else(|| anyhow!("the configuration has no `dingtalk` connection"))?;
    Ok(limiter.limits().clone())
}

pub(crate) fn locate_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating this benchmark's binary")?
            .parent()
            .map(|d| d.join("dingbridge"))
            .ok_or_else(|| anyhow!("this benchmark's binary has no parent directory"))?,
    };
    ensure!(
        path.is_file(),
        "{} not found: build it with `cargo build --release -p dingbridge` (scripts/bench org-sync and approvals do), or pass --bin",
        path.display()
    );
    Ok(path)
}

/// The kernel's high-water mark of a process's resident set (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads `VmHWM` of `pid` every [`SAMPLE`] into `peak` until aborted.
pub(crate) fn watch_peak_rss(pid: u32, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE);
        loop {
            tick.tick().await;
            if let Some(kib) = vm_hwm_kib(pid) {
                peak.fetch_max(kib, Ordering::Relaxed);
            }
        }
    })
}

pub(crate) fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

/// The last `n` lines of a log file, for an error message.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

pub(crate) fn hub_command(
    bin: &Path,
    config: &Path,
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--lang")
        .arg("en")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    Ok(cmd)
}

// ── Busy windows ───────────────────────────────────────────────────────────────────────────

/// When an API was in use: the first and the last counter sample that saw its count grow
/// (seconds since the phase started).
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    first: Option<f64>,
    last: f64,
}

impl Window {
    /// From the sample before the first call to the sample that saw the last one: at most one
    /// sample interval longer than the true span.
    fn busy_s(&self) -> f64 {
        self.first
            .map_or(0.0, |f| self.last - f + SAMPLE.as_secs_f64())
    }
}

struct Sampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<BTreeMap<String, Window>>,
}

impl Sampler {
    async fn finish(self) -> anyhow::Result<BTreeMap<String, Window>> {
        let _ = self.stop.send(());
        self.task.await.context("the counter sampler failed")
    }
}

/// Samples the DingTalk simulator's call counters every [`SAMPLE`] (in-process; the same
/// numbers as its admin API), and prints a progress line every 15 s.
fn start_sampler(dt: DingTalkSandbox, kd: KingdeeSandbox, started: Instant) -> Sampler {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut prev = dt.counters().calls;
        let base_total: u64 = prev.values().sum();
        let mut windows: BTreeMap<String, Window> = BTreeMap::new();
        let mut tick = tokio::time::interval(SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_print = 15.0;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let now = started.elapsed().as_secs_f64();
            let calls = dt.counters().calls;
            for (api, n) in &calls {
                if *n > prev.get(api).copied().unwrap_or(0) {
                    let w = windows.entry(api.clone()).or_default();
                    if w.first.is_none() {
                        w.first = Some(now);
                    }
                    w.last = now;
                }
            }
            if now >= next_print {
                next_print += 15.0;
                let total: u64 = calls.values().sum::<u64>().saturating_sub(base_total);
                let employees = kd.db().data(EMP).map_or(0, |f| f.records.len());
                eprintln!(
                    "{SCENARIO}: {now:.0} s: {total} DingTalk calls, {employees} employees in Kingdee"
                );
            }
            prev = calls;
        }
        windows
    });
    Sampler { stop, task }
}

#[derive(Debug, Serialize)]
struct ApiUse {
    calls: u64,
    /// Seconds since the child started: first and last sample that saw a call.
    first_s: f64,
    last_s: f64,
    busy_s: f64,
    calls_per_s: f64,
    /// calls ÷ (20 QPS × busy_s).
    quota_utilisation: f64,
    /// The hub's pacer group for this API and the configuration's rule for it.
    pacer_group: String,
    limiter_rule_per_s: Option<f64>,
    /// calls_per_s ÷ limiter_rule_per_s.
    utilisation_of_limiter_rule: Option<f64>,
}

// ── Phase 1 and 2: the full sync in a child ────────────────────────────────────────────────

#[derive(Debug, Serialize)]
struct Verified {
    employees_in_kingdee: usize,
    expected_employees: usize,
    missing_employees: usize,
    wrong_names: usize,
    departments_in_kingdee: usize,
    expected_departments: usize,
    missing_departments: usize,
}

/// Kingdee against the seed: every active person by staff number with the seed's name, every
/// department below the root by `DT<id>`.
fn verify_kingdee(kd: &KingdeeSandbox, seed: &Seed) -> Verified {
    let db = kd.db();
    let active: Vec<_> = seed.users.iter().filter(|u| u.active).collect();
    let mut missing_employees = 0;
    let mut wrong_names = 0;
    for u in &active {
        match db.record_by_number(EMP, &u.job_number) {
            None => missing_employees += 1,
            Some(r) => {
                if get_ci(&r.fields, "FName").and_then(Value::as_str) != Some(u.name.as_str()) {
                    wrong_names += 1;
                }
            }
        }
    }
    let below_root: Vec<_> = seed
        .departments
        .iter()
        .filter(|d| d.parent_id.is_some())
        .collect();
    let missing_departments = below_root
        .iter()
        .filter(|d| {
            db.record_by_number(DEPT, &format!("{DEPT_PREFIX}{}", d.id))
                .is_none()
        })
        .count();
    Verified {
        employees_in_kingdee: db.data(EMP).map_or(0, |f| f.records.len()),
        expected_employees: active.len(),
        missing_employees,
        wrong_names,
        departments_in_kingdee: db.data(DEPT).map_or(0, |f| f.records.len()),
        expected_departments: below_root.len(),
        missing_departments,
    }
}

struct FullSync {
    wall_s: f64,
    peak_rss_kib: u64,
    summary: Value,
    windows: BTreeMap<String, Window>,
    dt_before: Value,
    dt_after: Value,
    kd_before: Value,
    kd_after: Value,
}

async fn full_sync(
    sims: &Sims,
    bin: &Path,
    config: &Path,
    work: &Path,
) -> anyhow::Result<FullSync> {
    let log = work.join("sync.log");
    let dt_before = dingtalk_counters(sims).await?;
    let kd_before = kingdee_counters(sims).await?;
    let mut cmd = hub_command(bin, config, &log)?;
    cmd.args(["sync", "run", FLOW, "--json"])
        .stdout(Stdio::piped());
    let started = Instant::now();
    let sampler = start_sampler(sims.dt.clone(), sims.kd.clone(), started);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the sync child has no pid"))?;
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = watch_peak_rss(pid, Arc::clone(&peak));
    let output = child.wait_with_output().await;
    let wall_s = started.elapsed().as_secs_f64();
    watcher.abort();
    let windows = sampler.finish().await?;
    let output = output.context("waiting for the sync child")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .find('{')
        .and_then(|i| serde_json::from_str(&stdout[i..]).ok())
        .unwrap_or(Value::Null);
    if !output.status.success() {
        bail!(
            "`dingbridge sync run {FLOW}` failed ({}); summary: {summary}\n--- {} (tail) ---\n{}",
            output.status,
            log.display(),
            log_tail(&log, 30)
        );
    }
    ensure!(
        summary.get("status").and_then(Value::as_str) == Some("success"),
        "the sync's --json summary is not a success: {stdout}"
    );
    Ok(FullSync {
        wall_s,
        peak_rss_kib: peak.load(Ordering::Relaxed),
        summary,
        windows,
        dt_before,
        dt_after: dingtalk_counters(sims).await?,
        kd_before,
        kd_after: kingdee_counters(sims).await?,
    })
}

// ── Phase 3: event latency through `dingbridge serve` ──────────────────────────────────────

struct Change {
    job_number: String,
    name: String,
    sent: Instant,
}

/// Polls Kingdee every [`POLL`] until every change announced on `rx` shows, or
/// [`EVENT_GRACE`] after the last one: (latencies, staff numbers that never showed).
async fn watch_kingdee(
    kd: KingdeeSandbox,
    mut rx: mpsc::UnboundedReceiver<Change>,
) -> (Vec<Duration>, Vec<String>) {
    let mut pending: Vec<Change> = Vec::new();
    let mut done = Vec::new();
    let mut closed_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match rx.try_recv() {
                Ok(c) => pending.push(c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let now = Instant::now();
        {
            let db = kd.db();
            pending.retain(|c| {
                let arrived = db
                    .record_by_number(EMP, &c.job_number)
                    .and_then(|r| get_ci(&r.fields, "FName"))
                    .and_then(Value::as_str)
                    == Some(c.name.as_str());
                if arrived {
                    done.push(now.saturating_duration_since(c.sent));
                }
                !arrived
            });
        }
        match closed_at {
            Some(_) if pending.is_empty() => break,
            Some(t) if now.saturating_duration_since(t) > EVENT_GRACE => break,
            _ => {}
        }
    }
    (done, pending.into_iter().map(|c| c.job_number).collect())
}

/// A DingTalk client of the benchmark's own (renames, the naive walk), paced by the standard
/// edition's preset like the hub's.
fn bench_client(sims: &Sims, name: &str) -> anyhow::Result<DingTalkClient> {
    let cfg = DingTalkConfig::new(
        sims.dt.corp_id(),
        Credentials::new(DEFAULT_APP_KEY, DEFAULT_APP_SECRET),
    )
    .with_agent_id(i64::try_from(DEFAULT_AGENT_ID)?)
    .with_bases(&sims.dt_origin, &sims.dt_origin)?
    .with_token_endpoint(TokenEndpoint::V1);
    let limiter =
        ConnectionLimiter::new(name, ConnectionLimits::dingtalk(DingTalkEdition::Standard))?;
    Ok(DingTalkClient::builder(cfg)
        .pacer(Arc::new(limiter))
        .build()?)
}

/// SIGTERM (graceful stop) to our own child, through `kill(1)`: the workspace forbids
/// `unsafe`, so no `libc::kill`.
/// `dingbridge serve` running as a child during a benchmark phase, its peak RSS watched.
pub(crate) struct ServeChild {
    child: tokio::process::Child,
    pid: u32,
    /// Its stderr (the tracing log).
    pub(crate) log: PathBuf,
    peak: Arc<AtomicU64>,
    watcher: tokio::task::JoinHandle<()>,
}

impl ServeChild {
    /// Start `bin serve` on `config` (log in `work`) and return once it has opened a Stream
    /// connection to the DingTalk simulator `dt` (it is then ready for events).
    pub(crate) async fn start(
        dt: &DingTalkSandbox,
        bin: &Path,
        config: &Path,
        work: &Path,
    ) -> anyhow::Result<Self> {
        let log = work.join("serve.log");
        let stdout_log = std::fs::File::create(work.join("serve.out"))?;
        let mut cmd = hub_command(bin, config, &log)?;
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::from(stdout_log));
        let connections_before = dt.counters().stream_connections;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the serve child has no pid"))?;
        let peak = Arc::new(AtomicU64::new(0));
        let watcher = watch_peak_rss(pid, Arc::clone(&peak));
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = loop {
            if dt.counters().stream_connections > connections_before {
                break Ok(());
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    break Err(anyhow!(
                        "`dingbridge serve` ended before connecting over Stream ({status})\n--- {} (tail) ---\n{}",
                        log.display(),
                        log_tail(&log, 30)
                    ));
                }
                Err(e) => break Err(e.into()),
                Ok(None) => {}
            }
            if Instant::now() >= deadline {
                break Err(anyhow!(
                    "`dingbridge serve` opened no Stream connection within 60 s\n--- {} (tail) ---\n{}",
                    log.display(),
                    log_tail(&log, 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let served = ServeChild {
            child,
            pid,
            log,
            peak,
            watcher,
        };
        match ready {
            Ok(()) => Ok(served),
            Err(e) => {
                served.stop().await;
                Err(e)
            }
        }
    }

    /// How it ended, if it has.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Stop it gracefully (SIGTERM; its shutdown grace is 20 s), or kill it after 40 s. How it
    /// ended, and its peak RSS in KiB.
    pub(crate) async fn stop(mut self) -> (String, u64) {
        let stopped = match terminate(self.pid) {
            Ok(()) => tokio::time::timeout(Duration::from_secs(40), self.child.wait())
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        let exit = match stopped {
            Some(status) => status.to_string(),
            None => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                "killed after no graceful stop within 40 s".to_owned()
            }
        };
        self.watcher.abort();
        (exit, self.peak.load(Ordering::Relaxed))
    }
}

pub(crate) fn terminate(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .context("running kill -TERM")?;
    ensure!(status.success(), "kill -TERM {pid} failed: {status}");
    Ok(())
}

struct Events {
    latencies: Vec<Duration>,
    sent: usize,
    send_s: f64,
    serve_peak_rss_kib: u64,
    serve_exit: String,
    dt_delta: BTreeMap<String, u64>,
    kd_delta: BTreeMap<String, u64>,
}

async fn event_latency(
    sims: &Sims,
    seed: &Seed,
    bin: &Path,
    config: &Path,
    work: &Path,
    args: &Args,
) -> anyhow::Result<Events> {
    let serve = ServeChild::start(&sims.dt, bin, config, work).await?;
    let result = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dt_before = dingtalk_counters(sims).await?;
        let kd_before = kingdee_counters(sims).await?;

        let client = bench_client(sims, "bench-renames")?;
        client
            .access_token()
            .await
            .context("fetching the benchmark's token")?;
        let active: Vec<_> = seed.users.iter().filter(|u| u.active).collect();
        let n = args.events.min(active.len());
        let step = (active.len() / n.max(1)).max(1);
        let interval = Duration::from_secs_f64(args.event_seconds as f64 / n.max(1) as f64);
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_kingdee(sims.kd.clone(), rx));
        eprintln!(
            "{SCENARIO}: renaming {n} users over {} s through the DingTalk API …",
            args.event_seconds
        );
        let start = tokio::time::Instant::now();
        for i in 0..n {
            let Some(u) = active.get(i * step) else { break };
            tokio::time::sleep_until(start + interval * u32::try_from(i)?).await;
            let name = format!("{}（改{}）", u.name, i + 1);
            let input = UserInput {
                userid: Some(UserId::new(u.userid.as_str())),
                name: Some(name.clone()),
                ..UserInput::default()
            };
            let sent = Instant::now();
            tx.send(Change {
                job_number: u.job_number.clone(),
                name,
                sent,
            })
            .map_err(|_| anyhow!("the Kingdee watcher stopped"))?;
            client
                .user_update(&input)
                .await
                .with_context(|| format!("renaming {} through user/update", u.userid))?;
        }
        let send_s = start.elapsed().as_secs_f64();
        drop(tx);
        let (latencies, missing) = watcher.await.context("the Kingdee watcher failed")?;
        ensure!(
            missing.is_empty(),
            "{} of {n} renames never reached Kingdee within {} s (staff numbers {:?}…)\n--- {} (tail) ---\n{}",
            missing.len(),
            EVENT_GRACE.as_secs(),
            &missing[..missing.len().min(10)],
            serve.log.display(),
            log_tail(&serve.log, 30)
        );
        let dt_after = dingtalk_counters(sims).await?;
        let kd_after = kingdee_counters(sims).await?;
        Ok((
            latencies,
            n,
            send_s,
            delta_map(&dt_before, &dt_after, "calls"),
            delta_map(&kd_before, &kd_after, "calls"),
        ))
    }
    .await;
    // Stop the node, whatever happened above.
    let (serve_exit, serve_peak_rss_kib) = serve.stop().await;
    let (latencies, sent, send_s, dt_delta, kd_delta) = result?;
    Ok(Events {
        latencies,
        sent,
        send_s,
        serve_peak_rss_kib,
        serve_exit,
        dt_delta,
        kd_delta,
    })
}

// ── Phase 4: the naive walk ────────────────────────────────────────────────────────────────

#[derive(Debug, Serialize)]
struct NaivePhase {
    api: &'static str,
    calls: u64,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct Naive {
    /// DingTalk calls of the measured walk (listsub + listid + user/get).
    calls: u64,
    seconds_measured: f64,
    /// Users fetched one by one with user/get.
    users_measured: usize,
    departments_measured: usize,
    phases: Vec<NaivePhase>,
    /// The same walk over the whole organisation: listsub and listid per department, user/get
    /// per user.
    calls_extrapolated: u64,
    /// calls_extrapolated ÷ 20 QPS (one API at a time, each at the full quota).
    seconds_extrapolated: f64,
    /// seconds_measured × calls_extrapolated ÷ calls (at the rate this run achieved).
    seconds_extrapolated_at_measured_rate: f64,
}

async fn naive(sims: &Sims, seed: &Seed, want_users: usize, qps: u32) -> anyhow::Result<Naive> {
    let client = bench_client(sims, "bench-naive")?;
    client
        .access_token()
        .await
        .context("fetching the naive walk's token")?;
    let active = seed.users.iter().filter(|u| u.active).count();
    let departments = seed.departments.len();
    let share = want_users.min(active) as f64 / active.max(1) as f64;
    let budget = ((departments as f64 * share).ceil() as usize).clamp(1, departments);
    let count = |api: &str| sims.dt.counters().calls.get(api).copied().unwrap_or(0);
    let (listsub0, listid0, get0) = (count(LISTSUB), count(LISTID), count(USER_GET));
    eprintln!(
        "{SCENARIO}: naive walk on {budget} of {departments} departments (~{} users) …",
        want_users.min(active)
    );

    let started = Instant::now();
    // 1. The department tree, breadth first, one listsub per department.
    let mut queue = VecDeque::from([DeptId::ROOT]);
    let mut walked = Vec::with_capacity(budget);
    while walked.len() < budget {
        let Some(d) = queue.pop_front() else { break };
        let subs = client
            .department_list_sub(d)
            .await
            .with_context(|| format!("naive: listsub {d}"))?;
        queue.extend(subs.into_iter().map(|s| s.dept_id));
        walked.push(d);
    }
    let tree_s = started.elapsed().as_secs_f64();
    // 2. The user ids of each department.
    let t = Instant::now();
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for d in &walked {
        for u in client
            .user_ids_by_department(*d)
            .await
            .with_context(|| format!("naive: user/listid {d}"))?
        {
            if seen.insert(u.as_str().to_owned()) {
                ids.push(u);
            }
        }
    }
    let ids_s = t.elapsed().as_secs_f64();
    // 3. One detail call per user.
    let t = Instant::now();
    let fetched: Vec<_> = futures::stream::iter(ids.iter().cloned())
        .map(|u| {
            let c = client.clone();
            async move {
                c.user_get(&u)
                    .await
                    .with_context(|| format!("naive: user/get {u}"))
            }
        })
        .buffer_unordered(NAIVE_CONCURRENCY)
        .try_collect()
        .await?;
    let get_s = t.elapsed().as_secs_f64();
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        fetched.len() == ids.len(),
        "naive: {} of {} users fetched",
        fetched.len(),
        ids.len()
    );

    let phases = vec![
        NaivePhase {
            api: LISTSUB,
            calls: count(LISTSUB) - listsub0,
            seconds: round(tree_s, 3),
        },
        NaivePhase {
            api: LISTID,
            calls: count(LISTID) - listid0,
            seconds: round(ids_s, 3),
        },
        NaivePhase {
            api: USER_GET,
            calls: count(USER_GET) - get0,
            seconds: round(get_s, 3),
        },
    ];
    let calls: u64 = phases.iter().map(|p| p.calls).sum();
    let calls_extrapolated = 2 * departments as u64 + active as u64;
    Ok(Naive {
        calls,
        seconds_measured: round(seconds, 3),
        users_measured: ids.len(),
        departments_measured: walked.len(),
        phases,
        calls_extrapolated,
        seconds_extrapolated: round(calls_extrapolated as f64 / f64::from(qps), 1),
        seconds_extrapolated_at_measured_rate: if calls > 0 {
            round(seconds * calls_extrapolated as f64 / calls as f64, 1)
        } else {
            0.0
        },
    })
}

// ── The run ────────────────────────────────────────────────────────────────────────────────

fn definitions() -> Value {
    json!({
        "wall_seconds": "wall time of the child `dingbridge sync run org_to_kingdee --json` (full mode), from spawn to exit: process start, store migration, department walk, member listing with member-count check, Kingdee writes, store commits",
        "users_per_second": "users ÷ wall_seconds",
        "calls_by_api": "DingTalk calls per API path during the full sync, from the simulator's admin API (GET /_sandbox/dingtalk/counters, after − before), rejected calls included",
        "quota_utilisation_by_api": "per API path (DingTalk's quota is per app × API, like dingtalk-walk): calls ÷ (20 QPS × busy_s), where busy_s is the span in which that path was in use (simulator counters sampled every 50 ms; from the sample before its first call to the sample that saw its last, so at most 50 ms too long). api_use also gives each API's pacer group (`contacts:<path>`, one limiter per API) and calls/s ÷ that group's rule from the configuration",
        "contacts_total": "every contacts call of the full sync (all APIs together) over the union of their busy windows",
        "throttled_90018": "90018 answers counted by the simulator during the full sync (errors[\"90018\"]); must be 0, as must the total over every phase",
        "kingdee_calls": "WebAPI calls the Kingdee simulator counted during the full sync (all methods; kingdee_calls_by_method)",
        "peak_rss_mb": "VmHWM of the sync child (the kernel's peak resident set), read from /proc/<pid>/status every 50 ms; MiB. The simulators live in the benchmark process and are not counted",
        "event_latency_ms": "per rename: from just before the DingTalk user/update call to the first 20 ms poll of the Kingdee simulator (in-process) that shows the new FName; path: simulator event → Stream → `dingbridge serve` inbox → org_sync.entity job (workers as configured) → user/get → Kingdee save. The first renames also wait for the Kingdee target's one-time number → id read of the whole form. Nearest-rank percentiles",
        "naive": "department tree (listsub per department), user/listid per department, one user/get per user (4 in flight), through the standard-edition limiter preset, against the same simulator on the first naive.departments_measured departments in breadth-first order; extrapolated to every department and user at 20 QPS",
        "ratio_naive_over_ours": "naive.seconds_extrapolated ÷ wall_seconds; calls_ratio_naive_over_ours: naive.calls_extrapolated ÷ the full sync's DingTalk contacts calls"
    })
}

/// Run `measure` on a fresh hub store of `backend`: a SQLite file in `work`, or a PostgreSQL
/// schema of its own that is dropped afterwards.
pub(crate) async fn with_fresh_store<T>(
    scenario: &str,
    backend: Backend,
    postgres_url: &str,
    work: &Path,
    measure: impl AsyncFnOnce(String) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match backend {
        Backend::Sqlite => measure(format!("sqlite://{}", work.join("hub.sqlite").display())).await,
        Backend::Postgres => {
            let version = probe_postgres(postgres_url).await.map_err(|e| anyhow!(e))?;
            eprintln!("{scenario}: PostgreSQL {version}");
            let schema = ScratchSchema::create(postgres_url, "dbb_")
                .await
                .with_context(|| format!("creating a schema on {postgres_url}"))?;
            let out = measure(schema.url()).await;
            let name = schema.name.clone();
            match (out, schema.drop().await) {
                (Ok(o), Ok(())) => Ok(o),
                (Ok(_), Err(e)) => Err(anyhow!("dropping schema {name}: {e}")),
                (Err(e), Ok(())) => Err(e),
                (Err(e), Err(d)) => {
                    Err(e.context(format!("(and schema {name} was not dropped: {d})")))
                }
            }
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let bin = locate_binary(args.bin.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("dbb-org-sync-")
        .tempdir()
        .context("creating a temporary directory")?;
    with_fresh_store(
        SCENARIO,
        args.backend,
        &args.postgres_url,
        work.path(),
        async |url| measure(&args, &bin, work.path(), &url).await,
    )
    .await
}

async fn measure(args: &Args, bin: &Path, work: &Path, store_url: &str) -> anyhow::Result<Outcome> {
    let qps = DingTalkEdition::Standard.api_qps();
    eprintln!(
        "{SCENARIO}: generating {} users / {} departments …",
        args.users, args.depts
    );
    let seed = Seed::generate(args.users, args.depts);
    let users = seed.users.iter().filter(|u| u.active).count();
    let depts = seed.departments.len().saturating_sub(1);
    let sims = start_sims(&seed).await?;
    let (config, cfg) = write_config(work, &sims, store_url)?;
    let limits = dingtalk_limits(&cfg)?;
    let rule_of = |api: &str| limits.rule_for(&dingtalk::contacts::group_for(api));
    let headline = rule_of(USER_GET)
        .ok_or_else(|| anyhow!("the `dingtalk` connection does not pace contacts calls"))?;

    // 1 + 2: the full sync in a child.
    eprintln!(
        "{SCENARIO}: full sync of {users} users / {depts} departments by {} (contacts APIs paced at {:.2} calls/s each) …",
        bin.display(),
        headline.per_second
    );
    let full = full_sync(&sims, bin, &config, work).await?;
    let verified = verify_kingdee(&sims.kd, &seed);
    let calls_by_api = delta_map(&full.dt_before, &full.dt_after, "calls");
    let errors = delta_map(&full.dt_before, &full.dt_after, "errors");
    let throttled_90018 = errors.get("90018").copied().unwrap_or(0);
    let kingdee_by_method = delta_map(&full.kd_before, &full.kd_after, "calls");
    let kingdee_calls: u64 = kingdee_by_method.values().sum();
    eprintln!(
        "{SCENARIO}: full sync done in {:.1} s; Kingdee holds {} employees, {} departments",
        full.wall_s, verified.employees_in_kingdee, verified.departments_in_kingdee
    );
    ensure!(
        verified.missing_employees == 0
            && verified.wrong_names == 0
            && verified.employees_in_kingdee == users,
        "Kingdee is wrong after the full sync: {verified:?}"
    );
    ensure!(
        verified.missing_departments == 0 && verified.departments_in_kingdee == depts,
        "Kingdee's departments are wrong after the full sync: {verified:?}"
    );
    ensure!(
        throttled_90018 == 0,
        "DingTalk answered 90018 {throttled_90018} times during the full sync"
    );

    let mut api_use = BTreeMap::new();
    let mut quota_utilisation_by_api = BTreeMap::new();
    for (api, calls) in &calls_by_api {
        if is_token_api(api) {
            continue;
        }
        let w = full.windows.get(api).copied().unwrap_or_default();
        let busy = w.busy_s();
        let cps = if busy > 0.0 {
            *calls as f64 / busy
        } else {
            0.0
        };
        let util = round(cps / f64::from(qps), 4);
        quota_utilisation_by_api.insert(api.clone(), util);
        let rule = rule_of(api).map(|r| r.per_second);
        api_use.insert(
            api.clone(),
            ApiUse {
                calls: *calls,
                first_s: round(w.first.unwrap_or(0.0), 2),
                last_s: round(w.last, 2),
                busy_s: round(busy, 2),
                calls_per_s: round(cps, 2),
                quota_utilisation: util,
                pacer_group: dingtalk::contacts::group_for(api),
                limiter_rule_per_s: rule.map(|r| round(r, 3)),
                utilisation_of_limiter_rule: rule.map(|r| round(cps / r, 4)),
            },
        );
    }
    let contacts_calls: u64 = calls_by_api
        .iter()
        .filter(|(api, _)| api.starts_with("/topapi/"))
        .map(|(_, n)| *n)
        .sum();
    let contacts_span = {
        let ws: Vec<&Window> = full
            .windows
            .iter()
            .filter(|(api, _)| api.starts_with("/topapi/"))
            .map(|(_, w)| w)
            .collect();
        let first = ws
            .iter()
            .filter_map(|w| w.first)
            .fold(f64::INFINITY, f64::min);
        let last = ws.iter().map(|w| w.last).fold(0.0, f64::max);
        if first.is_finite() {
            last - first + SAMPLE.as_secs_f64()
        } else {
            0.0
        }
    };
    let contacts_cps = if contacts_span > 0.0 {
        contacts_calls as f64 / contacts_span
    } else {
        0.0
    };
    let contacts_total = json!({
        "calls": contacts_calls,
        "busy_s": round(contacts_span, 2),
        "calls_per_s": round(contacts_cps, 2),
    });

    // 3: event latency through `dingbridge serve`.
    let events = event_latency(&sims, &seed, bin, &config, work, args).await?;
    let mut samples = events.latencies.clone();
    let p = Percentiles::of(&mut samples);
    eprintln!(
        "{SCENARIO}: {} renames arrived: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        events.latencies.len(),
        p.p50,
        p.p99,
        p.max
    );

    // 4: the naive walk.
    let naive = naive(&sims, &seed, args.naive_users, qps).await?;
    eprintln!(
        "{SCENARIO}: naive walk: {} users, {} calls in {:.1} s",
        naive.users_measured, naive.calls, naive.seconds_measured
    );

    let all = dingtalk_counters(&sims).await?;
    let total_90018 = all
        .get("errors")
        .and_then(|e| e.get("90018"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    ensure!(
        total_90018 == 0,
        "DingTalk answered 90018 {total_90018} times over the whole benchmark"
    );

    let ratio = if full.wall_s > 0.0 {
        round(naive.seconds_extrapolated / full.wall_s, 2)
    } else {
        0.0
    };
    let calls_ratio = if contacts_calls > 0 {
        round(naive.calls_extrapolated as f64 / contacts_calls as f64, 2)
    } else {
        0.0
    };
    let peak_rss_mb = mib(full.peak_rss_kib);
    let other_errors: BTreeMap<&String, &u64> = errors
        .iter()
        .filter(|(k, _)| k.as_str() != "90018")
        .collect();
    let params = json!({
        "users": args.users,
        "depts": args.depts,
        "backend": args.backend,
        "edition": DingTalkEdition::Standard.as_str(),
        "simulator_qps_per_api": qps,
        "config": "examples/dingbridge.toml, flow org_to_kingdee; URLs pointed at the simulators, store replaced, reconcile schedule moved to 1 January",
        "pacing": format!(
            "the config's limiter registry: each DingTalk contacts API its own group `contacts:<path>` at {:.2}/s (burst {}), connection concurrency {}",
            headline.per_second, headline.burst, limits.concurrency
        ),
        "binary": bin.display().to_string(),
        "events": args.events,
        "event_seconds": args.event_seconds,
        "naive_users": args.naive_users,
        "naive_concurrency": NAIVE_CONCURRENCY,
        "simulators": "sandbox::dingtalk (standard edition) and sandbox::kingdee (seed_org false), in the benchmark process, HTTP on loopback",
    });
    let event_latency_ms = json!({
        "p50": p.p50,
        "p90": p.p90,
        "p99": p.p99,
        "max": p.max,
        "mean": p.mean,
        "n": events.latencies.len(),
    });
    let report = json!({
        "scenario": SCENARIO,
        "timestamp": timestamp(),
        "machine": Machine::detect(),
        "params": params,
        "definitions": definitions(),
        "users": users,
        "depts": depts,
        "wall_seconds": round(full.wall_s, 3),
        "users_per_second": per_second(users, full.wall_s),
        "calls_by_api": calls_by_api,
        "quota_utilisation_by_api": quota_utilisation_by_api,
        "api_use": api_use,
        "contacts_total": contacts_total,
        "throttled_90018": throttled_90018,
        "throttled_90018_all_phases": total_90018,
        "other_dingtalk_errors": other_errors,
        "kingdee_calls": kingdee_calls,
        "kingdee_calls_by_method": kingdee_by_method,
        "peak_rss_mb": peak_rss_mb,
        "verified": verified,
        "sync_summary": full.summary,
        "event_latency_ms": event_latency_ms,
        "events": {
            "sent": events.sent,
            "send_seconds": round(events.send_s, 2),
            "serve_peak_rss_mb": mib(events.serve_peak_rss_kib),
            "serve_exit": events.serve_exit,
            "dingtalk_calls": events.dt_delta,
            "kingdee_calls": events.kd_delta,
        },
        "naive": naive,
        "ratio_naive_over_ours": ratio,
        "calls_ratio_naive_over_ours": calls_ratio,
    });
    let summary = summary(&report);
    Ok(Outcome {
        scenario: SCENARIO,
        report,
        summary,
    })
}

fn summary(r: &Value) -> String {
    let f = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let u = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "org-sync: {} users / {} departments, full sync by `dingbridge sync run` ({} store)\n",
        u("users"),
        u("depts"),
        r["params"]["backend"].as_str().unwrap_or("?"),
    );
    let row = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<32} {v}\n"));
    row(
        &mut out,
        "wall time",
        format!(
            "{:.1} s ({:.1} min), {:.1} users/s",
            f("wall_seconds"),
            f("wall_seconds") / 60.0,
            f("users_per_second")
        ),
    );
    if let Some(apis) = r["api_use"].as_object() {
        for (api, a) in apis {
            row(
                &mut out,
                &format!("DingTalk {}", api.trim_start_matches("/topapi/")),
                format!(
                    "{} calls in {:.1} s busy, {:.2}/s = {:.1} % of 20 QPS ({:.1} % of its {:.2}/s pacer)",
                    a["calls"].as_u64().unwrap_or(0),
                    a["busy_s"].as_f64().unwrap_or(0.0),
                    a["calls_per_s"].as_f64().unwrap_or(0.0),
                    a["quota_utilisation"].as_f64().unwrap_or(0.0) * 100.0,
                    a["utilisation_of_limiter_rule"].as_f64().unwrap_or(0.0) * 100.0,
                    a["limiter_rule_per_s"].as_f64().unwrap_or(0.0)
                ),
            );
        }
    }
    let g = &r["contacts_total"];
    row(
        &mut out,
        "DingTalk contacts, all APIs",
        format!(
            "{} calls in {:.1} s, {:.2}/s",
            g["calls"].as_u64().unwrap_or(0),
            g["busy_s"].as_f64().unwrap_or(0.0),
            g["calls_per_s"].as_f64().unwrap_or(0.0)
        ),
    );
    row(
        &mut out,
        "90018 answers",
        format!(
            "{} (all phases: {})",
            u("throttled_90018"),
            u("throttled_90018_all_phases")
        ),
    );
    row(&mut out, "Kingdee calls", format!("{}", u("kingdee_calls")));
    row(
        &mut out,
        "peak RSS of the hub",
        format!(
            "{:.1} MiB (serve during events: {:.1} MiB)",
            f("peak_rss_mb"),
            r["events"]["serve_peak_rss_mb"].as_f64().unwrap_or(0.0)
        ),
    );
    let e = &r["event_latency_ms"];
    row(
        &mut out,
        "event latency",
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n = {})",
            e["p50"].as_f64().unwrap_or(0.0),
            e["p99"].as_f64().unwrap_or(0.0),
            e["max"].as_f64().unwrap_or(0.0),
            e["n"].as_u64().unwrap_or(0)
        ),
    );
    let n = &r["naive"];
    row(
        &mut out,
        "naive (measured)",
        format!(
            "{} users: {} calls in {:.1} s",
            n["users_measured"].as_u64().unwrap_or(0),
            n["calls"].as_u64().unwrap_or(0),
            n["seconds_measured"].as_f64().unwrap_or(0.0)
        ),
    );
    row(
        &mut out,
        "naive (whole org)",
        format!(
            "{} calls ÷ 20 QPS = {:.0} s ({:.1} min)",
            n["calls_extrapolated"].as_u64().unwrap_or(0),
            n["seconds_extrapolated"].as_f64().unwrap_or(0.0),
            n["seconds_extrapolated"].as_f64().unwrap_or(0.0) / 60.0
        ),
    );
    row(
        &mut out,
        "naive ÷ ours",
        format!(
            "{:.2}× the time, {:.2}× the calls",
            f("ratio_naive_over_ours"),
            f("calls_ratio_naive_over_ours")
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_deltas_skip_unchanged_entries() {
        let before = json!({"calls": {"/a": 3, "/b": 5}});
        let after = json!({"calls": {"/a": 3, "/b": 9, "/c": 1}});
        let d = delta_map(&before, &after, "calls");
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("/b"), Some(&4));
        assert_eq!(d.get("/c"), Some(&1));
        assert!(delta_map(&before, &after, "missing").is_empty());
    }

    #[test]
    fn busy_window_adds_one_sample() {
        let w = Window {
            first: Some(1.0),
            last: 11.0,
        };
        assert!((w.busy_s() - (10.0 + SAMPLE.as_secs_f64())).abs() < 1e-9);
        assert_eq!(Window::default().busy_s(), 0.0);
    }

    #[test]
    fn the_example_config_has_what_the_benchmark_rewrites() {
        for s in [
            "url = \"sqlite://dingbridge.sqlite\"",
            "http://127.0.0.1:8089",
            "http://127.0.0.1:8090",
            "schedule = \"0 */10 * * * *\"",
            "edition = \"standard\"",
            "[flows.org_to_kingdee]",
        ] {
            assert!(EXAMPLE.contains(s), "{s}");
        }
    }
}
