//! A DingTalk sandbox (`sandbox::dingtalk`, written from the protocol notes only) served
//! in-process on `127.0.0.1:0` for the client's tests, with helpers for its admin API
//! (`/_sandbox/dingtalk/`, docs/sandbox.md) and for clients configured with the sandbox's
//! seeded credentials. The sandbox never imports the client; only this direction.
#![allow(clippy::unwrap_used, dead_code)]

use sandbox::admin_client::AdminClient;
use std::sync::Arc;
use std::time::Duration;

use dingtalk::{Credentials, DingTalkClient, DingTalkConfig, TokenEndpoint};
use limits::{ConnectionLimiter, ConnectionLimits, DingTalkEdition};
use sandbox::dingtalk::{
    DEFAULT_AGENT_ID, DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandbox, DingTalkSandboxConfig,
    serve,
};
use sandbox::seed::Seed;
use serde_json::Value;

/// A running sandbox. The server task ends when this is dropped.
pub struct Sandbox {
    pub sb: DingTalkSandbox,
    /// `http://127.0.0.1:<port>` (both API families and the admin API).
    pub origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The production pacer of a standard-edition DingTalk connection.
pub fn standard_limiter(name: &str) -> Arc<ConnectionLimiter> {
    Arc::new(
        ConnectionLimiter::new(name, ConnectionLimits::dingtalk(DingTalkEdition::Standard))
            .unwrap(),
    )
}

impl Sandbox {
    /// The builtin demo company (≥ 200 people, a tree 5 levels deep) with the default
    /// (documented) settings.
    pub async fn start() -> Self {
        Self::with(DingTalkSandboxConfig::default(), &Seed::builtin()).await
    }

    pub async fn with(cfg: DingTalkSandboxConfig, seed: &Seed) -> Self {
        let sb = DingTalkSandbox::new(cfg, seed);
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

    /// A client configuration with the sandbox's seeded app, both bases on the sandbox.
    pub fn config(&self, endpoint: TokenEndpoint) -> DingTalkConfig {
        let mut cfg = DingTalkConfig::new(
            self.sb.corp_id(),
            Credentials::new(DEFAULT_APP_KEY, DEFAULT_APP_SECRET),
        )
        .with_agent_id(i64::try_from(DEFAULT_AGENT_ID).unwrap())
        .with_bases(&self.origin, &self.origin)
        .unwrap()
        .with_token_endpoint(endpoint);
        cfg.request_timeout = Duration::from_secs(30);
        cfg
    }

    /// A client paced by `pacer`.
    pub fn client_with(
        &self,
        endpoint: TokenEndpoint,
        pacer: Arc<dyn limits::Pacer>,
    ) -> DingTalkClient {
        DingTalkClient::builder(self.config(endpoint))
            .pacer(pacer)
            .build()
            .unwrap()
    }

    /// The production setup: v1.0 token endpoint, standard-edition limiter.
    pub fn client(&self) -> DingTalkClient {
        self.client_with(TokenEndpoint::V1, standard_limiter("dingtalk-test"))
    }

    /// A client without any pacing (to provoke the sandbox's limits on purpose).
    pub fn unpaced_client(&self) -> DingTalkClient {
        self.client_with(TokenEndpoint::V1, Arc::new(limits::Unpaced))
    }

    fn admin(&self) -> AdminClient {
        AdminClient::new(&self.origin, "dingtalk")
    }

    /// `POST /_sandbox/dingtalk/{path}` with a JSON body; the JSON answer.
    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        self.admin()
            .post(path, &body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET /_sandbox/dingtalk/{path}`.
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
    pub async fn counter(&self, name: &str) -> u64 {
        self.admin()
            .counter(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Calls the sandbox counted on one API path (e.g. `/topapi/v2/user/list`).
    pub async fn calls(&self, path: &str) -> u64 {
        self.counters()
            .await
            .pointer("/calls")
            .and_then(|c| c.get(path))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Error answers the sandbox counted for one errcode / v1.0 code (e.g. `90018`).
    pub async fn errors(&self, code: &str) -> u64 {
        self.counters()
            .await
            .pointer("/errors")
            .and_then(|c| c.get(code))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

impl Sandbox {
    /// Mints a login auth code for `userid` (admin `POST login/code`; `kind` is `inapp` for
    /// 免登 or `oauth` for the web flow).
    pub async fn login_code(&self, userid: &str, kind: &str) -> String {
        let v = self
            .admin_post(
                "login/code",
                serde_json::json!({"userid": userid, "kind": kind}),
            )
            .await;
        v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("login/code: {v}"))
            .to_owned()
    }
}

/// Whether a text contains at least one CJK ideograph.
pub fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}
