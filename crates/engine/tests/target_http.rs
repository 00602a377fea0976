//! The HTTP org-sync target against the eHR simulator (`sandbox::ehr`, an independent
//! implementation of the same REST conventions) on 127.0.0.1: bulk writes, updates, disables,
//! paged reads, per-record rejections, bearer and Standard Webhooks auth, outages, throttling
//! and idempotency.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use engine::config::HttpConnection;
use engine::orgsync::target::http::HttpTarget;
use engine::orgsync::target::{
    Entity, OrgTarget, RecordOutcome, TargetError, TargetRecord, TargetRow,
};
use limits::{Pacer, Permit};
use sandbox::ehr::{EhrSandbox, EhrSandboxConfig, serve};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

const DEPARTMENTS: [&str; 4] = ["研发中心", "财务部", "人力资源部", "销售一部"];
const SURNAMES: [&str; 5] = ["张", "李", "王", "赵", "陈"];

/// Counts what the target tells its pacer.
#[derive(Default)]
struct RecordingPacer {
    acquired: AtomicUsize,
    succeeded: AtomicUsize,
    throttled: Mutex<Vec<Option<Duration>>>,
    groups: Mutex<Vec<String>>,
}

#[async_trait]
impl Pacer for RecordingPacer {
    async fn acquire(&self, group: &str) -> Permit {
        self.acquired.fetch_add(1, Ordering::SeqCst);
        let mut groups = self.groups.lock().unwrap();
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
        Permit::free()
    }
    fn throttled(&self, _group: &str, retry_after: Option<Duration>) {
        self.throttled.lock().unwrap().push(retry_after);
    }
    fn succeeded(&self, _group: &str) {
        self.succeeded.fetch_add(1, Ordering::SeqCst);
    }
}

struct Setup {
    origin: String,
    sandbox: EhrSandbox,
}

async fn start(config: EhrSandboxConfig) -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = EhrSandbox::new(config);
    tokio::spawn(serve(listener, sandbox.clone()));
    Setup { origin, sandbox }
}

fn connection(origin: &str) -> HttpConnection {
    HttpConnection {
        base_url: format!("{origin}/"),
        auth_header: None,
        hmac_secret: None,
        timeout_seconds: 5,
    }
}

/// The users' options as they come from `[flows.<name>.options.users]`, mapping keys included.
fn user_options() -> Value {
    json!({
        "key": "job_number",
        "fields": [{"to": "job_number", "from": "jobnumber"}, {"to": "name", "from": "name"}],
        "upsert": {"method": "PUT", "path": "/api/employees/{key}"},
        "disable": {"method": "DELETE", "path": "/api/employees/{key}"},
        "list": {
            "method": "GET", "path": "/api/employees", "items": "/items", "next": "/next_cursor",
            "cursor_param": "cursor", "limit_param": "limit", "page_size": 500,
            "disabled_field": "active", "disabled_when": false
        },
        "id_pointer": "/id"
    })
}

fn department_options() -> Value {
    json!({
        "key": "name",
        "upsert": {"method": "PUT", "path": "/api/departments/{key}"},
        "disable": {"method": "PATCH", "path": "/api/departments/{key}", "body": {"active": false}},
        "list": {"path": "/api/departments", "items": "/items", "next": "/next_cursor"},
        "id_pointer": "/id"
    })
}

fn target_with(conn: &HttpConnection, pacer: Arc<dyn Pacer>) -> HttpTarget {
    HttpTarget::new(
        "ehr",
        conn,
        Some(&department_options()),
        &user_options(),
        pacer,
    )
    .unwrap()
}

fn ehr_target(origin: &str) -> HttpTarget {
    target_with(&connection(origin), Arc::new(limits::Unpaced))
}

