//! HTTP-callback events (protocol §5.1): the sandbox's own crypto against the golden vectors,
//! delivery to a subscriber that checks and answers like a hub, retries and the failed list.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dingtalk_support::*;
use sandbox::dingtalk::crypto::{CallbackCrypto, aes_key, signature};
use sandbox::dingtalk::{
    CallbackConfig, DEFAULT_APP_KEY, DEFAULT_CALLBACK_AES_KEY, DEFAULT_CALLBACK_TOKEN,
    DingTalkSandboxConfig,
};
use serde_json::{Value, json};

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn callback_encryption_equals_the_golden_vectors() {
    let v = vectors();
    let cases = v["callback_crypto"]["encrypt"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = s(&case["name"]);
        let key = aes_key(s(&case["encoding_aes_key"])).unwrap();
        assert_eq!(hex::encode(key), s(&case["aes_key_hex"]), "{name}");
        assert_eq!(hex::encode(&key[..16]), s(&case["iv_hex"]), "{name}");
        let c = CallbackCrypto::new(
            s(&case["token"]),
            s(&case["encoding_aes_key"]),
            s(&case["owner_key"]),
        )
        .unwrap();
        let plain = s(&case["plaintext"]);
        let enc = c.encrypt_with_random(s(&case["random"]).as_bytes(), plain);
        let expected = &case["expected"];
        assert_eq!(enc, s(&expected["encrypt"]), "{name}");
        assert_eq!(
            c.sign(s(&case["timestamp"]), s(&case["nonce"]), &enc),
            s(&expected["msg_signature"]),
            "{name}"
        );
        assert_eq!(c.decrypt(&enc).unwrap(), plain, "{name}");
        c.verify(
            s(&expected["msg_signature"]),
            s(&expected["timeStamp"]),
            s(&expected["nonce"]),
            &enc,
        )
        .unwrap();
        assert!(
            c.verify("0000", s(&case["timestamp"]), s(&case["nonce"]), &enc)
                .is_err()
        );
        // The owner key is checked.
        let wrong =
            CallbackCrypto::new(s(&case["token"]), s(&case["encoding_aes_key"]), "dingother")
                .unwrap();
        assert!(wrong.decrypt(&enc).is_err(), "{name}");
    }
    for case in v["callback_signature"].as_array().unwrap() {
        assert_eq!(
            signature(
                s(&case["token"]),
                s(&case["timestamp"]),
                s(&case["nonce"]),
                s(&case["encrypt"])
            ),
            s(&case["expected_signature"])
        );
    }
}

#[derive(Clone)]
struct Hub {
    crypto: CallbackCrypto,
    received: Arc<Mutex<Vec<Value>>>,
    fail: bool,
}

#[derive(serde::Deserialize)]
struct SigQuery {
    signature: Option<String>,
    msg_signature: Option<String>,
    timestamp: String,
    nonce: String,
}

/// A subscriber as the hub would be: verify, decrypt, record, answer the encrypted `success`.
async fn hub_endpoint(
    State(h): State<Hub>,
    Query(q): Query<SigQuery>,
    Json(body): Json<Value>,
) -> Response {
    if h.fail {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let enc = body["encrypt"].as_str().unwrap_or_default();
    let sig = q.msg_signature.or(q.signature).unwrap_or_default();
    if h.crypto.verify(&sig, &q.timestamp, &q.nonce, enc).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Ok(plain) = h.crypto.decrypt(enc) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    h.received
        .lock()
        .unwrap()
        .push(serde_json::from_str(&plain).unwrap());
    Json(
        h.crypto
            .encrypted_map("success", "1700000000000", "nonce0123456789A"),
    )
    .into_response()
}

async fn start_hub(fail: bool) -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let hub = Hub {
        crypto: CallbackCrypto::new(
            DEFAULT_CALLBACK_TOKEN,
            DEFAULT_CALLBACK_AES_KEY,
            DEFAULT_APP_KEY,
        )
        .unwrap(),
        received: received.clone(),
        fail,
    };
    let app = axum::Router::new()
        .route("/dingtalk/callback", axum::routing::post(hub_endpoint))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/dingtalk/callback"), received)
}

