//! Pacing for calls to remote platforms: a GCRA rate per (connection, API group), a concurrency
//! cap per connection, and an adaptive step-down when the remote answers "throttled" with a slow
//! step-up afterwards. The DingTalk and Kingdee clients call through a [`Pacer`]; the engine
//! builds one per configured connection. It knows nothing about HTTP, flows or the store.

use std::time::Duration;

use async_trait::async_trait;

mod limiter;
mod rules;

pub use limiter::{ConnectionLimiter, LimiterRegistry, MAX_PAUSE, metric_names};
pub use rules::{
    AdaptiveSettings, ConnectionLimits, DINGTALK_IP_QUOTA_PER_SECOND,
    DINGTALK_ROBOT_QUOTA_PER_MINUTE, DingTalkEdition, LimitRule, LimitsError, PRESET_HEADROOM,
    PRESET_HEADROOM_STRICT, Requirement,
};

/// What a client holds while a call is in flight. Dropping it releases the concurrency slot.
#[must_use = "the concurrency slot is released when the permit is dropped"]
pub struct Permit {
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    _in_flight: Option<limiter::InFlight>,
}

impl Permit {
    /// A permit that holds no slot (for unpaced callers).
    pub fn free() -> Self {
        Self {
            _slot: None,
            _in_flight: None,
        }
    }

    /// A permit holding one concurrency slot.
    pub fn with_slot(slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self {
            _slot: Some(slot),
            _in_flight: None,
        }
    }

    pub(crate) fn tracked(
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        in_flight: limiter::InFlight,
    ) -> Self {
        Self {
            _slot: slot,
            _in_flight: Some(in_flight),
        }
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
