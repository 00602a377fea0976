//! The REST API of the approval bridge over real HTTP on loopback, on every store backend,
//! against the DingTalk simulator (its 费用报销 template) and a webhook receiver standing in for
//! the in-house system: keys and scopes, starting with a Chinese form (and every wrong field in
//! one 422), idempotent retries, reading and listing, cancelling, deliveries and redelivery,
//! and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use engine::approvals::keys::create_key;
use engine::approvals::recipe::{ApprovalFlows, build_approval_flows};
use engine::config::Config;
use engine::jobs::HandlerRegistry;
use engine::retry::RetryPolicy;
use engine::worker::{RetryPolicies, WorkerPool, WorkerSettings};
use reqwest::StatusCode;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig};
use sandbox::seed::Seed;
use serde_json::{Value, json};
use server::AppState;
use store::{ApprovalFilter, Store, now_ms};
use store_testkit::test_stores;
use tokio_util::sync::CancellationToken;

const FLOW: &str = "expense_bridge";
const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";

/// The hub's REST API on a loopback port, with the DingTalk simulator and a webhook receiver.
struct Hub {
    name: &'static str,
    store: Arc<dyn Store>,
    base: String,
    dt: DingTalkSandbox,
    config: Config,
    flows: ApprovalFlows,
    /// Bodies posted to the webhook receiver, with their `webhook-id`.
    hooks: Arc<Mutex<Vec<(String, Value)>>>,
    http: reqwest::Client,
    /// `approvals:write` + `approvals:read` + `deliveries:write`.
    key: String,
    key_id: i64,
    /// `approvals:read` only.
    reader: String,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Two active people of the simulated company: an originator and a colleague.
fn people() -> (String, String) {
    let seed = Seed::builtin();
    let mut active = seed.users.iter().filter(|u| u.active);
    let a = active.next().unwrap().userid.clone();
    let b = active.next().unwrap().userid.clone();
    (a, b)
}

/// A 费用报销 request as an ERP would send it.
fn expense(business_key: &str) -> Value {
    let (originator, _) = people();
    json!({
        "template": "费用报销",
        "originator": originator,
        "business_key": business_key,
        "form": {
            "报销事由": "上海客户拜访（华东区）",
            "报销类别": "差旅报销",
            "费用明细": [
                {"费用类型": "差旅费", "金额（元）": 1280.5, "发生日期": "2025-03-01", "费用说明": "上海出差高铁票"},
                {"费用类型": "招待费", "金额（元）": 300}
            ],
            "报销总金额（元）": 1580.5
        }
    })
}

async fn start_hub(ts: &store_testkit::TestStore) -> Hub {
    let dt = DingTalkSandbox::new(DingTalkSandboxConfig::default(), &Seed::builtin());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dt_url = format!("http://{}", listener.local_addr().unwrap());
    let served = dt.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let _ = sandbox::dingtalk::serve(listener, served).await;
    })];

    let hooks: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let received = Arc::clone(&hooks);
    let receiver = axum::Router::new().route(
        "/hooks/approvals",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                received.lock().unwrap().push((id, body.0));
                StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}", listener.local_addr().unwrap());
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    }));

    let text = format!(
        r#"
[connections.dingtalk]
kind = "dingtalk"
corp_id = "ding5f2c8a0e1b3d4c6a"
agent_id = 3000000001
app_key = "dingsimappkey0000001"
app_secret = "sandboxSecret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
oapi_base_url = "{dt_url}"
api_base_url = "{dt_url}"

[connections.erp]
kind = "http"
base_url = "{hook_url}"
timeout_seconds = 5

[flows.{FLOW}]
recipe = "approval_bridge"

[flows.{FLOW}.options]
source = "dingtalk"
templates = {{ "费用报销" = "{EXPENSE}", "请假" = "PROC-SBX-QJ-2B8D6E41-0002" }}
webhook = {{ connection = "erp", path = "/hooks/approvals" }}
"#
    );
    let config = Config::from_str(&text, "api-test.toml").unwrap();
    let limiters = config.limiter_registry().unwrap();
    let flows = build_approval_flows(&config, Arc::clone(&ts.store), &limiters).unwrap();

    let all = ["approvals:write", "approvals:read", "deliveries:write"].map(String::from);
    let key = create_key(ts.store.as_ref(), "ERP 报销系统", &all, now_ms())
        .await
        .unwrap();
    let reader = create_key(
        ts.store.as_ref(),
        "BI 报表（只读）",
        &["approvals:read".to_owned()],
        now_ms(),
    )
    .await
    .unwrap();

    let state = AppState {
        store: Arc::clone(&ts.store),
        metrics: None,
        dingtalk_callbacks: Arc::new(HashMap::new()),
        approvals: flows.clone(),
    };
    let (listener, addr) = server::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let _ = server::serve(listener, state, stop).await;
    }));
    Hub {
        name: ts.name,
        store: Arc::clone(&ts.store),
        base: format!("http://{addr}"),
        dt,
        config,
        flows,
        hooks,
        http: reqwest::Client::new(),
        key: key.key,
        key_id: key.record.id,
        reader: reader.key,
        shutdown,
        tasks,
    }
}

