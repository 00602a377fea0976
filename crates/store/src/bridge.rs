//! The records of the approval bridge (issue 6): API keys of in-house systems (stored hashed),
//! idempotency keys of their requests, the approvals they started, and the webhook outbox that
//! carries each approval's outcome to them in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Millis;

/// A new API key. Only the hash of the secret is stored; `prefix` is its public part, shown in
/// listings and used to find the key (`dbk_<prefix>_<secret>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    /// e.g. `approvals:write`, `approvals:read`, `deliveries:write`.
    pub scopes: Vec<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// What [`crate::Store::claim_idempotency_key`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was free (or its earlier use expired): it is ours now, in progress.
    Claimed,
    /// Another request with this key is still being answered.
    InProgress { request_hash: String },
    /// The key was used before and answered: replay that answer (if `request_hash` matches).
    Completed {
        request_hash: String,
        status_code: i32,
        response: Value,
    },
}

/// A new approval started by an in-house system through the REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    /// The hub's id, e.g. `apv_01J…`.
    pub id: String,
    pub flow: String,
    /// The key that started it (`None` when started from the CLI or a test).
    pub api_key_id: Option<i64>,
    pub process_code: String,
    /// The DingTalk userid of the originator (after identity resolution).
    pub originator: String,
    /// The caller's own reference (e.g. its expense claim number), if it gave one.
    pub business_key: Option<String>,
    /// The request as received (form values in the caller's plain JSON).
    pub request: Value,
    pub created_at: Millis,
}

/// Where an approval is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Stored; DingTalk has not (yet) confirmed the instance.
    Pending,
    Running,
    Completed,
    Terminated,
    /// DingTalk refused to create it.
    Failed,
}

impl ApprovalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Running => "running",
            ApprovalStatus::Completed => "completed",
            ApprovalStatus::Terminated => "terminated",
            ApprovalStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "running" => ApprovalStatus::Running,
            "completed" => ApprovalStatus::Completed,
            "terminated" => ApprovalStatus::Terminated,
            "failed" => ApprovalStatus::Failed,
            _ => return None,
        })
    }
    /// No further change is expected.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            ApprovalStatus::Completed | ApprovalStatus::Terminated | ApprovalStatus::Failed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    #[serde(flatten)]
    pub fields: NewApproval,
    pub instance_id: Option<String>,
    pub status: ApprovalStatus,
    /// `agree` / `refuse` once completed.
    pub result: Option<String>,
    /// The last instance read from DingTalk (tasks, operation records), or the error of a
    /// failed creation.
    pub snapshot: Option<Value>,
    pub updated_at: Millis,
}

/// A change to an approval. `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApprovalUpdate {
    pub id: String,
    pub instance_id: Option<String>,
    pub status: Option<ApprovalStatus>,
    pub result: Option<String>,
    pub snapshot: Option<Value>,
    pub now: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub flow: Option<String>,
    pub status: Option<ApprovalStatus>,
    pub result: Option<String>,
    pub process_code: Option<String>,
    pub business_key: Option<String>,
    /// Only those started with this key.
    pub api_key_id: Option<i64>,
    /// Newest first (by `created_at`, then `id`), strictly older than this id (paging).
    pub before: Option<String>,
    /// At most this many (0 = 100).
    pub limit: i64,
}

/// A message for an in-house system's webhook, in the outbox until delivered. Messages of one
/// `subject` (an approval) are delivered one at a time in `seq` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWebhookMessage {
    /// The ordering unit, e.g. the hub approval id.
    pub subject: String,
    /// The HTTP connection (and path) it goes to, e.g. `erp:/hooks/approvals`.
    pub endpoint: String,
    /// Unique and stable (the `webhook-id` header): the same change found twice (an event and
    /// the backfill poll) is one message.
    pub message_id: String,
    /// e.g. `approval.task.finished`.
    pub event_type: String,
    pub payload: Value,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookMessageStatus {
    Pending,
    Delivered,
    /// Attempts exhausted; waits for a redelivery (and holds back later messages of its
    /// subject until then).
    Dead,
}

impl WebhookMessageStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookMessageStatus::Pending => "pending",
            WebhookMessageStatus::Delivered => "delivered",
            WebhookMessageStatus::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => WebhookMessageStatus::Pending,
            "delivered" => WebhookMessageStatus::Delivered,
            "dead" => WebhookMessageStatus::Dead,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookMessage {
    pub id: i64,
    #[serde(flatten)]
    pub fields: NewWebhookMessage,
    /// 1, 2, 3 … per subject, in the order the messages were added.
    pub seq: i64,
    pub status: WebhookMessageStatus,
    /// Delivery attempts made so far (each is also a row in `deliveries`).
    pub attempts: i32,
    pub delivered_at: Option<Millis>,
}

/// What adding a message did.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookMessageAdded {
    pub message: WebhookMessage,
    /// No earlier message of its subject is waiting: the caller enqueues its delivery now.
    /// Otherwise the delivery of the one before it will hand over to it.
    pub is_head: bool,
}
