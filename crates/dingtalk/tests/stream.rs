//! Stream mode against a local gateway (wiremock) and WebSocket server (tokio-tungstenite).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dingtalk::stream::{AckFrame, DownstreamFrame, HandlerOutcome, StreamClient, StreamHandler};
use dingtalk::{Credentials, DingTalkConfig};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct SlowHandler {
    done: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl StreamHandler for SlowHandler {
    async fn handle(&self, frame: DownstreamFrame) -> HandlerOutcome {
        self.seen.fetch_add(1, Ordering::SeqCst);
        match frame.headers.topic.as_str() {
            "/v1.0/im/bot/messages/get" => HandlerOutcome::Callback(json!("OK")),
            _ => {
                tokio::time::sleep(Duration::from_millis(300)).await; // "store it durably"
                self.done.store(true, Ordering::SeqCst);
                HandlerOutcome::Success
            }
        }
    }
}

fn frame(kind: &str, topic: &str, id: &str, data: serde_json::Value) -> Message {
    let mut headers = json!({"topic": topic, "messageId": id, "contentType": "application/json", "time": "1700000000000"});
    if kind == "EVENT" {
        headers["eventType"] = json!("user_add_org");
        headers["eventId"] = json!(format!("ev-{id}"));
    }
    Message::Text(
        json!({"specVersion": "1.0", "type": kind, "headers": headers, "data": data.to_string()})
            .to_string()
            .into(),
    )
}

async fn next_ack<S>(ws: &mut S) -> AckFrame
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("ack in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn dispatches_acks_after_handler_and_reconnects_on_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/gateway/connections/open"))
        .and(body_partial_json(json!({"clientId": "dingsimappkey0000001", "clientSecret": "s3cr3t", "subscriptions": [{"type": "EVENT", "topic": "*"}, {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"endpoint": format!("ws://{ws_addr}/connect"), "ticket": "tk+1/="})))
        .expect(2..)
        .mount(&gateway)
        .await;

    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let done_srv = done.clone();
    let server = tokio::spawn(async move {
        // Connection 1: ping, event, bot callback, disconnect.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(
            tcp,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().query(), Some("ticket=tk%2B1%2F%3D"));
                Ok(resp)
            },
        )
        .await
        .unwrap();
        ws.send(frame(
            "EVENT",
            "*",
            "m-ev-1",
            json!({"timeStamp": "1700000000000", "userId": ["张三01"]}),
        ))
        .await
        .unwrap();
        ws.send(frame(
            "SYSTEM",
            "ping",
            "m-ping-1",
            json!({"opaque": "op-123"}),
        ))
        .await
        .unwrap();
        // The ping is answered at once, while the event handler is still running.
        let ack = next_ack(&mut ws).await;
        assert_eq!(
            (ack.code, ack.headers.message_id.as_str()),
            (200, "m-ping-1")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ack.data).unwrap(),
            json!({"opaque": "op-123"})
        );
        assert!(!done_srv.load(Ordering::SeqCst));
        let ack = next_ack(&mut ws).await;
        assert_eq!(ack.headers.message_id, "m-ev-1");
        assert!(
            done_srv.load(Ordering::SeqCst),
            "event ACK only after the handler returned"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ack.data).unwrap()["status"],
            "SUCCESS"
        );
        ws.send(frame(
            "CALLBACK",
            "/v1.0/im/bot/messages/get",
            "m-cb-1",
            json!({"msgtype": "text", "text": {"content": "你好"}}),
        ))
        .await
        .unwrap();
        let ack = next_ack(&mut ws).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ack.data).unwrap(),
            json!({"response": "OK"})
        );
        ws.send(frame(
            "SYSTEM",
            "disconnect",
            "m-dc-1",
            json!({"reason": "connection is expired"}),
        ))
        .await
        .unwrap();
        let ack = next_ack(&mut ws).await;
        assert_eq!(ack.headers.message_id, "m-dc-1");
        // Connection 2: the client came back with a new ticket.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(frame("EVENT", "*", "m-ev-2", json!({"deptId": [123]})))
            .await
            .unwrap();
        let ack = next_ack(&mut ws).await;
        assert_eq!((ack.code, ack.headers.message_id.as_str()), (200, "m-ev-2"));
    });

    let cfg = DingTalkConfig::new(
        "dingcorp",
        Credentials::new("dingsimappkey0000001", "s3cr3t"),
    )
    .with_bases(&gateway.uri(), &gateway.uri())
    .unwrap();
    let client = StreamClient::new(&cfg)
        .unwrap()
        .with_subscriptions(vec![
            dingtalk::stream::Subscription::all_events(),
            dingtalk::stream::Subscription::callback("/v1.0/im/bot/messages/get"),
        ])
        .with_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let handler = Arc::new(SlowHandler {
        done,
        seen: seen.clone(),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        client
            .run(handler, async {
                let _ = stop_rx.await;
            })
            .await
    });
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("scenario in time")
        .unwrap();
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn bad_credentials_stop_the_client() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/gateway/connections/open"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"requestid": "r", "code": "authFailed", "message": "鉴权失败"}),
            ),
        )
        .mount(&gateway)
        .await;
    let cfg = DingTalkConfig::new("dingcorp", Credentials::new("bad", "bad"))
        .with_bases(&gateway.uri(), &gateway.uri())
        .unwrap();
    let client = StreamClient::new(&cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(20));
    let handler = Arc::new(SlowHandler {
        done: Arc::default(),
        seen: Arc::default(),
    });
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        client.run(handler, std::future::pending()),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(dingtalk::Error::PermissionDenied { .. }))),
        "{r:?}"
    );
    assert_eq!(
        gateway.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );
}
