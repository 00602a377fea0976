//! The HTTP side: one `reqwest` client with a cookie jar per connection, signature headers,
//! the session, pacing, the re-login-once rule and the call-limit backoff. Operations
//! (`ops.rs`) and SSO logout (`sso.rs`) are built on [`KingdeeClient::call`].

use std::sync::Arc;
use std::time::Duration;

use limits::Pacer;
use reqwest::header::{ACCEPT_CHARSET, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::{AuthMode, KingdeeConfig};
use crate::envelope::{find_status, parse_body, snippet};
use crate::error::KingdeeError;
use crate::session::{AUTH_GROUP, SESSION_COOKIE, Session, session_cookie_value};
use crate::sign::{SignatureHeaders, SignatureInputs, signing_path};

/// A source of Unix time in seconds (injected in tests so signatures are reproducible).
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01 UTC.
    fn unix_seconds(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// A fixed clock for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn unix_seconds(&self) -> i64 {
        self.0
    }
}

/// A request body.
pub(crate) enum Body {
    Json(Vec<u8>),
    Form(Vec<(&'static str, String)>),
}

/// A 200 response.
pub(crate) struct Sent {
    pub text: String,
    pub session_cookie: Option<String>,
}

struct Inner {
    cfg: KingdeeConfig,
    http: reqwest::Client,
    pacer: Arc<dyn Pacer>,
    clock: Arc<dyn Clock>,
    session: Session,
}

/// The K3Cloud WebAPI client of one connection. Cheap to clone; clones share the session, the
/// cookie jar and the pacer.
#[derive(Clone)]
pub struct KingdeeClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KingdeeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KingdeeClient")
            .field("base_url", &self.inner.cfg.base_url.as_str())
            .field("acct_id", &self.inner.cfg.acct_id)
            .field("auth", &self.inner.cfg.auth)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KingdeeClient`].
pub struct KingdeeClientBuilder {
    cfg: KingdeeConfig,
    pacer: Arc<dyn Pacer>,
    clock: Arc<dyn Clock>,
}

impl KingdeeClientBuilder {
    /// Paces every HTTP call (default: [`limits::Unpaced`]).
    pub fn pacer(mut self, pacer: Arc<dyn Pacer>) -> Self {
        self.pacer = pacer;
        self
    }

    /// Replaces the clock used for signatures and LoginBySign timestamps.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration and builds the client.
    pub fn build(self) -> Result<KingdeeClient, KingdeeError> {
        self.cfg.validate()?;
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(self.cfg.timeout)
            .connect_timeout(self.cfg.timeout.min(Duration::from_secs(30)))
            // The SDK's User-Agent, in case a gateway filters on it. [SDK-PY const/header_param.py]
            .user_agent("Kingdee/Python WebApi SDK 7.3 (compatible; MSIE 6.0; Windows NT 5.1;SV1)")
            .build()
            .map_err(|e| KingdeeError::Config(format!("HTTP client: {e}")))?;
        Ok(KingdeeClient {
            inner: Arc::new(Inner {
                cfg: self.cfg,
                http,
                pacer: self.pacer,
                clock: self.clock,
                session: Session::default(),
            }),
        })
    }
}

impl KingdeeClient {
    /// A client with the default pacer (none) and the system clock.
    pub fn new(cfg: KingdeeConfig) -> Result<Self, KingdeeError> {
        Self::builder(cfg).build()
    }

    /// A builder, to set the pacer or the clock.
    pub fn builder(cfg: KingdeeConfig) -> KingdeeClientBuilder {
        KingdeeClientBuilder {
            cfg,
            pacer: Arc::new(limits::Unpaced),
            clock: Arc::new(SystemClock),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KingdeeConfig {
        &self.inner.cfg
    }

    /// The session (login count, current id).
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    pub(crate) fn pacer(&self) -> &dyn Pacer {
        self.inner.pacer.as_ref()
    }

    pub(crate) fn now_unix(&self) -> i64 {
        self.inner.clock.unix_seconds()
    }

    /// Logs in now if the mode uses a login and there is no session yet (e.g. for `check`).
    pub async fn login(&self) -> Result<(), KingdeeError> {
        self.inner.session.ticket(self).await.map(|_| ())
    }

    /// `AuthService.Logout` (§1.6): ends the current session, if any. Returns the server's
    /// answer (`true`/`false`); without a session it returns `false` without calling.
    pub async fn logout(&self) -> Result<bool, KingdeeError> {
        if !self.inner.cfg.auth.uses_login() {
            return Ok(false);
        }
        let Some(sid) = self.inner.session.session_id().await else {
            return Ok(false);
        };
        let service = "Kingdee.BOS.WebApi.ServicesStub.AuthService.Logout";
        let body = json_body(&[])?;
        let sent = self
            .send_once(service, AUTH_GROUP, Body::Json(body), Some(&sid), false)
            .await;
        self.inner.session.forget().await;
        let value = parse_body(service, &sent?.text)?;
        self.inner.pacer.succeeded(AUTH_GROUP);
        Ok(value.as_bool().unwrap_or(false))
    }

    /// Calls `{base}{service}.common.kdsvc` with `{"parameters":[…]}` (§1.2) and returns the
    /// parsed body. Logs in first when needed; on a lost session (MsgCode 1) logs in again once
    /// and retries once; on MsgCode 14 tells the pacer, waits and retries up to
    /// `throttle_retries` times. Any other `IsSuccess:false` is returned as a body for the
    /// operation to judge.
    pub async fn call(
        &self,
        service: &str,
        group: &str,
        params: &[Value],
    ) -> Result<Value, KingdeeError> {
        let body = json_body(params)?;
        let cfg = &self.inner.cfg;
        let mut renewed = false;
        let mut throttled: u32 = 0;
        loop {
            let ticket = self.inner.session.ticket(self).await?;
            let sent = self
                .send_once(
                    service,
                    group,
                    Body::Json(body.clone()),
                    ticket.sid.as_deref(),
                    true,
                )
                .await?;
            let value = parse_body(service, &sent.text)?;
            if let Some(status) = find_status(&value) {
                if status.is_session_lost() {
                    if renewed {
                        return Err(KingdeeError::Api {
                            service: service.to_owned(),
                            status: Box::new(status),
                        });
                    }
                    tracing::info!(
                        service,
                        "kingdee session lost (MsgCode 1); logging in again"
                    );
                    renewed = true;
                    self.inner.session.renew(self, ticket.generation).await?;
                    continue;
                }
                if status.is_call_limit() {
                    self.inner.pacer.throttled(group, None);
                    if throttled >= cfg.throttle_retries {
                        return Err(KingdeeError::Api {
                            service: service.to_owned(),
                            status: Box::new(status),
                        });
                    }
                    let wait = cfg.throttle_backoff.saturating_mul(1 << throttled.min(16));
                    tracing::warn!(
                        service,
                        ?wait,
                        "kingdee call limit (MsgCode 14); backing off"
                    );
                    throttled += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            self.inner.pacer.succeeded(group);
            return Ok(value);
        }
    }

    /// One HTTP exchange through the pacer. Non-200 answers become [`KingdeeError::Http`].
    pub(crate) async fn send_once(
        &self,
        service: &str,
        group: &str,
        body: Body,
        sid: Option<&str>,
        sign: bool,
    ) -> Result<Sent, KingdeeError> {
        let cfg = &self.inner.cfg;
        let url = cfg.service_url(service)?;
        let transport = |source| KingdeeError::Transport {
            service: service.to_owned(),
            source,
        };
        let _permit = self.inner.pacer.acquire(group).await;
        let mut req = self
            .inner
            .http
            .post(url.clone())
            .header(ACCEPT_CHARSET, "utf-8");
        req = match body {
            Body::Json(bytes) => req.header(CONTENT_TYPE, "application/json").body(bytes),
            Body::Form(fields) => req.form(&fields),
        };
        if sign && cfg.auth == AuthMode::SignatureHeaders {
            let ts = self.now_unix().to_string();
            let inputs = SignatureInputs {
                acct_id: &cfg.acct_id,
                user_name: &cfg.user_name,
                app_id: &cfg.app_id,
                app_secret: cfg.app_secret.expose_secret(),
                lcid: cfg.lcid,
                org_num: &cfg.org_num,
            };
            // Nonce = timestamp, as the Python and Java SDKs send it. [SDK-PY `BuildHeader`]
            let headers = SignatureHeaders::compute(&inputs, &signing_path(&url), &ts, &ts);
            for (name, value) in headers.header_pairs() {
                req = req.header(name, value);
            }
        }
        if let Some(sid) = sid {
            req = req.header(SESSION_COOKIE, sid);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let session_cookie = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session_cookie_value);
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if matches!(status.as_u16(), 429 | 503) {
                self.inner.pacer.throttled(group, retry_after);
            }
            let text = resp.text().await.unwrap_or_default();
            return Err(KingdeeError::Http {
                service: service.to_owned(),
                status: status.as_u16(),
                snippet: snippet(&text),
            });
        }
        let text = resp.text().await.map_err(transport)?;
        Ok(Sent {
            text,
            session_cookie,
        })
    }
}

fn json_body(params: &[Value]) -> Result<Vec<u8>, KingdeeError> {
    serde_json::to_vec(&json!({ "parameters": params }))
        .map_err(|e| KingdeeError::Config(format!("request body: {e}")))
}
