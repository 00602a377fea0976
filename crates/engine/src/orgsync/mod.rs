//! `org_sync`: departments and employees of a DingTalk organisation kept in step with a target
//! (Kingdee, an HTTP eHR, a SQL table): full sync from a complete snapshot, incremental sync from
//! contact events, scheduled reconciliation with a diff, and the identity table as a side effect.
//!
//! - `source`: the walk of the DingTalk organisation and its completeness (gaps);
//! - `target`: the [`target::OrgTarget`] trait and its Kingdee, HTTP and SQL implementations;
//! - `plan`: the reconciliation diff under the master-source policy;
//! - `sync`: one run (full, reconcile, dry run), stored with its counts and status;
//! - `recipe`: the job kinds, the event routes, and building all of it from the config.

pub mod options;
pub mod plan;
pub mod progress;
pub mod recipe;
pub mod source;
pub mod sync;
pub mod target;

pub use options::OrgSyncOptions;
pub use progress::{Progress, ProgressSnapshot};
pub use recipe::{DEFAULT_SCHEDULE, RECIPE, SetupError, build_syncs, register};
pub use sync::{OrgSync, RunReport, RunSummary, SyncMode};
