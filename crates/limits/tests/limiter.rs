//! Behaviour of the connection limiter, measured on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use limits::{
    AdaptiveSettings, ConnectionLimiter, ConnectionLimits, DingTalkEdition, LimitRule,
    LimiterRegistry, Pacer, Requirement,
};
use tokio::time::Instant;

fn limits_with(default_rule: Option<LimitRule>, groups: &[(&str, LimitRule)]) -> ConnectionLimits {
    ConnectionLimits {
        concurrency: 1000,
        default_rule,
        groups: groups
            .iter()
            .map(|(n, r)| ((*n).to_owned(), *r))
            .collect::<BTreeMap<_, _>>(),
        total: None,
        adaptive: AdaptiveSettings::default(),
    }
}

fn limiter(limits: ConnectionLimits) -> ConnectionLimiter {
    ConnectionLimiter::new("test", limits).expect("valid limits")
}

/// Acquires `n` permits one after another (dropping each) and returns the elapsed time.
async fn run(l: &ConnectionLimiter, group: &str, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let _p = l.acquire(group).await;
    }
    start.elapsed()
}

fn assert_close(actual: Duration, expected: Duration) {
    let diff = actual.abs_diff(expected);
    assert!(
        diff <= Duration::from_millis(25),
        "took {actual:?}, expected about {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_is_honoured() {
    let l = limiter(limits_with(Some(LimitRule::per_second(10.0, 1)), &[]));
    // The first call passes at once, then one every 100 ms.
    assert_close(run(&l, "contacts", 21).await, Duration::from_secs(2));
    // Keeps pacing after a while at the same rate.
    assert_close(run(&l, "contacts", 10).await, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn burst_then_rate() {
    let l = limiter(limits_with(Some(LimitRule::per_second(10.0, 5)), &[]));
    assert_close(run(&l, "g", 5).await, Duration::ZERO);
    assert_close(run(&l, "g", 10).await, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn fractional_rate_per_minute() {
    let l = limiter(limits_with(
        None,
        &[("robot", LimitRule::per_minute(20.0, 1))],
    ));
    // 20 per minute = one every 3 s.
    assert_close(run(&l, "robot", 4).await, Duration::from_secs(9));
    // `robot:<token>` inherits the robot rule with a limiter of its own.
    assert_eq!(l.effective_rate("robot:abc"), Some(20.0 / 60.0));
    assert_close(run(&l, "robot:abc", 2).await, Duration::from_secs(3));
    // Groups without a rule and no default rule are not rate limited.
    assert_eq!(l.effective_rate("other"), None);
    assert_close(run(&l, "other", 100).await, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_the_rate() {
    let l = Arc::new(limiter(limits_with(
        Some(LimitRule::per_second(20.0, 1)),
        &[],
    )));
    let start = Instant::now();
    let tasks: Vec<_> = (0..41)
        .map(|_| {
            let l = Arc::clone(&l);
            tokio::spawn(async move {
                let _p = l.acquire("workflow").await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_close(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_holds() {
    let mut limits = limits_with(None, &[]);
    limits.concurrency = 3;
    let l = Arc::new(limiter(limits));
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (l, current, max) = (Arc::clone(&l), Arc::clone(&current), Arc::clone(&max));
            tokio::spawn(async move {
                let group = if i % 2 == 0 { "query" } else { "save" };
                let _p = l.acquire(group).await;
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                assert!(l.in_flight() <= 3);
                tokio::time::sleep(Duration::from_millis(100)).await;
                current.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 3);
    assert_eq!(l.in_flight(), 0);
    // 20 calls of 100 ms, 3 at a time: 7 rounds.
    assert_close(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn throttled_steps_down_to_a_floor() {
    let l = limiter(limits_with(Some(LimitRule::per_second(10.0, 1)), &[]));
    assert_eq!(l.effective_rate("g"), Some(10.0));
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(5.0));
    // Throttled answers of calls that were already in flight do not step down again.
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(5.0));
    // The lower rate is what the limiter paces to (a swapped limiter starts empty).
    assert_close(run(&l, "g", 5).await, Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(2.5));
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(2)).await;
        l.throttled("g", None);
    }
    // Floor: min_fraction (0.1) of the configured rate.
    assert_eq!(l.effective_rate("g"), Some(1.0));
    // Other groups are not affected.
    assert_eq!(l.effective_rate("h"), Some(10.0));
}

#[tokio::test(start_paused = true)]
async fn successes_step_up_slowly_and_never_above_configured() {
    let l = limiter(limits_with(Some(LimitRule::per_second(10.0, 1)), &[]));
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(5.0));
    // No step up before a quiet period.
    l.succeeded("g");
    tokio::time::advance(Duration::from_secs(9)).await;
    l.succeeded("g");
    assert_eq!(l.effective_rate("g"), Some(5.0));
    tokio::time::advance(Duration::from_secs(1)).await;
    l.succeeded("g");
    assert_eq!(l.effective_rate("g"), Some(6.0));
    // One step per quiet period.
    l.succeeded("g");
    assert_eq!(l.effective_rate("g"), Some(6.0));
    // A throttled answer restarts the quiet period.
    tokio::time::advance(Duration::from_secs(9)).await;
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(3.0));
    let mut seen = Vec::new();
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(10)).await;
        l.succeeded("g");
        let r = l.effective_rate("g").unwrap();
        assert!(r <= 10.0, "rate {r} above the configured 10");
        seen.push(r);
    }
    assert!((seen[0] - 4.0).abs() < 1e-9);
    assert_eq!(*seen.last().unwrap(), 10.0);
    // Back at the configured rate the pacing matches it.
    assert_close(run(&l, "g", 11).await, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn adaptive_off_keeps_the_rate() {
    let mut limits = limits_with(Some(LimitRule::per_second(10.0, 1)), &[]);
    limits.adaptive.enabled = false;
    let l = limiter(limits);
    l.throttled("g", None);
    assert_eq!(l.effective_rate("g"), Some(10.0));
    assert_eq!(l.paused_until("g"), None);
    // An explicit hint is still honoured.
    l.throttled("g", Some(Duration::from_secs(2)));
    assert_close(run(&l, "g", 1).await, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_only_that_group() {
    let l = limiter(limits_with(Some(LimitRule::per_second(100.0, 10)), &[]));
    l.throttled("contacts", Some(Duration::from_secs(5)));
    assert!(l.paused_until("contacts").is_some());
    // Another group goes on at once.
    assert_close(run(&l, "workflow", 3).await, Duration::ZERO);
    let waited = run(&l, "contacts", 1).await;
    assert!(waited >= Duration::from_secs(5), "waited only {waited:?}");
    assert_close(waited, Duration::from_secs(5));
    assert_eq!(l.paused_until("contacts"), None);
    // A shorter later hint does not shorten a longer pause.
    l.throttled("contacts", Some(Duration::from_secs(8)));
    l.throttled("contacts", Some(Duration::from_secs(1)));
    assert_close(run(&l, "contacts", 1).await, Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_respect_a_pause_that_starts_later() {
    let l = Arc::new(limiter(limits_with(
        Some(LimitRule::per_second(1.0, 1)),
        &[],
    )));
    let _first = l.acquire("g").await;
    let l2 = Arc::clone(&l);
    let start = Instant::now();
    let waiter = tokio::spawn(async move {
        let _p = l2.acquire("g").await;
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    l.throttled("g", Some(Duration::from_secs(3)));
    let waited = waiter.await.unwrap();
    assert!(
        waited >= Duration::from_millis(3500),
        "waited only {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unruled_group_pauses_when_throttled_without_hint() {
    let l = limiter(ConnectionLimits::kingdee());
    l.throttled("save", None);
    assert_close(run(&l, "save", 1).await, Duration::from_secs(1));
    assert_close(run(&l, "query", 1).await, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn groups_are_independent() {
    let l = limiter(limits_with(
        Some(LimitRule::per_second(1.0, 1)),
        &[("fast", LimitRule::per_second(10.0, 1))],
    ));
    // Each group has its own budget: one call each passes at once.
    assert_close(run(&l, "a", 1).await, Duration::ZERO);
    assert_close(run(&l, "b", 1).await, Duration::ZERO);
    assert_close(run(&l, "fast", 11).await, Duration::from_secs(1));
    assert_close(run(&l, "a", 1).await, Duration::ZERO); // 1 s has passed
    assert_close(run(&l, "a", 1).await, Duration::from_secs(1));
    l.throttled("a", None);
    assert_eq!(l.effective_rate("a"), Some(0.5));
    assert_eq!(l.effective_rate("b"), Some(1.0));
    assert_eq!(l.effective_rate("fast"), Some(10.0));
}

#[tokio::test(start_paused = true)]
async fn total_rate_caps_all_groups_together() {
    let mut limits = limits_with(Some(LimitRule::per_second(10.0, 1)), &[]);
    limits.total = Some(LimitRule::per_second(10.0, 1));
    let l = limiter(limits);
    let start = Instant::now();
    for i in 0..20 {
        let _p = l.acquire(if i % 2 == 0 { "a" } else { "b" }).await;
    }
    assert_close(start.elapsed(), Duration::from_millis(1900));
}

#[test]
fn dingtalk_presets_stay_under_documented_quotas() {
    let mut previous = 0.0;
    for (edition, qps) in [
        (DingTalkEdition::Standard, 20.0),
        (DingTalkEdition::Professional, 40.0),
        (DingTalkEdition::Exclusive, 60.0),
    ] {
        let p = ConnectionLimits::dingtalk(edition);
        p.validate().unwrap();
        let rule = p.default_rule.unwrap();
        assert!(rule.per_second < qps && rule.per_second >= 0.95 * qps);
        // A burst of 1 below the quota never puts more than `qps` calls in a 1-second window.
        assert_eq!(rule.burst, 1);
        assert!(rule.per_second > previous);
        previous = rule.per_second;
        let robot = p.rule_for("robot:token").unwrap();
        assert!(robot.per_second * 60.0 <= 20.0 && robot.per_second * 60.0 >= 19.0);
        let total = p.total.unwrap();
        assert!(total.per_second * 20.0 + f64::from(total.burst) <= 10_000.0);
    }
    let k = ConnectionLimits::kingdee();
    k.validate().unwrap();
    assert!(k.concurrency >= 1 && k.concurrency <= 8);
    assert_eq!(
        DingTalkEdition::parse("professional"),
        Some(DingTalkEdition::Professional)
    );
    assert_eq!(DingTalkEdition::parse("gold"), None);
}

#[test]
fn validation_names_the_key() {
    let mut l = ConnectionLimits::default();
    l.groups
        .insert("robot".into(), LimitRule::per_second(0.0, 1));
    let e = l.validate().unwrap_err();
    assert_eq!(e.path, "groups.robot.per_second");
    assert_eq!(e.requirement, Requirement::Positive);
    let mut l = ConnectionLimits::default();
    l.adaptive.decrease_factor = 1.5;
    assert_eq!(l.validate().unwrap_err().path, "adaptive.decrease_factor");
    let l = ConnectionLimits {
        concurrency: 0,
        ..ConnectionLimits::default()
    };
    assert_eq!(l.validate().unwrap_err().path, "concurrency");
    assert!(ConnectionLimiter::new("x", l).is_err());
}

#[test]
fn deserializes_with_defaults_and_rejects_unknown_keys() {
    let l: ConnectionLimits = toml::from_str(
        r#"
        concurrency = 8
        default_rule = { per_second = 20 }
        [groups.robot]
        per_minute = 20
        [adaptive]
        decrease_factor = 0.7
        "#,
    )
    .unwrap();
    assert_eq!(l.concurrency, 8);
    assert_eq!(l.default_rule, Some(LimitRule::per_second(20.0, 1)));
    assert!((l.groups["robot"].per_second - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(l.adaptive.decrease_factor, 0.7);
    assert_eq!(
        l.adaptive.min_fraction,
        AdaptiveSettings::default().min_fraction
    );
    let e = toml::from_str::<ConnectionLimits>("concurency = 8").unwrap_err();
    assert!(e.message().contains("concurency"), "{e}");
    let e = toml::from_str::<ConnectionLimits>("default_rule = { per_second = 1, per_minute = 2 }")
        .unwrap_err();
    assert!(e.message().contains("not both"), "{e}");
}

#[test]
fn registry_builds_from_configs() {
    let reg = LimiterRegistry::from_configs([
        ("dt", ConnectionLimits::dingtalk(DingTalkEdition::Standard)),
        ("kd", ConnectionLimits::kingdee()),
    ])
    .unwrap();
    assert_eq!(reg.names().collect::<Vec<_>>(), ["dt", "kd"]);
    assert_eq!(reg.get("kd").unwrap().limits().concurrency, 4);
    assert_eq!(reg.get("dt").unwrap().name(), "dt");
    assert!(reg.get("nope").is_none());
    let bad = ConnectionLimits {
        concurrency: 0,
        ..ConnectionLimits::default()
    };
    assert!(LimiterRegistry::from_configs([("x", bad)]).is_err());
}

#[tokio::test]
async fn registry_pacer_falls_back_to_unpaced() {
    let reg = LimiterRegistry::new();
    let pacer = reg.pacer("unknown");
    let _p = pacer.acquire("any").await;
    pacer.throttled("any", None);
    pacer.succeeded("any");
    assert!(reg.is_empty());
}
