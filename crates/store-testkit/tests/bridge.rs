//! What the approval bridge needs from every backend: API keys, idempotency keys (one winner
//! under concurrency, expiry, release), approvals (updates, lookups, filtered newest-first
//! paging) and the webhook outbox (seq per subject, duplicates, head of line, hand-over on
//! delivery, serialization of an add with the finish of the message before it).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use store::*;
use store_testkit::test_stores;

const T0: Millis = 1_700_000_000_000;

fn new_key(prefix: &str, created_at: Millis) -> NewApiKey {
    NewApiKey {
        name: format!("财务系统 {prefix}"),
        prefix: prefix.into(),
        hash: format!("sha256-of-{prefix}"),
        scopes: vec!["approvals:write".into(), "approvals:read".into()],
        created_at,
    }
}

// ---- API keys ------------------------------------------------------------------------------

#[tokio::test]
async fn api_keys_create_find_list_revoke_touch() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let late = s.create_api_key(&new_key("k_late", T0 + 5)).await.unwrap();
        assert_eq!(late.prefix, "k_late", "{n}");
        assert_eq!(late.hash, "sha256-of-k_late", "{n}");
        assert_eq!(late.scopes, ["approvals:write", "approvals:read"], "{n}");
        assert_eq!(late.last_used_at, None, "{n}");
        assert_eq!(late.revoked_at, None, "{n}");
        let early = s
            .create_api_key(&NewApiKey {
                scopes: vec![],
                ..new_key("k_early", T0)
            })
            .await
            .unwrap();
        assert_ne!(late.id, early.id, "{n}");

        // A prefix is unique; the failed insert leaves the first key as it was.
        let dup = s
            .create_api_key(&NewApiKey {
                hash: "other".into(),
                ..new_key("k_late", T0 + 9)
            })
            .await;
        assert!(
            matches!(dup, Err(StoreError::InvalidState(_))),
            "{n}: {dup:?}"
        );

        assert_eq!(
            s.find_api_key("k_late").await.unwrap().as_ref(),
            Some(&late),
            "{n}"
        );
        assert_eq!(
            s.find_api_key("k_early").await.unwrap().unwrap().scopes,
            Vec::<String>::new(),
            "{n}"
        );
        assert!(s.find_api_key("k_none").await.unwrap().is_none(), "{n}");

        // Oldest first (by creation time, not by insertion).
        let all = s.list_api_keys().await.unwrap();
        assert_eq!(all, vec![early.clone(), late.clone()], "{n}");

        s.touch_api_key(late.id, T0 + 100).await.unwrap();
        s.touch_api_key(late.id, T0 + 200).await.unwrap();
        let touched = s.find_api_key("k_late").await.unwrap().unwrap();
        assert_eq!(touched.last_used_at, Some(T0 + 200), "{n}");
        assert_eq!(touched.revoked_at, None, "{n}");

        assert!(s.revoke_api_key("k_late", T0 + 300).await.unwrap(), "{n}");
        assert!(!s.revoke_api_key("k_late", T0 + 400).await.unwrap(), "{n}");
        assert!(!s.revoke_api_key("k_none", T0 + 400).await.unwrap(), "{n}");
        // Revoked keys are still found (to refuse them knowingly), with the first revocation.
        let revoked = s.find_api_key("k_late").await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(T0 + 300), "{n}");
        assert_eq!(revoked.last_used_at, Some(T0 + 200), "{n}");
        assert_eq!(
            s.find_api_key("k_early").await.unwrap().unwrap().revoked_at,
            None,
            "{n}"
        );
        assert_eq!(s.list_api_keys().await.unwrap().len(), 2, "{n}");
    }
}

// ---- idempotency keys ----------------------------------------------------------------------

