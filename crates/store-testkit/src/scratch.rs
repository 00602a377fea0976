//! Scratch PostgreSQL schemas: a schema of its own per test or benchmark run, reached through
//! `search_path`, named `<prefix><unix seconds>_<random>` so that ones an interrupted run left
//! behind can be swept by age.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A schema made for one run.
pub struct ScratchSchema {
    base_url: String,
    pub name: String,
}

impl ScratchSchema {
    pub async fn create(base_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        let name = format!("{prefix}{}_{:08x}", unix_seconds(), rand::random::<u32>());
        let mut conn = PgConnection::connect(base_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(Self {
            base_url: base_url.to_owned(),
            name,
        })
    }

    /// Options whose connections see only this schema.
    pub fn options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        Ok(PgConnectOptions::from_str(&self.base_url)?
            .options([("search_path", self.name.as_str())]))
    }

    /// A URL another process can open the same schema with.
    pub fn url(&self) -> String {
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.base_url, self.name
        )
    }

    /// Drop the schema and everything in it.
    pub async fn drop(self) -> Result<(), sqlx::Error> {
        let mut conn = PgConnection::connect(&self.base_url).await?;
        drop_schema(&mut conn, &self.name).await?;
        conn.close().await
    }
}

async fn drop_schema(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Drop the schemas with this prefix that are older than an hour.
pub async fn sweep_old_schemas(conn: &mut PgConnection, prefix: &str) -> Result<(), sqlx::Error> {
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut *conn)
            .await?;
    let hour_ago = unix_seconds().saturating_sub(3600);
    for name in names {
        let born = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|t| t < hour_ago) {
            drop_schema(conn, &name).await?;
        }
    }
    Ok(())
}
