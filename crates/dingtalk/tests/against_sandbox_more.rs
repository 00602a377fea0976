//! More of the client against the independent DingTalk sandbox (`sandbox::dingtalk`), served
//! in-process on loopback: the signing group robot (Chinese text, the per-minute limit as the
//! typed throttled error, a wrong secret), login (in-app auth code → userid, a reused code,
//! web OAuth2 → user token → `users/me`), and Stream mode (the client's `StreamClient` on the
//! sandbox's gateway: an event caused by a user created through the API is handled and ACKed,
//! and the sandbox records the ACK; a handler that answers "later" is redelivered). Outcomes
//! are checked in the sandbox's admin API, not only in the client's answers.
#![allow(clippy::unwrap_used)]

mod sandbox_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk::contacts::UserInput;
use dingtalk::robot::{RobotClient, RobotMessage};
use dingtalk::stream::{DownstreamFrame, HandlerOutcome, StreamClient, StreamHandler};
use dingtalk::*;
use sandbox::dingtalk::DingTalkSandboxConfig;
use sandbox::dingtalk::robot::{DEFAULT_ROBOT_SECRET, DEFAULT_ROBOT_TOKEN};
use sandbox::seed::Seed;
use sandbox_support::{Sandbox, has_cjk};
use serde_json::Value;

