//! `dingbridge sandbox` fault flags: applied to both simulators from the start (seen through
//! their admin APIs and in real answers), and refused with one line naming the flag and the
//! allowed range (exit 2).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .unwrap()
}

/// Kills the sandbox when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dingbridge sandbox` on free ports with `extra` flags; waits for `--config-out`
/// and returns the process and the block it wrote.
fn start(dir: &Path, extra: &[&str]) -> (Running, String) {
    let out = dir.join("sandbox.toml");
    let mut args = vec![
        "sandbox",
        "--dingtalk-listen",
        "127.0.0.1:0",
        "--kingdee-listen",
        "127.0.0.1:0",
        "--config-out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let child = Running(
        Command::new(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..400 {
        if std::fs::read_to_string(&out).is_ok_and(|t| t.contains("[connections.kingdee]")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let block = std::fs::read_to_string(&out).unwrap();
    (child, block)
}

/// The value of `key = "…"` in the block.
fn field(block: &str, key: &str) -> String {
    block
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in\n{block}"))
}

fn get(url: &str) -> Value {
    let http = reqwest::blocking::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(url).send() {
            return r.json().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not answer");
}

#[test]
fn error_rate_flag_is_active_in_the_dingtalk_and_kingdee_simulators() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, block) = start(dir.path(), &["--error-rate", "1"]);
    let dt = field(&block, "oapi_base_url");
    let kd = field(&block, "base_url");
    let kd = kd.trim_end_matches('/').trim_end_matches("/k3cloud");

    let faults = get(&format!("{dt}/_sandbox/dingtalk/faults"));
    assert_eq!(faults["error_rate"].as_f64(), Some(1.0), "{faults}");
    assert_eq!(faults["latency_ms"].as_u64(), Some(0), "{faults}");
    assert!(faults["outage_seconds_left"].is_null(), "{faults}");
    let faults = get(&format!("{kd}/_sandbox/kingdee/faults"));
    assert_eq!(faults["msgcode14_rate"].as_f64(), Some(1.0), "{faults}");

    // And a real call meets it: 系统繁忙 (-1).
    let app_key = field(&block, "app_key");
    let app_secret = field(&block, "app_secret");
    let answer = get(&format!(
        "{dt}/gettoken?appkey={app_key}&appsecret={app_secret}"
    ));
    assert_eq!(answer["errcode"].as_i64(), Some(-1), "{answer}");
}

#[test]
fn the_other_fault_flags_reach_the_simulators() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, block) = start(
        dir.path(),
        &[
            "--latency-ms",
            "15",
            "--outage-seconds",
            "120",
            "--token-ttl-seconds",
            "90",
            "--edition",
            "exclusive",
        ],
    );
    assert!(block.contains("edition = \"exclusive\""), "{block}");
    let dt = field(&block, "oapi_base_url");
    let faults = get(&format!("{dt}/_sandbox/dingtalk/faults"));
    assert_eq!(faults["latency_ms"].as_u64(), Some(15), "{faults}");
    let left = faults["outage_seconds_left"].as_f64().unwrap();
    assert!(left > 60.0 && left <= 120.0, "{faults}");
    let config = get(&format!("{dt}/_sandbox/dingtalk/config"));
    assert_eq!(config["token_ttl_secs"].as_u64(), Some(90), "{config}");
    assert_eq!(config["apps"][0]["edition"], "exclusive", "{config}");
    let kd = field(&block, "base_url");
    let kd = kd.trim_end_matches('/').trim_end_matches("/k3cloud");
    let faults = get(&format!("{kd}/_sandbox/kingdee/faults"));
    assert_eq!(faults["latency_ms"].as_u64(), Some(15), "{faults}");
    assert!(
        faults["outage_remaining_seconds"].as_f64().unwrap() > 60.0,
        "{faults}"
    );
}

#[test]
fn out_of_range_flags_exit_2_with_one_line_naming_the_flag() {
    for (flag, value, range) in [
        ("--error-rate", "2", "0 to 1"),
        ("--error-rate", "lots", "0 to 1"),
        ("--latency-ms", "600000", "0 to 60000"),
        ("--outage-seconds", "1.5", "0 to 86400"),
        ("--token-ttl-seconds", "0", "1 to 86400"),
        ("--edition", "gold", "standard"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("never.toml");
        let out = run(&[
            "sandbox",
            "--dingtalk-listen",
            "127.0.0.1:0",
            "--kingdee-listen",
            "127.0.0.1:0",
            "--config-out",
            cfg.to_str().unwrap(),
            flag,
            value,
        ]);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert_eq!(err.lines().count(), 1, "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && err.contains(value) && err.contains(range),
            "{flag} {value}: {err}"
        );
        assert!(!cfg.exists(), "nothing started for {flag} {value}");
    }
}
