//! `dingtalk.event`: the job every stored inbound DingTalk event gets. It marks the event
//! processed and records it in the transfer log. Flows that subscribe to event types (org sync,
//! approvals) hook in here with their issues; until then an event is recorded, not lost.

use async_trait::async_trait;
use serde::Deserialize;
use store::{Job, NewTransfer};

use super::{JobContext, JobEffects, JobError, JobHandler};
use crate::clock::now_ms;

pub const KIND: &str = "dingtalk.event";

/// The job's payload: which inbox row to handle.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct InboxRef {
    pub connection: String,
    pub event_id: String,
}

pub struct InboxEvent;

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
        Ok(JobEffects {
            transfers: vec![NewTransfer {
                flow: "inbox".into(),
                source_key: format!("{}:{}", r.connection, r.event_id),
                target_key: None,
                job_id: Some(job.id),
                attempt: job.attempts,
                request: Some(serde_json::json!({ "event_type": event.event_type })),
                response: None,
                outcome: "recorded".into(),
                error: None,
                started_at: started,
                duration_ms: now_ms() - started,
            }],
            processed_events: vec![(r.connection, r.event_id)],
            ..JobEffects::default()
        })
    }
}
