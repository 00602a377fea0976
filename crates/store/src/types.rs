//! Domain types stored by the hub. Ids are typed so one kind cannot be passed for another.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unix time in milliseconds.
pub type Millis = i64;

/// The wall clock in the store's unit.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A job's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life. Every job is in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to be claimed (possibly delayed until `run_at`).
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Failed an attempt; waits until `run_at` for the next one.
    Retry,
    /// Finished; its effects are committed.
    Done,
    /// A dead letter: its last attempt failed, or it failed permanently.
    Dead,
    /// A dead letter set aside by a person.
    Discarded,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retry,
        JobStatus::Done,
        JobStatus::Dead,
        JobStatus::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retry => "retry",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
            JobStatus::Discarded => "discarded",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown job status `{s}`; allowed: queued, running, retry, done, dead, discarded")
            })
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failure means for the job (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Transport, 5xx, rate limit, lost session, expired token: back off and retry.
    Retryable,
    /// Validation, mapping, permission, monthly quota: dead letter at once.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retryable" => Some(ErrorClass::Retryable),
            "permanent" => Some(ErrorClass::Permanent),
            _ => None,
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub flow: Option<String>,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before the job becomes a dead letter.
    pub max_attempts: i32,
    /// Not claimed before this time (delayed jobs).
    pub run_at: Millis,
    /// Enqueueing the same key twice yields one job.
    pub idempotency_key: Option<String>,
    pub now: Millis,
}

impl NewJob {
    /// Default attempts: the first one plus the eight retries of the DESIGN §6 schedule.
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 9;

    pub fn new(kind: impl Into<String>, payload: Value, now: Millis) -> Self {
        NewJob {
            queue: "default".into(),
            kind: kind.into(),
            payload,
            flow: None,
            priority: 0,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            run_at: now,
            idempotency_key: None,
            now,
        }
    }
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
    pub fn flow(mut self, flow: impl Into<String>) -> Self {
        self.flow = Some(flow.into());
        self
    }
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }
    pub fn run_at(mut self, run_at: Millis) -> Self {
        self.run_at = run_at;
        self
    }
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: JobId,
    /// `false` when a job with the same idempotency key already existed.
    pub created: bool,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub flow: Option<String>,
    pub status: JobStatus,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: Millis,
    pub idempotency_key: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Millis>,
    /// Incremented by every claim: the fencing token of the current lease.
    pub lease_seq: i64,
    pub last_error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
}

impl Job {
    /// The lease this claim holds.
    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            job_id: self.id,
            seq: self.lease_seq,
        }
    }
}

/// Names one claim of one job; stale after the job was reclaimed or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub job_id: JobId,
    pub seq: i64,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker: String,
    /// Queues to claim from; empty means all.
    pub queues: Vec<String>,
    pub limit: i64,
    pub lease_ms: i64,
    pub now: Millis,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub class: ErrorClass,
    pub message: String,
    /// `Some(t)`: retry at `t`. `None`: dead letter now.
    pub retry_at: Option<Millis>,
    pub now: Millis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    pub retried: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub flow: Option<String>,
    /// Most recent first; at most this many (0 = 100).
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    pub status: JobStatus,
    pub count: i64,
}

/// A cron schedule to register.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub cron: String,
    /// Used when the schedule is new or its cron changed.
    pub next_fire_at: Millis,
    pub now: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub next_fire_at: Millis,
    pub last_fired_at: Option<Millis>,
    pub updated_at: Millis,
}

/// An inbound event for the inbox, deduplicated by (connection, event_id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub connection: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
    pub received_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub connection: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
    pub received_at: Millis,
    pub processed_at: Option<Millis>,
}

/// The anchor of idempotency: (flow, source key) ↔ target key, with the saga step reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub flow: String,
    pub source_key: String,
    pub target_key: Option<String>,
    pub step: String,
    pub payload_hash: Option<String>,
    pub updated_at: Millis,
}

