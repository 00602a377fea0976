//! `approvals`: approved 费用报销 claims become audited Kingdee bills (flow `expense_to_kingdee`
//! of `examples/dingbridge.toml`, the `approval_to_document` saga: save → submit → audit →
//! writeback, one job per step), run by the real `dingbridge serve` against simulators served by
//! this process.
//!
//! Setup: the DingTalk simulator with the built-in demo company (`Seed::builtin()`, 240 people)
//! at the standard edition (20 calls/s per app × API, the real quota), and an **empty** Kingdee
//! simulator (`seed_org: false`) that `dingbridge sync run org_to_kingdee` fills first, so the
//! bills refer to employees and `DT<id>` departments exactly as the example configuration maps
//! them (and the hub's identity table knows every originator's job number). Both simulators
//! live in this process on loopback. The example configuration is pointed at them and at a
//! fresh store (a temporary SQLite file, or a PostgreSQL schema of its own with
//! `--backend postgres`), and changed in three ways only: the `approvals` bridge flow is
//! disabled (its webhook receiver `oa` is not running), and the org reconcile and the
//! `expense_to_kingdee` backfill poll are moved to 1 January so that only the event path runs
//! during the measurement. Events reach the hub over Stream (`stream = true`).
//!
//! 1. **Org sync** in a child process, then `dingbridge serve` as a child on the same store;
//!    ready once its Stream connection is open.
//! 2. **Start** `--approvals` 费用报销 instances through the DingTalk API (`approval_create`,
//!    v1.0) from a client paced by the configuration's own limiter, each by a person of a
//!    department below the root, with 2 detail rows in Chinese. Their start and task events go
//!    through the hub too (recorded, no flow wants them); the benchmark waits until the hub's
//!    queue is empty before it approves anything.
//! 3. **Approve** every instance through the simulator's admin API (`POST
//!    /_sandbox/dingtalk/approvals/{id}/approve`: both approvers agree, the `finish` event is
//!    emitted before the call returns), at `--rate` per second or all at once with `--burst`
//!    (32 admin calls in flight). The call's return is the instance's finish time.
//! 4. **Audited**: the Kingdee simulator's `ER_ExpReimbursement` records are read in-process every
//!    20 ms; an instance is audited when a bill carrying its id in `F_DDInstanceId` first shows
//!    `DocumentStatus` C. Latency = audited − finished (nearest-rank percentiles). Throughput =
//!    bills ÷ the busy window (first finish → last audited bill). The run then waits for every
//!    writeback comment and stops the hub gracefully (SIGTERM).
//! 5. **Correctness** (the only thing that fails the run): every instance has exactly one bill,
//!    audited; no dead letter in the store; nothing stalls for 120 s.
//! 6. **Peak RSS** of `dingbridge serve` (VmHWM, as in `org-sync`) and the 90018 answers of the
//!    DingTalk simulator (reported, not checked).
//!
//! **Where the time goes** (`time_shares`). Each instance's path is rebuilt from the store after
//! the hub stopped and from the simulators: the finish event's emission (the simulator's event
//! log) → its inbox row (`events.received_at`) → the `dingtalk.event` job that routes it (its
//! transfer row, flow `inbox`) → the four step jobs (their `transfer_log` rows of flow
//! `expense_to_kingdee`: `started_at`, `duration_ms`; their jobs' `finished_at`, the moment the
//! worker committed the ack). Every millisecond between the finish event and the end of the
//! audit step (`to_audited`, the latency's window) or the writeback job's ack (`to_done`) falls
//! into exactly one category:
//!
//! - `event_delivery`: finish event emitted → stored in the hub's inbox (Stream push, the
//!   inbox transaction);
//! - `queue_wait`: a job ready (inbox commit, or its predecessor's ack) → its step starting:
//!   the predecessor's commit, the workers' poll interval, claiming, failed attempts and their
//!   back-off;
//! - `dingtalk` and `kingdee`: inside a step, waiting for a platform. Both simulators time
//!   every API request they serve (a middleware of this benchmark) and note the instance ids
//!   and bill numbers in it (query and body); the requests of a step attempt are those of the
//!   step's operations (save: approval get, ExecuteBillQuery, Save; submit: Submit; audit:
//!   Audit, and their status queries; writeback: comment) carrying its instance id (save,
//!   writeback) or bill number (submit, audit) within `[started_at, started_at + duration_ms]`.
//!   Walking
//!   them in order, the time from the step's start (or the previous answer) to each answer counts
//!   for that request's platform: it includes the hub's wait in its own pacer (DingTalk's quota),
//!   the HTTP round trip and the simulator's work. `server_ms` gives the simulators' own share;
//! - `hub`: the rest of a step (store reads, mapping, building effects), the inbox routing step,
//!   and a step's end → its ack.
//!
//! Timestamps are the hub's (Unix ms, truncated), the simulators' (µs) and this process's, all
//! from the same system clock; a category can be off by a millisecond per boundary.
//!
//! Numbers are reported, never asserted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dingtalk::DeptId;
use dingtalk::DingTalkClient;
use dingtalk::approvals::{FormField, NewInstance};
use engine::config::{Config, ConnectionSettings, Lang};
use futures::{StreamExt, TryStreamExt};
use limits::DingTalkEdition;
use sandbox::admin_client::AdminClient;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, Edition};
use sandbox::kingdee::store::get_ci;
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::{Seed, User};
use serde::Serialize;
use serde_json::{Value, json};
use store::{Job, JobFilter, JobStatus, Store, Transfer, TransferFilter};
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;
use tokio::sync::oneshot;

use super::org_sync::{
    Backend, ServeChild, at_least_one, delta_map, hub_command, locate_binary, log_tail, mib,
    with_fresh_store,
};
use crate::db::DEFAULT_POSTGRES_URL;
use crate::report::{Machine, Outcome, Percentiles, per_second, round, timestamp};

const SCENARIO: &str = "approvals";
const EXAMPLE: &str = include_str!("../../../examples/dingbridge.toml");
const FLOW: &str = "expense_to_kingdee";
const ORG_FLOW: &str = "org_to_kingdee";
const BRIDGE_FLOW: &str = "approvals";
/// 费用报销, the template the flow listens to.
const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
const BILL_FORM: &str = "ER_ExpReimbursement";
const INSTANCE_FIELD: &str = "F_DDInstanceId";
/// The simulator's bill numbers of ER_ExpReimbursement: `FYBX000001`.
const BILL_PREFIX: &str = "FYBX";
const STEPS: [&str; 4] = ["save", "submit", "audit", "writeback"];

const APPROVAL_API: &str = "/v1.0/workflow/processInstances";
const COMMENT_API: &str = "/v1.0/workflow/processInstances/comments";

/// How often Kingdee is read for audited bills.
const POLL: Duration = Duration::from_millis(20);
/// How often the serve child's VmHWM is read (by `watch_peak_rss`) and progress is checked.
const TICK: Duration = Duration::from_millis(250);
/// No new audited bill nor comment for this long fails the run.
const STALL: Duration = Duration::from_secs(120);
/// Admin approve calls in flight with `--burst`.
const BURST_CONCURRENCY: usize = 32;
/// `approval_create` calls in flight (the limiter paces them).
const CREATE_CONCURRENCY: usize = 4;
/// A request body larger than this is not inspected (none is near it).
const BODY_LIMIT: usize = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Approvals started, approved and turned into bills.
    #[arg(long, default_value_t = 1_000, value_parser = at_least_one)]
    approvals: usize,
    /// Approvals finished per second (steady rate); ignored with --burst.
    #[arg(long, default_value_t = 5.0, value_parser = positive_rate)]
    rate: f64,
    /// Approve every instance at once (32 admin calls in flight) instead of at --rate.
    #[arg(long)]
    burst: bool,
    /// The hub's store: a temporary SQLite file, or a fresh schema on PostgreSQL.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// The PostgreSQL server for `--backend postgres`; the run gets a schema of its own,
    /// dropped at the end.
    #[arg(long, env = "DINGBRIDGE_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// The dingbridge binary (default: `dingbridge` next to this benchmark's binary, i.e.
    /// `target/release/dingbridge`; `scripts/bench approvals` builds it first).
    #[arg(long)]
    bin: Option<PathBuf>,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a rate above 0 per second")),
    }
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn wall_ms() -> i64 {
    wall_us() / 1000
}

