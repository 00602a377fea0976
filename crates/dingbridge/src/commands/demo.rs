//! `demo`: the DingTalk and Kingdee simulators, and a node on an embedded SQLite store running
//! `examples/dingbridge.toml` against them. It plays a scenario a newcomer can watch:
//! 1. the org sync copies the simulated company (杭州示例科技有限公司: 33 departments over 5
//!    levels, 234 current employees) into an empty Kingdee, with progress lines;
//! 2. a new employee is added in DingTalk through its API; the contact event arrives over
//!    Stream and the employee appears in Kingdee's BD_Empinfo;
//! 3. approvals: an in-process OA system (the example's `oa` connection, pointed at a webhook
//!    receiver that verifies Standard Webhooks signatures and prints what it gets) starts three
//!    expense claims through the node's REST API with an API key, two more are started in
//!    DingTalk directly; four are approved and one refused through the simulator's admin API.
//!    The audited Kingdee bills (ER_ExpReimbursement), the bill numbers commented back on the
//!    approvals and the OA's webhooks are printed as they appear, then a summary and the URLs;
//! 4. alongside, a batch of self-test jobs shows the queue: one retries, one is a dead letter.
//!
//! The simulators start fresh every time, so the demo's store does too (`demo.sqlite` in the
//! data dir is removed at start; it stays after the demo for `jobs`, `dlq`, `sync runs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dingtalk::approvals::{FormField, NewInstance};
use dingtalk::{DeptId, DingTalkClient, ProcessInstanceId};
use engine::config::{Config, ConnectionSettings, Lang};
use engine::webhook::WebhookSigner;
use kingdee::KingdeeClient;
use sandbox::admin_client::AdminClient;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::{Seed, User};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use store::{JobStatus, NewJob, Store, SyncRunStatus};
use tokio_util::sync::CancellationToken;

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
    // The simulators start empty-handed every time (in memory), so the store must too: links
    // left by an earlier demo would tell the org sync that this new Kingdee is up to date.
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("demo.sqlite{suffix}"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(runtime_error(
                    lang,
                    &format!("cannot remove {}: {e}", path.display()),
                ));
            }
        }
    }
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
    // The in-house OA system's webhook endpoint (the example's `oa` connection).
    let (oa_listener, oa_addr) = server::bind("127.0.0.1:0")
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let oa_url = format!("http://{oa_addr}/");
    // The demo calls the node's REST API, so it must know the port before the node binds it.
    let listen = concrete_listen(listen);
    // The example with the store moved into the data dir and the connections pointed at the
    // simulators and the OA receiver, written out so that `jobs`, `dlq` and `sync` can be
    // pointed at the demo with `-c <data-dir>/dingbridge.toml`.
    let url = format!("sqlite://{}", data_dir.join("demo.sqlite").display());
    let text = EXAMPLE
        .replace(
            "url = \"sqlite://dingbridge.sqlite\"",
            &format!("url = \"{url}\""),
        )
        .replace("http://127.0.0.1:8089", &format!("http://{dt_addr}"))
        .replace("http://127.0.0.1:8090", &format!("http://{kd_addr}"))
        .replace("http://127.0.0.1:8091/", &oa_url);
    let config_path = data_dir.join("dingbridge.toml");
    std::fs::write(&config_path, &text).map_err(|e| {
        runtime_error(
            lang,
            &format!("cannot write {}: {e}", config_path.display()),
        )
    })?;
    let cfg = Config::from_str(&text, &config_path.display().to_string())
        .map_err(|e| Failure::input(e.render(lang)))?;
    let oa = Oa::new(oa_signer(&cfg), &seed, lang);
    tokio::spawn(oa.clone().serve(oa_listener));
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
    let act = ApprovalAct {
        api: api_base(&listen),
        dingtalk_url: format!("http://{dt_addr}"),
        oa_url,
        oa,
        people: cast(&seed),
        lang,
    };
    let scenario_cfg = cfg.clone();
    let ready = Box::new(move |store: Arc<dyn Store>, shutdown: CancellationToken| {
        tokio::spawn(scenario(
            scenario_cfg,
            Arc::clone(&store),
            shutdown.clone(),
            lang,
            act,
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
            let deadline = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
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
    });
    super::serve::serve(cfg, Some(listen), lang, Some(ready)).await
}

/// `listen` with port 0 replaced by a free port (the demo calls the node's API, so it must
/// know where the node listens; the port is free again when the node binds it).
fn concrete_listen(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => std::net::TcpListener::bind(addr)
            .and_then(|l| l.local_addr())
            .map_or_else(|_| listen.to_owned(), |a| a.to_string()),
        _ => listen.to_owned(),
    }
}

