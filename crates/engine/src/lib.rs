//! The engine: configuration, the job worker pool, the retry policy, the scheduler, and (with
//! later issues) mapping rules, flows, reconciliation and the identity map. It drives the store
//! and the connectors; it does not know about HTTP servers (no axum here).

pub mod approvals;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod failpoint;
pub mod jobs;
pub mod node;
pub mod orgsync;
pub mod retry;
pub mod scheduler;
pub mod webhook;
pub mod worker;
