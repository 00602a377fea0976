//! [`ConnectionLimiter`]: the [`Pacer`] of one connection, and [`LimiterRegistry`].

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use metrics::{Counter, Gauge};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::rules::{ConnectionLimits, LimitRule, LimitsError};
use crate::{Pacer, Permit};

/// Longest pause a `retry_after` hint can impose (a larger hint is capped).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Metric names (labels: `connection`, `group`).
pub mod metric_names {
    /// Counter: acquires that had to wait (for a pause, the rate or a concurrency slot).
    pub const WAITS: &str = "dingbridge_limiter_waits_total";
    /// Monotonic total of seconds spent waiting. Exported as a gauge holding the running
    /// total, because `metrics` counters only count integers.
    pub const WAIT_SECONDS: &str = "dingbridge_limiter_wait_seconds_total";
    /// Counter: throttled answers reported by the client.
    pub const THROTTLED: &str = "dingbridge_limiter_throttled_total";
    /// Counter: permits handed out.
    pub const ACQUIRED: &str = "dingbridge_limiter_acquired_total";
    /// Gauge: current effective rate (calls per second) of a group with a rate rule.
    pub const RATE: &str = "dingbridge_limiter_rate_per_second";
    /// Gauge: calls in flight.
    pub const IN_FLIGHT: &str = "dingbridge_limiter_in_flight";
}

/// A governor clock reading tokio's clock, so `tokio::time::pause()` drives the limiters.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

fn gcra(rule_rate: f64, burst: u32, clock: TokioClock, drained: bool) -> Option<Arc<Gcra>> {
    if !(rule_rate.is_finite() && rule_rate > 0.0) {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / rule_rate).ok()?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)?.allow_burst(burst);
    let limiter = RateLimiter::direct_with_clock(quota, clock);
    if drained {
        // A replacement limiter starts empty: the next call waits one interval at the new
        // rate instead of getting a fresh burst right after a throttled answer.
        for _ in 0..=burst.get() {
            if limiter.check().is_err() {
                break;
            }
        }
    }
    Some(Arc::new(limiter))
}

