//! The HTTP core: one [`DingTalkClient`] per app. Every request goes through the app's
//! [`limits::Pacer`] (`acquire` → request → `throttled`/`succeeded`), is authenticated from the
//! shared [`TokenCache`], and its answer is classified into [`Error`] for both API families
//! (protocol §0). On an invalid-token answer the token is refreshed once and the call retried
//! once (protocol §1.5, DESIGN §6).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{DingTalkConfig, join};
use crate::error::{Error, Result, classify_oapi, classify_v1, detect_ip_ban};
use crate::lenient::{as_i64, as_string};
use crate::token::{AccessToken, TokenCache};

/// Which API family an answer comes from (they report errors differently, protocol §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `oapi.dingtalk.com`: HTTP 200 + `errcode`.
    Oapi,
    /// `api.dingtalk.com/v1.0`: HTTP status + `{code,message,requestid}`.
    V1,
}

/// A reqwest client plus the pacer; shared by the API client, the token cache, the robot and
/// the Stream client.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) pacer: Arc<dyn limits::Pacer>,
}

impl Http {
    pub(crate) fn new(client: reqwest::Client, pacer: Arc<dyn limits::Pacer>) -> Self {
        Self { client, pacer }
    }

    /// Send one request through the pacer and classify the answer.
    pub(crate) async fn call(
        &self,
        group: &str,
        family: Family,
        req: reqwest::RequestBuilder,
    ) -> Result<Value> {
        let _permit = self.pacer.acquire(group).await;
        let resp = req.send().await.map_err(Error::transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(Error::transport)?;
        let result = interpret(family, status, retry_after, &body);
        match &result {
            Err(Error::Throttled { retry_after, .. }) => {
                tracing::warn!(group, status, ?retry_after, "DingTalk throttled the call");
                self.pacer.throttled(group, *retry_after);
            }
            Err(Error::Transport { .. }) => {}
            _ => self.pacer.succeeded(group),
        }
        result
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Turn an HTTP answer into the JSON payload or a typed error.
pub(crate) fn interpret(
    family: Family,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Value> {
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    if let Some(e) = detect_ip_ban(body, json.as_ref()) {
        return Err(e);
    }
    match family {
        Family::Oapi => {
            if let Some(v) = &json {
                let errcode = v.get("errcode").and_then(as_i64).unwrap_or(0);
                if errcode != 0 {
                    let msg = v.get("errmsg").and_then(as_string).unwrap_or_default();
                    let sub_code = v.get("sub_code").and_then(as_string);
                    let sub_msg = v.get("sub_msg").and_then(as_string);
                    return Err(classify_oapi(
                        errcode,
                        &msg,
                        sub_code.as_deref(),
                        sub_msg.as_deref(),
                    ));
                }
            }
            if !(200..300).contains(&status) {
                let (code, message) = json
                    .as_ref()
                    .map(v1_code_message)
                    .unwrap_or_else(|| (String::new(), snippet(body)));
                return Err(classify_v1(status, &code, &message, retry_after));
            }
            json.ok_or_else(|| Error::decode(format!("HTTP {status}: not JSON: {}", snippet(body))))
        }
        Family::V1 => {
            if (200..300).contains(&status) {
                return match json {
                    Some(v) => Ok(v),
                    None if body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
                    None => Err(Error::decode(format!("not JSON: {}", snippet(body)))),
                };
            }
            let (code, message) = json
                .as_ref()
                .map(v1_code_message)
                .unwrap_or_else(|| (String::new(), snippet(body)));
            Err(classify_v1(status, &code, &message, retry_after))
        }
    }
}

/// `code|Code`, `message|Message` as the ALI-SDK gateway reads them (protocol §0).
fn v1_code_message(v: &Value) -> (String, String) {
    let pick = |a: &str, b: &str| {
        v.get(a)
            .or_else(|| v.get(b))
            .and_then(as_string)
            .unwrap_or_default()
    };
    (pick("code", "Code"), pick("message", "Message"))
}

pub(crate) fn from_value<R: DeserializeOwned>(what: &str, v: Value) -> Result<R> {
    serde_json::from_value(v).map_err(|e| Error::decode(format!("{what}: {e}")))
}

/// Builder of a [`DingTalkClient`].
pub struct DingTalkClientBuilder {
    config: DingTalkConfig,
    http: Option<reqwest::Client>,
    pacer: Arc<dyn limits::Pacer>,
}

impl DingTalkClientBuilder {
    /// Use this reqwest client (otherwise one with the configured timeout is built).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Pace every request through this pacer (default: [`limits::Unpaced`]).
    pub fn pacer(mut self, pacer: Arc<dyn limits::Pacer>) -> Self {
        self.pacer = pacer;
        self
    }

    /// Build the client.
    pub fn build(self) -> Result<DingTalkClient> {
        let client = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(self.config.request_timeout)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(Error::transport)?,
        };
        let http = Http::new(client, self.pacer);
        let tokens = TokenCache::new(&self.config, http.clone());
        Ok(DingTalkClient {
            inner: Arc::new(Inner {
                config: self.config,
                http,
                tokens,
            }),
        })
    }
}

struct Inner {
    config: DingTalkConfig,
    http: Http,
    tokens: TokenCache,
}

/// The DingTalk client of one app. Cheap to clone; clones share the token cache and pacer.
/// The API methods live in the capability modules (`contacts`, `approvals`, `messages`,
/// `login`, `callbacks`).
#[derive(Clone)]
pub struct DingTalkClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DingTalkClient {
    /// A builder (custom reqwest client, pacer).
    pub fn builder(config: DingTalkConfig) -> DingTalkClientBuilder {
        DingTalkClientBuilder {
            config,
            http: None,
            pacer: Arc::new(limits::Unpaced),
        }
    }

    /// An unpaced client with a default reqwest client.
    pub fn new(config: DingTalkConfig) -> Result<Self> {
        Self::builder(config).build()
    }

    /// The configuration.
    pub fn config(&self) -> &DingTalkConfig {
        &self.inner.config
    }

    /// The app's token cache.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// The current app access token (fetched or refreshed when needed).
    pub async fn access_token(&self) -> Result<AccessToken> {
        self.inner.tokens.get().await
    }

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }

    /// Run an authenticated call; on an invalid-token answer refresh once and retry once.
    async fn authed(
        &self,
        group: &str,
        family: Family,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Value> {
        let token = self.inner.tokens.get().await?;
        match self
            .inner
            .http
            .call(group, family, build(token.expose()))
            .await
        {
            Err(e) if e.is_token_invalid() => {
                tracing::info!(group, error = %e, "access token rejected; refreshing once");
                self.inner.tokens.invalidate(&token);
                let token = self.inner.tokens.get().await?;
                self.inner
                    .http
                    .call(group, family, build(token.expose()))
                    .await
            }
            other => other,
        }
    }

    /// Raw oapi call: `POST {oapi}{path}?access_token=…` with a JSON body; returns the whole
    /// answer once `errcode` is 0. For endpoints this crate has no typed method for.
    pub async fn oapi_post_raw(&self, group: &str, path: &str, body: &Value) -> Result<Value> {
        let url = join(&self.inner.config.oapi_base, path);
        let http = self.inner.http.client.clone();
        self.authed(group, Family::Oapi, |tok| {
            http.post(&url)
                .query(&[("access_token", tok)])
                .header("content-type", "application/json;charset=UTF-8")
                .json(body)
        })
        .await
    }

    /// Raw oapi GET with query parameters (the token is added).
    pub async fn oapi_get_raw(
        &self,
        group: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value> {
        let url = join(&self.inner.config.oapi_base, path);
        let http = self.inner.http.client.clone();
        self.authed(group, Family::Oapi, |tok| {
            http.get(&url).query(query).query(&[("access_token", tok)])
        })
        .await
    }

    /// Raw v1.0 call with the `x-acs-dingtalk-access-token` header (protocol §0).
    pub async fn api_raw(
        &self,
        group: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = join(&self.inner.config.api_base, path);
        let http = self.inner.http.client.clone();
        self.authed(group, Family::V1, |tok| {
            let mut req = http
                .request(method.clone(), &url)
                .header("x-acs-dingtalk-access-token", tok)
                .header("accept", "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            req
        })
        .await
    }

    /// Typed v1.0 request.
    pub(crate) async fn api<B: Serialize, R: DeserializeOwned>(
        &self,
        group: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<R> {
        let body = match body {
            Some(b) => Some(
                serde_json::to_value(b)
                    .map_err(|e| Error::Invalid(format!("request body for {path}: {e}")))?,
            ),
            None => None,
        };
        let v = self
            .api_raw(group, method, path, query, body.as_ref())
            .await?;
        from_value(path, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oapi_numbers_as_strings() {
        let v = interpret(
            Family::Oapi,
            200,
            None,
            br#"{"errcode":"0","errmsg":"ok","x":1}"#,
        );
        assert!(v.is_ok());
        let e = interpret(
            Family::Oapi,
            200,
            None,
            br#"{"errcode":"40014","errmsg":"bad"}"#,
        );
        assert!(matches!(e, Err(Error::TokenInvalid { .. })));
    }

    #[test]
    fn v1_errors() {
        let e = interpret(
            Family::V1,
            400,
            None,
            r#"{"code":"InvalidAuthentication","requestid":"30EE","message":"不合法的access_token"}"#
                .as_bytes(),
        );
        assert!(matches!(e, Err(Error::TokenInvalid { .. })));
        let e = interpret(Family::V1, 429, Some(Duration::from_secs(3)), b"");
        assert!(
            matches!(e, Err(Error::Throttled { retry_after: Some(d), .. }) if d == Duration::from_secs(3))
        );
        let e = interpret(Family::V1, 502, None, b"Bad Gateway");
        assert!(matches!(e, Err(Error::Unavailable { .. })));
        let e = interpret(Family::Oapi, 200, None, b"<html><body>deny</body></html>");
        assert!(matches!(e, Err(Error::Throttled { .. })));
        let e = interpret(
            Family::V1,
            200,
            None,
            br#"{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"}"#,
        );
        assert!(matches!(e, Err(Error::Throttled { .. })));
    }
}
