//! Wall-clock time in the store's unit (Unix milliseconds).

use std::time::{SystemTime, UNIX_EPOCH};

use store::Millis;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
