//! Fresh, throwaway databases for one measurement: a SQLite file in a temporary directory, or a
//! PostgreSQL schema of its own (reached through `search_path`, dropped at the end), the same
//! way `store-testkit` isolates tests.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

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
        sweep_old_schemas(&mut conn).await?;
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

async fn sweep_old_schemas(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'dbb\\_%'")
            .fetch_all(&mut *conn)
            .await?;
    let hour_ago = unix_seconds().saturating_sub(3600);
    for name in names {
        let born = name.split('_').nth(1).and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|t| t < hour_ago) {
            drop_schema(conn, &name).await?;
        }
    }
    Ok(())
}

async fn drop_schema(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A PostgreSQL schema of its own. Call [`FreshSchema::drop`] when done (also after a failure).
pub struct FreshSchema {
    url: String,
    pub name: String,
}

impl FreshSchema {
    pub async fn create(url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "{SCHEMA_PREFIX}{}_{:08x}",
            unix_seconds(),
            rand::random::<u32>()
        );
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating schema {name}"))?;
        conn.close().await?;
        Ok(FreshSchema {
            url: url.to_string(),
            name,
        })
    }

    /// Options whose connections see only this schema.
    pub fn options(&self) -> anyhow::Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(&self.url)
            .with_context(|| format!("bad PostgreSQL URL `{}`", self.url))?
            .options([("search_path", self.name.as_str())]))
    }

    /// Drop the schema and everything in it.
    pub async fn drop(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.url).await?;
        drop_schema(&mut conn, &self.name)
            .await
            .with_context(|| format!("dropping schema {}", self.name))?;
        conn.close().await?;
        Ok(())
    }
}

/// Run `body` in a fresh schema, and drop the schema whatever `body` returned.
pub async fn with_fresh_schema<T, F, Fut>(url: &str, body: F) -> anyhow::Result<T>
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let schema = FreshSchema::create(url).await?;
    let out = match schema.options() {
        Ok(options) => body(options).await,
        Err(e) => Err(e),
    };
    let name = schema.name.clone();
    let dropped = schema.drop().await;
    match (out, dropped) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(d)) => Err(e.context(format!("(and schema {name} was not dropped: {d:#})"))),
    }
}