// ── Simulators with a request tap ──────────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    DingTalk,
    Kingdee,
}

/// One API request a simulator served: when (µs, system clock) and the instance ids / bill
/// numbers it carried.
#[derive(Debug, Clone)]
struct Call {
    platform: Platform,
    /// The operation: a Kingdee WebAPI method (`Save`, `Audit`, …) or the last segment of a
    /// DingTalk path (`processInstances`, `comments`, …).
    op: String,
    start_us: i64,
    end_us: i64,
    keys: Vec<String>,
}

#[derive(Clone)]
struct Tap {
    platform: Platform,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// Times every API request (not the admin API, not the Stream socket) and keeps the keys it
/// mentions. The body is read whole and handed on unchanged.
async fn tap(State(tap): State<Tap>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sandbox") || path == "/connect" {
        return next.run(req).await;
    }
    let start_us = wall_us();
    let mut keys = Vec::new();
    collect_keys(req.uri().query().unwrap_or_default().as_bytes(), &mut keys);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    collect_keys(&bytes, &mut keys);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let end_us = wall_us();
    keys.sort_unstable();
    keys.dedup();
    tap.calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Call {
            platform: tap.platform,
            op: operation(&path),
            start_us,
            end_us,
            keys,
        });
    response
}

/// `…DynamicFormService.Save.common.kdsvc` → `Save`; `/v1.0/workflow/processInstances` →
/// `processInstances`.
fn operation(path: &str) -> String {
    match path.strip_suffix(".common.kdsvc") {
        Some(stem) => stem.rsplit('.').next().unwrap_or(stem).to_owned(),
        None => path.rsplit('/').next().unwrap_or(path).to_owned(),
    }
}

/// Which requests belong to a step: their operations, and whether they are recognised by the
/// instance id (save, writeback) or by the bill number (submit, audit).
fn step_requests(step: &str) -> (&'static [&'static str], bool) {
    match step {
        "save" => (&["processInstances", "ExecuteBillQuery", "Save"], true),
        "submit" => (&["Submit", "ExecuteBillQuery"], false),
        "audit" => (&["Audit", "ExecuteBillQuery"], false),
        _ => (&["comments", "processInstances"], true),
    }
}

/// Instance ids (32 lowercase hex digits, the simulator's) and bill numbers (`FYBX` + digits)
/// among the alphanumeric runs of `text`.
fn collect_keys(text: &[u8], out: &mut Vec<String>) {
    for run in text.split(|b| !b.is_ascii_alphanumeric()) {
        let is_instance = run.len() == 32
            && run
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        let is_bill = run.len() > BILL_PREFIX.len()
            && run.starts_with(BILL_PREFIX.as_bytes())
            && run[BILL_PREFIX.len()..].iter().all(u8::is_ascii_digit);
        if is_instance || is_bill {
            out.push(String::from_utf8_lossy(run).into_owned());
        }
    }
}

struct Sims {
    dt: DingTalkSandbox,
    dt_origin: String,
    kd: KingdeeSandbox,
    kd_origin: String,
    calls: Arc<Mutex<Vec<Call>>>,
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
    let calls = Arc::new(Mutex::new(Vec::new()));
    let dl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let kl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dt_origin = format!("http://{}", dl.local_addr()?);
    let kd_origin = format!("http://{}", kl.local_addr()?);
    let dt_app = sandbox::dingtalk::router(dt.clone()).layer(axum::middleware::from_fn_with_state(
        Tap {
            platform: Platform::DingTalk,
            calls: Arc::clone(&calls),
        },
        tap,
    ));
    let kd_app = sandbox::kingdee::router(kd.clone()).layer(axum::middleware::from_fn_with_state(
        Tap {
            platform: Platform::Kingdee,
            calls: Arc::clone(&calls),
        },
        tap,
    ));
    let tasks = vec![
        tokio::spawn(async move {
            // With the peer address, as `sandbox::dingtalk::serve` does (per-IP limits).
            let app = dt_app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(dl, app).await {
                eprintln!("{SCENARIO}: DingTalk simulator stopped: {e}");
            }
        }),
        tokio::spawn(async move {
            if let Err(e) = axum::serve(kl, kd_app).await {
                eprintln!("{SCENARIO}: Kingdee simulator stopped: {e}");
            }
        }),
    ];
    Ok(Sims {
        dt,
        dt_origin,
        kd,
        kd_origin,
        calls,
        tasks,
    })
}

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

fn count_of(counters: &Value, key: &str, name: &str) -> u64 {
    counters
        .get(key)
        .and_then(|m| m.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

// ── Configuration, store, children ─────────────────────────────────────────────────────────

/// `examples/dingbridge.toml` pointed at the simulators and the store, the bridge flow
/// disabled, the org reconcile and the backfill poll moved to 1 January; written to `dir`.
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
        (
            "schedule = \"30 */5 * * * *\"".to_owned(),
            "schedule = \"30 0 0 1 1 *\"".to_owned(),
        ),
        (
            format!("[flows.{BRIDGE_FLOW}]\n"),
            format!("[flows.{BRIDGE_FLOW}]\nenabled = false\n"),
        ),
    ] {
        ensure!(
            text.contains(&from),
            "examples/dingbridge.toml no longer contains `{}`; update benches/src/scenarios/approvals.rs",
            from.trim_end()
        );
        text = text.replace(&from, &to);
    }
    ensure!(
        text.contains("edition = \"standard\"") && text.contains("stream = true"),
        "examples/dingbridge.toml's DingTalk connection is not standard edition over Stream"
    );
    let path = dir.join("dingbridge.toml");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let cfg = Config::from_str(&text, &path.display().to_string())
        .map_err(|e| anyhow!("{}", e.render(Lang::En)))?;
    let enabled = |f: &str| cfg.flows.get(f).is_some_and(|f| f.enabled);
    ensure!(
        enabled(FLOW) && enabled(ORG_FLOW) && !enabled(BRIDGE_FLOW),
        "the benchmark's configuration does not enable `{FLOW}` and `{ORG_FLOW}` alone"
    );
    Ok((path, cfg))
}

/// The benchmark's own DingTalk client: the configuration's connection, paced by the
/// configuration's limiter (a separate instance from the hub's, in another process).
fn bench_client(cfg: &Config) -> anyhow::Result<DingTalkClient> {
    let conn = cfg
        .connections
        .get("dingtalk")
        .ok_or_else(|| anyhow!("the configuration has no `dingtalk` connection"))?;
    let ConnectionSettings::DingTalk(c) = &conn.settings else {
        bail!("the `dingtalk` connection is not of kind dingtalk");
    };
    let registry = cfg.limiter_registry()?;
    Ok(engine::connectors::dingtalk_client(
        "dingtalk",
        c,
        registry.pacer("dingtalk"),
    )?)
}

async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(url, 2).await?)
    } else {
        Arc::new(PostgresStore::open(url, 2).await?)
    };
    Ok(store)
}

/// `dingbridge sync run org_to_kingdee --json`: the company into the empty Kingdee.
async fn org_sync(bin: &Path, config: &Path, work: &Path) -> anyhow::Result<(f64, Value)> {
    let log = work.join("sync.log");
    let mut cmd = hub_command(bin, config, &log)?;
    cmd.args(["sync", "run", ORG_FLOW, "--json"])
        .stdout(Stdio::piped());
    let started = Instant::now();
    let output = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?
        .wait_with_output()
        .await
        .context("waiting for the sync child")?;
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .find('{')
        .and_then(|i| serde_json::from_str(&stdout[i..]).ok())
        .unwrap_or(Value::Null);
    ensure!(
        output.status.success() && summary.get("status").and_then(Value::as_str) == Some("success"),
        "`dingbridge sync run {ORG_FLOW}` failed ({}); summary: {summary}\n--- {} (tail) ---\n{}",
        output.status,
        log.display(),
        log_tail(&log, 30)
    );
    Ok((wall, summary))
}

