//! `queue`: the job queue through the `Store` trait, against plain SQL on the same database.
//!
//! For each backend and each worker count, on a fresh database:
//! 1. enqueue N jobs with `Store::enqueue` (one transaction each, from W tasks), timed;
//! 2. W tasks each loop `claim_jobs(limit 1)` → `begin` → `ack_job` → `commit` until a claim
//!    comes back empty; every claim's latency is recorded;
//! 3. every job is checked to have ended `done` after exactly one claim, or the run fails.
//!
//! The reference, once per backend on a fresh database of the same kind: a table shaped like
//! `jobs` (same columns and indexes), the same N rows inserted in batches of B, updated to
//! `running` then to `done` and deleted, in batches, with one statement per batch and no explicit
//! transaction. Its rows/s is N over the time of the whole life (insert + both updates +
//! delete), which is what the queue's end-to-end jobs/s is divided by.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, QueryBuilder, Type};
use store::{Backend, ClaimRequest, JobFilter, JobStatus, NewJob, Store};
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;
use tokio::task::JoinSet;

use crate::db::{self, DEFAULT_POSTGRES_URL, FreshSqlite};
use crate::report::{Machine, Outcome, Percentiles, per_second, round, timestamp};

/// The queue the jobs go to (and the claims ask for).
const QUEUE: &str = "bench";
/// Leases long enough never to expire during a run.
const LEASE_MS: i64 = 300_000;
/// `list_jobs` returns at most this many; jobs get kind `bench.<i / VERIFY_CHUNK>` so each
/// kind can be listed whole when checking the outcome.
const VERIFY_CHUNK: usize = 10_000;
/// The reference binds this many values per inserted row (SQLite allows 32,766 per statement).
const BINDS_PER_ROW: usize = 7;
const MAX_BATCH: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Jobs per run.
    #[arg(long, default_value_t = 20_000, value_parser = at_least_one)]
    jobs: usize,
    /// Concurrent workers; a list (`1,4,8`) runs once per value.
    #[arg(long, value_delimiter = ',', default_value = "4", value_parser = at_least_one)]
    workers: Vec<usize>,
    /// Which store(s) to measure; PostgreSQL is skipped (and said so) when it does not answer.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// Rows per statement in the plain-SQL reference.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// The PostgreSQL server; each run gets a schema of its own, dropped at the end.
    #[arg(long, env = "DINGBRIDGE_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// Directory for the SQLite files (default: the system's temporary directory).
    #[arg(long)]
    sqlite_dir: Option<PathBuf>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a count of at least 1")),
    }
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_BATCH).contains(&self.batch),
            "--batch must be 1..={MAX_BATCH} (SQLite takes at most 32,766 bound values per \
             statement, the reference binds {BINDS_PER_ROW} per row)"
        );
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct Params {
    jobs: usize,
    workers: Vec<usize>,
    backend: BackendChoice,
    batch: usize,
    queue: &'static str,
    claim_limit: i64,
    lease_ms: i64,
    payload_bytes: usize,
    /// Connections in the store's pool: workers + 1.
    pool_connections: &'static str,
    enqueue_tasks: &'static str,
    sqlite_dir: String,
    postgres: PostgresTarget,
}

#[derive(Debug, Serialize)]
struct PostgresTarget {
    host: String,
    port: u16,
    database: Option<String>,
}

