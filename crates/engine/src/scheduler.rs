//! Cron schedules per flow. Every node runs the same scheduler; a due schedule fires exactly
//! once across nodes because firing is a conditional update of `next_fire_at` in the store,
//! with the flow's job enqueued in the same transaction (and keyed by the due time, too).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use store::{Millis, NewJob, ScheduleSpec, Store, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;

/// Parse a cron expression the way the whole hub does: 5 fields, or 6 with seconds first.
pub fn parse_cron(expr: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr.trim())
}

/// The first occurrence strictly after `after` (cron read in the machine's local time).
pub fn next_occurrence(cron: &Cron, after: Millis) -> Option<Millis> {
    // Cron has whole seconds; croner would carry the milliseconds into its answer.
    let start: DateTime<Local> = Local.timestamp_opt(after.div_euclid(1000), 0).single()?;
    cron.find_next_occurrence(&start, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// One flow's schedule and the job it enqueues when due.
#[derive(Debug, Clone)]
pub struct ScheduledFlow {
    pub name: String,
    pub cron_text: String,
    pub cron: Cron,
    /// The job to enqueue (its time fields are set when it fires).
    pub job: NewJob,
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    flows: Vec<ScheduledFlow>,
    tick: Duration,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, flows: Vec<ScheduledFlow>) -> Self {
        Self {
            store,
            flows,
            tick: Duration::from_secs(1),
        }
    }

    /// Register every schedule (a changed cron restarts from its next occurrence).
    pub async fn register(&self, now: Millis) -> Result<(), StoreError> {
        for f in &self.flows {
            let next = next_occurrence(&f.cron, now).unwrap_or(i64::MAX);
            self.store
                .upsert_schedule(&ScheduleSpec {
                    name: f.name.clone(),
                    cron: f.cron_text.clone(),
                    next_fire_at: next,
                    now,
                })
                .await?;
        }
        Ok(())
    }

    /// Fire what is due at `now`; returns how many this node fired. Missed occurrences (the
    /// hub was down) fire once, not once per missed slot.
    pub async fn tick(&self, now: Millis) -> Result<usize, StoreError> {
        let stored = self.store.list_schedules().await?;
        let mut fired = 0;
        for s in stored.iter().filter(|s| s.next_fire_at <= now) {
            let Some(flow) = self.flows.iter().find(|f| f.name == s.name) else {
                continue; // a schedule of a flow this node does not run
            };
            let next = next_occurrence(&flow.cron, now).unwrap_or(i64::MAX);
            let mut job = flow.job.clone();
            job.now = now;
            job.run_at = now;
            job.idempotency_key = Some(format!("schedule:{}:{}", s.name, s.next_fire_at));
            if let Some(out) = self
                .store
                .fire_schedule(&s.name, s.next_fire_at, next, &job)
                .await?
            {
                fired += 1;
                metrics::counter!("dingbridge_schedule_fired_total", "flow" => s.name.clone())
                    .increment(1);
                info!(flow = %s.name, job = %out.id, "schedule fired");
            }
        }
        Ok(fired)
    }

    /// Register, then tick every second until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.flows.is_empty() {
            return;
        }
        if let Err(e) = self.register(now_ms()).await {
            warn!(error = %e, "registering schedules failed; will retry on the next tick");
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.tick) => {}
            }
            if let Err(e) = self.tick(now_ms()).await {
                warn!(error = %e, "scheduler tick failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields_and_rejects_garbage() {
        assert!(parse_cron("*/10 * * * *").is_ok());
        assert!(parse_cron("*/5 * * * * *").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("每天 早上").is_err());
    }

    #[test]
    fn next_occurrence_is_strictly_after() {
        let every_minute = parse_cron("* * * * *").map_err(|e| e.to_string());
        let Ok(c) = every_minute else {
            panic!("{every_minute:?}")
        };
        let t = 1_700_000_040_000; // a whole minute
        assert_eq!(next_occurrence(&c, t), Some(t + 60_000));
        assert_eq!(next_occurrence(&c, t - 1), Some(t));
    }
}