// ── Starting and approving ─────────────────────────────────────────────────────────────────

/// People who can claim expenses: active, in a department below the root.
fn claimants(seed: &Seed) -> Vec<User> {
    seed.users
        .iter()
        .filter(|u| u.active && u.dept_ids.first().is_some_and(|d| *d != 1))
        .cloned()
        .collect()
}

const CITIES: [&str; 6] = ["杭州", "上海", "北京", "深圳", "成都", "武汉"];
/// Detail rows (type, amount, note), two per claim, rotating.
const ROWS: [[(&str, &str, &str); 2]; 3] = [
    [
        ("差旅费", "1280.50", "往返高铁及两晚住宿"),
        ("招待费", "360", "客户午餐"),
    ],
    [
        ("交通费", "86.50", "机场出租车"),
        ("办公费", "240", "打印耗材与文具"),
    ],
    [
        ("差旅费", "2150", "展会期间酒店三晚"),
        ("其他", "45.80", "快递寄送样品"),
    ],
];

fn expense_form(i: usize) -> Vec<FormField> {
    let city = CITIES[i % CITIES.len()];
    let rows = &ROWS[i % ROWS.len()];
    let reason = format!("{city}出差报销 第{}号", i + 1);
    let total: f64 = rows
        .iter()
        .map(|(_, a, _)| a.parse::<f64>().unwrap_or(0.0))
        .sum();
    vec![
        FormField::text("报销事由", reason.clone()),
        FormField::text("报销类别", "差旅报销"),
        FormField::table(
            "费用明细",
            rows.iter()
                .map(|(kind, amount, note)| {
                    vec![
                        FormField::text("费用类型", *kind),
                        FormField::text("金额（元）", *amount),
                        FormField::text("费用说明", format!("{reason}：{note}")),
                    ]
                })
                .collect(),
        ),
        FormField::text("报销总金额（元）", format!("{}", round(total, 2))),
    ]
}

async fn start_expense(dt: &DingTalkClient, who: &User, i: usize) -> anyhow::Result<String> {
    let dept = who
        .dept_ids
        .first()
        .copied()
        .ok_or_else(|| anyhow!("{} has no department", who.userid))?;
    let req = NewInstance::new(
        EXPENSE,
        who.userid.as_str(),
        Some(DeptId(i64::try_from(dept)?)),
        expense_form(i),
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        match dt.approval_create(&req).await {
            Ok(id) => return Ok(id.0),
            Err(e) if e.is_retryable() && attempt < 20 => {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(200))).await;
            }
            Err(e) => return Err(anyhow!("approval_create #{}: {e}", i + 1)),
        }
    }
}

/// Until the hub's queue holds nothing queued, running or waiting to retry (twice in a row),
/// or `limit`; whether it got there.
async fn wait_idle(store: &dyn Store, limit: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < limit {
        let busy: i64 = store
            .queue_depths()
            .await?
            .iter()
            .filter(|d| {
                matches!(
                    d.status,
                    JobStatus::Queued | JobStatus::Running | JobStatus::Retry
                )
            })
            .map(|d| d.count)
            .sum();
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return Ok(true);
        }
        tokio::time::sleep(TICK).await;
    }
    Ok(false)
}

/// When an approval finished: this process's clock and the system clock (ms).
#[derive(Debug, Clone, Copy)]
struct Finished {
    at: Instant,
    wall_ms: i64,
}

async fn approve_one(admin: &AdminClient, id: &str) -> anyhow::Result<Finished> {
    let answer = admin
        .post(&format!("approvals/{id}/approve"), &json!({}))
        .await
        .with_context(|| format!("approving {id}"))?;
    let finished = Finished {
        at: Instant::now(),
        wall_ms: wall_ms(),
    };
    ensure!(
        answer.get("status").and_then(Value::as_str) == Some("COMPLETED")
            && answer.get("result").and_then(Value::as_str) == Some("agree"),
        "approving {id} did not finish it: {answer}"
    );
    Ok(finished)
}

/// Approves every instance, at `rate` per second or all at once; the finish times in the
/// order of `ids`.
async fn approve_all(
    admin: AdminClient,
    ids: Vec<String>,
    rate: f64,
    burst: bool,
) -> anyhow::Result<Vec<Finished>> {
    if burst {
        return futures::stream::iter(ids)
            .map(|id| {
                let admin = admin.clone();
                async move { approve_one(&admin, &id).await }
            })
            .buffered(BURST_CONCURRENCY)
            .try_collect()
            .await;
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let (admin, id) = (admin.clone(), id.clone());
        running.spawn(async move { approve_one(&admin, &id).await.map(|f| (i, f)) });
    }
    let mut out: Vec<Option<Finished>> = vec![None; ids.len()];
    while let Some(joined) = running.join_next().await {
        let (i, f) = joined.context("an approve task failed")??;
        out[i] = Some(f);
    }
    out.into_iter()
        .map(|f| f.ok_or_else(|| anyhow!("an approval was not approved")))
        .collect()
}

// ── Watching Kingdee ───────────────────────────────────────────────────────────────────────

/// Reads the bills every [`POLL`]: the moment each instance's bill is first seen audited.
struct Watcher {
    stop: oneshot::Sender<()>,
    audited: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<HashMap<String, Instant>>,
}

fn watch_bills(kd: KingdeeSandbox, ids: &[String]) -> Watcher {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let audited = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&audited);
    let mut pending: HashSet<String> = ids.iter().cloned().collect();
    let task = tokio::spawn(async move {
        let mut seen: HashSet<i64> = HashSet::new();
        let mut at = HashMap::with_capacity(pending.len());
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pending.is_empty() {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let db = kd.db();
            let Some(form) = db.data(BILL_FORM) else {
                continue;
            };
            for r in form.records.values() {
                if r.status != 'C' || seen.contains(&r.id) {
                    continue;
                }
                seen.insert(r.id);
                if let Some(id) = get_ci(&r.fields, INSTANCE_FIELD).and_then(Value::as_str)
                    && pending.remove(id)
                {
                    at.insert(id.to_owned(), now);
                }
            }
            count.store(at.len(), Ordering::Relaxed);
        }
        at
    });
    Watcher {
        stop,
        audited,
        task,
    }
}

/// Every bill of the form, per instance id: (bill number, status).
fn bills_by_instance(kd: &KingdeeSandbox) -> (usize, HashMap<String, Vec<(String, char)>>) {
    let db = kd.db();
    let mut by: HashMap<String, Vec<(String, char)>> = HashMap::new();
    let Some(form) = db.data(BILL_FORM) else {
        return (0, by);
    };
    for r in form.records.values() {
        let id = get_ci(&r.fields, INSTANCE_FIELD)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        by.entry(id).or_default().push((r.number.clone(), r.status));
    }
    (form.records.len(), by)
}

#[derive(Debug, Serialize)]
struct Verified {
    instances: usize,
    bills_in_kingdee: usize,
    without_bill: usize,
    with_two_or_more_bills: usize,
    not_audited: usize,
    bills_of_other_instances: usize,
    dead_letters: usize,
    step_jobs_retried: usize,
    step_attempts_beyond_first: i64,
}

