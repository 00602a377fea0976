//! The worker pool: N tasks per process claim jobs under a lease, keep the lease alive with
//! heartbeats while the handler runs, and finish each attempt in one of three ways: effects +
//! ack in one transaction, a failure routed by the retry policy, or (on shutdown) a release.
//! A reaper task returns the jobs of workers that died (expired leases) to the queue.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::Rng;
use store::{ClaimRequest, Job, JobFailure, JobStatus, Store, StoreError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::now_ms;

/// Idle workers of this process wait on this as well as on their poll interval.
static WAKE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// `jobs` were just made runnable in this process (an inbound event stored, an API request
/// queued work, an ack enqueued follow-ups): wake idle workers now rather than at their next
/// poll. Workers of other processes find the jobs at their next poll, as before.
pub fn wake_workers(jobs: usize) {
    match jobs {
        0 => {}
        // One waiting worker, or the next one to go idle (the permit is kept).
        1 => WAKE.notify_one(),
        _ => WAKE.notify_waiters(),
    }
}
use crate::jobs::{HandlerRegistry, JobContext, JobError};
use crate::retry::RetryPolicy;

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Worker tasks in this process.
    pub count: usize,
    /// A claim's lease; heartbeats renew it every third of it.
    pub lease: Duration,
    /// How long an idle worker waits before looking again (with jitter).
    pub poll_interval: Duration,
    /// Queues to take work from; empty = all.
    pub queues: Vec<String>,
    /// On shutdown, how long running jobs may take to finish before they are released.
    pub shutdown_grace: Duration,
    /// Unique per process; worker names are `<node_id>/<n>`.
    pub node_id: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            count: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            queues: Vec::new(),
            shutdown_grace: Duration::from_secs(20),
            node_id: default_node_id(),
        }
    }
}

/// `<host>-<pid>-<random>`: distinct for every process, readable in `jobs list`.
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Retry policies: one per flow where configured, else the default.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicies {
    pub default: RetryPolicy,
    pub per_flow: HashMap<String, RetryPolicy>,
}

impl RetryPolicies {
    pub fn for_job(&self, job: &Job) -> &RetryPolicy {
        job.flow
            .as_ref()
            .and_then(|f| self.per_flow.get(f))
            .unwrap_or(&self.default)
    }
}

/// The worker tasks and the reaper of one process.
pub struct WorkerPool {
    store: Arc<dyn Store>,
    handlers: Arc<HandlerRegistry>,
    retry: Arc<RetryPolicies>,
    settings: WorkerSettings,
}

impl WorkerPool {
    pub fn new(
        store: Arc<dyn Store>,
        handlers: HandlerRegistry,
        retry: RetryPolicies,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            store,
            handlers: Arc::new(handlers),
            retry: Arc::new(retry),
            settings,
        }
    }

    /// Run until `shutdown` is cancelled and every claimed job has been finished or released.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        for n in 0..self.settings.count.max(1) {
            let worker = Worker {
                name: format!("{}/{n}", self.settings.node_id),
                store: Arc::clone(&self.store),
                handlers: Arc::clone(&self.handlers),
                retry: Arc::clone(&self.retry),
                settings: self.settings.clone(),
            };
            tasks.spawn(worker.run(shutdown.clone()));
        }
        tasks.spawn(reap_loop(
            Arc::clone(&self.store),
            self.settings.lease,
            shutdown.clone(),
        ));
        info!(workers = self.settings.count, node = %self.settings.node_id, "worker pool started");
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                error!(error = %e, "a worker task ended abnormally");
            }
        }
        info!("worker pool stopped");
    }
}

/// Return jobs of lost workers to the queue, every half lease.
async fn reap_loop(store: Arc<dyn Store>, lease: Duration, shutdown: CancellationToken) {
    let period = (lease / 2).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match store.reap_expired_leases(now_ms()).await {
            Ok(r) if r.retried + r.dead > 0 => {
                warn!(
                    retried = r.retried,
                    dead = r.dead,
                    "reaped jobs whose lease expired"
                );
                metrics::counter!("dingbridge_jobs_reaped_total").increment(r.retried + r.dead);
                metrics::counter!("dingbridge_jobs_dead_total").increment(r.dead);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "lease reaper could not reach the store"),
        }
    }
}

struct Worker {
    name: String,
    store: Arc<dyn Store>,
    handlers: Arc<HandlerRegistry>,
    retry: Arc<RetryPolicies>,
    settings: WorkerSettings,
}

impl Worker {
    async fn run(self, shutdown: CancellationToken) {
        let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(30_000);
        while !shutdown.is_cancelled() {
            let req = ClaimRequest {
                worker: self.name.clone(),
                queues: self.settings.queues.clone(),
                limit: 1,
                lease_ms,
                now: now_ms(),
            };
            let started = Instant::now();
            match self.store.claim_jobs(&req).await {
                Ok(jobs) if !jobs.is_empty() => {
                    metrics::histogram!("dingbridge_claim_seconds")
                        .record(started.elapsed().as_secs_f64());
                    for job in jobs {
                        metrics::counter!("dingbridge_jobs_claimed_total", "queue" => job.queue.clone())
                            .increment(1);
                        self.process(job, &shutdown).await;
                    }
                }
                Ok(_) => self.idle(&shutdown).await,
                Err(e) => {
                    warn!(worker = %self.name, error = %e, "claim failed; will try again");
                    self.idle(&shutdown).await;
                }
            }
        }
        debug!(worker = %self.name, "worker stopped");
    }

