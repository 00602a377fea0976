//! The binary as a user meets it: bad input gives one clear line and a non-zero exit; a running
//! node answers /healthz, /readyz and /metrics; dead letters can be listed and replayed.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

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

/// Write `text` as a config and run `check` on it; returns (exit code, stderr).
fn check(text: &str, lang: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dingbridge.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(&["--lang", lang, "check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

fn one_line(s: &str) {
    assert_eq!(s.lines().count(), 1, "expected one line, got:\n{s}");
}

#[test]
fn malformed_config_names_file_line_and_fix() {
    let (code, err) = check("[server]\nlisten = \"127.0.0.1:8080\n", "en");
    assert_eq!(code, 2);
    one_line(&err);
    assert!(err.contains("dingbridge.toml:2:"), "{err}");
    assert!(err.contains("syntax"), "{err}");
}

#[test]
fn unknown_key_lists_what_is_allowed() {
    let (code, err) = check("[workers]\ncount = 2\nqueus = [\"default\"]\n", "en");
    assert_eq!(code, 2);
    one_line(&err);
    assert!(err.contains("dingbridge.toml:3:1"), "{err}");
    assert!(
        err.contains("queus") && err.contains("allowed") && err.contains("queues"),
        "{err}"
    );
}

#[test]
fn bad_cron_names_the_flow_and_gives_an_example_in_both_languages() {
    let text = "[flows.org_sync]\nrecipe = \"selftest\"\nschedule = \"every day\"\n";
    let (code, err) = check(text, "en");
    assert_eq!(code, 2);
    one_line(&err);
    assert!(
        err.contains(":3:") && err.contains("org_sync") && err.contains("every day"),
        "{err}"
    );
    let (code, err) = check(text, "zh");
    assert_eq!(code, 2);
    one_line(&err);
    assert!(err.contains("cron") && err.contains("例如"), "{err}");
}

#[test]
fn unreachable_database_is_one_line_and_exit_1() {
    let (code, err) = check(
        "[store]\nurl = \"postgres://nobody@127.0.0.1:9/none\"\n",
        "en",
    );
    assert_eq!(code, 1);
    one_line(&err);
    assert!(
        err.contains("[store] url") && err.contains("127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn unknown_recipe_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dingbridge.toml");
    let db = dir.path().join("s.sqlite");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n\n[flows.sync]\nrecipe = \"no_such_recipe\"\n",
            db.display()
        ),
    )
    .unwrap();
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no_such_recipe")
            && err.contains("available: approval_bridge, approval_to_document, org_sync, selftest"),
        "{err}"
    );
}

#[test]
fn help_is_complete() {
    let out = run(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve", "demo", "check", "migrate", "jobs", "dlq", "--lang", "--config",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
    let out = run(&["dlq", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["list", "show", "replay", "discard"] {
        assert!(text.contains(cmd), "dlq --help lacks {cmd}:\n{text}");
    }
}

/// A node on SQLite: HTTP endpoints, then the dead letter it produced is replayed by the CLI.
#[test]
fn node_serves_health_ready_metrics_and_dlq_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let config = dir.path().join("dingbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n\n[workers]\ncount = 2\npoll_interval_ms = 50\n",
            db.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    assert!(run(&["migrate", "--config", cfg]).status.success());
    // A job that fails permanently, enqueued through the store the node shares.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let s = store_sqlite::SqliteStore::open(&format!("sqlite://{}", db.display()), 1)
            .await
            .unwrap();
        use store::Store;
        let job = store::NewJob::new(
            "selftest",
            serde_json::json!({"permanent": true, "title": "采购申请"}),
            engine::clock::now_ms(),
        );
        s.enqueue(&job).await.unwrap().id.0
    });

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut node = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
            cfg,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let mut ready = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send() {
            ready = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = ready.expect("node answers /readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
    // Wait until the job is a dead letter, then check the metrics say so.
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if metrics.contains("dingbridge_queue_depth{queue=\"default\",status=\"dead\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        metrics.contains("dingbridge_queue_depth{queue=\"default\",status=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("dingbridge_jobs_dead_total"), "{metrics}");
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let _ = node.wait();

    let out = run(&["dlq", "list", "--config", cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&id.to_string()) && text.contains("dead"),
        "{text}"
    );
    let out = run(&[
        "--lang",
        "zh",
        "dlq",
        "replay",
        &id.to_string(),
        "--config",
        cfg,
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("已重新入队"));
    let out = run(&["dlq", "replay", &id.to_string(), "--config", cfg]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "replaying a queued job is refused"
    );
    let out = run(&["dlq", "show", "999999", "--config", cfg]);
    assert_eq!(out.status.code(), Some(2));
}

/// `check` probes each connection: the Kingdee sandbox accepts the block it printed, and
/// refuses a wrong secret with Kingdee's own message.
#[test]
fn check_probes_connections_against_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("kingdee.toml");
    let mut sandbox = Command::new(BIN)
        .args([
            "sandbox",
            "--kingdee-listen",
            "127.0.0.1:0",
            "--dingtalk-listen",
            "127.0.0.1:0",
            "--config-out",
            block.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::fs::metadata(&block).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let block = std::fs::read_to_string(&block).unwrap();
    let store = format!(
        "[store]\nurl = \"sqlite://{}\"\n\n",
        dir.path().join("s.sqlite").display()
    );
    // An in-house SQL database and an HTTP system are probed too.
    let hr = dir.path().join("hr.sqlite");
    std::fs::write(&hr, b"").unwrap();
    let kingdee_url = block
        .lines()
        .find_map(|l| l.strip_prefix("base_url = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let extra = format!(
        "\n[connections.hr_db]\nkind = \"sql\"\nurl = \"sqlite://{}\"\n\n\
         [connections.ehr]\nkind = \"http\"\nbase_url = \"{kingdee_url}\"\n",
        hr.display()
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("{store}{block}{extra}")).unwrap();
    assert!(
        run(&["migrate", "--config", good.to_str().unwrap()])
            .status
            .success()
    );
    let out = run(&["check", "--config", good.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("connection `kingdee`: ok"), "{text}");
    assert!(
        text.contains("connection `dingtalk`: ok (access token issued"),
        "{text}"
    );
    assert!(
        text.contains("connection `hr_db`: ok (Sqlite answers SELECT 1"),
        "{text}"
    );
    assert!(
        text.contains("connection `ehr`: ok (answered HTTP"),
        "{text}"
    );
    // A database nobody answers is a failed probe, named.
    let down = dir.path().join("down.toml");
    std::fs::write(
        &down,
        format!(
            "{store}[connections.hr_db]\nkind = \"sql\"\nurl = \"postgres://nobody@127.0.0.1:9/none\"\n"
        ),
    )
    .unwrap();
    let out = run(&["check", "--config", down.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("connection `hr_db`: FAILED"), "{text}");

    let bad_block: String = block
        .lines()
        .map(|l| {
            if l.starts_with("app_secret") {
                "app_secret = \"00000000000000000000000000000000\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{store}{bad_block}\n")).unwrap();
    let out = run(&["check", "--config", bad.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("connection `kingdee`: FAILED") && text.contains("X-Kd-Signature"),
        "{text}"
    );
    let _ = sandbox.kill();
    let _ = sandbox.wait();
}

/// `demo --seconds N` with nothing else running: the org sync fills Kingdee, then the approvals
/// act turns approved expense claims (started over the REST API and in DingTalk) into audited
/// Kingdee bills, comments their numbers back and delivers signed webhooks to the OA receiver.
/// The test stops the demo (SIGTERM) once it printed its summary; `--seconds` bounds it.
#[test]
fn demo_turns_approvals_into_kingdee_bills_and_webhooks() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut demo = Command::new(BIN)
        .args([
            "--lang",
            "en",
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--seconds",
            "240",
        ])
        .env_remove("LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out: Vec<String> = Vec::new();
    let mut after_summary = None;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(250) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if line.starts_with("approvals summary:") {
                    after_summary = Some(out.len());
                }
                out.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // The summary and the URL lines after it.
        if after_summary.is_some_and(|i| out.len() >= i + 4) {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status();
    let status = demo.wait().unwrap();
    let text = out.join("\n");
    assert!(status.success(), "{status}\n{text}");
    let has = |s: &str| out.iter().any(|l| l.contains(s));
    // The acts before the approvals still play.
    assert!(has("org sync → Kingdee: success"), "{text}");
    assert!(has("Kingdee BD_Empinfo now has employee"), "{text}");
    // Three claims over the REST API, two in the DingTalk app.
    let created = out
        .iter()
        .filter(|l| l.starts_with("OA → POST /api/v1/approvals → 201"))
        .count();
    assert_eq!(created, 3, "{text}");
    assert_eq!(
        out.iter()
            .filter(|l| l.starts_with("DingTalk app:"))
            .count(),
        2,
        "{text}"
    );
    // Four audited bills, each commented back on its approval.
    let bills: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("Kingdee expense bill FYBX"))
        .collect();
    assert_eq!(bills.len(), 4, "{text}");
    for bill in &bills {
        let number = bill.split_whitespace().nth(3).unwrap();
        assert!(
            out.iter()
                .any(|l| l.starts_with("comment written back") && l.ends_with(number)),
            "no comment with {number}:\n{text}"
        );
    }
    // Signed webhooks for the REST-started approvals, the refused one too.
    for key in ["BX-2026-0001", "BX-2026-0002", "BX-2026-0003"] {
        assert!(
            has(&format!("OA received approval.started · {key}")),
            "{text}"
        );
        assert!(
            has(&format!("OA received approval.completed · {key}")),
            "{text}"
        );
    }
    assert!(has("result: refused (signature valid)"), "{text}");
    let summary = &out[after_summary.expect("the approvals summary")];
    assert!(
        summary.contains("(4 approved, 1 refused) → 4 Kingdee expense bills created")
            && summary.contains("webhooks delivered to OA, 0 with a bad signature")
            && !summary.contains("time ran out"),
        "{summary}"
    );
    assert!(has("/api/v1/openapi.json"), "{text}");
    assert!(has("Authorization: Bearer dbk_"), "{text}");
}
