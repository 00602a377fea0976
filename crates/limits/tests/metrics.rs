//! The limiter reports through the `metrics` facade with `connection` and `group` labels.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use limits::{ConnectionLimiter, ConnectionLimits, LimitRule, Pacer, metric_names};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

#[derive(Default)]
struct TestRecorder {
    values: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let id = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.values.lock().unwrap().entry(id).or_default())
    }
    fn counter(&self, name: &str, group: &str) -> u64 {
        let id = format!("{name}{{connection=dt,group={group}}}");
        self.values
            .lock()
            .unwrap()
            .get(&id)
            .map_or(0, |v| v.load(Ordering::SeqCst))
    }
    fn gauge(&self, name: &str, group: &str) -> f64 {
        f64::from_bits(self.counter(name, group))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn limiter_metrics() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let limits = ConnectionLimits {
                default_rule: Some(LimitRule::per_second(10.0, 1)),
                ..ConnectionLimits::default()
            };
            let l = ConnectionLimiter::new("dt", limits).unwrap();
            let first = l.acquire("contacts").await;
            let second = l.acquire("contacts").await; // waits 100 ms
            assert_eq!(recorder.gauge(metric_names::IN_FLIGHT, "contacts"), 2.0);
            drop(first);
            drop(second);
            assert_eq!(recorder.gauge(metric_names::IN_FLIGHT, "contacts"), 0.0);
            assert_eq!(recorder.counter(metric_names::ACQUIRED, "contacts"), 2);
            assert_eq!(recorder.counter(metric_names::WAITS, "contacts"), 1);
            let waited = recorder.gauge(metric_names::WAIT_SECONDS, "contacts");
            assert!((0.09..=0.11).contains(&waited), "waited {waited}");
            assert_eq!(recorder.gauge(metric_names::RATE, "contacts"), 10.0);
            l.throttled("contacts", Some(Duration::from_millis(10)));
            assert_eq!(recorder.counter(metric_names::THROTTLED, "contacts"), 1);
            assert_eq!(recorder.gauge(metric_names::RATE, "contacts"), 5.0);
        });
    });
}
