//! A simulated company for org-sync tests: the DingTalk and Kingdee simulators in-process
//! (Kingdee empty, so the sync has to build it), the configuration of `examples/dingbridge.toml`
//! pointed at them, and helpers to carry the simulator's contact events into the inbox and to
//! run the queue until it is idle. The simulators never share code with the clients.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::config::Config;
use engine::jobs::HandlerRegistry;
use engine::orgsync::{OrgSync, build_syncs};
use engine::retry::RetryPolicy;
use engine::worker::{RetryPolicies, WorkerPool, WorkerSettings};
use sandbox::admin_client::AdminClient;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, Edition};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;
use serde_json::Value;
use store::{JobStatus, Store};
use tokio_util::sync::CancellationToken;

pub const EXAMPLE: &str = include_str!("../../../../examples/dingbridge.toml");
pub const FLOW: &str = "org_to_kingdee";

pub struct World {
    pub dt: DingTalkSandbox,
    pub dt_url: String,
    pub kd: KingdeeSandbox,
    pub kd_url: String,
    /// Events already carried into the inbox (by index in the simulator's log).
    delivered: std::sync::Mutex<usize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl World {
    /// The company `seed` in DingTalk (exclusive edition: 60 QPS per API, to keep tests
    /// short), and an empty Kingdee.
    pub async fn start(seed: &Seed) -> World {
        let mut dt_cfg = DingTalkSandboxConfig::default();
        for app in &mut dt_cfg.apps {
            app.edition = Edition::Exclusive;
        }
        let dt = DingTalkSandbox::new(dt_cfg, seed);
        let kd = KingdeeSandbox::new(
            KingdeeSandboxConfig {
                seed_org: false,
                ..KingdeeSandboxConfig::default()
            },
            seed,
        );
        let dl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dt_url = format!("http://{}", dl.local_addr().unwrap());
        let kd_url = format!("http://{}", kl.local_addr().unwrap());
        let (d, k) = (dt.clone(), kd.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = sandbox::dingtalk::serve(dl, d).await;
            }),
            tokio::spawn(async move {
                let _ = sandbox::kingdee::serve(kl, k).await;
            }),
        ];
        World {
            dt,
            dt_url,
            kd,
            kd_url,
            delivered: std::sync::Mutex::new(0),
            tasks,
        }
    }

    /// The example configuration pointed at these simulators, with `edit` applied to its text.
    pub fn config(&self, edit: impl Fn(String) -> String) -> Config {
        let text = EXAMPLE
            .replace("http://127.0.0.1:8089", &self.dt_url)
            .replace("http://127.0.0.1:8090", &self.kd_url)
            .replace("edition = \"standard\"", "edition = \"exclusive\"");
        Config::from_str(&edit(text), "dingbridge.toml").unwrap()
    }

    pub fn dingtalk(&self, cfg: &Config) -> dingtalk::DingTalkClient {
        let engine::config::ConnectionSettings::DingTalk(c) = &cfg.connections["dingtalk"].settings
        else {
            panic!("no dingtalk connection")
        };
        engine::connectors::dingtalk_client("dingtalk", c, Arc::new(limits::Unpaced)).unwrap()
    }

    pub fn kingdee(&self, cfg: &Config) -> kingdee::KingdeeClient {
        let engine::config::ConnectionSettings::Kingdee(c) = &cfg.connections["kingdee"].settings
        else {
            panic!("no kingdee connection")
        };
        engine::connectors::kingdee_client("kingdee", c, Arc::new(limits::Unpaced)).unwrap()
    }

    /// The simulator's event log (every contact change it made).
    pub async fn events(&self) -> Vec<Value> {
        let admin = AdminClient::new(&self.dt_url, "dingtalk");
        let v = admin.get("events").await.unwrap();
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Carry the events emitted since the last call into the inbox (as the HTTP callback or
    /// the Stream consumer would). Returns how many were new to the inbox.
    pub async fn deliver_events(&self, store: &dyn Store) -> usize {
        let events = self.events().await;
        let start = *self.delivered.lock().unwrap();
        let mut new = 0;
        for e in events.iter().skip(start) {
            if store_event(store, e).await {
                new += 1;
            }
        }
        *self.delivered.lock().unwrap() = events.len();
        new
    }

    /// Deliver every event again (DingTalk re-pushing): nothing should be new.
    pub async fn redeliver_all(&self, store: &dyn Store) -> usize {
        let mut new = 0;
        for e in &self.events().await {
            if store_event(store, e).await {
                new += 1;
            }
        }
        new
    }

    /// Kingdee rows of a form: number → (forbid status, fields by key asked).
    pub async fn kingdee_rows(
        &self,
        cfg: &Config,
        form: &str,
        keys: &[&str],
    ) -> HashMap<String, Vec<Value>> {
        use futures::TryStreamExt;
        let client = self.kingdee(cfg);
        let rows: Vec<Vec<Value>> = client
            .query_rows(kingdee::QueryRequest::new(form, keys.iter().copied()))
            .try_collect()
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| (r[0].as_str().unwrap_or_default().to_owned(), r))
            .collect()
    }
}

async fn store_event(store: &dyn Store, e: &Value) -> bool {
    engine::jobs::inbox::store_event(
        store,
        "dingtalk",
        e["event_id"].as_str().unwrap(),
        e["event_type"].as_str().unwrap(),
        e["payload"].clone(),
        store::now_ms(),
    )
    .await
    .unwrap()
}

pub async fn syncs(cfg: &Config, store: &Arc<dyn Store>) -> HashMap<String, Arc<OrgSync>> {
    let limiters = cfg.limiter_registry().unwrap();
    build_syncs(cfg, Arc::clone(store), &limiters)
        .await
        .unwrap()
}

pub async fn handlers(cfg: &Config, store: &Arc<dyn Store>) -> HandlerRegistry {
    let limiters = cfg.limiter_registry().unwrap();
    HandlerRegistry::for_config(cfg, Arc::clone(store), &limiters)
        .await
        .unwrap()
}

/// Run workers until no job is queued, running or waiting to retry.
pub async fn drain(store: &Arc<dyn Store>, handlers: HandlerRegistry) {
    let shutdown = CancellationToken::new();
    let retries = RetryPolicies {
        default: RetryPolicy {
            schedule: vec![Duration::from_millis(100); 4],
            jitter: 0.0,
        },
        ..RetryPolicies::default()
    };
    let settings = WorkerSettings {
        count: 4,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..WorkerSettings::default()
    };
    let pool = WorkerPool::new(Arc::clone(store), handlers, retries, settings);
    let running = tokio::spawn(pool.run(shutdown.clone()));
    for _ in 0..3000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let busy: i64 = store
            .queue_depths()
            .await
            .unwrap()
            .iter()
            .filter(|d| {
                matches!(
                    d.status,
                    JobStatus::Queued | JobStatus::Running | JobStatus::Retry
                )
            })
            .map(|d| d.count)
            .sum();
        if busy == 0 {
            break;
        }
    }
    shutdown.cancel();
    running.await.unwrap();
}