fn user(i: usize) -> TargetRecord {
    let key = format!("E{i:05}");
    let mut fields = Map::new();
    fields.insert("job_number".into(), json!(key));
    fields.insert(
        "name".into(),
        json!(format!("{}{}", SURNAMES[i % SURNAMES.len()], i)),
    );
    fields.insert(
        "department".into(),
        json!(DEPARTMENTS[i % DEPARTMENTS.len()]),
    );
    fields.insert("mobile".into(), json!(format!("138{i:08}")));
    fields.insert("title".into(), Value::Null);
    TargetRecord {
        entity: Entity::User,
        source_key: format!("ding_{i}"),
        key,
        fields,
    }
}

fn department(name: &str) -> TargetRecord {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("parent".into(), json!("杭州示例科技"));
    TargetRecord {
        entity: Entity::Department,
        source_key: format!("dept_{name}"),
        key: name.to_owned(),
        fields,
    }
}

fn created_flags(outcomes: &[RecordOutcome]) -> Vec<bool> {
    outcomes
        .iter()
        .map(|o| match o {
            RecordOutcome::Written { created, .. } => *created,
            RecordOutcome::Rejected { reason, .. } => panic!("rejected: {reason}"),
        })
        .collect()
}

fn fields_of(record: &TargetRecord, names: &[String]) -> Map<String, Value> {
    names
        .iter()
        .map(|n| (n.clone(), record.fields[n].clone()))
        .collect()
}

#[tokio::test]
async fn two_thousand_users_written_updated_disabled_and_read_back() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let pacer = Arc::new(RecordingPacer::default());
    let target = target_with(&connection(&ehr.origin), pacer.clone());
    assert_eq!(target.kind(), "http");
    assert_eq!(target.upsert(Entity::User, &[]).await.unwrap(), []);
    let mut users: Vec<TargetRecord> = (0..2000).map(user).collect();

    for batch in users.chunks(200) {
        let outcomes = target.upsert(Entity::User, batch).await.unwrap();
        assert_eq!(outcomes.len(), batch.len());
        for (outcome, record) in outcomes.iter().zip(batch) {
            let RecordOutcome::Written { target_id, created } = outcome else {
                panic!("{record:?}: {outcome:?}");
            };
            assert!(created);
            // The id is the simulator's, read through id_pointer, and belongs to this record.
            let stored = ehr.sandbox.record("employees", &record.key).unwrap();
            assert_eq!(stored["id"], target_id.as_str());
        }
    }
    assert_eq!(ehr.sandbox.records("employees").len(), 2000);
    let stored = ehr.sandbox.record("employees", "E00007").unwrap();
    assert_eq!(stored["name"], "王7");
    assert_eq!(stored["department"], "销售一部");
    assert_eq!(stored["title"], Value::Null);
    assert_eq!(pacer.acquired.load(Ordering::SeqCst), 2000);
    assert_eq!(pacer.succeeded.load(Ordering::SeqCst), 2000);
    assert_eq!(*pacer.groups.lock().unwrap(), vec!["http".to_owned()]);

    // Move every 40th person to 研发中心 and rename them.
    let moved: Vec<usize> = (0..2000).step_by(40).collect();
    for &i in &moved {
        users[i]
            .fields
            .insert("department".into(), json!("研发中心"));
        users[i]
            .fields
            .insert("name".into(), json!(format!("新名字{i}")));
    }
    let updates: Vec<TargetRecord> = moved.iter().map(|&i| users[i].clone()).collect();
    let outcomes = target.upsert(Entity::User, &updates).await.unwrap();
    assert!(created_flags(&outcomes).iter().all(|c| !c));
    assert_eq!(
        ehr.sandbox.record("employees", "E00040").unwrap()["name"],
        "新名字40"
    );

    // Disable 30 people, plus one the eHR never had (nothing to do, still Written).
    let mut leavers: Vec<String> = (0..30).map(|i| format!("E{:05}", i * 61)).collect();
    leavers.push("E99999".into());
    let outcomes = target.disable(Entity::User, &leavers).await.unwrap();
    assert_eq!(outcomes.len(), 31);
    for (outcome, key) in outcomes.iter().zip(&leavers) {
        assert_eq!(
            outcome,
            &RecordOutcome::Written {
                target_id: key.clone(),
                created: false
            }
        );
    }
    assert_eq!(
        ehr.sandbox.record("employees", "E00061").unwrap()["active"],
        false
    );
    assert!(ehr.sandbox.record("employees", "E99999").is_none());

    // read_all pages through 2,000 records (page_size 500) and sees exactly that state.
    let requests_before = ehr.sandbox.counters().requests;
    let names: Vec<String> = ["name", "department", "mobile", "title"]
        .map(String::from)
        .to_vec();
    let rows: Vec<TargetRow> = target
        .read_all(Entity::User, &names)
        .await
        .unwrap()
        .expect("a list is configured");
    assert_eq!(ehr.sandbox.counters().requests - requests_before, 4);
    assert_eq!(rows.len(), 2000);
    let disabled: Vec<&str> = rows
        .iter()
        .filter(|r| r.disabled)
        .map(|r| r.key.as_str())
        .collect();
    let mut expected_disabled: Vec<&str> = leavers[..30].iter().map(String::as_str).collect();
    expected_disabled.sort_unstable();
    assert_eq!(disabled, expected_disabled);
    for (row, record) in rows.iter().zip(&users) {
        assert_eq!(row.key, record.key);
        assert_eq!(row.fields, fields_of(record, &names), "{}", record.key);
        assert!(
            row.target_id
                .as_deref()
                .is_some_and(|id| id.starts_with('E'))
        );
    }
}

