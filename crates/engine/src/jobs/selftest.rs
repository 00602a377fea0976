//! `selftest`: a job kind that exercises the whole path without any remote system. It waits
//! (`sleep_ms`), can fail on purpose (`fail_attempts`, `permanent`), and on success writes one
//! transfer-log row keyed by `key`. The demo uses it to show the queue at work, and the crash
//! test counts its rows to prove each job's effect happened exactly once.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use store::{Job, NewTransfer};

use super::{JobContext, JobEffects, JobError, JobHandler};
use crate::clock::now_ms;

pub const KIND: &str = "selftest";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// The record key the transfer-log row is written under (default: the job id).
    key: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    /// Fail this many attempts before succeeding.
    #[serde(default)]
    fail_attempts: i32,
    /// Fail permanently (straight to the dead letters).
    #[serde(default)]
    permanent: bool,
    /// Free text carried into the transfer log (e.g. a Chinese title).
    title: Option<String>,
}

pub struct SelfTest;

#[async_trait]
impl JobHandler for SelfTest {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let started = now_ms();
        let p: Payload = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(format!(
                "selftest payload: {e}; allowed keys: key, sleep_ms, fail_attempts, permanent, title"
            ))
        })?;
        if p.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
        }
        if p.permanent {
            return Err(JobError::permanent("selftest: asked to fail permanently"));
        }
        if job.attempts <= p.fail_attempts {
            return Err(JobError::retryable(format!(
                "selftest: asked to fail attempt {} of the first {}",
                job.attempts, p.fail_attempts
            )));
        }
        Ok(JobEffects {
            transfers: vec![NewTransfer {
                flow: job.flow.clone().unwrap_or_else(|| KIND.into()),
                source_key: p.key.unwrap_or_else(|| job.id.to_string()),
                target_key: None,
                job_id: Some(job.id),
                attempt: job.attempts,
                request: Some(job.payload.clone()),
                // Which worker (node and task) did it: visible in the transfer log.
                response: Some(serde_json::json!({ "worker": ctx.worker, "title": p.title })),
                outcome: "done".into(),
                error: None,
                started_at: started,
                duration_ms: now_ms() - started,
            }],
            ..JobEffects::default()
        })
    }
}
