//! Failpoints for crash tests: `DINGBRIDGE_FAILPOINTS=approval_to_document.after_save` makes the
//! process abort (as `kill -9` would: no destructors, no graceful shutdown) the first time the
//! named point is reached. Read once; unset in production, where [`hit`] is one atomic load.
//!
//! Several points are separated by commas. `name=N` aborts on the N-th hit instead of the
//! first, so a test can let some work through before the crash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// The environment variable naming the armed points.
pub const ENV: &str = "DINGBRIDGE_FAILPOINTS";

struct Armed {
    /// Point → the hit that aborts (1 = the first).
    at: HashMap<String, u64>,
    hits: Mutex<HashMap<String, u64>>,
    any: AtomicU64,
}

static ARMED: LazyLock<Armed> = LazyLock::new(|| {
    let at = parse(&std::env::var(ENV).unwrap_or_default());
    Armed {
        any: AtomicU64::new(u64::from(!at.is_empty())),
        at,
        hits: Mutex::new(HashMap::new()),
    }
});

fn parse(spec: &str) -> HashMap<String, u64> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((name, n)) => (name.trim().to_owned(), n.trim().parse().unwrap_or(1).max(1)),
            None => (s.to_owned(), 1),
        })
        .collect()
}

/// Abort the process here if `name` is armed and this is its fatal hit.
pub fn hit(name: &str) {
    if ARMED.any.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Some(&fatal) = ARMED.at.get(name) else {
        return;
    };
    let n = {
        let mut hits = ARMED
            .hits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = hits.entry(name.to_owned()).or_insert(0);
        *n += 1;
        *n
    };
    if n == fatal {
        eprintln!("failpoint {name}: aborting the process (hit {n})");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn spec_names_points_and_hit_numbers() {
        let p = parse(" a.after_save , b=3,c=0,");
        assert_eq!(p.get("a.after_save"), Some(&1));
        assert_eq!(p.get("b"), Some(&3));
        assert_eq!(p.get("c"), Some(&1), "0 is read as the first hit");
        assert_eq!(p.len(), 3);
    }
}
