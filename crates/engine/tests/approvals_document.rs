//! Approvals → Kingdee bills (`approval_to_document`) against the simulators, on every store
//! backend, with the flow of `examples/dingbridge.toml`: 100 concurrent approvals become
//! exactly 100 audited bills and their events delivered again change nothing; a mapping error
//! dead-letters that approval alone and a replay after the fix creates its bill; Kingdee down
//! for a minute in a burst and a DingTalk throttling storm are waited out; a bill whose
//! approval is revoked is compensated by the flow's policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approval_support;
mod org_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use approval_support::{
    DOC_FLOW, approvals_config, approve, bills, burst_of_approved, claimants, company, drain_with,
    instance, kingdee_calls, revoke, start_expense,
};
use engine::node::Node;
use org_support::handlers;
use sandbox::admin_client::AdminClient;
use sandbox::seed::Seed;
use serde_json::json;
use store::{JobFilter, JobStatus, Store};
use store_testkit::test_stores;

const QUICK: [u64; 6] = [100, 200, 400, 800, 1600, 3200];

fn quick() -> Vec<Duration> {
    QUICK.iter().map(|ms| Duration::from_millis(*ms)).collect()
}

const ROWS: [(&str, &str); 2] = [("差旅费", "1280.50"), ("招待费", "360")];

