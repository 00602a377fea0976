//! One sliding session per connection (protocol §1.8): logged in once, shared by every caller of
//! every clone of the client, renewed once when the server reports MsgCode 1. The login is
//! single-flight: concurrent callers wait on one async mutex while one of them logs in. In
//! [`AuthMode::SignatureHeaders`] mode there is no login call at all (§1.7).

use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{Body, KingdeeClient};
use crate::config::{AuthMode, KingdeeConfig};
use crate::envelope::{LoginResult, parse_body};
use crate::error::KingdeeError;
use crate::sign::{HashAlg, login_by_sign};

/// Cookie that carries the session. [SDK-JAVA `ConstDefine.KDSERVICE_SESSIONID`] [SDK-PY]
pub const SESSION_COOKIE: &str = "kdservice-sessionid";
/// The ASP.NET session cookie the server also sets. [SDK-JAVA `SessionId`]
pub const ASPNET_COOKIE: &str = "ASP.NET_SessionId";
/// Pacer group of login and logout calls.
pub const AUTH_GROUP: &str = "auth";

const AUTH_SERVICE: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService";

/// What a call needs from the session: which login it ran under, and the id to send.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ticket {
    pub generation: u64,
    pub sid: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    live: bool,
    sid: Option<String>,
    /// The last failed login: (attempt number, message, retryable).
    last_failure: Option<(u64, String, bool)>,
}

/// The session state of one connection. The cookie jar itself lives in the HTTP client (the
/// server's `kdservice-sessionid` and `ASP.NET_SessionId` cookies ride along automatically);
/// the id is also sent as the `kdservice-sessionid` header, as the Python SDK does.
#[derive(Debug, Default)]
pub struct Session {
    state: Mutex<State>,
    logins: AtomicU64,
    /// Login attempts finished so far (success or failure); read before waiting on the lock so
    /// a caller that waited through a failed attempt shares its result instead of repeating it.
    finished: AtomicU64,
}

impl Session {
    /// How many login calls this connection has made.
    pub fn login_count(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The current session id, if logged in.
    pub async fn session_id(&self) -> Option<String> {
        let st = self.state.lock().await;
        st.live.then(|| st.sid.clone()).flatten()
    }

    /// The session to use, logging in first if there is none (single-flight).
    pub(crate) async fn ticket(&self, client: &KingdeeClient) -> Result<Ticket, KingdeeError> {
        if !client.config().auth.uses_login() {
            return Ok(Ticket::default());
        }
        let seen = self.finished.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        if !st.live {
            self.login_or_share(&mut st, client, seen).await?;
        }
        Ok(Ticket {
            generation: st.generation,
            sid: st.sid.clone(),
        })
    }

    /// The server said the session of `seen` is lost: log in again unless another caller
    /// already did since.
    pub(crate) async fn renew(
        &self,
        client: &KingdeeClient,
        seen: u64,
    ) -> Result<(), KingdeeError> {
        if !client.config().auth.uses_login() {
            return Ok(());
        }
        let finished = self.finished.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        if st.generation == seen || !st.live {
            st.live = false;
            self.login_or_share(&mut st, client, finished).await?;
        }
        Ok(())
    }

    /// Logs in, unless a login attempt that failed finished while this caller waited for the
    /// lock: then that failure is returned, so N waiting callers cost one login, not N
    /// (a down server would otherwise see N timeouts in a row).
    async fn login_or_share(
        &self,
        st: &mut State,
        client: &KingdeeClient,
        finished_before_wait: u64,
    ) -> Result<(), KingdeeError> {
        if let Some((attempt, message, retryable)) = &st.last_failure
            && *attempt > finished_before_wait
        {
            return Err(KingdeeError::SharedLoginFailure {
                message: message.clone(),
                retryable: *retryable,
            });
        }
        let outcome = self.login_locked(st, client).await;
        let attempt = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        st.last_failure = outcome
            .as_ref()
            .err()
            .map(|e| (attempt, e.to_string(), e.is_retryable()));
        outcome
    }

    /// Forgets the session (after a logout).
    pub(crate) async fn forget(&self) {
        let mut st = self.state.lock().await;
        st.live = false;
        st.sid = None;
    }

    async fn login_locked(
        &self,
        st: &mut State,
        client: &KingdeeClient,
    ) -> Result<(), KingdeeError> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let cfg = client.config();
        let (service, params) = login_params(cfg, client.now_unix());
        tracing::debug!(service, user = %cfg.user_name, "kingdee login");
        let body = serde_json::to_vec(&json!({ "parameters": params }))
            .map_err(|e| KingdeeError::Config(format!("login body: {e}")))?;
        let sent = client
            .send_once(&service, AUTH_GROUP, Body::Json(body), None, false)
            .await?;
        let value = parse_body(&service, &sent.text)?;
        let result = LoginResult::deserialize(&value).map_err(|e| KingdeeError::Decode {
            service: service.clone(),
            reason: e.to_string(),
            snippet: crate::envelope::snippet(&sent.text),
        })?;
        let kind = result.result_type();
        if !kind.is_accepted() {
            client.pacer().succeeded(AUTH_GROUP);
            return Err(KingdeeError::Login {
                result_type: kind,
                message: result
                    .message
                    .clone()
                    .or(result.message_code.clone())
                    .unwrap_or_default(),
            });
        }
        client.pacer().succeeded(AUTH_GROUP);
        st.sid = sent.session_cookie.or_else(|| result.session_id());
        st.live = true;
        st.generation += 1;
        Ok(())
    }
}

