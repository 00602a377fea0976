//! The SQL org-sync target on SQLite (a temporary file, always), PostgreSQL and MariaDB (when
//! they answer). Each PostgreSQL / MariaDB test makes uniquely named tables and drops them.
//!
//! PostgreSQL is looked for at `DINGBRIDGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), MariaDB/MySQL at `DINGBRIDGE_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`). A server that does not answer is reported as
//! SKIPPED on stderr, unless `DINGBRIDGE_REQUIRE_POSTGRES=1` (or `DINGBRIDGE_REQUIRE_MYSQL=1`)
//! says it must be there, as in store-testkit: then the test fails.
#![allow(clippy::unwrap_used)]

mod sql_support;

use sql_support::{MYSQL_DEFAULT, POSTGRES_DEFAULT, exec, required, unix_seconds};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use engine::config::SqlConnection;
use engine::orgsync::target::sql::{Dialect, SqlTarget};
use engine::orgsync::target::{
    Entity, OrgTarget, RecordOutcome, TargetError, TargetRecord, TargetRow,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection};

const DEPARTMENTS: [&str; 4] = ["研发中心", "财务部", "人力资源部", "销售一部"];
const NAMES: [&str; 5] = ["张三", "李四", "王五", "赵六", "陈七"];
/// Test tables are `tgt_<unix seconds>_<random>_<what>`; ones older than an hour are swept.
const TABLE_PREFIX: &str = "tgt_";

