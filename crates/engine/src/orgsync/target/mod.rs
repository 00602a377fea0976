//! Where an org sync writes: the [`OrgTarget`] trait and its three implementations, Kingdee
//! (`BD_Department` / `BD_Empinfo` by BatchSave), a generic HTTP eHR, and a SQL table. A target
//! receives records already mapped (field name → value, in the mapping's order) and answers per
//! record, so one bad record fails alone while the rest of its batch proceeds.

pub mod http;
pub mod kingdee;
pub mod sql;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What kind of entity a record is. Departments are written before users, parents before
/// children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Department,
    User,
}

impl Entity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Entity::Department => "department",
            Entity::User => "user",
        }
    }
}

/// One mapped record on its way to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub entity: Entity,
    /// The DingTalk id it came from (dept id or userid), for links and the transfer log.
    pub source_key: String,
    /// The target's business key: the value of the mapping's key field (e.g. `FStaffNumber`,
    /// the SQL key column, the eHR's employee number).
    pub key: String,
    /// Mapped fields in the mapping's order (the key field included).
    pub fields: Map<String, Value>,
}

/// A record as the target holds it now (reconciliation reads these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    pub key: String,
    /// The target's own id, when it has one apart from the key (Kingdee FID, eHR id).
    pub target_id: Option<String>,
    /// Whether the record is disabled / forbidden / marked left in the target.
    pub disabled: bool,
    /// The mapped fields as the target holds them (only fields the mapping writes).
    pub fields: Map<String, Value>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Written (created or updated); the target's id for the record (its key when it has no
    /// other id).
    Written { target_id: String, created: bool },
    /// The target refused this record and only this record (validation, a missing reference):
    /// it goes to the dead letters with the reason; the rest of the batch is unaffected.
    Rejected {
        field: Option<String>,
        reason: String,
    },
}

/// A failure of a whole call: nothing in the batch can be assumed written. It is a job's
/// error as it stands: transport, 5xx, throttling and lost sessions are retryable (upserts by
/// key make a half-applied batch safe to send again); configuration and permission problems
/// are permanent.
pub type TargetError = crate::jobs::JobError;

/// A system org records are written to.
#[async_trait]
pub trait OrgTarget: Send + Sync {
    /// For logs and the transfer log: `kingdee`, `http`, `sql`.
    fn kind(&self) -> &'static str;

    /// A full or reconcile run begins: drop what the target remembers of the remote's state.
    async fn start_run(&self) {}

    /// Create or update every record (an upsert by `key`). The answer has one outcome per
    /// record, in order. Must be idempotent: the same batch sent twice leaves the same state.
    async fn upsert(
        &self,
        entity: Entity,
        records: &[TargetRecord],
    ) -> Result<Vec<RecordOutcome>, TargetError>;

    /// Disable (or delete, per the target's policy) the records with these keys. One outcome
    /// per key, in order; a key the target does not have is `Written` (nothing to do).
    async fn disable(
        &self,
        entity: Entity,
        keys: &[String],
    ) -> Result<Vec<RecordOutcome>, TargetError>;

    /// Every record of `entity` the target holds now, with the given mapped fields, for
    /// reconciliation. `Ok(None)` when this target cannot list its records (then
    /// reconciliation compares against what the hub last wrote, from its links).
    async fn read_all(
        &self,
        entity: Entity,
        fields: &[String],
    ) -> Result<Option<Vec<TargetRow>>, TargetError>;
}