/// The login service and its positional parameters for the configured mode.
pub(crate) fn login_params(cfg: &KingdeeConfig, now: i64) -> (String, Vec<Value>) {
    let secret = cfg.app_secret.expose_secret();
    match cfg.auth {
        // [MANUAL 5.1.1]; a real server accepted every parameter as a string [YIKD screenshot 01].
        AuthMode::LoginBySign | AuthMode::LoginBySignSha1 | AuthMode::SignatureHeaders => {
            let alg = if cfg.auth == AuthMode::LoginBySignSha1 {
                HashAlg::Sha1
            } else {
                HashAlg::Sha256
            };
            let ts = now.to_string();
            let sign = login_by_sign(&cfg.acct_id, &cfg.user_name, &cfg.app_id, secret, &ts, alg);
            (
                format!("{AUTH_SERVICE}.LoginBySign"),
                vec![
                    json!(cfg.acct_id),
                    json!(cfg.user_name),
                    json!(cfg.app_id),
                    json!(ts),
                    json!(sign),
                    json!(cfg.lcid.to_string()),
                ],
            )
        }
        // [POSTMAN] [YIKD `LoginByAppSecret.cs`] (§1.4)
        AuthMode::LoginByAppSecret => (
            format!("{AUTH_SERVICE}.LoginByAppSecret"),
            vec![
                json!(cfg.acct_id),
                json!(cfg.user_name),
                json!(cfg.app_id),
                json!(secret),
                json!(cfg.lcid),
            ],
        ),
        // [POSTMAN `{"parameters":["<acct>","demo","888888",2052]}`] (§1.3)
        AuthMode::ValidateUser => (
            format!("{AUTH_SERVICE}.ValidateUser"),
            vec![
                json!(cfg.acct_id),
                json!(cfg.user_name),
                json!(
                    cfg.password
                        .as_ref()
                        .map(|p| p.expose_secret())
                        .unwrap_or_default()
                ),
                json!(cfg.lcid),
            ],
        ),
    }
}

/// The `kdservice-sessionid` value from one `Set-Cookie` header (which may hold several cookies
/// joined by `, `, as in the vectors' raw header).
pub(crate) fn session_cookie_value(set_cookie: &str) -> Option<String> {
    set_cookie
        .split([';', ','])
        .filter_map(|part| part.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(SESSION_COOKIE))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::tests::vectors;

    fn cfg(auth: AuthMode) -> KingdeeConfig {
        KingdeeConfig::new(
            "http://k3.example.local/k3cloud/",
            "65f0a1b2c3d4e5",
            "webapi",
            "300001_abc",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned().into(),
        )
        .expect("config")
        .with_auth(auth)
        .with_password("888888".to_owned().into())
    }

    #[test]
    fn login_by_sign_params_match_vectors() {
        let v = vectors();
        let sha256 = &v["login_by_sign"][0];
        let (service, p) = login_params(&cfg(AuthMode::LoginBySign), 1_700_000_000);
        assert_eq!(
            service,
            "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign"
        );
        assert_eq!(p[3], json!("1700000000"));
        assert_eq!(p[4], sha256["sign"]);
        assert_eq!(p[5], json!("2052"));
        let sha1 = &v["login_by_sign"][1];
        let (_, p) = login_params(&cfg(AuthMode::LoginBySignSha1), 1_700_000_000);
        assert_eq!(p[4], sha1["sign"]);
    }

    #[test]
    fn other_login_params() {
        let (s, p) = login_params(&cfg(AuthMode::ValidateUser), 0);
        assert!(s.ends_with("AuthService.ValidateUser"));
        assert_eq!(
            p,
            vec![
                json!("65f0a1b2c3d4e5"),
                json!("webapi"),
                json!("888888"),
                json!(2052)
            ]
        );
        let (s, p) = login_params(&cfg(AuthMode::LoginByAppSecret), 0);
        assert!(s.ends_with("AuthService.LoginByAppSecret"));
        assert_eq!(p[3], json!("a1b2c3d4e5f60718293a4b5c6d7e8f90"));
    }

    #[test]
    fn session_cookie_from_raw_header() {
        let v = vectors();
        let case = &v["sdk_signature_headers"][3]["inputs"]["set_cookie"];
        let raw = case["raw_header"].as_str().expect("raw");
        assert_eq!(
            session_cookie_value(raw).as_deref(),
            case["kdservice-sessionid"].as_str()
        );
        assert_eq!(session_cookie_value("ASP.NET_SessionId=x; path=/"), None);
    }
}
