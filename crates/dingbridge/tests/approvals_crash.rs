//! Approvals → Kingdee bills survive the hub dying between Save and Submit, and between Submit
//! and Audit (issue 6), on every backend. The simulators run in this process (the company
//! synced into an empty Kingdee first, so bills can refer to its people); the real binary
//! (`dingbridge serve`, events over Stream) runs the example's `expense_to_kingdee` flow with a
//! failpoint that aborts the process — no cleanup, as `kill -9` — right after a Save (then,
//! in a second life, right after a Submit). After a clean restart every approval has exactly
//! one bill, audited; Kingdee was asked to Save, Submit and Audit each bill exactly once; the
//! bill number is commented once on each approval; nothing is dead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dingtalk::approvals::{FormField, NewInstance};
use dingtalk::{DeptId, ProcessInstanceId};
use engine::config::{Config, ConnectionSettings};
use engine::orgsync::{Progress, SyncMode, build_syncs};
use node_support::{example_for, replace, serve_dingtalk, serve_kingdee, start, tail, wait_for};
use sandbox::dingtalk::Edition;
use sandbox::kingdee::KingdeeSandbox;
use sandbox::seed::Seed;
use store::{JobStatus, Store, SyncRunStatus, TransferFilter};
use store_testkit::{TestStore, test_stores};

const FLOW: &str = "expense_to_kingdee";
const FORM: &str = "ER_ExpReimbursement";
const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
const CLAIMS: usize = 12;

/// The example pointed at the simulators and the store, every schedule moved to 29 February
/// (never during the test): only the events drive the work.
fn config_text(dt_url: &str, kd_url: &str, store_url: &str) -> String {
    let mut text = replace(
        &example_for(dt_url, kd_url, store_url),
        "edition = \"standard\"",
        "edition = \"exclusive\"",
    );
    for cron in [
        "schedule = \"0 */10 * * * *\"",
        "schedule = \"0 */5 * * * *\"",
        "schedule = \"30 */5 * * * *\"",
        "schedule = \"*/15 * * * * *\"",
    ] {
        text = replace(&text, cron, "schedule = \"0 0 0 29 2 *\"");
    }
    text
}

