//! Shared helpers of the DingTalk sandbox tests: a served sandbox on 127.0.0.1:0 and small
//! callers for the oapi (token in the query) and v1.0 (token in a header) families.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sandbox::dingtalk::{
    DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandbox, DingTalkSandboxConfig, serve,
};
use sandbox::seed::Seed;
use serde_json::{Value, json};

pub struct Served {
    pub origin: String,
    pub sandbox: DingTalkSandbox,
    pub http: reqwest::Client,
}

pub async fn start(config: DingTalkSandboxConfig) -> Served {
    start_with_seed(config, &Seed::builtin()).await
}

pub async fn start_with_seed(config: DingTalkSandboxConfig, seed: &Seed) -> Served {
    let sandbox = DingTalkSandbox::new(config, seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, sandbox.clone()));
    Served {
        origin: format!("http://{addr}"),
        sandbox,
        http: reqwest::Client::new(),
    }
}

pub fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/dingtalk.json"
    );
    let text = std::fs::read_to_string(path).expect("shared/vectors/dingtalk.json beside the repo");
    serde_json::from_str(&text).unwrap()
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `GET /gettoken` with the default app.
    pub async fn token(&self) -> String {
        let v: Value = self
            .http
            .get(self.url("/gettoken"))
            .query(&[
                ("appkey", DEFAULT_APP_KEY),
                ("appsecret", DEFAULT_APP_SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["errcode"], 0, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// oapi POST with the token in the query; answers the JSON body (HTTP is always 200).
    pub async fn oapi(&self, token: &str, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token)])
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    pub async fn v1_post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .header("x-acs-dingtalk-access-token", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn v1_get(&self, token: &str, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .header("x-acs-dingtalk-access-token", token)
            .query(query)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        self.http
            .post(self.url(&format!("/_sandbox/dingtalk/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(&format!("/_sandbox/dingtalk/{path}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Lifts the per-app QPS limit for tests that make many calls.
    pub async fn no_qps_limit(&self) {
        self.admin("faults", json!({"qps_override": 100000})).await;
    }
}
