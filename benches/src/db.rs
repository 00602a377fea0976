//! Fresh, throwaway databases for one measurement: a SQLite file in a temporary directory, or a
//! PostgreSQL schema of its own (reached through `search_path`, dropped at the end), the same
//! way `store-testkit` isolates tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use store_testkit::scratch::{ScratchSchema, sweep_old_schemas};

/// The PostgreSQL the benchmarks use unless told otherwise (the test database).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Schemas made here are named `dbb_<unix seconds>_<random>`.
const SCHEMA_PREFIX: &str = "dbb_";

/// A SQLite file in a temporary directory, removed on drop.
pub struct FreshSqlite {
    pub url: String,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FreshSqlite {
    /// In `parent` (the system's temporary directory when `None`).
    pub fn new(parent: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match parent {
            Some(p) => tempfile::Builder::new().prefix("dbb-").tempdir_in(p),
            None => tempfile::Builder::new().prefix("dbb-").tempdir(),
        }
        .context("creating a temporary directory for SQLite")?;
        let path = dir.path().join("bench.sqlite");
        Ok(FreshSqlite {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        })
    }

    /// Connection settings equal to `SqliteStore::open`'s (WAL, synchronous NORMAL, busy
    /// timeout, foreign keys), for the plain-SQL reference.
    pub fn options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
    }
}

/// The SQLite library's version.
pub async fn sqlite_version() -> anyhow::Result<String> {
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
    let v: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(v)
}

/// Does PostgreSQL answer at `url`? `Ok(server version)`, or why not. Also drops the schemas
/// older than an hour that an interrupted run left behind.
pub async fn probe_postgres(url: &str) -> Result<String, String> {
    let probe = async {
        let mut conn = PgConnection::connect(url).await?;
        sweep_old_schemas(&mut conn, SCHEMA_PREFIX).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(version)
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("PostgreSQL at {url} does not answer: {e}")),
        Err(_) => Err(format!("PostgreSQL at {url} gave no answer within 3 s")),
    }
}

/// Run `body` in a fresh schema, and drop the schema whatever `body` returned.
pub async fn with_fresh_schema<T, F, Fut>(url: &str, body: F) -> anyhow::Result<T>
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let schema = ScratchSchema::create(url, SCHEMA_PREFIX)
        .await
        .with_context(|| format!("creating a schema on {url}"))?;
    let out = match schema.options() {
        Ok(options) => body(options).await,
        Err(e) => Err(e.into()),
    };
    let name = schema.name.clone();
    let dropped = schema.drop().await.map_err(anyhow::Error::from);
    match (out, dropped) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(d)) => Err(e.context(format!("(and schema {name} was not dropped: {d:#})"))),
    }
}