/// The first employed person of the builtin seed.
fn first_person() -> sandbox::seed::User {
    Seed::builtin()
        .users
        .into_iter()
        .find(|u| u.active)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Group robot
// ---------------------------------------------------------------------------------------------

/// A robot client on the sandbox with the default (signing) robot.
fn robot(s: &Sandbox, secret: &str) -> RobotClient {
    RobotClient::new(DEFAULT_ROBOT_TOKEN, Some(secret.to_owned()))
        .unwrap()
        .with_base(&s.origin)
        .unwrap()
}

/// Signed text and markdown with Chinese text arrive intact; the 21st message within a
/// minute is the typed throttled error (410100) with the platform's 10-minute wait.
#[tokio::test]
async fn robot_signed_text_and_markdown_then_per_minute_limit() {
    let s = Sandbox::start().await;
    let r = robot(&s, DEFAULT_ROBOT_SECRET);

    let text = "钉桥通知：金蝶凭证 记-0001 已同步，金额 ¥1,234.50（含“引号”）";
    r.send(&RobotMessage::text(text)).await.unwrap();
    let md_title = "本周同步周报";
    let md_text = "## 同步结果\n- 新增员工：**3** 人\n- 报销单：2 张已审批\n> 备注：一切正常 ✅";
    r.send(&RobotMessage::markdown(md_title, md_text))
        .await
        .unwrap();

    let got = s
        .admin_get(&format!(
            "robot/messages?access_token={DEFAULT_ROBOT_TOKEN}"
        ))
        .await;
    let msgs = got["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{got}");
    assert_eq!(msgs[0]["msgtype"], "text");
    assert_eq!(msgs[0]["body"]["text"]["content"], text);
    assert_eq!(msgs[1]["msgtype"], "markdown");
    assert_eq!(msgs[1]["body"]["markdown"]["title"], md_title);
    assert_eq!(msgs[1]["body"]["markdown"]["text"], md_text);
    assert!(has_cjk(
        msgs[1]["body"]["markdown"]["text"].as_str().unwrap()
    ));

    // 18 more: 20 accepted within the minute.
    for i in 3..=20 {
        r.send(&RobotMessage::text(format!("第 {i} 条消息")))
            .await
            .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
    }
    // The 21st: throttled, typed, with the wait.
    let e = r
        .send(&RobotMessage::text("第 21 条：太快了"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
    assert_eq!(e.code(), Some("410100"), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(600)), "{e:?}");
    assert!(e.is_retryable());
    // Still throttled right after; nothing more stored.
    let e = r.send(&RobotMessage::text("第 22 条")).await.unwrap_err();
    assert_eq!(e.code(), Some("410100"), "{e:?}");
    let got = s.admin_get("robot/messages").await;
    assert_eq!(got["messages"].as_array().unwrap().len(), 20);
    assert!(s.counter("robot_throttled").await >= 2);
}

/// A wrong signing secret: the typed (permanent) error with the platform's code, nothing
/// stored; an unknown robot token likewise.
#[tokio::test]
async fn robot_wrong_secret_and_unknown_token_are_typed_errors() {
    let s = Sandbox::start().await;
    let bad = robot(
        &s,
        "SECffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    );
    let e = bad
        .send(&RobotMessage::text("签名错误的消息"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
    assert_eq!(e.code(), Some("310000"), "{e:?}");
    assert!(!e.is_retryable());

    let unknown = RobotClient::new("没有这个机器人", Some(DEFAULT_ROBOT_SECRET.into()))
        .unwrap()
        .with_base(&s.origin)
        .unwrap();
    let e = unknown
        .send(&RobotMessage::text("无人接收"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("400101"), "{e:?}");
    assert!(!e.is_retryable());

    let got = s.admin_get("robot/messages").await;
    assert!(got["messages"].as_array().unwrap().is_empty(), "{got}");
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

/// In-app 免登: a minted auth code → the userid (and the Chinese name); the same code again
/// is the typed 40078 error; an OAuth code is not an in-app code.
#[tokio::test]
async fn inapp_auth_code_to_userid_and_reuse_is_refused() {
    let s = Sandbox::start().await;
    let c = s.client();
    let who = first_person();

    let code = s.login_code(&who.userid, "inapp").await;
    let u = c.user_by_auth_code(&code).await.unwrap();
    assert_eq!(u.userid.as_str(), who.userid);
    assert_eq!(u.name.as_deref(), Some(who.name.as_str()));
    assert!(has_cjk(u.name.as_deref().unwrap()));
    assert_eq!(
        u.unionid.as_ref().map(|x| x.as_str()),
        Some(who.unionid.as_str())
    );

    let e = c.user_by_auth_code(&code).await.unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
    assert_eq!(e.code(), Some("40078"), "{e:?}");
    assert!(!e.is_retryable());

    let oauth = s.login_code(&who.userid, "oauth").await;
    let e = c.user_by_auth_code(&oauth).await.unwrap_err();
    assert_eq!(e.code(), Some("40078"), "{e:?}");
}

/// Web OAuth2: an OAuth code → user access token → `users/me` with the user's Chinese name
/// (nick) and unionId; the code is single use (`invalidAuthCode`); the refresh token works.
#[tokio::test]
async fn web_oauth_code_to_user_token_to_users_me() {
    let s = Sandbox::start().await;
    let c = s.client();
    let who = Seed::builtin()
        .users
        .into_iter()
        .filter(|u| u.active)
        .nth(7)
        .unwrap();

    let code = s.login_code(&who.userid, "oauth").await;
    let token = c.user_access_token(&code).await.unwrap();
    assert!(token.expire_in > 0, "{token:?}");
    assert_eq!(token.corp_id.as_deref(), Some(s.sb.corp_id()));
    let me = c.user_me(&token).await.unwrap();
    assert_eq!(me.nick.as_deref(), Some(who.name.as_str()), "{me:?}");
    assert!(has_cjk(me.nick.as_deref().unwrap()));
    assert_eq!(me.union_id.as_str(), who.unionid);

    // Single use.
    let e = c.user_access_token(&code).await.unwrap_err();
    assert_eq!(e.code(), Some("invalidAuthCode"), "{e:?}");
    assert!(!e.is_retryable());

    // An in-app code is not an OAuth code.
    let inapp = s.login_code(&who.userid, "inapp").await;
    let e = c.user_access_token(&inapp).await.unwrap_err();
    assert_eq!(e.code(), Some("invalidAuthCode"), "{e:?}");

    // Refresh: a new access token for the same person.
    let refreshed = c
        .refresh_user_access_token(token.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let me2 = c.user_me(&refreshed).await.unwrap();
    assert_eq!(me2.union_id, me.union_id);
    assert_eq!(s.counter("user_tokens_issued").await, 2);
}

// ---------------------------------------------------------------------------------------------
// Stream mode
// ---------------------------------------------------------------------------------------------

/// Records every frame; answers "later" to the first `later_first` EVENT frames.
struct Recorder {
    frames: Mutex<Vec<DownstreamFrame>>,
    later_first: usize,
}

impl Recorder {
    fn new(later_first: usize) -> Arc<Self> {
        Arc::new(Self {
            frames: Mutex::new(Vec::new()),
            later_first,
        })
    }
    fn events(&self, event_type: &str) -> Vec<DownstreamFrame> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.headers.event_type.as_deref() == Some(event_type))
            .cloned()
            .collect()
    }
}

#[async_trait::async_trait]
impl StreamHandler for Recorder {
    async fn handle(&self, frame: DownstreamFrame) -> HandlerOutcome {
        let n = {
            let mut frames = self.frames.lock().unwrap();
            frames.push(frame);
            frames.len()
        };
        if n <= self.later_first {
            HandlerOutcome::Later("数据库暂不可用，稍后再试".into())
        } else {
            HandlerOutcome::Success
        }
    }
}

/// The client's Stream loop on the sandbox's gateway until the returned sender fires.
fn run_stream(
    s: &Sandbox,
    handler: Arc<Recorder>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<()>>,
) {
    // The gateway URL comes from the config's api base (`{api}/v1.0/gateway/connections/open`).
    let client = StreamClient::new(&s.config(TokenEndpoint::V1))
        .unwrap()
        .with_backoff(Duration::from_millis(100), Duration::from_secs(1));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        client
            .run(handler, async move {
                let _ = rx.await;
            })
            .await
    });
    (tx, task)
}

/// Polls `f` every 50 ms for up to `secs` seconds until it gives `Some`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the sandbox shows an open Stream connection of the app.
async fn wait_connected(s: &Sandbox) {
    eventually(10, "an open stream connection", || async {
        let v = s.admin_get("stream/connections").await;
        let open = v
            .get("connections")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["state"] == "open"));
        open.then_some(())
    })
    .await;
}

/// A new user with a Chinese name, created through the client's contacts API.
async fn create_user(s: &Sandbox, name: &str, mobile: &str) -> UserId {
    s.client()
        .user_create(&UserInput {
            name: Some(name.into()),
            mobile: Some(mobile.into()),
            dept_id_list: Some(vec![DeptId(1)]),
            title: Some("流式事件测试员".into()),
            ..UserInput::default()
        })
        .await
        .unwrap()
        .userid
}

/// The sandbox's ACK records for one event id.
async fn acks_of(s: &Sandbox, event_id: &str) -> Vec<Value> {
    s.admin_get("stream/acks").await["acks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["event_id"] == event_id)
        .cloned()
        .collect()
}

/// A user created through the API → the handler receives `user_add_org` with the userid →
/// the ACK (sent after the handler returned) is recorded by the sandbox as accepted and the
/// delivery is `delivered`.
#[tokio::test]
async fn stream_user_add_org_is_handled_and_acked() {
    let s = Sandbox::start().await;
    let rec = Recorder::new(0);
    let (stop, task) = run_stream(&s, rec.clone());
    wait_connected(&s).await;

    let uid = create_user(&s, "诸葛·流式", "13900001111").await;
    let frame = eventually(10, "user_add_org in the handler", || async {
        rec.events("user_add_org").into_iter().next()
    })
    .await;
    let data = frame.data_json().unwrap();
    assert!(
        data["userId"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str() == Some(uid.as_str())),
        "{data}"
    );
    assert_eq!(frame.headers.event_corp_id.as_deref(), Some(s.sb.corp_id()));
    let event_id = frame.headers.event_id.clone().unwrap();

    let ack = eventually(10, "the ACK recorded", || async {
        acks_of(&s, &event_id).await.into_iter().next()
    })
    .await;
    assert_eq!(ack["code"], 200, "{ack}");
    assert_eq!(ack["accepted"], true, "{ack}");
    assert_eq!(ack["known"], true, "{ack}");
    assert_eq!(ack["status"], "SUCCESS", "{ack}");
    assert_eq!(ack["message_id"], frame.headers.message_id.as_str());

    let deliveries = s.admin_get("stream/deliveries").await;
    let d = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == event_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["pushes"], 1, "{d}");
    assert_eq!(rec.events("user_add_org").len(), 1);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A handler that answers "later" (ACK 500 `LATER`): the sandbox keeps the event pending and
/// pushes it again (same eventId, new messageId); the second push is ACKed 200 and counts.
#[tokio::test]
async fn stream_later_is_redelivered() {
    let cfg = DingTalkSandboxConfig {
        stream_ack_timeout: Duration::from_millis(300),
        ..DingTalkSandboxConfig::default()
    };
    let s = Sandbox::with(cfg, &Seed::builtin()).await;
    let rec = Recorder::new(1);
    let (stop, task) = run_stream(&s, rec.clone());
    wait_connected(&s).await;

    create_user(&s, "上官·稍后", "13900002222").await;
    let frames = eventually(10, "a redelivery of user_add_org", || async {
        let f = rec.events("user_add_org");
        (f.len() >= 2).then_some(f)
    })
    .await;
    let (first, second) = (&frames[0], &frames[1]);
    assert_eq!(first.headers.event_id, second.headers.event_id);
    assert_ne!(first.headers.message_id, second.headers.message_id);
    assert_eq!(first.data, second.data);
    let event_id = first.headers.event_id.clone().unwrap();

    let acks = eventually(10, "both ACKs recorded", || async {
        let a = acks_of(&s, &event_id).await;
        (a.len() >= 2).then_some(a)
    })
    .await;
    let later = acks
        .iter()
        .find(|a| a["message_id"] == first.headers.message_id.as_str())
        .unwrap();
    assert_eq!(later["code"], 500, "{later}");
    assert_eq!(later["status"], "LATER", "{later}");
    assert_eq!(later["accepted"], false, "{later}");
    let ok = acks
        .iter()
        .find(|a| a["message_id"] == second.headers.message_id.as_str())
        .unwrap();
    assert_eq!(ok["code"], 200, "{ok}");
    assert_eq!(ok["accepted"], true, "{ok}");

    let d = eventually(10, "the delivery marked delivered", || async {
        s.admin_get("stream/deliveries").await["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == event_id.as_str() && d["status"] == "delivered")
            .cloned()
    })
    .await;
    assert!(d["pushes"].as_u64().unwrap() >= 2, "{d}");
    assert!(s.counter("stream_redeliveries").await >= 1);
    // Delivered: no further pushes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rec.events("user_add_org").len(), 2);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// The gateway refuses a wrong secret with 401 `authFailed`: the client's run loop stops with
/// a permanent error instead of reconnecting forever.
#[tokio::test]
async fn stream_wrong_secret_stops_with_a_permanent_error() {
    let s = Sandbox::start().await;
    let mut cfg = s.config(TokenEndpoint::V1);
    cfg.credentials = Credentials::new(sandbox::dingtalk::DEFAULT_APP_KEY, "错误的密钥");
    let client = StreamClient::new(&cfg).unwrap();
    let e = client.open_connection().await.unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    assert!(!e.is_retryable());
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.run(Recorder::new(0), std::future::pending()),
    )
    .await
    .unwrap();
    assert!(r.is_err());
}
