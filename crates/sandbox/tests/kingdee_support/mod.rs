//! Shared helpers of the Kingdee sandbox tests: a served sandbox on 127.0.0.1:0 and a small
//! HTTP caller (session via the `kdservice-sessionid` header).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig, serve};
use sandbox::seed::Seed;
use serde_json::{Value, json};

pub const STUB: &str = "Kingdee.BOS.WebApi.ServicesStub";

pub struct Served {
    pub origin: String,
    pub base: String,
    pub sandbox: KingdeeSandbox,
    pub http: reqwest::Client,
    pub sid: Option<String>,
}

pub async fn start(config: KingdeeSandboxConfig) -> Served {
    start_with_seed(config, &Seed::builtin()).await
}

pub async fn start_with_seed(config: KingdeeSandboxConfig, seed: &Seed) -> Served {
    let sandbox = KingdeeSandbox::new(config, seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, sandbox.clone()));
    Served {
        origin: format!("http://{addr}"),
        base: format!("http://{addr}/k3cloud/"),
        sandbox,
        http: reqwest::Client::new(),
        sid: None,
    }
}

pub fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/kingdee.json"
    );
    let text = std::fs::read_to_string(path).expect("shared/vectors/kingdee.json beside the repo");
    serde_json::from_str(&text).unwrap()
}

impl Served {
    pub fn url(&self, service: &str) -> String {
        format!("{}{service}.common.kdsvc", self.base)
    }

    /// POSTs raw JSON to a service, with the session header when logged in.
    pub async fn post_raw(&self, service: &str, body: String) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(service))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(sid) = &self.sid {
            req = req.header("kdservice-sessionid", sid);
        }
        req.send().await.unwrap()
    }

    pub async fn post(&self, service: &str, body: Value) -> Value {
        let resp = self.post_raw(service, body.to_string()).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// A DynamicFormService call with positional parameters.
    pub async fn op(&self, method: &str, params: Value) -> Value {
        self.post(
            &format!("{STUB}.DynamicFormService.{method}"),
            json!({ "parameters": params }),
        )
        .await
    }

    /// ValidateUser as the configured user; keeps the session id.
    pub async fn login(&mut self) -> Value {
        let cfg = self.sandbox.config().clone();
        let v = self
            .post(
                &format!("{STUB}.AuthService.ValidateUser"),
                json!({"parameters": [cfg.acct_id, cfg.user_name, cfg.password, 2052]}),
            )
            .await;
        assert_eq!(v["LoginResultType"], 1, "{v}");
        self.sid = Some(v["KDSVCSessionId"].as_str().unwrap().to_owned());
        v
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/_sandbox/kingdee/{path}", self.origin))
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
            .get(format!("{}/_sandbox/kingdee/{path}", self.origin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn status(v: &Value) -> &Value {
    &v["Result"]["ResponseStatus"]
}

pub fn assert_ok(v: &Value) {
    assert_eq!(status(v)["IsSuccess"], true, "{v}");
}

/// Asserts a Kingdee-shaped failure and returns the first error message.
pub fn assert_err(v: &Value, msg_code: u64) -> String {
    let s = status(v);
    assert_eq!(s["IsSuccess"], false, "{v}");
    assert_eq!(s["ErrorCode"], 500, "{v}");
    assert_eq!(s["MsgCode"], msg_code, "{v}");
    s["Errors"][0]["Message"].as_str().unwrap().to_owned()
}

/// The `[[{"Result":{"ResponseStatus":…}}]]` query error form.
pub fn assert_query_err(v: &Value, msg_code: u64) -> String {
    let inner = &v[0][0];
    assert!(v.as_array().is_some_and(|a| a.len() == 1), "{v}");
    assert_err(inner, msg_code)
}

pub fn org() -> Value {
    json!({"FNumber": "100"})
}
