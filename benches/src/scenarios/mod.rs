//! One module per scenario; each has `Args` (its command line) and `run`.

pub mod approvals;
pub mod dingtalk_walk;
pub mod kingdee_batchsave;
pub mod org_sync;
pub mod queue;