#[tokio::test]
async fn departments_with_chinese_keys_and_a_patch_disable() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let target = ehr_target(&ehr.origin);
    let departments: Vec<TargetRecord> = DEPARTMENTS.iter().map(|d| department(d)).collect();
    let outcomes = target
        .upsert(Entity::Department, &departments)
        .await
        .unwrap();
    assert_eq!(created_flags(&outcomes), vec![true; 4]);
    let rd = ehr.sandbox.record("departments", "研发中心").unwrap();
    assert_eq!(rd["parent"], "杭州示例科技");

    let outcomes = target
        .disable(Entity::Department, &["财务部".to_owned()])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], RecordOutcome::Written { .. }));
    let finance = ehr.sandbox.record("departments", "财务部").unwrap();
    assert_eq!(finance["active"], false);
    assert_eq!(finance["name"], "财务部", "a PATCH keeps the record");

    // Without limit_param/page_size the simulator's default page (100) is used; one page here.
    let rows = target
        .read_all(Entity::Department, &["parent".to_owned()])
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut sorted = DEPARTMENTS.to_vec();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    // No disabled_field configured: nothing reads as disabled.
    assert!(rows.iter().all(|r| !r.disabled));
}

#[tokio::test]
async fn a_refused_record_is_rejected_alone_and_the_rest_of_its_batch_is_written() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let target = ehr_target(&ehr.origin);
    let mut batch: Vec<TargetRecord> = (0..9).map(user).collect();
    batch[4].fields.insert("mobile".into(), json!("1380013"));
    batch[7]
        .fields
        .insert("mobile".into(), json!("138-0013-8000"));

    let outcomes = target.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(outcomes.len(), 9);
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (4 | 7, RecordOutcome::Rejected { field, reason }) => {
                assert_eq!(field.as_deref(), Some("mobile"));
                assert!(reason.starts_with("HTTP 422"), "{reason}");
                assert!(reason.contains("11"), "{reason}");
            }
            (4 | 7, other) => panic!("record {i} should be rejected: {other:?}"),
            (_, RecordOutcome::Written { created: true, .. }) => {}
            (_, other) => panic!("record {i} should be written: {other:?}"),
        }
    }
    assert_eq!(ehr.sandbox.records("employees").len(), 7);
    assert!(ehr.sandbox.record("employees", "E00004").is_none());
}

