//! The SQL table target: one row per record in a table of an in-house database (PostgreSQL,
//! MySQL/MariaDB or SQLite, by the connection URL's scheme), upserted by its key column.
//!
//! Settings, per entity (`[flows.<name>.options.users]` / `.departments`; `key` and `fields`
//! there are the mapping's: `key` is the default key column, and the mapped field names are
//! the column names):
//!
//! ```toml
//! table = "hr_employee"          # or "schema.table"
//! key_column = "job_number"      # default: the mapping's key field
//! disable = { column = "active", value = false }   # or disable = "delete"
//! create_table = false           # true: CREATE TABLE IF NOT EXISTS (TEXT columns, key primary)
//! ```
//!
//! The key column must be the primary key or unique (the upsert is `INSERT … ON CONFLICT`, or
//! `ON DUPLICATE KEY UPDATE` on MySQL). Every identifier is checked at construction
//! (`^[A-Za-z_][A-Za-z0-9_]*$`, at most 63 characters) and quoted; values are always bound,
//! never written into the SQL. A batch is one transaction with a savepoint per row, so a row
//! the database refuses (a constraint, a bad value) is rejected alone with the database's
//! message while the others are written. On PostgreSQL each value is cast to its column's
//! declared type (so "2024-03-01" reaches a DATE column); MySQL and SQLite convert on their own.
//! `created` is PostgreSQL's `xmax = 0` on the returned row, elsewhere a `SELECT` of the key
//! before the write in the same transaction. `read_all` reads columns of other types (dates,
//! decimals) as text.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sqlx::error::ErrorKind;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Column as _, Database, Decode, Encode, Transaction, Type};
use sqlx::{TypeInfo as _, ValueRef as _};
use tokio::sync::OnceCell;

pub use super::http::TargetConfigError;
use super::http::{MAPPING_KEYS, loosely_equal};
use super::{Entity, OrgTarget, RecordOutcome, TargetError, TargetRecord, TargetRow};
use crate::config::SqlConnection;

/// PostgreSQL's identifier limit; the others allow more, so one rule fits all three.
const MAX_IDENTIFIER_LEN: usize = 63;
/// Connections per target (the batches of one target are written one after another).
const POOL_SIZE: u32 = 4;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` waits for the database to check the tables before leaving that to the
/// first call.
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Which SQL the target speaks, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// `postgres://`/`postgresql://`, `mysql://`/`mariadb://`, `sqlite://`/`sqlite:`.
    pub fn from_url(url: &str) -> Option<Dialect> {
        let (scheme, _) = url.split_once(':')?;
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    /// Identifiers are checked to be `[A-Za-z0-9_]` first, so quoting needs no escaping.
    fn quote(self, identifier: &str) -> String {
        match self {
            Dialect::MySql => format!("`{identifier}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{identifier}\""),
        }
    }

    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql | Dialect::Sqlite => "?".into(),
        }
    }

    /// How the catalog's column names compare: quoted PostgreSQL names are case-sensitive,
    /// MySQL and SQLite column names are not.
    fn column_id(self, name: &str) -> String {
        match self {
            Dialect::Postgres => name.to_owned(),
            Dialect::MySql | Dialect::Sqlite => name.to_ascii_lowercase(),
        }
    }
}

/// Checks one identifier against `^[A-Za-z_][A-Za-z0-9_]*$` and the length limit.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a plain SQL identifier (letters, digits and _, not starting with a \
             digit)"
        ));
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(format!(
            "`{name}` is longer than {MAX_IDENTIFIER_LEN} characters"
        ));
    }
    Ok(())
}

/// What disabling a record does.
#[derive(Debug, Clone, PartialEq)]
enum DisablePolicy {
    /// `UPDATE … SET column = value`; every upsert writes `enabled` to the column, so a person
    /// who comes back (the same key) is enabled again.
    Column {
        column: String,
        value: Value,
        enabled: Option<Value>,
    },
    /// `DELETE` the row.
    Delete,
}

/// The columns a table has, as the database's catalog says (name → declared type).
#[derive(Debug)]
struct Schema {
    /// Keyed by [`Dialect::column_id`]; the type lowercased.
    types: HashMap<String, String>,
}

/// One entity's table.
#[derive(Debug)]
struct Table {
    entity: Entity,
    /// The name as written (`hr_employee` or `hr.employee`), for messages.
    name: String,
    /// Quoted, ready for SQL.
    quoted: String,
    /// `(schema, table)` for the catalog.
    parts: (Option<String>, String),
    key_column: String,
    /// The mapped field names, in the mapping's order (empty when the options had no mapping).
    mapped: Vec<String>,
    disable: Option<DisablePolicy>,
    create_table: bool,
    /// Loaded at the first use (or by `connect` when the database answers then).
    schema: OnceCell<Schema>,
}

enum SqlPool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

enum SqlTx {
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// A JSON value as it is bound: strings as text, integers as i64, floats as f64, bools as
/// bool, null as NULL, objects and arrays as JSON text.
#[derive(Debug, Clone, PartialEq)]
enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl SqlValue {
    fn from_json(value: &Value) -> SqlValue {
        match value {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Bool(*b),
            Value::String(s) => SqlValue::Text(s.clone()),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => SqlValue::Int(i),
                // A u64 beyond i64 keeps its digits as text rather than losing precision.
                (None, _) if n.is_u64() => SqlValue::Text(n.to_string()),
                (None, Some(f)) => SqlValue::Float(f),
                (None, None) => SqlValue::Text(n.to_string()),
            },
            Value::Array(_) | Value::Object(_) => SqlValue::Text(value.to_string()),
        }
    }
}

type SqlQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

