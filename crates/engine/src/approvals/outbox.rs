//! The webhook outbox: messages to in-house systems, delivered one subject (approval) at a time
//! in order, signed per Standard Webhooks, retried on the flow's schedule (DESIGN §6), each
//! attempt a row in `deliveries`.
//!
//! Order without locks: only the first waiting message of a subject has a delivery job. A
//! delivered message hands over to the next one in the same transaction as its ack
//! ([`store::StoreTx::finish_webhook_message`]), and a message added behind a waiting one waits
//! for that hand-over. A message whose attempts run out is `dead` and holds its successors back
//! until a person redelivers it ([`redeliver`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{
    Job, Millis, NewDelivery, NewJob, Store, StoreError, WebhookMessage, WebhookMessageStatus,
};

use crate::clock::now_ms;
use crate::config::{Config, ConnectionSettings, HttpConnection};
use crate::jobs::{JobContext, JobEffects, JobError, JobHandler, OutboxEffect};
use crate::webhook::WebhookSigner;

/// The job kind that delivers one message.
pub const KIND: &str = "webhook.deliver";

/// The payload of a delivery job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRef {
    pub message_id: String,
}

/// The job that delivers `message` (its flow's retry schedule applies). `generation` tells a
/// redelivery's job from the first one (idempotency keys are unique for ever).
pub fn delivery_job(
    message: &WebhookMessage,
    flow: Option<&str>,
    generation: u32,
    now: Millis,
) -> NewJob {
    let key = if generation == 0 {
        format!("webhook:{}", message.fields.message_id)
    } else {
        format!("webhook:{}:{generation}", message.fields.message_id)
    };
    let mut job = NewJob::new(
        KIND,
        json!({ "message_id": message.fields.message_id }),
        now,
    )
    .idempotency_key(key);
    if let Some(flow) = flow {
        job = job.flow(flow);
    }
    job
}

/// One HTTP receiver: base URL, `Authorization`, and the Standard Webhooks key.
pub struct Receiver {
    client: reqwest::Client,
    base_url: String,
    authorization: Option<HeaderValue>,
    signer: Option<WebhookSigner>,
}

