//! Opens throwaway stores for tests, on every backend this machine has: always SQLite (a
//! temporary file), and PostgreSQL when one answers (a fresh schema per store, so tests and
//! parallel runs never see each other's rows). It also holds the conformance suite that every
//! backend must pass (`tests/`).
//!
//! PostgreSQL is looked for at `DINGBRIDGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it does not answer, the PostgreSQL half of
//! each test is reported as skipped on stderr; with `DINGBRIDGE_REQUIRE_POSTGRES=1` (set by CI
//! when the server is up) that is a failure instead, so it can never pass silently.

pub mod scratch;

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use store::{Store, StoreError};
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;
use tokio::sync::OnceCell;

use crate::scratch::ScratchSchema;

/// Test schemas are `dbt_<unix seconds>_<random>`.
const SCHEMA_PREFIX: &str = "dbt_";

/// The PostgreSQL the tests use unless told otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store for one test, with what keeps its database alive.
pub struct TestStore {
    /// `sqlite` or `postgres`: put it in assertion messages.
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    /// The URL another process (e.g. a child `dingbridge`) can open the same store with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_url() -> String {
    std::env::var("DINGBRIDGE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

fn postgres_required() -> bool {
    std::env::var("DINGBRIDGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

static POSTGRES_UP: OnceCell<bool> = OnceCell::const_new();

/// Does PostgreSQL answer? Asked once per test binary; also sweeps schemas left by old runs.
pub async fn postgres_available() -> bool {
    *POSTGRES_UP
        .get_or_init(|| async {
            let url = postgres_url();
            let probe = async {
                let mut conn = PgConnection::connect(&url).await?;
                scratch::sweep_old_schemas(&mut conn, SCHEMA_PREFIX).await?;
                conn.close().await
            };
            match tokio::time::timeout(Duration::from_secs(3), probe).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => skip_notice(&url, &e.to_string()),
                Err(_) => skip_notice(&url, "no answer within 3 s"),
            }
        })
        .await
}

fn skip_notice(url: &str, why: &str) -> bool {
    assert!(
        !postgres_required(),
        "DINGBRIDGE_REQUIRE_POSTGRES is set but PostgreSQL at {url} does not answer: {why}"
    );
    eprintln!(
        "SKIPPED on PostgreSQL: {url} does not answer ({why}); store tests ran on SQLite only"
    );
    false
}

/// A migrated SQLite store in a temporary file.
pub async fn sqlite_store() -> Result<TestStore, StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Unreachable(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
    let store = SqliteStore::open(&url, 8).await?;
    store.migrate().await?;
    Ok(TestStore {
        name: "sqlite",
        store: Arc::new(store),
        url,
        _dir: Some(dir),
    })
}

/// A migrated PostgreSQL store in a fresh schema, or `None` when PostgreSQL does not answer.
pub async fn postgres_store() -> Result<Option<TestStore>, StoreError> {
    if !postgres_available().await {
        return Ok(None);
    }
    let schema = ScratchSchema::create(&postgres_url(), SCHEMA_PREFIX)
        .await
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
    let options = schema
        .options()
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
    let store = PostgresStore::open_with(options, 8).await?;
    store.migrate().await?;
    // The schema is left for the sweep: tests end by dropping their stores, not awaiting.
    Ok(Some(TestStore {
        name: "postgres",
        store: Arc::new(store),
        url: schema.url(),
        _dir: None,
    }))
}

/// One fresh store per available backend: SQLite always, PostgreSQL when it answers.
pub async fn test_stores() -> Vec<TestStore> {
    let mut stores = vec![sqlite_store().await.expect("SQLite test store")];
    if let Some(pg) = postgres_store().await.expect("PostgreSQL test store") {
        stores.push(pg);
    }
    stores
}

/// Jobs not finished yet: queued, running or waiting to retry. Tests run workers until this is
/// 0 (the whole cluster's queue, as `queue_depths` reads it).
pub async fn unfinished_jobs(store: &dyn Store) -> i64 {
    store
        .queue_depths()
        .await
        .map(|depths| {
            depths
                .iter()
                .filter(|d| {
                    matches!(
                        d.status,
                        store::JobStatus::Queued
                            | store::JobStatus::Running
                            | store::JobStatus::Retry
                    )
                })
                .map(|d| d.count)
                .sum()
        })
        .unwrap_or(i64::MAX)
}