#[derive(Debug, Serialize)]
struct Skipped {
    backend: Backend,
    reason: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Reference {
    rows: usize,
    batch: usize,
    rows_per_s: f64,
    insert_s: f64,
    /// Both updates: to `running`, then to `done`.
    update_s: f64,
    delete_s: f64,
}

#[derive(Debug, Serialize)]
struct Verified {
    /// Jobs found `done` by `queue_depths` (and nothing in any other status).
    done: usize,
    /// Jobs listed by `list_jobs` as `done` with one attempt and one lease.
    claimed_once: usize,
}

#[derive(Debug, Serialize)]
struct RunResult {
    backend: Backend,
    workers: usize,
    jobs: usize,
    pool_connections: u32,
    enqueue_s: f64,
    enqueue_per_s: f64,
    claim_ack_s: f64,
    claim_ack_per_s: f64,
    end_to_end_s: f64,
    end_to_end_per_s: f64,
    /// Claims made, including each worker's last, empty one.
    claims: usize,
    claim_latency_ms: Percentiles,
    verified: Verified,
    reference: Reference,
    /// `end_to_end_per_s / reference.rows_per_s`.
    ratio_to_reference: f64,
}

fn definitions() -> serde_json::Value {
    json!({
        "enqueue_per_s": "jobs / time to enqueue them all with Store::enqueue (one transaction per job, from `workers` concurrent tasks)",
        "claim_ack_per_s": "jobs / time from the first claim until every worker saw an empty claim; each job: claim_jobs(limit 1), begin, ack_job, commit",
        "end_to_end_per_s": "jobs / (enqueue time + claim/ack time)",
        "claim_latency_ms": "duration of each claim_jobs call (pool wait included), nearest-rank percentiles over every claim of the run",
        "reference.rows_per_s": "rows / (insert + update to running + update to done + delete time) on a plain table shaped like jobs (same columns and indexes), one statement per batch of `batch` rows",
        "ratio_to_reference": "end_to_end_per_s / reference.rows_per_s: the queue's whole job life as a fraction of the same life done in batches of raw SQL"
    })
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    args.check()?;
    let started_at = timestamp();
    let machine = Machine::detect();
    let pg_options = PgConnectOptions::from_str(&args.postgres_url)
        .with_context(|| format!("bad --postgres-url `{}`", args.postgres_url))?;
    let payloads = make_payloads(args.jobs);
    let params = Params {
        jobs: args.jobs,
        workers: args.workers.clone(),
        backend: args.backend,
        batch: args.batch,
        queue: QUEUE,
        claim_limit: 1,
        lease_ms: LEASE_MS,
        payload_bytes: payloads.first().map_or(0, String::len),
        pool_connections: "workers + 1",
        enqueue_tasks: "workers",
        sqlite_dir: args.sqlite_dir.as_ref().map_or_else(
            || std::env::temp_dir().display().to_string(),
            |d| d.display().to_string(),
        ),
        postgres: PostgresTarget {
            host: pg_options.get_host().to_string(),
            port: pg_options.get_port(),
            database: pg_options.get_database().map(str::to_string),
        },
    };

    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut versions = serde_json::Map::new();

    if matches!(args.backend, BackendChoice::Sqlite | BackendChoice::Both) {
        versions.insert("sqlite".into(), db::sqlite_version().await?.into());
        eprintln!(
            "sqlite: reference ({} rows, batch {})",
            args.jobs, args.batch
        );
        let reference = sqlite_reference(&args, &payloads).await?;
        for &workers in &args.workers {
            eprintln!("sqlite: queue run, {} jobs, {workers} workers", args.jobs);
            let fresh = FreshSqlite::new(args.sqlite_dir.as_deref())?;
            let store = SqliteStore::open(&fresh.url, pool_size(workers)).await?;
            store.migrate().await?;
            let run = queue_run(Arc::new(store), workers, &payloads).await?;
            results.push(run.into_result(Backend::Sqlite, workers, args.jobs, reference));
        }
    }

    if matches!(args.backend, BackendChoice::Postgres | BackendChoice::Both) {
        match db::probe_postgres(&args.postgres_url).await {
            Err(reason) => {
                eprintln!("SKIPPED postgres: {reason}");
                skipped.push(Skipped {
                    backend: Backend::Postgres,
                    reason,
                });
            }
            Ok(version) => {
                versions.insert("postgres".into(), version.into());
                eprintln!(
                    "postgres: reference ({} rows, batch {})",
                    args.jobs, args.batch
                );
                let reference = db::with_fresh_schema(&args.postgres_url, |options| {
                    postgres_reference(options, &payloads, args.batch)
                })
                .await?;
                for &workers in &args.workers {
                    eprintln!("postgres: queue run, {} jobs, {workers} workers", args.jobs);
                    let run = db::with_fresh_schema(&args.postgres_url, |options| async {
                        let store = PostgresStore::open_with(options, pool_size(workers)).await?;
                        store.migrate().await?;
                        queue_run(Arc::new(store), workers, &payloads).await
                    })
                    .await?;
                    results.push(run.into_result(Backend::Postgres, workers, args.jobs, reference));
                }
            }
        }
    }

    let summary = summary(&results, &skipped);
    let report = json!({
        "scenario": "queue",
        "started_at": started_at,
        "finished_at": timestamp(),
        "machine": machine,
        "params": params,
        "databases": versions,
        "definitions": definitions(),
        "results": results,
        "skipped": skipped,
    });
    Ok(Outcome {
        scenario: "queue",
        report,
        summary,
    })
}

fn pool_size(workers: usize) -> u32 {
    u32::try_from(workers + 1).unwrap_or(u32::MAX)
}

/// One JSON payload per job, about the size of a small business record.
fn make_payloads(n: usize) -> Vec<String> {
    let mut rng = rand::rng();
    (0..n)
        .map(|i| {
            let record: String = (&mut rng)
                .sample_iter(rand::distr::Alphanumeric)
                .take(48)
                .map(char::from)
                .collect();
            json!({ "seq": i, "source_key": format!("BENCH-{i:08}"), "record": record }).to_string()
        })
        .collect()
}

fn kind_of(i: usize) -> String {
    format!("bench.{}", i / VERIFY_CHUNK)
}

// ---- the queue run ----------------------------------------------------------------------

struct QueueRun {
    enqueue: Duration,
    claim_ack: Duration,
    claims: usize,
    latency: Percentiles,
    verified: Verified,
}

impl QueueRun {
    fn into_result(
        self,
        backend: Backend,
        workers: usize,
        jobs: usize,
        reference: Reference,
    ) -> RunResult {
        let enqueue_s = self.enqueue.as_secs_f64();
        let claim_ack_s = self.claim_ack.as_secs_f64();
        let end_to_end_s = enqueue_s + claim_ack_s;
        let end_to_end_per_s = per_second(jobs, end_to_end_s);
        let ratio = if reference.rows_per_s > 0.0 {
            round(end_to_end_per_s / reference.rows_per_s, 4)
        } else {
            0.0
        };
        RunResult {
            backend,
            workers,
            jobs,
            pool_connections: pool_size(workers),
            enqueue_s: round(enqueue_s, 3),
            enqueue_per_s: per_second(jobs, enqueue_s),
            claim_ack_s: round(claim_ack_s, 3),
            claim_ack_per_s: per_second(jobs, claim_ack_s),
            end_to_end_s: round(end_to_end_s, 3),
            end_to_end_per_s,
            claims: self.claims,
            claim_latency_ms: self.latency,
            verified: self.verified,
            reference,
            ratio_to_reference: ratio,
        }
    }
}

async fn queue_run(
    store: Arc<dyn Store>,
    workers: usize,
    payloads: &[String],
) -> anyhow::Result<QueueRun> {
    let n = payloads.len();
    let now = store::now_ms();
    let jobs: Arc<Vec<NewJob>> = Arc::new(
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let payload = serde_json::from_str(p).expect("payloads are JSON");
                NewJob::new(kind_of(i), payload, now).queue(QUEUE)
            })
            .collect(),
    );

    // Enqueue: task k takes jobs k, k + W, k + 2W, …
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for k in 0..workers {
        let (store, jobs) = (store.clone(), jobs.clone());
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(jobs.len() / workers + 1);
            for job in jobs.iter().skip(k).step_by(workers) {
                let out = store.enqueue(job).await.context("enqueue")?;
                ensure!(
                    out.created,
                    "enqueue of a job without key did not create one"
                );
                ids.push(out.id.0);
            }
            anyhow::Ok(ids)
        });
    }
    let mut enqueued = Vec::with_capacity(n);
    while let Some(ids) = tasks.join_next().await {
        enqueued.extend(ids??);
    }
    let enqueue = started.elapsed();

    // Claim and ack until the queue is empty.
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.spawn(async move {
            let req = ClaimRequest {
                worker: format!("bench-{w}"),
                queues: vec![QUEUE.to_string()],
                limit: 1,
                lease_ms: LEASE_MS,
                now: 0,
            };
            let mut acked = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let req = ClaimRequest {
                    now: store::now_ms(),
                    ..req.clone()
                };
                let t = Instant::now();
                let claimed = store.claim_jobs(&req).await.context("claim_jobs")?;
                latencies.push(t.elapsed());
                let Some(job) = claimed.first() else { break };
                ensure!(
                    claimed.len() == 1,
                    "claim with limit 1 gave {}",
                    claimed.len()
                );
                let mut tx = store.begin().await.context("begin")?;
                tx.ack_job(&job.lease(), store::now_ms())
                    .await
                    .with_context(|| format!("ack_job of job {}", job.id))?;
                tx.commit().await.context("commit")?;
                acked.push(job.id.0);
            }
            anyhow::Ok((acked, latencies))
        });
    }
    let mut acked = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n + workers);
    while let Some(out) = tasks.join_next().await {
        let (ids, lat) = out??;
        acked.extend(ids);
        latencies.extend(lat);
    }
    let claim_ack = started.elapsed();

    let verified = verify(store.as_ref(), enqueued, acked).await?;
    Ok(QueueRun {
        enqueue,
        claim_ack,
        claims: latencies.len(),
        latency: Percentiles::of(&mut latencies),
        verified,
    })
}