/// One database the tests write to, and the tables they made there.
struct TestDb {
    name: &'static str,
    dialect: Dialect,
    url: String,
    run: String,
    tables: Mutex<Vec<String>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("target.db").display());
        // The file exists before the target opens it (the target creates files only when it
        // creates tables).
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        SqliteConnection::connect_with(&options)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
        TestDb {
            name: "sqlite",
            dialect: Dialect::Sqlite,
            url,
            run: "t_".into(),
            tables: Mutex::new(Vec::new()),
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<TestDb> {
        let url = std::env::var("DINGBRIDGE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| POSTGRES_DEFAULT.into());
        Self::probe(
            "postgres",
            Dialect::Postgres,
            url,
            "DINGBRIDGE_REQUIRE_POSTGRES",
        )
        .await
    }

    async fn mariadb() -> Option<TestDb> {
        let url =
            std::env::var("DINGBRIDGE_TEST_MYSQL_URL").unwrap_or_else(|_| MYSQL_DEFAULT.into());
        Self::probe("mariadb", Dialect::MySql, url, "DINGBRIDGE_REQUIRE_MYSQL").await
    }

    async fn probe(
        name: &'static str,
        dialect: Dialect,
        url: String,
        require_var: &str,
    ) -> Option<TestDb> {
        let db = TestDb {
            name,
            dialect,
            url,
            run: format!(
                "{TABLE_PREFIX}{}_{:06x}_",
                unix_seconds(),
                rand::random::<u32>() & 0xff_ffff
            ),
            tables: Mutex::new(Vec::new()),
            _dir: None,
        };
        match tokio::time::timeout(Duration::from_secs(3), db.sweep_old_tables()).await {
            Ok(Ok(())) => Some(db),
            Ok(Err(e)) => db.skip(require_var, &e.to_string()),
            Err(_) => db.skip(require_var, "no answer within 3 s"),
        }
    }

    fn skip(&self, require_var: &str, why: &str) -> Option<TestDb> {
        assert!(
            !required(require_var),
            "{require_var} is set but {} at {} does not answer: {why}",
            self.name,
            self.url
        );
        eprintln!(
            "SKIPPED on {}: {} does not answer ({why})",
            self.name, self.url
        );
        None
    }

    /// A table name for this run.
    fn table(&self, what: &str) -> String {
        let mut tables = self.tables.lock().unwrap();
        let name = format!("{}{}_{what}", self.run, tables.len());
        tables.push(name.clone());
        name
    }

    fn connection(&self) -> SqlConnection {
        SqlConnection {
            url: SecretString::from(self.url.clone()),
        }
    }

    fn charset(&self) -> &'static str {
        match self.dialect {
            Dialect::MySql => " DEFAULT CHARSET=utf8mb4",
            Dialect::Postgres | Dialect::Sqlite => "",
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        exec(self.dialect, &self.url, sql).await
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self.dialect {
            Dialect::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Dialect::MySql => {
                let mut conn = MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Dialect::Sqlite => {
                let mut conn = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Tables an interrupted run left behind.
    async fn sweep_old_tables(&self) -> Result<(), sqlx::Error> {
        let names: Vec<String> = match self.dialect {
            Dialect::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await?;
                sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                     AND tablename LIKE 'tgt\\_%'",
                )
                .fetch_all(&mut conn)
                .await?
            }
            Dialect::MySql => {
                let options = MySqlConnectOptions::from_str(&self.url)?;
                let mut conn = MySqlConnection::connect_with(&options).await?;
                sqlx::query_scalar(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'tgt\\_%'",
                )
                .fetch_all(&mut conn)
                .await?
            }
            Dialect::Sqlite => Vec::new(),
        };
        let hour_ago = unix_seconds().saturating_sub(3600);
        for name in names {
            let made_at = name
                .strip_prefix(TABLE_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|s| s.parse::<u64>().ok());
            if made_at.is_some_and(|t| t < hour_ago) {
                self.exec(&format!("DROP TABLE IF EXISTS {name}")).await?;
            }
        }
        Ok(())
    }

    async fn create_employee_table(&self) -> String {
        let table = self.table("employee");
        self.exec(&format!(
            "CREATE TABLE {table} (
                job_number VARCHAR(64) NOT NULL PRIMARY KEY,
                name VARCHAR(100) NOT NULL,
                department TEXT,
                mobile VARCHAR(20),
                hired_on DATE,
                level INTEGER CHECK (level >= 0),
                is_manager BOOLEAN,
                tags TEXT,
                active BOOLEAN NOT NULL DEFAULT TRUE
            ){}",
            self.charset()
        ))
        .await
        .unwrap();
        table
    }

    async fn create_department_table(&self) -> String {
        let table = self.table("department");
        self.exec(&format!(
            "CREATE TABLE {table} (
                name VARCHAR(100) NOT NULL PRIMARY KEY,
                parent VARCHAR(100),
                manager TEXT
            ){}",
            self.charset()
        ))
        .await
        .unwrap();
        table
    }
}

/// The tables a test made are dropped even when it fails (on a thread of its own: this may
/// run while a test's runtime unwinds).
impl Drop for TestDb {
    fn drop(&mut self) {
        let tables = std::mem::take(
            self.tables
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if tables.is_empty() || self.dialect == Dialect::Sqlite {
            return;
        }
        let (dialect, url) = (self.dialect, self.url.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                for table in tables {
                    exec(dialect, &url, &format!("DROP TABLE IF EXISTS {table}"))
                        .await
                        .map_err(|e| format!("dropping {table}: {e}"))?;
                }
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("{}: test tables left for the sweep: {e}", self.name);
        }
    }
}

fn rule(to: &str) -> Value {
    json!({"to": to, "from": to})
}

const EMPLOYEE_FIELDS: [&str; 8] = [
    "job_number",
    "name",
    "department",
    "mobile",
    "hired_on",
    "level",
    "is_manager",
    "tags",
];

fn employee_options(table: &str) -> Value {
    json!({
        "key": "job_number",
        "fields": EMPLOYEE_FIELDS.iter().map(|f| rule(f)).collect::<Vec<_>>(),
        "table": table,
        "disable": {"column": "active", "value": false}
    })
}

fn department_options(table: &str) -> Value {
    json!({
        "key": "name",
        "fields": [rule("name"), rule("parent"), rule("manager")],
        "table": table,
        "disable": "delete"
    })
}

fn employee(i: usize) -> TargetRecord {
    let key = format!("E{i:05}");
    let mut fields = Map::new();
    fields.insert("job_number".into(), json!(key));
    fields.insert("name".into(), json!(format!("{}{i}", NAMES[i % 5])));
    fields.insert("department".into(), json!(DEPARTMENTS[i % 4]));
    fields.insert("mobile".into(), json!(format!("138{i:08}")));
    fields.insert(
        "hired_on".into(),
        json!(format!("2024-03-{:02}", i % 28 + 1)),
    );
    fields.insert("level".into(), json!(i % 5));
    fields.insert("is_manager".into(), json!(i.is_multiple_of(10)));
    fields.insert("tags".into(), json!(["研发", "管理"]));
    TargetRecord {
        entity: Entity::User,
        source_key: format!("ding_{i}"),
        key,
        fields,
    }
}

/// What read_all gives back for a written employee: JSON arrays come back as their text.
fn as_stored(record: &TargetRecord) -> Map<String, Value> {
    record
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Array(_) | Value::Object(_) => Value::String(v.to_string()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn department(name: &str, parent: Option<&str>) -> TargetRecord {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("parent".into(), json!(parent));
    fields.insert("manager".into(), json!("张三"));
    TargetRecord {
        entity: Entity::Department,
        source_key: format!("dept_{name}"),
        key: name.to_owned(),
        fields,
    }
}

fn created_flags(outcomes: &[RecordOutcome], db: &TestDb) -> Vec<bool> {
    outcomes
        .iter()
        .map(|o| match o {
            RecordOutcome::Written { created, .. } => *created,
            RecordOutcome::Rejected { reason, .. } => panic!("{}: rejected: {reason}", db.name),
        })
        .collect()
}

fn field_names() -> Vec<String> {
    EMPLOYEE_FIELDS.iter().map(|f| (*f).to_owned()).collect()
}

async fn read_users(target: &SqlTarget) -> Vec<TargetRow> {
    target
        .read_all(Entity::User, &field_names())
        .await
        .unwrap()
        .unwrap()
}

async fn connect(db: &TestDb, users: &Value, departments: Option<&Value>) -> SqlTarget {
    SqlTarget::connect("hrdb", &db.connection(), departments, users)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.name))
}

// ---- scenarios, run on each database ----

async fn upserts_create_update_and_are_idempotent(db: &TestDb) {
    let table = db.create_employee_table().await;
    let target = connect(db, &employee_options(&table), None).await;
    assert_eq!(target.kind(), "sql");
    assert_eq!(target.dialect(), db.dialect);
    assert_eq!(target.upsert(Entity::User, &[]).await.unwrap(), []);
    let mut people: Vec<TargetRecord> = (0..300).map(employee).collect();

    for batch in people.chunks(100) {
        let outcomes = target.upsert(Entity::User, batch).await.unwrap();
        assert_eq!(created_flags(&outcomes, db), vec![true; batch.len()]);
        for (outcome, record) in outcomes.iter().zip(batch) {
            assert!(
                matches!(outcome, RecordOutcome::Written { target_id, .. } if *target_id == record.key)
            );
        }
    }
    assert_eq!(db.count(&table).await, 300, "{}", db.name);
    let rows = read_users(&target).await;
    assert_eq!(rows.len(), 300);
    for (row, record) in rows.iter().zip(&people) {
        assert_eq!(row.key, record.key);
        assert!(!row.disabled);
        assert_eq!(row.target_id, None);
        assert_eq!(row.fields, as_stored(record), "{}: {}", db.name, record.key);
    }

    // Updates: every 15th person moves to 研发中心 and loses the mobile.
    let moved: Vec<usize> = (0..300).step_by(15).collect();
    for &i in &moved {
        people[i]
            .fields
            .insert("department".into(), json!("研发中心"));
        people[i].fields.insert("mobile".into(), Value::Null);
    }
    let updates: Vec<TargetRecord> = moved.iter().map(|&i| people[i].clone()).collect();
    let outcomes = target.upsert(Entity::User, &updates).await.unwrap();
    assert_eq!(created_flags(&outcomes, db), vec![false; updates.len()]);
    let rows = read_users(&target).await;
    assert_eq!(rows[15].fields["department"], "研发中心");
    assert_eq!(rows[15].fields["mobile"], Value::Null);
    assert_eq!(rows[16].fields, as_stored(&people[16]));

    // The same batch again: nothing created, the same state.
    let again = target.upsert(Entity::User, &people[..100]).await.unwrap();
    assert_eq!(created_flags(&again, db), vec![false; 100]);
    assert_eq!(read_users(&target).await, rows);
    assert_eq!(db.count(&table).await, 300);

    // A record without some mapped fields (`when_missing = "omit"`) leaves them as they are.
    let mut partial = employee(3);
    partial
        .fields
        .retain(|k, _| k == "job_number" || k == "name");
    partial.fields.insert("name".into(), json!("王五（新）"));
    target.upsert(Entity::User, &[partial]).await.unwrap();
    let rows = read_users(&target).await;
    assert_eq!(rows[3].fields["name"], "王五（新）");
    assert_eq!(rows[3].fields["department"], DEPARTMENTS[3]);
}

async fn a_refused_row_is_rejected_alone(db: &TestDb) {
    let table = db.create_employee_table().await;
    let target = connect(db, &employee_options(&table), None).await;
    let mut batch: Vec<TargetRecord> = (0..6).map(employee).collect();
    batch[1].fields.insert("name".into(), Value::Null); // NOT NULL
    batch[4].fields.insert("level".into(), json!(-1)); // CHECK (level >= 0)

    let outcomes = target.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(outcomes.len(), 6);
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (1, RecordOutcome::Rejected { field, reason }) => {
                assert_eq!(field.as_deref(), Some("name"), "{}: {reason}", db.name);
                assert!(
                    reason.to_lowercase().contains("null"),
                    "{}: {reason}",
                    db.name
                );
            }
            (4, RecordOutcome::Rejected { reason, .. }) => {
                assert!(!reason.is_empty());
            }
            (1 | 4, other) => panic!("{}: record {i} should be rejected: {other:?}", db.name),
            (_, RecordOutcome::Written { created: true, .. }) => {}
            (_, other) => panic!("{}: record {i} should be written: {other:?}", db.name),
        }
    }
    assert_eq!(db.count(&table).await, 4);
    let keys: Vec<String> = read_users(&target)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, ["E00000", "E00002", "E00003", "E00005"]);

    // Fixed, the two go through on the next attempt, and the others are untouched.
    let fixed: Vec<TargetRecord> = (0..6).map(employee).collect();
    let outcomes = target.upsert(Entity::User, &fixed).await.unwrap();
    assert_eq!(
        created_flags(&outcomes, db),
        [false, true, false, false, true, false]
    );
}

