//! The PostgreSQL store: for several nodes sharing one database. Claims take rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers on any number of processes never wait on
//! each other's jobs and never get the same one. Queries are checked at compile time against
//! `migrations/` (offline data in `.sqlx/`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use store::rows::{
    ApiKeyRow, ApprovalRow, AuditRow, DeliveryRow, EventRow, IdempotencyRow, IdentityRow, JobRow,
    ScheduleRow, SyncRunRow, TransferRow, WebhookMessageRow, api_key_exists, convert,
    idempotency_key_held, json_strings, json_text, lease_held, link_page_start, new_api_key,
    page_limit, sync_run_state_error, webhook_finish_status, webhook_message_missing,
};
use store::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A [`Store`] on one PostgreSQL database (the schema of the connection's `search_path`).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unreachable(e.to_string())
        }
        other => StoreError::Database(other.to_string()),
    }
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user@host:port/db`). `options` (e.g. `-c search_path=x`)
    /// lets tests put each store in a schema of its own.
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unreachable(format!("bad PostgreSQL URL `{url}`: {e}")))?;
        Self::open_with(options, max_connections).await
    }

    /// Connect with prepared options.
    pub async fn open_with(options: PgConnectOptions, max_connections: u32) -> StoreResult<Self> {
        // One direct connection first: a pool would only say "timed out", hiding the cause
        // (refused, unknown database, authentication).
        let where_ = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        );
        match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
            .await
        {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::Unreachable(format!(
                    "cannot connect to PostgreSQL at {where_}: {e}"
                )));
            }
            Err(_) => {
                return Err(StoreError::Unreachable(format!(
                    "cannot connect to PostgreSQL at {where_}: no answer within 5 s"
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(Self { pool })
    }

    async fn write_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
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
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
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
        Ok(Box::new(PostgresTx {
            tx: self.write_tx().await?,
        }))
    }

    async fn claim_jobs(&self, req: &ClaimRequest) -> StoreResult<Vec<Job>> {
        let expires = req.now + req.lease_ms;
        let rows = sqlx::query_as!(
            JobRow,
            r#"UPDATE jobs SET status = 'running', attempts = attempts + 1,
                   lease_seq = lease_seq + 1, lease_owner = $1, lease_expires_at = $2, updated_at = $3
               WHERE id IN (
                   SELECT id FROM jobs
                   WHERE status IN ('queued', 'retry') AND run_at <= $3
                     AND (cardinality($4::text[]) = 0 OR queue = ANY($4))
                   ORDER BY priority DESC, run_at, id
                   LIMIT $5
                   FOR UPDATE SKIP LOCKED)
               RETURNING id, queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at"#,
            req.worker,
            expires,
            req.now,
            &req.queues,
            req.limit,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut jobs: Vec<Job> = convert(rows)?;
        // RETURNING gives no order: hand jobs out in claim order.
        jobs.sort_by(|a, b| (b.priority, a.run_at, a.id).cmp(&(a.priority, b.run_at, b.id)));
        Ok(jobs)
    }

    async fn heartbeat(&self, lease: &LeaseRef, until: Millis, now: Millis) -> StoreResult<()> {
        let done = sqlx::query!(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND lease_seq = $4 AND status = 'running'",
            until,
            now,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
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
        let done = sqlx::query!(
            "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), last_error = $3,
                 error_class = $4, lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = $5, finished_at = $6
             WHERE id = $7 AND lease_seq = $8 AND status = 'running'",
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
        lease_held(done.rows_affected(), lease)?;
        Ok(status)
    }

    async fn release_job(&self, lease: &LeaseRef, now: Millis) -> StoreResult<()> {
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL,
                 lease_expires_at = NULL, updated_at = $1
             WHERE id = $2 AND lease_seq = $3 AND status = 'running'",
            now,
            lease.job_id.0,
            lease.seq,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        lease_held(done.rows_affected(), lease)
    }

    async fn reap_expired_leases(&self, now: Millis) -> StoreResult<ReapReport> {
        let mut tx = self.write_tx().await?;
        let dead = sqlx::query!(
            "UPDATE jobs SET status = 'dead', error_class = 'retryable',
                 last_error = 'lease expired on the last attempt (worker lost)',
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $1, finished_at = $2
             WHERE status = 'running' AND lease_expires_at < $3 AND attempts >= max_attempts",
            now,
            now,
            now,
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let retried = sqlx::query!(
            "UPDATE jobs SET status = 'retry', run_at = $1, error_class = 'retryable',
                 last_error = 'lease expired (worker lost)',
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
             WHERE status = 'running' AND lease_expires_at < $3",
            now,
            now,
            now,
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(ReapReport { retried, dead })
    }

    async fn replay_job(&self, id: JobId, now: Millis) -> StoreResult<()> {
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, updated_at = $2,
                 finished_at = NULL
             WHERE id = $3 AND status = 'dead'",
            now,
            now,
            id.0,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.job_state_error(id, "dead").await)
        }
    }

    async fn discard_job(&self, id: JobId, now: Millis) -> StoreResult<()> {
        let done = sqlx::query!(
            "UPDATE jobs SET status = 'discarded', updated_at = $1, finished_at = $2
             WHERE id = $3 AND status = 'dead'",
            now,
            now,
            id.0,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.job_state_error(id, "dead").await)
        }
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        let row = sqlx::query_as!(
            JobRow,
            r#"SELECT id, queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at
               FROM jobs WHERE id = $1"#,
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
            r#"SELECT id, queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_owner, lease_expires_at,
                   lease_seq, last_error, error_class, created_at, updated_at, finished_at
               FROM jobs
               WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)
                 AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR flow = $4)
               ORDER BY id DESC LIMIT $5"#,
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
            r#"SELECT queue, status, COUNT(*) AS "count!" FROM jobs
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
        sqlx::query!(
            "INSERT INTO schedules (name, cron, next_fire_at, updated_at) VALUES ($1, $2, $3, $4)
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
        let mut tx = PostgresTx {
            tx: self.write_tx().await?,
        };
        let won = sqlx::query!(
            "UPDATE schedules SET next_fire_at = $1, last_fired_at = $2, updated_at = $3
             WHERE name = $4 AND next_fire_at = $5",
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
        // A run of the same job still `running` is the conflict: resume it.
        let row = sqlx::query_as!(
            SyncRunRow,
            r#"INSERT INTO sync_runs (flow, mode, job_id, status, counts, report, attempts,
                   started_at, updated_at)
               VALUES ($1, $2, $3, 'running', '{}', '{}', 1, $4, $4)
               ON CONFLICT (job_id) WHERE status = 'running' DO UPDATE SET
                   attempts = sync_runs.attempts + 1, updated_at = excluded.updated_at
               RETURNING id, flow, mode, job_id, status, complete, counts, report, attempts,
                   started_at, finished_at, updated_at"#,
            run.flow,
            run.mode,
            job_id,
            run.started_at,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
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
        let done = sqlx::query!(
            "UPDATE sync_runs SET counts = $1, updated_at = $2
             WHERE id = $3 AND status = 'running'",
            counts,
            now,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
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
        let done = sqlx::query!(
            "UPDATE sync_runs SET status = $1, complete = $2, counts = $3, report = $4,
                 finished_at = $5, updated_at = $6
             WHERE id = $7 AND status = 'running'",
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
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.sync_run_error(id).await)
        }
    }

    async fn get_sync_run(&self, id: i64) -> StoreResult<Option<SyncRun>> {
        let row = sqlx::query_as!(
            SyncRunRow,
            r#"SELECT id, flow, mode, job_id, status, complete, counts, report, attempts,
                   started_at, finished_at, updated_at
               FROM sync_runs WHERE id = $1"#,
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
            r#"SELECT id, flow, mode, job_id, status, complete, counts, report, attempts,
                   started_at, finished_at, updated_at
               FROM sync_runs WHERE ($1::text IS NULL OR flow = $1)
               ORDER BY id DESC LIMIT $2"#,
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
            r#"SELECT id, flow, mode, job_id, status, complete, counts, report, attempts,
                   started_at, finished_at, updated_at
               FROM sync_runs WHERE flow = $1 AND status = 'success'
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
        let id = sqlx::query_scalar!(
            r#"INSERT INTO api_keys (name, prefix, hash, scopes, created_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (prefix) DO NOTHING
               RETURNING id"#,
            key.name,
            key.prefix,
            key.hash,
            scopes,
            key.created_at,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let id = id.ok_or_else(|| api_key_exists(&key.prefix))?;
        Ok(new_api_key(id, key))
    }

    async fn find_api_key(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query_as!(
            ApiKeyRow,
            r#"SELECT id, name, prefix, hash, scopes, created_at, last_used_at,
                   revoked_at
               FROM api_keys WHERE prefix = $1"#,
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
            r#"SELECT id, name, prefix, hash, scopes, created_at, last_used_at,
                   revoked_at
               FROM api_keys ORDER BY created_at, id"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert(rows)
    }

    async fn revoke_api_key(&self, prefix: &str, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL",
            now,
            prefix,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: i64, now: Millis) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2",
            now,
            id
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
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
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (api_key_id, key) DO UPDATE SET
                 request_hash = excluded.request_hash, status_code = NULL, response = NULL,
                 created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= $4",
            api_key_id,
            key,
            request_hash,
            now,
            expires_at,
        )
        .execute(&mut *tx)
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
                 WHERE api_key_id = $1 AND key = $2",
                api_key_id,
                key,
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            IdempotencyClaim::try_from(row)?
        };
        tx.commit().await.map_err(db)?;
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
        let done = sqlx::query!(
            "UPDATE idempotency_keys SET status_code = $1, response = $2
             WHERE api_key_id = $3 AND key = $4",
            i64::from(status_code),
            response,
            api_key_id,
            key,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        idempotency_key_held(done.rows_affected(), api_key_id, key)
    }

    async fn release_idempotency_key(&self, api_key_id: i64, key: &str) -> StoreResult<()> {
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2",
            api_key_id,
            key,
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        let row = sqlx::query_as!(
            ApprovalRow,
            r#"SELECT id, flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals WHERE id = $1"#,
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
            r#"SELECT id, flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals WHERE instance_id = $1"#,
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
        // Newest first by (created_at, id), ids compared as bytes as on SQLite; a page continues
        // strictly after its last approval.
        let rows = sqlx::query_as!(
            ApprovalRow,
            r#"SELECT id, flow, api_key_id, process_code, instance_id, originator,
                   business_key, request, status, result, snapshot, created_at, updated_at
               FROM approvals
               WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR status = $2)
                 AND ($3::text IS NULL OR result = $3)
                 AND ($4::text IS NULL OR process_code = $4)
                 AND ($5::text IS NULL OR business_key = $5)
                 AND ($6::bigint IS NULL OR api_key_id = $6)
                 AND ($7::text IS NULL OR (created_at, id COLLATE "C") <
                      (SELECT b.created_at, b.id FROM approvals b WHERE b.id = $7))
               ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $8"#,
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
            r#"SELECT id, subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages WHERE message_id = $1"#,
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
            r#"SELECT id, subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages WHERE subject = $1 ORDER BY seq"#,
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
            r#"SELECT id, connection, event_id, event_type, payload, received_at,
                   processed_at
               FROM events WHERE connection = $1 AND event_id = $2"#,
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
             FROM links WHERE flow = $1 AND source_key = $2",
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
        // Keys compare as bytes (COLLATE "C", index links_source_bytes), as on SQLite; the
        // prefix is compared as a string, never as a LIKE pattern (`%`, `_` in keys).
        sqlx::query_as!(
            Link,
            r#"SELECT flow, source_key, target_key, step, payload_hash, updated_at
               FROM links
               WHERE flow = $1 AND source_key COLLATE "C" >= $2
                 AND ($3::text IS NULL OR source_key COLLATE "C" > $3)
                 AND starts_with(source_key, $4)
               ORDER BY source_key COLLATE "C" LIMIT $5"#,
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
            r#"SELECT flow, source_key, target_key, step, payload_hash, updated_at
               FROM links WHERE flow = $1 AND target_key = $2
               ORDER BY source_key COLLATE "C""#,
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
            r#"SELECT id, flow, source_key, target_key, job_id, attempt, request,
                   response, outcome, error, started_at, duration_ms
               FROM transfer_log
               WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR source_key = $2)
               ORDER BY id DESC LIMIT $3"#,
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
            "SELECT flow, name, value, updated_at FROM checkpoints WHERE flow = $1 AND name = $2",
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
            r#"SELECT id, dingtalk_userid, unionid, kingdee_user, ehr_number, mobile,
                   job_number, email, matched_by, updated_at
               FROM identities
               WHERE CASE $1::text WHEN 'dingtalk_userid' THEN dingtalk_userid
                             WHEN 'unionid' THEN unionid
                             WHEN 'kingdee_user' THEN kingdee_user
                             WHEN 'ehr_number' THEN ehr_number
                             WHEN 'mobile' THEN mobile
                             WHEN 'job_number' THEN job_number END = $2
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
            r#"SELECT id, endpoint, message_id, attempt, status_code, response, outcome,
                   created_at, duration_ms
               FROM deliveries WHERE endpoint = $1 ORDER BY id DESC LIMIT $2"#,
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
            r#"SELECT id, endpoint, message_id, attempt, status_code, response, outcome,
                   created_at, duration_ms
               FROM deliveries WHERE message_id = $1 ORDER BY id"#,
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
            r#"SELECT id, actor, action, target, detail, at
               FROM audit ORDER BY id DESC LIMIT $1"#,
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
            r#"SELECT name, recipe, enabled, config_hash, updated_at
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

/// A write transaction on PostgreSQL.
pub struct PostgresTx {
    tx: Transaction<'static, Postgres>,
}

impl PostgresTx {
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
            r#"SELECT id FROM jobs WHERE idempotency_key = $1"#,
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
impl StoreTx for PostgresTx {
    async fn enqueue(&mut self, job: &NewJob) -> StoreResult<Enqueued> {
        let payload = json_text(&job.payload);
        let id = sqlx::query_scalar!(
            r#"INSERT INTO jobs (queue, kind, payload, flow, status, priority, attempts,
                   max_attempts, run_at, idempotency_key, lease_seq, created_at, updated_at)
               VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7, $8, 0, $9, $10)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING id"#,
            job.queue,
            job.kind,
            payload,
            job.flow,
            i64::from(job.priority),
            i64::from(job.max_attempts),
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
               VALUES ($1, $2, $3, $4, 'dead', $5, 0, $6, $7, $8, 0, $9, 'permanent',
                   $10, $10, $10)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING id"#,
            job.queue,
            job.kind,
            payload,
            job.flow,
            i64::from(job.priority),
            i64::from(job.max_attempts),
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
                 updated_at = $1, finished_at = $2
             WHERE id = $3 AND lease_seq = $4 AND status = 'running'",
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
             VALUES ($1, $2, $3, $4, $5)
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
            "UPDATE events SET processed_at = $1 WHERE connection = $2 AND event_id = $3",
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
             VALUES ($1, $2, $3, $4, $5, $6)
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
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"#,
            t.flow,
            t.source_key,
            t.target_key,
            job_id,
            i64::from(t.attempt),
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
            "INSERT INTO checkpoints (flow, name, value, updated_at) VALUES ($1, $2, $3, $4)
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
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (dingtalk_userid) DO UPDATE SET
                   unionid = COALESCE(excluded.unionid, identities.unionid),
                   kingdee_user = COALESCE(excluded.kingdee_user, identities.kingdee_user),
                   ehr_number = COALESCE(excluded.ehr_number, identities.ehr_number),
                   mobile = COALESCE(excluded.mobile, identities.mobile),
                   job_number = COALESCE(excluded.job_number, identities.job_number),
                   email = COALESCE(excluded.email, identities.email),
                   matched_by = excluded.matched_by, updated_at = excluded.updated_at
               RETURNING id"#,
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
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"#,
            d.endpoint,
            d.message_id,
            i64::from(d.attempt),
            d.status_code.map(i64::from),
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
               VALUES ($1, $2, $3, $4, $5) RETURNING id"#,
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
            "INSERT INTO connections (name, kind, config_hash, updated_at) VALUES ($1, $2, $3, $4)
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
             VALUES ($1, $2, $3, $4, $5)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)",
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
            "UPDATE approvals SET instance_id = COALESCE($1, instance_id),
                 status = COALESCE($2, status), result = COALESCE($3, result),
                 snapshot = COALESCE($4, snapshot), updated_at = $5
             WHERE id = $6",
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
        // The subject's row first: the upsert row-locks it until commit, so adds and finishes
        // of one subject take turns (a concurrent first insert waits on the unique index).
        let last_seq = sqlx::query_scalar!(
            r#"INSERT INTO webhook_subjects (subject, last_seq) VALUES ($1, 0)
               ON CONFLICT (subject) DO UPDATE SET last_seq = webhook_subjects.last_seq
               RETURNING last_seq"#,
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
               VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)
               ON CONFLICT (message_id) DO NOTHING
               RETURNING id, subject, seq, endpoint, message_id, event_type, payload,
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
            "UPDATE webhook_subjects SET last_seq = $1 WHERE subject = $2",
            seq,
            m.subject,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        let is_head = sqlx::query_scalar!(
            r#"SELECT NOT EXISTS (SELECT 1 FROM webhook_messages
                   WHERE subject = $1 AND seq < $2 AND status IN ('pending', 'dead'))
               AS "is_head!""#,
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
            "SELECT subject FROM webhook_messages WHERE message_id = $1",
            message_id,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?
        .ok_or_else(|| webhook_message_missing(message_id))?;
        // The subject's row first, as `add_webhook_message` does (a row lock until commit).
        sqlx::query!(
            "UPDATE webhook_subjects SET last_seq = last_seq WHERE subject = $1",
            subject,
        )
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        let delivered_at = (status == WebhookMessageStatus::Delivered).then_some(now);
        let seq = sqlx::query_scalar!(
            "UPDATE webhook_messages SET status = $1, attempts = $2, updated_at = $3,
                 delivered_at = COALESCE($4, delivered_at)
             WHERE message_id = $5 RETURNING seq",
            status_text,
            i64::from(attempts),
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
            r#"SELECT id, subject, seq, endpoint, message_id, event_type, payload,
                   status, attempts, created_at, delivered_at
               FROM webhook_messages m
               WHERE subject = $1 AND seq > $2 AND status = 'pending'
                 AND NOT EXISTS (SELECT 1 FROM webhook_messages e
                     WHERE e.subject = $1 AND e.seq < m.seq AND e.status IN ('pending', 'dead'))
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
            r#"UPDATE webhook_messages SET status = 'pending', delivered_at = NULL, updated_at = $1
               WHERE message_id = $2
               RETURNING id, subject, seq, endpoint, message_id, event_type, payload,
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
