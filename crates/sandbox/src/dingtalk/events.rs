//! Event pushes over HTTP callback (protocol §5.1). Every event is logged (admin
//! `GET events`); with a subscription it is encrypted, signed and POSTed as
//! `<url>?signature=&msg_signature=&timestamp=&nonce=` with body `{"encrypt":…}`. A push counts
//! as delivered when the subscriber answers HTTP 200 with an encrypted `success` whose
//! signature checks; otherwise it is retried after +10 s and then +30 s (configurable), and
//! after the last failure kept for `GET /call_back/get_call_back_failed_result`, which answers
//! up to 200 and deletes what it returns. Stream-mode pushes of the same events: `stream.rs`.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::crypto::{CallbackCrypto, random16};
use super::gateway::Ctx;
use super::reply::ApiError;
use super::{CallbackConfig, DingTalkSandbox};

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub event_id: String,
    pub event_type: String,
    /// Sandbox clock, ms.
    pub event_time: i64,
    /// The decrypted body pushed to subscribers.
    pub payload: Value,
    /// `pending`, `delivered`, `failed` (kept for the failed list) or `no_subscriber`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedEvent {
    pub call_back_tag: String,
    pub event_time: i64,
    pub corpid: String,
    pub data: Value,
}

#[derive(Debug, Default)]
pub struct Events {
    pub log: Vec<EventRecord>,
    pub failed: VecDeque<FailedEvent>,
}

impl DingTalkSandbox {
    /// Records an event and pushes it to the HTTP-callback subscriber, if any. `data` holds
    /// the event-specific keys; the common keys `EventType, EventTime, CorpId, BizId,
    /// eventId` are added (§5.1 "Decrypted event payloads").
    pub fn emit(&self, event_type: &str, data: Value) {
        let now = self.now_ms();
        let event_id = uuid::Uuid::new_v4().simple().to_string();
        let mut payload = Map::new();
        payload.insert("EventType".into(), json!(event_type));
        payload.insert("EventTime".into(), json!(now));
        payload.insert("CorpId".into(), json!(self.corp_id()));
        payload.insert("BizId".into(), json!(event_id.clone()));
        payload.insert("eventId".into(), json!(event_id.clone()));
        if let Value::Object(m) = data {
            payload.extend(m);
        }
        let payload = Value::Object(payload);
        let subscriber = self.callback();
        let status = if subscriber.is_some() {
            "pending"
        } else {
            "no_subscriber"
        };
        self.events().log.push(EventRecord {
            event_id: event_id.clone(),
            event_type: event_type.to_owned(),
            event_time: now,
            payload: payload.clone(),
            status: status.into(),
            attempts: 0,
            last_error: None,
        });
        self.count(|c| c.events_emitted += 1);
        self.stream_emit(&event_id, event_type, now, &payload);
        if let Some(cb) = subscriber
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let sb = self.clone();
            rt.spawn(async move { sb.deliver(cb, event_id, payload).await });
        }
    }

    fn update_event(&self, id: &str, f: impl FnOnce(&mut EventRecord)) {
        if let Some(e) = self
            .events()
            .log
            .iter_mut()
            .rev()
            .find(|e| e.event_id == id)
        {
            f(e);
        }
    }

    async fn deliver(self, cb: CallbackConfig, event_id: String, payload: Value) {
        let delays = self.config().callback_retry_delays.clone();
        let mut last_error = String::new();
        for attempt in 0..=delays.len() {
            if attempt > 0 {
                tokio::time::sleep(delays[attempt - 1]).await;
            }
            self.count(|c| c.callback_attempts += 1);
            let result = self.push_once(&cb, &payload).await;
            self.update_event(&event_id, |e| e.attempts += 1);
            match result {
                Ok(()) => {
                    self.count(|c| c.callbacks_delivered += 1);
                    self.update_event(&event_id, |e| {
                        e.status = "delivered".into();
                        e.last_error = None;
                    });
                    return;
                }
                Err(e) => {
                    tracing::info!(target: "sandbox::dingtalk", event = %event_id, attempt, error = %e, "callback push failed");
                    last_error = e;
                }
            }
        }
        self.count(|c| c.callbacks_failed += 1);
        let event_type = payload
            .get("EventType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event_time = payload
            .get("EventTime")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.events().failed.push_back(FailedEvent {
            call_back_tag: event_type,
            event_time,
            corpid: self.corp_id().to_owned(),
            data: payload,
        });
        self.update_event(&event_id, |e| {
            e.status = "failed".into();
            e.last_error = Some(last_error);
        });
    }

    fn cipher(&self, cb: &CallbackConfig) -> Result<CallbackCrypto, String> {
        let owner = cb.owner_key.clone().unwrap_or_else(|| {
            self.config()
                .apps
                .first()
                .map(|a| a.app_key.clone())
                .unwrap_or_else(|| self.corp_id().to_owned())
        });
        CallbackCrypto::new(&cb.token, &cb.aes_key, &owner).map_err(|e| e.to_string())
    }

    /// One push; `Err` says why it does not count as delivered.
    async fn push_once(&self, cb: &CallbackConfig, payload: &Value) -> Result<(), String> {
        let crypto = self.cipher(cb)?;
        let timestamp = self.now_ms().to_string();
        let nonce = random16();
        let encrypt = crypto.encrypt(&payload.to_string());
        let sig = crypto.sign(&timestamp, &nonce, &encrypt);
        let resp = self
            .http()
            .post(&cb.url)
            .query(&[
                ("signature", sig.as_str()),
                ("msg_signature", sig.as_str()),
                ("timestamp", timestamp.as_str()),
                ("nonce", nonce.as_str()),
            ])
            .json(&json!({"encrypt": encrypt}))
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("reply is not JSON: {e}"))?;
        check_success_reply(&crypto, &body)
    }
}

/// §5.1 "Required response": `{msg_signature, timeStamp, nonce, encrypt}` where `encrypt`
/// decrypts to `success` and the signature binds the four values.
pub fn check_success_reply(crypto: &CallbackCrypto, body: &Value) -> Result<(), String> {
    let field = |k: &str, alt: &str| {
        body.get(k)
            .or_else(|| body.get(alt))
            .map(super::params::scalar_text)
            .ok_or_else(|| format!("reply lacks {k}"))
    };
    let sig = field("msg_signature", "signature")?;
    let ts = field("timeStamp", "timestamp")?;
    let nonce = field("nonce", "nonce")?;
    let encrypt = field("encrypt", "encrypt")?;
    crypto
        .verify(&sig, &ts, &nonce, &encrypt)
        .map_err(|e| e.to_string())?;
    let plain = crypto.decrypt(&encrypt).map_err(|e| e.to_string())?;
    if plain != "success" {
        return Err(format!("reply decrypts to {plain:?}, not \"success\""));
    }
    Ok(())
}

/// `GET /call_back/get_call_back_failed_result` (§5.1): up to 200, deleted once returned.
pub fn failed_result(c: &Ctx) -> Result<Value, ApiError> {
    let mut ev = c.sb.events();
    let n = ev.failed.len().min(200);
    let list: Vec<Value> = ev
        .failed
        .drain(..n)
        .map(|f| {
            let mut item = json!({
                "call_back_tag": f.call_back_tag,
                "event_time": f.event_time,
                "corpid": f.corpid,
            });
            item[f.call_back_tag.as_str()] = f.data;
            item
        })
        .collect();
    let has_more = !ev.failed.is_empty();
    Ok(json!({"has_more": has_more, "failed_list": list}))
}