fn bind_values<'q, DB>(mut query: SqlQuery<'q, DB>, values: &[SqlValue]) -> SqlQuery<'q, DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
{
    for value in values {
        query = match value {
            SqlValue::Text(s) => query.bind(s.clone()),
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Float(f) => query.bind(*f),
            SqlValue::Bool(b) => query.bind(*b),
            SqlValue::Null => query.bind(Option::<String>::None),
        };
    }
    query
}

/// One row as JSON values, column by column. A column of a type this cannot read fails with
/// its name and type (read_all selects such columns as text, so this is rare).
fn decode_row<R>(row: &R) -> Result<Vec<Value>, String>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Value: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut values = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let type_name = column.type_info().name().to_ascii_uppercase();
        // MySQL's BOOLEAN is a TINYINT(1): read it as a bool before trying integers.
        if type_name.contains("BOOL")
            && let Ok(b) = row.try_get::<bool, _>(i)
        {
            values.push(Value::Bool(b));
            continue;
        }
        let value = if let Ok(s) = row.try_get::<String, _>(i) {
            Value::String(s)
        } else if let Ok(n) = row.try_get::<i64, _>(i) {
            Value::from(n)
        } else if let Ok(n) = row.try_get::<i32, _>(i) {
            Value::from(n)
        } else if let Ok(n) = row.try_get::<i16, _>(i) {
            Value::from(n)
        } else if let Ok(f) = row.try_get::<f64, _>(i) {
            Value::from(f)
        } else if let Ok(f) = row.try_get::<f32, _>(i) {
            Value::from(f64::from(f))
        } else if let Ok(b) = row.try_get::<bool, _>(i) {
            Value::Bool(b)
        } else if let Ok(j) = row.try_get::<Value, _>(i) {
            j
        } else {
            return Err(format!(
                "column `{}` has type {type_name}, which cannot be read as text, a number or a \
                 boolean",
                column.name()
            ));
        };
        values.push(value);
    }
    Ok(values)
}

/// Runs `$body` with `$conn` bound to the concrete connection of each database.
macro_rules! on_each_db {
    ($target:expr, $enum:ident, $conn:ident => $body:expr) => {
        match $target {
            $enum::Postgres($conn) => $body,
            $enum::MySql($conn) => $body,
            $enum::Sqlite($conn) => $body,
        }
    };
}

/// A database error or a row the decoder could not read.
#[derive(Debug)]
enum DbError {
    Sqlx(sqlx::Error),
    Decode(String),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sqlx(e)
    }
}

impl SqlPool {
    /// A lazy pool for `url` (nothing is connected until the first statement).
    fn open(url: &str, dialect: Dialect, create_if_missing: bool) -> Result<SqlPool, String> {
        Ok(match dialect {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
                SqlPool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(POOL_SIZE)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
            Dialect::MySql => {
                let options = MySqlConnectOptions::from_str(url)
                    .map_err(|e| format!("not a MySQL URL ({e})"))?;
                SqlPool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(POOL_SIZE)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| format!("not a SQLite URL ({e})"))?
                    .create_if_missing(create_if_missing);
                // One writer at a time is what SQLite allows anyway; one connection avoids
                // "database is locked" between our own batches.
                SqlPool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
        })
    }

    async fn begin(&self) -> Result<SqlTx, sqlx::Error> {
        Ok(match self {
            SqlPool::Postgres(p) => SqlTx::Postgres(p.begin().await?),
            SqlPool::MySql(p) => SqlTx::MySql(p.begin().await?),
            SqlPool::Sqlite(p) => SqlTx::Sqlite(p.begin().await?),
        })
    }

    /// A statement without binds, sent as plain text (DDL).
    async fn raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        on_each_db!(self, SqlPool, pool => {
            sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(pool).await.map(|_| ())
        })
    }

    async fn fetch_all(&self, sql: &str, values: &[SqlValue]) -> Result<Vec<Vec<Value>>, DbError> {
        on_each_db!(self, SqlPool, pool => {
            let rows = bind_values(sqlx::query(AssertSqlSafe(sql.to_owned())), values)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| decode_row(row).map_err(DbError::Decode))
                .collect()
        })
    }
}

impl SqlTx {
    async fn raw(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        on_each_db!(self, SqlTx, tx => {
            sqlx::raw_sql(sql).execute(&mut **tx).await.map(|_| ())
        })
    }

    async fn execute(&mut self, sql: &str, values: &[SqlValue]) -> Result<u64, sqlx::Error> {
        on_each_db!(self, SqlTx, tx => {
            bind_values(sqlx::query(AssertSqlSafe(sql.to_owned())), values)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected())
        })
    }

    async fn fetch_all(
        &mut self,
        sql: &str,
        values: &[SqlValue],
    ) -> Result<Vec<Vec<Value>>, DbError> {
        on_each_db!(self, SqlTx, tx => {
            let rows = bind_values(sqlx::query(AssertSqlSafe(sql.to_owned())), values)
                .fetch_all(&mut **tx)
                .await?;
            rows.iter()
                .map(|row| decode_row(row).map_err(DbError::Decode))
                .collect()
        })
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        on_each_db!(self, SqlTx, tx => tx.commit().await)
    }
}

/// How a failed statement counts.
enum Failure {
    /// This row alone: a constraint, a value the column refuses.
    Row {
        field: Option<String>,
        reason: String,
    },
    /// The whole call.
    Call(TargetError),
}

/// A table of an in-house database as an [`OrgTarget`].
pub struct SqlTarget {
    connection: String,
    dialect: Dialect,
    pool: SqlPool,
    users: Table,
    departments: Option<Table>,
}