/// The base URL a client on this machine reaches the node at.
fn api_base(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://{listen}"),
    }
}

/// The demo after the node is up: the org sync and the new colleague, then the approvals.
async fn scenario(
    cfg: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    lang: Lang,
    act: ApprovalAct,
) {
    let Some((dingtalk, kingdee)) = org_sync_scenario(&cfg, &store, &shutdown, lang).await else {
        return;
    };
    approvals_scenario(&act, &store, &dingtalk, &kingdee, &shutdown).await;
}

/// The org-sync part of the demo: a full sync, then a DingTalk change followed into Kingdee.
/// Returns the demo's own clients of both simulators once the company is in Kingdee (`None`
/// when the sync failed or the demo is stopping).
async fn org_sync_scenario(
    cfg: &Config,
    store: &Arc<dyn Store>,
    shutdown: &CancellationToken,
    lang: Lang,
) -> Option<(DingTalkClient, KingdeeClient)> {
    let flow = cfg.flows.get(FLOW)?;
    let now = engine::clock::now_ms();
    let mut job = engine::node::Node::flow_job(flow, now);
    job.payload = json!({ "mode": "full" });
    job.idempotency_key = Some(format!("demo:{FLOW}:full:{}", now / 1000));
    store.enqueue(&job).await.ok()?;
    // Follow the run as the store records it.
    let mut last = String::new();
    let run = loop {
        if shutdown.is_cancelled() {
            return None;
        }
        if let Ok(runs) = store.list_sync_runs(Some(FLOW), 1).await
            && let Some(run) = runs.into_iter().next()
        {
            let c = &run.counts;
            let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
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
        return None;
    }
    // A new colleague joins in DingTalk; the event travels over Stream to the hub.
    let limiters = cfg.limiter_registry().ok()?;
    let (Some(ConnectionSettings::DingTalk(dt)), Some(ConnectionSettings::Kingdee(kd))) = (
        cfg.connections.get("dingtalk").map(|c| &c.settings),
        cfg.connections.get("kingdee").map(|c| &c.settings),
    ) else {
        return None;
    };
    let (Ok(dingtalk), Ok(kingdee)) = (
        engine::connectors::dingtalk_client("dingtalk", dt, limiters.pacer("dingtalk")),
        engine::connectors::kingdee_client("kingdee", kd, limiters.pacer("kingdee")),
    ) else {
        return None;
    };
    let job_number = format!("E9{:03}", now % 1000);
    let input = dingtalk::contacts::UserInput {
        name: Some("周新".into()),
        mobile: Some(format!("1390000{:04}", now % 10_000)),
        dept_id_list: Some(vec![DeptId(4)]), // 平台研发部
        job_number: Some(job_number.clone()),
        title: Some("后端工程师".into()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    if let Err(e) = dingtalk.user_create(&input).await {
        tracing::warn!(error = %e, "demo: could not add the new colleague in DingTalk");
        return Some((dingtalk, kingdee));
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
                    row: &Value::Array(row.clone()).to_string(),
                    millis: started.elapsed().as_millis(),
                }
                .text(lang)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Some((dingtalk, kingdee))
}

/// The org-sync flow of examples/dingbridge.toml.
const FLOW: &str = "org_to_kingdee";

// ---- approvals ---------------------------------------------------------------------------

/// The 费用报销 template (flows `approvals` and `expense_to_kingdee` of the example).
const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
/// Its alias in `[flows.approvals.options.templates]`.
const EXPENSE_ALIAS: &str = "expense";
/// How long the approvals act waits for its bills, comments and webhooks.
const ACT_LIMIT: Duration = Duration::from_secs(120);

/// One expense claim of the act.
struct Claim {
    /// Started by the OA system over the REST API with this business key; `None`: started in
    /// the DingTalk app.
    business_key: Option<&'static str>,
    reason: &'static str,
    category: &'static str,
    /// (费用类型, 金额（元）, 费用说明)
    rows: &'static [(&'static str, f64, &'static str)],
    /// Approved, or refused with this remark.
    refusal: Option<&'static str>,
}

impl Claim {
    fn total(&self) -> f64 {
        self.rows.iter().map(|r| r.1).sum()
    }
}

const CLAIMS: [Claim; 5] = [
    Claim {
        business_key: Some("BX-2026-0001"),
        reason: "上海客户拜访差旅",
        category: "差旅报销",
        rows: &[
            ("差旅费", 1280.5, "高铁 杭州—上海往返"),
            ("招待费", 360.0, "客户午餐"),
        ],
        refusal: None,
    },
    Claim {
        business_key: Some("BX-2026-0002"),
        reason: "季度客户答谢会交通与物料",
        category: "日常报销",
        rows: &[
            ("交通费", 286.0, "会场往返打车"),
            ("办公费", 158.0, "签到板与文具"),
        ],
        refusal: None,
    },
    Claim {
        business_key: Some("BX-2026-0003"),
        reason: "北京展会差旅（含客户晚宴）",
        category: "项目报销",
        rows: &[
            ("差旅费", 5600.0, "机票与酒店四晚"),
            ("招待费", 2400.0, "客户晚宴"),
        ],
        refusal: Some("超出差旅标准，请拆分后重新提交"),
    },
    Claim {
        business_key: None,
        reason: "成都客户培训",
        category: "差旅报销",
        rows: &[("差旅费", 860.0, "往返机票"), ("交通费", 140.0, "市内交通")],
        refusal: None,
    },
    Claim {
        business_key: None,
        reason: "部门办公用品",
        category: "日常报销",
        rows: &[("办公费", 420.0, "打印纸与墨盒")],
        refusal: None,
    },
];

/// What the approvals act needs that exists before the node starts.
struct ApprovalAct {
    /// The node's base URL.
    api: String,
    /// The DingTalk simulator (its admin API decides the approvals).
    dingtalk_url: String,
    oa_url: String,
    oa: Oa,
    /// Who starts the claims, one each.
    people: Vec<User>,
    lang: Lang,
}

/// Five colleagues below the company root (their departments exist in Kingdee after the sync).
fn cast(seed: &Seed) -> Vec<User> {
    let claimants: Vec<&User> = seed
        .users
        .iter()
        .filter(|u| u.active && !u.job_number.is_empty())
        .filter(|u| u.dept_ids.first().is_some_and(|d| *d != 1))
        .collect();
    if claimants.is_empty() {
        return Vec::new();
    }
    [7usize, 23, 51, 88, 130]
        .iter()
        .map(|i| claimants[i % claimants.len()].clone())
        .collect()
}

/// One approval the act started.
struct Started {
    /// The business key, or the originator's name (app-started claims have no key).
    label: String,
    instance: String,
    /// The hub's approval id (REST-started claims).
    approval: Option<String>,
    refusal: Option<&'static str>,
}

async fn approvals_scenario(
    act: &ApprovalAct,
    store: &Arc<dyn Store>,
    dingtalk: &DingTalkClient,
    kingdee: &KingdeeClient,
    shutdown: &CancellationToken,
) {
    let lang = act.lang;
    if act.people.is_empty() {
        return;
    }
    // The OA system's API key, as `dingbridge keys create` would make it.
    let scopes = ["approvals:write".to_owned(), "approvals:read".to_owned()];
    let key = match engine::approvals::keys::create_key(
        store.as_ref(),
        "demo-oa",
        &scopes,
        engine::clock::now_ms(),
    )
    .await
    {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "demo: could not create the OA system's API key");
            return;
        }
    };
    println!(
        "{}",
        Msg::DemoApprovalsIntro {
            oa: &act.oa_url,
            key_prefix: &key.record.prefix,
        }
        .text(lang)
    );
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "demo: no HTTP client");
            return;
        }
    };
    let mut started: Vec<Started> = Vec::new();
    for (claim, who) in CLAIMS.iter().zip(act.people.iter().cycle()) {
        if shutdown.is_cancelled() {
            return;
        }
        let result = match claim.business_key {
            Some(business_key) => {
                start_over_api(&http, &act.api, &key.key, claim, business_key, who, lang).await
            }
            None => start_in_app(dingtalk, claim, who, lang).await,
        };
        match result {
            Ok(s) => started.push(s),
            Err(detail) => println!(
                "{}",
                Msg::DemoApprovalStartFailed {
                    what: claim.business_key.unwrap_or(&who.name),
                    detail: &detail,
                }
                .text(lang)
            ),
        }
    }
    // The approvers decide a moment later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let admin = AdminClient::new(&act.dingtalk_url, "dingtalk");
    for s in &started {
        let (path, body) = match s.refusal {
            None => ("approve", json!({ "remark": "同意" })),
            Some(remark) => ("refuse", json!({ "remark": remark })),
        };
        match admin
            .post(&format!("approvals/{}/{path}", s.instance), &body)
            .await
        {
            Ok(_) => println!(
                "{}",
                Msg::DemoApprovalDecided {
                    label: &s.label,
                    approved: s.refusal.is_none(),
                    remark: s.refusal.unwrap_or(""),
                }
                .text(lang)
            ),
            Err(e) => tracing::warn!(error = %e, instance = %s.instance, "demo: could not decide"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Follow the bills into Kingdee, the comments back on the approvals and the webhooks.
    let approved: HashSet<&str> = started
        .iter()
        .filter(|s| s.refusal.is_none())
        .map(|s| s.instance.as_str())
        .collect();
    let from_api: Vec<&str> = started
        .iter()
        .filter_map(|s| s.approval.as_deref())
        .collect();
    let list = started
        .iter()
        .map(|s| format!("'{}'", s.instance))
        .collect::<Vec<_>>()
        .join(",");
    let query = kingdee::QueryRequest::new(
        "ER_ExpReimbursement",
        [
            "FBillNo",
            "F_DDInstanceId",
            "FProposerID.FName",
            "FExpAmountSum",
            "FDocumentStatus",
        ],
    )
    .filter(format!("F_DDInstanceId in ({list})"));
    // instance → (bill number, approval title)
    let mut bills: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut commented: HashSet<String> = HashSet::new();
    let deadline = std::time::Instant::now() + ACT_LIMIT;
    let complete = loop {
        if shutdown.is_cancelled() {
            return;
        }
        if let Ok(rows) = kingdee.execute_bill_query(&query).await {
            for row in rows {
                let text = |i: usize| row.get(i).and_then(Value::as_str).unwrap_or_default();
                let (number, instance, proposer, status) = (text(0), text(1), text(2), text(4));
                if status != "C" || bills.contains_key(instance) {
                    continue;
                }
                let amount = row.get(3).and_then(Value::as_f64).unwrap_or_default();
                let title = dingtalk
                    .approval_get(&ProcessInstanceId(instance.to_owned()))
                    .await
                    .map(|i| i.title)
                    .unwrap_or_default();
                println!(
                    "{}",
                    Msg::DemoBill {
                        number,
                        proposer,
                        amount,
                        title: &title,
                    }
                    .text(lang)
                );
                bills.insert(instance.to_owned(), (number.to_owned(), title));
            }
        }
        for (instance, (number, title)) in &bills {
            if commented.contains(instance) {
                continue;
            }
            let Ok(inst) = dingtalk
                .approval_get(&ProcessInstanceId(instance.clone()))
                .await
            else {
                continue;
            };
            let remark = inst.operation_records.iter().find_map(|r| {
                r.get("remark")
                    .and_then(Value::as_str)
                    .filter(|t| t.contains(number.as_str()))
            });
            if let Some(text) = remark {
                println!("{}", Msg::DemoComment { title, text }.text(lang));
                commented.insert(instance.clone());
            }
        }
        let finished = act.oa.finished();
        let webhooks_done = from_api.iter().all(|id| finished.contains(*id));
        if approved.iter().all(|i| commented.contains(*i)) && webhooks_done {
            break true;
        }
        if std::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    let (webhooks, bad_signatures) = act.oa.counts();
    println!(
        "{}",
        Msg::DemoApprovalsSummary {
            approvals: started.len(),
            approved: approved.len(),
            refused: started.len() - approved.len(),
            bills: bills.len(),
            webhooks,
            bad_signatures,
            complete,
        }
        .text(lang)
    );
    println!(
        "{}",
        Msg::DemoApiUrls {
            base: &act.api,
            key: &key.key,
        }
        .text(lang)
    );
}

/// `POST /api/v1/approvals` as the OA system sends it: plain JSON, the originator by job number.
async fn start_over_api(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    claim: &Claim,
    business_key: &str,
    who: &User,
    lang: Lang,
) -> Result<Started, String> {
    let rows: Vec<Value> = claim
        .rows
        .iter()
        .map(|(kind, amount, note)| json!({ "费用类型": kind, "金额（元）": amount, "费用说明": note }))
        .collect();
    let body = json!({
        "template": EXPENSE_ALIAS,
        "originator": { "job_number": who.job_number },
        "business_key": business_key,
        "form": {
            "报销事由": claim.reason,
            "报销类别": claim.category,
            "费用明细": rows,
            "报销总金额（元）": claim.total(),
        }
    });
    let resp = http
        .post(format!("{api}/api/v1/approvals"))
        .bearer_auth(key)
        .header("Idempotency-Key", format!("demo-{business_key}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if status != reqwest::StatusCode::CREATED {
        let e = &answer["error"];
        let message = e[if lang == Lang::Zh {
            "message_zh"
        } else {
            "message"
        }]
        .as_str()
        .unwrap_or_default();
        return Err(format!("HTTP {status}: {message} {}", e["fields"]));
    }
    let approval = answer["id"].as_str().unwrap_or_default().to_owned();
    let instance = answer["instance_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "{}",
        Msg::DemoApprovalStartedApi {
            business_key,
            who: &who.name,
            amount: claim.total(),
            approval: &approval,
            instance: &instance,
        }
        .text(lang)
    );
    Ok(Started {
        label: business_key.to_owned(),
        instance,
        approval: Some(approval),
        refusal: claim.refusal,
    })
}

/// An expense claim started in the DingTalk app (the v1.0 create API, as the app does).
async fn start_in_app(
    dingtalk: &DingTalkClient,
    claim: &Claim,
    who: &User,
    lang: Lang,
) -> Result<Started, String> {
    let rows = claim
        .rows
        .iter()
        .map(|(kind, amount, note)| {
            vec![
                FormField::text("费用类型", *kind),
                FormField::text("金额（元）", format!("{amount:.2}")),
                FormField::text("费用说明", *note),
            ]
        })
        .collect();
    let form = vec![
        FormField::text("报销事由", claim.reason),
        FormField::text("报销类别", claim.category),
        FormField::table("费用明细", rows),
        FormField::text("报销总金额（元）", format!("{:.2}", claim.total())),
    ];
    let dept = who
        .dept_ids
        .first()
        .and_then(|d| i64::try_from(*d).ok())
        .map(DeptId);
    let req = NewInstance::new(EXPENSE, who.userid.as_str(), dept, form);
    let mut tries = 0;
    let instance = loop {
        match dingtalk.approval_create(&req).await {
            Ok(id) => break id.0,
            Err(e) if e.is_retryable() && tries < 5 => {
                tries += 1;
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(300))).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    println!(
        "{}",
        Msg::DemoApprovalStartedApp {
            who: &who.name,
            amount: claim.total(),
            instance: &instance,
        }
        .text(lang)
    );
    let label = if lang == Lang::Zh {
        format!("{}（钉钉 App）", who.name)
    } else {
        format!("{} (DingTalk app)", who.name)
    };
    Ok(Started {
        label,
        instance,
        approval: None,
        refusal: claim.refusal,
    })
}

// ---- the OA system's webhook receiver ------------------------------------------------------

/// The signing key of the example's `oa` connection.
fn oa_signer(cfg: &Config) -> Option<WebhookSigner> {
    match cfg.connections.get("oa").map(|c| &c.settings) {
        Some(ConnectionSettings::Http(http)) => http
            .hmac_secret
            .as_ref()
            .and_then(|s| WebhookSigner::from_secret(s.expose_secret()).ok()),
        _ => None,
    }
}

/// The in-house OA system's webhook endpoint: verifies each message's Standard Webhooks
/// signature, prints it, and counts it.
#[derive(Clone)]
struct Oa {
    inner: Arc<OaInner>,
}

struct OaInner {
    signer: Option<WebhookSigner>,
    lang: Lang,
    /// DingTalk userid → name, for the approvers in task messages.
    names: HashMap<String, String>,
    state: Mutex<OaState>,
}

#[derive(Default)]
struct OaState {
    /// Message ids accepted (a redelivery of one is counted once).
    seen: HashSet<String>,
    /// Approvals whose `approval.completed` / `approval.terminated` arrived.
    finished: HashSet<String>,
    bad_signatures: usize,
}

impl Oa {
    fn new(signer: Option<WebhookSigner>, seed: &Seed, lang: Lang) -> Oa {
        let names = seed
            .users
            .iter()
            .map(|u| (u.userid.clone(), u.name.clone()))
            .collect();
        Oa {
            inner: Arc::new(OaInner {
                signer,
                lang,
                names,
                state: Mutex::new(OaState::default()),
            }),
        }
    }

    async fn serve(self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(oa_accept))
            .with_state(self);
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "demo: the OA webhook receiver stopped");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OaState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// (messages accepted, messages refused for their signature).
    fn counts(&self) -> (usize, usize) {
        let s = self.state();
        (s.seen.len(), s.bad_signatures)
    }

    fn finished(&self) -> HashSet<String> {
        self.state().finished.clone()
    }
}

async fn oa_accept(State(oa): State<Oa>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let lang = oa.inner.lang;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let now = u64::try_from(engine::clock::now_ms() / 1000).unwrap_or_default();
    let verified = match &oa.inner.signer {
        Some(signer) => signer
            .verify(pairs, &body, now, engine::webhook::TOLERANCE)
            .map_err(|e| e.to_string()),
        None => Err("the `oa` connection has no hmac_secret".to_owned()),
    };
    if let Err(reason) = verified {
        oa.state().bad_signatures += 1;
        println!("{}", Msg::DemoWebhookRefused { reason: &reason }.text(lang));
        return StatusCode::UNAUTHORIZED;
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers
        .get(engine::webhook::ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = message["type"].as_str().unwrap_or_default();
    let data = &message["data"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    {
        let mut state = oa.state();
        if !state.seen.insert(id) {
            return StatusCode::NO_CONTENT; // a redelivery: already shown
        }
        if matches!(kind, "approval.completed" | "approval.terminated") {
            state.finished.insert(text(&data["approval_id"]));
        }
    }
    let (who, result) = match kind {
        "approval.task.started" | "approval.task.finished" | "approval.task.canceled" => {
            let userid = text(&data["task"]["userid"]);
            let who = oa.inner.names.get(&userid).cloned().unwrap_or(userid);
            let result = match kind {
                "approval.task.finished" => text(&data["task"]["result"]).to_ascii_lowercase(),
                "approval.task.canceled" => "canceled".to_owned(),
                _ => String::new(),
            };
            (who, result)
        }
        "approval.completed" => (String::new(), text(&data["result"])),
        _ => (String::new(), String::new()),
    };
    println!(
        "{}",
        Msg::DemoWebhook {
            kind,
            business_key: &text(&data["business_key"]),
            title: &text(&data["title"]),
            who: &who,
            result: &result,
        }
        .text(lang)
    );
    StatusCode::NO_CONTENT
}