// ── The run ────────────────────────────────────────────────────────────────────────────────

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let bin = locate_binary(args.bin.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("dbb-approvals-")
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

/// What the serve phase measured.
struct Served {
    ids: Vec<String>,
    create_s: f64,
    settle_s: f64,
    settled: bool,
    finished: Vec<Finished>,
    audited: HashMap<String, Instant>,
    approve_s: f64,
    /// First finish → every writeback comment made.
    to_comments_s: f64,
    dt_before: Value,
    dt_after: Value,
    kd_before: Value,
    kd_after: Value,
    dt_create_before: Value,
    peak_rss_kib: u64,
    serve_exit: String,
}

async fn measure(args: &Args, bin: &Path, work: &Path, store_url: &str) -> anyhow::Result<Outcome> {
    let wall = Instant::now();
    let seed = Seed::builtin();
    let people = claimants(&seed);
    ensure!(!people.is_empty(), "the demo company has no claimant");
    let sims = start_sims(&seed).await?;
    let (config, cfg) = write_config(work, &sims, store_url)?;
    let registry = cfg.limiter_registry()?;
    let dt_limits = registry
        .get("dingtalk")
        .ok_or_else(|| anyhow!("the configuration has no `dingtalk` connection"))?
        .limits()
        .clone();
    let workflow_rule = dt_limits.rule_for(dingtalk::approvals::GROUP);

    eprintln!(
        "{SCENARIO}: org sync of the demo company ({} people) into an empty Kingdee …",
        seed.users.len()
    );
    let (org_sync_s, org_summary) = org_sync(bin, &config, work).await?;
    eprintln!("{SCENARIO}: org sync done in {org_sync_s:.1} s");

    let served = serve_phase(args, &sims, &cfg, bin, &config, work, store_url, &people).await?;
    let n = served.ids.len();

    // Correctness, from Kingdee and the store (the hub has stopped).
    let store = open_store(store_url).await?;
    let (bills_total, by_instance) = bills_by_instance(&sims.kd);
    let id_set: HashSet<&str> = served.ids.iter().map(String::as_str).collect();
    let mut without = 0;
    let mut doubled = 0;
    let mut not_audited = 0;
    let mut bill_of: HashMap<&str, &str> = HashMap::new();
    for id in &served.ids {
        match by_instance.get(id).map(Vec::as_slice) {
            None | Some([]) => without += 1,
            Some([(number, status)]) => {
                if *status != 'C' {
                    not_audited += 1;
                }
                bill_of.insert(id.as_str(), number.as_str());
            }
            Some(_) => doubled += 1,
        }
    }
    let others = by_instance
        .iter()
        .filter(|(k, _)| !id_set.contains(k.as_str()))
        .map(|(_, v)| v.len())
        .sum();
    let dead = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            limit: 10_000,
            ..JobFilter::default()
        })
        .await?;

    // The path of every instance, from the store and the simulators.
    eprintln!("{SCENARIO}: reading the transfer log …");
    let events = AdminClient::new(&sims.dt_origin, "dingtalk")
        .get("events")
        .await
        .context("reading the DingTalk simulator's event log")?;
    let finish_events = finish_events(&events);
    let calls = sims
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let paths = read_paths(store.as_ref(), &served.ids, &finish_events).await?;
    // The admin call's return against the finish event's emission (the simulator's log).
    let mut return_lag: Vec<Duration> = served
        .ids
        .iter()
        .zip(&served.finished)
        .filter_map(|(id, f)| {
            let (_, emitted) = finish_events.get(id)?;
            u64::try_from(f.wall_ms - emitted)
                .ok()
                .map(Duration::from_millis)
        })
        .collect();
    let lag = Percentiles::of(&mut return_lag);
    let analysis = analyse(&paths, &calls);
    let retried = paths
        .iter()
        .flat_map(|p| p.steps.values())
        .filter(|s| s.attempts > 1)
        .count();
    let extra_attempts: i64 = paths
        .iter()
        .flat_map(|p| p.steps.values())
        .map(|s| i64::from(s.attempts.max(1) - 1))
        .sum();

    let verified = Verified {
        instances: n,
        bills_in_kingdee: bills_total,
        without_bill: without,
        with_two_or_more_bills: doubled,
        not_audited,
        bills_of_other_instances: others,
        dead_letters: dead.len(),
        step_jobs_retried: retried,
        step_attempts_beyond_first: extra_attempts,
    };
    let dead_sample: Vec<Value> = dead
        .iter()
        .take(5)
        .map(|j: &Job| json!({"id": j.id, "kind": j.kind, "flow": j.flow, "error": j.last_error}))
        .collect();
    ensure!(
        without == 0 && doubled == 0 && not_audited == 0 && others == 0,
        "Kingdee is wrong: {verified:?}"
    );
    ensure!(
        dead.is_empty(),
        "the hub has {} dead letters: {}",
        dead.len(),
        Value::Array(dead_sample)
    );

    // Latency and throughput.
    let mut latencies = Vec::with_capacity(n);
    for (id, f) in served.ids.iter().zip(&served.finished) {
        if let Some(a) = served.audited.get(id) {
            latencies.push(a.saturating_duration_since(f.at));
        }
    }
    let p = Percentiles::of(&mut latencies);
    let first_finish = served.finished.iter().map(|f| f.at).min();
    let last_audit = served.audited.values().copied().max();
    let busy_s = match (first_finish, last_audit) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };

    // Counters over the approve phase (approvals finished → hub stopped).
    let calls_by_api = delta_map(&served.dt_before, &served.dt_after, "calls");
    let errors = delta_map(&served.dt_before, &served.dt_after, "errors");
    let all_errors = delta_map(&json!({}), &served.dt_after, "errors");
    let throttled = count_of(&served.dt_after, "errors", "90018");
    let throttled_create = count_of(&served.dt_before, "errors", "90018").saturating_sub(count_of(
        &served.dt_create_before,
        "errors",
        "90018",
    ));
    let kd_by_method = delta_map(&served.kd_before, &served.kd_after, "calls");
    let qps = DingTalkEdition::Standard.api_qps();
    let get_calls = calls_by_api.get(APPROVAL_API).copied().unwrap_or(0);
    let comment_calls = calls_by_api.get(COMMENT_API).copied().unwrap_or(0);
    // The hub's approval gets and comments run from the first finish to the last comment.
    let calls_s = served.to_comments_s;
    let busy_rate = |calls: u64| {
        if calls_s > 0.0 {
            calls as f64 / calls_s
        } else {
            0.0
        }
    };
    let workflow = json!({
        "window_s": round(calls_s, 3),
        "approval_get_calls": get_calls,
        "comment_calls": comment_calls,
        "approval_get_per_s": round(busy_rate(get_calls), 2),
        "comment_per_s": round(busy_rate(comment_calls), 2),
        "approval_get_quota_utilisation": round(busy_rate(get_calls) / f64::from(qps), 4),
        "comment_quota_utilisation": round(busy_rate(comment_calls) / f64::from(qps), 4),
        "hub_pacer_group": dingtalk::approvals::GROUP,
        "hub_pacer_rule_per_s": workflow_rule.map(|r| round(r.per_second, 3)),
        "both_apis_per_s": round(busy_rate(get_calls + comment_calls), 2),
        "both_apis_share_of_pacer_rule": workflow_rule.map(|r| round(busy_rate(get_calls + comment_calls) / r.per_second, 4)),
    });
    let other_errors: BTreeMap<&String, &u64> = errors
        .iter()
        .filter(|(k, _)| k.as_str() != "90018")
        .collect();

    let latency_ms = json!({
        "p50": p.p50, "p90": p.p90, "p95": p.p95, "p99": p.p99, "max": p.max, "mean": p.mean,
        "n": latencies.len(),
    });
    let params = json!({
        "approvals": args.approvals,
        "mode": if args.burst { "burst" } else { "steady" },
        "rate_per_s": if args.burst { Value::Null } else { json!(args.rate) },
        "burst_concurrency": args.burst.then_some(BURST_CONCURRENCY),
        "backend": args.backend,
        "edition": DingTalkEdition::Standard.as_str(),
        "simulator_qps_per_api": qps,
        "seed": format!("Seed::builtin() ({} people, {} departments); claimants: the {} active people below the root", seed.users.len(), seed.departments.len(), people.len()),
        "config": "examples/dingbridge.toml; URLs pointed at the simulators, store replaced, flow `approvals` disabled, org reconcile and expense backfill moved to 1 January",
        "workers": cfg.workers.count,
        "poll_interval_ms": cfg.workers.poll_interval_ms,
        "hub_workflow_pacer": workflow_rule.map(|r| format!("{:.2}/s, burst {}", r.per_second, r.burst)),
        "binary": bin.display().to_string(),
        "simulators": "sandbox::dingtalk (standard edition) and sandbox::kingdee (seed_org false, filled by org sync), in the benchmark process, HTTP on loopback, each request timed by a middleware",
        "poll_ms": POLL.as_millis(),
    });
    let report = json!({
        "scenario": SCENARIO,
        "timestamp": timestamp(),
        "machine": Machine::detect(),
        "params": params,
        "definitions": definitions(),
        "approvals": n,
        "wall_seconds": round(wall.elapsed().as_secs_f64(), 3),
        "phases_seconds": {
            "org_sync": round(org_sync_s, 3),
            "create": round(served.create_s, 3),
            "settle": round(served.settle_s, 3),
            "approve": round(served.approve_s, 3),
            "busy_window": round(busy_s, 3),
            "first_finish_to_last_comment": round(served.to_comments_s, 3),
        },
        "settled_before_approving": served.settled,
        "finish_event_to_admin_return_ms": {"p50": lag.p50, "max": lag.max, "n": return_lag.len()},
        "latency_ms": latency_ms,
        "throughput": {
            "bills_audited_per_s": per_second(latencies.len(), busy_s),
            "busy_window_s": round(busy_s, 3),
            "approvals_finished_per_s": per_second(n, served.approve_s),
        },
        "time_shares": analysis.time_shares,
        "steps": analysis.steps,
        "attribution": analysis.attribution,
        "dingtalk_calls_by_api": calls_by_api,
        "workflow_quota": workflow,
        "throttled_90018": throttled,
        "throttled_90018_while_creating": throttled_create,
        "dingtalk_errors_all_phases": all_errors,
        "other_dingtalk_errors": other_errors,
        "kingdee_calls_by_method": kd_by_method,
        "kingdee_calls": kd_by_method.values().sum::<u64>(),
        "peak_rss_mb": mib(served.peak_rss_kib),
        "serve_exit": served.serve_exit,
        "verified": verified,
        "org_sync_summary": org_summary,
    });
    let summary = summary(&report);
    Ok(Outcome {
        scenario: SCENARIO,
        report,
        summary,
    })
}