/// An answer: status, headers, JSON body (`Null` when there is none).
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Hub {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, key: &str, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(key))
            .await
    }

    async fn post(&self, key: &str, path: &str, body: &Value, idem: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        self.send(req).await
    }

    async fn start(&self, body: &Value) -> Reply {
        self.post(&self.key, "/api/v1/approvals", body, None).await
    }

    /// The simulator's instance with this id.
    fn instance(&self, id: &str) -> sandbox::dingtalk::approval::Instance {
        self.dt
            .instances()
            .into_iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("{}: no instance {id} in the simulator", self.name))
    }

    /// Run the hub's workers until no job is queued, running or waiting to retry.
    async fn drain(&self) {
        let limiters = self.config.limiter_registry().unwrap();
        let handlers =
            HandlerRegistry::for_config(&self.config, Arc::clone(&self.store), &limiters)
                .await
                .unwrap();
        let shutdown = CancellationToken::new();
        let retries = RetryPolicies {
            default: RetryPolicy {
                schedule: vec![Duration::from_millis(100); 4],
                jitter: 0.0,
            },
            ..RetryPolicies::default()
        };
        let settings = WorkerSettings {
            count: 2,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        };
        let pool = WorkerPool::new(Arc::clone(&self.store), handlers, retries, settings);
        let running = tokio::spawn(pool.run(shutdown.clone()));
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let busy = store_testkit::unfinished_jobs(self.store.as_ref()).await;
            if busy == 0 {
                break;
            }
        }
        shutdown.cancel();
        running.await.unwrap();
    }

    /// The hub reads an instance again, as a DingTalk event would make it.
    async fn resync(&self, instance_id: &str) {
        let bridge = &self.flows.bridges[FLOW];
        self.store
            .enqueue(&bridge.sync_job(instance_id, &format!("test:{}", now_ms()), now_ms()))
            .await
            .unwrap();
        self.drain().await;
    }

    async fn approvals_stored(&self) -> usize {
        self.store
            .list_approvals(&ApprovalFilter {
                limit: 1000,
                ..ApprovalFilter::default()
            })
            .await
            .unwrap()
            .len()
    }
}

fn code(r: &Reply) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

