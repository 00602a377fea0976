//! The eHR simulator on its own, over HTTP: records, paging, validation, bearer and Standard
//! Webhooks auth, faults and the admin API. The signatures here are made by this test, not by
//! the hub's client.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sandbox::admin_client::AdminClient;
use sandbox::ehr::{EhrSandbox, EhrSandboxConfig, serve};
use serde_json::{Value, json};
use sha2::Sha256;

struct Ehr {
    origin: String,
    sandbox: EhrSandbox,
    http: reqwest::Client,
    admin: AdminClient,
}

async fn start(config: EhrSandboxConfig) -> Ehr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = EhrSandbox::new(config);
    tokio::spawn(serve(listener, sandbox.clone()));
    Ehr {
        admin: AdminClient::new(&origin, "ehr"),
        origin,
        sandbox,
        http: reqwest::Client::new(),
    }
}

impl Ehr {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn sign(secret_key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn put_creates_then_updates_and_keeps_the_id() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let zhang = json!({"job_number": "E001", "name": "张三", "department": "研发中心", "mobile": "13800000001"});
    let (status, created) = ehr.put("/api/employees/E001", &zhang).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["name"], "张三");
    assert_eq!(created["department"], "研发中心");
    assert_eq!(created["active"], true);
    assert_eq!(created["key"], "E001");
    let id = created["id"].as_str().unwrap().to_owned();

    let mut renamed = zhang.clone();
    renamed["name"] = json!("张三丰");
    let (status, updated) = ehr.put("/api/employees/E001", &renamed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["name"], "张三丰");

