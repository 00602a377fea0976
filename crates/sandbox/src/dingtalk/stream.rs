//! Stream mode (protocol §5.2): `POST /v1.0/gateway/connections/open` hands out a ticket and
//! the sandbox's own `ws://…/connect` endpoint; the WebSocket carries downstream frames
//! (`EVENT`, `CALLBACK`, `SYSTEM` ping / disconnect) and upstream ACKs.
//!
//! Every event the sandbox emits (§5.1 list) is pushed to each app that uses Stream mode (has
//! opened a connection since the last reset), on one randomly chosen live connection of that
//! app subscribed to `EVENT` (§5.2 "each message goes to one randomly chosen connection").
//! A push counts as delivered when the client ACKs its `messageId` with `code` 200 and a
//! `data.status` other than `LATER` (§5.2 "Simulator: treat code==200 and status!=LATER as
//! delivered"; the Python SDK echoes the event data, which has no status). Otherwise it is
//! pushed again, with a new `messageId` and the same `eventId`, every `stream_ack_timeout`
//! (§7: 3 s), at most `stream_max_deliveries` times (§9.6: schedule unconfirmed; the default
//! 20 × 3 s follows the NPM SDK's "retries within 60 s"), then marked `failed`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::seq::IndexedRandom as _;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::gateway::Ctx;
use super::reply::{ApiError, request_id};
use super::{DingTalkSandbox, lock};

/// One `{type, topic}` of the open-connection body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Subscription {
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
}

#[derive(Debug, Clone)]
struct Ticket {
    app_key: String,
    subscriptions: Vec<Subscription>,
    ua: String,
    local_ip: String,
    expires_ms: i64,
}

/// What the socket task is asked to do.
#[derive(Debug)]
enum Outbound {
    Frame(String),
    Close(String),
}

/// A connection as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub app_key: String,
    pub subscriptions: Vec<Subscription>,
    pub ua: String,
    pub local_ip: String,
    /// `open`, `closing` (disconnect sent) or `closed`.
    pub state: String,
    pub connected_ms: i64,
    pub closed_ms: Option<i64>,
    pub frames_sent: u64,
    pub acks_received: u64,
}

struct Conn {
    info: ConnectionInfo,
    tx: mpsc::UnboundedSender<Outbound>,
}

/// What a `messageId` sent downstream was.
#[derive(Debug, Clone)]
struct Sent {
    kind: String,
    topic: String,
    /// Event pushes: the delivery.
    delivery_id: Option<String>,
    /// The `data` string of the frame (ping opaque check).
    data: String,
}

/// One event for one app, possibly pushed several times.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub app_key: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Pushes made (frames sent).
    pub pushes: u32,
    /// Every `messageId` used, in order.
    pub message_ids: Vec<String>,
    pub last_ack_code: Option<i64>,
    pub delivered_ms: Option<i64>,
    #[serde(skip)]
    data: String,
    #[serde(skip)]
    born_ms: i64,
}

/// One upstream ACK, as recorded for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct AckRecord {
    pub message_id: String,
    pub connection_id: String,
    pub app_key: String,
    /// Frame type the ACK answers (`EVENT`, `CALLBACK`, `SYSTEM`), empty if the messageId is
    /// unknown.
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
    pub event_id: Option<String>,
    pub code: i64,
    pub message: String,
    /// `data.status` when `data` is a JSON object with one (`SUCCESS` / `LATER`).
    pub status: Option<String>,
    /// The `data` string as sent.
    pub data: String,
    /// Event ACKs: whether it counted as delivered; ping ACKs: whether the opaque matched.
    pub accepted: bool,
    pub known: bool,
    pub time_ms: i64,
    /// The whole upstream frame.
    pub frame: Value,
}

#[derive(Default)]
pub struct Stream {
    tickets: HashMap<String, Ticket>,
    conns: HashMap<String, Conn>,
    /// Closed connections, for the admin API (most recent last, ≤ 200 kept).
    closed: Vec<ConnectionInfo>,
    /// Apps in Stream mode (opened a connection since the last reset).
    apps: HashSet<String>,
    sent: HashMap<String, Sent>,
    pub deliveries: Vec<Delivery>,
    pub acks: Vec<AckRecord>,
}

impl Stream {
    fn delivery_mut(&mut self, id: &str) -> Option<&mut Delivery> {
        self.deliveries
            .iter_mut()
            .rev()
            .find(|d| d.delivery_id == id)
    }

