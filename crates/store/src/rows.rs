//! Row shapes shared by both query sets: each backend selects into these (all integers are
//! 64-bit on both databases) and converts to the domain types here, so the mapping is written
//! once.

use serde_json::Value;

use crate::{
    ApiKey, Approval, ApprovalStatus, AuditEntry, Delivery, ErrorClass, Event, IdempotencyClaim,
    Identity, Job, JobId, NewApiKey, NewApproval, NewAudit, NewDelivery, NewIdentity, NewTransfer,
    NewWebhookMessage, Schedule, StoreError, StoreResult, SyncRun, Transfer, WebhookMessage,
    WebhookMessageStatus,
};

fn json(column: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn json_opt(column: &str, text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| json(column, &t)).transpose()
}

fn int32(column: &str, v: i64) -> StoreResult<i32> {
    i32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column}: {v} out of range")))
}

/// Serialise a JSON value for a TEXT column.
pub fn json_text(v: &Value) -> String {
    v.to_string()
}

#[derive(Debug)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub flow: Option<String>,
    pub status: String,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub idempotency_key: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub lease_seq: i64,
    pub last_error: Option<String>,
    pub error_class: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<Job> {
        Ok(Job {
            id: JobId(r.id),
            payload: json("jobs.payload", &r.payload)?,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            priority: int32("jobs.priority", r.priority)?,
            attempts: int32("jobs.attempts", r.attempts)?,
            max_attempts: int32("jobs.max_attempts", r.max_attempts)?,
            error_class: r.error_class.as_deref().and_then(ErrorClass::parse),
            queue: r.queue,
            kind: r.kind,
            flow: r.flow,
            run_at: r.run_at,
            idempotency_key: r.idempotency_key,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            lease_seq: r.lease_seq,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(Debug)]
pub struct EventRow {
    pub id: i64,
    pub connection: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> StoreResult<Event> {
        Ok(Event {
            id: r.id,
            payload: json("events.payload", &r.payload)?,
            connection: r.connection,
            event_id: r.event_id,
            event_type: r.event_type,
            received_at: r.received_at,
            processed_at: r.processed_at,
        })
    }
}

#[derive(Debug)]
pub struct TransferRow {
    pub id: i64,
    pub flow: String,
    pub source_key: String,
    pub target_key: Option<String>,
    pub job_id: Option<i64>,
    pub attempt: i64,
    pub request: Option<String>,
    pub response: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
}

impl TryFrom<TransferRow> for Transfer {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> StoreResult<Transfer> {
        Ok(Transfer {
            id: r.id,
            entry: NewTransfer {
                request: json_opt("transfer_log.request", r.request)?,
                response: json_opt("transfer_log.response", r.response)?,
                attempt: int32("transfer_log.attempt", r.attempt)?,
                flow: r.flow,
                source_key: r.source_key,
                target_key: r.target_key,
                job_id: r.job_id.map(JobId),
                outcome: r.outcome,
                error: r.error,
                started_at: r.started_at,
                duration_ms: r.duration_ms,
            },
        })
    }
}

#[derive(Debug)]
pub struct IdentityRow {
    pub id: i64,
    pub dingtalk_userid: String,
    pub unionid: Option<String>,
    pub kingdee_user: Option<String>,
    pub ehr_number: Option<String>,
    pub mobile: Option<String>,
    pub job_number: Option<String>,
    pub email: Option<String>,
    pub matched_by: String,
    pub updated_at: i64,
}

impl From<IdentityRow> for Identity {
    fn from(r: IdentityRow) -> Identity {
        Identity {
            id: r.id,
            fields: NewIdentity {
                dingtalk_userid: r.dingtalk_userid,
                unionid: r.unionid,
                kingdee_user: r.kingdee_user,
                ehr_number: r.ehr_number,
                mobile: r.mobile,
                job_number: r.job_number,
                email: r.email,
                matched_by: r.matched_by,
                now: r.updated_at,
            },
        }
    }
}

#[derive(Debug)]
pub struct DeliveryRow {
    pub id: i64,
    pub endpoint: String,
    pub message_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub outcome: String,
    pub created_at: i64,
    pub duration_ms: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> StoreResult<Delivery> {
        Ok(Delivery {
            id: r.id,
            entry: NewDelivery {
                attempt: int32("deliveries.attempt", r.attempt)?,
                status_code: r
                    .status_code
                    .map(|c| int32("deliveries.status_code", c))
                    .transpose()?,
                endpoint: r.endpoint,
                message_id: r.message_id,
                response: r.response,
                outcome: r.outcome,
                created_at: r.created_at,
                duration_ms: r.duration_ms,
            },
        })
    }
}

#[derive(Debug)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub at: i64,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: r.id,
            entry: NewAudit {
                detail: json("audit.detail", &r.detail)?,
                actor: r.actor,
                action: r.action,
                target: r.target,
                at: r.at,
            },
        })
    }
}

