//! What the tests that run the real binary against in-process simulators share: the simulators
//! on free ports, the example configuration pointed at them, a node started (optionally with
//! failpoints armed) and watched through its log.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, Edition};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");
pub const EXAMPLE: &str = include_str!("../../../../examples/dingbridge.toml");

/// A simulator served on a free port of this process; stopped when dropped.
pub struct Served {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The DingTalk simulator with `seed`: standard edition (20 QPS per API, as
/// `dingbridge sandbox` starts it) or exclusive (60).
pub async fn serve_dingtalk(seed: &Seed, edition: Edition) -> Served {
    let mut config = DingTalkSandboxConfig::default();
    for app in &mut config.apps {
        app.edition = edition;
    }
    let dt = DingTalkSandbox::new(config, seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = sandbox::dingtalk::serve(listener, dt).await;
    });
    Served { url, task }
}

/// An empty Kingdee data centre (no departments, no employees): a sync has to build it.
pub async fn serve_kingdee(seed: &Seed) -> (KingdeeSandbox, Served) {
    let kd = KingdeeSandbox::new(
        KingdeeSandboxConfig {
            seed_org: false,
            ..KingdeeSandboxConfig::default()
        },
        seed,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = kd.clone();
    let task = tokio::spawn(async move {
        let _ = sandbox::kingdee::serve(listener, served).await;
    });
    (kd, Served { url, task })
}

/// `text` with `from` replaced by `to`; `from` must be there (the example changed otherwise).
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "examples/dingbridge.toml no longer contains `{from}`; update the test that expects it"
    );
    text.replace(from, to)
}

/// The example configuration pointed at the simulators and `store_url`, with short leases and
/// a quick poll (a killed node's jobs come back within seconds).
pub fn example_for(dt_url: &str, kd_url: &str, store_url: &str) -> String {
    let mut text = replace(EXAMPLE, "http://127.0.0.1:8089", dt_url);
    text = replace(&text, "http://127.0.0.1:8090", kd_url);
    text = replace(
        &text,
        "url = \"sqlite://dingbridge.sqlite\"",
        &format!("url = \"{store_url}\""),
    );
    text = replace(&text, "lease_seconds = 30", "lease_seconds = 3");
    replace(&text, "poll_interval_ms = 250", "poll_interval_ms = 50")
}

/// `dingbridge serve` on `config`, its log in `log`, with `failpoints` armed ("" for none).
pub fn start(config: &Path, log: &Path, failpoints: &str) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env(engine::failpoint::ENV, failpoints)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// SIGKILL: no cleanup, leases and running work are left behind.
pub async fn kill_9(node: &mut Child) {
    node.start_kill().unwrap();
    node.wait().await.unwrap();
}

/// The last 30 lines of a node's log.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Poll `check` until it holds; past `limit` the test fails showing the node's log.
pub async fn wait_for(
    what: &str,
    limit: Duration,
    log: &Path,
    mut check: impl AsyncFnMut() -> bool,
) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; the node's log ends with:\n{}",
            tail(log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