    /// Closes every live socket (reset).
    fn shutdown(&mut self) {
        for c in self.conns.values() {
            let _ = c.tx.send(Outbound::Close("sandbox reset".into()));
        }
    }
}

fn parse_subscriptions(v: Option<Value>) -> Result<Vec<Subscription>, ApiError> {
    let list = match v {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => return Err(ApiError::missing("subscriptions")),
        Some(_) => return Err(ApiError::invalid("subscriptions", "必须为数组")),
    };
    list.iter()
        .map(|s| {
            let kind = s.get("type").and_then(Value::as_str).unwrap_or_default();
            let topic = s.get("topic").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kind, "EVENT" | "CALLBACK" | "SYSTEM") || topic.is_empty() {
                return Err(ApiError::invalid(
                    "subscriptions",
                    "type 须为 EVENT / CALLBACK / SYSTEM，topic 不能为空",
                ));
            }
            Ok(Subscription {
                kind: kind.into(),
                topic: topic.into(),
            })
        })
        .collect()
}

/// `POST /v1.0/gateway/connections/open` (§5.2 step 1). Bad credentials: HTTP 401
/// `authFailed` (OBS in §5.2).
pub fn open_connection(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let key = p.str_opt("clientId").unwrap_or_default();
    let secret = p.str_opt("clientSecret").unwrap_or_default();
    if c.sb.app(&key).is_none_or(|a| a.app_secret != secret) {
        return Err(ApiError::v1(
            StatusCode::UNAUTHORIZED,
            "authFailed",
            "鉴权失败",
        ));
    }
    let subscriptions = parse_subscriptions(p.json_opt("subscriptions"))?;
    let ticket = uuid::Uuid::new_v4().to_string();
    let endpoint = c.sb.config().stream_endpoint.clone().unwrap_or_else(|| {
        let host = if c.host.is_empty() {
            "127.0.0.1"
        } else {
            c.host.as_str()
        };
        format!("ws://{host}/connect")
    });
    let ttl = c.sb.config().stream_ticket_ttl.as_millis() as i64;
    let expires_ms = c.sb.now_ms() + ttl;
    {
        let mut s = c.sb.stream();
        s.tickets.retain(|_, t| t.expires_ms > expires_ms - ttl);
        s.tickets.insert(
            ticket.clone(),
            Ticket {
                app_key: key.clone(),
                subscriptions,
                ua: p.str_opt("ua").unwrap_or_default(),
                local_ip: p.str_opt("localIp").unwrap_or_default(),
                expires_ms,
            },
        );
        s.apps.insert(key);
    }
    c.sb.count(|k| k.stream_tickets += 1);
    Ok(json!({"endpoint": endpoint, "ticket": ticket}))
}

fn ticket_error(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"code": "invalidTicket", "message": message, "requestid": request_id()})),
    )
        .into_response()
}

/// `GET /connect?ticket=` (§5.2 step 2): the ticket is single use and valid
/// `stream_ticket_ttl` (90 s); otherwise HTTP 401 `invalidTicket` before the upgrade.
pub async fn connect(
    State(sb): State<DingTalkSandbox>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(ticket) = q.get("ticket").filter(|t| !t.is_empty()) else {
        return ticket_error("缺少 ticket");
    };
    let Ok(ws) = ws else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "invalidRequest", "message": "需要 WebSocket 升级请求", "requestid": request_id()})),
        )
            .into_response();
    };
    let now = sb.now_ms();
    let t = sb.stream().tickets.remove(ticket.as_str());
    let Some(t) = t else {
        return ticket_error("ticket 不存在或已使用");
    };
    if t.expires_ms <= now {
        return ticket_error("ticket 已过期");
    }
    let connection_id = uuid::Uuid::new_v4().simple().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    sb.stream().conns.insert(
        connection_id.clone(),
        Conn {
            info: ConnectionInfo {
                connection_id: connection_id.clone(),
                app_key: t.app_key,
                subscriptions: t.subscriptions,
                ua: t.ua,
                local_ip: t.local_ip,
                state: "open".into(),
                connected_ms: now,
                closed_ms: None,
                frames_sent: 0,
                acks_received: 0,
            },
            tx,
        },
    );
    sb.count(|k| k.stream_connections += 1);
    ws.on_upgrade(move |socket| run_socket(sb, connection_id, socket, rx))
}