#[derive(Debug)]
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    pub next_fire_at: i64,
    pub last_fired_at: Option<i64>,
    pub updated_at: i64,
}

impl From<ScheduleRow> for Schedule {
    fn from(r: ScheduleRow) -> Schedule {
        Schedule {
            name: r.name,
            cron: r.cron,
            next_fire_at: r.next_fire_at,
            last_fired_at: r.last_fired_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug)]
pub struct SyncRunRow {
    pub id: i64,
    pub flow: String,
    pub mode: String,
    pub job_id: Option<i64>,
    pub status: String,
    pub complete: Option<bool>,
    pub counts: String,
    pub report: String,
    pub attempts: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

impl TryFrom<SyncRunRow> for SyncRun {
    type Error = StoreError;
    fn try_from(r: SyncRunRow) -> StoreResult<SyncRun> {
        Ok(SyncRun {
            id: r.id,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            counts: json("sync_runs.counts", &r.counts)?,
            report: json("sync_runs.report", &r.report)?,
            attempts: int32("sync_runs.attempts", r.attempts)?,
            job_id: r.job_id.map(JobId),
            flow: r.flow,
            mode: r.mode,
            complete: r.complete,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        })
    }
}

/// Serialise a list of strings (API key scopes) for a TEXT column: a JSON array.
pub fn json_strings(v: &[String]) -> String {
    Value::from(v.to_vec()).to_string()
}

#[derive(Debug)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub hash: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            id: r.id,
            scopes: serde_json::from_str(&r.scopes)
                .map_err(|e| StoreError::Corrupt(format!("api_keys.scopes: {e}")))?,
            name: r.name,
            prefix: r.prefix,
            hash: r.hash,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// An idempotency key someone else holds: answered once `status_code` and `response` are set.
#[derive(Debug)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status_code: Option<i64>,
    pub response: Option<String>,
}

impl TryFrom<IdempotencyRow> for IdempotencyClaim {
    type Error = StoreError;
    fn try_from(r: IdempotencyRow) -> StoreResult<IdempotencyClaim> {
        Ok(match (r.status_code, r.response) {
            (Some(code), Some(response)) => IdempotencyClaim::Completed {
                request_hash: r.request_hash,
                status_code: int32("idempotency_keys.status_code", code)?,
                response: json("idempotency_keys.response", &response)?,
            },
            _ => IdempotencyClaim::InProgress {
                request_hash: r.request_hash,
            },
        })
    }
}

#[derive(Debug)]
pub struct ApprovalRow {
    pub id: String,
    pub flow: String,
    pub api_key_id: Option<i64>,
    pub process_code: String,
    pub instance_id: Option<String>,
    pub originator: String,
    pub business_key: Option<String>,
    pub request: String,
    pub status: String,
    pub result: Option<String>,
    pub snapshot: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(r: ApprovalRow) -> StoreResult<Approval> {
        Ok(Approval {
            status: ApprovalStatus::parse(&r.status).ok_or_else(|| {
                StoreError::Corrupt(format!("approvals.status: unknown `{}`", r.status))
            })?,
            snapshot: json_opt("approvals.snapshot", r.snapshot)?,
            fields: NewApproval {
                request: json("approvals.request", &r.request)?,
                id: r.id,
                flow: r.flow,
                api_key_id: r.api_key_id,
                process_code: r.process_code,
                originator: r.originator,
                business_key: r.business_key,
                created_at: r.created_at,
            },
            instance_id: r.instance_id,
            result: r.result,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug)]
pub struct WebhookMessageRow {
    pub id: i64,
    pub subject: String,
    pub seq: i64,
    pub endpoint: String,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

impl TryFrom<WebhookMessageRow> for WebhookMessage {
    type Error = StoreError;
    fn try_from(r: WebhookMessageRow) -> StoreResult<WebhookMessage> {
        Ok(WebhookMessage {
            id: r.id,
            status: WebhookMessageStatus::parse(&r.status).ok_or_else(|| {
                StoreError::Corrupt(format!("webhook_messages.status: unknown `{}`", r.status))
            })?,
            attempts: int32("webhook_messages.attempts", r.attempts)?,
            fields: NewWebhookMessage {
                payload: json("webhook_messages.payload", &r.payload)?,
                subject: r.subject,
                endpoint: r.endpoint,
                message_id: r.message_id,
                event_type: r.event_type,
                created_at: r.created_at,
            },
            seq: r.seq,
            delivered_at: r.delivered_at,
        })
    }
}

/// A delivery ends as `delivered` or `dead`; `pending` is no end.
pub fn webhook_finish_status(
    _message_id: &str,
    status: WebhookMessageStatus,
) -> StoreResult<&'static str> {
    // `pending`: a failed attempt that will be retried (its count is recorded).
    Ok(status.as_str())
}

/// The key [`crate::Store::create_api_key`] stored under `id`.
pub fn new_api_key(id: i64, k: &NewApiKey) -> ApiKey {
    ApiKey {
        id,
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        hash: k.hash.clone(),
        scopes: k.scopes.clone(),
        created_at: k.created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// An API key's insert met its prefix.
pub fn api_key_exists(prefix: &str) -> StoreError {
    StoreError::InvalidState(format!("an API key with prefix `{prefix}` exists already"))
}

/// The answer to an idempotency key was stored on its one row, or there is no claim.
pub fn idempotency_key_held(rows_affected: u64, api_key_id: i64, key: &str) -> StoreResult<()> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "idempotency key `{key}` of API key {api_key_id}"
        )))
    }
}

