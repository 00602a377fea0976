//! An org sync cut short by `kill -9` resumes and ends where an uninterrupted one ends (issue 5),
//! on every backend. The DingTalk simulator (a 2,000-person company on a 5-level tree, standard
//! edition so the run lasts long enough to be killed) and an empty Kingdee simulator run in this
//! process; the real binary (`dingbridge serve`) runs the `org_sync` job of the example's flow
//! `org_to_kingdee`. It is killed once Kingdee holds some employees but not all, then started
//! again: the same stored run must finish (resumed, not restarted) and Kingdee must hold exactly
//! what a second, uninterrupted run writes into a fresh empty Kingdee, each number once, with
//! no dead letters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::config::Config;
use engine::node::Node;
use engine::orgsync::{Progress, SyncMode, build_syncs};
use node_support::{
    Served, example_for, kill_9, replace, serve_dingtalk, serve_kingdee, start, wait_for,
};
use sandbox::dingtalk::Edition;
use sandbox::kingdee::KingdeeSandbox;
use sandbox::seed::Seed;
use serde_json::{Value, json};
use store::{JobFilter, JobStatus, Store, SyncRun, SyncRunStatus, TransferFilter};
use store_testkit::{TestStore, sqlite_store, test_stores};

const FLOW: &str = "org_to_kingdee";
const EMPLOYEES: &str = "BD_Empinfo";
const DEPARTMENTS: &str = "BD_Department";

/// The example configuration pointed at the simulators and `store_url`, with short leases and
/// the reconcile schedule moved out of the way (a scheduled run of the same flow must not start
/// while the test watches the full one).
fn config_text(dt_url: &str, kd_url: &str, store_url: &str) -> String {
    // 29 February at midnight: never during the test (today is checked below).
    replace(
        &example_for(dt_url, kd_url, store_url),
        "schedule = \"0 */10 * * * *\"",
        "schedule = \"0 0 0 29 2 *\"",
    )
}

fn write_config(dir: &Path, text: &str) -> (PathBuf, Config) {
    let path = dir.join("dingbridge.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::from_str(text, "dingbridge.toml")
        .unwrap_or_else(|e| panic!("the test's configuration is invalid: {e}\n{text}"));
    (path, cfg)
}

fn count_of(kd: &KingdeeSandbox, form: &str) -> usize {
    kd.db().data(form).map_or(0, |f| f.records.len())
}

async fn jobs_in(store: &Arc<dyn Store>, status: JobStatus) -> i64 {
    store
        .queue_depths()
        .await
        .unwrap()
        .iter()
        .filter(|d| d.status == status)
        .map(|d| d.count)
        .sum()
}

async fn runs(store: &Arc<dyn Store>) -> Vec<SyncRun> {
    store.list_sync_runs(Some(FLOW), 10).await.unwrap()
}

/// One Kingdee record as the comparison sees it: every mapped field, the reference by number,
/// forbid and document status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    name: String,
    mobile: String,
    email: String,
    /// `FDeptId` of an employee, `FParentID` of a department (the referenced number).
    reference: String,
    post: String,
    join_date: String,
    full_name: String,
    forbid: char,
    status: char,
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => text(o.get("FNumber")),
        Some(other) => other.to_string(),
    }
}

/// number → row of `form`; panics if a number appears twice.
fn rows(kd: &KingdeeSandbox, form: &str, what: &str) -> BTreeMap<String, Row> {
    let db = kd.db();
    let Some(data) = db.data(form) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for r in data.records.values() {
        let f = &r.fields;
        let reference = if form == EMPLOYEES {
            f.get("FDeptId")
        } else {
            f.get("FParentID")
        };
        let row = Row {
            name: text(f.get("FName")),
            mobile: text(f.get("FMobile")),
            email: text(f.get("FEmail")),
            reference: text(reference),
            post: text(f.get("FPostName")),
            join_date: text(f.get("FJoinDate")),
            full_name: text(f.get("FFullName")),
            forbid: r.forbid,
            status: r.status,
        };
        if let Some(first) = out.insert(r.number.clone(), row.clone()) {
            panic!(
                "{what}: {form} holds number {} twice: {first:?} and {row:?}",
                r.number
            );
        }
    }
    assert_eq!(
        out.len(),
        data.by_number.len(),
        "{what}: {form} records and its number index disagree"
    );
    out
}

/// The differences between two snapshots of a form, at most `limit` of them, readable.
fn differences(
    got: &BTreeMap<String, Row>,
    want: &BTreeMap<String, Row>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (number, w) in want {
        match got.get(number) {
            None => out.push(format!("{number} missing ({} {})", w.name, w.reference)),
            Some(g) if g != w => out.push(format!("{number}: got {g:?}, want {w:?}")),
            Some(_) => {}
        }
    }
    for (number, g) in got {
        if !want.contains_key(number) {
            out.push(format!("{number} should not exist: {g:?}"));
        }
    }
    let n = out.len();
    out.truncate(limit);
    if n > limit {
        out.push(format!("… and {} more", n - limit));
    }
    out
}

