//! Custom group robots (protocol §4.2): signing against the golden vectors, the security
//! modes, message types, 20 messages per minute then 410100, the admin view.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use dingtalk_support::*;
use sandbox::dingtalk::DingTalkSandboxConfig;
use sandbox::dingtalk::robot::{DEFAULT_ROBOT_SECRET, DEFAULT_ROBOT_TOKEN, sign};
use serde_json::{Value, json};

#[test]
fn robot_signatures_equal_the_golden_vectors() {
    let v = vectors();
    let cases = v["robot_sign"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let secret = c["secret"].as_str().unwrap();
        let ts = c["timestamp"].as_str().unwrap();
        let got = sign(secret, ts);
        assert_eq!(got, c["sign_base64"].as_str().unwrap(), "{secret}");
        assert_eq!(
            urlencoding::encode(&got),
            c["sign_urlencoded"].as_str().unwrap()
        );
    }
}

/// POST with `access_token`, and `timestamp` + `sign` when a secret is given; the query is
/// built by hand so the sign is URL-encoded exactly as the doc samples do.
async fn send(s: &Served, token: &str, secret: Option<&str>, body: Value) -> Value {
    let mut url = s.url(&format!("/robot/send?access_token={token}"));
    if let Some(secret) = secret {
        let ts = s.sandbox.now_ms().to_string();
        let sig = urlencoding::encode(&sign(secret, &ts)).into_owned();
        url.push_str(&format!("&timestamp={ts}&sign={sig}"));
    }
    let resp = s.http.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn text(content: &str) -> Value {
    json!({"msgtype": "text", "text": {"content": content},
           "at": {"atMobiles": ["13800000000"], "isAtAll": false}})
}

#[tokio::test]
async fn signed_messages_of_every_type_are_accepted_and_visible() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let sec = Some(DEFAULT_ROBOT_SECRET);
    let bodies = [
        text("构建完成：dingbridge 0.1.0"),
        json!({"msgtype": "markdown", "markdown": {"title": "日报", "text": "#### 同步结果\n- 新增 3 人"}}),
        json!({"msgtype": "link", "link": {"title": "审批", "text": "费用报销待处理",
               "messageUrl": "https://example.invalid/a", "picUrl": ""}}),
        json!({"msgtype": "actionCard", "actionCard": {"title": "审批", "text": "请处理",
               "singleTitle": "查看", "singleURL": "https://example.invalid/b"}}),
        json!({"msgtype": "actionCard", "actionCard": {"title": "审批", "text": "请处理",
               "btnOrientation": "1", "btns": [{"title": "同意", "actionURL": "https://example.invalid/y"},
                                               {"title": "拒绝", "actionURL": "https://example.invalid/n"}]}}),
        json!({"msgtype": "feedCard", "feedCard": {"links": [
               {"title": "一", "messageURL": "https://example.invalid/1", "picURL": "https://example.invalid/1.png"}]}}),
    ];
    for b in &bodies {
        let r = send(&s, DEFAULT_ROBOT_TOKEN, sec, b.clone()).await;
        assert_eq!(r["errcode"], 0, "{b}: {r}");
        assert_eq!(r["errmsg"], "ok");
    }
    let m = s.admin_get("robot/messages").await;
    let list = m["messages"].as_array().unwrap();
    assert_eq!(list.len(), bodies.len());
    assert_eq!(list[0]["msgtype"], "text");
    assert_eq!(
        list[0]["body"]["text"]["content"],
        "构建完成：dingbridge 0.1.0"
    );
    assert!(list[0]["body"].get("sign").is_none());
    assert_eq!(list[5]["msgtype"], "feedCard");
    assert_eq!(s.admin_get("counters").await["robot_messages"], 6);

    // msgUuid: a repeat is accepted once.
    let mut b = text("幂等");
    b["msgUuid"] = json!("u-1");
    for _ in 0..2 {
        let r = send(&s, DEFAULT_ROBOT_TOKEN, sec, b.clone()).await;
        assert_eq!(r["errcode"], 0, "{r}");
    }
    let m = s.admin_get("robot/messages").await;
    assert_eq!(m["messages"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn bad_tokens_signatures_and_messages_are_refused() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let sec = Some(DEFAULT_ROBOT_SECRET);
    let r = send(&s, "nosuchrobot", None, text("x")).await;
    assert_eq!(r["errcode"], 400101, "{r}");
    // Signing on, but no sign.
    let r = send(&s, DEFAULT_ROBOT_TOKEN, None, text("x")).await;
    assert_eq!(r["errcode"], 310000, "{r}");
    // Wrong secret.
    let r = send(&s, DEFAULT_ROBOT_TOKEN, Some("SECwrong"), text("x")).await;
    assert_eq!(r["errcode"], 310000, "{r}");
    assert!(r["errmsg"].as_str().unwrap().contains("签名不匹配"), "{r}");
    // A timestamp more than an hour old.
    let old = (s.sandbox.now_ms() - 3_601_000).to_string();
    let sig = urlencoding::encode(&sign(DEFAULT_ROBOT_SECRET, &old)).into_owned();
    let url = s.url(&format!(
        "/robot/send?access_token={DEFAULT_ROBOT_TOKEN}&timestamp={old}&sign={sig}"
    ));
    let r: Value = s
        .http
        .post(url)
        .json(&text("x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errcode"], 310000, "{r}");
    assert_eq!(r["errmsg"], "invalid timestamp");
    // Message checks.
    let r = send(
        &s,
        DEFAULT_ROBOT_TOKEN,
        sec,
        json!({"msgtype": "image", "image": {}}),
    )
    .await;
    assert_eq!(r["errcode"], 400105, "{r}");
    let r = send(
        &s,
        DEFAULT_ROBOT_TOKEN,
        sec,
        json!({"msgtype": "text", "text": {}}),
    )
    .await;
    assert_eq!(r["errcode"], 40035, "{r}");
    let r = send(
        &s,
        DEFAULT_ROBOT_TOKEN,
        sec,
        json!({"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x"}}),
    )
    .await;
    assert_eq!(r["errcode"], 40035, "{r}");
    let many: Vec<String> = (0..51).map(|i| format!("1380000{i:04}")).collect();
    let r = send(
        &s,
        DEFAULT_ROBOT_TOKEN,
        sec,
        json!({"msgtype": "text", "text": {"content": "x"}, "at": {"atMobiles": many}}),
    )
    .await;
    assert_eq!(r["errcode"], 400002, "{r}");
    assert!(
        s.admin_get("robot/messages").await["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn keyword_ip_and_disabled_robots() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let r = s
        .admin(
            "robots",
            json!({"access_token": "kw", "keywords": ["告警", "同步"]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = send(&s, "kw", None, text("今日天气")).await;
    assert_eq!(r["errcode"], 310000, "{r}");
    assert_eq!(r["errmsg"], "keywords not in content");
    let r = send(&s, "kw", None, text("同步完成")).await;
    assert_eq!(r["errcode"], 0, "{r}");

    s.admin(
        "robots",
        json!({"access_token": "ip1", "ip_allowlist": ["10.1.2.0/24"]}),
    )
    .await;
    let r = send(&s, "ip1", None, text("x")).await;
    assert_eq!(r["errcode"], 310000, "{r}");
    assert!(r["errmsg"].as_str().unwrap().contains("whitelist"));
    s.admin(
        "robots",
        json!({"access_token": "ip2", "ip_allowlist": ["127.0.0.0/8"]}),
    )
    .await;
    assert_eq!(send(&s, "ip2", None, text("x")).await["errcode"], 0);

    s.admin("robots", json!({"access_token": "off", "enabled": false}))
        .await;
    assert_eq!(send(&s, "off", None, text("x")).await["errcode"], 400102);

    let robots = s.admin_get("robots").await;
    assert_eq!(robots["robots"].as_array().unwrap().len(), 5, "{robots}");
    let only = s.admin_get("robot/messages?access_token=kw").await;
    assert_eq!(only["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn twenty_messages_a_minute_then_410100_for_ten_minutes() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let sec = Some(DEFAULT_ROBOT_SECRET);
    for i in 0..20 {
        let r = send(&s, DEFAULT_ROBOT_TOKEN, sec, text(&format!("第{i}条"))).await;
        assert_eq!(r["errcode"], 0, "message {i}: {r}");
    }
    let r = send(&s, DEFAULT_ROBOT_TOKEN, sec, text("第21条")).await;
    assert_eq!(r["errcode"], 410100, "{r}");
    assert!(r["errmsg"].as_str().unwrap().contains("too fast"));
    // Still throttled; another robot is not.
    assert_eq!(
        send(&s, DEFAULT_ROBOT_TOKEN, sec, text("再试")).await["errcode"],
        410100
    );
    s.admin("robots", json!({"access_token": "other"})).await;
    assert_eq!(send(&s, "other", None, text("x")).await["errcode"], 0);
    let c = s.admin_get("counters").await;
    assert_eq!(c["robot_throttled"], 2, "{c}");
    assert_eq!(c["errors"]["410100"], 2, "{c}");
    // Reset lifts the throttle.
    s.admin("reset", json!({})).await;
    assert_eq!(
        send(&s, DEFAULT_ROBOT_TOKEN, sec, text("重置后")).await["errcode"],
        0
    );
}
