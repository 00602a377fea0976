//! The queue's state machine as a property test: random interleavings of enqueue, claim, ack,
//! fail, heartbeat, release, lease expiry, replay and discard are applied to the real store and
//! to a small model; after every step each job must be in the state the model says (so in
//! exactly one state), and no job may appear or vanish. Runs on every backend.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use store::*;
use store_testkit::{TestStore, postgres_store, sqlite_store};

const T0: Millis = 1_700_000_000_000;
const LEASE: i64 = 1_000;
const MAX_ATTEMPTS: i32 = 3;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        key: Option<u8>,
        priority: i8,
        delay: u16,
    },
    Claim {
        limit: u8,
    },
    Ack {
        lease: u8,
    },
    Fail {
        lease: u8,
        permanent: bool,
        delay: u16,
    },
    Heartbeat {
        lease: u8,
    },
    Release {
        lease: u8,
    },
    Advance {
        ms: u16,
    },
    Reap,
    Replay {
        job: u8,
    },
    Discard {
        job: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::option::of(0u8..4), -2i8..3, 0u16..1500)
            .prop_map(|(key, priority, delay)| Op::Enqueue { key, priority, delay }),
        3 => (1u8..4).prop_map(|limit| Op::Claim { limit }),
        2 => any::<u8>().prop_map(|lease| Op::Ack { lease }),
        2 => (any::<u8>(), any::<bool>(), 0u16..1500)
            .prop_map(|(lease, permanent, delay)| Op::Fail { lease, permanent, delay }),
        1 => any::<u8>().prop_map(|lease| Op::Heartbeat { lease }),
        1 => any::<u8>().prop_map(|lease| Op::Release { lease }),
        2 => (1u16..2500).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Reap),
        1 => any::<u8>().prop_map(|job| Op::Replay { job }),
        1 => any::<u8>().prop_map(|job| Op::Discard { job }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelJob {
    status: JobStatus,
    priority: i32,
    attempts: i32,
    run_at: Millis,
    seq: i64,
    lease_expires_at: Option<Millis>,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<JobId, ModelJob>,
    keys: BTreeMap<u8, JobId>,
    /// Every lease ever handed out, stale ones included, so stale use is exercised too.
    leases: Vec<LeaseRef>,
    now: Millis,
}

impl Model {
    fn lease_is_live(&self, l: &LeaseRef) -> bool {
        self.jobs
            .get(&l.job_id)
            .is_some_and(|j| j.status == JobStatus::Running && j.seq == l.seq)
    }
}

async fn run(ts: &TestStore, ops: &[Op]) -> Result<(), TestCaseError> {
    let s = &ts.store;
    let mut m = Model {
        now: T0,
        ..Default::default()
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("{} step {step} {op:?}", ts.name);
        match op {
            Op::Enqueue {
                key,
                priority,
                delay,
            } => {
                let mut job = NewJob::new("model", json!({"step": step}), m.now)
                    .priority(i32::from(*priority))
                    .max_attempts(MAX_ATTEMPTS)
                    .run_at(m.now + i64::from(*delay));
                if let Some(k) = key {
                    job = job.idempotency_key(format!("key-{k}"));
                }
                let out = s.enqueue(&job).await.unwrap();
                match key.and_then(|k| m.keys.get(&k)) {
                    Some(existing) => {
                        prop_assert!(!out.created, "{ctx}");
                        prop_assert_eq!(out.id, *existing, "{}", ctx);
                    }
                    None => {
                        prop_assert!(out.created, "{ctx}");
                        if let Some(k) = key {
                            m.keys.insert(*k, out.id);
                        }
                        m.jobs.insert(
                            out.id,
                            ModelJob {
                                status: JobStatus::Queued,
                                priority: job.priority,
                                attempts: 0,
                                run_at: job.run_at,
                                seq: 0,
                                lease_expires_at: None,
                            },
                        );
                    }
                }
            }
            Op::Claim { limit } => {
                let mut runnable: Vec<(&JobId, &ModelJob)> = m
                    .jobs
                    .iter()
                    .filter(|(_, j)| {
                        matches!(j.status, JobStatus::Queued | JobStatus::Retry)
                            && j.run_at <= m.now
                    })
                    .collect();
                runnable.sort_by(|(ia, a), (ib, b)| {
                    (b.priority, a.run_at, **ia).cmp(&(a.priority, b.run_at, **ib))
                });
                let expected: Vec<JobId> = runnable
                    .iter()
                    .take(usize::from(*limit))
                    .map(|(id, _)| **id)
                    .collect();
                let got = s
                    .claim_jobs(&ClaimRequest {
                        worker: "model".into(),
                        queues: vec!["default".into()],
                        limit: i64::from(*limit),
                        lease_ms: LEASE,
                        now: m.now,
                    })
                    .await
                    .unwrap();
                let got_ids: Vec<JobId> = got.iter().map(|j| j.id).collect();
                prop_assert_eq!(&got_ids, &expected, "{}", ctx);
                for job in got {
                    let mj = m.jobs.get_mut(&job.id).unwrap();
                    mj.status = JobStatus::Running;
                    mj.attempts += 1;
                    mj.seq += 1;
                    mj.lease_expires_at = Some(m.now + LEASE);
                    prop_assert_eq!(job.lease_seq, mj.seq, "{}", ctx);
                    m.leases.push(job.lease());
                }
            }
            Op::Ack { lease }
            | Op::Heartbeat { lease }
            | Op::Release { lease }
            | Op::Fail { lease, .. } => {
                if m.leases.is_empty() {
                    continue;
                }
                let l = m.leases[usize::from(*lease) % m.leases.len()];
                let live = m.lease_is_live(&l);
                let result = match op {
                    Op::Ack { .. } => {
                        let mut tx = s.begin().await.unwrap();
                        let r = tx.ack_job(&l, m.now).await;
                        if r.is_ok() {
                            tx.commit().await.unwrap();
                        }
                        r.map(|_| JobStatus::Done)
                    }
                    Op::Heartbeat { .. } => s
                        .heartbeat(&l, m.now + LEASE, m.now)
                        .await
                        .map(|_| JobStatus::Running),
                    Op::Release { .. } => s.release_job(&l, m.now).await.map(|_| JobStatus::Queued),
                    Op::Fail {
                        permanent, delay, ..
                    } => {
                        let attempts = m.jobs[&l.job_id].attempts;
                        let retry_at = (!*permanent && attempts < MAX_ATTEMPTS)
                            .then_some(m.now + i64::from(*delay));
                        let failure = JobFailure {
                            class: if *permanent {
                                ErrorClass::Permanent
                            } else {
                                ErrorClass::Retryable
                            },
                            message: "模型失败".into(),
                            retry_at,
                            now: m.now,
                        };
                        let r = s.fail_job(&l, &failure).await;
                        if let (Ok(_), Some(at)) = (&r, retry_at) {
                            m.jobs.get_mut(&l.job_id).unwrap().run_at = at;
                        }
                        r
                    }
                    _ => unreachable!(),
                };
                match result {
                    Ok(status) => {
                        prop_assert!(live, "{ctx}: a stale lease was accepted");
                        let mj = m.jobs.get_mut(&l.job_id).unwrap();
                        mj.status = status;
                        match op {
                            Op::Heartbeat { .. } => mj.lease_expires_at = Some(m.now + LEASE),
                            Op::Release { .. } => {
                                mj.attempts -= 1;
                                mj.run_at = mj.run_at.min(m.now);
                                mj.lease_expires_at = None;
                            }
                            _ => mj.lease_expires_at = None,
                        }
                    }
                    Err(StoreError::LeaseLost(_)) => {
                        prop_assert!(!live, "{ctx}: a live lease was refused");
                    }
                    Err(e) => prop_assert!(false, "{ctx}: {e}"),
                }
            }
            Op::Advance { ms } => m.now += i64::from(*ms),
            Op::Reap => {
                let report = s.reap_expired_leases(m.now).await.unwrap();
                let mut expected = ReapReport::default();
                for j in m.jobs.values_mut() {
                    if j.status == JobStatus::Running
                        && j.lease_expires_at.is_some_and(|t| t < m.now)
                    {
                        j.lease_expires_at = None;
                        if j.attempts >= MAX_ATTEMPTS {
                            j.status = JobStatus::Dead;
                            expected.dead += 1;
                        } else {
                            j.status = JobStatus::Retry;
                            j.run_at = m.now;
                            expected.retried += 1;
                        }
                    }
                }
                prop_assert_eq!(report, expected, "{}", ctx);
            }
            Op::Replay { job } | Op::Discard { job } => {
                if m.jobs.is_empty() {
                    continue;
                }
                let id = *m.jobs.keys().nth(usize::from(*job) % m.jobs.len()).unwrap();
                let was_dead = m.jobs[&id].status == JobStatus::Dead;
                let r = if matches!(op, Op::Replay { .. }) {
                    s.replay_job(id, m.now).await
                } else {
                    s.discard_job(id, m.now).await
                };
                match r {
                    Ok(()) => {
                        prop_assert!(was_dead, "{ctx}: only dead jobs may be replayed/discarded");
                        let mj = m.jobs.get_mut(&id).unwrap();
                        if matches!(op, Op::Replay { .. }) {
                            mj.status = JobStatus::Queued;
                            mj.attempts = 0;
                            mj.run_at = m.now;
                        } else {
                            mj.status = JobStatus::Discarded;
                        }
                    }
                    Err(StoreError::InvalidState(_)) => prop_assert!(!was_dead, "{ctx}"),
                    Err(e) => prop_assert!(false, "{ctx}: {e}"),
                }
            }
        }
        // After every step: the store holds exactly the model's jobs, each in the model's state.
        let stored = s
            .list_jobs(&JobFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        prop_assert_eq!(
            stored.len(),
            m.jobs.len(),
            "{}: a job appeared or vanished",
            ctx
        );
        for job in stored {
            let mj = m.jobs.get(&job.id);
            prop_assert!(mj.is_some(), "{ctx}: unknown job {}", job.id);
            let mj = mj.unwrap();
            prop_assert_eq!(
                (job.status, job.attempts, job.lease_seq),
                (mj.status, mj.attempts, mj.seq),
                "{}: job {}",
                ctx,
                job.id
            );
            if matches!(job.status, JobStatus::Queued | JobStatus::Retry) {
                prop_assert_eq!(job.run_at, mj.run_at, "{}: run_at of job {}", ctx, job.id);
            }
        }
        let depth_total: i64 = s
            .queue_depths()
            .await
            .unwrap()
            .iter()
            .map(|d| d.count)
            .sum();
        prop_assert_eq!(depth_total, m.jobs.len() as i64, "{}", ctx);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn queue_state_machine_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ts = sqlite_store().await.unwrap();
            run(&ts, &ops).await?;
            if let Some(ts) = postgres_store().await.unwrap() {
                run(&ts, &ops).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