async fn disable_by_column_and_by_delete(db: &TestDb) {
    let employees = db.create_employee_table().await;
    let departments = db.create_department_table().await;
    let target = connect(
        db,
        &employee_options(&employees),
        Some(&department_options(&departments)),
    )
    .await;
    let people: Vec<TargetRecord> = (0..10).map(employee).collect();
    target.upsert(Entity::User, &people).await.unwrap();
    let leavers: Vec<String> = ["E00001", "E00003", "E00005", "E99999"]
        .map(String::from)
        .to_vec();
    let outcomes = target.disable(Entity::User, &leavers).await.unwrap();
    for (outcome, key) in outcomes.iter().zip(&leavers) {
        assert_eq!(
            outcome,
            &RecordOutcome::Written {
                target_id: key.clone(),
                created: false
            }
        );
    }
    let disabled = |rows: Vec<TargetRow>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| r.disabled)
            .map(|r| r.key)
            .collect()
    };
    assert_eq!(
        disabled(read_users(&target).await),
        ["E00001", "E00003", "E00005"]
    );
    // Twice is the same as once.
    target.disable(Entity::User, &leavers).await.unwrap();
    assert_eq!(disabled(read_users(&target).await).len(), 3);
    assert_eq!(db.count(&employees).await, 10);

    // Departments, keyed by their Chinese names, are deleted.
    let depts: Vec<TargetRecord> = DEPARTMENTS
        .iter()
        .map(|d| department(d, Some("杭州示例科技")))
        .collect();
    let outcomes = target.upsert(Entity::Department, &depts).await.unwrap();
    assert_eq!(created_flags(&outcomes, db), vec![true; 4]);
    let outcomes = target
        .disable(
            Entity::Department,
            &[
                "财务部".to_owned(),
                "销售一部".to_owned(),
                "不存在".to_owned(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(db.count(&departments).await, 2);
    let rows = target
        .read_all(
            Entity::Department,
            &["name".to_owned(), "parent".to_owned()],
        )
        .await
        .unwrap()
        .unwrap();
    let names: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["人力资源部", "研发中心"]));
    assert!(
        rows.iter()
            .all(|r| !r.disabled && r.fields["parent"] == "杭州示例科技")
    );
}