#[tokio::test]
async fn the_same_batch_twice_leaves_the_same_state() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let target = ehr_target(&ehr.origin);
    let batch: Vec<TargetRecord> = (0..50).map(user).collect();
    let first = target.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(created_flags(&first), vec![true; 50]);
    let state = ehr.sandbox.records("employees");

    let second = target.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(created_flags(&second), vec![false; 50]);
    assert_eq!(ehr.sandbox.records("employees"), state);
    // The same ids both times.
    let ids = |o: &[RecordOutcome]| -> Vec<String> {
        o.iter()
            .map(|o| match o {
                RecordOutcome::Written { target_id, .. } => target_id.clone(),
                RecordOutcome::Rejected { .. } => unreachable!(),
            })
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));

    let keys: Vec<String> = batch.iter().take(5).map(|r| r.key.clone()).collect();
    target.disable(Entity::User, &keys).await.unwrap();
    let disabled_state = ehr.sandbox.records("employees");
    target.disable(Entity::User, &keys).await.unwrap();
    assert_eq!(ehr.sandbox.records("employees"), disabled_state);
}

#[tokio::test]
async fn bearer_auth_and_a_wrong_token_is_permanent_with_nothing_stored() {
    let ehr = start(EhrSandboxConfig {
        bearer_token: Some("ehr-secret-token".into()),
        ..EhrSandboxConfig::default()
    })
    .await;
    let mut conn = connection(&ehr.origin);
    conn.auth_header = Some(SecretString::from("Bearer wrong-token"));
    let wrong = target_with(&conn, Arc::new(limits::Unpaced));
    let batch: Vec<TargetRecord> = (0..3).map(user).collect();
    let err = wrong.upsert(Entity::User, &batch).await.unwrap_err();
    let TargetError::Permanent { message } = err else {
        panic!("expected Permanent, got {err:?}");
    };
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("ehr"), "names the connection: {message}");
    assert!(ehr.sandbox.records("employees").is_empty());

    conn.auth_header = Some(SecretString::from("Bearer ehr-secret-token"));
    let right = target_with(&conn, Arc::new(limits::Unpaced));
    let outcomes = right.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(created_flags(&outcomes), vec![true; 3]);
    let rows = right.read_all(Entity::User, &[]).await.unwrap().unwrap();
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn webhook_signatures_and_a_wrong_secret_is_permanent_with_nothing_stored() {
    for (server_secret, right_secret) in [
        (
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123456789")
            ),
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123456789")
            ),
        ),
        ("明文密钥-plain".to_owned(), "明文密钥-plain".to_owned()),
    ] {
        let ehr = start(EhrSandboxConfig {
            hmac_secret: Some(server_secret),
            ..EhrSandboxConfig::default()
        })
        .await;
        let mut conn = connection(&ehr.origin);
        conn.hmac_secret = Some(SecretString::from(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(b"not the key")
        )));
        let wrong = target_with(&conn, Arc::new(limits::Unpaced));
        let batch: Vec<TargetRecord> = (0..3).map(user).collect();
        let err = wrong.upsert(Entity::User, &batch).await.unwrap_err();
        assert!(
            matches!(&err, TargetError::Permanent { message } if message.contains("401")),
            "{err:?}"
        );
        let err = wrong
            .disable(Entity::User, &["E00000".to_owned()])
            .await
            .unwrap_err();
        assert!(matches!(err, TargetError::Permanent { .. }), "{err:?}");
        assert!(ehr.sandbox.records("employees").is_empty());

        conn.hmac_secret = Some(SecretString::from(right_secret));
        let right = target_with(&conn, Arc::new(limits::Unpaced));
        let outcomes = right.upsert(Entity::User, &batch).await.unwrap();
        assert_eq!(created_flags(&outcomes), vec![true; 3]);
        assert_eq!(
            ehr.sandbox.record("employees", "E00001").unwrap()["name"],
            "李1"
        );
        // Bodiless requests (GET, DELETE) are signed too.
        let outcomes = right
            .disable(Entity::User, &["E00001".to_owned()])
            .await
            .unwrap();
        assert!(matches!(outcomes[0], RecordOutcome::Written { .. }));
        assert_eq!(
            right
                .read_all(Entity::User, &[])
                .await
                .unwrap()
                .unwrap()
                .len(),
            3
        );
    }
}

