//! The approval bridge from the command line, as an operator meets it: API keys shown once and
//! listed by prefix only, approvals and their tasks, the webhook outbox and a redelivery of a
//! dead message. The real binary runs on a temporary SQLite store; approvals and messages are
//! written through the store API, as the bridge writes them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use store::{
    ApprovalStatus, ApprovalUpdate, JobFilter, NewApproval, NewWebhookMessage, Store,
    WebhookMessageStatus,
};
use store_sqlite::SqliteStore;

const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");

/// A migrated SQLite store and a config pointing at it.
struct Hub {
    _dir: tempfile::TempDir,
    db: PathBuf,
    config: PathBuf,
}

impl Hub {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.sqlite");
        let config = dir.path().join("dingbridge.toml");
        std::fs::write(
            &config,
            format!("[store]\nurl = \"sqlite://{}\"\n", db.display()),
        )
        .unwrap();
        let hub = Self {
            _dir: dir,
            db,
            config,
        };
        let out = hub.run("en", &["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
        hub
    }

    /// Run `dingbridge --lang <lang> <args> --config <config>`.
    fn run(&self, lang: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--lang", lang])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("DINGBRIDGE_CONFIG")
            .output()
            .unwrap()
    }

    /// Run it and expect success; returns stdout.
    fn ok(&self, lang: &str, args: &[&str]) -> String {
        let out = self.run(lang, args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok("en", args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Run `f` against the same store, in a runtime of its own.
    fn with_store<T>(&self, f: impl AsyncFnOnce(&SqliteStore) -> T) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = SqliteStore::open(&sqlite_url(&self.db), 1).await.unwrap();
            f(&s).await
        })
    }
}

fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Terminal columns of `s` (CJK and full-width forms take two).
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x2E80..=0x9FFF | 0xFF00..=0xFF60 => 2,
            _ => 1,
        })
        .sum()
}