async fn create_table_makes_a_text_table(db: &TestDb) {
    let table = db.table("created");
    let mut options = employee_options(&table);
    options["create_table"] = json!(true);
    let target = connect(db, &options, None).await;
    let people: Vec<TargetRecord> = (0..3).map(employee).collect();
    let outcomes = target.upsert(Entity::User, &people).await.unwrap();
    assert_eq!(created_flags(&outcomes, db), vec![true; 3]);
    let rows = read_users(&target).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].fields["name"], "王五2");
    assert_eq!(rows[2].fields["department"], "人力资源部");
    // Every mapped column is TEXT: numbers come back as their text.
    assert_eq!(rows[2].fields["level"], "2");
    assert!(rows.iter().all(|r| !r.disabled));
    target
        .disable(Entity::User, &["E00001".to_owned()])
        .await
        .unwrap();
    let rows = read_users(&target).await;
    assert!(rows[1].disabled && !rows[0].disabled);

    // Connecting again finds the table (IF NOT EXISTS) and its rows.
    let again = connect(db, &options, None).await;
    let outcomes = again.upsert(Entity::User, &people).await.unwrap();
    assert_eq!(created_flags(&outcomes, db), vec![false; 3]);
}

async fn missing_tables_and_columns(db: &TestDb) {
    let absent = format!("{}absent", db.run);
    let err = SqlTarget::connect("hrdb", &db.connection(), None, &employee_options(&absent))
        .await
        .unwrap_err();
    assert_eq!(err.key, "table", "{}: {err}", db.name);
    assert!(err.to_string().contains(&absent), "{err}");
    assert!(err.to_string().contains("create_table"), "{err}");

    let table = db.create_employee_table().await;
    let mut options = employee_options(&table);
    options["fields"]
        .as_array_mut()
        .unwrap()
        .push(rule("nickname"));
    let err = SqlTarget::connect("hrdb", &db.connection(), None, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nickname"), "{}: {err}", db.name);

    // A table dropped under a running target: the whole call fails, permanently.
    let target = connect(db, &employee_options(&table), None).await;
    target.upsert(Entity::User, &[employee(1)]).await.unwrap();
    db.exec(&format!("DROP TABLE {table}")).await.unwrap();
    let err = target
        .upsert(Entity::User, &[employee(2)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, TargetError::Permanent { .. }),
        "{}: {err:?}",
        db.name
    );
    let err = target.read_all(Entity::User, &[]).await.unwrap_err();
    assert!(
        matches!(err, TargetError::Permanent { .. }),
        "{}: {err:?}",
        db.name
    );
}

async fn run_all(db: &TestDb) {
    upserts_create_update_and_are_idempotent(db).await;
    a_refused_row_is_rejected_alone(db).await;
    disable_by_column_and_by_delete(db).await;
    create_table_makes_a_text_table(db).await;
    missing_tables_and_columns(db).await;
}

#[tokio::test]
async fn sqlite_target() {
    // One file per scenario: the scenarios reuse table names on SQLite.
    for scenario in 0..5 {
        let db = TestDb::sqlite().await;
        match scenario {
            0 => upserts_create_update_and_are_idempotent(&db).await,
            1 => a_refused_row_is_rejected_alone(&db).await,
            2 => disable_by_column_and_by_delete(&db).await,
            3 => create_table_makes_a_text_table(&db).await,
            _ => missing_tables_and_columns(&db).await,
        }
    }
}

#[tokio::test]
async fn postgres_target() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    run_all(&db).await;
}