/// What an uninterrupted full run writes into a fresh, empty Kingdee: the expected state. The
/// same company in its own DingTalk simulator, exclusive edition: only the pace differs.
async fn reference(seed: &Seed) -> (BTreeMap<String, Row>, BTreeMap<String, Row>) {
    let dt = serve_dingtalk(seed, Edition::Exclusive).await;
    let (kd, kd_served) = serve_kingdee(seed).await;
    let ts = sqlite_store().await.unwrap();
    let store: Arc<dyn Store> = Arc::clone(&ts.store);
    let text = replace(
        &config_text(&dt.url, &kd_served.url, &ts.url),
        "edition = \"standard\"",
        "edition = \"exclusive\"",
    );
    let cfg = Config::from_str(&text, "dingbridge.toml").unwrap();
    let limiters = cfg.limiter_registry().unwrap();
    let syncs = build_syncs(&cfg, Arc::clone(&store), &limiters)
        .await
        .unwrap();
    let started = Instant::now();
    let summary = syncs[FLOW]
        .run(SyncMode::Full, None, &Progress::new())
        .await
        .unwrap();
    assert_eq!(
        summary.status,
        SyncRunStatus::Success,
        "the uninterrupted run: {:?}",
        summary.report
    );
    assert!(summary.report.complete, "the uninterrupted run saw gaps");
    assert_eq!(summary.counts.failed, 0, "{:?}", summary.counts);
    assert_eq!(jobs_in(&store, JobStatus::Dead).await, 0);
    let employees = rows(&kd, EMPLOYEES, "uninterrupted run");
    let departments = rows(&kd, DEPARTMENTS, "uninterrupted run");
    eprintln!(
        "uninterrupted run: {} employees, {} departments in {:.1} s ({:?})",
        employees.len(),
        departments.len(),
        started.elapsed().as_secs_f64(),
        summary.counts
    );
    (employees, departments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_org_sync_then_restart_resumes_the_run_and_matches_an_uninterrupted_one() {
    let today = chrono::Local::now().format("%m-%d").to_string();
    assert_ne!(
        today, "02-29",
        "the test moves the reconcile schedule to 29 February"
    );
    let seed = Seed::generate(2000, 120);
    assert!(seed.max_depth() >= 4, "a tree at least 5 levels deep");
    let active = seed.users.iter().filter(|u| u.active).count();
    let (want_employees, want_departments) = reference(&seed).await;
    let dt = serve_dingtalk(&seed, Edition::Standard).await;
    assert_eq!(
        want_employees.len(),
        active,
        "one employee per DingTalk person"
    );
    assert_eq!(want_departments.len(), seed.departments.len() - 1);

    for ts in test_stores().await {
        crash_and_resume(&ts, &seed, &dt, &want_employees, &want_departments).await;
    }
}

async fn crash_and_resume(
    ts: &TestStore,
    seed: &Seed,
    dt: &Served,
    want_employees: &BTreeMap<String, Row>,
    want_departments: &BTreeMap<String, Row>,
) {
    let name = ts.name;
    let store = &ts.store;
    let active = seed.users.iter().filter(|u| u.active).count();
    let dir = tempfile::tempdir().unwrap();
    let (kd, kd_served) = serve_kingdee(seed).await;
    let (config, cfg) = write_config(dir.path(), &config_text(&dt.url, &kd_served.url, &ts.url));
    let (first_log, second_log) = (dir.path().join("first.log"), dir.path().join("second.log"));

    let now = engine::clock::now_ms();
    let mut job = Node::flow_job(&cfg.flows[FLOW], now);
    job.payload = json!({ "mode": "full" });
    let job = job.idempotency_key(format!("org_sync_crash:{FLOW}:full"));
    let job_id = store.enqueue(&job).await.unwrap().id;

    let started = Instant::now();
    let mut first = start(&config, &first_log, "");
    // A quarter in: some batches are recorded (their links skip them on resume), the one in
    // flight may be saved in Kingdee but not recorded (sent again, found by number).
    wait_for(
        &format!("{name}: Kingdee holding a quarter of the employees, not all"),
        Duration::from_secs(180),
        &first_log,
        async || {
            let n = count_of(&kd, EMPLOYEES);
            assert!(
                n < active,
                "{name}: the run wrote all {active} employees before it could be killed; \
                 slow it down (a latency fault) so the kill lands mid-run"
            );
            n >= active / 4
        },
    )
    .await;
    kill_9(&mut first).await;
    let killed_after = started.elapsed();
    // Let a request the simulator was already answering finish, then take the picture.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let employees_at_kill = count_of(&kd, EMPLOYEES);
    let departments_at_kill = count_of(&kd, DEPARTMENTS);
    let before = runs(store).await;
    assert_eq!(
        before.len(),
        1,
        "{name}: one stored run at the kill: {before:?}"
    );
    let run = before[0].clone();
    assert_eq!(
        run.status,
        SyncRunStatus::Running,
        "{name}: the run was cut short"
    );
    assert_eq!(run.job_id, Some(job_id), "{name}: the run is the job's");
    assert_eq!(run.attempts, 1, "{name}: {run:?}");
    assert!(
        employees_at_kill < active,
        "{name}: {employees_at_kill} of {active} employees at the kill"
    );
    let claimed = store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(
        claimed.status,
        JobStatus::Running,
        "{name}: the job's lease is left behind by kill -9"
    );

    let mut second = start(&config, &second_log, "");
    wait_for(
        &format!("{name}: the resumed run to finish"),
        Duration::from_secs(300),
        &second_log,
        async || {
            let r = runs(store).await;
            r.first().is_some_and(|r| r.finished_at.is_some())
                && store
                    .get_job(job_id)
                    .await
                    .unwrap()
                    .is_some_and(|j| j.status != JobStatus::Running)
        },
    )
    .await;
    kill_9(&mut second).await;
    let total = started.elapsed();

    // The same run, resumed by the job's next attempt.
    let after = runs(store).await;
    assert_eq!(
        after.len(),
        1,
        "{name}: the restart resumed the run instead of starting another: {after:?}"
    );
    let done = &after[0];
    assert_eq!(done.id, run.id, "{name}: same run id");
    assert!(
        done.attempts >= 2,
        "{name}: the run was resumed: attempts {} ({done:?})",
        done.attempts
    );
    assert_eq!(
        done.status,
        SyncRunStatus::Success,
        "{name}: {}",
        done.report
    );
    assert_eq!(
        done.complete,
        Some(true),
        "{name}: a complete snapshot: {}",
        done.report
    );
    let job = store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        JobStatus::Done,
        "{name}: job {job_id}: {:?}",
        job.last_error
    );
    assert!(job.attempts >= 2, "{name}: job attempts {}", job.attempts);
    let dead = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        dead.is_empty(),
        "{name}: no dead letters, got {}: {:?}",
        dead.len(),
        dead.iter()
            .take(5)
            .map(|j| (&j.payload, &j.last_error))
            .collect::<Vec<_>>()
    );

    // Kingdee holds what the uninterrupted run wrote, each number once.
    let got_employees = rows(&kd, EMPLOYEES, name);
    let got_departments = rows(&kd, DEPARTMENTS, name);
    let diff = differences(&got_departments, want_departments, 10);
    assert!(
        diff.is_empty(),
        "{name}: BD_Department differs from the uninterrupted run:\n{}",
        diff.join("\n")
    );
    let diff = differences(&got_employees, want_employees, 10);
    assert!(
        diff.is_empty(),
        "{name}: BD_Empinfo differs from the uninterrupted run:\n{}",
        diff.join("\n")
    );

    // The transfer log: each record created at most once, whichever attempt wrote it.
    let log = store
        .list_transfers(&TransferFilter {
            flow: Some(FLOW.into()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut created: HashMap<&str, usize> = HashMap::new();
    let mut per_attempt: BTreeMap<i32, usize> = BTreeMap::new();
    for t in &log {
        if t.entry.outcome == "created" {
            *created.entry(t.entry.source_key.as_str()).or_default() += 1;
        }
        *per_attempt.entry(t.entry.attempt).or_default() += 1;
    }
    let twice: Vec<&&str> = created
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(
        twice.is_empty(),
        "{name}: created twice: {:?}",
        &twice[..twice.len().min(10)]
    );
    // What the killed attempt recorded is not written again: the resumed run skips it by the
    // digest in its link.
    let recorded: std::collections::HashSet<&str> = log
        .iter()
        .filter(|t| t.entry.attempt == 1)
        .map(|t| t.entry.source_key.as_str())
        .collect();
    let rewritten: Vec<&str> = log
        .iter()
        .filter(|t| t.entry.attempt >= 2 && recorded.contains(t.entry.source_key.as_str()))
        .map(|t| t.entry.source_key.as_str())
        .collect();
    assert!(
        rewritten.is_empty(),
        "{name}: {} records recorded before the kill were written again, e.g. {:?}",
        rewritten.len(),
        &rewritten[..rewritten.len().min(10)]
    );
    let resent = log
        .iter()
        .filter(|t| t.entry.attempt >= 2 && t.entry.outcome == "updated")
        .count();
    eprintln!(
        "org sync crash on {name}: killed after {:.1} s with {employees_at_kill}/{active} employees \
         and {departments_at_kill}/{} departments in Kingdee; run #{} finished after {:.1} s in \
         {} attempts (counts of the last: {}); transfer rows per attempt {per_attempt:?}, {resent} records sent again \
         as updates; Kingdee matches the uninterrupted run",
        killed_after.as_secs_f64(),
        want_departments.len(),
        done.id,
        total.as_secs_f64(),
        done.attempts,
        done.counts,
    );
}
