//! Pacing for calls to remote platforms: a GCRA rate per (connection, API group), a concurrency
//! cap per connection, and an adaptive step-down when the remote answers "throttled" with a slow
//! step-up afterwards. The DingTalk and Kingdee clients call through a [`Pacer`]; the engine
//! builds one per configured connection. It knows nothing about HTTP, flows or the store.

use std::time::Duration;

use async_trait::async_trait;

/// What a client holds while a call is in flight. Dropping it releases the concurrency slot.
#[must_use = "the concurrency slot is released when the permit is dropped"]
pub struct Permit {
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Permit {
    /// A permit that holds no slot (for unpaced callers).
    pub fn free() -> Self {
        Self { _slot: None }
    }

    /// A permit holding one concurrency slot.
    pub fn with_slot(slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self { _slot: Some(slot) }
    }
}

/// The gate every remote call passes through. `group` names an API group of the remote
/// (e.g. `contacts`, `workflow`, `robot` for DingTalk; `query`, `save` for Kingdee); groups
/// without their own rule share the connection's default rule.
#[async_trait]
pub trait Pacer: Send + Sync {
    /// Wait until the call may start, then hold a concurrency slot for it.
    async fn acquire(&self, group: &str) -> Permit;
    /// The remote said "too many requests" for this group; `retry_after` is its hint if any.
    fn throttled(&self, group: &str, retry_after: Option<Duration>);
    /// The call finished without a throttling answer.
    fn succeeded(&self, group: &str);
}

/// A pacer that never waits: for tests and tools that must not be paced.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unpaced;

#[async_trait]
impl Pacer for Unpaced {
    async fn acquire(&self, _group: &str) -> Permit {
        Permit::free()
    }
    fn throttled(&self, _group: &str, _retry_after: Option<Duration>) {}
    fn succeeded(&self, _group: &str) {}
}
