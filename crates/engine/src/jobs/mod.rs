//! What a job kind is: a [`JobHandler`] does the work and returns the [`JobEffects`] to commit;
//! the worker writes those effects in the same transaction as the ack, so a job's effect is
//! recorded exactly when the job is done (a crash before the commit leaves neither).

pub mod inbox;
pub mod selftest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::approvals::outbox;
use store::{
    ApprovalUpdate, Checkpoint, ErrorClass, Job, Link, NewDelivery, NewIdentity, NewJob,
    NewTransfer, NewWebhookMessage, Store, StoreError, StoreTx, WebhookMessageStatus,
};

/// Why an attempt failed, classed for the retry policy (DESIGN §6).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Transport, 5xx, throttling, lost session, expired token: worth another attempt.
    #[error("{message}")]
    Retryable {
        message: String,
        /// The remote's hint, e.g. a throttling answer's wait.
        retry_after: Option<Duration>,
    },
    /// Validation, mapping, permission, exhausted quota: a person must act; dead letter now.
    #[error("{message}")]
    Permanent { message: String },
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent {
            message: message.into(),
        }
    }
    pub fn class(&self) -> ErrorClass {
        match self {
            JobError::Retryable { .. } => ErrorClass::Retryable,
            JobError::Permanent { .. } => ErrorClass::Permanent,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JobError::Retryable { retry_after, .. } => *retry_after,
            JobError::Permanent { .. } => None,
        }
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) | StoreError::InvalidState(_) | StoreError::NotFound(_) => {
                JobError::permanent(e.to_string())
            }
            _ => JobError::retryable(e.to_string()),
        }
    }
}

impl From<dingtalk::Error> for JobError {
    fn from(e: dingtalk::Error) -> Self {
        if e.is_retryable() {
            JobError::Retryable {
                message: format!("DingTalk: {e}"),
                retry_after: e.retry_after(),
            }
        } else {
            JobError::permanent(format!("DingTalk: {e}"))
        }
    }
}

impl From<kingdee::KingdeeError> for JobError {
    fn from(e: kingdee::KingdeeError) -> Self {
        if e.is_retryable() {
            JobError::retryable(format!("Kingdee: {e}"))
        } else {
            JobError::permanent(format!("Kingdee: {e}"))
        }
    }
}

/// Records a successful attempt leaves behind, committed atomically with the ack.
#[derive(Debug, Default, Clone)]
pub struct JobEffects {
    pub transfers: Vec<NewTransfer>,
    pub links: Vec<Link>,
    pub checkpoints: Vec<Checkpoint>,
    pub identities: Vec<NewIdentity>,
    /// Follow-up jobs (e.g. the next saga step).
    pub enqueue: Vec<NewJob>,
    /// Inbox events this job has handled: (connection, event id).
    pub processed_events: Vec<(String, String)>,
    /// Approvals whose state changed.
    pub approvals: Vec<ApprovalUpdate>,
    /// Webhook attempts made.
    pub deliveries: Vec<NewDelivery>,
    /// Messages added to or delivered from the webhook outbox.
    pub outbox: Vec<OutboxEffect>,
}

/// A change to the webhook outbox; writing it enqueues the delivery that comes next, so the
/// messages of one subject go out one at a time, in order.
#[derive(Debug, Clone)]
pub enum OutboxEffect {
    /// A new message; delivered at once when nothing of its subject waits before it.
    Add {
        message: NewWebhookMessage,
        /// The flow whose retry schedule its delivery follows.
        flow: Option<String>,
    },
    /// A message was delivered after `attempts`; the next one of its subject goes next.
    Delivered {
        message_id: String,
        attempts: i32,
        flow: Option<String>,
    },
}

