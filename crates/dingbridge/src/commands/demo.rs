//! `demo`: the DingTalk and Kingdee simulators, and a node on an embedded SQLite store running
//! `examples/dingbridge.toml` against them. It plays a scenario a newcomer can watch:
//! 1. the org sync copies the simulated company (杭州示例科技有限公司: 33 departments over 5
//!    levels, 234 current employees) into an empty Kingdee, with progress lines;
//! 2. a new employee is added in DingTalk through its API; the contact event arrives over
//!    Stream and the employee appears in Kingdee's BD_Empinfo;
//! 3. alongside, a batch of self-test jobs shows the queue: one retries, one is a dead letter.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use engine::config::{Config, ConnectionSettings, Lang};
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;
use serde_json::json;
use store::{JobStatus, NewJob, Store, SyncRunStatus};

use super::runtime_error;
use crate::Failure;
use crate::messages::Msg;

const EXAMPLE: &str = include_str!("../../../../examples/dingbridge.toml");

/// Approval-like titles, so the transfer log reads like real work.
const TITLES: [&str; 6] = [
    "费用报销 · 张伟 · 差旅费",
    "请假 · 李娜 · 年假 3 天",
    "采购申请 · 王芳 · 笔记本电脑",
    "费用报销 · 刘洋 · 招待费",
    "入职 · 陈静 · 研发中心/平台研发部",
    "离职 · 赵磊 · 销售中心/华东大区",
];

