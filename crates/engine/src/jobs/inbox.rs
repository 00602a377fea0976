//! The inbox: how an inbound DingTalk event becomes durable ([`store_event`], used by the HTTP
//! callback endpoint and the Stream consumer alike), and `dingtalk.event`, the job every stored
//! event gets. That job hands the event to the flows subscribed to it ([`EventSubscriber`]:
//! org sync for contact events, later approvals), enqueueing their jobs in the same
//! transaction that marks the event processed; an event no flow wants is recorded, not lost.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Event, Job, Millis, NewEvent, NewJob, NewTransfer, Store, StoreError};

use super::{JobContext, JobEffects, JobError, JobHandler};
use crate::clock::now_ms;

pub const KIND: &str = "dingtalk.event";

/// The job's payload: which inbox row to handle.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct InboxRef {
    pub connection: String,
    pub event_id: String,
}

/// Store an inbound event and its `dingtalk.event` job in one transaction. `Ok(false)` when
/// the event id was stored before (a re-push): acknowledge it again, store nothing.
pub async fn store_event(
    store: &dyn Store,
    connection: &str,
    event_id: &str,
    event_type: &str,
    payload: Value,
    now: Millis,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let new = tx
        .insert_event(&NewEvent {
            connection: connection.to_owned(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            payload,
            received_at: now,
        })
        .await?;
    if new {
        let job = NewJob::new(
            KIND,
            json!({ "connection": connection, "event_id": event_id }),
            now,
        )
        .idempotency_key(format!("event:{connection}:{event_id}"));
        tx.enqueue(&job).await?;
    }
    tx.commit().await?;
    if new {
        crate::worker::wake_workers(1);
    }
    Ok(new)
}

/// A flow that wants some inbound events: it turns one into the jobs that act on it.
pub trait EventSubscriber: Send + Sync {
    /// The jobs for `event` (none when the event is not for this flow).
    fn jobs_for(&self, event: &Event, now: Millis) -> Vec<NewJob>;
}

#[derive(Default, Clone)]
pub struct InboxEvent {
    subscribers: Vec<Arc<dyn EventSubscriber>>,
}

impl InboxEvent {
    pub fn new(subscribers: Vec<Arc<dyn EventSubscriber>>) -> Self {
        Self { subscribers }
    }
}

#[async_trait]
impl JobHandler for InboxEvent {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let started = now_ms();
        let r: InboxRef = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::permanent(format!("dingtalk.event payload: {e}")))?;
        let event = ctx
            .store
            .get_event(&r.connection, &r.event_id)
            .await?
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "event {} of connection `{}` is not in the inbox",
                    r.event_id, r.connection
                ))
            })?;
        let enqueue: Vec<NewJob> = self
            .subscribers
            .iter()
            .flat_map(|s| s.jobs_for(&event, started))
            .collect();
        let routed: Vec<Value> = enqueue
            .iter()
            .map(|j| json!({ "kind": j.kind, "flow": j.flow }))
            .collect();
        Ok(JobEffects {
            transfers: vec![NewTransfer {
                flow: "inbox".into(),
                source_key: format!("{}:{}", r.connection, r.event_id),
                target_key: None,
                job_id: Some(job.id),
                attempt: job.attempts,
                request: Some(json!({ "event_type": event.event_type })),
                response: Some(json!({ "jobs": routed })),
                outcome: if enqueue.is_empty() {
                    "recorded".into()
                } else {
                    "routed".into()
                },
                error: None,
                started_at: started,
                duration_ms: now_ms() - started,
            }],
            enqueue,
            processed_events: vec![(r.connection, r.event_id)],
            ..JobEffects::default()
        })
    }
}