#[tokio::test]
async fn mariadb_target() {
    let Some(db) = TestDb::mariadb().await else {
        return;
    };
    run_all(&db).await;
}

#[tokio::test]
async fn an_unreachable_database_is_retryable() {
    // Nothing listens on a port that was just released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let conn = SqlConnection {
        url: SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/test")),
    };
    // connect does not fail on it: the table check waits for the first call.
    let target = SqlTarget::connect("hrdb", &conn, None, &employee_options("hr_employee"))
        .await
        .unwrap();
    let err = target
        .upsert(Entity::User, &[employee(1)])
        .await
        .unwrap_err();
    assert!(matches!(err, TargetError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn identifiers_and_settings_are_checked_at_construction() {
    let db = TestDb::sqlite().await;
    let base = employee_options("hr_employee");
    let with = |key: &str, value: Value| {
        let mut o = base.clone();
        o[key] = value;
        o
    };
    let with_field = |to: &str| {
        let mut o = base.clone();
        o["fields"].as_array_mut().unwrap().push(rule(to));
        o
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("table", json!("hr-employee")), "table", "hr-employee"),
        (
            with("table", json!("hr_employee; DROP TABLE x")),
            "table",
            "DROP",
        ),
        (with("table", json!("a.b.c")), "table", "a.b.c"),
        (with("table", json!("x".repeat(64))), "table", "63"),
        (with("key_column", json!("1abc")), "key_column", "1abc"),
        (
            with("key_column", json!("job\"number")),
            "key_column",
            "job\"number",
        ),
        (with_field("姓名"), "fields", "姓名"),
        (with_field("name or 1=1"), "fields", "name or 1=1"),
        (
            with("disable", json!({"column": "a b", "value": false})),
            "disable.column",
            "a b",
        ),
        (
            with("disable", json!({"column": "active"})),
            "disable.value",
            "missing",
        ),
        (with("disable", json!("drop")), "disable", "drop"),
        (with("create_table", json!("yes")), "create_table", "true"),
        (with("tabel", json!("x")), "tabel", "unknown"),
        (
            {
                let mut o = base.clone();
                o.as_object_mut().unwrap().remove("table");
                o
            },
            "table",
            "missing",
        ),
        (
            {
                let mut o = base.clone();
                o.as_object_mut().unwrap().remove("key");
                o
            },
            "key_column",
            "missing",
        ),
        (
            {
                let mut o = with("create_table", json!(true));
                o.as_object_mut().unwrap().remove("fields");
                o
            },
            "create_table",
            "mapping",
        ),
    ];
    for (options, key, mentions) in cases {
        let err = SqlTarget::connect("hrdb", &db.connection(), None, &options)
            .await
            .unwrap_err();
        assert_eq!(err.key, key, "{options}: {err}");
        assert_eq!(err.connection, "hrdb");
        assert_eq!(err.entity, Some(Entity::User));
        let text = err.to_string();
        assert!(text.contains(mentions), "{text}");
        assert!(text.contains("fix:"), "{text}");
    }
    // The departments' settings are checked too, and so is the URL.
    let err = SqlTarget::connect(
        "hrdb",
        &db.connection(),
        Some(&json!({"table": "dept", "key_column": "code", "disable": "remove"})),
        &base,
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.entity),
        ("disable", Some(Entity::Department))
    );
    let oracle = SqlConnection {
        url: SecretString::from("oracle://scott@db/orcl"),
    };
    let err = SqlTarget::connect("hrdb", &oracle, None, &base)
        .await
        .unwrap_err();
    assert_eq!((err.key.as_str(), err.entity), ("url", None));
}