#[tokio::test]
async fn idempotency_key_claim_complete_replay_release_expire() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let exp = T0 + 86_400_000;

        let first = s
            .claim_idempotency_key(1, "报销-001", "h1", T0, exp)
            .await
            .unwrap();
        assert_eq!(first, IdempotencyClaim::Claimed, "{n}");
        // Claimed again while in progress: the stored request hash, whatever this one is.
        let again = s
            .claim_idempotency_key(1, "报销-001", "h2", T0 + 1, exp)
            .await
            .unwrap();
        assert_eq!(
            again,
            IdempotencyClaim::InProgress {
                request_hash: "h1".into()
            },
            "{n}"
        );
        // The same key under another API key is another key.
        assert_eq!(
            s.claim_idempotency_key(2, "报销-001", "h9", T0 + 1, exp)
                .await
                .unwrap(),
            IdempotencyClaim::Claimed,
            "{n}"
        );

        let answer = json!({"id": "apv_1", "状态": "pending"});
        s.complete_idempotency_key(1, "报销-001", 201, &answer)
            .await
            .unwrap();
        let replay = s
            .claim_idempotency_key(1, "报销-001", "h1", T0 + 2, exp)
            .await
            .unwrap();
        assert_eq!(
            replay,
            IdempotencyClaim::Completed {
                request_hash: "h1".into(),
                status_code: 201,
                response: answer.clone(),
            },
            "{n}"
        );
        // API key 2's claim is untouched by key 1's answer.
        assert_eq!(
            s.claim_idempotency_key(2, "报销-001", "h9", T0 + 2, exp)
                .await
                .unwrap(),
            IdempotencyClaim::InProgress {
                request_hash: "h9".into()
            },
            "{n}"
        );

        // Expired (expires_at <= now): replaced as if free, and the old answer is gone.
        assert_eq!(
            s.claim_idempotency_key(1, "报销-001", "h3", exp, exp + 1000)
                .await
                .unwrap(),
            IdempotencyClaim::Claimed,
            "{n}"
        );
        assert_eq!(
            s.claim_idempotency_key(1, "报销-001", "h4", exp + 1, exp + 2000)
                .await
                .unwrap(),
            IdempotencyClaim::InProgress {
                request_hash: "h3".into()
            },
            "{n}"
        );

        // Released: the next claim is ours at once.
        s.release_idempotency_key(1, "报销-001").await.unwrap();
        assert_eq!(
            s.claim_idempotency_key(1, "报销-001", "h5", exp + 2, exp + 3000)
                .await
                .unwrap(),
            IdempotencyClaim::Claimed,
            "{n}"
        );
        // Releasing a key nobody holds is no error.
        s.release_idempotency_key(7, "nobody").await.unwrap();
        // Completing a key nobody claimed is.
        let none = s
            .complete_idempotency_key(7, "nobody", 200, &json!({}))
            .await;
        assert!(
            matches!(none, Err(StoreError::NotFound(_))),
            "{n}: {none:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_a_free_key_have_one_winner() {
    for ts in test_stores().await {
        let n = ts.name;
        for round in 0..5 {
            let key = format!("race-{round}");
            let mut tasks = Vec::new();
            for i in 0..12 {
                let s = Arc::clone(&ts.store);
                let key = key.clone();
                tasks.push(tokio::spawn(async move {
                    s.claim_idempotency_key(1, &key, &format!("h{i}"), T0, T0 + 60_000)
                        .await
                        .unwrap()
                }));
            }
            let mut claims = Vec::new();
            for t in tasks {
                claims.push(t.await.unwrap());
            }
            let won = claims
                .iter()
                .filter(|c| **c == IdempotencyClaim::Claimed)
                .count();
            assert_eq!(won, 1, "{n}: {claims:?}");
            assert!(
                claims.iter().all(|c| matches!(
                    c,
                    IdempotencyClaim::Claimed | IdempotencyClaim::InProgress { .. }
                )),
                "{n}: {claims:?}"
            );
        }
    }
}

// ---- approvals -----------------------------------------------------------------------------

fn new_approval(id: &str, flow: &str, created_at: Millis) -> NewApproval {
    NewApproval {
        id: id.into(),
        flow: flow.into(),
        api_key_id: None,
        process_code: "PROC-EXPENSE".into(),
        originator: "manager4521".into(),
        business_key: None,
        request: json!({"金额": 1200.5, "事由": "差旅"}),
        created_at,
    }
}

