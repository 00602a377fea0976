//! `dingbridge sync` as a user meets it, against `dingbridge sandbox`: a full run prints its
//! progress and a summary (in Chinese with `--lang zh`) and is stored; a dry run prints the plan
//! and writes nothing; `sync runs` lists both; an unknown flow is one line naming the flows
//! there are, exit code 2.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");
const EXAMPLE: &str = include_str!("../../../examples/dingbridge.toml");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("LANG")
        .env_remove("LC_ALL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `dingbridge sandbox` on free ports; returns it and its DingTalk and Kingdee base URLs.
fn sandbox(dir: &std::path::Path) -> (Running, String, String) {
    let out = dir.join("block.toml");
    let child = Running(
        Command::new(BIN)
            .args([
                "sandbox",
                "--dingtalk-listen",
                "127.0.0.1:0",
                "--kingdee-listen",
                "127.0.0.1:0",
                "--config-out",
                out.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..400 {
        if std::fs::metadata(&out).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let block = std::fs::read_to_string(&out).unwrap();
    let value = |section: &str, key: &str| {
        block
            .split(section)
            .nth(1)
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    let dt = value("[connections.dingtalk]", "oapi_base_url");
    let kd = value("[connections.kingdee]", "base_url");
    (child, dt, kd.trim_end_matches("/k3cloud/").to_owned())
}

#[test]
fn sync_run_shows_progress_and_a_summary_and_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, dt, kd) = sandbox(dir.path());
    let cfg = dir.path().join("dingbridge.toml");
    let text = EXAMPLE
        .replace(
            "url = \"sqlite://dingbridge.sqlite\"",
            &format!(
                "url = \"sqlite://{}\"",
                dir.path().join("s.sqlite").display()
            ),
        )
        .replace("http://127.0.0.1:8089", &dt)
        .replace("http://127.0.0.1:8090", &kd);
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap();

    // The sandbox's Kingdee already has the company's employees under the same job numbers:
    // the sync matches them (the identity table records how) and writes its departments.
    let out = run(&["--lang", "zh", "sync", "run", "org_to_kingdee", "-c", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("开始同步流程 `org_to_kingdee`（全量）"),
        "{stderr}"
    );
    assert!(stdout.contains("同步结束：成功"), "{stdout}");
    assert!(stdout.contains("部门 32，人员 234"), "{stdout}");

    let out = run(&["sync", "run", "org_to_kingdee", "--dry-run", "-c", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("finished: success"), "{stdout}");
    assert!(
        stdout.contains("plan (users): create 0, update 0, disable 0, unchanged 234"),
        "{stdout}"
    );
    assert!(stdout.contains("created 0, updated 0"), "{stdout}");

    let out = run(&["sync", "runs", "-c", cfg, "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["mode"], "dry_run");
    assert_eq!(runs[1]["mode"], "full");
    assert!(runs.iter().all(|r| r["status"] == "success"));

    let out = run(&["sync", "run", "通讯录", "-c", cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("available: org_to_kingdee"), "{err}");
}