/// (instance id, status) of every bill.
fn bills(kd: &KingdeeSandbox) -> Vec<(String, char)> {
    let db = kd.db();
    db.data(FORM)
        .map(|f| {
            f.records
                .values()
                .map(|r| {
                    let id = r
                        .fields
                        .get("F_DDInstanceId")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    (id, r.status)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn calls(kd: &KingdeeSandbox, method: &str) -> u64 {
    kd.counters().calls.get(method).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_dying_between_save_and_submit_saves_no_bill_twice() {
    let today = chrono::Local::now().format("%m-%d").to_string();
    assert_ne!(
        today, "02-29",
        "the test moves every schedule to 29 February"
    );
    for ts in test_stores().await {
        crash_between_steps(&ts).await;
    }
}

async fn crash_between_steps(ts: &TestStore) {
    let seed = Seed::builtin();
    let dt = serve_dingtalk(&seed, Edition::Exclusive).await;
    let (kd, kd_served) = serve_kingdee(&seed).await;
    let text = config_text(&dt.url, &kd_served.url, &ts.url);
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("dingbridge.toml");
    std::fs::write(&config, &text).unwrap();
    let cfg = Config::from_str(&text, "dingbridge.toml").unwrap();
    let store: Arc<dyn Store> = Arc::clone(&ts.store);

    // The company first (in this process): bills refer to its people and departments.
    let limiters = cfg.limiter_registry().unwrap();
    let syncs = build_syncs(&cfg, Arc::clone(&store), &limiters)
        .await
        .unwrap();
    let summary = syncs["org_to_kingdee"]
        .run(SyncMode::Full, None, &Progress::new())
        .await
        .unwrap();
    assert_eq!(summary.status, SyncRunStatus::Success);
    let (saves0, submits0, audits0) = (
        calls(&kd, "Save"),
        calls(&kd, "Submit"),
        calls(&kd, "Audit"),
    );

    // Expense claims, started before the hub runs.
    let ConnectionSettings::DingTalk(c) = &cfg.connections["dingtalk"].settings else {
        panic!("no dingtalk connection");
    };
    let client =
        engine::connectors::dingtalk_client("dingtalk", c, Arc::new(limits::Unpaced)).unwrap();
    let people: Vec<_> = seed
        .users
        .iter()
        .filter(|u| u.active && u.dept_ids.first().is_some_and(|d| *d != 1))
        .take(CLAIMS)
        .collect();
    let admin = sandbox::admin_client::AdminClient::new(&dt.url, "dingtalk");
    let mut started = BTreeSet::new();
    for (i, who) in people.iter().enumerate() {
        let form = vec![
            FormField::text("报销事由", format!("北京出差 {i}")),
            FormField::text("报销类别", "差旅报销"),
            FormField::table(
                "费用明细",
                vec![vec![
                    FormField::text("费用类型", "差旅费"),
                    FormField::text("金额（元）", "1500"),
                ]],
            ),
            FormField::text("报销总金额（元）", "1500"),
        ];
        let req = NewInstance::new(
            EXPENSE,
            who.userid.as_str(),
            Some(DeptId(i64::try_from(who.dept_ids[0]).unwrap())),
            form,
        );
        let id = client.approval_create(&req).await.unwrap().0;
        started.insert(id);
    }

    // First life: dies right after the 4th Save returns, before recording it.
    let log1 = dir.path().join("node1.log");
    let mut node = start(&config, &log1, "approval_to_document.after_save=4");
    // Approved once the hub listens on Stream (the simulator does not keep events for later).
    wait_for(
        "the Stream connection",
        Duration::from_secs(30),
        &log1,
        async || {
            std::fs::read_to_string(&log1)
                .unwrap_or_default()
                .contains("stream: connected")
        },
    )
    .await;
    for id in &started {
        admin
            .post(&format!("approvals/{id}/approve"), &serde_json::json!({}))
            .await
            .unwrap();
    }
    let status = tokio::time::timeout(Duration::from_secs(120), node.wait())
        .await
        .unwrap_or_else(|_| panic!("the failpoint never fired; log:\n{}", tail(&log1)))
        .unwrap();
    assert!(!status.success(), "aborted, not a clean exit: {status:?}");
    assert!(
        std::fs::read_to_string(&log1)
            .unwrap_or_default()
            .contains("failpoint approval_to_document.after_save"),
        "{}",
        tail(&log1)
    );
    let after_crash = bills(&kd);
    assert!(
        after_crash.iter().any(|(_, s)| *s == 'A'),
        "a bill saved but never submitted is left behind: {after_crash:?}"
    );

    // Second life: dies right after the 3rd Submit.
    let log2 = dir.path().join("node2.log");
    let mut node = start(&config, &log2, "approval_to_document.after_submit=3");
    let status = tokio::time::timeout(Duration::from_secs(120), node.wait())
        .await
        .unwrap_or_else(|_| panic!("the second failpoint never fired; log:\n{}", tail(&log2)))
        .unwrap();
    assert!(!status.success());

    // Third life: runs to the end.
    let log3 = dir.path().join("node3.log");
    let mut node = start(&config, &log3, "");
    wait_for(
        "every bill audited",
        Duration::from_secs(180),
        &log3,
        async || {
            let b = bills(&kd);
            b.len() >= CLAIMS
                && b.iter().all(|(_, s)| *s == 'C')
                && store_testkit::unfinished_jobs(store.as_ref()).await == 0
        },
    )
    .await;
    node.start_kill().unwrap();
    node.wait().await.unwrap();

    let got = bills(&kd);
    assert_eq!(
        got.len(),
        CLAIMS,
        "one bill per approval on {}: {got:?}",
        ts.name
    );
    assert_eq!(
        got.iter().map(|(i, _)| i.clone()).collect::<BTreeSet<_>>(),
        started,
        "each bill carries its approval's instance id"
    );
    assert_eq!(
        calls(&kd, "Save") - saves0,
        CLAIMS as u64,
        "no bill saved twice"
    );
    assert_eq!(
        calls(&kd, "Submit") - submits0,
        CLAIMS as u64,
        "each submitted once"
    );
    assert_eq!(
        calls(&kd, "Audit") - audits0,
        CLAIMS as u64,
        "each audited once"
    );
    let dead = store
        .queue_depths()
        .await
        .unwrap()
        .iter()
        .filter(|d| d.status == JobStatus::Dead)
        .map(|d| d.count)
        .sum::<i64>();
    assert_eq!(dead, 0, "no dead letters");
    // The crashed Save was found by its instance id, not saved again.
    let transfers = store
        .list_transfers(&TransferFilter {
            flow: Some(FLOW.into()),
            limit: 1000,
            ..TransferFilter::default()
        })
        .await
        .unwrap();
    assert!(
        transfers.iter().any(|t| t.entry.outcome == "found"),
        "the bill the first life saved was looked up"
    );
    for id in &started {
        let link = store
            .get_link(FLOW, &format!("instance:{id}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(link.step, "done");
        let inst = client
            .approval_get(&ProcessInstanceId(id.clone()))
            .await
            .unwrap();
        let comments = inst
            .operation_records
            .iter()
            .filter(|r| {
                r["remark"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("已生成金蝶费用报销单 "))
            })
            .count();
        assert_eq!(comments, 1, "{id}: the bill number commented once");
    }
    drop(kd_served);
    drop(dt);
}
