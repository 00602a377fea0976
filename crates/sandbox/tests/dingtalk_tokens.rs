//! Access tokens (protocol §1): both families, renewal, expiry through the clock and the
//! admin API, and the invalid-token answers of each family.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use dingtalk_support::*;
use sandbox::dingtalk::{DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandboxConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn gettoken_renews_the_same_token_and_v1_shares_it() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.sandbox.pin_clock(Some(1_700_000_000));
    let v: Value = s
        .http
        .get(s.url("/gettoken"))
        .query(&[
            ("appkey", DEFAULT_APP_KEY),
            ("appsecret", DEFAULT_APP_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert_eq!(v["expires_in"], 7200);
    let first = v["access_token"].as_str().unwrap().to_owned();

    // Re-fetch while valid: same token, lifetime extended from now.
    s.sandbox.advance_clock(7000);
    assert_eq!(s.token().await, first);
    s.sandbox.advance_clock(7000);
    let (status, v1) = s
        .v1_post(
            "",
            "/v1.0/oauth2/accessToken",
            json!({"appKey": DEFAULT_APP_KEY, "appSecret": DEFAULT_APP_SECRET}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v1["accessToken"], first.as_str());
    assert_eq!(v1["expireIn"], 7200);

    // The token works in both families.
    let r = s
        .oapi(&first, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 0, "{r}");
    let (status, _) = s
        .v1_get(
            &first,
            "/v1.0/workflow/forms/schemas/processCodes",
            &[("processCode", "PROC-SBX-QJ-2B8D6E41-0002")],
        )
        .await;
    assert_eq!(status, 200);

    // Past the lifetime: 42001, then a new token.
    s.sandbox.advance_clock(7201);
    let r = s
        .oapi(&first, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 42001, "{r}");
    let (status, body) = s
        .v1_get(
            &first,
            "/v1.0/workflow/forms/schemas/processCodes",
            &[("processCode", "x")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "InvalidAuthentication");
    assert!(body["requestid"].is_string());
    let second = s.token().await;
    assert_ne!(second, first);
    let c = s.sandbox.counters();
    assert_eq!(c.tokens_issued, 2);
    assert_eq!(c.tokens_renewed, 2);
}

#[tokio::test]
async fn bad_credentials_and_bad_tokens() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let v: Value = s
        .http
        .get(s.url("/gettoken"))
        .query(&[("appkey", DEFAULT_APP_KEY), ("appsecret", "wrong")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 40089);
    let (status, body) = s
        .v1_post(
            "",
            "/v1.0/oauth2/accessToken",
            json!({"appKey": "nope", "appSecret": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalidClientIdOrSecret");

    // Unknown token: oapi HTTP 200 + 40014; v1.0 400 InvalidAuthentication; no header: 401.
    let r = s
        .oapi("not-a-token", "/topapi/v2/user/get", json!({"userid": "x"}))
        .await;
    assert_eq!(r["errcode"], 40014);
    assert_eq!(r["errmsg"], "不合法的access_token");
    let (status, body) = s
        .v1_post("not-a-token", "/v1.0/workflow/processInstances", json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidAuthentication"))
    );
    let resp = s
        .http
        .get(s.url("/v1.0/workflow/processInstances?processInstanceId=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The ISV-style endpoint (§1.4).
    let corp = s.sandbox.corp_id().to_owned();
    let (status, body) = s
        .v1_post(
            "",
            &format!("/v1.0/oauth2/{corp}/token"),
            json!({"client_id": DEFAULT_APP_KEY, "client_secret": DEFAULT_APP_SECRET, "grant_type": "client_credentials"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 7200);
}

#[tokio::test]
async fn forced_expiry_through_admin() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let tok = s.token().await;
    let r = s.admin("tokens/expire", json!({})).await;
    assert_eq!(r["expired"], 1);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/listsubid",
            json!({"dept_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 42001);
    let fresh = s.token().await;
    assert_ne!(fresh, tok);
    let r = s
        .oapi(
            &fresh,
            "/topapi/v2/department/listsubid",
            json!({"dept_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    // The same through the faults switch.
    let r = s.admin("faults", json!({"expire_tokens": true})).await;
    assert_eq!(r["tokens_expired"], 1);
    // And the clock admin.
    let r = s.admin("clock", json!({"pin": 1_700_000_000})).await;
    assert_eq!(r["now"], 1_700_000_000);
}
