//! Wall-clock time in the store's unit (Unix milliseconds).

pub use store::now_ms;
