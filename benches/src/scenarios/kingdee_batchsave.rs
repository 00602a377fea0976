//! `kingdee-batchsave`: N employees saved to `BD_Empinfo` through `KingdeeClient::batch_save`,
//! once per batch size, against the Kingdee sandbox served in-process on loopback.
//!
//! For each batch size, on a fresh sandbox (no seeded organisation; the departments the
//! employees reference are created first through BatchSave and not timed):
//! 1. the N prebuilt employee models (Chinese names, a department reference each) are sent in
//!    consecutive BatchSave calls of `size` rows, one call at a time, through the Kingdee limiter
//!    preset and signature-header auth; every call's latency is recorded;
//! 2. every call must report all its rows saved, or the run fails;
//! 3. the saved employees are counted with ExecuteBillQuery (streamed in pages) and compared
//!    with N, or the run fails.
//!
//! `chosen_default` is the batch size with the best rows/s, preferring the smaller one when
//! another is within 5% of the best.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use futures::TryStreamExt;
use kingdee::{AuthMode, FormId, KingdeeClient, KingdeeConfig, Model, QueryRequest, SaveOptions};
use limits::{ConnectionLimiter, ConnectionLimits};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig, serve};
use sandbox::seed::Seed;
use serde::Serialize;
use serde_json::json;

use crate::report::{Machine, Outcome, Percentiles, per_second, round, timestamp};

const EMP: &str = "BD_Empinfo";
const DEPT: &str = "BD_Department";
/// Staff numbers are `BE` + 7 digits, so the verification can filter on the prefix.
const STAFF_PREFIX: &str = "BE";
/// A size within this fraction of the best rows/s counts as a tie; the smaller size wins.
const TIE: f64 = 0.05;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "欧阳", "司马", "上官", "诸葛",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "子涵", "思远",
];
const POSTS: &[&str] = &[
    "工程师",
    "高级工程师",
    "产品经理",
    "销售代表",
    "会计",
    "人事专员",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Employees saved per batch size.
    #[arg(long, default_value_t = 100_000, value_parser = at_least_one)]
    rows: usize,
    /// Rows per BatchSave call; a list runs once per value.
    #[arg(long, value_delimiter = ',', default_value = "50,200,500,1000", value_parser = at_least_one)]
    sizes: Vec<usize>,
    /// Departments created first and referenced by the employees (round robin).
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    departments: usize,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a count of at least 1")),
    }
}

#[derive(Debug, Serialize)]
struct Params {
    rows: usize,
    sizes: Vec<usize>,
    departments: usize,
    form: &'static str,
    auth: &'static str,
    pacer: &'static str,
    calls_in_flight: usize,
    batch_count: Option<u32>,
    transport: &'static str,
    sandbox: &'static str,
    /// Bytes of one employee's `Model` JSON (the first one).
    model_bytes: usize,
}

#[derive(Debug, Serialize)]
struct Verified {
    /// Employees counted by ExecuteBillQuery (`FStaffNumber like 'BE%'`).
    counted: usize,
    /// ExecuteBillQuery calls the count took.
    query_calls: u64,
    query_s: f64,
}

#[derive(Debug, Serialize)]
struct SizeResult {
    size: usize,
    rows: usize,
    calls: usize,
    elapsed_s: f64,
    rows_per_s: f64,
    calls_per_s: f64,
    call_latency_ms: Percentiles,
    /// Per-row cost inside a call: p50 call latency / size.
    p50_ms_per_row: f64,
    verified: Verified,
}

fn definitions() -> serde_json::Value {
    json!({
        "rows_per_s": "rows / wall time from the first BatchSave call until the last answered (one call in flight at a time)",
        "calls": "BatchSave calls: ceil(rows / size)",
        "call_latency_ms": "duration of each KingdeeClient::batch_save call (pacer, HTTP on loopback, the sandbox's work, parsing), nearest-rank percentiles",
        "p50_ms_per_row": "call_latency_ms.p50 / size",
        "verified.counted": "employees found by ExecuteBillQuery after the run (streamed with query_rows in pages of 2000); must equal rows",
        "chosen_default": "the size with the best rows_per_s; a smaller size within 5% of the best is preferred",
        "peak_rss_mb": "peak resident memory of the benchmark process (client and sandbox together), from /proc/self/status VmHWM"
    })
}

/// A sandbox on `127.0.0.1:0`, stopped when dropped.
struct Served {
    sandbox: KingdeeSandbox,
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_sandbox() -> anyhow::Result<Served> {
    let cfg = KingdeeSandboxConfig {
        seed_org: false,
        ..KingdeeSandboxConfig::default()
    };
    let sandbox = KingdeeSandbox::new(cfg, &Seed::builtin());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = sandbox.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, served).await {
            eprintln!("sandbox stopped: {e}");
        }
    });
    Ok(Served {
        sandbox,
        base_url: format!("http://{addr}/k3cloud/"),
        task,
    })
}