/// Waits until `limiter` lets one call through.
async fn pass(limiter: &Gcra, clock: TokioClock) -> bool {
    let mut waited = false;
    loop {
        match limiter.check() {
            Ok(()) => return waited,
            Err(not_until) => {
                waited = true;
                let wait = not_until.wait_time_from(clock.now());
                tokio::time::sleep(wait.max(Duration::from_micros(1))).await;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct GroupMetrics {
    waits: Counter,
    wait_seconds: Gauge,
    wait_nanos: AtomicU64,
    throttled: Counter,
    acquired: Counter,
    rate: Gauge,
    in_flight: Gauge,
}

impl GroupMetrics {
    fn new(connection: &str, group: &str) -> Self {
        let labels = [
            ("connection", connection.to_owned()),
            ("group", group.to_owned()),
        ];
        Self {
            waits: metrics::counter!(metric_names::WAITS, &labels),
            wait_seconds: metrics::gauge!(metric_names::WAIT_SECONDS, &labels),
            wait_nanos: AtomicU64::new(0),
            throttled: metrics::counter!(metric_names::THROTTLED, &labels),
            acquired: metrics::counter!(metric_names::ACQUIRED, &labels),
            rate: metrics::gauge!(metric_names::RATE, &labels),
            in_flight: metrics::gauge!(metric_names::IN_FLIGHT, &labels),
        }
    }
}

struct GroupState {
    /// Effective rate (calls per second); meaningless without a rule.
    rate: f64,
    limiter: Option<Arc<Gcra>>,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
    /// Last throttled answer or rate change: the quiet period for a step up starts here.
    last_change: Instant,
}

struct Group {
    rule: Option<LimitRule>,
    state: Mutex<GroupState>,
    metrics: GroupMetrics,
    in_flight: Arc<AtomicUsize>,
}

/// Decrements the in-flight counts when a [`Permit`] is dropped.
pub(crate) struct InFlight {
    gauge: Gauge,
    group: Arc<AtomicUsize>,
    connection: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
        self.group.fetch_sub(1, Ordering::SeqCst);
        self.connection.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The pacer of one connection: a GCRA limiter per API group (adaptive), an optional
/// connection-wide rate, and a concurrency cap. `acquire` waits for a pause to end, then for
/// the group's rate, then for the connection's total rate, then for a concurrency slot.
pub struct ConnectionLimiter {
    name: String,
    limits: ConnectionLimits,
    clock: TokioClock,
    slots: Arc<Semaphore>,
    total: Option<Arc<Gcra>>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ConnectionLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl ConnectionLimiter {
    /// A limiter for connection `name`; fails if a limits value is out of range.
    pub fn new(name: impl Into<String>, limits: ConnectionLimits) -> Result<Self, LimitsError> {
        limits.validate()?;
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let slots = Arc::new(Semaphore::new(
            limits.concurrency.min(Semaphore::MAX_PERMITS),
        ));
        let total = limits
            .total
            .and_then(|rule| gcra(rule.per_second, rule.burst, clock, false));
        let this = Self {
            name: name.into(),
            limits,
            clock,
            slots,
            total,
            groups: Mutex::new(HashMap::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        // Groups with their own rule exist from the start (their rate gauge shows at once);
        // the others are created on first use.
        let names: Vec<String> = this.limits.groups.keys().cloned().collect();
        for group in names {
            this.group(&group);
        }
        Ok(this)
    }

    /// The connection name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured limits.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Calls in flight on the whole connection.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Calls in flight in one group.
    pub fn group_in_flight(&self, group: &str) -> usize {
        self.group(group).in_flight.load(Ordering::SeqCst)
    }

    /// The current effective rate of a group, `None` if the group has no rate rule.
    pub fn effective_rate(&self, group: &str) -> Option<f64> {
        let g = self.group(group);
        g.rule.map(|_| lock(&g.state).rate)
    }

    /// Until when a group is paused by a `retry_after` hint, if it is.
    pub fn paused_until(&self, group: &str) -> Option<Instant> {
        let g = self.group(group);
        lock(&g.state)
            .paused_until
            .filter(|until| *until > Instant::now())
    }

    fn group(&self, name: &str) -> Arc<Group> {
        let mut groups = lock(&self.groups);
        if let Some(g) = groups.get(name) {
            return Arc::clone(g);
        }
        let rule = self.limits.rule_for(name);
        let metrics = GroupMetrics::new(&self.name, name);
        let (rate, limiter) = match rule {
            Some(rule) => {
                metrics.rate.set(rule.per_second);
                (
                    rule.per_second,
                    gcra(rule.per_second, rule.burst, self.clock, false),
                )
            }
            None => (f64::INFINITY, None),
        };
        let g = Arc::new(Group {
            rule,
            state: Mutex::new(GroupState {
                rate,
                limiter,
                paused_until: None,
                last_decrease: None,
                last_change: Instant::now(),
            }),
            metrics,
            in_flight: Arc::new(AtomicUsize::new(0)),
        });
        groups.insert(name.to_owned(), Arc::clone(&g));
        g
    }

    fn set_rate(&self, g: &Group, state: &mut GroupState, rule: LimitRule, rate: f64) {
        state.rate = rate;
        state.limiter = gcra(rate, rule.burst, self.clock, true);
        g.metrics.rate.set(rate);
    }

    /// Waits out a pause and the group's rate; true if it had to wait.
    async fn wait_group(&self, g: &Group) -> bool {
        let mut waited = false;
        loop {
            let (paused_until, limiter) = {
                let st = lock(&g.state);
                (st.paused_until, st.limiter.clone())
            };
            if let Some(until) = paused_until
                && until > Instant::now()
            {
                waited = true;
                tokio::time::sleep_until(until).await;
                continue;
            }
            let Some(limiter) = limiter else {
                return waited;
            };
            match limiter.check() {
                Ok(()) => {
                    // A pause may have started while this call waited for its turn.
                    let st = lock(&g.state);
                    match st.paused_until {
                        Some(until) if until > Instant::now() => continue,
                        _ => return waited,
                    }
                }
                Err(not_until) => {
                    waited = true;
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait.max(Duration::from_micros(1))).await;
                }
            }
        }
    }
}

#[async_trait]
impl Pacer for ConnectionLimiter {
    async fn acquire(&self, group: &str) -> Permit {
        let g = self.group(group);
        let started = Instant::now();
        let mut waited = self.wait_group(&g).await;
        if let Some(total) = &self.total {
            waited |= pass(total, self.clock).await;
        }
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                waited = true;
                Arc::clone(&self.slots).acquire_owned().await.ok()
            }
        };
        if waited {
            g.metrics.waits.increment(1);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let total = g
                .metrics
                .wait_nanos
                .fetch_add(nanos, Ordering::SeqCst)
                .saturating_add(nanos);
            g.metrics.wait_seconds.set(total as f64 / 1e9);
        }
        g.metrics.acquired.increment(1);
        g.metrics.in_flight.increment(1.0);
        g.in_flight.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Permit::tracked(
            slot,
            InFlight {
                gauge: g.metrics.in_flight.clone(),
                group: Arc::clone(&g.in_flight),
                connection: Arc::clone(&self.in_flight),
            },
        )
    }

    fn throttled(&self, group: &str, retry_after: Option<Duration>) {
        let g = self.group(group);
        g.metrics.throttled.increment(1);
        let adaptive = &self.limits.adaptive;
        let now = Instant::now();
        let mut st = lock(&g.state);
        let default_pause = (adaptive.enabled && g.rule.is_none())
            .then(|| Duration::try_from_secs_f64(adaptive.pause_seconds).ok())
            .flatten();
        if let Some(pause) = retry_after.or(default_pause) {
            let until = now + pause.min(MAX_PAUSE);
            st.paused_until = Some(st.paused_until.map_or(until, |old| old.max(until)));
        }
        st.last_change = now;
        let Some(rule) = g.rule.filter(|_| adaptive.enabled) else {
            return;
        };
        let cooldown = Duration::try_from_secs_f64(adaptive.decrease_cooldown_seconds)
            .unwrap_or(Duration::ZERO);
        if st
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < cooldown)
        {
            return;
        }
        st.last_decrease = Some(now);
        let floor = rule.per_second * adaptive.min_fraction;
        let lowered = (st.rate * adaptive.decrease_factor).max(floor);
        if lowered < st.rate {
            tracing::debug!(
                connection = %self.name, group, from = st.rate, to = lowered,
                "throttled: stepping the rate down"
            );
            self.set_rate(&g, &mut st, rule, lowered);
        }
    }

    fn succeeded(&self, group: &str) {
        let adaptive = &self.limits.adaptive;
        if !adaptive.enabled {
            return;
        }
        let g = self.group(group);
        let Some(rule) = g.rule else {
            return;
        };
        let now = Instant::now();
        let mut st = lock(&g.state);
        if st.rate >= rule.per_second {
            return;
        }
        let interval = Duration::try_from_secs_f64(adaptive.increase_interval_seconds)
            .unwrap_or(Duration::ZERO);
        if now.saturating_duration_since(st.last_change) < interval {
            return;
        }
        let raised = (st.rate + rule.per_second * adaptive.increase_fraction).min(rule.per_second);
        tracing::debug!(
            connection = %self.name, group, from = st.rate, to = raised,
            "quiet period: stepping the rate up"
        );
        self.set_rate(&g, &mut st, rule, raised);
        st.last_change = now;
    }
}

/// The limiters of all connections, by connection name.
#[derive(Debug, Default, Clone)]
pub struct LimiterRegistry {
    limiters: BTreeMap<String, Arc<ConnectionLimiter>>,
}

impl LimiterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// One limiter per `(connection name, limits)`.
    pub fn from_configs<I, S>(configs: I) -> Result<Self, LimitsError>
    where
        I: IntoIterator<Item = (S, ConnectionLimits)>,
        S: Into<String>,
    {
        let mut registry = Self::new();
        for (name, limits) in configs {
            registry.insert(name, limits)?;
        }
        Ok(registry)
    }

    /// Adds (or replaces) the limiter of a connection.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        limits: ConnectionLimits,
    ) -> Result<Arc<ConnectionLimiter>, LimitsError> {
        let name = name.into();
        let limiter = Arc::new(ConnectionLimiter::new(name.clone(), limits)?);
        self.limiters.insert(name, Arc::clone(&limiter));
        Ok(limiter)
    }

    /// The limiter of a connection.
    pub fn get(&self, name: &str) -> Option<Arc<ConnectionLimiter>> {
        self.limiters.get(name).cloned()
    }

    /// The pacer for a connection: its limiter, or [`crate::Unpaced`] if it has none.
    pub fn pacer(&self, name: &str) -> Arc<dyn Pacer> {
        match self.get(name) {
            Some(limiter) => limiter,
            None => Arc::new(crate::Unpaced),
        }
    }

    /// Connection names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.limiters.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.limiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }
}
