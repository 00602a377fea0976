//! One error type callers can match on: the cases that drive behaviour get their own variant;
//! everything else is `Database` with the driver's message.

/// Errors from a [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    /// The job's lease was taken over (expired and reclaimed, or released): our work on it must
    /// not be committed.
    #[error("lease lost for job {0}: it expired or was claimed by another worker")]
    LeaseLost(i64),
    /// The record is not in a state that allows this operation.
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("database unreachable: {0}")]
    Unreachable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