impl std::fmt::Debug for SqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTarget")
            .field("connection", &self.connection)
            .field("dialect", &self.dialect)
            .field("users", &self.users)
            .field("departments", &self.departments)
            .finish_non_exhaustive()
    }
}

impl SqlTarget {
    /// Checks the settings of `users` (required) and `departments` (optional) and opens a lazy
    /// pool. When the database answers within a few seconds, the tables are checked (and
    /// created, with `create_table`) now, so a missing table or column is a configuration
    /// error here; when it does not, that check waits for the first call.
    pub async fn connect(
        connection_name: &str,
        conn: &SqlConnection,
        departments: Option<&Value>,
        users: &Value,
    ) -> Result<SqlTarget, TargetConfigError> {
        let url = conn.url.expose_secret();
        let url_error = |problem: String| {
            TargetConfigError::new(
                connection_name,
                None,
                "url",
                problem,
                "write postgres://user@host:5432/db, mysql://user:pass@host:3306/db (or \
                 mariadb://…) or sqlite://path/to/file.db",
            )
        };
        let dialect = Dialect::from_url(url).ok_or_else(|| {
            url_error("the scheme is not postgres, mysql, mariadb or sqlite".into())
        })?;
        let users = parse_table(connection_name, dialect, Entity::User, users)?;
        let departments = departments
            .map(|d| parse_table(connection_name, dialect, Entity::Department, d))
            .transpose()?;
        let creates_tables =
            users.create_table || departments.as_ref().is_some_and(|d| d.create_table);
        let pool = SqlPool::open(url, dialect, creates_tables).map_err(url_error)?;
        let target = SqlTarget {
            connection: connection_name.to_owned(),
            dialect,
            pool,
            users,
            departments,
        };
        for table in std::iter::once(&target.users).chain(target.departments.as_ref()) {
            match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, target.schema(table)).await {
                Ok(Ok(_)) => {}
                Ok(Err(TargetError::Permanent { message })) => {
                    return Err(TargetConfigError::new(
                        connection_name,
                        Some(table.entity),
                        "table",
                        message,
                        "create the table and its columns, fix the names, or set \
                         create_table = true",
                    ));
                }
                Ok(Err(TargetError::Retryable { message, .. })) => tracing::warn!(
                    connection = connection_name,
                    table = %table.name,
                    %message,
                    "the SQL target's table is checked at the first call instead"
                ),
                Err(_) => tracing::warn!(
                    connection = connection_name,
                    table = %table.name,
                    "the database did not answer in time; the table is checked at the first call"
                ),
            }
        }
        Ok(target)
    }

    /// `dingbridge check`: can the database be reached and does it answer `SELECT 1`?
    pub async fn probe(url: &str) -> Result<String, String> {
        let dialect = Dialect::from_url(url)
            .ok_or("the URL's scheme is not postgres, mysql, mariadb or sqlite")?;
        // One plain connection, not a pool: a pool's timeout would hide why it failed.
        async fn select_one<C: sqlx::Connection>(url: &str) -> Result<(), sqlx::Error>
        where
            for<'c> &'c mut C: sqlx::Executor<'c>,
        {
            let mut conn = C::connect(url).await?;
            sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        }
        match dialect {
            Dialect::Postgres => select_one::<sqlx::PgConnection>(url).await,
            Dialect::MySql => select_one::<sqlx::MySqlConnection>(url).await,
            Dialect::Sqlite => select_one::<sqlx::SqliteConnection>(url).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(format!("{dialect:?} answers SELECT 1"))
    }

    /// Which SQL the target speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn table(&self, entity: Entity) -> Result<&Table, TargetError> {
        match entity {
            Entity::User => Ok(&self.users),
            Entity::Department => self.departments.as_ref().ok_or_else(|| {
                TargetError::permanent(format!(
                    "connection `{}` has no table for departments; fix: add an \
                     options.departments table with table = \"…\"",
                    self.connection
                ))
            }),
        }
    }

    async fn schema<'t>(&self, table: &'t Table) -> Result<&'t Schema, TargetError> {
        table
            .schema
            .get_or_try_init(|| self.load_schema(table))
            .await
    }

    async fn load_schema(&self, table: &Table) -> Result<Schema, TargetError> {
        if table.create_table {
            let ddl = self.create_table_sql(table);
            self.pool
                .raw(&ddl)
                .await
                .map_err(|e| self.call_error(e, &format!("creating table {}", table.name)))?;
        }
        let (schema_name, table_name) = &table.parts;
        let (sql, binds) = match self.dialect {
            Dialect::Postgres => (
                "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                vec![SqlValue::Text(table.quoted.clone())],
            ),
            Dialect::MySql => (
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                vec![
                    schema_name.clone().map_or(SqlValue::Null, SqlValue::Text),
                    SqlValue::Text(table_name.clone()),
                ],
            ),
            Dialect::Sqlite => (
                "SELECT name, type FROM pragma_table_info(?, ?)",
                vec![
                    SqlValue::Text(table_name.clone()),
                    SqlValue::Text(schema_name.clone().unwrap_or_else(|| "main".into())),
                ],
            ),
        };
        let rows = self.pool.fetch_all(sql, &binds).await.map_err(|e| {
            self.db_call_error(e, &format!("reading the columns of {}", table.name))
        })?;
        let types: HashMap<String, String> = rows
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [Value::String(name), kind] => Some((
                    self.dialect.column_id(name),
                    kind.as_str().unwrap_or_default().to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect();
        if types.is_empty() {
            return Err(TargetError::permanent(format!(
                "connection `{}`: table {} does not exist (or has no columns this user can see); \
                 fix: create it, or set create_table = true",
                self.connection, table.name
            )));
        }
        let schema = Schema { types };
        let mut wanted: Vec<&str> = vec![table.key_column.as_str()];
        if let Some(DisablePolicy::Column { column, .. }) = &table.disable {
            wanted.push(column);
        }
        wanted.extend(table.mapped.iter().map(String::as_str));
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|c| schema.column_type(self.dialect, c).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::permanent(format!(
                "connection `{}`: table {} has no column {}; fix: add the column(s) or change \
                 the mapping's field names",
                self.connection,
                table.name,
                missing.join(", ")
            )));
        }
        Ok(schema)
    }

    fn create_table_sql(&self, table: &Table) -> String {
        let d = self.dialect;
        let key_type = match d {
            // MySQL cannot index TEXT without a length.
            Dialect::MySql => "VARCHAR(255) NOT NULL",
            Dialect::Postgres | Dialect::Sqlite => "TEXT NOT NULL",
        };
        let mut columns = vec![format!(
            "{} {key_type} PRIMARY KEY",
            d.quote(&table.key_column)
        )];
        let mut seen = vec![d.column_id(&table.key_column)];
        for field in &table.mapped {
            if !seen.contains(&d.column_id(field)) {
                seen.push(d.column_id(field));
                columns.push(format!("{} TEXT", d.quote(field)));
            }
        }
        if let Some(DisablePolicy::Column { column, value, .. }) = &table.disable
            && !seen.contains(&d.column_id(column))
        {
            let kind = match value {
                Value::Bool(_) => "BOOLEAN",
                Value::Number(n) if n.is_i64() || n.is_u64() => "BIGINT",
                Value::Number(_) if d == Dialect::Postgres => "DOUBLE PRECISION",
                Value::Number(_) => "DOUBLE",
                _ => "TEXT",
            };
            columns.push(format!("{} {kind}", d.quote(column)));
        }
        let suffix = match d {
            Dialect::MySql => " DEFAULT CHARSET=utf8mb4",
            Dialect::Postgres | Dialect::Sqlite => "",
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}){suffix}",
            table.quoted,
            columns.join(", ")
        )
    }

    /// `$n` on PostgreSQL is cast to the column's type, so text reaches a DATE or an integer
    /// column as PostgreSQL would read a literal (the others convert on assignment).
    fn value_placeholder(&self, schema: &Schema, column: &str, n: usize) -> String {
        let placeholder = self.dialect.placeholder(n);
        match (self.dialect, schema.column_type(self.dialect, column)) {
            (Dialect::Postgres, Some(kind)) => format!("CAST({placeholder} AS {kind})"),
            _ => placeholder,
        }
    }

    /// The key as it is written and compared: the mapped key field's value when the record
    /// has one, else the record's key as text.
    fn key_value(&self, table: &Table, record: &TargetRecord) -> SqlValue {
        record
            .fields
            .iter()
            .find(|(name, _)| self.same_column(name, &table.key_column))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
            .map_or_else(|| SqlValue::Text(record.key.clone()), SqlValue::from_json)
    }

    fn same_column(&self, a: &str, b: &str) -> bool {
        self.dialect.column_id(a) == self.dialect.column_id(b)
    }

    /// The upsert of one record and its binds, and the statement that tells whether the row
    /// existed (all but PostgreSQL, which answers that itself through `xmax`).
    fn upsert_sql(
        &self,
        table: &Table,
        schema: &Schema,
        record: &TargetRecord,
    ) -> Result<UpsertSql, TargetError> {
        let d = self.dialect;
        let key = self.key_value(table, record);
        let mut columns = vec![table.key_column.clone()];
        let mut values = vec![key.clone()];
        for (name, value) in &record.fields {
            if self.same_column(name, &table.key_column) {
                continue;
            }
            check_identifier(name).map_err(|problem| {
                TargetError::permanent(format!(
                    "connection `{}`: mapped field {problem}; fix: rename it in the mapping",
                    self.connection
                ))
            })?;
            if schema.column_type(d, name).is_none() {
                return Err(TargetError::permanent(format!(
                    "connection `{}`: table {} has no column `{name}`; fix: add the column or \
                     change the mapping",
                    self.connection, table.name
                )));
            }
            columns.push(name.clone());
            values.push(SqlValue::from_json(value));
        }
        // Written on every upsert: a row disabled earlier (a leaver) is enabled again when the
        // person is back, unless the mapping writes the column itself.
        if let Some(DisablePolicy::Column {
            column,
            enabled: Some(enabled),
            ..
        }) = &table.disable
            && !columns.iter().any(|c| self.same_column(c, column))
        {
            columns.push(column.clone());
            values.push(SqlValue::from_json(enabled));
        }
        let quoted: Vec<String> = columns.iter().map(|c| d.quote(c)).collect();
        let placeholders: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| self.value_placeholder(schema, c, i + 1))
            .collect();
        let key_quoted = d.quote(&table.key_column);
        let others = &quoted[1..];
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.quoted,
            quoted.join(", "),
            placeholders.join(", ")
        );
        let sql = match d {
            Dialect::Postgres => {
                let sets = if others.is_empty() {
                    format!("{key_quoted} = EXCLUDED.{key_quoted}")
                } else {
                    others
                        .iter()
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                // xmax is 0 on a row version this statement inserted.
                format!(
                    "{insert} ON CONFLICT ({key_quoted}) DO UPDATE SET {sets} RETURNING (xmax = 0)"
                )
            }
            Dialect::Sqlite if others.is_empty() => {
                format!("{insert} ON CONFLICT ({key_quoted}) DO NOTHING")
            }
            Dialect::Sqlite => format!(
                "{insert} ON CONFLICT ({key_quoted}) DO UPDATE SET {}",
                others
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Dialect::MySql => {
                // VALUES() is what both MySQL and MariaDB understand (MySQL 8.0.20 also has
                // row aliases, which MariaDB does not).
                let sets = if others.is_empty() {
                    format!("{key_quoted} = {key_quoted}")
                } else {
                    others
                        .iter()
                        .map(|c| format!("{c} = VALUES({c})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("{insert} ON DUPLICATE KEY UPDATE {sets}")
            }
        };
        let exists = (d != Dialect::Postgres).then(|| {
            format!(
                "SELECT 1 FROM {} WHERE {key_quoted} = {}",
                table.quoted,
                self.value_placeholder(schema, &table.key_column, 1)
            )
        });
        Ok(UpsertSql {
            sql,
            values,
            exists,
            key,
        })
    }

    /// Runs `step` for every item inside one transaction, each under a savepoint: a row the
    /// database refuses is rolled back alone and answered `Rejected`.
    async fn in_batch<I, F>(
        &self,
        items: &[I],
        mut step: F,
    ) -> Result<Vec<RecordOutcome>, TargetError>
    where
        I: Sync,
        F: for<'x> FnMut(&'x mut SqlTx, &'x I) -> BoxFuture<'x, Result<RecordOutcome, DbError>>
            + Send,
    {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.call_error(e, "starting a transaction"))?;
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            tx.raw(savepoint_sql(SavepointOp::Set))
                .await
                .map_err(|e| self.call_error(e, "setting a savepoint"))?;
            match step(&mut tx, item).await {
                Ok(outcome) => {
                    tx.raw(savepoint_sql(SavepointOp::Release))
                        .await
                        .map_err(|e| self.call_error(e, "releasing a savepoint"))?;
                    outcomes.push(outcome);
                }
                Err(e) => match self.classify(e) {
                    Failure::Row { field, reason } => {
                        tx.raw(savepoint_sql(SavepointOp::RollbackTo))
                            .await
                            .map_err(|e| self.call_error(e, "rolling back a savepoint"))?;
                        tx.raw(savepoint_sql(SavepointOp::Release))
                            .await
                            .map_err(|e| self.call_error(e, "releasing a savepoint"))?;
                        outcomes.push(RecordOutcome::Rejected { field, reason });
                    }
                    Failure::Call(e) => return Err(e),
                },
            }
        }
        tx.commit()
            .await
            .map_err(|e| self.call_error(e, "committing"))?;
        Ok(outcomes)
    }

    /// Whether a failure is this row's or the whole call's.
    fn classify(&self, e: DbError) -> Failure {
        let e = match e {
            DbError::Decode(reason) => {
                return Failure::Call(TargetError::permanent(format!(
                    "connection `{}`: {reason}",
                    self.connection
                )));
            }
            DbError::Sqlx(e) => e,
        };
        match &e {
            sqlx::Error::Database(db) => {
                let row = Failure::Row {
                    field: self.failed_column(db.as_ref()),
                    reason: db.message().to_owned(),
                };
                if matches!(
                    db.kind(),
                    ErrorKind::UniqueViolation
                        | ErrorKind::ForeignKeyViolation
                        | ErrorKind::NotNullViolation
                        | ErrorKind::CheckViolation
                ) {
                    return row;
                }
                match self.database_error_class(db.as_ref()) {
                    ErrorClass::Row => row,
                    ErrorClass::Retry => Failure::Call(TargetError::retryable(format!(
                        "connection `{}`: {}",
                        self.connection,
                        db.message()
                    ))),
                    ErrorClass::Permanent => Failure::Call(TargetError::permanent(format!(
                        "connection `{}`: {}",
                        self.connection,
                        db.message()
                    ))),
                }
            }
            sqlx::Error::Encode(reason) => Failure::Row {
                field: None,
                reason: reason.to_string(),
            },
            _ => Failure::Call(self.call_error(e, "writing")),
        }
    }

    fn database_error_class(&self, db: &dyn sqlx::error::DatabaseError) -> ErrorClass {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        match self.dialect {
            Dialect::Postgres => match code.get(..2).unwrap_or_default() {
                // data exception, integrity constraint violation
                "22" | "23" => ErrorClass::Row,
                // connection, transaction rollback (serialization, deadlock), resources,
                // operator intervention (shutdown)
                "08" | "40" | "53" | "57" => ErrorClass::Retry,
                _ if code == "55P03" => ErrorClass::Retry,
                _ => ErrorClass::Permanent,
            },
            Dialect::MySql => {
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(MySqlDatabaseError::number)
                    .unwrap_or_default();
                match number {
                    // null into NOT NULL, duplicate, foreign keys, no default, bad value,
                    // truncation, out of range, too long, check constraint
                    1048 | 1062 | 1216 | 1217 | 1364 | 1366 | 1265 | 1292 | 1264 | 1406 | 1451
                    | 1452 | 3819 | 4025 => ErrorClass::Row,
                    // lock wait timeout, deadlock, server gone, lost connection
                    1205 | 1213 | 2006 | 2013 => ErrorClass::Retry,
                    _ => match code.get(..2).unwrap_or_default() {
                        "22" | "23" => ErrorClass::Row,
                        "08" | "40" => ErrorClass::Retry,
                        _ => ErrorClass::Permanent,
                    },
                }
            }
            Dialect::Sqlite => {
                // The extended result code; its low byte is the primary code.
                let primary = code.parse::<i64>().map_or(0, |c| c & 0xff);
                match primary {
                    // CONSTRAINT, MISMATCH, TOOBIG, RANGE
                    19 | 20 | 18 | 25 => ErrorClass::Row,
                    // BUSY, LOCKED, IOERR, FULL
                    5 | 6 | 10 | 13 => ErrorClass::Retry,
                    _ => ErrorClass::Permanent,
                }
            }
        }
    }

    /// The column a refused row failed on, when the database says.
    fn failed_column(&self, db: &dyn sqlx::error::DatabaseError) -> Option<String> {
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
            return pg.column().map(str::to_owned);
        }
        let message = db.message();
        match self.dialect {
            // "Column 'name' cannot be null"
            Dialect::MySql => message
                .split_once("Column '")
                .and_then(|(_, rest)| rest.split_once('\''))
                .map(|(column, _)| column.to_owned()),
            // "NOT NULL constraint failed: hr_employee.name"
            Dialect::Sqlite => message
                .split_once("constraint failed: ")
                .map(|(_, rest)| rest.rsplit('.').next().unwrap_or(rest).to_owned())
                .filter(|c| check_identifier(c).is_ok()),
            Dialect::Postgres => None,
        }
    }

    fn call_error(&self, e: sqlx::Error, doing: &str) -> TargetError {
        let message = format!("connection `{}`: {doing}: {e}", self.connection);
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => TargetError::retryable(message),
            sqlx::Error::Database(db) => match self.database_error_class(db.as_ref()) {
                ErrorClass::Retry => TargetError::retryable(message),
                ErrorClass::Row | ErrorClass::Permanent => TargetError::permanent(message),
            },
            _ => TargetError::permanent(message),
        }
    }

    fn db_call_error(&self, e: DbError, doing: &str) -> TargetError {
        match e {
            DbError::Sqlx(e) => self.call_error(e, doing),
            DbError::Decode(reason) => TargetError::permanent(format!(
                "connection `{}`: {doing}: {reason}",
                self.connection
            )),
        }
    }

    /// The expression read_all selects for a column: the column itself when its type decodes
    /// to JSON directly, else its text form (dates, decimals, …).
    fn read_expression(&self, schema: &Schema, column: &str) -> String {
        let quoted = self.dialect.quote(column);
        let kind = schema.column_type(self.dialect, column).unwrap_or_default();
        let native = match self.dialect {
            Dialect::Postgres => matches!(
                kind,
                "text"
                    | "character varying"
                    | "character"
                    | "name"
                    | "smallint"
                    | "integer"
                    | "bigint"
                    | "real"
                    | "double precision"
                    | "boolean"
                    | "json"
                    | "jsonb"
            ),
            Dialect::MySql => matches!(
                kind,
                "char"
                    | "varchar"
                    | "tinytext"
                    | "text"
                    | "mediumtext"
                    | "longtext"
                    | "enum"
                    | "tinyint"
                    | "smallint"
                    | "mediumint"
                    | "int"
                    | "integer"
                    | "bigint"
                    | "float"
                    | "double"
                    | "json"
            ),
            // Values carry their own type in SQLite.
            Dialect::Sqlite => true,
        };
        match (native, self.dialect) {
            (true, _) => quoted,
            (false, Dialect::MySql) => format!("CAST({quoted} AS CHAR)"),
            (false, _) => format!("CAST({quoted} AS TEXT)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    Row,
    Retry,
    Permanent,
}

#[derive(Debug, Clone, Copy)]
enum SavepointOp {
    Set,
    Release,
    RollbackTo,
}

fn savepoint_sql(op: SavepointOp) -> &'static str {
    // One name for every row: each is released before the next is set.
    match op {
        SavepointOp::Set => "SAVEPOINT dingbridge_row",
        SavepointOp::Release => "RELEASE SAVEPOINT dingbridge_row",
        SavepointOp::RollbackTo => "ROLLBACK TO SAVEPOINT dingbridge_row",
    }
}

struct UpsertSql {
    sql: String,
    values: Vec<SqlValue>,
    /// `SELECT 1 … WHERE key = ?` (not on PostgreSQL).
    exists: Option<String>,
    key: SqlValue,
}

impl Schema {
    fn column_type(&self, dialect: Dialect, column: &str) -> Option<&str> {
        self.types
            .get(&dialect.column_id(column))
            .map(String::as_str)
    }
}

#[async_trait]
impl OrgTarget for SqlTarget {
    fn kind(&self) -> &'static str {
        "sql"
    }

    async fn upsert(
        &self,
        entity: Entity,
        records: &[TargetRecord],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let table = self.table(entity)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let schema = self.schema(table).await?;
        // Statements are built before the transaction: a mapping that names a missing column
        // fails the call before anything is sent.
        let statements = records
            .iter()
            .map(|r| self.upsert_sql(table, schema, r))
            .collect::<Result<Vec<_>, _>>()?;
        let with_keys: Vec<(&UpsertSql, &TargetRecord)> =
            statements.iter().zip(records.iter()).collect();
        self.in_batch(&with_keys, |tx, (statement, record)| {
            Box::pin(async move {
                let existed = match &statement.exists {
                    Some(sql) => !tx
                        .fetch_all(sql, std::slice::from_ref(&statement.key))
                        .await?
                        .is_empty(),
                    None => false,
                };
                let created = if statement.exists.is_some() {
                    tx.execute(&statement.sql, &statement.values).await?;
                    !existed
                } else {
                    let rows = tx.fetch_all(&statement.sql, &statement.values).await?;
                    rows.first()
                        .and_then(|r| r.first())
                        .is_some_and(|v| loosely_equal(v, &Value::Bool(true)))
                };
                Ok(RecordOutcome::Written {
                    target_id: record.key.clone(),
                    created,
                })
            })
        })
        .await
    }

    async fn disable(
        &self,
        entity: Entity,
        keys: &[String],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let table = self.table(entity)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let policy = table.disable.as_ref().ok_or_else(|| {
            TargetError::permanent(format!(
                "connection `{}`: no disable policy for table {}; fix: add disable = {{ column \
                 = \"active\", value = false }} or disable = \"delete\"",
                self.connection, table.name
            ))
        })?;
        let schema = self.schema(table).await?;
        let key_quoted = self.dialect.quote(&table.key_column);
        let (sql, value) = match policy {
            DisablePolicy::Column { column, value, .. } => (
                format!(
                    "UPDATE {} SET {} = {} WHERE {key_quoted} = {}",
                    table.quoted,
                    self.dialect.quote(column),
                    self.value_placeholder(schema, column, 1),
                    self.value_placeholder(schema, &table.key_column, 2)
                ),
                Some(SqlValue::from_json(value)),
            ),
            DisablePolicy::Delete => (
                format!(
                    "DELETE FROM {} WHERE {key_quoted} = {}",
                    table.quoted,
                    self.value_placeholder(schema, &table.key_column, 1)
                ),
                None,
            ),
        };
        // Everything a step needs travels in its item (a step's future may only borrow that).
        let steps: Vec<(&str, Vec<SqlValue>, &String)> = keys
            .iter()
            .map(|key| {
                let binds = value
                    .iter()
                    .cloned()
                    .chain(std::iter::once(SqlValue::Text(key.clone())))
                    .collect();
                (sql.as_str(), binds, key)
            })
            .collect();
        self.in_batch(&steps, |tx, (sql, binds, key)| {
            Box::pin(async move {
                // No row for the key is "nothing to do".
                tx.execute(sql, binds).await?;
                Ok(RecordOutcome::Written {
                    target_id: (*key).clone(),
                    created: false,
                })
            })
        })
        .await
    }

    async fn read_all(
        &self,
        entity: Entity,
        fields: &[String],
    ) -> Result<Option<Vec<TargetRow>>, TargetError> {
        let table = self.table(entity)?;
        let schema = self.schema(table).await?;
        for field in fields {
            let known = check_identifier(field).is_ok()
                && schema.column_type(self.dialect, field).is_some();
            if !known {
                return Err(TargetError::permanent(format!(
                    "connection `{}`: table {} has no column `{field}`; fix: add the column or \
                     change the mapping",
                    self.connection, table.name
                )));
            }
        }
        let disable_column = match &table.disable {
            Some(DisablePolicy::Column { column, value, .. }) => Some((column, value)),
            _ => None,
        };
        let mut select = vec![self.read_expression(schema, &table.key_column)];
        if let Some((column, _)) = disable_column {
            select.push(self.read_expression(schema, column));
        }
        select.extend(fields.iter().map(|f| self.read_expression(schema, f)));
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select.join(", "),
            table.quoted,
            self.dialect.quote(&table.key_column)
        );
        let rows = self
            .pool
            .fetch_all(&sql, &[])
            .await
            .map_err(|e| self.db_call_error(e, &format!("reading {}", table.name)))?;
        let first_field = 1 + usize::from(disable_column.is_some());
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key = match row.first() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                // A row without a key cannot be matched to anything.
                _ => continue,
            };
            let disabled = disable_column.is_some_and(|(_, value)| {
                row.get(1)
                    .is_some_and(|actual| loosely_equal(actual, value))
            });
            let row_fields: Map<String, Value> = fields
                .iter()
                .cloned()
                .zip(row.into_iter().skip(first_field))
                .collect();
            out.push(TargetRow {
                key,
                target_id: None,
                disabled,
                fields: row_fields,
            });
        }
        Ok(Some(out))
    }
}