#[tokio::test]
async fn outages_server_errors_timeouts_and_refused_connections_are_retryable() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let target = ehr_target(&ehr.origin);
    let batch: Vec<TargetRecord> = (0..4).map(user).collect();

    ehr.sandbox.set_faults(|f| {
        f.outage_until = Some(std::time::Instant::now() + Duration::from_secs(60));
    });
    let err = target.upsert(Entity::User, &batch).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Retryable { message, .. } if message.contains("503")),
        "{err:?}"
    );
    let err = target.read_all(Entity::User, &[]).await.unwrap_err();
    assert!(matches!(err, TargetError::Retryable { .. }), "{err:?}");
    ehr.sandbox.set_faults(|f| f.outage_until = None);

    ehr.sandbox.set_faults(|f| f.error_rate = 1.0);
    let err = target.upsert(Entity::User, &batch).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Retryable { message, .. } if message.contains("500")),
        "{err:?}"
    );
    ehr.sandbox.set_faults(|f| f.error_rate = 0.0);

    // Slower than the connection's timeout.
    ehr.sandbox.set_faults(|f| f.latency_ms = 1500);
    let mut conn = connection(&ehr.origin);
    conn.timeout_seconds = 1;
    let impatient = target_with(&conn, Arc::new(limits::Unpaced));
    let err = impatient
        .upsert(Entity::User, &batch[..1])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Retryable { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    ehr.sandbox.set_faults(|f| f.latency_ms = 0);

    // Nothing listens on a port that was just released.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let nowhere = ehr_target(&closed_origin);
    let err = nowhere.upsert(Entity::User, &batch).await.unwrap_err();
    assert!(matches!(err, TargetError::Retryable { .. }), "{err:?}");

    // After the faults the same batch goes through.
    let outcomes = target.upsert(Entity::User, &batch).await.unwrap();
    assert_eq!(outcomes.len(), 4);
}

#[tokio::test]
async fn throttling_is_retryable_with_the_remote_retry_after_and_reported_to_the_pacer() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let pacer = Arc::new(RecordingPacer::default());
    let target = target_with(&connection(&ehr.origin), pacer.clone());
    ehr.sandbox.set_faults(|f| {
        f.throttle_next = 1;
        f.retry_after_seconds = 7;
    });
    let err = target.upsert(Entity::User, &[user(1)]).await.unwrap_err();
    let TargetError::Retryable {
        message,
        retry_after,
    } = err
    else {
        panic!("expected Retryable, got {err:?}");
    };
    assert!(message.contains("429"), "{message}");
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert_eq!(
        *pacer.throttled.lock().unwrap(),
        vec![Some(Duration::from_secs(7))]
    );
    assert_eq!(pacer.succeeded.load(Ordering::SeqCst), 0);
    let outcomes = target.upsert(Entity::User, &[user(1)]).await.unwrap();
    assert_eq!(created_flags(&outcomes), vec![true]);
    assert_eq!(pacer.succeeded.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_target_without_list_or_departments_says_so() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let mut options = user_options();
    let table = options.as_object_mut().unwrap();
    table.remove("list");
    table.remove("disable");
    let target = HttpTarget::new(
        "ehr",
        &connection(&ehr.origin),
        None,
        &options,
        Arc::new(limits::Unpaced),
    )
    .unwrap();
    assert_eq!(target.read_all(Entity::User, &[]).await.unwrap(), None);
    let err = target
        .upsert(Entity::Department, &[department("研发中心")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Permanent { message } if message.contains("departments")),
        "{err:?}"
    );
    let err = target
        .disable(Entity::User, &["E00001".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Permanent { message } if message.contains("disable")),
        "{err:?}"
    );
    assert_eq!(ehr.sandbox.counters().requests, 0);
}