#[allow(clippy::too_many_arguments)]
async fn serve_phase(
    args: &Args,
    sims: &Sims,
    cfg: &Config,
    bin: &Path,
    config: &Path,
    work: &Path,
    store_url: &str,
    people: &[User],
) -> anyhow::Result<Served> {
    let mut serve = ServeChild::start(&sims.dt, bin, config, work).await?;
    let result = async {
        let store = open_store(store_url).await?;

        // Start the claims.
        let n = args.approvals;
        let client = bench_client(cfg)?;
        client
            .access_token()
            .await
            .context("fetching the benchmark's token")?;
        let dt_create_before = dingtalk_counters(sims).await?;
        eprintln!("{SCENARIO}: starting {n} 费用报销 approvals through the DingTalk API …");
        let t = Instant::now();
        let ids: Vec<String> = futures::stream::iter(0..n)
            .map(|i| {
                let c = client.clone();
                let who = people[i % people.len()].clone();
                async move { start_expense(&c, &who, i).await }
            })
            .buffered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
        let create_s = t.elapsed().as_secs_f64();
        eprintln!(
            "{SCENARIO}: {n} started in {create_s:.1} s ({:.1}/s); waiting for the hub to take their events …",
            n as f64 / create_s.max(1e-9)
        );
        let t = Instant::now();
        let settled = wait_idle(store.as_ref(), Duration::from_secs(120)).await?;
        let settle_s = t.elapsed().as_secs_f64();
        if !settled {
            eprintln!("{SCENARIO}: the hub's queue was not empty after 120 s; approving anyway");
        }

        // Approve them and watch the bills.
        let dt_before = dingtalk_counters(sims).await?;
        let kd_before = kingdee_counters(sims).await?;
        let comments_before = count_of(&dt_before, "calls", COMMENT_API);
        let watcher = watch_bills(sims.kd.clone(), &ids);
        let admin = AdminClient::new(&sims.dt_origin, "dingtalk");
        eprintln!(
            "{SCENARIO}: approving {n} {} …",
            if args.burst {
                "at once".to_owned()
            } else {
                format!("at {}/s", args.rate)
            }
        );
        let approve_started = Instant::now();
        let mut approver = tokio::spawn(approve_all(admin, ids.clone(), args.rate, args.burst));
        let mut finished: Option<Vec<Finished>> = None;
        let mut approve_s = 0.0;
        let mut last_progress = (0usize, 0u64);
        let mut last_change = Instant::now();
        let mut next_print = Instant::now() + Duration::from_secs(15);
        let comments_done_at = loop {
            if finished.is_none() {
                tokio::select! {
                    joined = &mut approver => {
                        finished = Some(joined.context("the approver failed")??);
                        approve_s = approve_started.elapsed().as_secs_f64();
                    }
                    () = tokio::time::sleep(TICK) => {}
                }
            } else {
                tokio::time::sleep(TICK).await;
            }
            let audited = watcher.audited.load(Ordering::Relaxed);
            let comments = sims
                .dt
                .counters()
                .calls
                .get(COMMENT_API)
                .copied()
                .unwrap_or(0)
                .saturating_sub(comments_before);
            if (audited, comments) != last_progress {
                last_progress = (audited, comments);
                last_change = Instant::now();
            }
            if Instant::now() >= next_print {
                next_print += Duration::from_secs(15);
                eprintln!(
                    "{SCENARIO}: {:.0} s: {audited}/{n} bills audited, {comments} comments",
                    approve_started.elapsed().as_secs_f64()
                );
            }
            if finished.is_some() && audited >= n && comments >= n as u64 {
                break Instant::now();
            }
            if let Some(status) = serve.exited()? {
                bail!(
                    "`dingbridge serve` ended during the run ({status})\n--- {} (tail) ---\n{}",
                    serve.log.display(),
                    log_tail(&serve.log, 30)
                );
            }
            ensure!(
                last_change.elapsed() < STALL,
                "no progress for {} s: {audited}/{n} bills audited, {comments} comments\n--- {} (tail) ---\n{}",
                STALL.as_secs(),
                serve.log.display(),
                log_tail(&serve.log, 30)
            );
        };
        let _ = watcher.stop.send(());
        let audited = watcher.task.await.context("the bill watcher failed")?;
        let finished = finished.unwrap_or_default();
        let first_finish = finished.iter().map(|f| f.at).min();
        let to_comments_s = first_finish.map_or(0.0, |a| {
            comments_done_at.saturating_duration_since(a).as_secs_f64()
        });
        // The last acks commit after their calls; give them a moment before the stop.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dt_after = dingtalk_counters(sims).await?;
        let kd_after = kingdee_counters(sims).await?;
        Ok(Served {
            ids,
            create_s,
            settle_s,
            settled,
            finished,
            audited,
            approve_s,
            to_comments_s,
            dt_before,
            dt_after,
            kd_before,
            kd_after,
            dt_create_before,
            peak_rss_kib: 0,
            serve_exit: String::new(),
        })
    }
    .await;
    // Stop the node, whatever happened above.
    let (serve_exit, peak_rss_kib) = serve.stop().await;
    let mut served = result?;
    served.peak_rss_kib = peak_rss_kib;
    served.serve_exit = serve_exit;
    Ok(served)
}

// ── Where the time went ────────────────────────────────────────────────────────────────────

