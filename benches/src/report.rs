//! What every report shares: the envelope (scenario, times, machine), latency percentiles and
//! number rounding, and writing the JSON file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// A finished scenario: its JSON report and a few lines for a person.
pub struct Outcome {
    pub scenario: &'static str,
    pub report: serde_json::Value,
    pub summary: String,
}

impl Outcome {
    /// Write `<dir>/<scenario>.json` (pretty, with a final newline).
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.scenario));
        let mut text = serde_json::to_string_pretty(&self.report)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    pub os: String,
    pub arch: &'static str,
    /// Kernel release (Linux), when readable.
    pub kernel: Option<String>,
    /// CPU model (Linux), when readable.
    pub cpu: Option<String>,
}

impl Machine {
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cpu = read("/proc/cpuinfo").and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH,
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            cpu,
        }
    }
}

/// Now, RFC 3339 in UTC.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// `samples` is sorted in place; all zero when empty.
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let ms = |d: Duration| round(d.as_secs_f64() * 1000.0, 3);
        let rank = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least p of them at or below it.
            let n = samples.len();
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            ms(samples[i])
        };
        let mean = if samples.is_empty() {
            0.0
        } else {
            let total: Duration = samples.iter().sum();
            ms(total / samples.len() as u32)
        };
        Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p95: rank(0.95),
            p99: rank(0.99),
            max: samples.last().map_or(0.0, |d| ms(*d)),
            mean,
        }
    }
}

/// `x` rounded to `digits` decimals (reports stay readable).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `count / seconds`, rounded to 0.1; 0 when no time passed.
pub fn per_second(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        round(count as f64 / seconds, 1)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(p.p95, 95.0);
        assert_eq!(p.mean, 50.5);
        let p = Percentiles::of(&mut [Duration::from_micros(1500)]);
        assert_eq!((p.p50, p.p99, p.max), (1.5, 1.5, 1.5));
        let p = Percentiles::of(&mut []);
        assert_eq!(p.max, 0.0);
    }
}
