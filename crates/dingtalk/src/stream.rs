//! Stream mode (protocol §5.2): an outbound WebSocket instead of a public callback URL.
//!
//! 1. `POST {api}/v1.0/gateway/connections/open` (anonymous) with `clientId`, `clientSecret`,
//!    `subscriptions` → `{endpoint, ticket}` (ticket valid 90 s, single use — DP).
//! 2. `GET {endpoint}?ticket={ticket}` WebSocket (PY-STREAM URL-encodes the ticket).
//! 3. Downstream frames `{specVersion, type: EVENT|CALLBACK|SYSTEM, headers, data}` where
//!    `data` is a JSON *string*; upstream ACKs `{code, headers{contentType,messageId}, message,
//!    data}` on the same socket (DP, PY-STREAM `AckMessage`; vectors `stream_ack`).
//! 4. EVENT/CALLBACK frames go to the [`StreamHandler`]; the ACK is sent **only after the
//!    handler returns** (DESIGN §3 rule 1: nothing is acknowledged before it is durable).
//!    Handlers run concurrently; unacknowledged events are redelivered by DingTalk.
//! 5. SYSTEM `ping` → ACK echoing `data` (JAVA-STREAM `context.replay(data)`); SYSTEM
//!    `disconnect` → ACK (PY/GO do), finish in-flight handlers, then open a **new** connection
//!    (JAVA-STREAM `DefaultSessionPool`); the server closes the socket 10 s later (DP).
//! 6. Keep-alive: a WebSocket ping every 60 s (PY-STREAM), the session is dropped when nothing
//!    arrives for `keepalive + pong_timeout`; reconnect with backoff 1 s doubling to 60 s plus
//!    jitter (GO-STREAM: 3 s doubling to 60 s + jitter).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::client::{Family, Http, from_value};
use crate::config::{Credentials, DingTalkConfig, join};
use crate::error::{Error, Result};

/// Pacer group of the gateway call.
pub const GROUP_STREAM: &str = "stream";

/// The `type` of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameType {
    /// `SYSTEM`: ping, disconnect.
    System,
    /// `EVENT`: subscription events (topic `*`).
    Event,
    /// `CALLBACK`: bot messages, card callbacks, …
    Callback,
    /// Anything else (kept verbatim).
    Other(String),
}

impl FrameType {
    fn as_str(&self) -> &str {
        match self {
            FrameType::System => "SYSTEM",
            FrameType::Event => "EVENT",
            FrameType::Callback => "CALLBACK",
            FrameType::Other(s) => s,
        }
    }
}

impl Serialize for FrameType {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FrameType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "SYSTEM" => FrameType::System,
            "EVENT" => FrameType::Event,
            "CALLBACK" => FrameType::Callback,
            _ => FrameType::Other(s),
        })
    }
}

/// Headers of a downstream frame (PY-STREAM `Headers.from_dict`; values are strings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameHeaders {
    /// Topic (`ping`, `disconnect`, `*`, `/v1.0/im/bot/messages/get`, …).
    #[serde(default)]
    pub topic: String,
    /// Message id, echoed in the ACK.
    #[serde(default)]
    pub message_id: String,
    /// Content type (`application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Send time, ms as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// App id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Connection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Event type (`user_add_org`, `bpms_instance_change`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event id (dedupe key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Corp of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_corp_id: Option<String>,
    /// When the event was born, ms as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_born_time: Option<String>,
    /// Unified app id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_unified_app_id: Option<String>,
    /// Any other header, kept verbatim.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

/// A downstream frame (server → client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownstreamFrame {
    /// `"1.0"`.
    #[serde(rename = "specVersion", default)]
    pub spec_version: String,
    /// EVENT / CALLBACK / SYSTEM.
    #[serde(rename = "type")]
    pub frame_type: FrameType,
    /// Headers.
    pub headers: FrameHeaders,
    /// The payload: a JSON document as a string.
    #[serde(default)]
    pub data: String,
}

