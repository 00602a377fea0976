//! Approvals against the simulators: 费用报销 instances started and approved in the DingTalk
//! simulator, the company synced into Kingdee first (the bills refer to its employees and
//! departments), the bills read back, and a webhook receiver that checks signatures and can be
//! taken down. Builds on `org_support`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dingtalk::approvals::{FormField, NewInstance};
use dingtalk::{DeptId, DingTalkClient};
use engine::config::Config;
use engine::orgsync::{Progress, SyncMode};
use engine::retry::RetryPolicy;
use engine::webhook::WebhookSigner;
use engine::worker::{RetryPolicies, WorkerPool, WorkerSettings};
use sandbox::admin_client::AdminClient;
use sandbox::seed::{Seed, User};
use serde_json::{Value, json};
use store::{Store, SyncRunStatus};
use tokio_util::sync::CancellationToken;

use crate::org_support::{FLOW, World, syncs};

pub const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
pub const DOC_FLOW: &str = "expense_to_kingdee";
pub const BRIDGE_FLOW: &str = "approvals";
pub const WEBHOOK_SECRET: &str = "whsec_ZGluZ2JyaWRnZS1kZW1vLXdlYmhvb2stc2VjcmV0";

/// People who can start an expense claim: active, in a department below the root.
pub fn claimants(seed: &Seed) -> Vec<User> {
    seed.users
        .iter()
        .filter(|u| u.active && u.dept_ids.first().is_some_and(|d| *d != 1))
        .cloned()
        .collect()
}

/// A 费用报销 form with these detail rows (type, amount) and their total.
pub fn expense_form(reason: &str, rows: &[(&str, &str)]) -> Vec<FormField> {
    let total: f64 = rows.iter().map(|(_, a)| a.parse::<f64>().unwrap()).sum();
    vec![
        FormField::text("报销事由", reason),
        FormField::text("报销类别", "差旅报销"),
        FormField::table(
            "费用明细",
            rows.iter()
                .map(|(kind, amount)| {
                    vec![
                        FormField::text("费用类型", *kind),
                        FormField::text("金额（元）", *amount),
                        FormField::text("费用说明", format!("{reason}：{kind}")),
                    ]
                })
                .collect(),
        ),
        FormField::text("报销总金额（元）", format!("{total}")),
    ]
}

/// Start one expense claim in DingTalk as `who`; its instance id.
pub async fn start_expense(
    dt: &DingTalkClient,
    who: &User,
    reason: &str,
    rows: &[(&str, &str)],
) -> String {
    let req = NewInstance::new(
        EXPENSE,
        who.userid.as_str(),
        Some(DeptId(i64::try_from(who.dept_ids[0]).unwrap())),
        expense_form(reason, rows),
    );
    // Many at once meet the simulator's QPS limit, as they would DingTalk's: wait and retry.
    loop {
        match dt.approval_create(&req).await {
            Ok(id) => return id.0,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(200))).await;
            }
            Err(e) => panic!("approval_create: {e}"),
        }
    }
}

/// `n` claims started at once by the claimants in turn (`reason` of each index), then all
/// approved at once; their instance ids.
pub async fn burst_of_approved(
    world: &World,
    dt: &DingTalkClient,
    people: &[User],
    n: usize,
    reason: impl Fn(usize) -> String,
    rows: &[(&str, &str)],
) -> Vec<String> {
    let started: Vec<String> = futures::future::join_all((0..n).map(|i| {
        let who = &people[i % people.len()];
        let reason = reason(i);
        async move { start_expense(dt, who, &reason, rows).await }
    }))
    .await;
    futures::future::join_all(started.iter().map(|id| approve(world, id))).await;
    started
}

/// Agree every task of the instance (the simulator's admin shortcut, same events as execute).
pub async fn approve(world: &World, instance: &str) {
    AdminClient::new(&world.dt_url, "dingtalk")
        .post(&format!("approvals/{instance}/approve"), &json!({}))
        .await
        .unwrap();
}

/// Revoke an approved instance (撤销 after approval).
pub async fn revoke(world: &World, instance: &str) {
    AdminClient::new(&world.dt_url, "dingtalk")
        .post(
            &format!("approvals/{instance}/revoke"),
            &json!({ "remark": "报销撤回" }),
        )
        .await
        .unwrap();
}

/// Sync the company into Kingdee (the bills refer to its people and departments).
pub async fn sync_company(cfg: &Config, store: &Arc<dyn Store>) {
    let syncs = syncs(cfg, store).await;
    let summary = syncs[FLOW]
        .run(SyncMode::Full, None, &Progress::new())
        .await
        .unwrap();
    assert_eq!(summary.status, SyncRunStatus::Success, "{summary:?}");
}

