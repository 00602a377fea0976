//! The app access-token cache: one per app, shared by every clone of the client.
//!
//! * Fetch: `POST /v1.0/oauth2/accessToken {appKey, appSecret}` → `{accessToken, expireIn}`
//!   (protocol §1.3, DOC obtain-the-access-token-of-an-internal-app) or
//!   `GET /gettoken?appkey=&appsecret=` → `{access_token, expires_in}` (protocol §1.2,
//!   DOC obtain-orgapp-token). Both tokens work for both API families.
//! * Refresh a margin before expiry (PY-STREAM caches `expireIn − 300 s`), single-flight: all
//!   concurrent callers that find the token stale wait for one fetch.
//! * [`TokenCache::invalidate`] drops a token the platform rejected (40014/42001/88/
//!   `InvalidAuthentication`, protocol §1.5) — only if it is still the cached one, so many
//!   callers rejecting the same token cause one refresh.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;

use crate::client::{Family, Http, from_value};
use crate::config::{Credentials, DingTalkConfig, TokenEndpoint, join};
use crate::error::{Error, Result};

/// Pacer group of the token endpoints.
pub const GROUP_TOKEN: &str = "gettoken";

/// An app access token. Cheap to clone; its `Debug` does not print the token.
#[derive(Clone)]
pub struct AccessToken {
    token: Arc<str>,
    expires_at: Instant,
    refresh_at: Instant,
}

impl AccessToken {
    /// The token text (to put in a URL or header).
    pub fn expose(&self) -> &str {
        &self.token
    }
    /// When the platform said it expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
    fn fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Deserialize)]
struct V1Token {
    #[serde(rename = "accessToken")]
    access_token: String,
    #[serde(rename = "expireIn", deserialize_with = "crate::lenient::i64")]
    expire_in: i64,
}

#[derive(Deserialize)]
struct OapiToken {
    access_token: String,
    #[serde(deserialize_with = "crate::lenient::i64")]
    expires_in: i64,
}

/// The per-app token cache with single-flight refresh.
pub struct TokenCache {
    http: Http,
    credentials: Credentials,
    endpoint: TokenEndpoint,
    oapi_base: Url,
    api_base: Url,
    margin: Duration,
    current: Mutex<Option<AccessToken>>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("client_id", &self.credentials.client_id)
            .field("endpoint", &self.endpoint)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(config: &DingTalkConfig, http: Http) -> Self {
        Self {
            http,
            credentials: config.credentials.clone(),
            endpoint: config.token_endpoint,
            oapi_base: config.oapi_base.clone(),
            api_base: config.api_base.clone(),
            margin: config.token_refresh_margin,
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<AccessToken> {
        let now = Instant::now();
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|t| t.fresh(now))
            .cloned()
    }

    /// The current token, fetching one (once, for all concurrent callers) when it is missing
    /// or within the refresh margin of its expiry.
    pub async fn get(&self) -> Result<AccessToken> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _flight = self.refresh.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let token = self.fetch().await?;
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    /// Forget `stale` if it is still the cached token (the platform rejected it).
    pub fn invalidate(&self, stale: &AccessToken) {
        let mut cur = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.token, &stale.token) || c.token == stale.token)
        {
            *cur = None;
        }
    }

    /// Forget the cached token whatever it is.
    pub fn clear(&self) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// How many token fetches were made (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<AccessToken> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let client = &self.http.client;
        let secret = self.credentials.client_secret.expose_secret();
        let id = self.credentials.client_id.as_str();
        let result = match self.endpoint {
            TokenEndpoint::V1 => {
                let req = client
                    .post(join(&self.api_base, "/v1.0/oauth2/accessToken"))
                    .header("accept", "application/json")
                    .json(&serde_json::json!({ "appKey": id, "appSecret": secret }));
                let v = self.http.call(GROUP_TOKEN, Family::V1, req).await;
                v.and_then(|v| from_value::<V1Token>("accessToken", v))
                    .map(|t| (t.access_token, t.expire_in))
            }
            TokenEndpoint::Oapi => {
                let req = client
                    .get(join(&self.oapi_base, "/gettoken"))
                    .query(&[("appkey", id), ("appsecret", secret)]);
                let v = self.http.call(GROUP_TOKEN, Family::Oapi, req).await;
                v.and_then(|v| from_value::<OapiToken>("gettoken", v))
                    .map(|t| (t.access_token, t.expires_in))
            }
        };
        let (token, expires_in) = match result {
            Ok(ok) => ok,
            // The token endpoint itself rejecting us means bad credentials, not a stale token:
            // refreshing again cannot help.
            Err(Error::TokenInvalid { code, message }) => {
                return Err(Error::PermissionDenied {
                    code,
                    message: format!("credentials rejected: {message}"),
                });
            }
            Err(e) => return Err(e),
        };
        if token.is_empty() {
            return Err(Error::decode("token endpoint returned an empty token"));
        }
        let now = Instant::now();
        let lifetime = Duration::from_secs(expires_in.clamp(1, 86_400 * 30).unsigned_abs());
        // Keep at least half the lifetime usable even with a large margin.
        let margin = self.margin.min(lifetime / 2);
        tracing::debug!(client_id = id, ?lifetime, "fetched DingTalk access token");
        Ok(AccessToken {
            token: Arc::from(token),
            expires_at: now + lifetime,
            refresh_at: now + lifetime - margin,
        })
    }
}
