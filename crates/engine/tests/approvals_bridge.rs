//! The approval bridge (`approval_bridge`) against the simulators, on every store backend:
//! approvals started with plain JSON forms and an in-house originator id, their every change
//! pushed to a webhook receiver that is down for a while — all arrive, signed, each once, in
//! order per approval — and outcomes whose events never arrived found by the backfill poll.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approval_support;
mod org_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use approval_support::{BRIDGE_FLOW, Receiver, approve, claimants, company, drain_with};
use engine::approvals::bridge::{Originator, OriginatorKey, StartRequest};
use engine::node::Node;
use org_support::handlers;
use sandbox::admin_client::AdminClient;
use sandbox::seed::Seed;
use serde_json::{Map, Value, json};
use store::{ApprovalStatus, Store, WebhookMessageStatus};
use store_testkit::test_stores;

fn expense_request(job_number: &str, business_key: &str, amount: f64) -> StartRequest {
    let form: Map<String, Value> = serde_json::from_value(json!({
        "报销事由": format!("{business_key} 客户拜访差旅"),
        "报销类别": "差旅报销",
        "费用明细": [
            { "费用类型": "差旅费", "金额（元）": amount, "费用说明": "高铁 杭州—上海" },
            { "费用类型": "招待费", "金额（元）": 200, "费用说明": "客户午餐" }
        ],
        "报销总金额（元）": amount + 200.0
    }))
    .unwrap();
    StartRequest {
        template: "expense".into(),
        originator: Originator::By(OriginatorKey::JobNumber(job_number.into())),
        dept_id: None,
        business_key: Some(business_key.into()),
        form,
        approvers: Vec::new(),
        cc: Vec::new(),
        cc_position: None,
    }
}

/// Only the bridge: no bills in these tests.
fn bridge_only(text: String) -> String {
    text.replace(
        "[flows.expense_to_kingdee]\n",
        "[flows.expense_to_kingdee]\nenabled = false\n",
    )
}

