//! The worker pool and the scheduler against real stores (SQLite, and PostgreSQL when up).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::clock::now_ms;
use engine::jobs::{HandlerRegistry, JobContext, JobEffects, JobError, JobHandler};
use engine::retry::RetryPolicy;
use engine::scheduler::{ScheduledFlow, Scheduler, parse_cron};
use engine::worker::{RetryPolicies, WorkerPool, WorkerSettings};
use serde_json::json;
use store::{ErrorClass, Job, JobFilter, JobStatus, NewJob, Store, TransferFilter};
use store_testkit::test_stores;
use tokio_util::sync::CancellationToken;

fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        count: 3,
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        ..WorkerSettings::default()
    }
}

fn fast_retries() -> RetryPolicies {
    RetryPolicies {
        default: RetryPolicy {
            schedule: vec![Duration::from_millis(50); 3],
            jitter: 0.0,
        },
        ..RetryPolicies::default()
    }
}

struct Panics;

#[async_trait]
impl JobHandler for Panics {
    async fn run(&self, _job: &Job, _ctx: &JobContext) -> Result<JobEffects, JobError> {
        panic!("handler bug")
    }
}

async fn run_until_settled(store: &Arc<dyn Store>, handlers: HandlerRegistry, expected: usize) {
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(Arc::clone(store), handlers, fast_retries(), fast_settings());
    let running = tokio::spawn(pool.run(shutdown.clone()));
    for _ in 0..500 {
        let settled: i64 = store
            .queue_depths()
            .await
            .unwrap()
            .iter()
            .filter(|d| matches!(d.status, JobStatus::Done | JobStatus::Dead))
            .map(|d| d.count)
            .sum();
        if settled == expected as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_routed_by_class_and_effects_land_with_the_ack() {
    for ts in test_stores().await {
        let s = &ts.store;
        let now = now_ms();
        let flaky = s
            .enqueue(
                &NewJob::new(
                    "selftest",
                    json!({"key": "报销-1", "fail_attempts": 2}),
                    now,
                )
                .max_attempts(4),
            )
            .await
            .unwrap()
            .id;
        let hopeless = s
            .enqueue(
                &NewJob::new(
                    "selftest",
                    json!({"key": "报销-2", "fail_attempts": 9}),
                    now,
                )
                .max_attempts(3),
            )
            .await
            .unwrap()
            .id;
        let invalid = s
            .enqueue(&NewJob::new("selftest", json!({"permanent": true}), now))
            .await
            .unwrap()
            .id;
        let unknown = s
            .enqueue(&NewJob::new("no.such.kind", json!({}), now))
            .await
            .unwrap()
            .id;
        let panics = s
            .enqueue(&NewJob::new("panics", json!({}), now).max_attempts(2))
            .await
            .unwrap()
            .id;
        let mut handlers = HandlerRegistry::with_builtins();
        handlers.register("panics", Arc::new(Panics));
        run_until_settled(s, handlers, 5).await;

        let get = |id| {
            let s = Arc::clone(s);
            async move { s.get_job(id).await.unwrap().unwrap() }
        };
        let j = get(flaky).await;
        assert_eq!(
            (j.status, j.attempts),
            (JobStatus::Done, 3),
            "{}: retried twice then done",
            ts.name
        );
        let j = get(hopeless).await;
        assert_eq!(
            (j.status, j.attempts),
            (JobStatus::Dead, 3),
            "{}: dead after its last attempt",
            ts.name
        );
        assert_eq!(j.error_class, Some(ErrorClass::Retryable));
        let j = get(invalid).await;
        assert_eq!(
            (j.status, j.attempts),
            (JobStatus::Dead, 1),
            "{}: permanent → dead at once",
            ts.name
        );
        assert_eq!(j.error_class, Some(ErrorClass::Permanent));
        let j = get(unknown).await;
        assert_eq!(j.status, JobStatus::Dead);
        assert!(
            j.last_error
                .unwrap()
                .contains("no handler for job kind `no.such.kind`")
        );
        let j = get(panics).await;
        assert_eq!(
            (j.status, j.attempts),
            (JobStatus::Dead, 2),
            "{}: a panic is a retryable failure",
            ts.name
        );

        // Only the finished job left an effect, exactly one.
        let log = s.list_transfers(&TransferFilter::default()).await.unwrap();
        assert_eq!(log.len(), 1, "{}", ts.name);
        assert_eq!(log[0].entry.source_key, "报销-1");
        assert_eq!(log[0].entry.attempt, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_a_due_schedule_once() {
    for ts in test_stores().await {
        let s = &ts.store;
        let flow = ScheduledFlow {
            name: "对账".into(),
            cron_text: "* * * * *".into(),
            cron: parse_cron("* * * * *").unwrap(),
            job: NewJob::new("selftest", json!({"title": "每分钟对账"}), 0).flow("reconcile"),
        };
        let a = Scheduler::new(Arc::clone(s), vec![flow.clone()]);
        let b = Scheduler::new(Arc::clone(s), vec![flow]);
        let t0 = 1_700_000_040_000; // a whole minute
        a.register(t0).await.unwrap();
        b.register(t0).await.unwrap();
        // Not due yet.
        assert_eq!(a.tick(t0 + 59_000).await.unwrap(), 0);
        let (x, y) = tokio::join!(a.tick(t0 + 60_000), b.tick(t0 + 60_000));
        assert_eq!(x.unwrap() + y.unwrap(), 1, "{}", ts.name);
        // Missed slots (the hub was down for 5 minutes) fire once, then the next is in the future.
        let (x, y) = tokio::join!(a.tick(t0 + 360_500), b.tick(t0 + 360_500));
        assert_eq!(x.unwrap() + y.unwrap(), 1, "{}", ts.name);
        assert_eq!(a.tick(t0 + 360_900).await.unwrap(), 0);
        let jobs = s.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(jobs.len(), 2, "{}", ts.name);
        assert!(jobs.iter().all(|j| j.flow.as_deref() == Some("reconcile")));
        let next = s.list_schedules().await.unwrap()[0].next_fire_at;
        assert_eq!(next, t0 + 420_000, "{}", ts.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_event_job_marks_the_event_processed() {
    for ts in test_stores().await {
        let s = &ts.store;
        let now = now_ms();
        let mut tx = s.begin().await.unwrap();
        tx.insert_event(&store::NewEvent {
            connection: "dingtalk".into(),
            event_id: "ev-9".into(),
            event_type: "org_dept_create".into(),
            payload: json!({"deptId": [42], "名称": "华东大区"}),
            received_at: now,
        })
        .await
        .unwrap();
        tx.enqueue(&NewJob::new(
            "dingtalk.event",
            json!({"connection": "dingtalk", "event_id": "ev-9"}),
            now,
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        run_until_settled(s, HandlerRegistry::with_builtins(), 1).await;
        let event = s.get_event("dingtalk", "ev-9").await.unwrap().unwrap();
        assert!(event.processed_at.is_some(), "{}", ts.name);
        let log = s.list_transfers(&TransferFilter::default()).await.unwrap();
        assert_eq!(log[0].entry.source_key, "dingtalk:ev-9");
        assert_eq!(log[0].entry.flow, "inbox");
    }
}