async fn run_socket(
    sb: DingTalkSandbox,
    id: String,
    mut socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    let ping_every = sb.config().stream_ping_interval;
    let mut ticker = ping_every.map(|d| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    if socket.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        break;
                    }
                }
                other => {
                    let reason = match other {
                        Some(Outbound::Close(r)) if !r.trim().is_empty() => r,
                        _ => "closed".to_owned(),
                    };
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from(reason) })))
                        .await;
                    break;
                }
            },
            inc = socket.recv() => match inc {
                Some(Ok(Message::Text(t))) => sb.on_upstream(&id, t.as_str()),
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(t) = std::str::from_utf8(&b) {
                        sb.on_upstream(&id, t);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => {
                sb.stream_ping(Some(&id));
            }
        }
    }
    let now = sb.now_ms();
    let mut s = sb.stream();
    if let Some(mut c) = s.conns.remove(&id) {
        c.info.state = "closed".into();
        c.info.closed_ms = Some(now);
        s.closed.push(c.info);
        let n = s.closed.len();
        if n > 200 {
            s.closed.drain(..n - 200);
        }
    }
}

impl DingTalkSandbox {
    pub(crate) fn stream(&self) -> std::sync::MutexGuard<'_, Stream> {
        lock(&self.inner.stream)
    }

    pub(crate) fn reset_stream(&self) {
        let mut s = self.stream();
        s.shutdown();
        *s = Stream::default();
    }

    /// Sends one frame on a connection; the `messageId` is remembered for its ACK.
    fn send_frame(
        &self,
        s: &mut Stream,
        connection_id: &str,
        kind: &str,
        mut headers: Map<String, Value>,
        data: String,
        delivery_id: Option<String>,
    ) -> Option<String> {
        let conn = s.conns.get_mut(connection_id)?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let topic = headers
            .get("topic")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        headers.insert("messageId".into(), json!(message_id));
        headers.insert("contentType".into(), json!("application/json"));
        headers.insert("time".into(), json!(self.now_ms().to_string()));
        headers.insert("connectionId".into(), json!(connection_id));
        let frame = json!({"specVersion": "1.0", "type": kind, "headers": headers, "data": data});
        if conn.tx.send(Outbound::Frame(frame.to_string())).is_err() {
            return None;
        }
        conn.info.frames_sent += 1;
        s.sent.insert(
            message_id.clone(),
            Sent {
                kind: kind.into(),
                topic,
                delivery_id,
                data,
            },
        );
        self.count(|k| k.stream_frames_sent += 1);
        Some(message_id)
    }

    /// Starts Stream deliveries of one emitted event (called by `emit`). `payload` is the
    /// HTTP-mode body; the Stream `data` is the event keys without the HTTP common keys (§5.2:
    /// "Stream event data uses camelCase", e.g. `{"timeStamp":…,"userId":[…]}`).
    pub(crate) fn stream_emit(
        &self,
        event_id: &str,
        event_type: &str,
        born_ms: i64,
        payload: &Value,
    ) {
        let mut data = payload.as_object().cloned().unwrap_or_default();
        for k in ["EventType", "EventTime", "CorpId", "BizId", "eventId"] {
            data.remove(k);
        }
        let data = Value::Object(data).to_string();
        let apps: Vec<String> = {
            let s = self.stream();
            let mut a: Vec<String> = s.apps.iter().cloned().collect();
            a.sort();
            a
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for app in apps {
            let delivery_id = uuid::Uuid::new_v4().simple().to_string();
            self.stream().deliveries.push(Delivery {
                delivery_id: delivery_id.clone(),
                event_id: event_id.into(),
                event_type: event_type.into(),
                app_key: app,
                status: "pending".into(),
                pushes: 0,
                message_ids: Vec::new(),
                last_ack_code: None,
                delivered_ms: None,
                data: data.clone(),
                born_ms,
            });
            let sb = self.clone();
            rt.spawn(async move { sb.run_delivery(delivery_id).await });
        }
    }

    async fn run_delivery(self, delivery_id: String) {
        let timeout = self.config().stream_ack_timeout;
        let max = self.config().stream_max_deliveries.max(1);
        for _ in 0..max {
            if !self.push_delivery(&delivery_id) {
                return; // delivered or gone (reset)
            }
            tokio::time::sleep(timeout).await;
        }
        let mut s = self.stream();
        if let Some(d) = s.delivery_mut(&delivery_id)
            && d.status == "pending"
        {
            d.status = "failed".into();
            drop(s);
            self.count(|k| k.stream_deliveries_failed += 1);
        }
    }

    /// One push of a pending delivery; `false` once there is nothing left to do.
    fn push_delivery(&self, delivery_id: &str) -> bool {
        let corp = self.corp_id().to_owned();
        let mut s = self.stream();
        let Some(d) = s.delivery_mut(delivery_id).cloned() else {
            return false;
        };
        if d.status != "pending" {
            return false;
        }
        let candidates: Vec<String> = s
            .conns
            .values()
            .filter(|c| {
                c.info.app_key == d.app_key
                    && c.info.state == "open"
                    && c.info.subscriptions.iter().any(|sub| {
                        sub.kind == "EVENT" && (sub.topic == "*" || sub.topic == d.event_type)
                    })
            })
            .map(|c| c.info.connection_id.clone())
            .collect();
        let Some(conn) = candidates.choose(&mut rand::rng()).cloned() else {
            return true; // nobody listening now: try again after the timeout
        };
        let mut headers = Map::new();
        headers.insert("appId".into(), json!(d.app_key));
        headers.insert("topic".into(), json!("*"));
        headers.insert("eventType".into(), json!(d.event_type));
        headers.insert("eventId".into(), json!(d.event_id));
        headers.insert("eventCorpId".into(), json!(corp));
        headers.insert("eventBornTime".into(), json!(d.born_ms.to_string()));
        headers.insert("eventUnifiedAppId".into(), json!(d.app_key));
        let sent = self.send_frame(
            &mut s,
            &conn,
            "EVENT",
            headers,
            d.data.clone(),
            Some(d.delivery_id.clone()),
        );
        if let Some(mid) = sent
            && let Some(dm) = s.delivery_mut(delivery_id)
        {
            dm.pushes += 1;
            dm.message_ids.push(mid);
            let again = dm.pushes > 1;
            drop(s);
            self.count(|k| {
                k.stream_events_pushed += 1;
                if again {
                    k.stream_redeliveries += 1;
                }
            });
        }
        true
    }

    /// An upstream text frame: an ACK (`{code, headers{messageId}, message, data}`) or noise.
    fn on_upstream(&self, connection_id: &str, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            tracing::info!(target: "sandbox::dingtalk", connection = connection_id, "stream: upstream frame is not JSON");
            self.count(|k| k.stream_bad_frames += 1);
            return;
        };
        let message_id = frame
            .pointer("/headers/messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let code = frame.get("code").and_then(|c| {
            c.as_i64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        });
        let (Some(code), false) = (code, message_id.is_empty()) else {
            tracing::info!(target: "sandbox::dingtalk", connection = connection_id, "stream: upstream frame is not an ACK");
            self.count(|k| k.stream_bad_frames += 1);
            return;
        };
        let data = match frame.get("data") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        let data_json: Option<Value> = serde_json::from_str(&data).ok();
        let status = data_json
            .as_ref()
            .and_then(|d| d.get("status"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let message = frame
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let now = self.now_ms();

        let mut s = self.stream();
        let app_key = s
            .conns
            .get_mut(connection_id)
            .map(|c| {
                c.info.acks_received += 1;
                c.info.app_key.clone()
            })
            .unwrap_or_default();
        let sent = s.sent.get(&message_id).cloned();
        let mut record = AckRecord {
            message_id: message_id.clone(),
            connection_id: connection_id.into(),
            app_key,
            kind: String::new(),
            topic: String::new(),
            event_id: None,
            code,
            message,
            status: status.clone(),
            data: data.clone(),
            accepted: false,
            known: sent.is_some(),
            time_ms: now,
            frame,
        };
        let mut delivered = false;
        let mut pong = false;
        if let Some(sent) = sent {
            record.kind = sent.kind.clone();
            record.topic = sent.topic.clone();
            match (sent.kind.as_str(), sent.delivery_id) {
                ("EVENT", Some(did)) => {
                    let ok = code == 200 && status.as_deref() != Some("LATER");
                    record.accepted = ok;
                    if let Some(d) = s.delivery_mut(&did) {
                        record.event_id = Some(d.event_id.clone());
                        d.last_ack_code = Some(code);
                        if ok && d.status == "pending" {
                            d.status = "delivered".into();
                            d.delivered_ms = Some(now);
                            delivered = true;
                        }
                    }
                }
                ("SYSTEM", _) if sent.topic == "ping" => {
                    let want = serde_json::from_str::<Value>(&sent.data).ok();
                    record.accepted = code == 200 && data_json.is_some() && data_json == want;
                    pong = record.accepted;
                }
                _ => record.accepted = code == 200,
            }
        }
        let accepted = record.accepted;
        let kind = record.kind.clone();
        s.acks.push(record);
        drop(s);
        self.count(|k| {
            k.stream_acks += 1;
            if delivered {
                k.stream_events_delivered += 1;
            }
            if kind == "EVENT" && !accepted {
                k.stream_acks_rejected += 1;
            }
            if pong {
                k.stream_pongs += 1;
            }
        });
    }

    fn target_conns(&self, connection_id: Option<&str>) -> Vec<String> {
        let s = self.stream();
        s.conns
            .values()
            .filter(|c| c.info.state == "open")
            .filter(|c| connection_id.is_none_or(|id| id == c.info.connection_id))
            .map(|c| c.info.connection_id.clone())
            .collect()
    }

    /// Sends a `SYSTEM` `ping` with a fresh `opaque` (§5.2) to one or every open connection;
    /// answers the messageIds.
    pub fn stream_ping(&self, connection_id: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for id in self.target_conns(connection_id) {
            let mut headers = Map::new();
            headers.insert("topic".into(), json!("ping"));
            let data = json!({"opaque": uuid::Uuid::new_v4().to_string()}).to_string();
            let mut s = self.stream();
            if let Some(m) = self.send_frame(&mut s, &id, "SYSTEM", headers, data, None) {
                out.push(m);
            }
        }
        self.count(|k| k.stream_pings += out.len() as u64);
        out
    }

    /// Sends a `SYSTEM` `disconnect` (§5.2) and closes the socket `stream_disconnect_grace`
    /// later (10 s); no more events go to that connection.
    pub fn stream_disconnect(&self, connection_id: Option<&str>, reason: &str) -> Vec<String> {
        let grace = self.config().stream_disconnect_grace;
        let mut out = Vec::new();
        for id in self.target_conns(connection_id) {
            let mut headers = Map::new();
            headers.insert("topic".into(), json!("disconnect"));
            let data = json!({"reason": reason}).to_string();
            let mut s = self.stream();
            if self
                .send_frame(&mut s, &id, "SYSTEM", headers, data, None)
                .is_none()
            {
                continue;
            }
            if let Some(c) = s.conns.get_mut(&id) {
                c.info.state = "closing".into();
                let tx = c.tx.clone();
                let reason = reason.to_owned();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        tokio::time::sleep(grace).await;
                        let _ = tx.send(Outbound::Close(reason));
                    });
                }
            }
            out.push(id);
        }
        self.count(|k| k.stream_disconnects += out.len() as u64);
        out
    }

    /// Pushes a `CALLBACK` frame (bot message, card callback…) on one open connection of
    /// `app_key` (default: any app) subscribed to `topic`; fire and forget (§5.2 "Bot
    /// messages are … not redelivered"). Answers the messageId.
    pub fn stream_callback(
        &self,
        topic: &str,
        data: &Value,
        app_key: Option<&str>,
    ) -> Option<String> {
        let id = {
            let s = self.stream();
            let candidates: Vec<String> = s
                .conns
                .values()
                .filter(|c| {
                    c.info.state == "open"
                        && app_key.is_none_or(|a| a == c.info.app_key)
                        && c.info
                            .subscriptions
                            .iter()
                            .any(|sub| sub.kind == "CALLBACK" && sub.topic == topic)
                })
                .map(|c| c.info.connection_id.clone())
                .collect();
            candidates.choose(&mut rand::rng()).cloned()?
        };
        let mut s = self.stream();
        let app = s.conns.get(&id).map(|c| c.info.app_key.clone())?;
        let mut headers = Map::new();
        headers.insert("appId".into(), json!(app));
        headers.insert("topic".into(), json!(topic));
        let text = match data {
            Value::String(t) => t.clone(),
            v => v.to_string(),
        };
        let m = self.send_frame(&mut s, &id, "CALLBACK", headers, text, None);
        drop(s);
        if m.is_some() {
            self.count(|k| k.stream_callbacks_pushed += 1);
        }
        m
    }

    /// Open and recently closed connections.
    pub fn stream_connections(&self) -> Vec<ConnectionInfo> {
        let s = self.stream();
        let mut v: Vec<ConnectionInfo> = s.closed.clone();
        let mut open: Vec<ConnectionInfo> = s.conns.values().map(|c| c.info.clone()).collect();
        open.sort_by_key(|c| c.connected_ms);
        v.extend(open);
        v
    }

    pub fn stream_acks(&self) -> Vec<AckRecord> {
        self.stream().acks.clone()
    }

    pub fn stream_deliveries(&self) -> Vec<Delivery> {
        self.stream().deliveries.clone()
    }
}

/// Default for `stream_ack_timeout` (§7 / DOC appendix-b: 3 s Stream push timeout).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(3);
