//! The store: the [`Store`] trait every part of dingbridge persists through, its transaction
//! [`StoreTx`], and the domain types (jobs, events, links, transfer log, checkpoints, schedules,
//! identities, deliveries, audit, org-sync runs, and the approval bridge's API keys,
//! idempotency keys, approvals and webhook outbox). Two implementations live in their own crates
//! (`store-sqlite`, `store-postgres`), each with its own checked query set and migrations; no
//! SQL leaks outside them.
//!
//! Time is passed in by the caller as Unix milliseconds ([`Millis`]) so that the queue's state
//! machine can be driven by a logical clock in tests and by the wall clock in production.

mod bridge;
mod error;
pub mod rows;
mod types;

pub use bridge::*;
pub use error::{StoreError, StoreResult};
pub use types::*;

use async_trait::async_trait;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The persistence of the hub. Every method is one transaction unless it takes a [`StoreTx`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Apply the embedded migrations (idempotent).
    async fn migrate(&self) -> StoreResult<()>;
    /// Are all embedded migrations applied, and no unknown one? (for `/readyz`)
    async fn migration_status(&self) -> StoreResult<MigrationStatus>;
    /// Round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Open a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`).
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>>;

    // ---- the job queue -------------------------------------------------------------------
    /// Enqueue in a transaction of its own (see [`StoreTx::enqueue`]).
    async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued> {
        let mut tx = self.begin().await?;
        let out = tx.enqueue(job).await?;
        tx.commit().await?;
        Ok(out)
    }
    /// Claim up to `limit` runnable jobs (queued or retry, `run_at <= now`), highest priority
    /// first, then oldest; each gets a lease until `now + lease_ms` and one more attempt.
    async fn claim_jobs(&self, req: &ClaimRequest) -> StoreResult<Vec<Job>>;
    /// Extend a lease. [`StoreError::LeaseLost`] when the job is no longer ours.
    async fn heartbeat(&self, lease: &LeaseRef, until: Millis, now: Millis) -> StoreResult<()>;
    /// Record a failed attempt: back to `retry` at a later time, or `dead`.
    async fn fail_job(&self, lease: &LeaseRef, failure: &JobFailure) -> StoreResult<JobStatus>;
    /// Give a claimed job back without counting the attempt (graceful shutdown).
    async fn release_job(&self, lease: &LeaseRef, now: Millis) -> StoreResult<()>;
    /// Expired leases: the job goes back to `retry` (or `dead` after its last attempt).
    async fn reap_expired_leases(&self, now: Millis) -> StoreResult<ReapReport>;
    /// A dead job goes back to the queue with its attempts reset.
    async fn replay_job(&self, id: JobId, now: Millis) -> StoreResult<()>;
    /// A dead job is set aside for good (kept for the record as `discarded`).
    async fn discard_job(&self, id: JobId, now: Millis) -> StoreResult<()>;
    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>>;
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// Number of jobs per (queue, status).
    async fn queue_depths(&self) -> StoreResult<Vec<QueueDepth>>;

    // ---- schedules -------------------------------------------------------------------------
    /// Register a schedule or change its cron; keeps `next_fire_at` if the cron is unchanged.
    async fn upsert_schedule(&self, s: &ScheduleSpec) -> StoreResult<()>;
    async fn list_schedules(&self) -> StoreResult<Vec<Schedule>>;
    /// Fire a due schedule exactly once across nodes: a conditional update of `next_fire_at`
    /// from `due_at` to `next_at`, and the job enqueued in the same transaction. `None` when
    /// another node fired it first.
    async fn fire_schedule(
        &self,
        name: &str,
        due_at: Millis,
        next_at: Millis,
        job: &NewJob,
    ) -> StoreResult<Option<Enqueued>>;

    // ---- org-sync runs ----------------------------------------------------------------------
    /// Start a run. When `job_id` is set and a run of that job is still `running` (its process
    /// died), that run is resumed instead: same id, `attempts` + 1, its counts kept. Returns the
    /// run and whether it was resumed.
    async fn start_sync_run(&self, run: &NewSyncRun) -> StoreResult<(SyncRun, bool)>;
    /// Progress of a running run: its counts are replaced. [`StoreError::InvalidState`] when
    /// the run has finished, [`StoreError::NotFound`] when there is none.
    async fn update_sync_run(
        &self,
        id: i64,
        counts: &serde_json::Value,
        now: Millis,
    ) -> StoreResult<()>;
    /// End a running run once, with a final status (not `running`), completeness, counts and
    /// report. [`StoreError::InvalidState`] when it has already finished.
    async fn finish_sync_run(&self, id: i64, finish: &SyncRunFinish) -> StoreResult<()>;
    async fn get_sync_run(&self, id: i64) -> StoreResult<Option<SyncRun>>;
    /// Most recent first; `flow` `None` = every flow; at most `limit` (0 = 100).
    async fn list_sync_runs(&self, flow: Option<&str>, limit: i64) -> StoreResult<Vec<SyncRun>>;
    /// The most recent run of `flow` that ended `success` (partial and failed runs do not
    /// move the "last success").
    async fn last_successful_sync_run(&self, flow: &str) -> StoreResult<Option<SyncRun>>;

    // ---- the approval bridge: API keys ------------------------------------------------------
    /// Store a new key (its hash only). [`StoreError::InvalidState`] when the prefix exists.
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// The key with this prefix, revoked or not.
    async fn find_api_key(&self, prefix: &str) -> StoreResult<Option<ApiKey>>;
    /// Every key, oldest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Revoke an active key: `false` when there is no such key or it was revoked already.
    async fn revoke_api_key(&self, prefix: &str, now: Millis) -> StoreResult<bool>;
    /// Record that the key was used (`last_used_at`).
    async fn touch_api_key(&self, id: i64, now: Millis) -> StoreResult<()>;

    // ---- the approval bridge: idempotency keys ---------------------------------------------
    /// Claim `(api_key_id, key)` for a request whose body hashes to `request_hash`, until
    /// `expires_at`. A row whose `expires_at <= now` is replaced as if it were free. Two
    /// concurrent claims of one free key: exactly one gets [`IdempotencyClaim::Claimed`].
    async fn claim_idempotency_key(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<IdempotencyClaim>;
    /// Store the answer of a claimed key (later claims replay it).
    async fn complete_idempotency_key(
        &self,
        api_key_id: i64,
        key: &str,
        status_code: i32,
        response: &serde_json::Value,
    ) -> StoreResult<()>;
    /// Forget a claim that got no answer worth keeping (the request failed in a way the client
    /// should retry), so the key can be used again at once.
    async fn release_idempotency_key(&self, api_key_id: i64, key: &str) -> StoreResult<()>;

    // ---- the approval bridge: approvals and the webhook outbox -----------------------------
    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>>;
    async fn find_approval_by_instance(&self, instance_id: &str) -> StoreResult<Option<Approval>>;
    async fn list_approvals(&self, filter: &ApprovalFilter) -> StoreResult<Vec<Approval>>;
    async fn get_webhook_message(&self, message_id: &str) -> StoreResult<Option<WebhookMessage>>;
    /// The messages of `subject` in `seq` order.
    async fn list_webhook_messages(&self, subject: &str) -> StoreResult<Vec<WebhookMessage>>;

    // ---- reads of the other records ------------------------------------------------------
    async fn get_event(&self, connection: &str, event_id: &str) -> StoreResult<Option<Event>>;
    async fn get_link(&self, flow: &str, source_key: &str) -> StoreResult<Option<Link>>;
    /// Links of `flow` whose `source_key` starts with `prefix` (taken literally: `%` and `_`
    /// are no wildcards), ordered by `source_key` as bytes, strictly after `after` (`None`: from
    /// the start), at most `limit` (0 = 100). Pass the last key of a page as the next `after`.
    async fn list_links(
        &self,
        flow: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Link>>;
    /// Links of `flow` pointing at `target_key` (two sources mapped to one target show up
    /// here), ordered by `source_key`.
    async fn find_links_by_target(&self, flow: &str, target_key: &str) -> StoreResult<Vec<Link>>;
    async fn list_transfers(&self, filter: &TransferFilter) -> StoreResult<Vec<Transfer>>;
    async fn get_checkpoint(&self, flow: &str, name: &str) -> StoreResult<Option<Checkpoint>>;
    async fn find_identity(&self, key: &IdentityKey) -> StoreResult<Option<Identity>>;
    async fn list_deliveries(&self, endpoint: &str, limit: i64) -> StoreResult<Vec<Delivery>>;
    /// Every attempt to deliver one webhook message, oldest first.
    async fn list_message_deliveries(&self, message_id: &str) -> StoreResult<Vec<Delivery>>;
    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    async fn list_connections(&self) -> StoreResult<Vec<ConnectionRecord>>;
    async fn list_flows(&self) -> StoreResult<Vec<FlowRecord>>;
}

/// A write transaction. Dropped without [`StoreTx::commit`], it rolls back.
#[async_trait]
pub trait StoreTx: Send {
    /// Enqueue a job; with an idempotency key, enqueueing the same key twice yields one job.
    async fn enqueue(&mut self, job: &NewJob) -> StoreResult<Enqueued>;
    /// Write a job straight into the dead letters (status `dead`, `error` as its last error,
    /// class permanent, no attempt made), e.g. one bad record of a batch whose others proceed.
    /// With an idempotency key already present nothing is written and the existing job is
    /// returned with `created: false`.
    async fn insert_dead_letter(&mut self, job: &NewJob, error: &str) -> StoreResult<Enqueued>;
    /// Finish a claimed job; fails with [`StoreError::LeaseLost`] when the lease is stale, so
    /// the effects written in this transaction roll back with it.
    async fn ack_job(&mut self, lease: &LeaseRef, now: Millis) -> StoreResult<()>;
    /// Store an inbound event once: `false` when its `event_id` was seen before.
    async fn insert_event(&mut self, event: &NewEvent) -> StoreResult<bool>;
    async fn mark_event_processed(
        &mut self,
        connection: &str,
        event_id: &str,
        now: Millis,
    ) -> StoreResult<()>;
    async fn upsert_link(&mut self, link: &Link) -> StoreResult<()>;
    async fn append_transfer(&mut self, t: &NewTransfer) -> StoreResult<i64>;
    async fn put_checkpoint(&mut self, c: &Checkpoint) -> StoreResult<()>;
    async fn upsert_identity(&mut self, i: &NewIdentity) -> StoreResult<i64>;
    async fn record_delivery(&mut self, d: &NewDelivery) -> StoreResult<i64>;
    async fn append_audit(&mut self, a: &NewAudit) -> StoreResult<i64>;
    async fn upsert_connection(&mut self, c: &ConnectionRecord) -> StoreResult<()>;
    async fn upsert_flow(&mut self, f: &FlowRecord) -> StoreResult<()>;
    /// Store a new approval in status `pending`.
    async fn insert_approval(&mut self, a: &NewApproval) -> StoreResult<()>;
    /// Change an approval; [`StoreError::NotFound`] when there is none with that id.
    async fn update_approval(&mut self, u: &ApprovalUpdate) -> StoreResult<()>;
    /// Append a message to its subject's outbox with the next `seq`; `None` when a message with
    /// this `message_id` exists already (nothing written). Serialized per subject with
    /// [`StoreTx::finish_webhook_message`], so a message added while the one before it is being
    /// finished is either handed over by that finish or is the head itself, never neither.
    async fn add_webhook_message(
        &mut self,
        m: &NewWebhookMessage,
    ) -> StoreResult<Option<WebhookMessageAdded>>;
    /// A delivery attempt ended: the message becomes `status` with `attempts` made (`pending`
    /// after a failed attempt that will be retried, `dead` when no attempt is left). For `delivered`, returns the next `pending` message of the same subject (lowest
    /// `seq` above this one), whose delivery the caller enqueues. [`StoreError::NotFound`] when
    /// there is no such message.
    async fn finish_webhook_message(
        &mut self,
        message_id: &str,
        status: WebhookMessageStatus,
        attempts: i32,
        now: Millis,
    ) -> StoreResult<Option<WebhookMessage>>;
    /// Make a message `pending` again (a redelivery asked for by a person); returns it.
    /// [`StoreError::NotFound`] when there is no such message.
    async fn reset_webhook_message(
        &mut self,
        message_id: &str,
        now: Millis,
    ) -> StoreResult<WebhookMessage>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}