async fn dead_jobs(store: &Arc<dyn Store>) -> Vec<store::Job> {
    store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_approvals_become_exactly_hundred_bills() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, _receiver, cfg) = company(&seed, &store, |t| t).await;
        let dt = world.dingtalk(&cfg);

        // 100 claims started at once, then approved at once.
        let started = burst_of_approved(
            &world,
            &dt,
            &people,
            100,
            |i| format!("杭州出差报销 第{i}号"),
            &ROWS,
        )
        .await;
        world.deliver_events(store.as_ref()).await;
        let saves_before = kingdee_calls(&world, "Save").await;
        // The org sync submitted and audited its own batches.
        let submits_before = kingdee_calls(&world, "Submit").await;
        let audits_before = kingdee_calls(&world, "Audit").await;
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            quick(),
            Duration::from_secs(240),
        )
        .await;

        let got = bills(&world, "ER_ExpReimbursement").await;
        assert_eq!(got.len(), 100, "{} on {}", got.len(), ts.name);
        let by_instance: HashMap<&str, &approval_support::Bill> =
            got.iter().map(|b| (b.instance.as_str(), b)).collect();
        assert_eq!(
            by_instance.keys().copied().collect::<BTreeSet<_>>(),
            started.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            "one bill per approval, each carrying its instance id"
        );
        assert!(got.iter().all(|b| b.status == "C"), "every bill audited");
        assert_eq!(
            kingdee_calls(&world, "Save").await - saves_before,
            100,
            "saved once each"
        );
        assert_eq!(kingdee_calls(&world, "Submit").await - submits_before, 100);
        assert_eq!(kingdee_calls(&world, "Audit").await - audits_before, 100);
        assert!(dead_jobs(&store).await.is_empty());

        // The bill: proposer, department, entry rows, amounts; the number on the approval.
        let first = &started[0];
        let bill = by_instance[first.as_str()];
        let who = &people[0];
        assert_eq!(
            bill.view["ProposerID"]["Number"],
            json!(who.job_number),
            "{}",
            bill.view
        );
        let entries = bill.view["FEntity"]
            .as_array()
            .or_else(|| bill.view["ER_ExpenseReimbEntry"].as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            entries.len(),
            2,
            "two detail rows → two entry rows: {}",
            bill.view
        );
        let inst = instance(&world, &cfg, first).await;
        let comment = format!("已生成金蝶费用报销单 {}", bill.number);
        let comments: Vec<_> = inst
            .operation_records
            .iter()
            .filter(|r| r["remark"].as_str() == Some(comment.as_str()))
            .collect();
        assert_eq!(
            comments.len(),
            1,
            "the bill number commented once: {:?}",
            inst.operation_records
        );
        for id in &started {
            let link = store
                .get_link(DOC_FLOW, &format!("instance:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(link.step, "done");
            assert_eq!(
                link.target_key.as_deref(),
                Some(by_instance[id.as_str()].number.as_str())
            );
        }

        // The same events again: DingTalk re-pushing (same ids) stores nothing; the same
        // finish events under new ids (a second path) and the backfill poll make no bill.
        assert_eq!(world.redeliver_all(store.as_ref()).await, 0);
        let events = world.events().await;
        let mut again = 0;
        for e in events
            .iter()
            .filter(|e| e["event_type"] == "bpms_instance_change")
        {
            let fresh = format!("{}-again", e["event_id"].as_str().unwrap());
            assert!(
                engine::jobs::inbox::store_event(
                    store.as_ref(),
                    "dingtalk",
                    &fresh,
                    "bpms_instance_change",
                    e["payload"].clone(),
                    store::now_ms()
                )
                .await
                .unwrap()
            );
            again += 1;
        }
        assert!(again >= 200, "start and finish of each: {again}");
        let flow = &cfg.flows[DOC_FLOW];
        store
            .enqueue(&Node::flow_job(flow, store::now_ms()))
            .await
            .unwrap();
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            quick(),
            Duration::from_secs(120),
        )
        .await;
        assert_eq!(
            bills(&world, "ER_ExpReimbursement").await.len(),
            100,
            "still 100"
        );
        assert_eq!(
            kingdee_calls(&world, "Save").await - saves_before,
            100,
            "no Save more"
        );
        assert_eq!(kingdee_calls(&world, "Submit").await - submits_before, 100);
        assert!(dead_jobs(&store).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapping_error_dead_letters_that_approval_and_replay_creates_its_bill() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, receiver, broken) =
            company(&seed, &store, |t| t.replace(r#""交通费" = "FYXM02", "#, "")).await;
        let dt = world.dingtalk(&broken);
        let fine = start_expense(&dt, &people[1], "上海客户拜访", &[("差旅费", "980")]).await;
        let bad = start_expense(
            &dt,
            &people[2],
            "市内交通",
            &[("差旅费", "100"), ("交通费", "45.5")],
        )
        .await;
        approve(&world, &fine).await;
        approve(&world, &bad).await;
        world.deliver_events(store.as_ref()).await;
        drain_with(
            &store,
            handlers(&broken, &store).await,
            quick(),
            Duration::from_secs(120),
        )
        .await;

        let got = bills(&world, "ER_ExpReimbursement").await;
        assert_eq!(
            got.iter().map(|b| b.instance.as_str()).collect::<Vec<_>>(),
            vec![fine.as_str()]
        );
        let dead = dead_jobs(&store).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        let why = dead[0].last_error.clone().unwrap_or_default();
        assert!(
            why.contains("FEntity[2].FExpID"),
            "names the entry row and field: {why}"
        );
        assert!(
            why.contains("交通费") && why.contains("dictionary"),
            "and why: {why}"
        );
        assert_eq!(dead[0].payload["instance_id"], json!(bad));

        // Fixed mapping, replay: the bill is created, once.
        let fixed = approvals_config(&world, &receiver.url, |t| t);
        store.replay_job(dead[0].id, store::now_ms()).await.unwrap();
        drain_with(
            &store,
            handlers(&fixed, &store).await,
            quick(),
            Duration::from_secs(120),
        )
        .await;
        let got = bills(&world, "ER_ExpReimbursement").await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().any(|b| b.instance == bad && b.status == "C"));
        assert!(dead_jobs(&store).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kingdee_down_for_a_minute_during_a_burst_loses_nothing() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, _receiver, cfg) = company(&seed, &store, |t| t).await;
        let dt = world.dingtalk(&cfg);
        let started =
            burst_of_approved(&world, &dt, &people, 30, |i| format!("展会差旅 {i}"), &ROWS).await;
        world.deliver_events(store.as_ref()).await;
        AdminClient::new(&world.kd_url, "kingdee")
            .post("faults", &json!({ "outage_seconds": 60 }))
            .await
            .unwrap();
        let clock = Instant::now();
        // The retry schedule spans the outage: 1 + 2 + 4 + 8 + 15 + 20 + 30 s.
        let retry = [1, 2, 4, 8, 15, 20, 30].map(Duration::from_secs).to_vec();
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            retry,
            Duration::from_secs(300),
        )
        .await;
        let got = bills(&world, "ER_ExpReimbursement").await;
        assert!(
            clock.elapsed() >= Duration::from_secs(55),
            "the work waited for Kingdee"
        );
        assert_eq!(got.len(), 30, "on {}", ts.name);
        assert!(got.iter().all(|b| b.status == "C"));
        assert_eq!(
            got.iter()
                .map(|b| b.instance.clone())
                .collect::<BTreeSet<_>>(),
            started.into_iter().collect::<BTreeSet<_>>()
        );
        assert!(dead_jobs(&store).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dingtalk_throttling_storm_is_waited_out() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, _receiver, cfg) = company(&seed, &store, |t| t).await;
        let dt = world.dingtalk(&cfg);
        let mut started = Vec::new();
        for (i, who) in people.iter().take(20).enumerate() {
            started.push(start_expense(&dt, who, &format!("培训报销 {i}"), &ROWS).await);
        }
        for id in &started {
            approve(&world, id).await;
        }
        world.deliver_events(store.as_ref()).await;
        let admin = AdminClient::new(&world.dt_url, "dingtalk");
        let before = admin.counter("qps_rejections").await.unwrap_or(0);
        admin
            .post("faults", &json!({ "storm_seconds": 8, "storm_rate": 0.7 }))
            .await
            .unwrap();
        let retry = [1, 2, 3, 5, 8, 13].map(Duration::from_secs).to_vec();
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            retry,
            Duration::from_secs(180),
        )
        .await;
        let throttled = admin.counter("qps_rejections").await.unwrap_or(0) - before;
        assert!(throttled > 0, "the storm answered some calls with 90018");
        let got = bills(&world, "ER_ExpReimbursement").await;
        assert_eq!(got.len(), 20, "on {}", ts.name);
        assert!(got.iter().all(|b| b.status == "C"));
        assert!(dead_jobs(&store).await.is_empty());
        // Every approval got its comment exactly once despite the refused calls.
        for (id, b) in started
            .iter()
            .map(|id| (id, got.iter().find(|b| &b.instance == id).unwrap()))
        {
            let inst = instance(&world, &cfg, id).await;
            let text = format!("已生成金蝶费用报销单 {}", b.number);
            let n = inst
                .operation_records
                .iter()
                .filter(|r| r["remark"].as_str() == Some(text.as_str()))
                .count();
            assert_eq!(n, 1, "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_approval_compensates_its_bill_by_policy() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, receiver, cfg) = company(&seed, &store, |t| t).await;
        let dt = world.dingtalk(&cfg);
        let id = start_expense(&dt, &people[3], "重复报销（撤回）", &ROWS).await;
        approve(&world, &id).await;
        world.deliver_events(store.as_ref()).await;
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            quick(),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(bills(&world, "ER_ExpReimbursement").await.len(), 1);

        // on_revoke = "delete": UnAudit, then Delete.
        revoke(&world, &id).await;
        world.deliver_events(store.as_ref()).await;
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            quick(),
            Duration::from_secs(60),
        )
        .await;
        assert!(
            bills(&world, "ER_ExpReimbursement").await.is_empty(),
            "bill deleted on {}",
            ts.name
        );
        let link = store
            .get_link(DOC_FLOW, &format!("instance:{id}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(link.step, "compensated");
        assert_eq!(kingdee_calls(&world, "UnAudit").await, 1);
        assert_eq!(kingdee_calls(&world, "Delete").await, 1);

        // on_revoke = "dead_letter": Kingdee untouched, a person is asked.
        let manual = approvals_config(&world, &receiver.url, |t| {
            t.replace("on_revoke = \"delete\"", "on_revoke = \"dead_letter\"")
        });
        let id2 = start_expense(&dt, &people[4], "会议费（撤回）", &ROWS).await;
        approve(&world, &id2).await;
        world.deliver_events(store.as_ref()).await;
        drain_with(
            &store,
            handlers(&manual, &store).await,
            quick(),
            Duration::from_secs(60),
        )
        .await;
        revoke(&world, &id2).await;
        world.deliver_events(store.as_ref()).await;
        drain_with(
            &store,
            handlers(&manual, &store).await,
            quick(),
            Duration::from_secs(60),
        )
        .await;
        let left = bills(&world, "ER_ExpReimbursement").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].status, "C", "left as it was");
        let dead = dead_jobs(&store).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].kind, "approval_to_document.revoke");
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains(&left[0].number)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_voucher_example_posts_a_balanced_audited_voucher() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    let ts = store_testkit::sqlite_store().await.unwrap();
    let store: Arc<dyn Store> = Arc::clone(&ts.store);
    let (world, _receiver, cfg) = company(&seed, &store, |t| {
        t.replace(
            "[flows.expense_to_kingdee]\n",
            "[flows.expense_to_kingdee]\nenabled = false\n",
        )
        .replace(
            "[flows.expense_to_voucher]\nrecipe = \"approval_to_document\"\nenabled = false\n",
            "[flows.expense_to_voucher]\nrecipe = \"approval_to_document\"\n",
        )
    })
    .await;
    assert!(cfg.flows["expense_to_voucher"].enabled);
    let dt = world.dingtalk(&cfg);
    let id = start_expense(
        &dt,
        &people[5],
        "深圳展会",
        &[("差旅费", "2100.40"), ("办公费", "99.60")],
    )
    .await;
    approve(&world, &id).await;
    world.deliver_events(store.as_ref()).await;
    drain_with(
        &store,
        handlers(&cfg, &store).await,
        quick(),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        dead_jobs(&store).await.is_empty(),
        "{:?}",
        dead_jobs(&store).await
    );
    let vouchers = bills(&world, "GL_VOUCHER").await;
    assert_eq!(vouchers.len(), 1);
    assert_eq!(vouchers[0].instance, id);
    assert_eq!(vouchers[0].status, "C");
    assert!(bills(&world, "ER_ExpReimbursement").await.is_empty());
    let rows = AdminClient::new(&world.kd_url, "kingdee")
        .get("state/GL_VOUCHER")
        .await
        .unwrap()["records"][0]["Fields"]["FEntity"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 3, "two debit rows and the credit: {rows:?}");
    assert!(
        rows[0]["FExplanation"]
            .as_str()
            .unwrap()
            .ends_with("：差旅费"),
        "{rows:?}"
    );
    assert_eq!(rows[2]["FAccountID"]["FNumber"], json!("1002"));
}
