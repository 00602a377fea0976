//! Token cache: single-flight fetch, refresh-and-retry-once on invalid tokens, pacing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk::{Credentials, DingTalkClient, DingTalkConfig, Error, TokenEndpoint, UserId};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(server: &MockServer) -> DingTalkConfig {
    DingTalkConfig::new(
        "dingcorp000000000001",
        Credentials::new("dingsimappkey0000001", "s3cr3t"),
    )
    .with_bases(&server.uri(), &server.uri())
    .unwrap()
}

fn user_json() -> serde_json::Value {
    serde_json::json!({"errcode": 0, "errmsg": "ok", "result": {"userid": "zhangsan", "name": "张三", "dept_id_list": [1, "2"]}, "request_id": "r1"})
}

#[derive(Default)]
struct RecordingPacer {
    events: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl limits::Pacer for RecordingPacer {
    async fn acquire(&self, group: &str) -> limits::Permit {
        self.events
            .lock()
            .unwrap()
            .push((group.into(), "acquire".into()));
        limits::Permit::free()
    }
    fn throttled(&self, group: &str, retry_after: Option<Duration>) {
        self.events
            .lock()
            .unwrap()
            .push((group.into(), format!("throttled {retry_after:?}")));
    }
    fn succeeded(&self, group: &str) {
        self.events
            .lock()
            .unwrap()
            .push((group.into(), "succeeded".into()));
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_fetch_one_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .and(body_partial_json(
            serde_json::json!({"appKey": "dingsimappkey0000001", "appSecret": "s3cr3t"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"accessToken": "tok-1", "expireIn": 7200}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/topapi/v2/user/get"))
        .and(query_param("access_token", "tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
        .expect(50)
        .mount(&server)
        .await;
    let client = DingTalkClient::new(config(&server)).unwrap();
    let calls = (0..50).map(|_| {
        let c = client.clone();
        async move { c.user_get(&UserId::from("zhangsan")).await }
    });
    let results = futures::future::join_all(calls).await;
    for r in results {
        assert_eq!(r.unwrap().name, "张三");
    }
    assert_eq!(client.tokens().fetch_count(), 1);
}

#[tokio::test]
async fn invalid_token_mid_run_refreshes_once_and_retries_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/gettoken"))
        .and(query_param("appkey", "dingsimappkey0000001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": "tok-1", "expires_in": 7200}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/gettoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"errcode": "0", "errmsg": "ok", "access_token": "tok-2", "expires_in": "7200"}),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/topapi/v2/user/get"))
        .and(query_param("access_token", "tok-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"errcode": 40014, "errmsg": "不合法的access_token"}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/topapi/v2/user/get"))
        .and(query_param("access_token", "tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
        .mount(&server)
        .await;
    let cfg = config(&server).with_token_endpoint(TokenEndpoint::Oapi);
    let client = DingTalkClient::new(cfg).unwrap();
    // Warm the cache with tok-1, which the platform has since invalidated.
    assert_eq!(client.access_token().await.unwrap().expose(), "tok-1");
    let calls = (0..20).map(|_| {
        let c = client.clone();
        async move { c.user_get(&UserId::from("zhangsan")).await }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().userid.as_str(), "zhangsan");
    }
    assert_eq!(
        client.tokens().fetch_count(),
        2,
        "one refresh for all callers"
    );
    let reqs = server.received_requests().await.unwrap();
    let gets = reqs
        .iter()
        .filter(|r| r.url.path() == "/topapi/v2/user/get")
        .count();
    assert_eq!(
        gets, 40,
        "each call tried once with the stale token, once after refresh"
    );
}

#[tokio::test]
async fn token_rejected_twice_is_not_retried_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"accessToken": "tok", "expireIn": 7200})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/workflow/processInstances"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"code": "InvalidAuthentication", "requestid": "30EE", "message": "不合法的access_token"}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let client = DingTalkClient::new(config(&server)).unwrap();
    let err = client.approval_get(&"inst-1".into()).await.unwrap_err();
    assert!(err.is_token_invalid() && err.is_retryable(), "{err}");
    assert_eq!(client.tokens().fetch_count(), 2);
}

#[tokio::test]
async fn short_lived_tokens_refresh_before_expiry_and_bad_credentials_are_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"accessToken": "short", "expireIn": 2})),
        )
        .mount(&server)
        .await;
    let mut cfg = config(&server);
    cfg.token_refresh_margin = Duration::from_secs(300);
    let client = DingTalkClient::new(cfg).unwrap();
    client.access_token().await.unwrap();
    client.access_token().await.unwrap();
    assert_eq!(
        client.tokens().fetch_count(),
        1,
        "margin is capped at half the lifetime"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.access_token().await.unwrap();
    assert_eq!(client.tokens().fetch_count(), 2, "refreshed before expiry");

    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret", "requestid": "x"}),
        ))
        .mount(&bad)
        .await;
    let err = DingTalkClient::new(config(&bad))
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Business { .. }) && !err.is_retryable(),
        "{err}"
    );
}

#[tokio::test]
async fn every_request_goes_through_the_pacer_with_its_group() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"accessToken": "tok", "expireIn": 7200})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/topapi/v2/user/get"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"errcode": 90018, "errmsg": "当前企业对应的应用调用该接口超过限流值"}),
        ))
        .mount(&server)
        .await;
    let pacer = Arc::new(RecordingPacer::default());
    let client = DingTalkClient::builder(config(&server))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    let err = client
        .user_get(&UserId::from("zhangsan"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    let ev = pacer.events.lock().unwrap().clone();
    assert_eq!(
        ev,
        vec![
            ("gettoken".to_owned(), "acquire".to_owned()),
            ("gettoken".to_owned(), "succeeded".to_owned()),
            (
                "contacts:/topapi/v2/user/get".to_owned(),
                "acquire".to_owned()
            ),
            (
                "contacts:/topapi/v2/user/get".to_owned(),
                "throttled Some(1s)".to_owned()
            ),
        ]
    );
}