/// Every enqueued job was acked once by the workers, and the store says each is `done` after
/// one attempt under one lease. Fails the run otherwise.
async fn verify(
    store: &dyn Store,
    mut enqueued: Vec<i64>,
    mut acked: Vec<i64>,
) -> anyhow::Result<Verified> {
    let n = enqueued.len();
    enqueued.sort_unstable();
    acked.sort_unstable();
    if let Some(w) = acked.windows(2).find(|w| w[0] == w[1]) {
        bail!("job {} was acked twice", w[0]);
    }
    if acked != enqueued {
        let missing = enqueued
            .iter()
            .filter(|id| acked.binary_search(id).is_err());
        bail!(
            "{} jobs enqueued, {} acked; never acked (first 10): {:?}",
            n,
            acked.len(),
            missing.take(10).collect::<Vec<_>>()
        );
    }

    let mut done = 0usize;
    let mut other = Vec::new();
    for d in store.queue_depths().await? {
        if d.status == JobStatus::Done && d.queue == QUEUE {
            done += usize::try_from(d.count)?;
        } else {
            other.push(format!("{}/{}: {}", d.queue, d.status, d.count));
        }
    }
    ensure!(
        done == n && other.is_empty(),
        "queue_depths: {done} of {n} jobs done; elsewhere: {other:?}"
    );

    let mut claimed_once = 0usize;
    for chunk in 0..n.div_ceil(VERIFY_CHUNK) {
        let expected = VERIFY_CHUNK.min(n - chunk * VERIFY_CHUNK);
        let kind = kind_of(chunk * VERIFY_CHUNK);
        let filter = JobFilter {
            kind: Some(kind.clone()),
            limit: VERIFY_CHUNK as i64,
            ..JobFilter::default()
        };
        let jobs = store.list_jobs(&filter).await?;
        ensure!(
            jobs.len() == expected,
            "list_jobs({kind}): {} jobs, {expected} expected",
            jobs.len()
        );
        for job in &jobs {
            ensure!(
                job.status == JobStatus::Done
                    && job.attempts == 1
                    && job.lease_seq == 1
                    && job.finished_at.is_some(),
                "job {} ended {} after {} attempts, lease {} (want done, 1, 1)",
                job.id,
                job.status,
                job.attempts,
                job.lease_seq
            );
        }
        claimed_once += jobs.len();
    }
    ensure!(
        claimed_once == n,
        "list_jobs saw {claimed_once} of {n} jobs"
    );
    Ok(Verified { done, claimed_once })
}

