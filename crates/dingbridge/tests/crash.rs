//! Crash safety of the real binary, on every backend: `kill -9` while jobs are claimed, restart,
//! and every job completes exactly once (its effect, a transfer-log row, is written in the same
//! transaction as its ack). And a graceful stop releases what it could not finish.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use store::{JobFilter, JobStatus, NewJob, Store, TransferFilter};
use store_testkit::{TestStore, test_stores};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");

fn write_config(dir: &std::path::Path, url: &str, grace_seconds: u64) -> std::path::PathBuf {
    let path = dir.join("dingbridge.toml");
    let text = format!(
        "[store]\nurl = \"{url}\"\nmax_connections = 6\n\n[workers]\ncount = 4\nlease_seconds = 2\n\
         poll_interval_ms = 50\nshutdown_grace_seconds = {grace_seconds}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn count(store: &Arc<dyn Store>, status: JobStatus) -> i64 {
    store
        .queue_depths()
        .await
        .unwrap()
        .iter()
        .filter(|d| d.status == status)
        .map(|d| d.count)
        .sum()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_jobs_are_claimed_then_restart_completes_each_job_once() {
    for ts in test_stores().await {
        crash_and_recover(&ts).await;
    }
}

async fn crash_and_recover(ts: &TestStore) {
    const JOBS: usize = 300;
    let s = &ts.store;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ts.url, 1);
    let now = engine::clock::now_ms();
    for i in 0..JOBS {
        let job = NewJob::new(
            "selftest",
            json!({"key": format!("crash-{i}"), "sleep_ms": 30, "title": "费用报销 崩溃测试"}),
            now,
        )
        .idempotency_key(format!("crash-{i}"));
        s.enqueue(&job).await.unwrap();
    }

    let mut first = start(&config, &dir.path().join("first.log"));
    wait_for(
        "a quarter of the jobs done with others claimed",
        Duration::from_secs(120),
        async || {
            count(s, JobStatus::Done).await >= (JOBS / 4) as i64
                && count(s, JobStatus::Running).await > 0
        },
    )
    .await;
    first.start_kill().unwrap(); // SIGKILL: no cleanup, leases left behind
    first.wait().await.unwrap();
    let running_at_kill = count(s, JobStatus::Running).await;
    let done_at_kill = count(s, JobStatus::Done).await;

    let mut second = start(&config, &dir.path().join("second.log"));
    wait_for(
        "every job done after the restart",
        Duration::from_secs(180),
        async || count(s, JobStatus::Done).await == JOBS as i64,
    )
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let jobs = s
        .list_jobs(&JobFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), JOBS, "{}", ts.name);
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Done),
        "{}",
        ts.name
    );
    let reclaimed = jobs.iter().filter(|j| j.lease_seq >= 2).count();
    assert!(
        reclaimed >= 1,
        "{}: the kill interrupted no claimed job ({running_at_kill} running at kill)",
        ts.name
    );
    let log = s
        .list_transfers(&TransferFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for t in &log {
        *per_key.entry(t.entry.source_key.clone()).or_default() += 1;
    }
    let missing = (0..JOBS)
        .filter(|i| !per_key.contains_key(&format!("crash-{i}")))
        .count();
    let doubled = per_key.values().filter(|&&n| n > 1).count();
    eprintln!(
        "crash test on {}: {JOBS} jobs; at kill -9: {done_at_kill} done, {running_at_kill} claimed; \
         after restart: {} done, {reclaimed} re-claimed, {missing} effects missing, {doubled} doubled",
        ts.name,
        jobs.len()
    );
    assert_eq!(missing, 0, "{}", ts.name);
    assert_eq!(doubled, 0, "{}", ts.name);
    assert_eq!(log.len(), JOBS, "{}", ts.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_claimed_jobs_it_cannot_finish() {
    for ts in test_stores().await {
        let s = &ts.store;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &ts.url, 1);
        let now = engine::clock::now_ms();
        for i in 0..4 {
            let job = NewJob::new(
                "selftest",
                json!({"key": format!("slow-{i}"), "sleep_ms": 60_000}),
                now,
            );
            s.enqueue(&job).await.unwrap();
        }
        let mut node = start(&config, &dir.path().join("node.log"));
        wait_for("all four claimed", Duration::from_secs(60), async || {
            count(s, JobStatus::Running).await == 4
        })
        .await;
        let pid = node.id().unwrap().to_string();
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), node.wait())
            .await
            .expect("the node stops within its grace period")
            .unwrap();
        assert!(exit.success(), "{}: exit {exit:?}", ts.name);
        assert!(started.elapsed() < Duration::from_secs(30));
        let jobs = s.list_jobs(&JobFilter::default()).await.unwrap();
        for j in jobs {
            assert_eq!(
                j.status,
                JobStatus::Queued,
                "{}: job {} was not released",
                ts.name,
                j.id
            );
            assert_eq!(
                j.attempts, 0,
                "{}: a release must not use up an attempt",
                ts.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_store_share_the_work_each_job_once() {
    const JOBS: usize = 400;
    for ts in test_stores().await {
        let s = &ts.store;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &ts.url, 1);
        let now = engine::clock::now_ms();
        for i in 0..JOBS {
            let job = NewJob::new(
                "selftest",
                json!({"key": format!("shared-{i}"), "sleep_ms": 5}),
                now,
            );
            s.enqueue(&job).await.unwrap();
        }
        let mut a = start(&config, &dir.path().join("a.log"));
        let mut b = start(&config, &dir.path().join("b.log"));
        let (a_pid, b_pid) = (a.id(), b.id());
        wait_for(
            "every job done by two nodes",
            Duration::from_secs(180),
            async || count(s, JobStatus::Done).await == JOBS as i64,
        )
        .await;
        a.start_kill().unwrap();
        b.start_kill().unwrap();
        let _ = a.wait().await;
        let _ = b.wait().await;
        let log = s
            .list_transfers(&TransferFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut per_key: HashMap<String, usize> = HashMap::new();
        for t in &log {
            *per_key.entry(t.entry.source_key.clone()).or_default() += 1;
        }
        assert_eq!(per_key.len(), JOBS, "{}", ts.name);
        assert!(
            per_key.values().all(|&n| n == 1),
            "{}: a job's effect happened twice",
            ts.name
        );
        // Both nodes took part: worker names are `<host>-<pid>-<rand>/<n>`.
        let jobs = s
            .list_jobs(&JobFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(jobs.iter().all(|j| j.status == JobStatus::Done));
        let mut per_pid: HashMap<u32, usize> = HashMap::new();
        let pids: Vec<u32> = [a_pid, b_pid].into_iter().flatten().collect();
        for t in &log {
            let worker = t
                .entry
                .response
                .as_ref()
                .and_then(|r| r["worker"].as_str())
                .unwrap_or("");
            for pid in &pids {
                if worker.contains(&format!("-{pid}-")) {
                    *per_pid.entry(*pid).or_default() += 1;
                }
            }
        }
        eprintln!(
            "two nodes on {}: {JOBS} jobs, each effect once; jobs per process {per_pid:?}",
            ts.name
        );
        assert_eq!(
            per_pid.len(),
            2,
            "{}: both nodes must have done work: {per_pid:?}",
            ts.name
        );
    }
}