/// The message types a receiver got, per approval, in arrival order.
fn by_subject(r: &Receiver) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in r.received() {
        out.entry(m.subject).or_default().push(m.id);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_arrives_in_order_after_the_receiver_comes_back() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, receiver, cfg) = company(&seed, &store, bridge_only).await;
        let registry = handlers(&cfg, &store).await;
        let bridge = Arc::clone(registry.approval_flows().bridge(None).unwrap());

        let mut ids = Vec::new();
        for (i, who) in people.iter().take(8).enumerate() {
            let a = bridge
                .start(
                    None,
                    &expense_request(
                        &who.job_number,
                        &format!("BX-2026-{i:04}"),
                        1000.0 + i as f64,
                    ),
                )
                .await
                .unwrap();
            assert_eq!(a.status, ApprovalStatus::Running);
            assert_eq!(
                a.fields.originator, who.userid,
                "the job number resolved to the userid"
            );
            ids.push(a);
        }
        // Six approved, one refused, one cancelled by the in-house system.
        let admin = AdminClient::new(&world.dt_url, "dingtalk");
        for a in &ids[..6] {
            approve(&world, a.instance_id.as_deref().unwrap()).await;
        }
        admin
            .post(
                &format!(
                    "approvals/{}/refuse",
                    ids[6].instance_id.as_deref().unwrap()
                ),
                &json!({ "remark": "金额超标" }),
            )
            .await
            .unwrap();
        bridge.cancel(&ids[7], None, "重复提交").await.unwrap();

        // The receiver is down while the events are processed; it comes back after 4 s.
        receiver.set_up(false);
        world.deliver_events(store.as_ref()).await;
        let retry = [200, 400, 800, 1600, 2000, 2000, 2000, 2000]
            .map(Duration::from_millis)
            .to_vec();
        let up = {
            let r = receiver.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(4)).await;
                r.set_up(true);
            })
        };
        drain_with(&store, registry, retry, Duration::from_secs(120)).await;
        up.await.unwrap();
        assert!(receiver.refused() > 0, "deliveries were refused while down");
        assert_eq!(receiver.bad_signatures(), 0);

        let got = by_subject(&receiver);
        for a in &ids {
            let id = &a.fields.id;
            let outbox = store.list_webhook_messages(id).await.unwrap();
            assert!(
                outbox
                    .iter()
                    .all(|m| m.status == WebhookMessageStatus::Delivered),
                "{id}: {outbox:?}"
            );
            let in_seq: Vec<String> = outbox.iter().map(|m| m.fields.message_id.clone()).collect();
            assert_eq!(
                got.get(id),
                Some(&in_seq),
                "{id}: arrived once each, in order, on {}",
                ts.name
            );
            let stored = store.get_approval(id).await.unwrap().unwrap();
            let last = outbox.last().unwrap();
            match ids.iter().position(|x| x.fields.id == *id).unwrap() {
                0..=5 => {
                    assert_eq!(
                        (stored.status, stored.result.as_deref()),
                        (ApprovalStatus::Completed, Some("agree"))
                    );
                    assert_eq!(last.fields.event_type, "approval.completed");
                }
                6 => {
                    assert_eq!(
                        (stored.status, stored.result.as_deref()),
                        (ApprovalStatus::Completed, Some("refuse"))
                    );
                    assert!(
                        outbox
                            .iter()
                            .any(|m| m.fields.message_id.ends_with(".refuse"))
                    );
                }
                _ => {
                    assert_eq!(stored.status, ApprovalStatus::Terminated);
                    assert_eq!(last.fields.event_type, "approval.terminated");
                }
            }
            assert_eq!(outbox[0].fields.event_type, "approval.started");
            assert_eq!(
                outbox[0].fields.payload["data"]["business_key"],
                json!(a.fields.business_key)
            );
        }
        // Every attempt is in the delivery log, the refused ones too.
        let log = store
            .list_deliveries("oa:hooks/dingtalk-approvals", 1000)
            .await
            .unwrap();
        assert!(log.iter().any(|d| d.entry.status_code == Some(503)));
        let delivered = log
            .iter()
            .filter(|d| d.entry.outcome == "delivered")
            .count();
        assert_eq!(delivered, receiver.received().len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backfill_poll_finds_outcomes_whose_events_never_arrived() {
    let seed = Seed::builtin();
    let people = claimants(&seed);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let (world, receiver, cfg) = company(&seed, &store, bridge_only).await;
        let registry = handlers(&cfg, &store).await;
        let bridge = Arc::clone(registry.approval_flows().bridge(Some(BRIDGE_FLOW)).unwrap());
        let mut ids = Vec::new();
        for (i, who) in people.iter().take(3).enumerate() {
            ids.push(
                bridge
                    .start(
                        None,
                        &expense_request(&who.job_number, &format!("漏报-{i}"), 300.0),
                    )
                    .await
                    .unwrap(),
            );
        }
        for a in &ids {
            approve(&world, a.instance_id.as_deref().unwrap()).await;
        }
        // No event reaches the hub; the poll runs.
        store
            .enqueue(&Node::flow_job(&cfg.flows[BRIDGE_FLOW], store::now_ms()))
            .await
            .unwrap();
        drain_with(
            &store,
            handlers(&cfg, &store).await,
            vec![Duration::from_millis(500); 6],
            Duration::from_secs(60),
        )
        .await;
        for a in &ids {
            let stored = store.get_approval(&a.fields.id).await.unwrap().unwrap();
            assert_eq!(
                stored.status,
                ApprovalStatus::Completed,
                "{} on {}",
                a.fields.id,
                ts.name
            );
            let kinds: Vec<String> = receiver
                .received()
                .into_iter()
                .filter(|m| m.subject == a.fields.id)
                .map(|m| m.kind)
                .collect();
            assert_eq!(kinds.first().map(String::as_str), Some("approval.started"));
            assert_eq!(
                kinds.last().map(String::as_str),
                Some("approval.completed"),
                "{kinds:?}"
            );
        }
    }
}