/// One record's attempt in the transfer log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTransfer {
    pub flow: String,
    pub source_key: String,
    pub target_key: Option<String>,
    pub job_id: Option<JobId>,
    pub attempt: i32,
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub outcome: String,
    pub error: Option<String>,
    pub started_at: Millis,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewTransfer,
}

#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub flow: Option<String>,
    pub source_key: Option<String>,
    /// Most recent first; at most this many (0 = 100).
    pub limit: i64,
}

/// A cursor or watermark per flow, committed with the work it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub flow: String,
    pub name: String,
    pub value: String,
    pub updated_at: Millis,
}

/// How to look a person up in the identity table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKey {
    DingtalkUserId(String),
    UnionId(String),
    KingdeeUser(String),
    EhrNumber(String),
    Mobile(String),
    JobNumber(String),
}

/// One person across systems; upserted by DingTalk userid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIdentity {
    pub dingtalk_userid: String,
    pub unionid: Option<String>,
    pub kingdee_user: Option<String>,
    pub ehr_number: Option<String>,
    pub mobile: Option<String>,
    pub job_number: Option<String>,
    pub email: Option<String>,
    /// Which rule matched (e.g. `job_number`, `mobile`, `manual`).
    pub matched_by: String,
    pub now: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub id: i64,
    #[serde(flatten)]
    pub fields: NewIdentity,
}

/// One webhook attempt to an in-house system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDelivery {
    pub endpoint: String,
    pub message_id: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response: Option<String>,
    pub outcome: String,
    pub created_at: Millis,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewDelivery,
}

/// Who changed what, from the console, the API or the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// A configured external system, as last loaded from the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub name: String,
    pub kind: String,
    pub config_hash: String,
    pub updated_at: Millis,
}

/// A configured flow, as last loaded from the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub name: String,
    pub recipe: String,
    pub enabled: bool,
    pub config_hash: String,
    pub updated_at: Millis,
}

/// Where an org-sync run is. A run starts `running` and ends once in one of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRunStatus {
    /// Started (or resumed) and not finished yet.
    Running,
    /// Every record was applied.
    Success,
    /// Finished, but some records went to the dead letters or were skipped.
    Partial,
    /// Stopped by an error before it could finish.
    Failed,
}

impl SyncRunStatus {
    pub const ALL: [SyncRunStatus; 4] = [
        SyncRunStatus::Running,
        SyncRunStatus::Success,
        SyncRunStatus::Partial,
        SyncRunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncRunStatus::Running => "running",
            SyncRunStatus::Success => "success",
            SyncRunStatus::Partial => "partial",
            SyncRunStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for SyncRunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyncRunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown sync run status `{s}`; allowed: running, success, partial, failed")
            })
    }
}

impl std::fmt::Display for SyncRunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An org-sync run to start (or to resume, when its job already has one running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSyncRun {
    pub flow: String,
    /// `full`, `reconcile` or `dry_run`.
    pub mode: String,
    /// The job running it; a second start by the same job resumes the run.
    pub job_id: Option<JobId>,
    pub started_at: Millis,
}

/// How a run ended (see [`crate::Store::finish_sync_run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRunFinish {
    /// Anything but [`SyncRunStatus::Running`].
    pub status: SyncRunStatus,
    /// Was the source snapshot complete (every page read)?
    pub complete: bool,
    pub counts: Value,
    pub report: Value,
    pub now: Millis,
}

/// An org-sync run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    pub id: i64,
    pub flow: String,
    pub mode: String,
    pub job_id: Option<JobId>,
    pub status: SyncRunStatus,
    /// Snapshot completeness; `None` until the run finishes.
    pub complete: Option<bool>,
    pub counts: Value,
    pub report: Value,
    /// How many times this run was started or resumed.
    pub attempts: i32,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub updated_at: Millis,
}

impl SyncRun {
    /// Wall time from start to finish (or to the last update while running).
    pub fn duration_ms(&self) -> i64 {
        self.finished_at.unwrap_or(self.updated_at) - self.started_at
    }
}

/// Embedded migrations against the ones the database has applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    pub embedded: Vec<i64>,
    pub applied: Vec<i64>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.embedded == self.applied
    }
}