// ---- the plain-SQL reference ------------------------------------------------------------

const SQLITE_DDL: &[&str] = &[
    "CREATE TABLE ref_jobs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        queue            TEXT NOT NULL,
        kind             TEXT NOT NULL,
        payload          TEXT NOT NULL,
        flow             TEXT,
        status           TEXT NOT NULL CHECK (status IN ('queued','running','retry','done','dead','discarded')),
        priority         INTEGER NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        run_at           INTEGER NOT NULL,
        idempotency_key  TEXT UNIQUE,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        lease_seq        INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        error_class      TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        finished_at      INTEGER
    )",
    "CREATE INDEX ref_jobs_runnable ON ref_jobs (queue, priority DESC, run_at, id) WHERE status IN ('queued','retry')",
    "CREATE INDEX ref_jobs_leases ON ref_jobs (lease_expires_at) WHERE status = 'running'",
    "CREATE INDEX ref_jobs_status ON ref_jobs (status, id)",
];

const POSTGRES_DDL: &[&str] = &[
    "CREATE TABLE ref_jobs (
        id               BIGSERIAL PRIMARY KEY,
        queue            TEXT NOT NULL,
        kind             TEXT NOT NULL,
        payload          TEXT NOT NULL,
        flow             TEXT,
        status           TEXT NOT NULL CHECK (status IN ('queued','running','retry','done','dead','discarded')),
        priority         BIGINT NOT NULL DEFAULT 0,
        attempts         BIGINT NOT NULL DEFAULT 0,
        max_attempts     BIGINT NOT NULL,
        run_at           BIGINT NOT NULL,
        idempotency_key  TEXT UNIQUE,
        lease_owner      TEXT,
        lease_expires_at BIGINT,
        lease_seq        BIGINT NOT NULL DEFAULT 0,
        last_error       TEXT,
        error_class      TEXT,
        created_at       BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL,
        finished_at      BIGINT
    )",
    "CREATE INDEX ref_jobs_runnable ON ref_jobs (queue, priority DESC, run_at, id) WHERE status IN ('queued','retry')",
    "CREATE INDEX ref_jobs_leases ON ref_jobs (lease_expires_at) WHERE status = 'running'",
    "CREATE INDEX ref_jobs_status ON ref_jobs (status, id)",
];