/// The finish event of each instance in the simulator's log: (event id, emitted at, ms).
fn finish_events(events: &Value) -> HashMap<String, (String, i64)> {
    let mut out = HashMap::new();
    for e in events
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = &e["payload"];
        if e["event_type"] == "bpms_instance_change"
            && p["type"] == "finish"
            && p["processCode"] == EXPENSE
            && let (Some(id), Some(eid), Some(t)) = (
                p["processInstanceId"].as_str(),
                e["event_id"].as_str(),
                e["event_time"].as_i64(),
            )
        {
            out.insert(id.to_owned(), (eid.to_owned(), t));
        }
    }
    out
}

/// One step's successful attempt: its transfer row and its job.
#[derive(Debug, Clone)]
struct StepRow {
    start: i64,
    dur: i64,
    /// The job's ack (`finished_at`).
    acked: i64,
    attempts: i32,
    bill: Option<String>,
}

/// An instance's path through the hub.
#[derive(Debug, Clone)]
struct PathOf {
    instance: String,
    /// The finish event's emission (simulator), ms.
    emitted: Option<i64>,
    /// Stored in the inbox.
    received: Option<i64>,
    /// The `dingtalk.event` job that routed it.
    inbox: Option<StepRow>,
    steps: BTreeMap<&'static str, StepRow>,
}

async fn step_row(store: &dyn Store, t: &Transfer) -> anyhow::Result<Option<(Job, StepRow)>> {
    let Some(job_id) = t.entry.job_id else {
        return Ok(None);
    };
    let Some(job) = store.get_job(job_id).await? else {
        return Ok(None);
    };
    let row = StepRow {
        start: t.entry.started_at,
        dur: t.entry.duration_ms,
        acked: job
            .finished_at
            .unwrap_or(t.entry.started_at + t.entry.duration_ms),
        attempts: job.attempts,
        bill: t.entry.target_key.clone(),
    };
    Ok(Some((job, row)))
}

async fn read_paths(
    store: &dyn Store,
    ids: &[String],
    finish: &HashMap<String, (String, i64)>,
) -> anyhow::Result<Vec<PathOf>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut path = PathOf {
            instance: id.clone(),
            emitted: None,
            received: None,
            inbox: None,
            steps: BTreeMap::new(),
        };
        if let Some((eid, emitted)) = finish.get(id) {
            path.emitted = Some(*emitted);
            path.received = store
                .get_event("dingtalk", eid)
                .await?
                .map(|e| e.received_at);
            let rows = store
                .list_transfers(&TransferFilter {
                    flow: Some("inbox".into()),
                    source_key: Some(format!("dingtalk:{eid}")),
                    limit: 10,
                })
                .await?;
            if let Some(t) = rows.iter().max_by_key(|t| t.id) {
                path.inbox = step_row(store, t).await?.map(|(_, r)| r);
            }
        }
        let mut rows = store
            .list_transfers(&TransferFilter {
                flow: Some(FLOW.into()),
                source_key: Some(format!("instance:{id}")),
                limit: 100,
            })
            .await?;
        rows.sort_by_key(|t| t.id);
        for t in &rows {
            if let Some((job, row)) = step_row(store, t).await? {
                let step = job
                    .payload
                    .get("step")
                    .and_then(Value::as_str)
                    .unwrap_or("save");
                if let Some(s) = STEPS.iter().find(|s| **s == step) {
                    // The latest row of a step wins (a replayed step logs again).
                    path.steps.insert(s, row);
                }
            }
        }
        out.push(path);
    }
    Ok(out)
}

/// Milliseconds by category (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
struct Parts {
    event_delivery: f64,
    queue_wait: f64,
    hub: f64,
    dingtalk: f64,
    kingdee: f64,
}

impl Parts {
    fn add(&mut self, o: &Parts) {
        self.event_delivery += o.event_delivery;
        self.queue_wait += o.queue_wait;
        self.hub += o.hub;
        self.dingtalk += o.dingtalk;
        self.kingdee += o.kingdee;
    }
    fn total(&self) -> f64 {
        self.event_delivery + self.queue_wait + self.hub + self.dingtalk + self.kingdee
    }
    fn json(&self, n: usize) -> Value {
        let total = self.total();
        let pct = |x: f64| {
            if total > 0.0 {
                round(x * 100.0 / total, 1)
            } else {
                0.0
            }
        };
        let mean = |x: f64| round(x / n.max(1) as f64, 2);
        json!({
            "instances": n,
            "total_ms": round(total, 1),
            "mean_ms_per_instance": {
                "event_delivery": mean(self.event_delivery),
                "queue_wait": mean(self.queue_wait),
                "hub": mean(self.hub),
                "dingtalk": mean(self.dingtalk),
                "kingdee": mean(self.kingdee),
                "total": mean(total),
            },
            "percent": {
                "event_delivery": pct(self.event_delivery),
                "queue_wait": pct(self.queue_wait),
                "hub": pct(self.hub),
                "dingtalk": pct(self.dingtalk),
                "kingdee": pct(self.kingdee),
            },
        })
    }
}

/// One step attempt split by the platform it waited on.
#[derive(Debug, Default, Clone, Copy)]
struct Split {
    dingtalk: f64,
    kingdee: f64,
    hub: f64,
    dingtalk_server: f64,
    kingdee_server: f64,
    calls: usize,
}

/// Walks the step's requests in order: from the step's start (or the previous answer) to each
/// answer counts for that request's platform; the rest of the step is the hub's.
fn split_step(row: &StepRow, calls: &[&Call]) -> Split {
    let start_us = row.start * 1000;
    // started_at and duration_ms are truncated to ms: the true end is before +2 ms.
    let end_us = (row.start + row.dur + 2) * 1000;
    let mut inside: Vec<&&Call> = calls
        .iter()
        .filter(|c| c.start_us >= start_us && c.end_us <= end_us)
        .collect();
    inside.sort_by_key(|c| c.start_us);
    let mut s = Split::default();
    let mut cursor = start_us;
    for c in inside {
        let waited = (c.end_us.min(end_us) - cursor).max(0) as f64 / 1000.0;
        let served = (c.end_us - c.start_us).max(0) as f64 / 1000.0;
        match c.platform {
            Platform::DingTalk => {
                s.dingtalk += waited;
                s.dingtalk_server += served;
            }
            Platform::Kingdee => {
                s.kingdee += waited;
                s.kingdee_server += served;
            }
        }
        cursor = cursor.max(c.end_us);
        s.calls += 1;
    }
    let dur = row.dur as f64;
    // Truncation can make the platforms' share exceed the logged duration by a little.
    let platform = s.dingtalk + s.kingdee;
    if platform > dur && platform > 0.0 {
        let f = dur / platform;
        s.dingtalk *= f;
        s.kingdee *= f;
    }
    s.hub = (dur - s.dingtalk - s.kingdee).max(0.0);
    s
}

#[derive(Debug, Default)]
struct StepStats {
    durations: Vec<Duration>,
    queue_waits: Vec<Duration>,
    split: Split,
    with_calls: usize,
}

struct Analysis {
    time_shares: Value,
    steps: Value,
    attribution: Value,
}

fn ms_f(x: i64) -> f64 {
    x.max(0) as f64
}