fn client_for(served: &Served) -> anyhow::Result<KingdeeClient> {
    let c = served.sandbox.config();
    let cfg = KingdeeConfig::new(
        &served.base_url,
        c.acct_id.clone(),
        c.user_name.clone(),
        c.app_id.clone(),
        c.app_secret.clone().into(),
    )?
    .with_auth(AuthMode::SignatureHeaders)
    .with_org_num("100");
    let limiter = ConnectionLimiter::new("kingdee-bench", ConnectionLimits::kingdee())?;
    Ok(KingdeeClient::builder(cfg)
        .pacer(Arc::new(limiter))
        .build()?)
}

fn dept_number(i: usize) -> String {
    format!("BMB{i:04}")
}

fn departments(n: usize) -> Vec<Model> {
    (0..n)
        .map(|i| {
            Model::new()
                .reference("FCreateOrgId", "100")
                .reference("FUseOrgId", "100")
                .field("FNumber", dept_number(i))
                .field("FName", format!("基准测试第{}事业部", i + 1))
        })
        .collect()
}

fn employees(n: usize, depts: usize) -> Vec<Model> {
    (0..n)
        .map(|i| {
            let name = format!(
                "{}{}",
                SURNAMES[i % SURNAMES.len()],
                GIVEN[(i / SURNAMES.len()) % GIVEN.len()]
            );
            let number = format!("{STAFF_PREFIX}{i:07}");
            Model::new()
                .reference("FCreateOrgId", "100")
                .reference("FUseOrgId", "100")
                .field("FName", name)
                .field("FStaffNumber", number.clone())
                .field("FNumber", number)
                .field("FMobile", format!("139{:08}", i))
                .field("FEmail", format!("be{i:07}@example.com"))
                .reference("FDeptId", dept_number(i % depts))
                .field("FPostName", POSTS[i % POSTS.len()])
                .field(
                    "FJoinDate",
                    format!("20{:02}-{:02}-01", 10 + i % 15, 1 + i % 12),
                )
        })
        .collect()
}

async fn run_size(size: usize, models: &[Model], depts: &[Model]) -> anyhow::Result<SizeResult> {
    let served = start_sandbox().await?;
    let client = client_for(&served)?;
    let opts = SaveOptions::default();
    let dept_report = client
        .batch_save(&FormId::new(DEPT), depts, None, &opts)
        .await
        .context("creating the departments")?;
    ensure!(
        dept_report.all_succeeded(),
        "departments not created: {:?}",
        dept_report.failed
    );

    let form = FormId::new(EMP);
    let mut latencies = Vec::with_capacity(models.len().div_ceil(size));
    let started = Instant::now();
    for (n, chunk) in models.chunks(size).enumerate() {
        let t = Instant::now();
        let report = client
            .batch_save(&form, chunk, None, &opts)
            .await
            .with_context(|| format!("BatchSave call {n} (size {size})"))?;
        latencies.push(t.elapsed());
        if !report.all_succeeded() || report.succeeded.len() != chunk.len() {
            bail!(
                "BatchSave call {n} (size {size}): {} of {} rows saved; failures: {:?}",
                report.succeeded.len(),
                chunk.len(),
                report.failed
            );
        }
    }
    let elapsed = started.elapsed();

    let verified = verify(&client, &served.sandbox).await?;
    ensure!(
        verified.counted == models.len(),
        "size {size}: ExecuteBillQuery counts {} employees, {} were saved",
        verified.counted,
        models.len()
    );
    let calls = latencies.len();
    let call_latency_ms = Percentiles::of(&mut latencies);
    let secs = elapsed.as_secs_f64();
    Ok(SizeResult {
        size,
        rows: models.len(),
        calls,
        elapsed_s: round(secs, 3),
        rows_per_s: per_second(models.len(), secs),
        calls_per_s: per_second(calls, secs),
        p50_ms_per_row: round(call_latency_ms.p50 / size as f64, 4),
        call_latency_ms,
        verified,
    })
}

/// Counts the saved employees through ExecuteBillQuery, page by page.
async fn verify(client: &KingdeeClient, sandbox: &KingdeeSandbox) -> anyhow::Result<Verified> {
    let calls_before = query_calls(sandbox);
    let t = Instant::now();
    let req = QueryRequest::new(EMP, ["FStaffNumber"])
        .filter(format!("FStaffNumber like '{STAFF_PREFIX}%'"));
    let counted = client
        .query_rows(req)
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await
        .context("counting the employees with ExecuteBillQuery")?;
    Ok(Verified {
        counted,
        query_calls: query_calls(sandbox) - calls_before,
        query_s: round(t.elapsed().as_secs_f64(), 3),
    })
}