    async fn idle(&self, shutdown: &CancellationToken) {
        let base = self.settings.poll_interval.as_millis() as u64;
        let wait = Duration::from_millis(rand::rng().random_range(base / 2..=base.max(1) * 3 / 2));
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
            () = WAKE.notified() => {}
        }
    }

    async fn process(&self, job: Job, shutdown: &CancellationToken) {
        let lease = job.lease();
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat_loop(
            Arc::clone(&self.store),
            lease,
            self.settings.lease,
            lost.clone(),
        ));
        let ctx = JobContext {
            store: Arc::clone(&self.store),
            worker: self.name.clone(),
        };
        let started = Instant::now();
        let outcome = match self.handlers.get(&job.kind) {
            None => Some(Err(JobError::permanent(format!(
                "no handler for job kind `{}` on this node; known kinds: {}",
                job.kind,
                self.handlers.kinds().collect::<Vec<_>>().join(", ")
            )))),
            Some(handler) => {
                let run = std::panic::AssertUnwindSafe(handler.run(&job, &ctx)).catch_unwind();
                let grace = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(self.settings.shutdown_grace).await;
                };
                tokio::select! {
                    r = run => Some(r.unwrap_or_else(|_| Err(JobError::retryable("the job handler panicked")))),
                    () = grace => None,
                    () = lost.cancelled() => {
                        warn!(job = %job.id, "lease lost while running; another worker owns the job now");
                        heartbeat.abort();
                        return;
                    }
                }
            }
        };
        heartbeat.abort();
        let kind = job.kind.clone();
        metrics::histogram!("dingbridge_job_seconds", "kind" => kind.clone())
            .record(started.elapsed().as_secs_f64());
        match outcome {
            None => {
                // Shutdown grace ran out: hand the job back without using up an attempt.
                match self.store.release_job(&lease, now_ms()).await {
                    Ok(()) => info!(job = %job.id, "released on shutdown"),
                    Err(e) => {
                        warn!(job = %job.id, error = %e, "release on shutdown failed; the reaper will return it")
                    }
                }
            }
            Some(Ok(effects)) => {
                // This worker claims again at once; the others are woken for the rest.
                let follow_ups = effects.enqueue.len().saturating_sub(1);
                let commit = async {
                    let now = now_ms();
                    let mut tx = self.store.begin().await?;
                    effects.write(tx.as_mut(), now).await?;
                    tx.ack_job(&lease, now).await?;
                    tx.commit().await
                };
                match commit.await {
                    Ok(()) => {
                        wake_workers(follow_ups);
                        metrics::counter!("dingbridge_jobs_done_total", "kind" => kind)
                            .increment(1);
                        debug!(job = %job.id, "done");
                    }
                    Err(StoreError::LeaseLost(_)) => {
                        warn!(job = %job.id, "lease lost before the ack; effects discarded, the new owner redoes the job");
                    }
                    Err(e) => {
                        self.fail(
                            &job,
                            JobError::retryable(format!("committing the result failed: {e}")),
                        )
                        .await
                    }
                }
            }
            Some(Err(e)) => self.fail(&job, e).await,
        }
    }

    async fn fail(&self, job: &Job, e: JobError) {
        let now = now_ms();
        let retry_at = self.retry.for_job(job).next_attempt_at(
            job.attempts,
            job.max_attempts,
            e.class(),
            e.retry_after(),
            now,
        );
        let failure = JobFailure {
            class: e.class(),
            message: e.to_string(),
            retry_at,
            now,
        };
        match self.store.fail_job(&job.lease(), &failure).await {
            Ok(JobStatus::Dead) => {
                metrics::counter!("dingbridge_jobs_dead_total").increment(1);
                warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %e, "dead letter");
            }
            Ok(_) => {
                metrics::counter!("dingbridge_jobs_retried_total").increment(1);
                info!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %e, "attempt failed; will retry");
            }
            Err(err) => {
                warn!(job = %job.id, error = %err, "recording the failure failed; the reaper will return the job")
            }
        }
    }
}

/// Renew the lease every third of it; on loss, cancel `lost` so the worker stops.
async fn heartbeat_loop(
    store: Arc<dyn Store>,
    lease: store::LeaseRef,
    length: Duration,
    lost: CancellationToken,
) {
    let length_ms = i64::try_from(length.as_millis()).unwrap_or(30_000);
    loop {
        tokio::time::sleep(length / 3).await;
        let now = now_ms();
        match store.heartbeat(&lease, now + length_ms, now).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_)) => {
                lost.cancel();
                return;
            }
            Err(e) => warn!(job = %lease.job_id, error = %e, "heartbeat failed; will try again"),
        }
    }
}