pub async fn demo(
    listen: &str,
    data_dir: &Path,
    seconds: Option<u64>,
    lang: Lang,
) -> Result<(), Failure> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| runtime_error(lang, &format!("cannot create {}: {e}", data_dir.display())))?;
    // The simulators, on free ports: the same company in DingTalk, an empty Kingdee (no
    // departments or employees yet) for the org sync to fill.
    let seed = Seed::builtin();
    let dingtalk = DingTalkSandbox::new(DingTalkSandboxConfig::default(), &seed);
    let kingdee = KingdeeSandbox::new(
        KingdeeSandboxConfig {
            seed_org: false,
            ..KingdeeSandboxConfig::default()
        },
        &seed,
    );
    let (dt_listener, dt_addr) = server::bind("127.0.0.1:0")
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let (kd_listener, kd_addr) = server::bind("127.0.0.1:0")
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    tokio::spawn(sandbox::dingtalk::serve(dt_listener, dingtalk));
    tokio::spawn(sandbox::kingdee::serve(kd_listener, kingdee));
    // The example with the store moved into the data dir and the connections pointed at the
    // simulators, written out so that `jobs`, `dlq` and `sync` can be pointed at the demo
    // with `-c <data-dir>/dingbridge.toml`.
    let url = format!("sqlite://{}", data_dir.join("demo.sqlite").display());
    let text = EXAMPLE
        .replace(
            "url = \"sqlite://dingbridge.sqlite\"",
            &format!("url = \"{url}\""),
        )
        .replace("http://127.0.0.1:8089", &format!("http://{dt_addr}"))
        .replace("http://127.0.0.1:8090", &format!("http://{kd_addr}"));
    let config_path = data_dir.join("dingbridge.toml");
    std::fs::write(&config_path, &text).map_err(|e| {
        runtime_error(
            lang,
            &format!("cannot write {}: {e}", config_path.display()),
        )
    })?;
    let cfg = Config::from_str(&text, &config_path.display().to_string())
        .map_err(|e| Failure::input(e.render(lang)))?;
    println!(
        "{}",
        Msg::DemoIntro {
            dir: &data_dir.display().to_string()
        }
        .text(lang)
    );
    println!(
        "{}",
        Msg::DemoSandboxes {
            dingtalk: &format!("http://{dt_addr}"),
            kingdee: &format!("http://{kd_addr}"),
        }
        .text(lang)
    );
    let scenario_cfg = cfg.clone();
    let ready = Box::new(
        move |store: std::sync::Arc<dyn store::Store>,
              shutdown: tokio_util::sync::CancellationToken| {
            tokio::spawn(org_sync_scenario(
                scenario_cfg,
                Arc::clone(&store),
                shutdown.clone(),
                lang,
            ));
            tokio::spawn(async move {
                let now = engine::clock::now_ms();
                let run = now / 1000; // one batch per demo start
                let mut count = 0;
                for (n, title) in TITLES.iter().cycle().take(24).enumerate() {
                    let mut payload =
                        json!({ "key": format!("demo-{run}-{n}"), "title": title, "sleep_ms": 50 });
                    if n == 7 {
                        payload["fail_attempts"] = json!(1);
                    }
                    if n == 13 {
                        payload["permanent"] = json!(true);
                    }
                    let job = NewJob::new("selftest", payload, now)
                        .flow("demo")
                        .idempotency_key(format!("demo-{run}-{n}"));
                    if store.enqueue(&job).await.is_ok() {
                        count += 1;
                    }
                }
                println!("{}", Msg::DemoEnqueued { count }.text(lang));
                let deadline =
                    seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                let mut last = String::new();
                while !shutdown.is_cancelled() {
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        shutdown.cancel();
                        break;
                    }
                    if let Ok(depths) = store.queue_depths().await {
                        let n = |st: JobStatus| {
                            depths
                                .iter()
                                .filter(|d| d.status == st)
                                .map(|d| d.count)
                                .sum::<i64>()
                        };
                        let line = Msg::Progress {
                            queued: n(JobStatus::Queued) + n(JobStatus::Running),
                            retry: n(JobStatus::Retry),
                            done: n(JobStatus::Done),
                            dead: n(JobStatus::Dead),
                        }
                        .text(lang);
                        if line != last {
                            println!("{line}");
                            last = line;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        },
    );
    super::serve::serve(cfg, Some(listen.to_owned()), lang, Some(ready)).await
}

/// The org-sync part of the demo: a full sync, then a DingTalk change followed into Kingdee.
async fn org_sync_scenario(
    cfg: Config,
    store: Arc<dyn Store>,
    shutdown: tokio_util::sync::CancellationToken,
    lang: Lang,
) {
    let Some(flow) = cfg.flows.get(FLOW) else {
        return;
    };
    let now = engine::clock::now_ms();
    let mut job = engine::node::Node::flow_job(flow, now);
    job.payload = json!({ "mode": "full" });
    job.idempotency_key = Some(format!("demo:{FLOW}:full:{}", now / 1000));
    if store.enqueue(&job).await.is_err() {
        return;
    }
    // Follow the run as the store records it.
    let mut last = String::new();
    let run = loop {
        if shutdown.is_cancelled() {
            return;
        }
        if let Ok(runs) = store.list_sync_runs(Some(FLOW), 1).await
            && let Some(run) = runs.into_iter().next()
        {
            let c = &run.counts;
            let n = |k: &str| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            let line = Msg::DemoSyncProgress {
                status: run.status.as_str(),
                departments: n("departments"),
                users: n("users"),
                created: n("created"),
                failed: n("failed"),
            }
            .text(lang);
            if line != last {
                println!("{line}");
                last = line;
            }
            if run.status != SyncRunStatus::Running {
                break run;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if run.status == SyncRunStatus::Failed {
        return;
    }
    // A new colleague joins in DingTalk; the event travels over Stream to the hub.
    let limiters = match cfg.limiter_registry() {
        Ok(l) => l,
        Err(_) => return,
    };
    let (Some(ConnectionSettings::DingTalk(dt)), Some(ConnectionSettings::Kingdee(kd))) = (
        cfg.connections.get("dingtalk").map(|c| &c.settings),
        cfg.connections.get("kingdee").map(|c| &c.settings),
    ) else {
        return;
    };
    let (Ok(dingtalk), Ok(kingdee)) = (
        engine::connectors::dingtalk_client("dingtalk", dt, limiters.pacer("dingtalk")),
        engine::connectors::kingdee_client("kingdee", kd, limiters.pacer("kingdee")),
    ) else {
        return;
    };
    let job_number = format!("E9{:03}", now % 1000);
    let input = dingtalk::contacts::UserInput {
        name: Some("周新".into()),
        mobile: Some(format!("1390000{:04}", now % 10_000)),
        dept_id_list: Some(vec![dingtalk::DeptId(4)]), // 平台研发部
        job_number: Some(job_number.clone()),
        title: Some("后端工程师".into()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    if let Err(e) = dingtalk.user_create(&input).await {
        tracing::warn!(error = %e, "demo: could not add the new colleague in DingTalk");
        return;
    }
    println!(
        "{}",
        Msg::DemoUserAdded {
            number: &job_number
        }
        .text(lang)
    );
    let query =
        kingdee::QueryRequest::new("BD_Empinfo", ["FStaffNumber", "FName", "FDeptId.FNumber"])
            .filter(format!("FStaffNumber = '{job_number}'"));
    while !shutdown.is_cancelled() && started.elapsed() < Duration::from_secs(60) {
        if let Ok(rows) = kingdee.execute_bill_query(&query).await
            && let Some(row) = rows.first()
        {
            println!(
                "{}",
                Msg::DemoUserSynced {
                    number: &job_number,
                    row: &serde_json::Value::Array(row.clone()).to_string(),
                    millis: started.elapsed().as_millis(),
                }
                .text(lang)
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The org-sync flow of examples/dingbridge.toml.
const FLOW: &str = "org_to_kingdee";