/// The simulated company (DingTalk, and Kingdee after an org sync), a webhook receiver, and the
/// example configuration pointed at them with `edit` applied.
pub async fn company(
    seed: &Seed,
    store: &Arc<dyn Store>,
    edit: impl Fn(String) -> String,
) -> (World, Receiver, Config) {
    let world = World::start(seed).await;
    let receiver = Receiver::start().await;
    let cfg = approvals_config(&world, &receiver.url, edit);
    sync_company(&cfg, store).await;
    (world, receiver, cfg)
}

/// One bill of a form: number, instance id, status, and the whole record as View shows it.
#[derive(Debug, Clone)]
pub struct Bill {
    pub number: String,
    pub instance: String,
    pub status: String,
    pub view: Value,
}

/// Every bill of `form` (the simulator's own state, not the client).
pub async fn bills(world: &World, form: &str) -> Vec<Bill> {
    let v = AdminClient::new(&world.kd_url, "kingdee")
        .get(&format!("state/{form}"))
        .await
        .unwrap();
    v["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| Bill {
            number: r["Number"].as_str().unwrap_or_default().to_owned(),
            instance: r["Fields"]["F_DDInstanceId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            status: r["DocumentStatus"].as_str().unwrap_or_default().to_owned(),
            view: r["View"].clone(),
        })
        .collect()
}

/// The simulator's count of calls of one WebAPI method.
pub async fn kingdee_calls(world: &World, method: &str) -> u64 {
    AdminClient::new(&world.kd_url, "kingdee")
        .counter(&format!("calls.{method}"))
        .await
        .unwrap_or(0)
}

/// The instance as the simulator holds it (status, records with comments).
pub async fn instance(
    world: &World,
    cfg: &Config,
    id: &str,
) -> dingtalk::approvals::ProcessInstance {
    world
        .dingtalk(cfg)
        .approval_get(&dingtalk::ProcessInstanceId(id.to_owned()))
        .await
        .unwrap()
}

/// Run workers with `retry` until nothing is queued, running or waiting to retry, or `limit`.
pub async fn drain_with(
    store: &Arc<dyn Store>,
    handlers: engine::jobs::HandlerRegistry,
    retry: Vec<Duration>,
    limit: Duration,
) {
    let shutdown = CancellationToken::new();
    let retries = RetryPolicies {
        default: RetryPolicy {
            schedule: retry,
            jitter: 0.0,
        },
        ..RetryPolicies::default()
    };
    let settings = WorkerSettings {
        count: 8,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..WorkerSettings::default()
    };
    let pool = WorkerPool::new(Arc::clone(store), handlers, retries, settings);
    let running = tokio::spawn(pool.run(shutdown.clone()));
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let busy = store_testkit::unfinished_jobs(store.as_ref()).await;
        if busy == 0 {
            break;
        }
    }
    shutdown.cancel();
    running.await.unwrap();
}

/// The flows of `examples/dingbridge.toml` for approvals, the webhook connection pointed at
/// `receiver`.
pub fn approvals_config(world: &World, receiver: &str, edit: impl Fn(String) -> String) -> Config {
    world.config(|t| edit(t.replace("http://127.0.0.1:8091/", receiver)))
}

/// One message the receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub body: Value,
}

#[derive(Default)]
struct ReceiverState {
    up: bool,
    got: Vec<Received>,
    refused: usize,
    bad_signatures: usize,
}

/// An in-house system's webhook endpoint: verifies Standard Webhooks signatures, records what
/// it accepted in arrival order, answers 503 while down.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    pub url: String,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            up: true,
            ..ReceiverState::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(accept))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            state,
            url,
            task: Arc::new(task),
        }
    }

    pub fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    pub fn bad_signatures(&self) -> usize {
        self.state.lock().unwrap().bad_signatures
    }
}

async fn accept(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let signer = WebhookSigner::from_secret(WEBHOOK_SECRET).unwrap();
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let now = u64::try_from(store::now_ms() / 1000).unwrap();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let verified = signer
        .verify(pairs, &body, now, engine::webhook::TOLERANCE)
        .is_ok();
    let mut s = state.lock().unwrap();
    if !verified {
        s.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if !s.up {
        s.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let subject = body["data"]["approval_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| body["data"]["instance_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    s.got.push(Received {
        id: h("webhook-id"),
        kind: body["type"].as_str().unwrap_or_default().to_owned(),
        subject,
        body,
    });
    StatusCode::NO_CONTENT
}