impl DownstreamFrame {
    /// `data` parsed as JSON.
    pub fn data_json(&self) -> Result<Value> {
        serde_json::from_str(&self.data).map_err(|e| Error::decode(format!("frame data: {e}")))
    }
}

/// Headers of an ACK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckHeaders {
    /// `application/json`.
    pub content_type: String,
    /// The acknowledged frame's `messageId`.
    pub message_id: String,
}

/// An upstream ACK (client → server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckFrame {
    /// 200 ok, 400, 404 not implemented, 500 internal (DP).
    pub code: u16,
    /// Headers.
    pub headers: AckHeaders,
    /// A message.
    #[serde(default)]
    pub message: String,
    /// A JSON document as a string.
    #[serde(default)]
    pub data: String,
}

/// What a handler made of an EVENT or CALLBACK frame.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerOutcome {
    /// Stored / processed: ACK 200 `{"status":"SUCCESS"}` (EVENT) or `{"response":null}`.
    Success,
    /// Not now: ACK 500 `{"status":"LATER"}` so DingTalk redelivers (GO-STREAM).
    Later(String),
    /// A CALLBACK's response payload: ACK 200 `{"response": …}` (DP, PY-STREAM).
    Callback(Value),
    /// This topic is not handled: ACK 404 "not implement" (PY-STREAM default handler).
    NotImplemented,
}

/// Build the ACK for a frame and a handler outcome (SYSTEM frames echo their `data`).
pub fn build_ack(frame: &DownstreamFrame, outcome: &HandlerOutcome) -> AckFrame {
    let headers = AckHeaders {
        content_type: "application/json".into(),
        message_id: frame.headers.message_id.clone(),
    };
    let json = |v: Value| v.to_string();
    let (code, message, data) = match (&frame.frame_type, outcome) {
        (FrameType::System, _) => (200, "OK".to_owned(), frame.data.clone()),
        (_, HandlerOutcome::NotImplemented) => (
            404,
            "not implement".to_owned(),
            json(serde_json::json!({"status": "LATER", "message": "not implement"})),
        ),
        (_, HandlerOutcome::Later(why)) => (
            500,
            why.clone(),
            json(serde_json::json!({"status": "LATER", "message": why})),
        ),
        (FrameType::Callback, HandlerOutcome::Callback(v)) => (
            200,
            String::new(),
            json(serde_json::json!({ "response": v })),
        ),
        (FrameType::Callback, HandlerOutcome::Success) => (
            200,
            String::new(),
            json(serde_json::json!({ "response": null })),
        ),
        (_, HandlerOutcome::Success | HandlerOutcome::Callback(_)) => (
            200,
            "OK".to_owned(),
            json(serde_json::json!({"status": "SUCCESS", "message": "OK"})),
        ),
    };
    AckFrame {
        code,
        headers,
        message,
        data,
    }
}

/// Receives EVENT and CALLBACK frames. Return only once the frame is durable: the ACK is sent
/// after this returns.
#[async_trait]
pub trait StreamHandler: Send + Sync + 'static {
    /// Handle one frame.
    async fn handle(&self, frame: DownstreamFrame) -> HandlerOutcome;
}

/// One subscription of the open-connection call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `EVENT` or `CALLBACK`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `*` for events; e.g. `/v1.0/im/bot/messages/get` for callbacks.
    pub topic: String,
}

impl Subscription {
    /// All events chosen in the console (`EVENT` / `*`).
    pub fn all_events() -> Self {
        Self {
            kind: "EVENT".into(),
            topic: "*".into(),
        }
    }
    /// A callback topic.
    pub fn callback(topic: impl Into<String>) -> Self {
        Self {
            kind: "CALLBACK".into(),
            topic: topic.into(),
        }
    }
}

/// The gateway's answer: where to connect, with which ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConnectionTicket {
    /// `wss://…/connect`.
    pub endpoint: String,
    /// Single-use ticket, valid 90 s.
    pub ticket: String,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The server asked us to go (`disconnect`): open a new connection right away.
    Disconnect(String),
    /// The socket closed.
    Closed,
    /// Shut down on request.
    Shutdown,
}

