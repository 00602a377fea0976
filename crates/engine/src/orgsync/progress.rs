//! Live counters of a sync run. The run bumps them; whoever shows progress (the CLI's bar, the
//! stored run row) reads a [`ProgressSnapshot`] whenever it likes, so the run never waits on a
//! terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
struct Counters {
    pages: AtomicU64,
    departments: AtomicU64,
    users: AtomicU64,
    created: AtomicU64,
    updated: AtomicU64,
    unchanged: AtomicU64,
    disabled: AtomicU64,
    failed: AtomicU64,
    conflicts: AtomicU64,
}

/// Cheap to clone; every clone bumps the same counters.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counters>);

/// The counters at one moment; stored as the run's `counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// DingTalk calls answered (pages of departments, users, counts).
    pub pages: u64,
    pub departments: u64,
    pub users: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub disabled: u64,
    /// Records that went to the dead letters.
    pub failed: u64,
    pub conflicts: u64,
}

impl ProgressSnapshot {
    /// Records written to the target.
    pub fn writes(&self) -> u64 {
        self.created + self.updated + self.disabled
    }
}

macro_rules! bump {
    ($($name:ident => $field:ident),* $(,)?) => {
        $(pub fn $name(&self) { self.0.$field.fetch_add(1, Ordering::Relaxed); })*
    };
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    bump!(page => pages, department => departments, user => users, created => created,
          updated => updated, unchanged => unchanged, disabled => disabled, failed => failed);

    /// Records a plan found in step, all at once.
    pub fn add_unchanged(&self, n: usize) {
        self.0.unchanged.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_conflicts(&self, n: usize) {
        self.0.conflicts.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let c = &self.0;
        ProgressSnapshot {
            pages: c.pages.load(Ordering::Relaxed),
            departments: c.departments.load(Ordering::Relaxed),
            users: c.users.load(Ordering::Relaxed),
            created: c.created.load(Ordering::Relaxed),
            updated: c.updated.load(Ordering::Relaxed),
            unchanged: c.unchanged.load(Ordering::Relaxed),
            disabled: c.disabled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
        }
    }
}
