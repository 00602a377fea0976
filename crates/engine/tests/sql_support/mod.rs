//! What the SQL-target tests share: where the test databases are, whether one must answer,
//! and a plain statement on a fresh connection (setup and clean-up outside the target).
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use engine::orgsync::target::sql::Dialect;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection};

pub const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `DINGBRIDGE_REQUIRE_POSTGRES` / `DINGBRIDGE_REQUIRE_MYSQL`: an absent server fails the test.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1" || v == "true")
}

pub async fn exec(dialect: Dialect, url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let sql = AssertSqlSafe(sql.to_owned());
    match dialect {
        Dialect::Postgres => {
            let mut conn = PgConnection::connect(url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
            conn.close().await
        }
        Dialect::MySql => {
            let mut conn = MySqlConnection::connect(url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
            conn.close().await
        }
        Dialect::Sqlite => {
            let mut conn = SqliteConnection::connect(url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
            conn.close().await
        }
    }
}