async fn insert_approvals(s: &Arc<dyn Store>, approvals: &[NewApproval]) {
    let mut tx = s.begin().await.unwrap();
    for a in approvals {
        tx.insert_approval(a).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn update(s: &Arc<dyn Store>, u: ApprovalUpdate) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    tx.update_approval(&u).await?;
    tx.commit().await
}

fn ids(list: &[Approval]) -> Vec<&str> {
    list.iter().map(|a| a.fields.id.as_str()).collect()
}

#[tokio::test]
async fn approval_insert_get_update_find() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let fields = NewApproval {
            api_key_id: Some(3),
            business_key: Some("报销单-2024-０01".into()),
            request: json!({"表单": {"金额": "１２００元", "备注": "出差🚄上海"}, "明细": [1, 2]}),
            ..new_approval("apv_01", "expense", T0)
        };
        insert_approvals(s, std::slice::from_ref(&fields)).await;
        let got = s.get_approval("apv_01").await.unwrap().unwrap();
        assert_eq!(got.fields, fields, "{n}");
        assert_eq!(got.status, ApprovalStatus::Pending, "{n}");
        assert_eq!(got.instance_id, None, "{n}");
        assert_eq!(got.result, None, "{n}");
        assert_eq!(got.snapshot, None, "{n}");
        assert_eq!(got.updated_at, T0, "{n}");
        assert!(s.get_approval("apv_none").await.unwrap().is_none(), "{n}");
        assert!(
            s.find_approval_by_instance("inst-1")
                .await
                .unwrap()
                .is_none(),
            "{n}"
        );

        update(
            s,
            ApprovalUpdate {
                id: "apv_01".into(),
                instance_id: Some("inst-1".into()),
                status: Some(ApprovalStatus::Running),
                now: T0 + 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let running = s
            .find_approval_by_instance("inst-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(running.fields.id, "apv_01", "{n}");
        assert_eq!(running.status, ApprovalStatus::Running, "{n}");
        assert_eq!(running.updated_at, T0 + 10, "{n}");

        // None fields are left as they are.
        let snapshot = json!({"tasks": [{"userid": "张三", "result": "agree"}]});
        update(
            s,
            ApprovalUpdate {
                id: "apv_01".into(),
                status: Some(ApprovalStatus::Completed),
                result: Some("agree".into()),
                snapshot: Some(snapshot.clone()),
                now: T0 + 20,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        update(
            s,
            ApprovalUpdate {
                id: "apv_01".into(),
                now: T0 + 30,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let done = s.get_approval("apv_01").await.unwrap().unwrap();
        assert_eq!(done.instance_id.as_deref(), Some("inst-1"), "{n}");
        assert_eq!(done.status, ApprovalStatus::Completed, "{n}");
        assert_eq!(done.result.as_deref(), Some("agree"), "{n}");
        assert_eq!(done.snapshot.as_ref(), Some(&snapshot), "{n}");
        assert_eq!(done.updated_at, T0 + 30, "{n}");
        assert_eq!(done.fields, fields, "{n}");

        let missing = update(
            s,
            ApprovalUpdate {
                id: "apv_none".into(),
                status: Some(ApprovalStatus::Failed),
                now: T0,
                ..Default::default()
            },
        )
        .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{n}: {missing:?}"
        );
    }
}

#[tokio::test]
async fn approvals_list_filters_newest_first_and_pages() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        insert_approvals(
            s,
            &[
                NewApproval {
                    api_key_id: Some(1),
                    business_key: Some("单号-1".into()),
                    ..new_approval("apv_a", "expense", T0)
                },
                // Same time as apv_b: the id breaks the tie (apv_c after apv_b).
                NewApproval {
                    api_key_id: Some(2),
                    process_code: "PROC-LEAVE".into(),
                    ..new_approval("apv_c", "leave", T0 + 10)
                },
                NewApproval {
                    api_key_id: Some(1),
                    business_key: Some("单号-2".into()),
                    ..new_approval("apv_b", "expense", T0 + 10)
                },
                // Created later but inserted first elsewhere: time orders, not insertion.
                new_approval("apv_0", "expense", T0 + 20),
            ],
        )
        .await;
        update(
            s,
            ApprovalUpdate {
                id: "apv_b".into(),
                status: Some(ApprovalStatus::Completed),
                result: Some("refuse".into()),
                now: T0 + 30,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let list = |f: ApprovalFilter| {
            let s = Arc::clone(s);
            async move { s.list_approvals(&f).await.unwrap() }
        };

        let all = list(ApprovalFilter::default()).await;
        assert_eq!(ids(&all), ["apv_0", "apv_c", "apv_b", "apv_a"], "{n}");
        let flow = list(ApprovalFilter {
            flow: Some("expense".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&flow), ["apv_0", "apv_b", "apv_a"], "{n}");
        let status = list(ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&status), ["apv_0", "apv_c", "apv_a"], "{n}");
        let result = list(ApprovalFilter {
            result: Some("refuse".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&result), ["apv_b"], "{n}");
        let process = list(ApprovalFilter {
            process_code: Some("PROC-LEAVE".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&process), ["apv_c"], "{n}");
        let business = list(ApprovalFilter {
            business_key: Some("单号-2".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&business), ["apv_b"], "{n}");
        assert_eq!(business[0].fields.business_key.as_deref(), Some("单号-2"));
        let by_key = list(ApprovalFilter {
            api_key_id: Some(1),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&by_key), ["apv_b", "apv_a"], "{n}");
        let combined = list(ApprovalFilter {
            flow: Some("expense".into()),
            status: Some(ApprovalStatus::Pending),
            api_key_id: Some(1),
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&combined), ["apv_a"], "{n}");
        let nothing = list(ApprovalFilter {
            flow: Some("leave".into()),
            business_key: Some("单号-1".into()),
            ..Default::default()
        })
        .await;
        assert!(nothing.is_empty(), "{n}");

        // Paging: strictly older than the last of the previous page, ties broken by id.
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = list(ApprovalFilter {
                before: before.clone(),
                limit: 1,
                ..Default::default()
            })
            .await;
            let Some(last) = page.last() else { break };
            before = Some(last.fields.id.clone());
            pages.push(ids(&page).join(","));
        }
        assert_eq!(pages, ["apv_0", "apv_c", "apv_b", "apv_a"], "{n}");
        let after_c = list(ApprovalFilter {
            before: Some("apv_c".into()),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&after_c), ["apv_b", "apv_a"], "{n}");
        let expense_after_0 = list(ApprovalFilter {
            flow: Some("expense".into()),
            before: Some("apv_0".into()),
            limit: 2,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&expense_after_0), ["apv_b", "apv_a"], "{n}");
    }
}

#[tokio::test]
async fn approvals_list_limit_zero_means_100() {
    for ts in test_stores().await {
        let s = &ts.store;
        let many: Vec<NewApproval> = (0..105)
            .map(|i| new_approval(&format!("apv_{i:03}"), "expense", T0 + i))
            .collect();
        insert_approvals(s, &many).await;
        let page = s.list_approvals(&ApprovalFilter::default()).await.unwrap();
        assert_eq!(page.len(), 100, "{}", ts.name);
        assert_eq!(page[0].fields.id, "apv_104", "{}", ts.name);
        assert_eq!(page[99].fields.id, "apv_005", "{}", ts.name);
        let three = s
            .list_approvals(&ApprovalFilter {
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            ids(&three),
            ["apv_104", "apv_103", "apv_102"],
            "{}",
            ts.name
        );
    }
}

// ---- the webhook outbox --------------------------------------------------------------------

fn message(subject: &str, message_id: &str, at: Millis) -> NewWebhookMessage {
    NewWebhookMessage {
        subject: subject.into(),
        endpoint: "erp:/hooks/approvals".into(),
        message_id: message_id.into(),
        event_type: "approval.task.finished".into(),
        payload: json!({"审批": subject, "消息": message_id}),
        created_at: at,
    }
}

async fn add(s: &Arc<dyn Store>, m: &NewWebhookMessage) -> Option<WebhookMessageAdded> {
    let mut tx = s.begin().await.unwrap();
    let added = tx.add_webhook_message(m).await.unwrap();
    tx.commit().await.unwrap();
    added
}

async fn finish(
    s: &Arc<dyn Store>,
    message_id: &str,
    status: WebhookMessageStatus,
    attempts: i32,
    now: Millis,
) -> StoreResult<Option<WebhookMessage>> {
    let mut tx = s.begin().await?;
    let next = tx
        .finish_webhook_message(message_id, status, attempts, now)
        .await?;
    tx.commit().await?;
    Ok(next)
}

async fn reset(s: &Arc<dyn Store>, message_id: &str, now: Millis) -> StoreResult<WebhookMessage> {
    let mut tx = s.begin().await?;
    let m = tx.reset_webhook_message(message_id, now).await?;
    tx.commit().await?;
    Ok(m)
}

fn next_id(next: &Option<WebhookMessage>) -> Option<&str> {
    next.as_ref().map(|m| m.fields.message_id.as_str())
}

#[tokio::test]
async fn webhook_messages_get_seq_per_subject_and_duplicates_are_dropped() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let m1 = message("apv_1", "msg_1", T0);
        let a1 = add(s, &m1).await.unwrap();
        assert_eq!(a1.message.fields, m1, "{n}");
        assert_eq!(a1.message.seq, 1, "{n}");
        assert_eq!(a1.message.status, WebhookMessageStatus::Pending, "{n}");
        assert_eq!(a1.message.attempts, 0, "{n}");
        assert_eq!(a1.message.delivered_at, None, "{n}");
        assert!(a1.is_head, "{n}");
        let a2 = add(s, &message("apv_1", "msg_2", T0 + 1)).await.unwrap();
        assert_eq!((a2.message.seq, a2.is_head), (2, false), "{n}");
        // Another subject counts on its own.
        let b1 = add(s, &message("apv_2", "msg_b1", T0 + 2)).await.unwrap();
        assert_eq!((b1.message.seq, b1.is_head), (1, true), "{n}");

        // The same message_id again (even for another subject): nothing written, no seq used.
        assert!(
            add(s, &message("apv_1", "msg_2", T0 + 3)).await.is_none(),
            "{n}"
        );
        assert!(
            add(s, &message("apv_2", "msg_1", T0 + 3)).await.is_none(),
            "{n}"
        );
        let a3 = add(s, &message("apv_1", "msg_3", T0 + 4)).await.unwrap();
        assert_eq!((a3.message.seq, a3.is_head), (3, false), "{n}");
        let b2 = add(s, &message("apv_2", "msg_b2", T0 + 5)).await.unwrap();
        assert_eq!(b2.message.seq, 2, "{n}");

        let list = s.list_webhook_messages("apv_1").await.unwrap();
        let seqs: Vec<(i64, &str)> = list
            .iter()
            .map(|m| (m.seq, m.fields.message_id.as_str()))
            .collect();
        assert_eq!(seqs, [(1, "msg_1"), (2, "msg_2"), (3, "msg_3")], "{n}");
        assert_eq!(list[1].fields.created_at, T0 + 1, "{n}");
        assert_eq!(list[0], a1.message, "{n}");
        assert_eq!(
            s.get_webhook_message("msg_b2").await.unwrap().as_ref(),
            Some(&b2.message),
            "{n}"
        );
        assert!(
            s.get_webhook_message("msg_x").await.unwrap().is_none(),
            "{n}"
        );
        assert!(
            s.list_webhook_messages("apv_x").await.unwrap().is_empty(),
            "{n}"
        );
        assert_eq!(
            s.list_webhook_messages("apv_2").await.unwrap().len(),
            2,
            "{n}"
        );
    }
}

#[tokio::test]
async fn webhook_delivery_hands_over_in_order_and_dead_holds_back() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        for i in 1..=3 {
            add(s, &message("apv_1", &format!("msg_{i}"), T0 + i)).await;
        }

        // Delivered: hands over to the next one.
        let next = finish(s, "msg_1", WebhookMessageStatus::Delivered, 2, T0 + 10)
            .await
            .unwrap();
        assert_eq!(next_id(&next), Some("msg_2"), "{n}");
        assert_eq!(next.unwrap().seq, 2, "{n}");
        let m1 = s.get_webhook_message("msg_1").await.unwrap().unwrap();
        assert_eq!(m1.status, WebhookMessageStatus::Delivered, "{n}");
        assert_eq!(m1.attempts, 2, "{n}");
        assert_eq!(m1.delivered_at, Some(T0 + 10), "{n}");

        // Dead: nothing handed over; later messages wait, new ones are not the head.
        let next = finish(s, "msg_2", WebhookMessageStatus::Dead, 9, T0 + 20)
            .await
            .unwrap();
        assert_eq!(next, None, "{n}");
        let m2 = s.get_webhook_message("msg_2").await.unwrap().unwrap();
        assert_eq!(m2.status, WebhookMessageStatus::Dead, "{n}");
        assert_eq!(m2.attempts, 9, "{n}");
        assert_eq!(m2.delivered_at, None, "{n}");
        let a4 = add(s, &message("apv_1", "msg_4", T0 + 21)).await.unwrap();
        assert!(!a4.is_head, "{n}");
        assert_eq!(a4.message.seq, 4, "{n}");

        // A redelivery: pending again, and its delivery hands over as usual.
        let again = reset(s, "msg_2", T0 + 30).await.unwrap();
        assert_eq!(again.fields.message_id, "msg_2", "{n}");
        assert_eq!(again.status, WebhookMessageStatus::Pending, "{n}");
        assert_eq!(again.attempts, 9, "{n}");
        assert_eq!(again.seq, 2, "{n}");
        let next = finish(s, "msg_2", WebhookMessageStatus::Delivered, 10, T0 + 31)
            .await
            .unwrap();
        assert_eq!(next_id(&next), Some("msg_3"), "{n}");
        let next = finish(s, "msg_3", WebhookMessageStatus::Delivered, 1, T0 + 32)
            .await
            .unwrap();
        assert_eq!(next_id(&next), Some("msg_4"), "{n}");
        let next = finish(s, "msg_4", WebhookMessageStatus::Delivered, 1, T0 + 33)
            .await
            .unwrap();
        assert_eq!(next, None, "{n}");

        // Everything delivered: a new message is the head at once.
        let a5 = add(s, &message("apv_1", "msg_5", T0 + 40)).await.unwrap();
        assert!(a5.is_head, "{n}");
        assert_eq!(a5.message.seq, 5, "{n}");
        let statuses: Vec<WebhookMessageStatus> = s
            .list_webhook_messages("apv_1")
            .await
            .unwrap()
            .iter()
            .map(|m| m.status)
            .collect();
        use WebhookMessageStatus::{Delivered, Pending};
        assert_eq!(
            statuses,
            [Delivered, Delivered, Delivered, Delivered, Pending],
            "{n}"
        );

        // A delivered message reset and delivered again hands over to nothing while an
        // earlier-than-next message is dead: the dead one holds back the rest.
        add(s, &message("apv_3", "c1", T0)).await;
        add(s, &message("apv_3", "c2", T0)).await;
        add(s, &message("apv_3", "c3", T0)).await;
        finish(s, "c1", WebhookMessageStatus::Delivered, 1, T0 + 1)
            .await
            .unwrap();
        finish(s, "c2", WebhookMessageStatus::Dead, 9, T0 + 2)
            .await
            .unwrap();
        reset(s, "c1", T0 + 3).await.unwrap();
        let c1 = s.get_webhook_message("c1").await.unwrap().unwrap();
        assert_eq!(c1.delivered_at, None, "{n}");
        let next = finish(s, "c1", WebhookMessageStatus::Delivered, 2, T0 + 4)
            .await
            .unwrap();
        assert_eq!(next, None, "{n}: c2 is dead, c3 must wait");

        // Unknown messages are refused.
        let missing = finish(s, "msg_x", WebhookMessageStatus::Delivered, 1, T0).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{n}: {missing:?}"
        );
        let missing = reset(s, "msg_x", T0).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{n}: {missing:?}"
        );
        // A failed attempt that will be retried: the count is kept, nothing is handed on.
        let pending = finish(s, "msg_5", WebhookMessageStatus::Pending, 3, T0).await;
        assert!(matches!(pending, Ok(None)), "{n}: {pending:?}");
        let m = s.get_webhook_message("msg_5").await.unwrap().unwrap();
        assert_eq!(
            (m.status, m.attempts),
            (WebhookMessageStatus::Pending, 3),
            "{n}"
        );
    }
}

#[tokio::test]
async fn webhook_message_added_in_a_rolled_back_transaction_leaves_nothing() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let mut tx = s.begin().await.unwrap();
        let added = tx
            .add_webhook_message(&message("apv_1", "msg_1", T0))
            .await
            .unwrap();
        assert!(added.is_some(), "{n}");
        drop(tx);
        assert!(s.list_webhook_messages("apv_1").await.unwrap().is_empty());
        let a = add(s, &message("apv_1", "msg_1", T0)).await.unwrap();
        assert_eq!((a.message.seq, a.is_head), (1, true), "{n}");
    }
}