fn query_calls(sandbox: &KingdeeSandbox) -> u64 {
    sandbox
        .counters()
        .calls
        .get("ExecuteBillQuery")
        .copied()
        .unwrap_or(0)
}

/// The size with the best rows/s; a smaller size within [`TIE`] of the best wins.
fn chosen_default(results: &[SizeResult]) -> Option<usize> {
    let best = results.iter().map(|r| r.rows_per_s).fold(0.0, f64::max);
    results
        .iter()
        .filter(|r| r.rows_per_s >= best * (1.0 - TIE))
        .map(|r| r.size)
        .min()
}

/// Peak resident set size in MiB (Linux), when readable.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(round(kb / 1024.0, 1))
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let started_at = timestamp();
    let machine = Machine::detect();
    let mut sizes = args.sizes.clone();
    sizes.dedup();
    let depts = departments(args.departments);
    let models = employees(args.rows, args.departments);
    let params = Params {
        rows: args.rows,
        sizes: sizes.clone(),
        departments: args.departments,
        form: EMP,
        auth: "signature_headers",
        pacer: "limits::ConnectionLimiter, ConnectionLimits::kingdee() preset",
        calls_in_flight: 1,
        batch_count: None,
        transport: "HTTP/1.1 on 127.0.0.1 (reqwest client, axum server, same process)",
        sandbox: "sandbox::kingdee, seed_org false, a fresh one per size",
        model_bytes: models
            .first()
            .map_or(0, |m| serde_json::to_vec(m).map_or(0, |v| v.len())),
    };

    let mut results = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        eprintln!(
            "kingdee-batchsave: {} employees in BatchSave calls of {size}",
            args.rows
        );
        let r = run_size(size, &models, &depts).await?;
        eprintln!(
            "  {:.1} rows/s, {} calls, p50 {:.1} ms, p99 {:.1} ms; counted {}",
            r.rows_per_s, r.calls, r.call_latency_ms.p50, r.call_latency_ms.p99, r.verified.counted
        );
        results.push(r);
    }
    let chosen = chosen_default(&results);
    let summary = summary(&results, chosen);
    let report = json!({
        "scenario": "kingdee-batchsave",
        "started_at": started_at,
        "finished_at": timestamp(),
        "machine": machine,
        "params": params,
        "definitions": definitions(),
        "results": results,
        "chosen_default": chosen,
        "peak_rss_mb": peak_rss_mb(),
    });
    Ok(Outcome {
        scenario: "kingdee-batchsave",
        report,
        summary,
    })
}

fn summary(results: &[SizeResult], chosen: Option<usize>) -> String {
    let mut s = String::from("kingdee-batchsave (BD_Empinfo through KingdeeClient::batch_save)\n");
    s.push_str("  size    rows/s   calls   p50 ms   p99 ms  counted\n");
    for r in results {
        s.push_str(&format!(
            "  {:>4} {:>9.1} {:>7} {:>8.1} {:>8.1} {:>8}\n",
            r.size,
            r.rows_per_s,
            r.calls,
            r.call_latency_ms.p50,
            r.call_latency_ms.p99,
            r.verified.counted
        ));
    }
    match chosen {
        Some(size) => s.push_str(&format!(
            "  chosen default batch size: {size} (best rows/s; smaller wins within 5%)\n"
        )),
        None => s.push_str("  no result\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(size: usize, rows_per_s: f64) -> SizeResult {
        SizeResult {
            size,
            rows: 0,
            calls: 0,
            elapsed_s: 0.0,
            rows_per_s,
            calls_per_s: 0.0,
            call_latency_ms: Percentiles::of(&mut []),
            p50_ms_per_row: 0.0,
            verified: Verified {
                counted: 0,
                query_calls: 0,
                query_s: 0.0,
            },
        }
    }

    #[test]
    fn chosen_default_prefers_the_smaller_size_on_a_tie() {
        let r = [
            result(50, 900.0),
            result(200, 1900.0),
            result(500, 2000.0),
            result(1000, 1950.0),
        ];
        assert_eq!(chosen_default(&r), Some(200));
        let r = [result(50, 900.0), result(200, 1800.0), result(500, 2000.0)];
        assert_eq!(chosen_default(&r), Some(500));
        assert_eq!(chosen_default(&[]), None);
    }

    #[test]
    fn employees_reference_existing_departments() {
        let m = employees(30, 4);
        assert_eq!(m.len(), 30);
        assert_eq!(
            m[5].get("FDeptId"),
            Some(&json!({"FNumber": dept_number(1)}))
        );
        assert_eq!(m[29].get("FStaffNumber"), Some(&json!("BE0000029")));
        assert_eq!(
            departments(4)[3].get("FNumber"),
            Some(&json!(dept_number(3)))
        );
    }
}