/// Stream-mode client of one app.
#[derive(Clone)]
pub struct StreamClient {
    http: Http,
    api_base: Url,
    credentials: Credentials,
    subscriptions: Vec<Subscription>,
    ua: String,
    local_ip: Option<String>,
    keepalive: Duration,
    pong_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    drain_timeout: Duration,
}

impl std::fmt::Debug for StreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamClient")
            .field("client_id", &self.credentials.client_id)
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

impl StreamClient {
    /// A Stream client for the configured app, subscribed to all events, unpaced.
    pub fn new(config: &DingTalkConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(Error::transport)?;
        Ok(Self {
            http: Http::new(client, Arc::new(limits::Unpaced)),
            api_base: config.api_base.clone(),
            credentials: config.credentials.clone(),
            subscriptions: vec![Subscription::all_events()],
            ua: format!("dingbridge/{}", env!("CARGO_PKG_VERSION")),
            local_ip: None,
            keepalive: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(8),
        })
    }

    /// Replace the subscriptions.
    pub fn with_subscriptions(mut self, subs: Vec<Subscription>) -> Self {
        self.subscriptions = subs;
        self
    }
    /// Pace the gateway call.
    pub fn with_pacer(mut self, pacer: Arc<dyn limits::Pacer>) -> Self {
        self.http.pacer = pacer;
        self
    }
    /// Report this local IP (`localIp`).
    pub fn with_local_ip(mut self, ip: impl Into<String>) -> Self {
        self.local_ip = Some(ip.into());
        self
    }
    /// WebSocket ping interval and how long to wait for any traffic after it.
    pub fn with_keepalive(mut self, every: Duration, pong_timeout: Duration) -> Self {
        self.keepalive = every;
        self.pong_timeout = pong_timeout;
        self
    }
    /// Reconnect backoff bounds.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Step 1: ask the gateway for an endpoint and a ticket.
    pub async fn open_connection(&self) -> Result<ConnectionTicket> {
        let mut body = serde_json::json!({
            "clientId": self.credentials.client_id.as_str(),
            "clientSecret": self.credentials.client_secret.expose_secret(),
            "subscriptions": self.subscriptions,
            "ua": self.ua,
        });
        if let (Some(ip), Some(obj)) = (&self.local_ip, body.as_object_mut()) {
            obj.insert("localIp".into(), Value::String(ip.clone()));
        }
        let req = self
            .http
            .client
            .post(join(&self.api_base, "/v1.0/gateway/connections/open"))
            .header("accept", "application/json")
            .json(&body);
        // Bad credentials answer 401 `authFailed` (OBS zfanswer/dify-on-dingtalk#28): that is
        // a configuration error, not a stale token, so it must not be retried forever.
        let v = match self.http.call(GROUP_STREAM, Family::V1, req).await {
            Err(Error::TokenInvalid { code, message }) => {
                return Err(Error::PermissionDenied {
                    code,
                    message: format!("stream credentials rejected: {message}"),
                });
            }
            other => other?,
        };
        from_value("connections/open", v)
    }