impl Receiver {
    pub fn new(name: &str, conn: &HttpConnection) -> Result<Self, String> {
        let authorization = match &conn.auth_header {
            None => None,
            Some(secret) => {
                let mut v = HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
                    format!("connection `{name}`: auth_header is not a valid HTTP header value")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let signer = conn
            .hmac_secret
            .as_ref()
            .map(|s| WebhookSigner::from_secret(s.expose_secret()))
            .transpose()
            .map_err(|e| format!("connection `{name}`: hmac_secret: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(conn.timeout())
            .build()
            .map_err(|e| format!("connection `{name}`: {e}"))?;
        Ok(Self {
            client,
            base_url: conn.base_url.trim_end_matches('/').to_owned(),
            authorization,
            signer,
        })
    }

    fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.base_url.clone()
        } else {
            format!("{}/{}", self.base_url, path.trim_start_matches('/'))
        }
    }
}

/// Every HTTP connection of the configuration as a receiver.
pub fn receivers(config: &Config) -> Result<HashMap<String, Arc<Receiver>>, String> {
    let mut out = HashMap::new();
    for c in config.connections.values() {
        if let ConnectionSettings::Http(h) = &c.settings {
            out.insert(c.name.clone(), Arc::new(Receiver::new(&c.name, h)?));
        }
    }
    Ok(out)
}

/// `webhook.deliver`.
pub struct DeliverWebhook {
    pub receivers: Arc<HashMap<String, Arc<Receiver>>>,
}

/// What one attempt got.
struct Attempt {
    status: Option<u16>,
    body: String,
    retry_after: Option<Duration>,
    error: Option<String>,
}

impl DeliverWebhook {
    async fn post(&self, receiver: &Receiver, path: &str, message: &WebhookMessage) -> Attempt {
        let body = serde_json::to_vec(&message.fields.payload).unwrap_or_default();
        let mut req = receiver
            .client
            .post(receiver.url(path))
            .header("content-type", "application/json");
        if let Some(a) = &receiver.authorization {
            req = req.header("authorization", a.clone());
        }
        if let Some(signer) = &receiver.signer {
            let ts = u64::try_from(now_ms() / 1000).unwrap_or(0);
            for (name, value) in signer.headers(&message.fields.message_id, ts, &body) {
                req = req.header(name, value);
            }
        } else {
            req = req.header("webhook-id", message.fields.message_id.clone());
        }
        match req.body(body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut body = resp.text().await.unwrap_or_default();
                body.truncate(body.floor_char_boundary(2000));
                Attempt {
                    status: Some(status),
                    body,
                    retry_after,
                    error: None,
                }
            }
            Err(e) => Attempt {
                status: None,
                body: String::new(),
                retry_after: None,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Split `connection:path`.
fn split_endpoint(endpoint: &str) -> (&str, &str) {
    endpoint.split_once(':').unwrap_or((endpoint, ""))
}

#[async_trait]
impl JobHandler for DeliverWebhook {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let r: DeliveryRef = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::permanent(format!("webhook.deliver payload: {e}")))?;
        let Some(message) = ctx.store.get_webhook_message(&r.message_id).await? else {
            return Err(JobError::permanent(format!(
                "webhook message {} is not in the outbox",
                r.message_id
            )));
        };
        if message.status == WebhookMessageStatus::Delivered {
            // Delivered by an earlier job (a redelivery raced the first one): nothing to do.
            return Ok(JobEffects::default());
        }
        let (connection, path) = split_endpoint(&message.fields.endpoint);
        let receiver = self.receivers.get(connection).ok_or_else(|| {
            JobError::permanent(format!(
                "webhook endpoint `{}`: no HTTP connection `{connection}` is configured",
                message.fields.endpoint
            ))
        })?;
        let started = now_ms();
        let clock = Instant::now();
        let attempt = self.post(receiver, path, &message).await;
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempts = message.attempts + 1;
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let outcome = match (ok, attempt.status) {
            (true, _) => "delivered".to_owned(),
            (false, Some(s)) => format!("http_{s}"),
            (false, None) => "transport_error".to_owned(),
        };
        let delivery = NewDelivery {
            endpoint: message.fields.endpoint.clone(),
            message_id: message.fields.message_id.clone(),
            attempt: attempts,
            status_code: attempt.status.map(i32::from),
            response: Some(attempt.error.clone().unwrap_or(attempt.body.clone())),
            outcome,
            created_at: started,
            duration_ms,
        };
        if ok {
            return Ok(JobEffects {
                deliveries: vec![delivery],
                outbox: vec![OutboxEffect::Delivered {
                    message_id: message.fields.message_id.clone(),
                    attempts,
                    flow: job.flow.clone(),
                }],
                ..JobEffects::default()
            });
        }
        // A failed attempt is recorded now: the job's effects are only written on success.
        let last = job.attempts >= job.max_attempts;
        let mut tx = ctx.store.begin().await?;
        tx.record_delivery(&delivery).await?;
        tx.finish_webhook_message(
            &message.fields.message_id,
            if last {
                WebhookMessageStatus::Dead
            } else {
                WebhookMessageStatus::Pending
            },
            attempts,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        let why = match (attempt.status, &attempt.error) {
            (Some(s), _) => format!(
                "webhook {} answered HTTP {s}: {}",
                message.fields.endpoint,
                attempt.body.chars().take(200).collect::<String>()
            ),
            (None, Some(e)) => format!("webhook {} unreachable: {e}", message.fields.endpoint),
            (None, None) => format!("webhook {} failed", message.fields.endpoint),
        };
        Err(JobError::Retryable {
            message: why,
            retry_after: attempt.retry_after,
        })
    }
}

/// Why a redelivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no webhook message `{0}`")]
    NotFound(String),
    /// An earlier message of the same subject is not delivered: sending this one first would
    /// break their order. `earlier` is the one to redeliver first (when `dead`) or to wait for.
    #[error("message `{earlier}` of the same approval comes first and is {}", status.as_str())]
    Behind {
        earlier: String,
        status: WebhookMessageStatus,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a redelivery did.
#[derive(Debug, Clone)]
pub struct Redelivered {
    pub message: WebhookMessage,
    /// The delivery job it got.
    pub job: store::Enqueued,
    /// The flow whose retry schedule applies (the approval's, when the subject is one).
    pub flow: Option<String>,
}

/// Deliver a message again because a person asked (`actor`, recorded in the audit log in the
/// same transaction): it becomes pending and gets a job of its own. Refused while an earlier
/// message of its subject is undelivered, which would break their order; a dead message's
/// successors follow it once it is delivered.
pub async fn redeliver(
    store: &dyn Store,
    message_id: &str,
    actor: &str,
    now: Millis,
) -> Result<Redelivered, RedeliverError> {
    let Some(current) = store.get_webhook_message(message_id).await? else {
        return Err(RedeliverError::NotFound(message_id.into()));
    };
    let subject = current.fields.subject.clone();
    if let Some(earlier) = store
        .list_webhook_messages(&subject)
        .await?
        .into_iter()
        .find(|m| m.seq < current.seq && m.status != WebhookMessageStatus::Delivered)
    {
        return Err(RedeliverError::Behind {
            earlier: earlier.fields.message_id,
            status: earlier.status,
        });
    }
    let flow = store.get_approval(&subject).await?.map(|a| a.fields.flow);
    let mut tx = store.begin().await?;
    let message = match tx.reset_webhook_message(message_id, now).await {
        Ok(m) => m,
        Err(StoreError::NotFound(_)) => return Err(RedeliverError::NotFound(message_id.into())),
        Err(e) => return Err(e.into()),
    };
    // A fresh key per redelivery: the first job's key is taken for ever.
    let generation = u32::try_from(now.rem_euclid(1_000_000_000))
        .unwrap_or(1)
        .max(1);
    let job = tx
        .enqueue(&delivery_job(&message, flow.as_deref(), generation, now))
        .await?;
    tx.append_audit(&store::NewAudit {
        actor: actor.to_owned(),
        action: "webhook.redeliver".into(),
        target: message_id.to_owned(),
        detail: json!({
            "subject": subject,
            "seq": current.seq,
            "endpoint": current.fields.endpoint,
            "previous_status": current.status.as_str(),
            "attempts": current.attempts,
            "flow": flow,
            "job": job.id,
        }),
        at: now,
    })
    .await?;
    tx.commit().await?;
    Ok(Redelivered { message, job, flow })
}