async fn sqlite_reference(args: &Args, payloads: &[String]) -> anyhow::Result<Reference> {
    let fresh = FreshSqlite::new(args.sqlite_dir.as_deref())?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(fresh.options())
        .await?;
    let out = reference(&pool, SQLITE_DDL, payloads, args.batch).await;
    pool.close().await;
    out
}

async fn postgres_reference(
    options: PgConnectOptions,
    payloads: &[String],
    batch: usize,
) -> anyhow::Result<Reference> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let out = reference(&pool, POSTGRES_DDL, payloads, batch).await;
    pool.close().await;
    out
}

/// The same job life as the queue's, in batches of plain SQL on one connection.
async fn reference<DB>(
    pool: &Pool<DB>,
    ddl: &[&'static str],
    payloads: &[String],
    batch: usize,
) -> anyhow::Result<Reference>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    for stmt in ddl {
        sqlx::query::<DB>(*stmt).execute(pool).await?;
    }
    let now = store::now_ms();

    let started = Instant::now();
    let mut ids: Vec<i64> = Vec::with_capacity(payloads.len());
    for (c, rows) in payloads.chunks(batch).enumerate() {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO ref_jobs (queue, kind, payload, status, max_attempts, run_at, \
             created_at, updated_at) ",
        );
        let first = c * batch;
        let kinds: Vec<String> = (first..first + rows.len()).map(kind_of).collect();
        q.push_values(rows.iter().zip(&kinds), |mut b, (payload, kind)| {
            b.push_bind(QUEUE)
                .push_bind(kind.as_str())
                .push_bind(payload.as_str())
                .push("'queued'")
                .push_bind(i64::from(NewJob::DEFAULT_MAX_ATTEMPTS))
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        q.push(" RETURNING id");
        ids.extend(q.build_query_scalar::<i64>().fetch_all(pool).await?);
    }
    let insert = started.elapsed();
    ensure!(
        ids.len() == payloads.len(),
        "reference insert returned {} ids",
        ids.len()
    );

    let started = Instant::now();
    for chunk in ids.chunks(batch) {
        let t = store::now_ms();
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE ref_jobs SET status = 'running', attempts = attempts + 1, \
             lease_seq = lease_seq + 1, lease_owner = ",
        );
        q.push_bind("bench-ref")
            .push(", lease_expires_at = ")
            .push_bind(t + LEASE_MS)
            .push(", updated_at = ")
            .push_bind(t)
            .push(" WHERE status IN ('queued', 'retry') AND id IN (");
        push_ids(&mut q, chunk);
        q.build().execute(pool).await?;
    }
    for chunk in ids.chunks(batch) {
        let t = store::now_ms();
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE ref_jobs SET status = 'done', lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = ",
        );
        q.push_bind(t)
            .push(", finished_at = ")
            .push_bind(t)
            .push(" WHERE status = 'running' AND id IN (");
        push_ids(&mut q, chunk);
        q.build().execute(pool).await?;
    }
    let update = started.elapsed();
    let done: i64 =
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM ref_jobs WHERE status = 'done'")
            .fetch_one(pool)
            .await?;
    ensure!(
        usize::try_from(done)? == ids.len(),
        "reference: {done} of {} rows done",
        ids.len()
    );

    let started = Instant::now();
    for chunk in ids.chunks(batch) {
        let mut q = QueryBuilder::<DB>::new("DELETE FROM ref_jobs WHERE id IN (");
        push_ids(&mut q, chunk);
        q.build().execute(pool).await?;
    }
    let delete = started.elapsed();
    let left: i64 = sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM ref_jobs")
        .fetch_one(pool)
        .await?;
    ensure!(left == 0, "reference: {left} rows left after delete");

    let (insert_s, update_s, delete_s) = (
        insert.as_secs_f64(),
        update.as_secs_f64(),
        delete.as_secs_f64(),
    );
    Ok(Reference {
        rows: ids.len(),
        batch,
        rows_per_s: per_second(ids.len(), insert_s + update_s + delete_s),
        insert_s: round(insert_s, 3),
        update_s: round(update_s, 3),
        delete_s: round(delete_s, 3),
    })
}