    let (status, fetched) = ehr.get("/api/employees/E001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, updated);
    let (status, _) = ehr.get("/api/employees/E404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ehr.get("/api/contractors/E001").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ehr.sandbox.counters().created, 1);
    assert_eq!(ehr.sandbox.counters().updated, 1);
}

#[tokio::test]
async fn keys_in_paths_are_percent_decoded() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let (status, _) = ehr
        .put(
            "/api/departments/%E7%A0%94%E5%8F%91%E4%B8%AD%E5%BF%83",
            &json!({"name": "研发中心"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(ehr.sandbox.record("departments", "研发中心").is_some());
}

#[tokio::test]
async fn a_bad_mobile_is_refused_with_its_field_and_nothing_is_stored() {
    let ehr = start(EhrSandboxConfig::default()).await;
    for bad in [
        json!("1380000"),
        json!("1380000000a"),
        json!(13800000001_i64),
    ] {
        let (status, body) = ehr
            .put(
                "/api/employees/E002",
                &json!({"name": "李四", "mobile": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["field"], "mobile");
        assert!(body["error"].as_str().unwrap().contains("11"));
    }
    let (status, _) = ehr
        .put(
            "/api/employees/E003",
            &json!({"name": "王五", "mobile": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a null mobile is no mobile");
    assert_eq!(ehr.sandbox.records("employees").len(), 1);
    let resp = ehr
        .http
        .put(ehr.url("/api/employees/E004"))
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delete_and_patch_deactivate() {
    let ehr = start(EhrSandboxConfig::default()).await;
    ehr.put("/api/employees/E001", &json!({"name": "张三"}))
        .await;
    ehr.put("/api/employees/E002", &json!({"name": "李四"}))
        .await;
    let resp = ehr
        .http
        .delete(ehr.url("/api/employees/E001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        ehr.sandbox.record("employees", "E001").unwrap()["active"],
        false
    );
    let resp = ehr
        .http
        .delete(ehr.url("/api/employees/E999"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = ehr
        .http
        .patch(ehr.url("/api/employees/E002"))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let li = ehr.sandbox.record("employees", "E002").unwrap();
    assert_eq!(li["active"], false);
    assert_eq!(li["name"], "李四", "a patch keeps the other fields");
    assert_eq!(ehr.sandbox.counters().disabled, 2);

    // A later PUT without `active` brings the record back.
    ehr.put("/api/employees/E001", &json!({"name": "张三"}))
        .await;
    assert_eq!(
        ehr.sandbox.record("employees", "E001").unwrap()["active"],
        true
    );
}

#[tokio::test]
async fn the_list_pages_by_cursor_in_key_order() {
    let ehr = start(EhrSandboxConfig::default()).await;
    for i in (0..25).rev() {
        ehr.put(
            &format!("/api/employees/E{i:03}"),
            &json!({"name": format!("员工{i}")}),
        )
        .await;
    }
    let mut keys = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let (status, page) = ehr
            .get(&format!("/api/employees?limit=10&cursor={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            keys.push(item["key"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("E{i:03}")).collect();
    assert_eq!(keys, expected);

    let (status, page) = ehr.get("/api/employees").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
    assert!(page["next_cursor"].is_null());
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=%%%",
        "colour=red",
    ] {
        let (status, _) = ehr.get(&format!("/api/employees?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn bearer_auth_refuses_a_missing_or_wrong_token() {
    let ehr = start(EhrSandboxConfig {
        bearer_token: Some("ehr-token-1".into()),
        ..EhrSandboxConfig::default()
    })
    .await;
    let body = json!({"name": "张三"});
    let (status, _) = ehr.put("/api/employees/E001", &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = ehr
        .http
        .put(ehr.url("/api/employees/E001"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(ehr.sandbox.records("employees").is_empty());
    let resp = ehr
        .http
        .put(ehr.url("/api/employees/E001"))
        .bearer_auth("ehr-token-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let counters = ehr.admin.get("counters").await.unwrap();
    assert_eq!(counters["by_status"]["401"], 2);
    assert_eq!(counters["by_status"]["201"], 1);
    assert_eq!(counters["requests"], 3);
}

#[tokio::test]
async fn webhook_signatures_are_checked_over_the_exact_body() {
    let raw_key = b"ehr-hmac-key-0123456789";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw_key)
    );
    let ehr = start(EhrSandboxConfig {
        hmac_secret: Some(secret),
        ..EhrSandboxConfig::default()
    })
    .await;
    let body = serde_json::to_vec(&json!({"name": "张三", "department": "研发中心"})).unwrap();
    let send = |id: &'static str, timestamp: i64, signature: String, body: Vec<u8>| {
        ehr.http
            .put(ehr.url("/api/employees/E001"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let t = now();
    // Wrong key, a tampered body, a stale timestamp, and no headers at all.
    let wrong = sign(b"another key", "msg_1", t, &body);
    assert_eq!(
        send("msg_1", t, wrong, body.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let good_for_other_body = sign(raw_key, "msg_2", t, b"{}");
    assert_eq!(
        send("msg_2", t, good_for_other_body, body.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let stale = sign(raw_key, "msg_3", t - 3600, &body);
    assert_eq!(
        send("msg_3", t - 3600, stale, body.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = ehr.put("/api/employees/E001", &json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(ehr.sandbox.records("employees").is_empty());

    // Several signatures (key rotation): one valid is enough.
    let good = sign(raw_key, "msg_4", t, &body);
    let rotated = format!("v1,aW52YWxpZA== {good}");
    assert_eq!(
        send("msg_4", t, rotated, body.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        ehr.sandbox.record("employees", "E001").unwrap()["name"],
        "张三"
    );
}

#[tokio::test]
async fn faults_outage_throttling_errors_and_latency() {
    let ehr = start(EhrSandboxConfig::default()).await;
    let body = json!({"name": "张三"});

    ehr.admin
        .post("faults", &json!({"outage_seconds": 30}))
        .await
        .unwrap();
    let (status, _) = ehr.put("/api/employees/E001", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    ehr.admin
        .post("faults", &json!({"outage_seconds": 0}))
        .await
        .unwrap();

    ehr.admin
        .post(
            "faults",
            &json!({"throttle_next": 2, "retry_after_seconds": 3}),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let resp = ehr
            .http
            .put(ehr.url("/api/employees/E001"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "3");
    }
    let (status, _) = ehr.put("/api/employees/E001", &body).await;
    assert_eq!(status, StatusCode::CREATED, "throttling ends after N");

    ehr.admin
        .post("faults", &json!({"error_rate": 1.0}))
        .await
        .unwrap();
    let (status, _) = ehr.get("/api/employees/E001").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    ehr.admin
        .post("faults", &json!({"clear": true, "latency_ms": 150}))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, _) = ehr.get("/api/employees/E001").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));

    assert!(
        ehr.admin
            .post("faults", &json!({"error_rate": 2.0}))
            .await
            .is_err()
    );
    assert!(ehr.admin.post("faults", &json!({"typo": 1})).await.is_err());
    let counters = ehr.admin.get("counters").await.unwrap();
    assert_eq!(counters["by_status"]["503"], 1);
    assert_eq!(counters["by_status"]["429"], 2);
    assert_eq!(counters["by_status"]["500"], 1);
}

#[tokio::test]
async fn the_admin_api_shows_records_and_resets() {
    let ehr = start(EhrSandboxConfig::default()).await;
    ehr.put(
        "/api/departments/D01",
        &json!({"name": "研发中心", "parent": null}),
    )
    .await;
    let dump = ehr.admin.get("records/departments").await.unwrap();
    assert_eq!(dump["count"], 1);
    assert_eq!(dump["records"][0]["name"], "研发中心");
    assert!(ehr.admin.get("records/nothing").await.is_err());

    ehr.admin.post("reset", &json!({})).await.unwrap();
    let dump = ehr.admin.get("records/departments").await.unwrap();
    assert_eq!(dump["count"], 0);
    assert_eq!(ehr.admin.counter("requests").await.unwrap(), 0);
}