/// One transaction finishes message 1 while another adds message 2: message 2 is handed over
/// by the finish, or is the head when added, never neither (and never both).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_add_and_finish_of_one_subject_serialize() {
    for ts in test_stores().await {
        let n = ts.name;
        let s = &ts.store;

        // The finish holds the subject first; the add waits for it and is then the head.
        add(s, &message("apv_f", "f1", T0)).await;
        let mut finishing = s.begin().await.unwrap();
        let next = finishing
            .finish_webhook_message("f1", WebhookMessageStatus::Delivered, 1, T0 + 1)
            .await
            .unwrap();
        assert_eq!(next, None, "{n}");
        let adder = {
            let s = Arc::clone(s);
            tokio::spawn(async move { add(&s, &message("apv_f", "f2", T0 + 2)).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        finishing.commit().await.unwrap();
        let added = adder.await.unwrap().unwrap();
        assert!(
            added.is_head,
            "{n}: added after the finish, f2 must be the head"
        );

        // The add holds the subject first; the finish waits for it and hands over to it.
        add(s, &message("apv_a", "a1", T0)).await;
        let mut adding = s.begin().await.unwrap();
        let added = adding
            .add_webhook_message(&message("apv_a", "a2", T0 + 2))
            .await
            .unwrap()
            .unwrap();
        assert!(!added.is_head, "{n}");
        let finisher = {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                finish(&s, "a1", WebhookMessageStatus::Delivered, 1, T0 + 1)
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        adding.commit().await.unwrap();
        let next = finisher.await.unwrap();
        assert_eq!(
            next_id(&next),
            Some("a2"),
            "{n}: the finish must hand over to a2"
        );

        // And raced freely, many times over.
        for round in 0..20 {
            let subject = format!("apv_r{round}");
            let first = format!("r{round}_1");
            let second = format!("r{round}_2");
            add(s, &message(&subject, &first, T0)).await;
            let finisher = {
                let s = Arc::clone(s);
                tokio::spawn(async move {
                    finish(&s, &first, WebhookMessageStatus::Delivered, 1, T0 + 1)
                        .await
                        .unwrap()
                })
            };
            let adder = {
                let s = Arc::clone(s);
                let m = message(&subject, &second, T0 + 2);
                tokio::spawn(async move { add(&s, &m).await.unwrap() })
            };
            let next = finisher.await.unwrap();
            let added = adder.await.unwrap();
            let handed_over = next_id(&next) == Some(second.as_str());
            assert!(
                handed_over != added.is_head,
                "{n} round {round}: handed over {handed_over}, head {}",
                added.is_head
            );
        }
    }
}

#[tokio::test]
async fn webhook_payload_round_trips() {
    for ts in test_stores().await {
        let s = &ts.store;
        let payload: Value = json!({
            "type": "approval.completed",
            "data": {"结果": "同意", "金额": 1200.5, "审批人": ["张三", "李四"], "空": null}
        });
        let a = add(
            s,
            &NewWebhookMessage {
                payload: payload.clone(),
                ..message("apv_9", "msg_9", T0)
            },
        )
        .await
        .unwrap();
        let got = s.get_webhook_message("msg_9").await.unwrap().unwrap();
        assert_eq!(got.fields.payload, payload, "{}", ts.name);
        assert_eq!(got, a.message, "{}", ts.name);
    }
}

#[tokio::test]
async fn deliveries_are_listed_per_message_oldest_first() {
    for ts in test_stores().await {
        let (s, n) = (&ts.store, &ts.name);
        let mut tx = s.begin().await.unwrap();
        for (message, attempt, code) in [
            ("审批-1.started", 1, 503),
            ("审批-2.started", 1, 204),
            ("审批-1.started", 2, 204),
        ] {
            tx.record_delivery(&store::NewDelivery {
                endpoint: "oa:hooks".into(),
                message_id: message.into(),
                attempt,
                status_code: Some(code),
                response: None,
                outcome: if code == 204 {
                    "delivered".into()
                } else {
                    format!("http_{code}")
                },
                created_at: T0 + i64::from(attempt),
                duration_ms: 3,
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let got = s.list_message_deliveries("审批-1.started").await.unwrap();
        let seen: Vec<(i32, Option<i32>)> = got
            .iter()
            .map(|d| (d.entry.attempt, d.entry.status_code))
            .collect();
        assert_eq!(seen, [(1, Some(503)), (2, Some(204))], "{n}");
        assert!(
            s.list_message_deliveries("none").await.unwrap().is_empty(),
            "{n}"
        );
    }
}