impl JobEffects {
    /// Write every effect into `tx` (the caller acks and commits).
    pub async fn write(&self, tx: &mut dyn StoreTx, now: store::Millis) -> Result<(), StoreError> {
        for t in &self.transfers {
            tx.append_transfer(t).await?;
        }
        for l in &self.links {
            tx.upsert_link(l).await?;
        }
        for c in &self.checkpoints {
            tx.put_checkpoint(c).await?;
        }
        for i in &self.identities {
            tx.upsert_identity(i).await?;
        }
        for j in &self.enqueue {
            tx.enqueue(j).await?;
        }
        for (connection, event_id) in &self.processed_events {
            tx.mark_event_processed(connection, event_id, now).await?;
        }
        for a in &self.approvals {
            tx.update_approval(a).await?;
        }
        for d in &self.deliveries {
            tx.record_delivery(d).await?;
        }
        for o in &self.outbox {
            match o {
                OutboxEffect::Add { message, flow } => {
                    if let Some(added) = tx.add_webhook_message(message).await?
                        && added.is_head
                    {
                        let job = outbox::delivery_job(&added.message, flow.as_deref(), 0, now);
                        tx.enqueue(&job).await?;
                    }
                }
                OutboxEffect::Delivered {
                    message_id,
                    attempts,
                    flow,
                } => {
                    let next = tx
                        .finish_webhook_message(
                            message_id,
                            WebhookMessageStatus::Delivered,
                            *attempts,
                            now,
                        )
                        .await?;
                    if let Some(next) = next {
                        let job = outbox::delivery_job(&next, flow.as_deref(), 0, now);
                        tx.enqueue(&job).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a handler gets besides the job.
#[derive(Clone)]
pub struct JobContext {
    pub store: Arc<dyn Store>,
    /// Which worker runs the job (for logs).
    pub worker: String,
}

/// The code behind one job kind.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Do the work of one attempt. Side effects on remote systems must be idempotent or
    /// guarded by a link (DESIGN §3 rule 2): the attempt may be repeated after a crash.
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError>;
}

/// Job kind → handler. A flow recipe is a job kind a `[flows.*]` table may name; other kinds
/// (e.g. `dingtalk.event`) are enqueued by the hub itself.
#[derive(Default, Clone)]
pub struct HandlerRegistry {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
    recipes: std::collections::BTreeSet<String>,
    /// Flows that want inbound events (the `dingtalk.event` handler hands events to them).
    subscribers: Vec<Arc<dyn inbox::EventSubscriber>>,
    /// The approval flows (the REST API starts approvals through them).
    approvals: crate::approvals::recipe::ApprovalFlows,
}

/// Why the job kinds of a configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    OrgSync(#[from] crate::orgsync::SetupError),
    #[error(transparent)]
    Approvals(#[from] crate::approvals::recipe::ApprovalSetupError),
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kinds every node has.
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register_recipe(selftest::KIND, Arc::new(selftest::SelfTest));
        r.register(inbox::KIND, Arc::new(inbox::InboxEvent::default()));
        r
    }

    /// Every kind a node runs for `config`: the built-ins and each recipe's kinds, with the
    /// clients of the configured connections paced by `limiters`.
    pub async fn for_config(
        config: &crate::config::Config,
        store: Arc<dyn Store>,
        limiters: &limits::LimiterRegistry,
    ) -> Result<Self, SetupError> {
        let mut r = Self::with_builtins();
        let syncs = crate::orgsync::build_syncs(config, Arc::clone(&store), limiters).await?;
        crate::orgsync::register(&mut r, syncs);
        let approvals = crate::approvals::recipe::build_approval_flows(config, store, limiters)?;
        crate::approvals::recipe::register(&mut r, config, &approvals)?;
        r.approvals = approvals;
        Ok(r)
    }

    /// The approval flows built by [`HandlerRegistry::for_config`].
    pub fn approval_flows(&self) -> &crate::approvals::recipe::ApprovalFlows {
        &self.approvals
    }

    /// Hand inbound events to these flows too.
    pub fn add_event_subscribers(&mut self, subscribers: Vec<Arc<dyn inbox::EventSubscriber>>) {
        self.subscribers.extend(subscribers);
        self.register(
            inbox::KIND,
            Arc::new(inbox::InboxEvent::new(self.subscribers.clone())),
        );
    }

    pub fn register(&mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(kind.into(), handler);
    }

    /// Register a kind that flows may run as their recipe.
    pub fn register_recipe(&mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) {
        let kind = kind.into();
        self.recipes.insert(kind.clone());
        self.register(kind, handler);
    }

    /// The recipes a flow may name.
    pub fn recipes(&self) -> impl Iterator<Item = &str> {
        self.recipes.iter().map(String::as_str)
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}
