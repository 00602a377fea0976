//! Stream mode (protocol §5.2): open a connection, connect the WebSocket with the ticket,
//! receive the EVENT caused by an API call, ACK it as the official SDKs do (frames of
//! `shared/vectors/dingtalk.json` → `stream_ack`), redelivery without ACK, SYSTEM ping /
//! disconnect, CALLBACK pushes.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use std::time::Duration;

use dingtalk_support::*;
use futures::{SinkExt as _, StreamExt as _};
use sandbox::dingtalk::{DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandboxConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `POST /v1.0/gateway/connections/open` with the Python SDK's body shape.
async fn open(s: &Served, subscriptions: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(s.url("/v1.0/gateway/connections/open"))
        .header("Accept", "application/json")
        .json(&json!({
            "clientId": DEFAULT_APP_KEY,
            "clientSecret": DEFAULT_APP_SECRET,
            "subscriptions": subscriptions,
            "ua": "dingtalk-sdk-python/v0.24.3-union",
            "localIp": "10.0.0.5",
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Opens and connects like PY-STREAM: `endpoint?ticket=quote_plus(ticket)`.
async fn connect(s: &Served, subscriptions: Value) -> Ws {
    let (status, v) = open(s, subscriptions).await;
    assert_eq!(status, 200, "{v}");
    let endpoint = v["endpoint"].as_str().unwrap();
    assert!(endpoint.starts_with("ws://127.0.0.1:"), "{endpoint}");
    assert!(endpoint.ends_with("/connect"), "{endpoint}");
    let url = format!(
        "{endpoint}?ticket={}",
        urlencoding::encode(v["ticket"].as_str().unwrap())
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

fn event_subs() -> Value {
    json!([{"type": "EVENT", "topic": "*"}])
}

/// The next text frame, parsed (10 s at most).
async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The next frame of `type`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let f = next_frame(ws).await;
        if f["type"] == kind {
            return f;
        }
    }
}

/// An ACK as PY-STREAM sends it (`json.dumps` of `AckMessage.to_dict()`, spaces included).
fn py_ack(frame: &Value, code: i64, message: &str, data: &str) -> Message {
    let ack = json!({
        "code": code,
        "headers": {"contentType": "application/json",
                    "messageId": frame["headers"]["messageId"]},
        "message": message,
        "data": data,
    });
    Message::text(serde_json::to_string_pretty(&ack).unwrap())
}

async fn create_user(s: &Served, tok: &str, userid: &str, mobile: &str) {
    let r = s
        .oapi(
            tok,
            "/topapi/v2/user/create",
            json!({"userid": userid, "name": "流式测试", "mobile": mobile, "dept_id_list": "1"}),
        )
        .await;
    assert_eq!(r["errcode"], 0, "{r}");
}

async fn wait_for(s: &Served, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let v = s.admin_get(path).await;
        if pred(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never matched: {}", s.admin_get(path).await);
}

#[tokio::test]
async fn open_checks_credentials_subscriptions_and_tickets() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let resp = s
        .http
        .post(s.url("/v1.0/gateway/connections/open"))
        .json(
            &json!({"clientId": DEFAULT_APP_KEY, "clientSecret": "wrong",
                      "subscriptions": [{"type": "EVENT", "topic": "*"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "authFailed", "{v}");
    assert!(v["requestid"].is_string());

    let (status, v) = open(&s, json!([])).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = open(&s, json!([{"type": "PUSH", "topic": "*"}])).await;
    assert_eq!(status, 400, "{v}");

    let (status, v) = open(&s, event_subs()).await;
    assert_eq!(status, 200);
    let ticket = v["ticket"].as_str().unwrap();
    let url = format!("{}?ticket={ticket}", v["endpoint"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
    // Single use.
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // Unknown ticket.
    let bad = format!("ws://{}/connect?ticket=nope", &s.origin["http://".len()..]);
    assert!(tokio_tungstenite::connect_async(bad).await.is_err());
    // Expired ticket (90 s, sandbox clock).
    let (_, v) = open(&s, event_subs()).await;
    s.admin("clock", json!({"advance_secs": 91})).await;
    let url = format!(
        "{}?ticket={}",
        v["endpoint"].as_str().unwrap(),
        v["ticket"].as_str().unwrap()
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    let conns = s.admin_get("stream/connections").await;
    let list = conns["connections"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{conns}");
    assert_eq!(list[0]["app_key"], DEFAULT_APP_KEY);
    assert_eq!(list[0]["ua"], "dingtalk-sdk-python/v0.24.3-union");
    assert_eq!(list[0]["local_ip"], "10.0.0.5");
    assert_eq!(list[0]["state"], "open");
    ws.close(None).await.unwrap();
    wait_for(&s, "stream/connections", |v| {
        v["connections"][0]["state"] == "closed"
    })
    .await;
}

#[tokio::test]
async fn an_event_from_the_api_is_pushed_acked_and_recorded() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let mut ws = connect(&s, event_subs()).await;
    let tok = s.token().await;
    create_user(&s, &tok, "stream01", "13911110001").await;

    let f = next_of(&mut ws, "EVENT").await;
    assert_eq!(f["specVersion"], "1.0");
    let h = &f["headers"];
    assert_eq!(h["topic"], "*");
    assert_eq!(h["eventType"], "user_add_org");
    assert_eq!(h["contentType"], "application/json");
    assert_eq!(h["eventCorpId"], s.sandbox.corp_id());
    for k in [
        "messageId",
        "eventId",
        "eventBornTime",
        "time",
        "eventUnifiedAppId",
        "connectionId",
        "appId",
    ] {
        assert!(h[k].is_string(), "header {k} is a string: {f}");
    }
    // `data` is a JSON string with the camelCase event keys.
    let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["userId"], json!(["stream01"]), "{data}");
    assert!(data["timeStamp"].is_string());
    assert!(data.get("EventType").is_none());

    // PY-STREAM's ACK of an EventHandler returning STATUS_OK: code 200, data echoed.
    let echoed = serde_json::to_string(&data).unwrap();
    ws.send(py_ack(&f, 200, "OK", &echoed)).await.unwrap();

    let acks = wait_for(&s, "stream/acks", |v| {
        v["acks"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let a = &acks["acks"][0];
    assert_eq!(a["message_id"], h["messageId"]);
    assert_eq!(a["event_id"], h["eventId"]);
    assert_eq!(a["type"], "EVENT");
    assert_eq!(a["code"], 200);
    assert_eq!(a["accepted"], true);
    assert_eq!(a["known"], true);
    assert_eq!(a["app_key"], DEFAULT_APP_KEY);
    let d = s.admin_get("stream/deliveries").await;
    let d = &d["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["pushes"], 1);
    let c = s.admin_get("counters").await;
    assert_eq!(c["stream_acks"], 1, "{c}");
    assert_eq!(c["stream_events_delivered"], 1, "{c}");
    assert_eq!(c["stream_events_pushed"], 1, "{c}");
    assert_eq!(c["stream_redeliveries"], 0, "{c}");
}

#[tokio::test]
async fn an_unacked_event_is_pushed_again_with_the_same_event_id() {
    let cfg = DingTalkSandboxConfig {
        stream_ack_timeout: Duration::from_millis(300),
        stream_max_deliveries: 3,
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let mut ws = connect(&s, event_subs()).await;
    let tok = s.token().await;
    create_user(&s, &tok, "stream02", "13911110002").await;

    let first = next_of(&mut ws, "EVENT").await;
    // No ACK at all: pushed again after the timeout, new messageId, same eventId.
    let second = next_of(&mut ws, "EVENT").await;
    assert_eq!(second["headers"]["eventId"], first["headers"]["eventId"]);
    assert_ne!(
        second["headers"]["messageId"],
        first["headers"]["messageId"]
    );
    // The Python SDK's default handler answers 404 "not implement": not a delivery.
    ws.send(py_ack(
        &second,
        404,
        "not implement",
        second["data"].as_str().unwrap(),
    ))
    .await
    .unwrap();
    let third = next_of(&mut ws, "EVENT").await;
    assert_eq!(third["headers"]["eventId"], first["headers"]["eventId"]);
    // A late ACK of the first push still counts (dedupe is the client's job).
    ws.send(py_ack(&first, 200, "OK", first["data"].as_str().unwrap()))
        .await
        .unwrap();
    let d = wait_for(&s, "stream/deliveries", |v| {
        v["deliveries"][0]["status"] == "delivered"
    })
    .await;
    assert_eq!(d["deliveries"][0]["pushes"], 3, "{d}");
    let acks = s.admin_get("stream/acks").await;
    let acks = acks["acks"].as_array().unwrap();
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0]["code"], 404);
    assert_eq!(acks[0]["accepted"], false);
    assert_eq!(acks[1]["accepted"], true);
    let c = s.admin_get("counters").await;
    assert_eq!(c["stream_redeliveries"], 2, "{c}");
    assert_eq!(c["stream_acks_rejected"], 1, "{c}");
}

#[tokio::test]
async fn later_and_silence_end_as_failed_after_the_last_push() {
    let cfg = DingTalkSandboxConfig {
        stream_ack_timeout: Duration::from_millis(200),
        stream_max_deliveries: 2,
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let mut ws = connect(&s, event_subs()).await;
    let tok = s.token().await;
    create_user(&s, &tok, "stream03", "13911110003").await;
    let f = next_of(&mut ws, "EVENT").await;
    // GO-STREAM's "retry later": code 500 + status LATER.
    let later = json!({"code": 500, "headers": {"contentType": "application/json",
        "messageId": f["headers"]["messageId"]}, "message": "later",
        "data": "{\"status\":\"LATER\",\"message\":\"busy\"}"});
    ws.send(Message::text(later.to_string())).await.unwrap();
    next_of(&mut ws, "EVENT").await;
    let d = wait_for(&s, "stream/deliveries", |v| {
        v["deliveries"][0]["status"] == "failed"
    })
    .await;
    assert_eq!(d["deliveries"][0]["pushes"], 2);
    let acks = s.admin_get("stream/acks").await;
    assert_eq!(acks["acks"][0]["status"], "LATER");
    assert_eq!(acks["acks"][0]["accepted"], false);
    assert_eq!(s.admin_get("counters").await["stream_deliveries_failed"], 1);
}

#[tokio::test]
async fn the_sdk_ack_frames_of_the_vectors_are_judged_as_the_notes_say() {
    let v = vectors();
    let cases = v["stream_ack"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let cfg = DingTalkSandboxConfig {
        stream_ack_timeout: Duration::from_secs(30),
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let mut ws = connect(
        &s,
        json!([{"type": "EVENT", "topic": "*"},
               {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]),
    )
    .await;
    let tok = s.token().await;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let ack = &case["ack_sent"];
        // Make the sandbox send the same kind of frame, then answer with the vector's ACK
        // (its messageId replaced by the one the sandbox used).
        let frame = match name {
            "system_ping" => {
                s.admin("stream/ping", json!({})).await;
                next_of(&mut ws, "SYSTEM").await
            }
            "system_disconnect" => continue, // covered by its own test (closes the socket)
            "callback_ok_handler" => {
                let r = s
                    .admin(
                        "stream/callback",
                        json!({"topic": "/v1.0/im/bot/messages/get",
                               "data": case["frame"]["data"]}),
                    )
                    .await;
                assert_eq!(r["ok"], true, "{r}");
                next_of(&mut ws, "CALLBACK").await
            }
            _ => {
                let n = name.len();
                create_user(&s, &tok, &format!("vec{n}"), &format!("139222200{n:02}")).await;
                next_of(&mut ws, "EVENT").await
            }
        };
        assert_eq!(
            frame["headers"]["topic"], case["frame"]["headers"]["topic"],
            "{name}"
        );
        let mut ack = ack.clone();
        ack["headers"]["messageId"] = frame["headers"]["messageId"].clone();
        if name == "system_ping" {
            // The SDK echoes the data it got: `json.dumps` of the parsed data.
            let d: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
            ack["data"] = json!(format!(
                "{{\"opaque\": \"{}\"}}",
                d["opaque"].as_str().unwrap()
            ));
        }
        ws.send(Message::text(ack.to_string())).await.unwrap();
    }
    let acks = wait_for(&s, "stream/acks", |v| {
        v["acks"].as_array().is_some_and(|a| a.len() == 4)
    })
    .await;
    let by = |t: &str, code: i64| {
        acks["acks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == t && a["code"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} ack with code {code}: {acks}"))
    };
    assert_eq!(by("SYSTEM", 200)["accepted"], true, "pong");
    assert_eq!(by("EVENT", 404)["accepted"], false, "default handler");
    assert_eq!(by("EVENT", 200)["accepted"], true, "event handler OK");
    assert_eq!(by("CALLBACK", 200)["accepted"], true, "callback handler");
    let c = s.admin_get("counters").await;
    assert_eq!(c["stream_pongs"], 1, "{c}");
    assert_eq!(c["stream_callbacks_pushed"], 1, "{c}");
}

#[tokio::test]
async fn disconnect_is_announced_then_the_socket_is_closed() {
    let cfg = DingTalkSandboxConfig {
        stream_disconnect_grace: Duration::from_millis(300),
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let mut ws = connect(&s, event_subs()).await;
    let r = s
        .admin(
            "stream/disconnect",
            json!({"reason": "connection is expired"}),
        )
        .await;
    assert_eq!(r["connections"].as_array().unwrap().len(), 1, "{r}");
    let f = next_of(&mut ws, "SYSTEM").await;
    assert_eq!(f["headers"]["topic"], "disconnect");
    let d: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
    assert_eq!(d["reason"], "connection is expired");
    // The SDKs ACK it; the connection no longer gets events while it waits to be closed.
    ws.send(py_ack(
        &f,
        200,
        "OK",
        "{\"reason\": \"connection is expired\"}",
    ))
    .await
    .unwrap();
    let state = s.admin_get("stream/connections").await;
    assert_eq!(state["connections"][0]["state"], "closing", "{state}");
    // Closed by the server after the grace period.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "server closed the socket");
    wait_for(&s, "stream/connections", |v| {
        v["connections"][0]["state"] == "closed"
    })
    .await;
    // A client reconnects with a new ticket and gets the events again.
    let mut ws = connect(&s, event_subs()).await;
    let tok = s.token().await;
    create_user(&s, &tok, "stream04", "13911110004").await;
    let f = next_of(&mut ws, "EVENT").await;
    assert_eq!(f["headers"]["eventType"], "user_add_org");
}

#[tokio::test]
async fn approval_and_department_events_reach_the_stream_too() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let mut ws = connect(&s, event_subs()).await;
    let tok = s.token().await;
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "流式事业部", "parent_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 0, "{r}");
    let f = next_of(&mut ws, "EVENT").await;
    assert_eq!(f["headers"]["eventType"], "org_dept_create");
    let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["deptId"], json!([r["result"]["dept_id"]]), "{data}");
    ws.send(py_ack(&f, 200, "OK", f["data"].as_str().unwrap()))
        .await
        .unwrap();
    // A connection with only a CALLBACK subscription gets no events.
    let mut cb_only = connect(
        &s,
        json!([{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]),
    )
    .await;
    let users = s.sandbox.org().users.len();
    create_user(&s, &tok, "stream05", "13911110005").await;
    assert_eq!(s.sandbox.org().users.len(), users + 1);
    let f = next_of(&mut ws, "EVENT").await;
    assert_eq!(f["headers"]["eventType"], "user_add_org");
    let nothing = tokio::time::timeout(Duration::from_millis(300), cb_only.next()).await;
    assert!(nothing.is_err(), "no frame for a CALLBACK-only connection");
}