fn analyse(paths: &[PathOf], calls: &[Call]) -> Analysis {
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in calls.iter().enumerate() {
        for k in &c.keys {
            index.entry(k.as_str()).or_default().push(i);
        }
    }
    let calls_for = |key: Option<&str>| -> Vec<&Call> {
        key.and_then(|k| index.get(k))
            .into_iter()
            .flatten()
            .map(|i| &calls[*i])
            .collect()
    };

    let mut to_audited = Parts::default();
    let mut to_done = Parts::default();
    let mut complete = 0usize;
    let mut incomplete = 0usize;
    let mut stats: BTreeMap<&'static str, StepStats> = BTreeMap::new();
    let mut inbox_stats = StepStats::default();
    let mut delivery = Vec::new();
    for p in paths {
        let (Some(emitted), Some(received), Some(inbox)) = (p.emitted, p.received, &p.inbox) else {
            incomplete += 1;
            continue;
        };
        if STEPS.iter().any(|s| !p.steps.contains_key(s)) {
            incomplete += 1;
            continue;
        }
        complete += 1;
        let mut parts = Parts {
            event_delivery: ms_f(received - emitted),
            queue_wait: ms_f(inbox.start - received),
            hub: ms_f(inbox.dur) + ms_f(inbox.acked - inbox.start - inbox.dur),
            ..Parts::default()
        };
        delivery.push(Duration::from_millis(
            u64::try_from(received - emitted).unwrap_or(0),
        ));
        inbox_stats
            .durations
            .push(Duration::from_millis(u64::try_from(inbox.dur).unwrap_or(0)));
        inbox_stats.queue_waits.push(Duration::from_millis(
            u64::try_from(inbox.start - received).unwrap_or(0),
        ));
        let mut ready = inbox.acked;
        for step in STEPS {
            let Some(row) = p.steps.get(step) else {
                continue;
            };
            let (ops, by_instance) = step_requests(step);
            let key = if by_instance {
                Some(p.instance.as_str())
            } else {
                row.bill.as_deref()
            };
            let mine: Vec<&Call> = calls_for(key)
                .into_iter()
                .filter(|c| ops.contains(&c.op.as_str()))
                .collect();
            let split = split_step(row, &mine);
            let wait = ms_f(row.start - ready);
            parts.queue_wait += wait;
            parts.dingtalk += split.dingtalk;
            parts.kingdee += split.kingdee;
            parts.hub += split.hub;
            let st = stats.entry(step).or_default();
            st.durations
                .push(Duration::from_millis(u64::try_from(row.dur).unwrap_or(0)));
            st.queue_waits.push(Duration::from_millis(
                u64::try_from(wait as i64).unwrap_or(0),
            ));
            st.split.dingtalk += split.dingtalk;
            st.split.kingdee += split.kingdee;
            st.split.hub += split.hub;
            st.split.dingtalk_server += split.dingtalk_server;
            st.split.kingdee_server += split.kingdee_server;
            st.split.calls += split.calls;
            if split.calls > 0 {
                st.with_calls += 1;
            }
            if step == "audit" {
                // The latency's window ends when the audit call has answered.
                to_audited.add(&parts);
            }
            parts.hub += ms_f(row.acked - row.start - row.dur);
            ready = row.acked;
        }
        to_done.add(&parts);
    }

    let step_json = |st: &mut StepStats| {
        let n = st.durations.len();
        let d = Percentiles::of(&mut st.durations);
        let q = Percentiles::of(&mut st.queue_waits);
        let mean = |x: f64| round(x / n.max(1) as f64, 2);
        json!({
            "n": n,
            "duration_ms": {"p50": d.p50, "p95": d.p95, "p99": d.p99, "max": d.max, "mean": d.mean},
            "queue_wait_ms": {"p50": q.p50, "p95": q.p95, "p99": q.p99, "max": q.max, "mean": q.mean},
            "mean_ms": {
                "dingtalk": mean(st.split.dingtalk),
                "kingdee": mean(st.split.kingdee),
                "hub": mean(st.split.hub),
                "dingtalk_server": mean(st.split.dingtalk_server),
                "kingdee_server": mean(st.split.kingdee_server),
            },
            "requests_matched": st.split.calls,
            "attempts_with_requests": st.with_calls,
        })
    };
    let mut steps = serde_json::Map::new();
    let d = Percentiles::of(&mut delivery);
    steps.insert(
        "event_delivery".into(),
        json!({"n": delivery.len(), "ms": {"p50": d.p50, "p95": d.p95, "p99": d.p99, "max": d.max, "mean": d.mean}}),
    );
    steps.insert("inbox_routing".into(), step_json(&mut inbox_stats));
    for step in STEPS {
        if let Some(st) = stats.get_mut(step) {
            steps.insert(step.into(), step_json(st));
        }
    }
    // What the workers' time went to (queue wait and event delivery left out): in a burst the
    // queue waits because every worker is busy with this.
    let worker = {
        let busy = to_done.dingtalk + to_done.kingdee + to_done.hub;
        let pct = |x: f64| {
            if busy > 0.0 {
                round(x * 100.0 / busy, 1)
            } else {
                0.0
            }
        };
        json!({
            "busy_ms": round(busy, 1),
            "dingtalk": pct(to_done.dingtalk),
            "kingdee": pct(to_done.kingdee),
            "hub": pct(to_done.hub),
        })
    };
    let time_shares = json!({
        "to_audited": to_audited.json(complete),
        "to_done": to_done.json(complete),
        "worker_time_percent": worker,
    });
    let attributed: usize = stats.values().map(|s| s.split.calls).sum();
    let attribution = json!({
        "instances_with_complete_path": complete,
        "instances_without_complete_path": incomplete,
        "simulator_requests_recorded": calls.len(),
        "requests_matched_to_steps": attributed,
    });
    Analysis {
        time_shares,
        steps: Value::Object(steps),
        attribution,
    }
}

fn definitions() -> Value {
    json!({
        "latency_ms": "per instance: from the return of the admin approve call (the finish event is emitted inside it) to the first 20 ms poll of the Kingdee simulator (in-process) showing the instance's ER_ExpReimbursement bill in DocumentStatus C; path: simulator → Stream → `dingbridge serve` inbox → dingtalk.event job → save (approval get, identity lookup, mapping, bill query, Save) → submit → audit. Nearest-rank percentiles",
        "throughput.bills_audited_per_s": "bills audited ÷ busy_window_s, the span from the first approval's finish to the last bill seen audited",
        "phases_seconds": "org_sync: the child `sync run org_to_kingdee`; create: the approval_create calls (paced by the configuration's limiter); settle: until the hub's queue was empty after them; approve: the admin approve calls; first_finish_to_last_comment: first finish → the simulator counted every writeback comment",
        "finish_event_to_admin_return_ms": "the admin approve call's return (this process, system clock) − the finish event's emission in the simulator's log: how well the call's return stands for the finish",
        "wall_seconds": "the whole scenario: simulators, org sync, serve, create, approve, drain, analysis",
        "time_shares": "per instance with a complete path, the time from the finish event's emission (simulator event log) to the end of the audit step (to_audited) or to the writeback job's ack (to_done), split without overlap into: event_delivery (emission → inbox row), queue_wait (a job ready — the inbox commit or its predecessor's ack — → its step started: commit, poll interval, claim, failed attempts and back-off), dingtalk / kingdee (inside a step, the step's start or the previous answer → the answer of a request to that platform, including the hub's pacer wait and the round trip), hub (the rest of each step, the inbox routing, a step's end → its ack). Summed over instances; percent of the sum",
        "time_shares.worker_time_percent": "the steps' own time (to_done without queue_wait and event_delivery: what the workers were doing) by dingtalk / kingdee / hub",
        "steps": "per step (transfer_log rows of the flow; the last row per step and instance): duration_ms (the transfer's duration_ms), queue_wait_ms (as above), mean_ms split as in time_shares, and *_server the simulators' own time serving the matched requests",
        "attribution": "requests are matched to a step attempt by their operation (save: approval get, ExecuteBillQuery, Save; submit: Submit; audit: Audit; their status queries; writeback: comment), by the instance id (save, writeback) or bill number (submit, audit) in their query or body, and by lying inside the attempt's window [started_at, started_at + duration_ms + 2 ms]; token and login requests are not matched, their time counts for the next matched request",
        "workflow_quota": "the approval get (GET /v1.0/workflow/processInstances) and comment calls during the approve phase, per second over window_s (first finish → last comment), ÷ 20 QPS per API; the hub paces each API in a group of its own (`workflow:<api>`) under the `workflow` rule, which is given",
        "throttled_90018": "90018 answers counted by the DingTalk simulator over the whole run (the benchmark's own approval_create calls included; throttled_90018_while_creating is theirs)",
        "peak_rss_mb": "VmHWM of the `dingbridge serve` child (peak resident set), read from /proc/<pid>/status; MiB",
        "verified": "every instance has exactly one bill carrying its id, audited (C); no other bill; dead letters in the store (must be 0); step jobs that needed more than one attempt",
    })
}