fn callback(url: &str) -> CallbackConfig {
    CallbackConfig {
        url: url.to_owned(),
        token: DEFAULT_CALLBACK_TOKEN.into(),
        aes_key: DEFAULT_CALLBACK_AES_KEY.into(),
        owner_key: None,
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_reach_an_http_subscriber_encrypted() {
    let (url, received) = start_hub(false).await;
    let cfg = DingTalkSandboxConfig {
        callback: Some(callback(&url)),
        ..DingTalkSandboxConfig::default()
    };
    let sb = start(cfg).await;
    let tok = sb.token().await;
    let r = sb.oapi(&tok, "/topapi/v2/user/create", json!({"name": "诸葛亮", "mobile": "13700001234", "dept_id_list": "2", "userid": "zhuge01"})).await;
    assert_eq!(r["errcode"], 0, "{r}");
    let r = sb
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "蜀汉军师府", "parent_id": 1}),
        )
        .await;
    let dept = r["result"]["dept_id"].as_u64().unwrap();
    wait_for(|| received.lock().unwrap().len() >= 2).await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let add = got
        .iter()
        .find(|e| e["EventType"] == "user_add_org")
        .unwrap();
    assert_eq!(add["userId"], json!(["zhuge01"]));
    assert_eq!(add["CorpId"], sb.sandbox.corp_id());
    assert!(add["eventId"].is_string());
    assert!(add["EventTime"].is_i64());
    let dept_ev = got
        .iter()
        .find(|e| e["EventType"] == "org_dept_create")
        .unwrap();
    assert_eq!(dept_ev["deptId"], json!([dept]));
    let ev = sb.admin_get("events").await;
    wait_for(|| sb.sandbox.counters().callbacks_delivered == 2).await;
    assert_eq!(sb.sandbox.counters().callbacks_delivered, 2);
    assert_eq!(ev["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn failed_pushes_are_retried_then_listed_once() {
    let (url, _) = start_hub(true).await;
    let cfg = DingTalkSandboxConfig {
        callback_retry_delays: vec![Duration::from_millis(100), Duration::from_millis(200)],
        ..DingTalkSandboxConfig::default()
    };
    let sb = start(cfg).await;
    // Subscribe through the admin API.
    let r = sb.admin("callback", json!({"url": url, "token": DEFAULT_CALLBACK_TOKEN, "aes_key": DEFAULT_CALLBACK_AES_KEY})).await;
    assert_eq!(r["ok"], true);
    let tok = sb.token().await;
    let r = sb
        .oapi(
            &tok,
            "/topapi/v2/user/create",
            json!({"name": "司马懿", "mobile": "13700005678", "dept_id_list": [2]}),
        )
        .await;
    let uid = r["result"]["userid"].as_str().unwrap().to_owned();
    // Not yet failed before the retries ran out.
    let early: Value = sb
        .http
        .get(sb.url("/call_back/get_call_back_failed_result"))
        .query(&[("access_token", &tok)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(early["failed_list"].as_array().unwrap().len(), 0);
    wait_for(|| sb.sandbox.counters().callbacks_failed == 1).await;
    let c = sb.sandbox.counters();
    assert_eq!(c.callback_attempts, 3, "first try + 2 retries");
    let v: Value = sb
        .http
        .get(sb.url("/call_back/get_call_back_failed_result"))
        .query(&[("access_token", &tok)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["has_more"], false);
    let list = v["failed_list"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["call_back_tag"], "user_add_org");
    assert_eq!(list[0]["user_add_org"]["userId"], json!([uid]));
    // Returned once, then gone.
    let v: Value = sb
        .http
        .get(sb.url("/call_back/get_call_back_failed_result"))
        .query(&[("access_token", &tok)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["failed_list"].as_array().unwrap().len(), 0);
    let ev = sb.admin_get("events").await;
    assert_eq!(ev["events"][0]["status"], "failed");
    assert_eq!(ev["events"][0]["attempts"], 3);
}
