//! The SQLite store: the embedded default. One file in WAL mode with a busy timeout; every
//! write transaction takes the write lock up front (`BEGIN IMMEDIATE`) so two writers never
//! deadlock upgrading a read lock, which also makes a claim atomic without `SKIP LOCKED`.
//! Within one process, writers also queue on an async mutex: SQLite's busy handler polls with
//! growing sleeps, so writers contending inside one process saw claims stall for seconds
//! (`scripts/bench queue`, 4 workers); the busy timeout remains for other processes.
//! Queries are checked at compile time against `migrations/` (offline data in `.sqlx/`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use store::rows::{
    ApiKeyRow, ApprovalRow, AuditRow, DeliveryRow, EventRow, IdempotencyRow, IdentityRow, JobRow,
    ScheduleRow, SyncRunRow, TransferRow, WebhookMessageRow, api_key_exists, convert,
    idempotency_key_held, json_strings, json_text, lease_held, link_page_start, new_api_key,
    page_limit, sync_run_state_error, webhook_finish_status, webhook_message_missing,
};
use store::*;
use tokio::sync::{Mutex, OwnedMutexGuard};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a writer waits for the lock before SQLite answers "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's writers take turns here before asking SQLite for the write lock.
    writer: Arc<Mutex<()>>,
}

fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unreachable(e.to_string())
        }
        other => StoreError::Database(other.to_string()),
    }
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` (`sqlite://path` or `sqlite:path`).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unreachable(format!("bad SQLite URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable(format!("cannot open SQLite `{url}`: {e}")))?;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// A write transaction holding this process's writer turn and SQLite's write lock.
    async fn write_tx(&self) -> StoreResult<SqliteTx> {
        let turn = self.write_turn().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        Ok(SqliteTx { tx, _turn: turn })
    }

    /// This process's turn to write (for single statements outside a transaction).
    async fn write_turn(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.writer).lock_owned().await
    }

    /// Why a conditional update on a job matched nothing.
    async fn job_state_error(&self, id: JobId, wanted: &str) -> StoreError {
        match self.get_job(id).await {
            Ok(Some(job)) => {
                StoreError::InvalidState(format!("job {id} is {}, it must be {wanted}", job.status))
            }
            Ok(None) => StoreError::NotFound(format!("job {id}")),
            Err(e) => e,
        }
    }

    /// Why a conditional update on a running sync run matched nothing.
    async fn sync_run_error(&self, id: i64) -> StoreError {
        match self.get_sync_run(id).await {
            Ok(found) => sync_run_state_error(id, found.as_ref()),
            Err(e) => e,
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let embedded = MIGRATOR.iter().map(|m| m.version).collect();
        // The migrations table does not exist before the first `migrate`: nothing applied.
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        Ok(MigrationStatus { embedded, applied })
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unreachable(e.to_string()))
    }

    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        Ok(Box::new(self.write_tx().await?))
    }

    async fn claim_jobs(&self, req: &ClaimRequest) -> StoreResult<Vec<Job>> {
        let queues = serde_json::Value::from(req.queues.clone()).to_string();
        let expires = req.now + req.lease_ms;
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query_as!(
            JobRow,
            r#"UPDATE jobs SET status = 'running', attempts = attempts + 1,
                   lease_seq = lease_seq + 1, lease_owner = ?, lease_expires_at = ?, updated_at = ?
               WHERE id IN (
                   SELECT id FROM jobs
                   WHERE status IN ('queued', 'retry') AND run_at <= ?
                     AND (? = '[]' OR queue IN (SELECT value FROM json_each(?)))
                   ORDER BY priority DESC, run_at, id
                   LIMIT ?)
               RETURNING id AS "id!", queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at"#,
            req.worker,
            expires,
            req.now,
            req.now,
            queues,
            queues,
            req.limit,
        )
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(db)?;
        tx.tx.commit().await.map_err(db)?;
        let mut jobs: Vec<Job> = convert(rows)?;
        // RETURNING gives no order: hand jobs out in claim order.
        jobs.sort_by(|a, b| (b.priority, a.run_at, a.id).cmp(&(a.priority, b.run_at, b.id)));
        Ok(jobs)
    }

    async fn heartbeat(&self, lease: &LeaseRef, until: Millis, now: Millis) -> StoreResult<()> {
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE jobs SET lease_expires_at = ?, updated_at = ?
             WHERE id = ? AND lease_seq = ? AND status = 'running'",
            until,
            now,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        lease_held(done.rows_affected(), lease)
    }

    async fn fail_job(&self, lease: &LeaseRef, failure: &JobFailure) -> StoreResult<JobStatus> {
        let status = if failure.retry_at.is_some() {
            JobStatus::Retry
        } else {
            JobStatus::Dead
        };
        let status_text = status.as_str();
        let finished = failure.retry_at.is_none().then_some(failure.now);
        let class = failure.class.as_str();
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE jobs SET status = ?, run_at = COALESCE(?, run_at), last_error = ?,
                 error_class = ?, lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = ?, finished_at = ?
             WHERE id = ? AND lease_seq = ? AND status = 'running'",
            status_text,
            failure.retry_at,
            failure.message,
            class,
            failure.now,
            finished,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        lease_held(done.rows_affected(), lease)?;
        Ok(status)
    }

    async fn release_job(&self, lease: &LeaseRef, now: Millis) -> StoreResult<()> {
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL,
                 lease_expires_at = NULL, updated_at = ?
             WHERE id = ? AND lease_seq = ? AND status = 'running'",
            now,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        lease_held(done.rows_affected(), lease)
    }

    async fn reap_expired_leases(&self, now: Millis) -> StoreResult<ReapReport> {
        let mut tx = self.write_tx().await?;
        let dead = sqlx::query!(
            "UPDATE jobs SET status = 'dead', error_class = 'retryable',
                 last_error = 'lease expired on the last attempt (worker lost)',
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, finished_at = ?
             WHERE status = 'running' AND lease_expires_at < ? AND attempts >= max_attempts",
            now,
            now,
            now,
        )
        .execute(&mut *tx.tx)
        .await
        .map_err(db)?
        .rows_affected();
        let retried = sqlx::query!(
            "UPDATE jobs SET status = 'retry', run_at = ?, error_class = 'retryable',
                 last_error = 'lease expired (worker lost)',
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
             WHERE status = 'running' AND lease_expires_at < ?",
            now,
            now,
            now,
        )
        .execute(&mut *tx.tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.tx.commit().await.map_err(db)?;
        Ok(ReapReport { retried, dead })
    }

    async fn replay_job(&self, id: JobId, now: Millis) -> StoreResult<()> {
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = ?, updated_at = ?,
                 finished_at = NULL
             WHERE id = ? AND status = 'dead'",
            now,
            now,
            id.0,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.job_state_error(id, "dead").await)
        }
    }

    async fn discard_job(&self, id: JobId, now: Millis) -> StoreResult<()> {
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'discarded', updated_at = ?, finished_at = ?
             WHERE id = ? AND status = 'dead'",
            now,
            now,
            id.0,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.job_state_error(id, "dead").await)
        }
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        let row = sqlx::query_as!(
            JobRow,
            r#"SELECT id AS "id!", queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at
               FROM jobs WHERE id = ?"#,
            id.0,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(Job::try_from).transpose()
    }

    async fn list_jobs(&self, f: &JobFilter) -> StoreResult<Vec<Job>> {
        let status = f.status.map(JobStatus::as_str);
        let limit = page_limit(f.limit);
        let rows = sqlx::query_as!(
            JobRow,
            r#"SELECT id AS "id!", queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at
               FROM jobs
               WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR queue = ?2)
                 AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR flow = ?4)
               ORDER BY id DESC LIMIT ?5"#,
            status,
            f.queue,
            f.kind,
            f.flow,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn queue_depths(&self) -> StoreResult<Vec<QueueDepth>> {
        let rows = sqlx::query!(
            r#"SELECT queue, status, COUNT(*) AS "count!: i64" FROM jobs
               GROUP BY queue, status ORDER BY queue, status"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|r| {
                Ok(QueueDepth {
                    status: r.status.parse().map_err(StoreError::Corrupt)?,
                    queue: r.queue,
                    count: r.count,
                })
            })
            .collect()
    }

    async fn upsert_schedule(&self, s: &ScheduleSpec) -> StoreResult<()> {
        let turn = self.write_turn().await;
        sqlx::query!(
            "INSERT INTO schedules (name, cron, next_fire_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET
                 next_fire_at = CASE WHEN schedules.cron = excluded.cron
                                     THEN schedules.next_fire_at ELSE excluded.next_fire_at END,
                 cron = excluded.cron, updated_at = excluded.updated_at",
            s.name,
            s.cron,
            s.next_fire_at,
            s.now,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        Ok(())
    }

    async fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query_as!(
            ScheduleRow,
            "SELECT name, cron, next_fire_at, last_fired_at, updated_at
             FROM schedules ORDER BY name"
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(Schedule::from).collect())
    }

    async fn fire_schedule(
        &self,
        name: &str,
        due_at: Millis,
        next_at: Millis,
        job: &NewJob,
    ) -> StoreResult<Option<Enqueued>> {
        let mut tx = self.write_tx().await?;
        let won = sqlx::query!(
            "UPDATE schedules SET next_fire_at = ?, last_fired_at = ?, updated_at = ?
             WHERE name = ? AND next_fire_at = ?",
            next_at,
            due_at,
            job.now,
            name,
            due_at,
        )
        .execute(&mut *tx.tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !won {
            return Ok(None);
        }
        let enqueued = tx.enqueue(job).await?;
        Box::new(tx).commit().await?;
        Ok(Some(enqueued))
    }

    async fn start_sync_run(&self, run: &NewSyncRun) -> StoreResult<(SyncRun, bool)> {
        let job_id = run.job_id.map(|j| j.0);
        let turn = self.write_turn().await;
        // A run of the same job still `running` is the conflict: resume it.
        let row = sqlx::query_as!(
            SyncRunRow,
            r#"INSERT INTO sync_runs (flow, mode, job_id, status, counts, report, attempts,
                   started_at, updated_at)
               VALUES (?1, ?2, ?3, 'running', '{}', '{}', 1, ?4, ?4)
               ON CONFLICT (job_id) WHERE status = 'running' DO UPDATE SET
                   attempts = sync_runs.attempts + 1, updated_at = excluded.updated_at
               RETURNING id AS "id!", flow, mode, job_id, status, complete AS "complete: bool",
                   counts, report, attempts, started_at, finished_at, updated_at"#,
            run.flow,
            run.mode,
            job_id,
            run.started_at,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        let run = SyncRun::try_from(row)?;
        // A new run starts at attempt 1; only a resumed one has more.
        let resumed = run.attempts > 1;
        Ok((run, resumed))
    }

    async fn update_sync_run(
        &self,
        id: i64,
        counts: &serde_json::Value,
        now: Millis,
    ) -> StoreResult<()> {
        let counts = json_text(counts);
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE sync_runs SET counts = ?, updated_at = ? WHERE id = ? AND status = 'running'",
            counts,
            now,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.sync_run_error(id).await)
        }
    }

    async fn finish_sync_run(&self, id: i64, finish: &SyncRunFinish) -> StoreResult<()> {
        if finish.status == SyncRunStatus::Running {
            return Err(StoreError::InvalidState(format!(
                "sync run {id} cannot finish as running; use success, partial or failed"
            )));
        }
        let status = finish.status.as_str();
        let counts = json_text(&finish.counts);
        let report = json_text(&finish.report);
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE sync_runs SET status = ?, complete = ?, counts = ?, report = ?,
                 finished_at = ?, updated_at = ?
             WHERE id = ? AND status = 'running'",
            status,
            finish.complete,
            counts,
            report,
            finish.now,
            finish.now,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.sync_run_error(id).await)
        }
    }

    async fn get_sync_run(&self, id: i64) -> StoreResult<Option<SyncRun>> {
        let row = sqlx::query_as!(
            SyncRunRow,
            r#"SELECT id AS "id!", flow, mode, job_id, status, complete AS "complete: bool",
                   counts, report, attempts, started_at, finished_at, updated_at
               FROM sync_runs WHERE id = ?"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(SyncRun::try_from).transpose()
    }

    async fn list_sync_runs(&self, flow: Option<&str>, limit: i64) -> StoreResult<Vec<SyncRun>> {
        let limit = page_limit(limit);
        let rows = sqlx::query_as!(
            SyncRunRow,
            r#"SELECT id AS "id!", flow, mode, job_id, status, complete AS "complete: bool",
                   counts, report, attempts, started_at, finished_at, updated_at
               FROM sync_runs WHERE (?1 IS NULL OR flow = ?1)
               ORDER BY id DESC LIMIT ?2"#,
            flow,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn last_successful_sync_run(&self, flow: &str) -> StoreResult<Option<SyncRun>> {
        let row = sqlx::query_as!(
            SyncRunRow,
            r#"SELECT id AS "id!", flow, mode, job_id, status, complete AS "complete: bool",
                   counts, report, attempts, started_at, finished_at, updated_at
               FROM sync_runs WHERE flow = ? AND status = 'success'
               ORDER BY id DESC LIMIT 1"#,
            flow,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(SyncRun::try_from).transpose()
    }

    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKey> {
        let scopes = json_strings(&key.scopes);
        let turn = self.write_turn().await;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO api_keys (name, prefix, hash, scopes, created_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (prefix) DO NOTHING
               RETURNING id AS "id!""#,
            key.name,
            key.prefix,
            key.hash,
            scopes,
            key.created_at,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        let id = id.ok_or_else(|| api_key_exists(&key.prefix))?;
        Ok(new_api_key(id, key))
    }

    async fn find_api_key(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query_as!(
            ApiKeyRow,
            r#"SELECT id AS "id!", name, prefix, hash, scopes, created_at, last_used_at,
                   revoked_at
               FROM api_keys WHERE prefix = ?"#,
            prefix,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query_as!(
            ApiKeyRow,
            r#"SELECT id AS "id!", name, prefix, hash, scopes, created_at, last_used_at,
                   revoked_at
               FROM api_keys ORDER BY created_at, id"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn revoke_api_key(&self, prefix: &str, now: Millis) -> StoreResult<bool> {
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
            now,
            prefix,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        Ok(done.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: i64, now: Millis) -> StoreResult<()> {
        let turn = self.write_turn().await;
        sqlx::query!("UPDATE api_keys SET last_used_at = ? WHERE id = ?", now, id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        drop(turn);
        Ok(())
    }

    async fn claim_idempotency_key(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<IdempotencyClaim> {
        let mut tx = self.write_tx().await?;
        // Free, or expired and taken over: one conditional upsert, never read-then-write.
        let claimed = sqlx::query!(
            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (api_key_id, key) DO UPDATE SET
                 request_hash = excluded.request_hash, status_code = NULL, response = NULL,
                 created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= ?4",
            api_key_id,
            key,
            request_hash,
            now,
            expires_at,
        )
        .execute(&mut *tx.tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        let claim = if claimed {
            IdempotencyClaim::Claimed
        } else {
            let row = sqlx::query_as!(
                IdempotencyRow,
                "SELECT request_hash, status_code, response FROM idempotency_keys
                 WHERE api_key_id = ? AND key = ?",
                api_key_id,
                key,
            )
            .fetch_one(&mut *tx.tx)
            .await
            .map_err(db)?;
            IdempotencyClaim::try_from(row)?
        };
        tx.tx.commit().await.map_err(db)?;
        Ok(claim)
    }

    async fn complete_idempotency_key(
        &self,
        api_key_id: i64,
        key: &str,
        status_code: i32,
        response: &serde_json::Value,
    ) -> StoreResult<()> {
        let response = json_text(response);
        let turn = self.write_turn().await;
        let done = sqlx::query!(
            "UPDATE idempotency_keys SET status_code = ?, response = ?
             WHERE api_key_id = ? AND key = ?",
            status_code,
            response,
            api_key_id,
            key,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        idempotency_key_held(done.rows_affected(), api_key_id, key)
    }

    async fn release_idempotency_key(&self, api_key_id: i64, key: &str) -> StoreResult<()> {
        let turn = self.write_turn().await;
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ?",
            api_key_id,
            key,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        drop(turn);
        Ok(())
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        let row = sqlx::query_as!(
            ApprovalRow,
            r#"SELECT id AS "id!", flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals WHERE id = ?"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(Approval::try_from).transpose()
    }

    async fn find_approval_by_instance(&self, instance_id: &str) -> StoreResult<Option<Approval>> {
        let row = sqlx::query_as!(
            ApprovalRow,
            r#"SELECT id AS "id!", flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals WHERE instance_id = ?"#,
            instance_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(Approval::try_from).transpose()
    }

    async fn list_approvals(&self, f: &ApprovalFilter) -> StoreResult<Vec<Approval>> {
        let status = f.status.map(ApprovalStatus::as_str);
        let limit = page_limit(f.limit);
        // Newest first by (created_at, id); a page continues strictly after its last approval.
        let rows = sqlx::query_as!(
            ApprovalRow,
            r#"SELECT id AS "id!", flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals
               WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR result = ?3) AND (?4 IS NULL OR process_code = ?4)
                 AND (?5 IS NULL OR business_key = ?5) AND (?6 IS NULL OR api_key_id = ?6)
                 AND (?7 IS NULL OR (created_at, id) <
                      (SELECT b.created_at, b.id FROM approvals b WHERE b.id = ?7))
               ORDER BY created_at DESC, id DESC LIMIT ?8"#,
            f.flow,
            status,
            f.result,
            f.process_code,
            f.business_key,
            f.api_key_id,
            f.before,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn get_webhook_message(&self, message_id: &str) -> StoreResult<Option<WebhookMessage>> {
        let row = sqlx::query_as!(
            WebhookMessageRow,
            r#"SELECT id AS "id!", subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages WHERE message_id = ?"#,
            message_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(WebhookMessage::try_from).transpose()
    }

    async fn list_webhook_messages(&self, subject: &str) -> StoreResult<Vec<WebhookMessage>> {
        let rows = sqlx::query_as!(
            WebhookMessageRow,
            r#"SELECT id AS "id!", subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages WHERE subject = ? ORDER BY seq"#,
            subject,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn get_event(&self, connection: &str, event_id: &str) -> StoreResult<Option<Event>> {
        let row = sqlx::query_as!(
            EventRow,
            r#"SELECT id AS "id!", connection, event_id, event_type, payload, received_at,
                   processed_at
               FROM events WHERE connection = ? AND event_id = ?"#,
            connection,
            event_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(Event::try_from).transpose()
    }

    async fn get_link(&self, flow: &str, source_key: &str) -> StoreResult<Option<Link>> {
        sqlx::query_as!(
            Link,
            "SELECT flow, source_key, target_key, step, payload_hash, updated_at
             FROM links WHERE flow = ? AND source_key = ?",
            flow,
            source_key,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    async fn list_links(
        &self,
        flow: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Link>> {
        let start = link_page_start(prefix, after);
        let limit = page_limit(limit);
        // The prefix is compared as a substring, never as a LIKE pattern (`%`, `_` in keys).
        sqlx::query_as!(
            Link,
            "SELECT flow, source_key, target_key, step, payload_hash, updated_at
             FROM links
             WHERE flow = ?1 AND source_key >= ?2 AND (?3 IS NULL OR source_key > ?3)
               AND substr(source_key, 1, length(?4)) = ?4
             ORDER BY source_key LIMIT ?5",
            flow,
            start,
            after,
            prefix,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn find_links_by_target(&self, flow: &str, target_key: &str) -> StoreResult<Vec<Link>> {
        sqlx::query_as!(
            Link,
            "SELECT flow, source_key, target_key, step, payload_hash, updated_at
             FROM links WHERE flow = ? AND target_key = ? ORDER BY source_key",
            flow,
            target_key,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn list_transfers(&self, f: &TransferFilter) -> StoreResult<Vec<Transfer>> {
        let limit = page_limit(f.limit);
        let rows = sqlx::query_as!(
            TransferRow,
            r#"SELECT id AS "id!", flow, source_key, target_key, job_id, attempt, request,
                   response, outcome, error, started_at, duration_ms
               FROM transfer_log
               WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR source_key = ?2)
               ORDER BY id DESC LIMIT ?3"#,
            f.flow,
            f.source_key,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn get_checkpoint(&self, flow: &str, name: &str) -> StoreResult<Option<Checkpoint>> {
        sqlx::query_as!(
            Checkpoint,
            "SELECT flow, name, value, updated_at FROM checkpoints WHERE flow = ? AND name = ?",
            flow,
            name,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    async fn find_identity(&self, key: &IdentityKey) -> StoreResult<Option<Identity>> {
        let (column, value) = identity_column(key);
        let row = sqlx::query_as!(
            IdentityRow,
            r#"SELECT id AS "id!", dingtalk_userid, unionid, kingdee_user, ehr_number, mobile,
                   job_number, email, matched_by, updated_at
               FROM identities
               WHERE CASE ?1 WHEN 'dingtalk_userid' THEN dingtalk_userid
                             WHEN 'unionid' THEN unionid
                             WHEN 'kingdee_user' THEN kingdee_user
                             WHEN 'ehr_number' THEN ehr_number
                             WHEN 'mobile' THEN mobile
                             WHEN 'job_number' THEN job_number END = ?2
               ORDER BY id LIMIT 1"#,
            column,
            value,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.map(Identity::from))
    }

    async fn list_deliveries(&self, endpoint: &str, limit: i64) -> StoreResult<Vec<Delivery>> {
        let limit = page_limit(limit);
        let rows = sqlx::query_as!(
            DeliveryRow,
            r#"SELECT id AS "id!", endpoint, message_id, attempt, status_code, response, outcome,
                   created_at, duration_ms
               FROM deliveries WHERE endpoint = ? ORDER BY id DESC LIMIT ?"#,
            endpoint,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn list_message_deliveries(&self, message_id: &str) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query_as!(
            DeliveryRow,
            r#"SELECT id AS "id!", endpoint, message_id, attempt, status_code, response, outcome,
                   created_at, duration_ms
               FROM deliveries WHERE message_id = ? ORDER BY id"#,
            message_id,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let limit = page_limit(limit);
        let rows = sqlx::query_as!(
            AuditRow,
            r#"SELECT id AS "id!", actor, action, target, detail, at
               FROM audit ORDER BY id DESC LIMIT ?"#,
            limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn list_connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        sqlx::query_as!(
            ConnectionRecord,
            "SELECT name, kind, config_hash, updated_at FROM connections ORDER BY name"
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn list_flows(&self) -> StoreResult<Vec<FlowRecord>> {
        sqlx::query_as!(
            FlowRecord,
            r#"SELECT name, recipe, enabled AS "enabled: bool", config_hash, updated_at
               FROM flows ORDER BY name"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }
}

/// The identity column a key searches, and the value.
fn identity_column(key: &IdentityKey) -> (&'static str, &str) {
    match key {
        IdentityKey::DingtalkUserId(v) => ("dingtalk_userid", v),
        IdentityKey::UnionId(v) => ("unionid", v),
        IdentityKey::KingdeeUser(v) => ("kingdee_user", v),
        IdentityKey::EhrNumber(v) => ("ehr_number", v),
        IdentityKey::Mobile(v) => ("mobile", v),
        IdentityKey::JobNumber(v) => ("job_number", v),
    }
}

/// A write transaction on SQLite (already holding the write lock).
pub struct SqliteTx {
    // Declared first so it rolls back (or is committed) before the writer turn is given back.
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl SqliteTx {
    /// The outcome of an insert into `jobs` that does nothing on an idempotency-key conflict.
    async fn inserted_or_existing(
        &mut self,
        id: Option<i64>,
        job: &NewJob,
    ) -> StoreResult<Enqueued> {
        if let Some(id) = id {
            return Ok(Enqueued {
                id: JobId(id),
                created: true,
            });
        }
        // The insert only does nothing on a key conflict: the key's job exists.
        let existing = sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM jobs WHERE idempotency_key = ?"#,
            job.idempotency_key,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(Enqueued {
            id: JobId(existing),
            created: false,
        })
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn enqueue(&mut self, job: &NewJob) -> StoreResult<Enqueued> {
        let payload = json_text(&job.payload);
        let id = sqlx::query_scalar!(
            r#"INSERT INTO jobs (queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_seq, created_at, updated_at)
               VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, 0, ?, ?)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING id AS "id!""#,
            job.queue,
            job.kind,
            payload,
            job.flow,
            job.priority,
            job.max_attempts,
            job.run_at,
            job.idempotency_key,
            job.now,
            job.now,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?;
        self.inserted_or_existing(id, job).await
    }

    async fn insert_dead_letter(&mut self, job: &NewJob, error: &str) -> StoreResult<Enqueued> {
        let payload = json_text(&job.payload);
        let id = sqlx::query_scalar!(
            r#"INSERT INTO jobs (queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_seq, last_error, error_class,
                   created_at, updated_at, finished_at)
               VALUES (?1, ?2, ?3, ?4, 'dead', ?5, 0, ?6, ?7, ?8, 0, ?9, 'permanent',
                   ?10, ?10, ?10)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING id AS "id!""#,
            job.queue,
            job.kind,
            payload,
            job.flow,
            job.priority,
            job.max_attempts,
            job.run_at,
            job.idempotency_key,
            error,
            job.now,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?;
        self.inserted_or_existing(id, job).await
    }

    async fn ack_job(&mut self, lease: &LeaseRef, now: Millis) -> StoreResult<()> {
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'done', lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = ?, finished_at = ?
             WHERE id = ? AND lease_seq = ? AND status = 'running'",
            now,
            now,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        lease_held(done.rows_affected(), lease)
    }

    async fn insert_event(&mut self, e: &NewEvent) -> StoreResult<bool> {
        let payload = json_text(&e.payload);
        let done = sqlx::query!(
            "INSERT INTO events (connection, event_id, event_type, payload, received_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (connection, event_id) DO NOTHING",
            e.connection,
            e.event_id,
            e.event_type,
            payload,
            e.received_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_event_processed(
        &mut self,
        connection: &str,
        event_id: &str,
        now: Millis,
    ) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE events SET processed_at = ? WHERE connection = ? AND event_id = ?",
            now,
            connection,
            event_id,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn upsert_link(&mut self, l: &Link) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO links (flow, source_key, target_key, step, payload_hash, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (flow, source_key) DO UPDATE SET target_key = excluded.target_key,
                 step = excluded.step, payload_hash = excluded.payload_hash,
                 updated_at = excluded.updated_at",
            l.flow,
            l.source_key,
            l.target_key,
            l.step,
            l.payload_hash,
            l.updated_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn append_transfer(&mut self, t: &NewTransfer) -> StoreResult<i64> {
        let request = t.request.as_ref().map(json_text);
        let response = t.response.as_ref().map(json_text);
        let job_id = t.job_id.map(|j| j.0);
        sqlx::query_scalar!(
            r#"INSERT INTO transfer_log (flow, source_key, target_key, job_id, attempt, request,
                   response, outcome, error, started_at, duration_ms)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS "id!""#,
            t.flow,
            t.source_key,
            t.target_key,
            job_id,
            t.attempt,
            request,
            response,
            t.outcome,
            t.error,
            t.started_at,
            t.duration_ms,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)
    }

    async fn put_checkpoint(&mut self, c: &Checkpoint) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO checkpoints (flow, name, value, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (flow, name) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
            c.flow,
            c.name,
            c.value,
            c.updated_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn upsert_identity(&mut self, i: &NewIdentity) -> StoreResult<i64> {
        sqlx::query_scalar!(
            r#"INSERT INTO identities (dingtalk_userid, unionid, kingdee_user, ehr_number, mobile,
                   job_number, email, matched_by, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (dingtalk_userid) DO UPDATE SET
                   unionid = COALESCE(excluded.unionid, identities.unionid),
                   kingdee_user = COALESCE(excluded.kingdee_user, identities.kingdee_user),
                   ehr_number = COALESCE(excluded.ehr_number, identities.ehr_number),
                   mobile = COALESCE(excluded.mobile, identities.mobile),
                   job_number = COALESCE(excluded.job_number, identities.job_number),
                   email = COALESCE(excluded.email, identities.email),
                   matched_by = excluded.matched_by, updated_at = excluded.updated_at
               RETURNING id AS "id!""#,
            i.dingtalk_userid,
            i.unionid,
            i.kingdee_user,
            i.ehr_number,
            i.mobile,
            i.job_number,
            i.email,
            i.matched_by,
            i.now,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)
    }

    async fn record_delivery(&mut self, d: &NewDelivery) -> StoreResult<i64> {
        sqlx::query_scalar!(
            r#"INSERT INTO deliveries (endpoint, message_id, attempt, status_code, response,
                   outcome, created_at, duration_ms)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS "id!""#,
            d.endpoint,
            d.message_id,
            d.attempt,
            d.status_code,
            d.response,
            d.outcome,
            d.created_at,
            d.duration_ms,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)
    }

    async fn append_audit(&mut self, a: &NewAudit) -> StoreResult<i64> {
        let detail = json_text(&a.detail);
        sqlx::query_scalar!(
            r#"INSERT INTO audit (actor, action, target, detail, at)
               VALUES (?, ?, ?, ?, ?) RETURNING id AS "id!""#,
            a.actor,
            a.action,
            a.target,
            detail,
            a.at,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)
    }

    async fn upsert_connection(&mut self, c: &ConnectionRecord) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO connections (name, kind, config_hash, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                 config_hash = excluded.config_hash, updated_at = excluded.updated_at",
            c.name,
            c.kind,
            c.config_hash,
            c.updated_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn upsert_flow(&mut self, f: &FlowRecord) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO flows (name, recipe, enabled, config_hash, updated_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET recipe = excluded.recipe,
                 enabled = excluded.enabled, config_hash = excluded.config_hash,
                 updated_at = excluded.updated_at",
            f.name,
            f.recipe,
            f.enabled,
            f.config_hash,
            f.updated_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn insert_approval(&mut self, a: &NewApproval) -> StoreResult<()> {
        let request = json_text(&a.request);
        sqlx::query!(
            "INSERT INTO approvals (id, flow, api_key_id, process_code, originator, business_key,
                 request, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
            a.id,
            a.flow,
            a.api_key_id,
            a.process_code,
            a.originator,
            a.business_key,
            request,
            a.created_at,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn update_approval(&mut self, u: &ApprovalUpdate) -> StoreResult<()> {
        let status = u.status.map(ApprovalStatus::as_str);
        let snapshot = u.snapshot.as_ref().map(json_text);
        let done = sqlx::query!(
            "UPDATE approvals SET instance_id = COALESCE(?, instance_id),
                 status = COALESCE(?, status), result = COALESCE(?, result),
                 snapshot = COALESCE(?, snapshot), updated_at = ?
             WHERE id = ?",
            u.instance_id,
            status,
            u.result,
            snapshot,
            u.now,
            u.id,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("approval {}", u.id)))
        }
    }

    async fn add_webhook_message(
        &mut self,
        m: &NewWebhookMessage,
    ) -> StoreResult<Option<WebhookMessageAdded>> {
        // The subject's row first: adds and finishes of one subject take turns on it.
        let last_seq = sqlx::query_scalar!(
            r#"INSERT INTO webhook_subjects (subject, last_seq) VALUES (?, 0)
               ON CONFLICT (subject) DO UPDATE SET last_seq = webhook_subjects.last_seq
               RETURNING last_seq AS "last_seq!""#,
            m.subject,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)?;
        let seq = last_seq + 1;
        let payload = json_text(&m.payload);
        // A known message_id inserts nothing, and then takes no seq.
        let row = sqlx::query_as!(
            WebhookMessageRow,
            r#"INSERT INTO webhook_messages (subject, seq, endpoint, message_id, event_type,
                   payload, status, attempts, created_at, updated_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)
               ON CONFLICT (message_id) DO NOTHING
               RETURNING id AS "id!", subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at"#,
            m.subject,
            seq,
            m.endpoint,
            m.message_id,
            m.event_type,
            payload,
            m.created_at,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query!(
            "UPDATE webhook_subjects SET last_seq = ? WHERE subject = ?",
            seq,
            m.subject,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        let is_head = sqlx::query_scalar!(
            r#"SELECT NOT EXISTS (SELECT 1 FROM webhook_messages
                   WHERE subject = ? AND seq < ? AND status IN ('pending', 'dead'))
               AS "is_head!: bool""#,
            m.subject,
            seq,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(Some(WebhookMessageAdded {
            message: WebhookMessage::try_from(row)?,
            is_head,
        }))
    }

    async fn finish_webhook_message(
        &mut self,
        message_id: &str,
        status: WebhookMessageStatus,
        attempts: i32,
        now: Millis,
    ) -> StoreResult<Option<WebhookMessage>> {
        let status_text = webhook_finish_status(message_id, status)?;
        let subject = sqlx::query_scalar!(
            "SELECT subject FROM webhook_messages WHERE message_id = ?",
            message_id,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?
        .ok_or_else(|| webhook_message_missing(message_id))?;
        // The subject's row first, as `add_webhook_message` does.
        sqlx::query!(
            "UPDATE webhook_subjects SET last_seq = last_seq WHERE subject = ?",
            subject,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        let delivered_at = (status == WebhookMessageStatus::Delivered).then_some(now);
        let seq = sqlx::query_scalar!(
            "UPDATE webhook_messages SET status = ?, attempts = ?, updated_at = ?,
                 delivered_at = COALESCE(?, delivered_at)
             WHERE message_id = ? RETURNING seq",
            status_text,
            attempts,
            now,
            delivered_at,
            message_id,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)?;
        if status != WebhookMessageStatus::Delivered {
            return Ok(None);
        }
        // The next pending message, if it is now the head (no earlier one pending or dead).
        let next = sqlx::query_as!(
            WebhookMessageRow,
            r#"SELECT id AS "id!", subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages m
               WHERE subject = ?1 AND seq > ?2 AND status = 'pending'
                 AND NOT EXISTS (SELECT 1 FROM webhook_messages e
                     WHERE e.subject = ?1 AND e.seq < m.seq AND e.status IN ('pending', 'dead'))
               ORDER BY seq LIMIT 1"#,
            subject,
            seq,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?;
        next.map(WebhookMessage::try_from).transpose()
    }

    async fn reset_webhook_message(
        &mut self,
        message_id: &str,
        now: Millis,
    ) -> StoreResult<WebhookMessage> {
        let row = sqlx::query_as!(
            WebhookMessageRow,
            r#"UPDATE webhook_messages SET status = 'pending', delivered_at = NULL, updated_at = ?
               WHERE message_id = ?
               RETURNING id AS "id!", subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at"#,
            now,
            message_id,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?
        .ok_or_else(|| webhook_message_missing(message_id))?;
        WebhookMessage::try_from(row)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await.map_err(db)
    }
}
