//! DingTalk HTTP callbacks as DingTalk sends them (encrypted and signed per protocol §5.1), on
//! every backend: accepted events are stored once with their job and answered with an
//! encrypted `success`; every bad request is refused with nothing stored.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dingtalk::CallbackCrypto;
use serde_json::{Value, json};
use server::AppState;
use store::{JobFilter, Store, now_ms};
use store_testkit::test_stores;
use tower::ServiceExt;

const TOKEN: &str = "dtsimtoken01";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_KEY: &str = "dingsimappkey0000001";

fn crypto(owner: &str) -> CallbackCrypto {
    CallbackCrypto::new(TOKEN, AES_KEY, owner).unwrap()
}

fn app(store: Arc<dyn Store>) -> axum::Router {
    let mut keys = HashMap::new();
    keys.insert("dingtalk".to_owned(), crypto(APP_KEY));
    server::router(AppState {
        store,
        metrics: None,
        dingtalk_callbacks: Arc::new(keys),
        approvals: Default::default(),
    })
}

/// A push as DingTalk makes it: `(query string, body)`.
fn push(c: &CallbackCrypto, event: &Value, ts: i64, nonce: &str) -> (String, String) {
    let encrypt = c.encrypt(&event.to_string());
    let sig = c.sign(&ts.to_string(), nonce, &encrypt);
    (
        format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
        json!({ "encrypt": encrypt }).to_string(),
    )
}

async fn post(app: &axum::Router, conn: &str, query: &str, body: String) -> (StatusCode, Value) {
    let req = Request::post(format!("/callbacks/dingtalk/{conn}?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn user_added(event_id: &str) -> Value {
    json!({
        "EventType": "user_add_org", "eventId": event_id, "CorpId": "dingsandboxcorp",
        "TimeStamp": "1700000000000", "UserId": ["manager4521"],
        "diffInfo": {"curr": {"name": "张伟", "部门": "研发中心/平台研发部"}}
    })
}

async fn stored(s: &Arc<dyn Store>) -> (usize, usize) {
    let jobs = s.list_jobs(&JobFilter::default()).await.unwrap().len();
    let events = usize::from(s.get_event("dingtalk", "ev-1").await.unwrap().is_some());
    (events, jobs)
}

#[tokio::test]
async fn an_event_is_stored_once_with_its_job_and_answered_with_encrypted_success() {
    for ts in test_stores().await {
        let app = app(Arc::clone(&ts.store));
        let c = crypto(APP_KEY);
        let (q, body) = push(&c, &user_added("ev-1"), now_ms(), "nonce00000000001");
        let (status, reply) = post(&app, "dingtalk", &q, body).await;
        assert_eq!(status, StatusCode::OK, "{}: {reply}", ts.name);
        // The reply is what DingTalk checks: signed over (token, timeStamp, nonce, encrypt) and
        // decrypting to `success` for our owner key.
        let (sig, t, n, enc) = (
            reply["msg_signature"].as_str().unwrap(),
            reply["timeStamp"].as_str().unwrap(),
            reply["nonce"].as_str().unwrap(),
            reply["encrypt"].as_str().unwrap(),
        );
        assert_eq!(c.open(sig, t, n, enc).unwrap(), "success");
        let event = ts
            .store
            .get_event("dingtalk", "ev-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.event_type, "user_add_org");
        assert_eq!(event.payload["diffInfo"]["curr"]["name"], "张伟");
        let jobs = ts.store.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "dingtalk.event");
        assert_eq!(jobs[0].payload["event_id"], "ev-1");

        // DingTalk re-pushes the same event (new nonce and signature): acknowledged, stored once.
        let (q, body) = push(&c, &user_added("ev-1"), now_ms(), "nonce00000000002");
        let (status, _) = post(&app, "dingtalk", &q, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stored(&ts.store).await, (1, 1), "{}", ts.name);
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_nothing_stored() {
    for ts in test_stores().await {
        let app = app(Arc::clone(&ts.store));
        let c = crypto(APP_KEY);
        let now = now_ms();
        let cases: Vec<(&str, String, String, StatusCode, &str)> = {
            let (q, body) = push(&c, &user_added("ev-1"), now, "nonce00000000001");
            let bad_sig = q.replacen("signature=", "signature=0", 1);
            let (old_q, old_body) =
                push(&c, &user_added("ev-1"), now - 3_600_000, "nonce00000000003");
            let other = crypto("dingotherappkey");
            let (owner_q, owner_body) = push(&other, &user_added("ev-1"), now, "nonce00000000004");
            let no_nonce = q
                .split('&')
                .filter(|p| !p.starts_with("nonce"))
                .collect::<Vec<_>>()
                .join("&");
            vec![
                (
                    "wrong signature",
                    bad_sig,
                    body.clone(),
                    StatusCode::FORBIDDEN,
                    "signature",
                ),
                (
                    "replayed an hour later",
                    old_q,
                    old_body,
                    StatusCode::FORBIDDEN,
                    "timestamp",
                ),
                (
                    "wrong owner key",
                    owner_q,
                    owner_body,
                    StatusCode::FORBIDDEN,
                    "signature",
                ),
                (
                    "body is not JSON",
                    q.clone(),
                    "encrypt=abc".into(),
                    StatusCode::BAD_REQUEST,
                    "encrypt",
                ),
                (
                    "no encrypt field",
                    q.clone(),
                    "{\"data\":1}".into(),
                    StatusCode::BAD_REQUEST,
                    "encrypt",
                ),
                (
                    "missing nonce",
                    no_nonce,
                    body.clone(),
                    StatusCode::BAD_REQUEST,
                    "nonce",
                ),
                (
                    "timestamp not a number",
                    q.replace(&format!("timestamp={now}"), "timestamp=昨天"),
                    body,
                    StatusCode::BAD_REQUEST,
                    "timestamp",
                ),
            ]
        };
        for (what, query, body, want, field) in cases {
            let (status, reply) = post(&app, "dingtalk", &query, body).await;
            assert_eq!(status, want, "{}: {what}: {reply}", ts.name);
            assert_eq!(reply["field"], field, "{}: {what}: {reply}", ts.name);
            assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
            assert_eq!(
                stored(&ts.store).await,
                (0, 0),
                "{}: {what} stored something",
                ts.name
            );
        }
        // A connection without callback keys.
        let (q, body) = push(&c, &user_added("ev-1"), now, "nonce00000000005");
        let (status, reply) = post(&app, "nosuch", &q, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("[connections.nosuch]")
        );
        assert_eq!(stored(&ts.store).await, (0, 0));
    }
}

#[tokio::test]
async fn check_url_is_answered_and_not_stored() {
    for ts in test_stores().await {
        let app = app(Arc::clone(&ts.store));
        let c = crypto(APP_KEY);
        let (q, body) = push(
            &c,
            &json!({"EventType": "check_url"}),
            now_ms(),
            "nonce00000000009",
        );
        let (status, reply) = post(&app, "dingtalk", &q, body).await;
        assert_eq!(status, StatusCode::OK);
        let dec = c.decrypt(reply["encrypt"].as_str().unwrap()).unwrap();
        assert_eq!(dec, "success");
        assert!(
            ts.store
                .list_jobs(&JobFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