/// The column at which `needle` starts in `line`.
fn column(line: &str, needle: &str) -> usize {
    width(
        &line[..line
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {line}"))],
    )
}

// ---- API keys ------------------------------------------------------------------------------

#[test]
fn a_key_is_shown_once_listed_by_prefix_and_revoked_once() {
    let hub = Hub::new();
    let created = hub.json(&[
        "keys",
        "create",
        "报销系统",
        "--scope",
        "approvals:write",
        "--scope",
        "approvals:read",
        "--json",
    ]);
    let key = created["key"].as_str().unwrap().to_owned();
    let prefix = created["prefix"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("dbk_{prefix}_")), "{created}");
    assert_eq!(created["name"], "报销系统");
    assert_eq!(
        created["scopes"],
        json!(["approvals:write", "approvals:read"])
    );
    assert!(created.get("hash").is_none(), "{created}");
    assert!(
        created["warning"]
            .as_str()
            .unwrap()
            .contains("shown this once"),
        "{created}"
    );

    // In text, in Chinese: the key, the warning, prefix and scopes.
    let text = hub.ok(
        "zh",
        &["keys", "create", "考勤系统", "--scope", "approvals:read"],
    );
    assert!(text.contains("已为 `考勤系统` 创建接口密钥"), "{text}");
    assert!(text.contains("    dbk_"), "{text}");
    assert!(text.contains("只显示这一次"), "{text}");
    assert!(
        text.contains("前缀：") && text.contains("权限范围：approvals:read"),
        "{text}"
    );
    let text_en = hub.ok(
        "en",
        &["keys", "create", "人事系统", "--scope", "deliveries:write"],
    );
    assert!(
        text_en.contains("API key created for `人事系统`") && text_en.contains("shown this once"),
        "{text_en}"
    );

    // The listing has the prefix and name, never the key or its hash.
    let hash = engine::approvals::keys::hash_key(&key);
    let secret = key.rsplit('_').next().unwrap();
    for lang in ["en", "zh"] {
        let list = hub.ok(lang, &["keys", "list"]);
        assert!(
            list.contains(&prefix) && list.contains("报销系统") && list.contains("考勤系统"),
            "{list}"
        );
        assert!(!list.contains(secret) && !list.contains(&hash), "{list}");
        assert!(list.contains("approvals:write,approvals:read"), "{list}");
    }
    let zh = hub.ok("zh", &["keys", "list"]);
    let lines: Vec<&str> = zh.lines().collect();
    assert!(
        lines[0].starts_with("前缀") && lines[0].contains("最近使用"),
        "{zh}"
    );
    // Columns line up under the Chinese headings.
    assert_eq!(
        column(lines[0], "名称"),
        column(lines[1], "报销系统"),
        "{zh}"
    );
    let listed = hub.json(&["keys", "list", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["prefix"], prefix.as_str());
    assert_eq!(listed[0]["revoked_at"], Value::Null);
    let raw = serde_json::to_string(&listed).unwrap();
    assert!(!raw.contains("hash") && !raw.contains(secret) && !raw.contains(&hash));

    // Revoke once; the second time, and an unknown prefix, are exit 1 with a clear line.
    let text = hub.ok("en", &["keys", "revoke", &prefix]);
    assert!(text.contains(&prefix) && text.contains("revoked"), "{text}");
    let again = hub.run("en", &["keys", "revoke", &prefix]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("revoked already"),
        "{}",
        stderr(&again)
    );
    let again = hub.run("zh", &["keys", "revoke", &prefix]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("已于"), "{}", stderr(&again));
    let unknown = hub.run("en", &["keys", "revoke", "zzzzzzzz"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no API key with prefix `zzzzzzzz`"),
        "{}",
        stderr(&unknown)
    );
    let listed = hub.json(&["keys", "list", "--json"]);
    assert!(listed[0]["revoked_at"].is_i64(), "{listed}");
    assert_eq!(listed[1]["revoked_at"], Value::Null);

    // The revoked key no longer authenticates; every change left an audit row by `cli`.
    hub.with_store(async |s| {
        let auth = engine::approvals::keys::authenticate(s, Some(&key), "approvals:read")
            .await
            .unwrap();
        assert!(auth.is_err(), "{auth:?}");
        let audit = s.list_audit(50).await.unwrap();
        let mut actions: Vec<(&str, &str)> = audit
            .iter()
            .map(|a| (a.entry.action.as_str(), a.entry.target.as_str()))
            .collect();
        actions.sort_unstable();
        assert_eq!(
            actions
                .iter()
                .filter(|(a, _)| *a == "api_key.create")
                .count(),
            3
        );
        assert_eq!(
            actions
                .iter()
                .filter(|(a, _)| *a == "api_key.revoke")
                .collect::<Vec<_>>(),
            vec![&("api_key.revoke", prefix.as_str())]
        );
        assert!(audit.iter().all(|a| a.entry.actor == "cli"));
        let created = audit
            .iter()
            .find(|a| a.entry.action == "api_key.create" && a.entry.target == prefix)
            .unwrap();
        assert_eq!(created.entry.detail["name"], "报销系统");
        assert!(!created.entry.detail.to_string().contains(secret));
    });
}

#[test]
fn an_unknown_scope_is_exit_2_and_lists_the_known_ones() {
    let hub = Hub::new();
    let out = hub.run(
        "en",
        &[
            "keys",
            "create",
            "报销系统",
            "--scope",
            "approvals:write",
            "--scope",
            "approvals:admin",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for s in [
        "approvals:admin",
        "approvals:write",
        "approvals:read",
        "deliveries:write",
    ] {
        assert!(err.contains(s), "{err}");
    }
    let out = hub.run(
        "zh",
        &["keys", "create", "报销系统", "--scope", "approval:read"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("未知的权限范围 `approval:read`；可用：approvals:write"),
        "{}",
        stderr(&out)
    );
    // Without a scope clap refuses it (exit 2 as well).
    let out = hub.run("en", &["keys", "create", "报销系统"]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing was stored.
    assert_eq!(hub.json(&["keys", "list", "--json"]), json!([]));
    assert!(hub.ok("en", &["keys", "list"]).contains("no API keys"));
}

// ---- approvals and webhooks ----------------------------------------------------------------

#[test]
fn an_empty_store_has_no_approvals_and_unknown_ids_are_exit_1() {
    let hub = Hub::new();
    assert_eq!(hub.json(&["approvals", "list", "--json"]), json!([]));
    assert_eq!(
        hub.json(&["approvals", "list", "--status", "running", "--json"]),
        json!([])
    );
    assert!(hub.ok("zh", &["approvals", "list"]).contains("没有审批"));
    assert!(
        hub.ok("en", &["approvals", "list"])
            .contains("no approvals")
    );
    let out = hub.run("en", &["approvals", "list", "--status", "approved"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));

    let out = hub.run("en", &["approvals", "show", "apv_nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no approval `apv_nope`"));
    let out = hub.run("zh", &["webhooks", "list", "apv_nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("找不到审批或 Webhook 消息主题"),
        "{}",
        stderr(&out)
    );
    let out = hub.run("en", &["webhooks", "redeliver", "apv_nope.started"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no webhook message `apv_nope.started`"),
        "{}",
        stderr(&out)
    );
}

const APPROVAL: &str = "apv_0190f3a2b4c67d8e9f00112233445566";
const OTHER: &str = "apv_0190f3a2b4c67d8e9f00112233445599";
const FLOW: &str = "报销审批";

/// An approval in `status` with a DingTalk snapshot (two tasks), as the bridge stores it.
async fn insert_approval(
    s: &SqliteStore,
    id: &str,
    api_key_id: Option<i64>,
    business_key: &str,
    title: &str,
    status: ApprovalStatus,
    at: i64,
) {
    let mut tx = s.begin().await.unwrap();
    tx.insert_approval(&NewApproval {
        id: id.into(),
        flow: FLOW.into(),
        api_key_id,
        process_code: "PROC-EXPENSE-01".into(),
        originator: "zhangsan".into(),
        business_key: Some(business_key.into()),
        request: json!({
            "template": "费用报销",
            "originator": {"job_number": "A0001"},
            "business_key": business_key,
            "form": {"报销事由": "上海客户拜访差旅", "金额": 3280.5},
        }),
        created_at: at,
    })
    .await
    .unwrap();
    tx.update_approval(&ApprovalUpdate {
        id: id.into(),
        instance_id: Some(format!("inst-{business_key}")),
        status: Some(status),
        result: (status == ApprovalStatus::Completed).then(|| "agree".into()),
        snapshot: Some(json!({
            "title": title,
            "status": "RUNNING",
            "tasks": [
                {"task_id": 101, "userid": "lisi", "task_status": "COMPLETED",
                 "task_result": "AGREE", "activity_id": "部门主管审批",
                 "create_time": "2024-06-03 09:00:00", "finish_time": "2024-06-03 10:12:00"},
                {"task_id": 102, "userid": "wangwu", "task_status": "RUNNING",
                 "activity_id": "财务审批", "create_time": "2024-06-03 10:12:00"},
            ],
        })),
        now: at + 1,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[test]
fn approvals_show_their_tasks_and_messages_and_a_dead_message_is_redelivered() {
    let hub = Hub::new();
    let now = engine::clock::now_ms();
    let ids = ["started", "task.101.agree", "task.102.started"].map(|s| format!("{APPROVAL}.{s}"));
    let key = hub.json(&[
        "keys",
        "create",
        "财务共享中心",
        "--scope",
        "approvals:write",
        "--json",
    ]);
    let key_prefix = key["prefix"].as_str().unwrap().to_owned();
    hub.with_store(async |s| {
        insert_approval(
            s,
            APPROVAL,
            key["id"].as_i64(),
            "BX-2024-报销-0001",
            "张三提交的费用报销",
            ApprovalStatus::Running,
            now - 60_000,
        )
        .await;
        insert_approval(
            s,
            OTHER,
            None,
            "BX-2024-报销-0002",
            "李四提交的差旅申请",
            ApprovalStatus::Completed,
            now - 30_000,
        )
        .await;
        let mut tx = s.begin().await.unwrap();
        for (id, kind) in ids.iter().zip([
            "approval.started",
            "approval.task.finished",
            "approval.task.started",
        ]) {
            tx.add_webhook_message(&NewWebhookMessage {
                subject: APPROVAL.into(),
                endpoint: "erp:/hooks/审批".into(),
                message_id: id.clone(),
                event_type: kind.into(),
                payload: json!({"type": kind, "data": {"business_key": "BX-2024-报销-0001"}}),
                created_at: now,
            })
            .await
            .unwrap()
            .unwrap();
        }
        tx.finish_webhook_message(&ids[0], WebhookMessageStatus::Delivered, 1, now)
            .await
            .unwrap();
        tx.finish_webhook_message(&ids[1], WebhookMessageStatus::Dead, 9, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });

    // list: newest first, filters by status and business key.
    let all = hub.json(&["approvals", "list", "--json"]);
    let listed: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [OTHER, APPROVAL]);
    let running = hub.json(&["approvals", "list", "--status", "running", "--json"]);
    assert_eq!(running.as_array().unwrap().len(), 1);
    assert_eq!(running[0]["id"], APPROVAL);
    assert_eq!(running[0]["business_key"], "BX-2024-报销-0001");
    let by_key = hub.json(&[
        "approvals",
        "list",
        "--business-key",
        "BX-2024-报销-0002",
        "--json",
    ]);
    assert_eq!(by_key.as_array().unwrap().len(), 1);
    assert_eq!(by_key[0]["id"], OTHER);
    assert_eq!(
        hub.json(&["approvals", "list", "--flow", "别的流程", "--json"]),
        json!([])
    );
    assert_eq!(
        hub.json(&["approvals", "list", "--limit", "1", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let zh = hub.ok("zh", &["approvals", "list"]);
    let lines: Vec<&str> = zh.lines().collect();
    assert_eq!(lines.len(), 3, "{zh}");
    assert!(
        lines[0].contains("业务单号") && lines[0].contains("标题"),
        "{zh}"
    );
    assert!(
        lines[1].contains(OTHER) && lines[1].contains("completed") && lines[1].contains("agree"),
        "{zh}"
    );
    assert!(
        lines[2].contains("张三提交的费用报销") && lines[2].contains("running"),
        "{zh}"
    );
    for needle in ["标题", "发起人"] {
        let at = column(lines[0], needle);
        let cell = if needle == "标题" {
            "张三提交的费用报销"
        } else {
            "zhangsan"
        };
        assert_eq!(at, column(lines[2], cell), "{needle}:\n{zh}");
    }

    // show: the approval, its tasks from the snapshot, its messages.
    let show = hub.ok("zh", &["approvals", "show", APPROVAL]);
    for needle in [
        APPROVAL,
        "running",
        "inst-BX-2024-报销-0001",
        "BX-2024-报销-0001",
        "张三提交的费用报销",
        "PROC-EXPENSE-01",
        FLOW,
        "审批任务（2）",
        "lisi",
        "AGREE",
        "部门主管审批",
        "wangwu",
        "财务审批",
        "Webhook 消息（3）",
        "approval.task.finished",
        "dead",
        "delivered",
        &format!("{key_prefix} (财务共享中心)"),
    ] {
        assert!(show.contains(needle), "{needle}:\n{show}");
    }
    let dead_line = show.lines().find(|l| l.contains(&ids[1])).unwrap();
    assert!(
        dead_line.contains("dead") && dead_line.contains(" 9 "),
        "{show}"
    );
    let show_en = hub.ok("en", &["approvals", "show", OTHER]);
    assert!(
        show_en.contains("completed")
            && show_en.contains("agree")
            && show_en.contains("tasks (2):"),
        "{show_en}"
    );
    assert!(
        show_en.contains(&format!("no webhook messages for `{OTHER}`")),
        "{show_en}"
    );
    let shown = hub.json(&["approvals", "show", APPROVAL, "--json"]);
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["instance_id"], "inst-BX-2024-报销-0001");
    assert_eq!(shown["snapshot"]["tasks"][0]["userid"], "lisi");
    let messages = shown["webhook_messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["status"], "dead");
    assert_eq!(messages[1]["attempts"], 9);

    // webhooks list: seq, type, status, attempts.
    let listed = hub.json(&["webhooks", "list", APPROVAL, "--json"]);
    let statuses: Vec<(i64, &str, &str, i64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["event_type"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
                m["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (1, "approval.started", "delivered", 1),
            (2, "approval.task.finished", "dead", 9),
            (3, "approval.task.started", "pending", 0),
        ]
    );
    let text = hub.ok("zh", &["webhooks", "list", APPROVAL]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("序号") && lines[0].contains("尝试"),
        "{text}"
    );
    assert_eq!(column(lines[0], "状态"), column(lines[2], "dead"), "{text}");
    assert!(
        lines[3].starts_with('3') && lines[3].contains("pending"),
        "{text}"
    );
    // An approval without messages lists none (exit 0).
    assert_eq!(hub.json(&["webhooks", "list", OTHER, "--json"]), json!([]));

    // The message behind the dead one cannot jump the queue.
    let out = hub.run("en", &["webhooks", "redeliver", &ids[2]]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("redeliver {}", ids[1])),
        "{}",
        stderr(&out)
    );

    // Redeliver the dead message: pending again, one webhook.deliver job for the flow.
    let deliveries = |hub: &Hub| {
        hub.with_store(async |s| {
            s.list_jobs(&JobFilter {
                kind: Some("webhook.deliver".into()),
                ..JobFilter::default()
            })
            .await
            .unwrap()
        })
    };
    assert!(deliveries(&hub).is_empty());
    let text = hub.ok("zh", &["webhooks", "redeliver", &ids[1]]);
    assert!(text.contains("已重新进入待投递"), "{text}");
    let jobs = deliveries(&hub);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].payload["message_id"], ids[1].as_str());
    assert_eq!(jobs[0].flow.as_deref(), Some(FLOW));
    assert!(
        text.contains(&format!("投递作业 {} 已入队", jobs[0].id.0)),
        "{text}"
    );
    let queued = hub.json(&[
        "jobs", "list", "--status", "queued", "--flow", FLOW, "--json",
    ]);
    assert!(
        queued.as_array().unwrap().iter().any(
            |j| j["kind"] == "webhook.deliver" && j["payload"]["message_id"] == ids[1].as_str()
        ),
        "{queued}"
    );
    // The one behind it still waits its turn.
    let out = hub.run("en", &["webhooks", "redeliver", &ids[2]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is waiting for delivery"),
        "{}",
        stderr(&out)
    );
    let listed = hub.json(&["webhooks", "list", APPROVAL, "--json"]);
    assert_eq!(listed[1]["status"], "pending");
    assert_eq!(listed[0]["status"], "delivered");
    hub.with_store(async |s| {
        let audit = s.list_audit(10).await.unwrap();
        let row = audit
            .iter()
            .find(|a| a.entry.action == "webhook.redeliver")
            .unwrap();
        assert_eq!(row.entry.actor, "cli");
        assert_eq!(row.entry.target, ids[1]);
        assert_eq!(row.entry.detail["previous_status"], "dead");
        assert_eq!(row.entry.detail["subject"], APPROVAL);
    });

    let out = hub.run("en", &["webhooks", "redeliver", "apv_nope.started"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_lists_the_new_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = stdout(&out);
    for cmd in ["keys", "approvals", "webhooks"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
    for (cmd, subs) in [
        ("keys", &["create", "list", "revoke"][..]),
        ("approvals", &["list", "show"][..]),
        ("webhooks", &["list", "redeliver"][..]),
    ] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        let text = stdout(&out);
        for s in subs {
            assert!(text.contains(s), "{cmd} --help lacks {s}:\n{text}");
        }
    }
}