fn summary(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut out = format!(
        "approvals: {} 费用报销 → ER_ExpReimbursement through `dingbridge serve` ({}, {} store)\n",
        r["approvals"].as_u64().unwrap_or(0),
        match r["params"]["mode"].as_str() {
            Some("burst") => "approved in a burst".to_owned(),
            _ => format!("approved at {}/s", f(&r["params"]["rate_per_s"])),
        },
        r["params"]["backend"].as_str().unwrap_or("?"),
    );
    let row = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<30} {v}\n"));
    let ph = &r["phases_seconds"];
    row(
        &mut out,
        "wall time",
        format!(
            "{:.1} s (org sync {:.1} s, create {:.1} s, approve {:.1} s, first finish → last comment {:.1} s)",
            f(&r["wall_seconds"]),
            f(&ph["org_sync"]),
            f(&ph["create"]),
            f(&ph["approve"]),
            f(&ph["first_finish_to_last_comment"])
        ),
    );
    let l = &r["latency_ms"];
    row(
        &mut out,
        "finish → audited bill",
        format!(
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n = {})",
            f(&l["p50"]),
            f(&l["p95"]),
            f(&l["p99"]),
            f(&l["max"]),
            l["n"].as_u64().unwrap_or(0)
        ),
    );
    row(
        &mut out,
        "throughput",
        format!(
            "{:.2} bills audited/s over {:.1} s",
            f(&r["throughput"]["bills_audited_per_s"]),
            f(&r["throughput"]["busy_window_s"])
        ),
    );
    for (label, key) in [
        ("time to audited", "to_audited"),
        ("time to done (writeback)", "to_done"),
    ] {
        let p = &r["time_shares"][key]["percent"];
        row(
            &mut out,
            label,
            format!(
                "DingTalk {:.1} %, Kingdee {:.1} %, event delivery {:.1} %, queue wait {:.1} %, hub {:.1} %",
                f(&p["dingtalk"]),
                f(&p["kingdee"]),
                f(&p["event_delivery"]),
                f(&p["queue_wait"]),
                f(&p["hub"])
            ),
        );
    }
    let w = &r["time_shares"]["worker_time_percent"];
    row(
        &mut out,
        "workers' step time",
        format!(
            "DingTalk {:.1} %, Kingdee {:.1} %, hub {:.1} %",
            f(&w["dingtalk"]),
            f(&w["kingdee"]),
            f(&w["hub"])
        ),
    );
    if let Some(steps) = r["steps"].as_object() {
        for step in STEPS {
            if let Some(s) = steps.get(step) {
                row(
                    &mut out,
                    &format!("step {step}"),
                    format!(
                        "{:.1} ms mean (DingTalk {:.1}, Kingdee {:.1}, hub {:.1}), queue wait {:.0} ms mean",
                        f(&s["duration_ms"]["mean"]),
                        f(&s["mean_ms"]["dingtalk"]),
                        f(&s["mean_ms"]["kingdee"]),
                        f(&s["mean_ms"]["hub"]),
                        f(&s["queue_wait_ms"]["mean"])
                    ),
                );
            }
        }
    }
    let w = &r["workflow_quota"];
    row(
        &mut out,
        "DingTalk workflow APIs",
        format!(
            "get {:.2}/s, comment {:.2}/s (20 QPS each); hub pacer `{}:<api>` {:.2}/s per API",
            f(&w["approval_get_per_s"]),
            f(&w["comment_per_s"]),
            w["hub_pacer_group"].as_str().unwrap_or("?"),
            f(&w["hub_pacer_rule_per_s"])
        ),
    );
    row(
        &mut out,
        "90018 answers",
        format!(
            "{} (of which {} while creating)",
            r["throttled_90018"].as_u64().unwrap_or(0),
            r["throttled_90018_while_creating"].as_u64().unwrap_or(0)
        ),
    );
    row(
        &mut out,
        "Kingdee calls",
        format!("{}", r["kingdee_calls"].as_u64().unwrap_or(0)),
    );
    row(
        &mut out,
        "peak RSS of the hub",
        format!("{:.1} MiB", f(&r["peak_rss_mb"])),
    );
    let v = &r["verified"];
    row(
        &mut out,
        "verified",
        format!(
            "{} bills, 0 missing, 0 doubled, all audited, {} dead letters, {} step jobs retried",
            v["bills_in_kingdee"].as_u64().unwrap_or(0),
            v["dead_letters"].as_u64().unwrap_or(0),
            v["step_jobs_retried"].as_u64().unwrap_or(0)
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_instance_ids_and_bill_numbers() {
        let mut keys = Vec::new();
        collect_keys(
            br#"{"FilterString":"F_DDInstanceId = '0123456789abcdef0123456789abcdef'","Numbers":["FYBX000012"],"x":"FYBXA1","y":"0123456789ABCDEF0123456789ABCDEF"}"#,
            &mut keys,
        );
        assert_eq!(keys, ["0123456789abcdef0123456789abcdef", "FYBX000012"]);
        let mut keys = Vec::new();
        collect_keys(
            b"processInstanceId=fedcba9876543210fedcba9876543210",
            &mut keys,
        );
        assert_eq!(keys, ["fedcba9876543210fedcba9876543210"]);
    }

    fn call(platform: Platform, start_ms: f64, end_ms: f64) -> Call {
        Call {
            platform,
            op: String::new(),
            start_us: (start_ms * 1000.0) as i64,
            end_us: (end_ms * 1000.0) as i64,
            keys: Vec::new(),
        }
    }

    #[test]
    fn a_step_is_split_by_the_platform_it_waits_on() {
        let row = StepRow {
            start: 1_000,
            dur: 100,
            acked: 1_105,
            attempts: 1,
            bill: None,
        };
        let dt = call(Platform::DingTalk, 1_030.0, 1_040.0);
        let q = call(Platform::Kingdee, 1_050.0, 1_060.0);
        let save = call(Platform::Kingdee, 1_062.0, 1_090.0);
        let outside = call(Platform::Kingdee, 1_200.0, 1_210.0);
        let s = split_step(&row, &[&save, &outside, &q, &dt]);
        assert_eq!(s.calls, 3);
        assert!((s.dingtalk - 40.0).abs() < 1e-9, "{s:?}");
        assert!((s.kingdee - 50.0).abs() < 1e-9, "{s:?}");
        assert!((s.hub - 10.0).abs() < 1e-9, "{s:?}");
        assert!((s.kingdee_server - 38.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn operations_name_the_api() {
        assert_eq!(
            operation(
                "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc"
            ),
            "Save"
        );
        assert_eq!(operation(APPROVAL_API), "processInstances");
        assert_eq!(operation(COMMENT_API), "comments");
    }

    #[test]
    fn the_example_config_has_what_the_benchmark_rewrites() {
        for s in [
            "url = \"sqlite://dingbridge.sqlite\"",
            "http://127.0.0.1:8089",
            "http://127.0.0.1:8090",
            "schedule = \"0 */10 * * * *\"",
            "schedule = \"30 */5 * * * *\"",
            "[flows.approvals]\n",
            "[flows.expense_to_kingdee]",
            "edition = \"standard\"",
            "stream = true",
            EXPENSE,
        ] {
            assert!(EXAMPLE.contains(s), "{s}");
        }
    }

    #[test]
    fn forms_have_two_rows_and_their_total() {
        let form = expense_form(0);
        assert_eq!(form.len(), 4);
        let total = form
            .iter()
            .find(|f| f.name == "报销总金额（元）")
            .map(|f| f.value.clone());
        assert_eq!(
            total,
            Some(dingtalk::approvals::FieldValue::Text("1640.5".into()))
        );
    }
}