    /// Run until `shutdown` completes: connect, dispatch, reconnect with backoff.
    pub async fn run<H, F>(&self, handler: Arc<H>, shutdown: F) -> Result<()>
    where
        H: StreamHandler,
        F: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        let mut delay = self.backoff_initial;
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                r = self.session(handler.clone()) => r,
                () = &mut shutdown => return Ok(()),
            };
            let wait = match outcome {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Disconnect(reason)) => {
                    tracing::info!(%reason, "stream: server asked to reconnect");
                    delay = self.backoff_initial;
                    Duration::ZERO
                }
                Ok(SessionEnd::Closed) => {
                    tracing::warn!("stream: connection closed");
                    if started.elapsed() > self.backoff_max {
                        delay = self.backoff_initial;
                    }
                    let w = jitter(delay);
                    delay = (delay * 2).min(self.backoff_max);
                    w
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stream: connection failed");
                    if !e.is_retryable() && !matches!(e, Error::Decode { .. }) {
                        return Err(e);
                    }
                    let w = e.retry_after().unwrap_or(delay).max(delay);
                    delay = (delay * 2).min(self.backoff_max);
                    jitter(w)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// One connection: open, connect, dispatch until the socket ends or the server asks us
    /// to go.
    pub async fn session<H: StreamHandler>(&self, handler: Arc<H>) -> Result<SessionEnd> {
        let t = self.open_connection().await?;
        let sep = if t.endpoint.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{sep}ticket={}",
            t.endpoint,
            urlencoding::encode(&t.ticket)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(Error::transport)?;
        tracing::info!(endpoint = %t.endpoint, "stream: connected");
        let (mut sink, mut source) = ws.split();
        let mut tasks: JoinSet<AckFrame> = JoinSet::new();
        let mut ping = tokio::time::interval(self.keepalive);
        ping.tick().await; // the first tick is immediate
        let mut last_seen = Instant::now();
        let mut leaving: Option<String> = None;

        loop {
            if let Some(reason) = &leaving {
                // Finish in-flight handlers (their ACKs still count), then go.
                let deadline = tokio::time::sleep(self.drain_timeout);
                tokio::pin!(deadline);
                while !tasks.is_empty() {
                    tokio::select! {
                        Some(done) = tasks.join_next() => {
                            if let Ok(ack) = done {
                                send_ack(&mut sink, &ack).await?;
                            }
                        }
                        () = &mut deadline => break,
                    }
                }
                let _ = sink.send(Message::Close(None)).await;
                return Ok(SessionEnd::Disconnect(reason.clone()));
            }
            tokio::select! {
                msg = source.next() => {
                    let msg = match msg {
                        None => return Ok(SessionEnd::Closed),
                        Some(Err(e)) => return Err(Error::transport(e)),
                        Some(Ok(m)) => m,
                    };
                    last_seen = Instant::now();
                    match msg {
                        Message::Text(text) => {
                            let frame: DownstreamFrame = match serde_json::from_str(text.as_str()) {
                                Ok(f) => f,
                                Err(e) => {
                                    tracing::warn!(error = %e, "stream: undecodable frame");
                                    continue;
                                }
                            };
                            match frame.frame_type {
                                FrameType::System => {
                                    let ack = build_ack(&frame, &HandlerOutcome::Success);
                                    send_ack(&mut sink, &ack).await?;
                                    if frame.headers.topic == "disconnect" {
                                        let reason = frame
                                            .data_json()
                                            .ok()
                                            .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
                                            .unwrap_or_default();
                                        leaving = Some(reason);
                                    }
                                }
                                _ => {
                                    let h = handler.clone();
                                    tasks.spawn(async move {
                                        let outcome = h.handle(frame.clone()).await;
                                        build_ack(&frame, &outcome)
                                    });
                                }
                            }
                        }
                        Message::Close(_) => return Ok(SessionEnd::Closed),
                        // Pings are answered by tungstenite; pongs only refresh `last_seen`.
                        _ => {}
                    }
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    match done {
                        Ok(ack) => send_ack(&mut sink, &ack).await?,
                        Err(e) => tracing::error!(error = %e, "stream: handler panicked; no ACK, DingTalk will redeliver"),
                    }
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > self.keepalive + self.pong_timeout {
                        return Err(Error::Transport { message: "stream: keep-alive timed out".into(), source: None });
                    }
                    sink.send(Message::Ping(Vec::new().into())).await.map_err(Error::transport)?;
                }
            }
        }
    }
}

async fn send_ack<S>(sink: &mut S, ack: &AckFrame) -> Result<()>
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(ack).map_err(|e| Error::decode(e.to_string()))?;
    sink.send(Message::Text(text.into()))
        .await
        .map_err(Error::transport)
}

fn jitter(d: Duration) -> Duration {
    let extra = rand::rng().random_range(0.0..0.2);
    d + d.mul_f64(extra)
}
