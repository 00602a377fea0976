//! The retry policy of DESIGN §6: what a failed attempt leads to, and when the next one runs.

use std::time::Duration;

use rand::Rng;
use store::{ErrorClass, Millis};

/// About 1 s, 5 s, 30 s, 2 min, 10 min, 30 min, 2 h, 6 h, then dead: nine attempts over
/// about nine hours, like Svix's schedule for webhooks.
pub const DEFAULT_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
];

/// Delays between attempts, with jitter so that a burst of failures does not retry in step.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the n-th failed attempt (the last entry repeats if attempts allow more).
    pub schedule: Vec<Duration>,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The policy a flow's `[flows.<name>.retry]` table describes.
    pub fn from_config(c: &crate::config::RetryConfig) -> Self {
        Self {
            schedule: c.schedule.clone(),
            ..Self::default()
        }
    }

    /// Attempts a job gets under this policy: the first one plus one per delay.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.schedule.len() + 1).unwrap_or(i32::MAX)
    }

    /// When to run the next attempt after attempt number `attempts` (1-based) failed, or
    /// `None` for a dead letter. A remote's own "retry after" hint is honoured as a floor.
    pub fn next_attempt_at(
        &self,
        attempts: i32,
        max_attempts: i32,
        class: ErrorClass,
        retry_after: Option<Duration>,
        now: Millis,
    ) -> Option<Millis> {
        if class == ErrorClass::Permanent || attempts >= max_attempts || self.schedule.is_empty() {
            return None;
        }
        let index = usize::try_from(attempts.max(1) - 1)
            .unwrap_or(0)
            .min(self.schedule.len() - 1);
        let base = self.schedule[index].as_secs_f64();
        let factor = if self.jitter > 0.0 {
            rand::rng().random_range((1.0 - self.jitter)..=(1.0 + self.jitter))
        } else {
            1.0
        };
        let delay = (base * factor).max(retry_after.map_or(0.0, |d| d.as_secs_f64()));
        Some(now + (delay * 1000.0).round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_within_jitter_then_dead_letters() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 9);
        for (i, base) in DEFAULT_SCHEDULE.iter().enumerate() {
            let attempt = i32::try_from(i + 1).unwrap_or(0);
            let at = p
                .next_attempt_at(attempt, 9, ErrorClass::Retryable, None, 0)
                .unwrap_or(-1);
            let base = base.as_millis() as f64;
            assert!(
                (at as f64) >= base * 0.8 - 1.0 && (at as f64) <= base * 1.2 + 1.0,
                "attempt {attempt}: {at} vs {base}"
            );
        }
        assert_eq!(
            p.next_attempt_at(9, 9, ErrorClass::Retryable, None, 0),
            None
        );
    }

    #[test]
    fn permanent_errors_dead_letter_at_once() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_attempt_at(1, 9, ErrorClass::Permanent, None, 0),
            None
        );
    }

    #[test]
    fn a_retry_after_hint_is_a_floor() {
        let p = RetryPolicy {
            schedule: vec![Duration::from_secs(1)],
            jitter: 0.0,
        };
        let at = p.next_attempt_at(
            1,
            5,
            ErrorClass::Retryable,
            Some(Duration::from_secs(20)),
            0,
        );
        assert_eq!(at, Some(20_000));
        // Past the schedule's end the last delay repeats.
        assert_eq!(
            p.next_attempt_at(4, 5, ErrorClass::Retryable, None, 0),
            Some(1_000)
        );
    }
}
