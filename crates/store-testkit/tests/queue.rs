//! Queue behaviour every backend must show.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use store::*;
use store_testkit::test_stores;

const T0: Millis = 1_700_000_000_000;

fn claim(worker: &str, limit: i64, now: Millis) -> ClaimRequest {
    ClaimRequest {
        worker: worker.into(),
        queues: vec![],
        limit,
        lease_ms: 30_000,
        now,
    }
}

#[tokio::test]
async fn idempotency_key_yields_one_job() {
    for ts in test_stores().await {
        let s = &ts.store;
        let job =
            NewJob::new("审批.同步", json!({"标题": "费用报销"}), T0).idempotency_key("proc-1");
        let a = s.enqueue(&job).await.unwrap();
        let b = s.enqueue(&job).await.unwrap();
        assert!(a.created, "{}", ts.name);
        assert!(!b.created, "{}", ts.name);
        assert_eq!(a.id, b.id, "{}", ts.name);
        // Concurrently, from many tasks: still one.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = Arc::clone(s);
            let job = NewJob::new("k", json!({}), T0).idempotency_key("concurrent-key");
            tasks.push(tokio::spawn(async move { s.enqueue(&job).await.unwrap() }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        assert_eq!(ids.iter().filter(|e| e.created).count(), 1, "{}", ts.name);
        assert!(ids.iter().all(|e| e.id == ids[0].id), "{}", ts.name);
        // Jobs without a key are never merged.
        let c = s.enqueue(&NewJob::new("k", json!({}), T0)).await.unwrap();
        let d = s.enqueue(&NewJob::new("k", json!({}), T0)).await.unwrap();
        assert_ne!(c.id, d.id, "{}", ts.name);
        let all = s.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(all.len(), 4, "{}", ts.name);
    }
}

#[tokio::test]
async fn enqueue_rolls_back_with_the_callers_transaction() {
    for ts in test_stores().await {
        let s = &ts.store;
        let mut tx = s.begin().await.unwrap();
        let event = NewEvent {
            connection: "钉钉".into(),
            event_id: "ev-1".into(),
            event_type: "user_add_org".into(),
            payload: json!({"name": "张伟"}),
            received_at: T0,
        };
        assert!(tx.insert_event(&event).await.unwrap());
        tx.enqueue(&NewJob::new("event", json!({"event_id": "ev-1"}), T0))
            .await
            .unwrap();
        drop(tx); // no commit
        assert!(
            s.list_jobs(&JobFilter::default()).await.unwrap().is_empty(),
            "{}",
            ts.name
        );
        assert!(
            s.get_event("钉钉", "ev-1").await.unwrap().is_none(),
            "{}",
            ts.name
        );

        let mut tx = s.begin().await.unwrap();
        assert!(tx.insert_event(&event).await.unwrap());
        tx.enqueue(&NewJob::new("event", json!({"event_id": "ev-1"}), T0))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The same event again: seen, nothing new.
        let mut tx = s.begin().await.unwrap();
        assert!(!tx.insert_event(&event).await.unwrap(), "{}", ts.name);
        tx.commit().await.unwrap();
        let stored = s.get_event("钉钉", "ev-1").await.unwrap().unwrap();
        assert_eq!(stored.payload["name"], "张伟");
        assert_eq!(s.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn claim_honours_priority_delay_and_queues() {
    for ts in test_stores().await {
        let s = &ts.store;
        let low = s.enqueue(&NewJob::new("k", json!(1), T0)).await.unwrap().id;
        let high = s
            .enqueue(&NewJob::new("k", json!(2), T0).priority(5))
            .await
            .unwrap()
            .id;
        let later = s
            .enqueue(&NewJob::new("k", json!(3), T0).run_at(T0 + 60_000))
            .await
            .unwrap()
            .id;
        let other = s
            .enqueue(&NewJob::new("k", json!(4), T0).queue("通知"))
            .await
            .unwrap()
            .id;
        let mut req = claim("w1", 10, T0);
        req.queues = vec!["default".into()];
        let got: Vec<JobId> = s
            .claim_jobs(&req)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            got,
            vec![high, low],
            "{}: priority first, delayed and other queues left",
            ts.name
        );
        let got = s.claim_jobs(&claim("w1", 10, T0)).await.unwrap();
        assert_eq!(
            got.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![other],
            "{}",
            ts.name
        );
        assert!(
            s.claim_jobs(&claim("w1", 10, T0 + 59_999))
                .await
                .unwrap()
                .is_empty()
        );
        let got = s.claim_jobs(&claim("w1", 10, T0 + 60_000)).await.unwrap();
        assert_eq!(got[0].id, later, "{}", ts.name);
        assert_eq!(got[0].attempts, 1);
        assert_eq!(got[0].status, JobStatus::Running);
    }
}

#[tokio::test]
async fn stale_lease_cannot_ack_and_its_effects_roll_back() {
    for ts in test_stores().await {
        let s = &ts.store;
        let id = s
            .enqueue(&NewJob::new("k", json!({}), T0))
            .await
            .unwrap()
            .id;
        let first = s.claim_jobs(&claim("w1", 1, T0)).await.unwrap().remove(0);
        // The lease runs out, the reaper hands the job to another worker.
        let report = s.reap_expired_leases(T0 + 31_000).await.unwrap();
        assert_eq!(
            report,
            ReapReport {
                retried: 1,
                dead: 0
            },
            "{}",
            ts.name
        );
        let second = s
            .claim_jobs(&claim("w2", 1, T0 + 31_000))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(second.id, id);
        assert_eq!(second.attempts, 2);

        let mut tx = s.begin().await.unwrap();
        tx.append_transfer(&transfer("stale")).await.unwrap();
        let err = tx.ack_job(&first.lease(), T0 + 32_000).await.unwrap_err();
        assert!(
            matches!(err, StoreError::LeaseLost(_)),
            "{}: {err}",
            ts.name
        );
        drop(tx);
        assert!(matches!(
            s.heartbeat(&first.lease(), T0 + 90_000, T0 + 32_000).await,
            Err(StoreError::LeaseLost(_))
        ));

        let mut tx = s.begin().await.unwrap();
        tx.append_transfer(&transfer("fresh")).await.unwrap();
        tx.ack_job(&second.lease(), T0 + 32_000).await.unwrap();
        tx.commit().await.unwrap();
        let log = s.list_transfers(&TransferFilter::default()).await.unwrap();
        assert_eq!(log.len(), 1, "{}", ts.name);
        assert_eq!(log[0].entry.outcome, "fresh");
        assert_eq!(
            s.get_job(id).await.unwrap().unwrap().status,
            JobStatus::Done
        );
    }
}

fn transfer(outcome: &str) -> NewTransfer {
    NewTransfer {
        flow: "selftest".into(),
        source_key: "k".into(),
        target_key: None,
        job_id: None,
        attempt: 1,
        request: Some(json!({"部门": "研发部"})),
        response: None,
        outcome: outcome.into(),
        error: None,
        started_at: T0,
        duration_ms: 3,
    }
}

#[tokio::test]
async fn failures_retry_then_dead_letter_then_replay_or_discard() {
    for ts in test_stores().await {
        let s = &ts.store;
        let id = s
            .enqueue(&NewJob::new("k", json!({}), T0).max_attempts(2))
            .await
            .unwrap()
            .id;
        let job = s.claim_jobs(&claim("w", 1, T0)).await.unwrap().remove(0);
        let failure = JobFailure {
            class: ErrorClass::Retryable,
            message: "连接超时 (timeout)".into(),
            retry_at: Some(T0 + 1_000),
            now: T0,
        };
        assert_eq!(
            s.fail_job(&job.lease(), &failure).await.unwrap(),
            JobStatus::Retry
        );
        assert!(
            s.claim_jobs(&claim("w", 1, T0 + 999))
                .await
                .unwrap()
                .is_empty()
        );
        let job = s
            .claim_jobs(&claim("w", 1, T0 + 1_000))
            .await
            .unwrap()
            .remove(0);
        let dead = JobFailure {
            retry_at: None,
            ..failure.clone()
        };
        assert_eq!(
            s.fail_job(&job.lease(), &dead).await.unwrap(),
            JobStatus::Dead
        );
        let stored = s.get_job(id).await.unwrap().unwrap();
        assert_eq!(stored.last_error.as_deref(), Some("连接超时 (timeout)"));
        assert_eq!(stored.error_class, Some(ErrorClass::Retryable));
        assert!(stored.finished_at.is_some());

        // Replay puts it back with fresh attempts; only dead jobs can be replayed.
        s.replay_job(id, T0 + 2_000).await.unwrap();
        assert!(matches!(
            s.replay_job(id, T0 + 2_000).await,
            Err(StoreError::InvalidState(_))
        ));
        let job = s
            .claim_jobs(&claim("w", 1, T0 + 2_000))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(job.attempts, 1, "{}", ts.name);
        let permanent = JobFailure {
            class: ErrorClass::Permanent,
            message: "字段 FName 必填".into(),
            retry_at: None,
            now: T0 + 2_000,
        };
        s.fail_job(&job.lease(), &permanent).await.unwrap();
        s.discard_job(id, T0 + 3_000).await.unwrap();
        assert_eq!(
            s.get_job(id).await.unwrap().unwrap().status,
            JobStatus::Discarded
        );
        assert!(matches!(
            s.discard_job(JobId(999_999), T0).await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn release_gives_the_attempt_back_and_reaper_dead_letters_the_last() {
    for ts in test_stores().await {
        let s = &ts.store;
        let id = s
            .enqueue(&NewJob::new("k", json!({}), T0).max_attempts(1))
            .await
            .unwrap()
            .id;
        let job = s.claim_jobs(&claim("w", 1, T0)).await.unwrap().remove(0);
        s.release_job(&job.lease(), T0).await.unwrap();
        let stored = s.get_job(id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (JobStatus::Queued, 0),
            "{}",
            ts.name
        );
        let job = s.claim_jobs(&claim("w", 1, T0)).await.unwrap().remove(0);
        assert_eq!(job.attempts, 1);
        let report = s.reap_expired_leases(T0 + 30_001).await.unwrap();
        assert_eq!(
            report,
            ReapReport {
                retried: 0,
                dead: 1
            },
            "{}",
            ts.name
        );
        assert_eq!(
            s.get_job(id).await.unwrap().unwrap().status,
            JobStatus::Dead
        );
    }
}

#[tokio::test]
async fn concurrent_workers_do_each_job_once() {
    const JOBS: usize = 200;
    for ts in test_stores().await {
        let s = &ts.store;
        for i in 0..JOBS {
            s.enqueue(&NewJob::new("k", json!({ "n": i }), T0))
                .await
                .unwrap();
        }
        let mut workers = Vec::new();
        for w in 0..6 {
            let s = Arc::clone(s);
            workers.push(tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let jobs = s.claim_jobs(&claim(&format!("w{w}"), 4, T0)).await.unwrap();
                    if jobs.is_empty() {
                        return done;
                    }
                    for job in jobs {
                        let mut tx = s.begin().await.unwrap();
                        let mut t = transfer("done");
                        t.source_key = job.id.to_string();
                        t.job_id = Some(job.id);
                        tx.append_transfer(&t).await.unwrap();
                        tx.ack_job(&job.lease(), T0).await.unwrap();
                        tx.commit().await.unwrap();
                        done += 1;
                    }
                }
            }));
        }
        let mut total = 0;
        for w in workers {
            total += w.await.unwrap();
        }
        assert_eq!(total, JOBS, "{}", ts.name);
        let log = s
            .list_transfers(&TransferFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut per_job: HashMap<String, usize> = HashMap::new();
        for t in log {
            *per_job.entry(t.entry.source_key).or_default() += 1;
        }
        assert_eq!(per_job.len(), JOBS, "{}", ts.name);
        assert!(per_job.values().all(|&n| n == 1), "{}", ts.name);
        let depths = s.queue_depths().await.unwrap();
        assert_eq!(
            depths,
            vec![QueueDepth {
                queue: "default".into(),
                status: JobStatus::Done,
                count: JOBS as i64
            }],
            "{}",
            ts.name
        );
    }
}

#[tokio::test]
async fn a_due_schedule_fires_once_across_nodes() {
    for ts in test_stores().await {
        let s = &ts.store;
        let spec = ScheduleSpec {
            name: "org_sync".into(),
            cron: "*/10 * * * *".into(),
            next_fire_at: T0,
            now: T0,
        };
        s.upsert_schedule(&spec).await.unwrap();
        let mut nodes = Vec::new();
        for _ in 0..8 {
            let s = Arc::clone(s);
            nodes.push(tokio::spawn(async move {
                let job = NewJob::new("flow.run", json!({"flow": "org_sync"}), T0)
                    .idempotency_key(format!("schedule:org_sync:{T0}"));
                s.fire_schedule("org_sync", T0, T0 + 600_000, &job)
                    .await
                    .unwrap()
            }));
        }
        let mut fired = 0;
        for n in nodes {
            fired += usize::from(n.await.unwrap().is_some());
        }
        assert_eq!(fired, 1, "{}", ts.name);
        assert_eq!(s.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
        let sched = s.list_schedules().await.unwrap().remove(0);
        assert_eq!(sched.next_fire_at, T0 + 600_000);
        assert_eq!(sched.last_fired_at, Some(T0));
        // Re-registering the same cron keeps the due time; a new cron resets it.
        s.upsert_schedule(&ScheduleSpec {
            now: T0 + 5,
            ..spec.clone()
        })
        .await
        .unwrap();
        assert_eq!(
            s.list_schedules().await.unwrap()[0].next_fire_at,
            T0 + 600_000
        );
        s.upsert_schedule(&ScheduleSpec {
            cron: "0 * * * *".into(),
            next_fire_at: T0 + 3_600_000,
            ..spec
        })
        .await
        .unwrap();
        assert_eq!(
            s.list_schedules().await.unwrap()[0].next_fire_at,
            T0 + 3_600_000
        );
    }
}
