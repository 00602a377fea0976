//! Kingdee Cloud Galaxy (金蝶云星空 / K3Cloud) client: v8 signature headers, LoginBySign and
//! LoginByAppSecret, one sliding session per connection, every DynamicFormService operation, the
//! response envelope, and the SSO link signer. It knows nothing about flows or the store.
//!
//! Map (one module per capability; the reference is `shared/protocols/kingdee.md`, whose source
//! tags the comments cite):
//! - [`config`]: [`KingdeeConfig`] and [`AuthMode`];
//! - [`ids`]: typed ids [`FormId`], [`BillNo`], [`FNumber`], [`EntityId`];
//! - [`sign`]: signature headers, LoginBySign `sign`, the ordinal sorted hash;
//! - [`envelope`]: `Result.ResponseStatus`, [`MsgCode`], `LoginResult`, `response_error:`;
//! - [`error`]: [`KingdeeError`] with [`KingdeeError::is_retryable`];
//! - [`session`]: the shared single-flight session (re-login once on MsgCode 1);
//! - [`client`]: [`KingdeeClient`]: HTTP, pacing through [`limits::Pacer`], MsgCode 14 backoff;
//! - [`ops`]: Save, BatchSave, Draft, Submit, Audit, UnAudit, Delete, View, ExecuteBillQuery
//!   (also as a paged stream), BillQuery, ExcuteOperation, QueryBusinessInfo, Push, WorkflowAudit;
//! - [`model`]: the order-keeping [`Model`] builder and `{"FNumber":…}` references;
//! - [`sso`]: SSO `ud=` links (V2/V3 SHA-1, V4 SHA-256) and the SSO logout.
//!
//! Invariants: never a login per call (one session per connection, shared by all clones);
//! every HTTP call passes through the pacer; `Model` keeps the caller's field order.

pub mod client;
pub mod config;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod model;
pub mod ops;
pub mod session;
pub mod sign;
pub mod sso;

pub use client::{Clock, FixedClock, KingdeeClient, KingdeeClientBuilder, SystemClock};
pub use config::{AuthMode, KingdeeConfig};
pub use envelope::{
    LoginResultType, MsgCode, OperationResult, ResponseStatus, RowMessage, SuccessEntity,
};
pub use error::KingdeeError;
pub use ids::{BillNo, EntityId, FNumber, FormId};
pub use model::{Model, number_ref, staff_ref};
pub use ops::{
    ApprovalType, BatchSaveReport, Op, PushRequest, QueryRequest, RowFailure, SaveOptions,
    Selection, ViewRequest, WorkflowAuditRequest,
};
pub use sso::{SsoLink, SsoRequest, SsoSigner, SsoVersion};