#[test]
fn bad_settings_name_the_connection_entity_key_and_fix() {
    let conn = connection("http://127.0.0.1:9");
    let build = |users: Value| {
        HttpTarget::new("ehr", &conn, None, &users, Arc::new(limits::Unpaced)).map(|_| ())
    };
    let with = |key: &str, value: Value| {
        let mut o = user_options();
        o[key] = value;
        o
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("upsret", json!({})), "upsret"),
        (
            {
                let mut o = user_options();
                o.as_object_mut().unwrap().remove("upsert");
                o
            },
            "upsert",
        ),
        (
            with("upsert", json!({"method": "FETCH", "path": "/x/{key}"})),
            "upsert.method",
        ),
        (
            with("upsert", json!({"method": "PUT", "path": "/x/{id}"})),
            "upsert.path",
        ),
        (
            with("upsert", json!({"method": "PUT", "path": "x/{key}"})),
            "upsert.path",
        ),
        (
            with("upsert", json!({"method": "PUT", "path": "/x", "metod": 1})),
            "upsert",
        ),
        (
            with("disable", json!({"method": "GET", "path": "/x/{key}"})),
            "disable.method",
        ),
        (with("list", json!({"path": "/x/{key}"})), "list.path"),
        (
            with("list", json!({"path": "/x", "items": "items"})),
            "list.items",
        ),
        (
            with("list", json!({"path": "/x", "page_size": 10})),
            "list.page_size",
        ),
        (with("id_pointer", json!("id")), "id_pointer"),
        (json!(["not", "a", "table"]), ""),
    ];
    for (options, key) in cases {
        let err = build(options.clone()).unwrap_err();
        assert_eq!(err.key, key, "{options}: {err}");
        assert_eq!(err.connection, "ehr");
        assert_eq!(err.entity, Some(Entity::User));
        let text = err.to_string();
        assert!(text.contains("ehr") && text.contains("fix:"), "{text}");
    }
    // Without key_field, the list uses the mapping's key; without either it cannot.
    let mut no_key = user_options();
    no_key.as_object_mut().unwrap().remove("key");
    assert_eq!(build(no_key).unwrap_err().key, "list.key_field");

    // Connection-level settings.
    let mut bad_secret = conn.clone();
    bad_secret.hmac_secret = Some(SecretString::from("whsec_***not base64***"));
    let err = HttpTarget::new(
        "ehr",
        &bad_secret,
        None,
        &user_options(),
        Arc::new(limits::Unpaced),
    )
    .unwrap_err();
    assert_eq!((err.key.as_str(), err.entity), ("hmac_secret", None));
    let mut bad_url = conn.clone();
    bad_url.base_url = "ftp://ehr.example".into();
    let err = HttpTarget::new(
        "ehr",
        &bad_url,
        None,
        &user_options(),
        Arc::new(limits::Unpaced),
    )
    .unwrap_err();
    assert_eq!(err.key, "base_url");
    let mut bad_header = conn.clone();
    bad_header.auth_header = Some(SecretString::from("Bearer a\nb"));
    let err = HttpTarget::new(
        "ehr",
        &bad_header,
        None,
        &user_options(),
        Arc::new(limits::Unpaced),
    )
    .unwrap_err();
    assert_eq!(err.key, "auth_header");
    // Department settings are checked as well.
    let err = HttpTarget::new(
        "ehr",
        &conn,
        Some(&json!({"upsert": {"method": "PUT"}})),
        &user_options(),
        Arc::new(limits::Unpaced),
    )
    .unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.entity),
        ("upsert", Some(Entity::Department))
    );
}