pub fn webhook_message_missing(message_id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook message {message_id}"))
}

/// A conditional update of a running sync run matched nothing: why.
pub fn sync_run_state_error(id: i64, found: Option<&SyncRun>) -> StoreError {
    match found {
        Some(run) => StoreError::InvalidState(format!(
            "sync run {id} is {}, it must be running",
            run.status
        )),
        None => StoreError::NotFound(format!("sync run {id}")),
    }
}

/// Where a page of [`crate::Store::list_links`] starts in the index: at the prefix, or after
/// the last key of the previous page when that is further on. Keys compare as bytes (SQLite's
/// `BINARY`, PostgreSQL's `"C"`), as Rust's `str` does.
pub fn link_page_start<'a>(prefix: &'a str, after: Option<&'a str>) -> &'a str {
    match after {
        Some(a) if a > prefix => a,
        _ => prefix,
    }
}

/// Collect converted rows, failing on the first corrupt one.
pub fn convert<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// A conditional update of a leased job matched its one row, or the lease is no longer held.
pub fn lease_held(rows_affected: u64, lease: &crate::LeaseRef) -> StoreResult<()> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(lease.job_id.0))
    }
}

/// A limit of 0 means the default page.
pub fn page_limit(limit: i64) -> i64 {
    if limit <= 0 { 100 } else { limit.min(10_000) }
}
