//! A Kingdee sandbox served in-process on `127.0.0.1:0` for the client's tests, with helpers for
//! its admin API (`/_sandbox/kingdee/`, docs/sandbox.md) and for clients configured with the
//! sandbox's seeded credentials. The sandbox never imports the client; only this direction.
#![allow(clippy::unwrap_used, dead_code)]

use sandbox::admin_client::AdminClient;
use std::sync::Arc;
use std::time::Duration;

use kingdee::{AuthMode, Clock, KingdeeClient, KingdeeConfig};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig, serve};
use sandbox::seed::Seed;
use serde_json::Value;

/// A running sandbox. The server task ends when this is dropped.
pub struct Sandbox {
    pub sb: KingdeeSandbox,
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sandbox clock as the client's clock, so signed timestamps follow an advanced sandbox
/// clock (idle-expiry tests) instead of being refused as expired.
pub struct SandboxClock(pub KingdeeSandbox);

impl Clock for SandboxClock {
    fn unix_seconds(&self) -> i64 {
        self.0.now()
    }
}

impl Sandbox {
    /// The builtin demo company with the default (documented) settings.
    pub async fn start() -> Self {
        Self::with(KingdeeSandboxConfig::default(), &Seed::builtin()).await
    }

    pub async fn with(cfg: KingdeeSandboxConfig, seed: &Seed) -> Self {
        let sb = KingdeeSandbox::new(cfg, seed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = sb.clone();
        let task = tokio::spawn(async move {
            serve(listener, served).await.unwrap();
        });
        Sandbox {
            sb,
            origin: format!("http://{addr}"),
            task,
        }
    }

    /// `{origin}/k3cloud/`.
    pub fn base_url(&self) -> String {
        format!("{}/k3cloud/", self.origin)
    }

    /// A connection with the sandbox's seeded credentials; fast MsgCode 14 backoff.
    pub fn config(&self, auth: AuthMode) -> KingdeeConfig {
        let c = self.sb.config();
        let mut cfg = KingdeeConfig::new(
            &self.base_url(),
            c.acct_id.clone(),
            c.user_name.clone(),
            c.app_id.clone(),
            c.app_secret.clone().into(),
        )
        .unwrap()
        .with_auth(auth)
        .with_password(c.password.clone().into())
        .with_org_num("100");
        cfg.throttle_backoff = Duration::from_millis(2);
        cfg.timeout = Duration::from_secs(30);
        cfg
    }

    pub fn client(&self, auth: AuthMode) -> KingdeeClient {
        KingdeeClient::new(self.config(auth)).unwrap()
    }

    /// A client whose clock is the sandbox clock.
    pub fn client_on_sandbox_clock(&self, auth: AuthMode) -> KingdeeClient {
        KingdeeClient::builder(self.config(auth))
            .clock(Arc::new(SandboxClock(self.sb.clone())))
            .build()
            .unwrap()
    }

    fn admin(&self) -> AdminClient {
        AdminClient::new(&self.origin, "kingdee")
    }

    /// `POST /_sandbox/kingdee/{path}` with a JSON body; the JSON answer.
    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        self.admin()
            .post(path, &body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET /_sandbox/kingdee/{path}`.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin()
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET counters`.
    pub async fn counters(&self) -> Value {
        self.admin_get("counters").await
    }

    /// A counter by its dotted path in `GET counters`; 0 when absent.
    pub async fn counter(&self, dotted: &str) -> u64 {
        self.admin()
            .counter(dotted)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `(DocumentStatus, ForbidStatus)` of a record, read from the sandbox's store directly.
    pub fn status_of(&self, form: &str, number: &str) -> Option<(char, char)> {
        self.sb
            .db()
            .record_by_number(form, number)
            .map(|r| (r.status, r.forbid))
    }
}