fn parse_table(
    connection: &str,
    dialect: Dialect,
    entity: Entity,
    options: &Value,
) -> Result<Table, TargetConfigError> {
    let err = |key: &str, problem: String, fix: &str| {
        TargetConfigError::new(connection, Some(entity), key, problem, fix)
    };
    let Some(settings) = options.as_object() else {
        return Err(err(
            "",
            "expected a table".into(),
            "write the entity's options as a TOML table with table = \"…\"",
        ));
    };
    const KNOWN: [&str; 4] = ["table", "key_column", "disable", "create_table"];
    if let Some(unknown) = settings
        .keys()
        .find(|k| !KNOWN.contains(&k.as_str()) && !MAPPING_KEYS.contains(&k.as_str()))
    {
        return Err(err(
            unknown,
            "unknown key".into(),
            "the SQL target knows table, key_column, disable and create_table (key and fields \
             belong to the mapping)",
        ));
    }
    let name = match settings.get("table") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(err(
                "table",
                "expected a string".into(),
                "write table = \"hr_employee\"",
            ));
        }
        None => {
            return Err(err(
                "table",
                "missing".into(),
                "add table = \"hr_employee\" (or \"schema.table\")",
            ));
        }
    };
    let parts: Vec<&str> = name.split('.').collect();
    let parts = match parts.as_slice() {
        [table] => (None, (*table).to_owned()),
        [schema, table] => (Some((*schema).to_owned()), (*table).to_owned()),
        _ => {
            return Err(err(
                "table",
                format!("`{name}` has more than one dot"),
                "write table = \"table\" or \"schema.table\"",
            ));
        }
    };
    for part in parts.0.iter().chain(std::iter::once(&parts.1)) {
        check_identifier(part).map_err(|problem| {
            err(
                "table",
                problem,
                "use a plain name (letters, digits, _), or a view with one",
            )
        })?;
    }
    let quoted = parts
        .0
        .iter()
        .chain(std::iter::once(&parts.1))
        .map(|p| dialect.quote(p))
        .collect::<Vec<_>>()
        .join(".");

    let key_column = match (settings.get("key_column"), settings.get("key")) {
        (Some(Value::String(k)), _) => k.clone(),
        (Some(_), _) => {
            return Err(err(
                "key_column",
                "expected a string".into(),
                "write key_column = \"job_number\"",
            ));
        }
        (None, Some(Value::String(k))) => k.clone(),
        (None, _) => {
            return Err(err(
                "key_column",
                "missing, and the mapping names no key field".into(),
                "add key_column = \"job_number\" (the table's primary or unique key)",
            ));
        }
    };
    check_identifier(&key_column).map_err(|problem| {
        err(
            "key_column",
            problem,
            "name the column plainly (letters, digits, _)",
        )
    })?;

    let disable = match settings.get("disable") {
        None => None,
        Some(Value::String(s)) if s == "delete" => Some(DisablePolicy::Delete),
        Some(Value::Object(d)) => {
            if let Some(unknown) = d
                .keys()
                .find(|k| !["column", "value", "enabled"].contains(&k.as_str()))
            {
                return Err(err(
                    &format!("disable.{unknown}"),
                    "unknown key".into(),
                    "write disable = { column = \"active\", value = false } (enabled = true is implied)",
                ));
            }
            let column = match d.get("column") {
                Some(Value::String(c)) => c.clone(),
                _ => {
                    return Err(err(
                        "disable.column",
                        "missing or not a string".into(),
                        "write disable = { column = \"active\", value = false }",
                    ));
                }
            };
            check_identifier(&column).map_err(|problem| {
                err(
                    "disable.column",
                    problem,
                    "name the column plainly (letters, digits, _)",
                )
            })?;
            let value = match d.get("value") {
                Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v.clone(),
                _ => {
                    return Err(err(
                        "disable.value",
                        "missing or not a boolean, number or string".into(),
                        "write the value that marks a disabled row, e.g. value = false",
                    ));
                }
            };
            // What marks an enabled row: given, or the opposite of a boolean / 0-1 value.
            let enabled = match (d.get("enabled"), &value) {
                (Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))), _) => {
                    Some(v.clone())
                }
                (Some(_), _) => {
                    return Err(err(
                        "disable.enabled",
                        "not a boolean, number or string".into(),
                        "write the value that marks an enabled row, e.g. enabled = true",
                    ));
                }
                (None, Value::Bool(b)) => Some(Value::Bool(!b)),
                (None, Value::Number(n)) if n.as_i64() == Some(0) => Some(Value::from(1)),
                (None, Value::Number(n)) if n.as_i64() == Some(1) => Some(Value::from(0)),
                (None, _) => {
                    return Err(err(
                        "disable.enabled",
                        "missing: the enabled value cannot be derived from a text value".into(),
                        "add the value that marks an enabled row, e.g. enabled = \"在职\"",
                    ));
                }
            };
            Some(DisablePolicy::Column {
                column,
                value,
                enabled,
            })
        }
        Some(other) => {
            return Err(err(
                "disable",
                format!("`{other}` is neither \"delete\" nor a table"),
                "write disable = { column = \"active\", value = false } or disable = \"delete\"",
            ));
        }
    };

    let create_table = match settings.get("create_table") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(err(
                "create_table",
                "expected true or false".into(),
                "write create_table = true or leave it out",
            ));
        }
    };

    let mapped = match settings.get("fields") {
        None => Vec::new(),
        Some(rules) => mapping::Mapping::from_value(rules)
            .map_err(|e| {
                err(
                    "fields",
                    e.to_string(),
                    "fix the mapping rule (the SQL target reads the column names from it)",
                )
            })?
            .target_fields(),
    };
    for field in &mapped {
        check_identifier(field).map_err(|problem| {
            err(
                "fields",
                format!("mapped field {problem}, but mapped fields are column names"),
                "give the rule a `to` that is a plain column name",
            )
        })?;
    }
    if create_table && mapped.is_empty() {
        return Err(err(
            "create_table",
            "the columns are unknown: there is no mapping (`fields`)".into(),
            "add the mapping rules, or create the table yourself",
        ));
    }
    Ok(Table {
        entity,
        name,
        quoted,
        parts,
        key_column,
        mapped,
        disable,
        create_table,
        schema: OnceCell::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(check_identifier("job_number").is_ok());
        assert!(check_identifier("_x1").is_ok());
        assert!(check_identifier("1x").is_err());
        assert!(check_identifier("name; DROP TABLE x").is_err());
        assert!(check_identifier("a\"b").is_err());
        assert!(check_identifier("姓名").is_err());
        assert!(check_identifier("").is_err());
        assert!(check_identifier(&"a".repeat(63)).is_ok());
        assert!(check_identifier(&"a".repeat(64)).is_err());
    }

    #[test]
    fn dialects_come_from_the_scheme() {
        assert_eq!(
            Dialect::from_url("postgres://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::from_url("mariadb://root@h/db"),
            Some(Dialect::MySql)
        );
        assert_eq!(Dialect::from_url("sqlite://x.db"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::from_url("sqlite::memory:"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::from_url("oracle://x"), None);
    }

    #[test]
    fn json_values_bind_by_kind() {
        assert_eq!(SqlValue::from_json(&Value::from(7)), SqlValue::Int(7));
        assert_eq!(SqlValue::from_json(&Value::from(1.5)), SqlValue::Float(1.5));
        assert_eq!(
            SqlValue::from_json(&Value::from(u64::MAX)),
            SqlValue::Text(u64::MAX.to_string())
        );
        assert_eq!(
            SqlValue::from_json(&serde_json::json!(["研发中心"])),
            SqlValue::Text("[\"研发中心\"]".into())
        );
    }
}