/// `id, id, …)` as bound values.
fn push_ids<DB>(q: &mut QueryBuilder<DB>, ids: &[i64])
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

// ---- the summary ------------------------------------------------------------------------

fn summary(results: &[RunResult], skipped: &[Skipped]) -> String {
    let mut s = String::from(
        "backend   workers     jobs  enqueue/s  claim+ack/s  end-to-end/s   claim ms p50 / p90 / p99 / max   reference rows/s   ratio\n",
    );
    for r in results {
        let l = &r.claim_latency_ms;
        s.push_str(&format!(
            "{:<9} {:>7} {:>8} {:>10.0} {:>12.0} {:>13.0}   {:>7.2} / {:>6.2} / {:>6.2} / {:>7.2}   {:>16.0}   {:.4}\n",
            r.backend.to_string(),
            r.workers,
            r.jobs,
            r.enqueue_per_s,
            r.claim_ack_per_s,
            r.end_to_end_per_s,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            r.reference.rows_per_s,
            r.ratio_to_reference,
        ));
    }
    for sk in skipped {
        s.push_str(&format!("SKIPPED {}: {}\n", sk.backend, sk.reason));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store(dir: &FreshSqlite) -> Arc<dyn Store> {
        let store = SqliteStore::open(&dir.url, 3).await.expect("open");
        store.migrate().await.expect("migrate");
        Arc::new(store)
    }

    #[tokio::test]
    async fn a_small_run_on_sqlite_verifies_and_the_reference_cleans_up() {
        let fresh = FreshSqlite::new(None).expect("temp dir");
        let payloads = make_payloads(25);
        let run = queue_run(sqlite_store(&fresh).await, 2, &payloads)
            .await
            .expect("run");
        assert_eq!(run.verified.done, 25);
        assert_eq!(run.verified.claimed_once, 25);
        // 25 claims with a job, plus one empty claim per worker.
        assert_eq!(run.claims, 27);

        let fresh = FreshSqlite::new(None).expect("temp dir");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(fresh.options())
            .await
            .expect("pool");
        let r = reference(&pool, SQLITE_DDL, &payloads, 10)
            .await
            .expect("reference");
        assert_eq!((r.rows, r.batch), (25, 10));
    }

    #[tokio::test]
    async fn verify_fails_when_a_job_was_not_done_once() {
        let fresh = FreshSqlite::new(None).expect("temp dir");
        let store = sqlite_store(&fresh).await;
        let now = store::now_ms();
        let mut ids = Vec::new();
        for i in 0..3 {
            let job = NewJob::new(kind_of(i), json!({}), now).queue(QUEUE);
            ids.push(store.enqueue(&job).await.expect("enqueue").id.0);
        }
        // Claim all three, ack two: one job stays running.
        let req = ClaimRequest {
            worker: "t".into(),
            queues: vec![],
            limit: 3,
            lease_ms: LEASE_MS,
            now,
        };
        let claimed = store.claim_jobs(&req).await.expect("claim");
        for job in &claimed[..2] {
            let mut tx = store.begin().await.expect("begin");
            tx.ack_job(&job.lease(), now).await.expect("ack");
            tx.commit().await.expect("commit");
        }
        let acked: Vec<i64> = claimed[..2].iter().map(|j| j.id.0).collect();
        let e = verify(store.as_ref(), ids.clone(), acked)
            .await
            .expect_err("one job never acked");
        assert!(e.to_string().contains("never acked"), "{e}");

        // The workers' own count agrees but the store does not: caught by queue_depths.
        let all: Vec<i64> = claimed.iter().map(|j| j.id.0).collect();
        let e = verify(store.as_ref(), ids.clone(), all)
            .await
            .expect_err("one job still running");
        assert!(e.to_string().contains("queue_depths"), "{e}");

        let twice = vec![ids[0], ids[0], ids[1]];
        let e = verify(store.as_ref(), ids, twice)
            .await
            .expect_err("acked twice");
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