fn fields(r: &Reply) -> Vec<String> {
    r.body["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every error names its fix in both languages.
fn assert_error(r: &Reply, status: StatusCode, want: &str, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: {}", r.body);
    assert_eq!(code(r), want, "{ctx}: {}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{ctx}: {}",
        r.body
    );
    assert!(
        r.body["error"]["message_zh"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{ctx}: {}",
        r.body
    );
}

#[tokio::test]
async fn an_expense_claim_is_started_read_listed_and_cancelled() {
    for ts in test_stores().await {
        let hub = start_hub(&ts).await;
        let n = hub.name;
        let (originator, _) = people();

        // Started with a Chinese 费用报销 form.
        let r = hub.start(&expense("BX-2025-000123")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{n}: {}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("apv_"), "{n}: {id}");
        assert_eq!(
            r.headers["location"].to_str().unwrap(),
            format!("/api/v1/approvals/{id}")
        );
        assert_eq!(r.body["status"], "running", "{n}");
        assert_eq!(r.body["flow"], FLOW);
        assert_eq!(r.body["process_code"], EXPENSE);
        assert_eq!(r.body["business_key"], "BX-2025-000123");
        assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));
        let instance_id = r.body["instance_id"].as_str().unwrap().to_owned();

        // The instance exists in DingTalk with the converted values.
        let inst = hub.instance(&instance_id);
        assert_eq!(inst.process_code, EXPENSE);
        assert_eq!(inst.originator, originator);
        assert_eq!(inst.status, "RUNNING");
        let value = |label: &str| {
            inst.form
                .iter()
                .find(|f| f.name == label)
                .map(|f| f.value.clone())
                .unwrap_or_else(|| panic!("{n}: no {label} in {:?}", inst.form))
        };
        assert_eq!(value("报销事由"), "上海客户拜访（华东区）");
        assert_eq!(value("报销类别"), "差旅报销");
        assert_eq!(value("报销总金额（元）"), "1580.5");
        let rows: Value = serde_json::from_str(&value("费用明细")).unwrap();
        let cell = |row: usize, name: &str| {
            rows[row]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["value"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(cell(0, "费用类型"), "差旅费");
        assert_eq!(cell(0, "金额（元）"), "1280.5");
        assert_eq!(cell(0, "费用说明"), "上海出差高铁票");
        assert_eq!(cell(1, "费用类型"), "招待费");

        // Read back; once the hub has read the instance, its tasks are there too.
        let r = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{id}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        assert_eq!(r.body["form"]["报销事由"], "上海客户拜访（华东区）");
        assert_eq!(r.body["template"], "费用报销");
        assert_eq!(r.body["originator"], originator.as_str());
        hub.drain().await;
        let r = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{id}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        assert!(
            r.body["title"]
                .as_str()
                .unwrap()
                .ends_with("提交的费用报销"),
            "{n}: {}",
            r.body
        );
        let tasks = r.body["tasks"].as_array().unwrap();
        assert!(!tasks.is_empty(), "{n}: {}", r.body);
        assert_eq!(tasks[0]["status"], "RUNNING");
        assert!(r.body["operation_records"].is_array());
        assert!(r.body["error"].is_null());

        // Unknown ids are a JSON 404.
        let r = hub.get(&hub.reader, "/api/v1/approvals/apv_nosuch").await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", n);
        let r = hub.get(&hub.reader, "/api/v1/nosuch").await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", n);

        // Its webhook messages were delivered to the ERP, each attempt recorded.
        let r = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{id}/deliveries"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{n}: {}", r.body);
        let first = &items[0];
        assert_eq!(first["message_id"], format!("{id}.started"));
        assert_eq!(first["event_type"], "approval.started");
        assert_eq!(first["status"], "delivered", "{n}: {first}");
        assert_eq!(first["attempts"], 1);
        assert!(first["delivered_at"].is_string());
        assert_eq!(first["deliveries"][0]["status_code"], 204);
        assert_eq!(first["deliveries"][0]["outcome"], "delivered");
        assert!(
            hub.hooks
                .lock()
                .unwrap()
                .iter()
                .any(|(mid, body)| *mid == format!("{id}.started")
                    && body["data"]["business_key"] == "BX-2025-000123"),
            "{n}"
        );

        // Redelivery: the message goes out again; unknown messages are 404.
        let before = hub.hooks.lock().unwrap().len();
        let r = hub
            .post(
                &hub.key,
                &format!("/api/v1/deliveries/{id}.started/redeliver"),
                &Value::Null,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{n}: {}", r.body);
        assert_eq!(r.body["status"], "pending");
        hub.drain().await;
        assert_eq!(hub.hooks.lock().unwrap().len(), before + 1, "{n}");
        let r = hub
            .post(
                &hub.key,
                "/api/v1/deliveries/apv_nosuch.started/redeliver",
                &Value::Null,
                None,
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", n);
        let r = hub
            .post(
                &hub.reader,
                &format!("/api/v1/deliveries/{id}.started/redeliver"),
                &Value::Null,
                None,
            )
            .await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", n);

        // Cancel: DingTalk terminates the instance, the hub follows, a second cancel is 409.
        let r = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{id}/cancel"),
                &json!({"remark": "报销单已在 ERP 中作废"}),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{n}: {}", r.body);
        assert_eq!(r.body["id"], id.as_str());
        assert_eq!(hub.instance(&instance_id).status, "TERMINATED");
        hub.drain().await;
        let r = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{id}"))
            .await;
        assert_eq!(r.body["status"], "terminated", "{n}: {}", r.body);
        let r = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{id}/cancel"),
                &Value::Null,
                None,
            )
            .await;
        assert_error(&r, StatusCode::CONFLICT, "conflict", n);
        let r = hub
            .post(
                &hub.key,
                "/api/v1/approvals/apv_nosuch/cancel",
                &Value::Null,
                None,
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", n);
        let messages: Vec<String> = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{id}/deliveries"))
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["event_type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            messages.last().map(String::as_str),
            Some("approval.terminated"),
            "{n}"
        );
    }
}

#[tokio::test]
async fn approvals_are_listed_with_filters_and_pages() {
    for ts in test_stores().await {
        let hub = start_hub(&ts).await;
        let n = hub.name;
        let mut ids = Vec::new();
        for bk in ["BX-2025-000201", "BX-2025-000202", "BX-2025-000203"] {
            let r = hub.start(&expense(bk)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{n}: {}", r.body);
            ids.push((
                r.body["id"].as_str().unwrap().to_owned(),
                r.body["instance_id"].as_str().unwrap().to_owned(),
            ));
        }
        // The first one is approved in DingTalk and the hub reads it.
        hub.dt.admin_decide(&ids[0].1, true, "同意").unwrap();
        hub.resync(&ids[0].1).await;

        let list = |q: &'static str| {
            let hub = &hub;
            async move { hub.get(&hub.reader, &format!("/api/v1/approvals{q}")).await }
        };
        let item_ids = |r: &Reply| -> Vec<String> {
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };

        // Newest first, in pages.
        let r = list("?limit=2").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        assert_eq!(
            item_ids(&r),
            vec![ids[2].0.clone(), ids[1].0.clone()],
            "{n}"
        );
        let next = r.body["next_before"].as_str().unwrap().to_owned();
        assert_eq!(next, ids[1].0);
        let r = hub
            .get(
                &hub.reader,
                &format!("/api/v1/approvals?limit=2&before={next}"),
            )
            .await;
        assert_eq!(item_ids(&r), vec![ids[0].0.clone()], "{n}");
        assert!(r.body["next_before"].is_null(), "{n}: {}", r.body);

        // Filters.
        let r = list("?business_key=BX-2025-000202").await;
        assert_eq!(item_ids(&r), vec![ids[1].0.clone()], "{n}");
        let r = list("?status=completed&result=agree").await;
        assert_eq!(item_ids(&r), vec![ids[0].0.clone()], "{n}: {}", r.body);
        assert_eq!(r.body["items"][0]["result"], "agree");
        let r = list("?status=running").await;
        assert_eq!(item_ids(&r).len(), 2, "{n}");
        let r = list("?template=%E8%B4%B9%E7%94%A8%E6%8A%A5%E9%94%80&flow=expense_bridge").await;
        assert_eq!(item_ids(&r).len(), 3, "{n}: {}", r.body);
        let r = list("?process_code=PROC-SBX-QJ-2B8D6E41-0002").await;
        assert!(item_ids(&r).is_empty(), "{n}");

        // Bad values name the parameter.
        for (q, field) in [
            ("?status=进行中", "status"),
            ("?result=同意", "result"),
            ("?limit=501", "limit"),
            ("?limit=0", "limit"),
            ("?before=apv_nosuch", "before"),
            ("?template=差旅", "template"),
            ("?sort=created_at", "sort"),
        ] {
            let r = list(q).await;
            assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields", q);
            assert_eq!(fields(&r), vec![field.to_owned()], "{n}: {q}");
        }
    }
}

#[tokio::test]
async fn keys_and_scopes_are_checked() {
    for ts in test_stores().await {
        let hub = start_hub(&ts).await;
        let n = hub.name;
        let path = hub.url("/api/v1/approvals");
        let body = expense("BX-2025-000301").to_string();
        let (kept, last) = hub.key.split_at(hub.key.len() - 1);
        let wrong_secret = format!("{kept}{}", if last == "x" { "y" } else { "x" });
        let cases = [
            ("no key", hub.http.post(&path)),
            (
                "not a dbk key",
                hub.http.post(&path).bearer_auth("sk-1234567890"),
            ),
            (
                "another scheme",
                hub.http.post(&path).basic_auth("erp", Some("secret")),
            ),
            (
                "unknown key",
                hub.http
                    .post(&path)
                    .bearer_auth("dbk_abcdefgh_0123456789abcdef0123456789"),
            ),
            (
                "right prefix, wrong secret",
                hub.http.post(&path).bearer_auth(wrong_secret.clone()),
            ),
        ];
        for (what, req) in cases {
            let r = hub.send(req.body(body.clone())).await;
            assert_error(
                &r,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{n}: {what}"),
            );
            assert!(r.headers.contains_key("www-authenticate"), "{n}: {what}");
        }

        // A read-only key may read but not start.
        let r = hub
            .post(
                &hub.reader,
                "/api/v1/approvals",
                &expense("BX-2025-000301"),
                None,
            )
            .await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", n);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("approvals:write")
        );
        let r = hub.get(&hub.reader, "/api/v1/approvals").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        assert_eq!(hub.approvals_stored().await, 0, "{n}");

        // X-API-Key works as well, and a use is recorded.
        let r = hub
            .send(
                hub.http
                    .get(hub.url("/api/v1/approvals"))
                    .header("x-api-key", &hub.key),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.body);
        let prefix = &hub.key[4..12];
        let record = hub.store.find_api_key(prefix).await.unwrap().unwrap();
        assert!(record.last_used_at.is_some(), "{n}");

        // A revoked key is refused.
        assert!(hub.store.revoke_api_key(prefix, now_ms()).await.unwrap());
        let r = hub.get(&hub.key, "/api/v1/approvals").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", n);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked"),
            "{n}: {}",
            r.body
        );
        // The document needs no key.
        let r = hub
            .send(hub.http.get(hub.url("/api/v1/openapi.json")))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn wrong_requests_are_refused_with_every_reason() {
    for ts in test_stores().await {
        let hub = start_hub(&ts).await;
        let n = hub.name;

        // A wrong option and a missing required field, listed together; nothing stored.
        let mut body = expense("BX-2025-000401");
        body["form"]["报销类别"] = json!("出差报销");
        body["form"].as_object_mut().unwrap().remove("报销事由");
        let r = hub.start(&body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields", n);
        let got = fields(&r);
        assert!(got.contains(&"form.报销类别".to_owned()), "{n}: {got:?}");
        assert!(got.contains(&"form.报销事由".to_owned()), "{n}: {got:?}");
        for f in r.body["error"]["fields"].as_array().unwrap() {
            assert!(!f["reason"].as_str().unwrap().is_empty());
            assert!(!f["reason_zh"].as_str().unwrap().is_empty());
        }
        assert!(
            r.body["error"]["message_zh"]
                .as_str()
                .unwrap()
                .contains("报销类别"),
            "{n}: {}",
            r.body
        );

        // Unknown template and flow are named.
        let mut body = expense("BX-2025-000402");
        body["template"] = json!("出差申请");
        let r = hub.start(&body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields", n);
        assert_eq!(fields(&r), vec!["template".to_owned()], "{n}");
        let mut body = expense("BX-2025-000403");
        body["flow"] = json!("leave_bridge");
        let r = hub.start(&body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields", n);
        assert_eq!(fields(&r), vec!["flow".to_owned()], "{n}");
        assert!(
            r.body["error"]["fields"][0]["reason"]
                .as_str()
                .unwrap()
                .contains(FLOW)
        );

        // Bodies that are not a start request are 400 with serde's words.
        for (what, raw) in [
            ("not JSON", "{\"template\": \"费用报销\","),
            ("an array", "[]"),
            (
                "no form",
                "{\"template\": \"费用报销\", \"originator\": \"u\"}",
            ),
            (
                "unknown key",
                "{\"template\": \"费用报销\", \"originator\": \"u\", \"form\": {}, \"备注\": 1}",
            ),
        ] {
            let r = hub
                .send(
                    hub.http
                        .post(hub.url("/api/v1/approvals"))
                        .bearer_auth(&hub.key)
                        .body(raw),
                )
                .await;
            assert_error(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{n}: {what}"),
            );
        }
        let r = hub
            .send(
                hub.http
                    .post(hub.url("/api/v1/approvals"))
                    .bearer_auth(&hub.key)
                    .body("{\"template\": \"费用报销\", \"originator\": \"u\"}"),
            )
            .await;
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("missing field `form`"),
            "{n}: {}",
            r.body
        );

        // An Idempotency-Key over 255 characters.
        let long = "k".repeat(256);
        let r = hub
            .post(
                &hub.key,
                "/api/v1/approvals",
                &expense("BX-2025-000404"),
                Some(&long),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request", n);
        assert_eq!(hub.approvals_stored().await, 0, "{n}");
        assert!(hub.dt.instances().is_empty(), "{n}");

        // Keys are visible ASCII (HTTP header values).
        let r = hub
            .post(
                &hub.key,
                "/api/v1/approvals",
                &expense("BX-2025-000404"),
                Some("重试-404"),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request", n);

        // DingTalk failing in a way worth retrying: 503 with Retry-After, the key released,
        // so the same key then starts the approval.
        hub.dt.set_faults(|f| f.error_next = 2);
        let body = expense("BX-2025-000405");
        let r = hub
            .post(&hub.key, "/api/v1/approvals", &body, Some("retry-405"))
            .await;
        assert_error(
            &r,
            StatusCode::SERVICE_UNAVAILABLE,
            "dingtalk_unavailable",
            n,
        );
        assert!(r.headers.contains_key("retry-after"), "{n}");
        hub.dt.set_faults(|f| f.error_next = 0);
        let r = hub
            .post(&hub.key, "/api/v1/approvals", &body, Some("retry-405"))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{n}: {}", r.body);
        assert!(!r.headers.contains_key("idempotent-replayed"), "{n}");

        // DingTalk refusing for good: 502 with its message and the approval stored as failed,
        // which cannot be cancelled.
        let mut body = expense("BX-2025-000406");
        body["originator"] = json!("离职员工0001");
        let r = hub.start(&body).await;
        assert_error(&r, StatusCode::BAD_GATEWAY, "dingtalk_error", n);
        let failed = r.body["error"]["approval_id"].as_str().unwrap().to_owned();
        let r = hub
            .get(&hub.reader, &format!("/api/v1/approvals/{failed}"))
            .await;
        assert_eq!(r.body["status"], "failed", "{n}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{n}: {}", r.body);
        let r = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{failed}/cancel"),
                &Value::Null,
                None,
            )
            .await;
        assert_error(&r, StatusCode::CONFLICT, "conflict", n);
    }
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_wait() {
    for ts in test_stores().await {
        let hub = start_hub(&ts).await;
        let n = hub.name;
        let body = expense("BX-2025-000501");

        let first = hub
            .post(&hub.key, "/api/v1/approvals", &body, Some("erp-bx-000501"))
            .await;
        assert_eq!(first.status, StatusCode::CREATED, "{n}: {}", first.body);
        assert!(!first.headers.contains_key("idempotent-replayed"));

        // The same key and body: the same answer, replayed, and still one approval.
        let again = hub
            .post(&hub.key, "/api/v1/approvals", &body, Some("erp-bx-000501"))
            .await;
        assert_eq!(again.status, StatusCode::CREATED, "{n}");
        assert_eq!(again.body, first.body, "{n}");
        assert_eq!(again.headers["idempotent-replayed"], "true", "{n}");
        assert_eq!(again.headers["location"], first.headers["location"], "{n}");
        assert_eq!(hub.approvals_stored().await, 1, "{n}");
        assert_eq!(hub.dt.instances().len(), 1, "{n}");

        // The same key with another body.
        let r = hub
            .post(
                &hub.key,
                "/api/v1/approvals",
                &expense("BX-2025-000502"),
                Some("erp-bx-000501"),
            )
            .await;
        assert_error(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            n,
        );
        assert_eq!(hub.approvals_stored().await, 1, "{n}");

        // A refusal is an answer too: replayed, not re-run.
        let mut wrong = expense("BX-2025-000503");
        wrong["form"]["报销类别"] = json!("出差报销");
        let r1 = hub
            .post(&hub.key, "/api/v1/approvals", &wrong, Some("erp-bx-000503"))
            .await;
        let r2 = hub
            .post(&hub.key, "/api/v1/approvals", &wrong, Some("erp-bx-000503"))
            .await;
        assert_eq!(r1.status, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert_eq!((r2.status, &r2.body), (r1.status, &r1.body), "{n}");
        assert_eq!(r2.headers["idempotent-replayed"], "true", "{n}");

        // A key still being answered.
        let now = now_ms();
        let claim = hub
            .store
            .claim_idempotency_key(hub.key_id, "erp-bx-000504", "其他请求", now, now + 60_000)
            .await
            .unwrap();
        assert_eq!(claim, store::IdempotencyClaim::Claimed);
        let r = hub
            .post(
                &hub.key,
                "/api/v1/approvals",
                &expense("BX-2025-000504"),
                Some("erp-bx-000504"),
            )
            .await;
        assert_error(&r, StatusCode::CONFLICT, "idempotency_in_progress", n);
        assert_eq!(hub.approvals_stored().await, 1, "{n}");

        // Keys belong to one API key, and one route: a cancel with the start's key is refused.
        let id = first.body["id"].as_str().unwrap();
        let r = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{id}/cancel"),
                &body,
                Some("erp-bx-000501"),
            )
            .await;
        assert_error(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            n,
        );

        // Cancel honours its own key: the second call replays the 202.
        let c1 = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{id}/cancel"),
                &json!({}),
                Some("erp-cancel-000501"),
            )
            .await;
        assert_eq!(c1.status, StatusCode::ACCEPTED, "{n}: {}", c1.body);
        let c2 = hub
            .post(
                &hub.key,
                &format!("/api/v1/approvals/{id}/cancel"),
                &json!({}),
                Some("erp-cancel-000501"),
            )
            .await;
        assert_eq!((c2.status, &c2.body), (c1.status, &c1.body), "{n}");
        assert_eq!(c2.headers["idempotent-replayed"], "true", "{n}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let ts = store_testkit::sqlite_store().await.unwrap();
    let hub = start_hub(&ts).await;
    let r = hub
        .send(hub.http.get(hub.url("/api/v1/openapi.json")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for (path, method) in [
        ("/api/v1/approvals", "post"),
        ("/api/v1/approvals", "get"),
        ("/api/v1/approvals/{id}", "get"),
        ("/api/v1/approvals/{id}/cancel", "post"),
        ("/api/v1/approvals/{id}/deliveries", "get"),
        ("/api/v1/deliveries/{message_id}/redeliver", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
        assert!(
            op["security"].as_array().is_some_and(|s| !s.is_empty()),
            "{method} {path}: security"
        );
    }
    let start = &doc["paths"]["/api/v1/approvals"]["post"];
    for status in ["201", "400", "401", "403", "409", "422", "502", "503"] {
        assert!(
            start["responses"][status].is_object(),
            "POST /api/v1/approvals does not document {status}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let schema = &doc["components"]["schemas"]["StartApproval"];
    for field in ["template", "originator", "form", "flow", "business_key"] {
        assert!(
            schema["properties"][field].is_object(),
            "StartApproval.{field}"
        );
    }
}
