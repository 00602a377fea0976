//! Access tokens (protocol §1.2–§1.5). One token per app, valid in both families; fetching
//! again while it is valid answers the same token and extends it to a full lifetime; after
//! expiry a new one is issued. Expired tokens are remembered so they answer 42001
//! (access_token超时) rather than 40014 (不合法的access_token).

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::DingTalkSandbox;
use super::params::Params;
use super::reply::ApiError;

#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub app_key: String,
    /// Sandbox clock, ms.
    pub expires_ms: i64,
}

#[derive(Debug, Default)]
pub struct Tokens {
    pub by_token: HashMap<String, TokenEntry>,
    pub by_app: HashMap<String, String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    Unknown,
    Expired,
}

impl TokenProblem {
    /// §1.5: oapi 40014 / 42001; v1.0 HTTP 400 `InvalidAuthentication` for a bad or expired
    /// token (OBS satori#240) and HTTP 401 when the header is missing.
    pub fn error(self) -> ApiError {
        match self {
            TokenProblem::Missing => ApiError::oapi(40014, "不合法的access_token")
                .with_v1(StatusCode::UNAUTHORIZED, "Unauthorized"),
            TokenProblem::Unknown => ApiError::oapi(40014, "不合法的access_token")
                .with_v1(StatusCode::BAD_REQUEST, "InvalidAuthentication"),
            TokenProblem::Expired => ApiError::oapi(42001, "access_token超时")
                .with_v1(StatusCode::BAD_REQUEST, "InvalidAuthentication"),
        }
    }
}

impl DingTalkSandbox {
    /// Issues or renews the app's token: `(token, expires_in seconds, renewed)`.
    pub fn issue_token(&self, app_key: &str) -> (String, i64, bool) {
        let now = self.now_ms();
        let ttl = self.config().token_ttl.as_millis() as i64;
        let mut t = self.tokens();
        let current = t.by_app.get(app_key).cloned();
        if let Some(tok) = current
            && let Some(e) = t.by_token.get_mut(&tok)
            && e.expires_ms > now
        {
            e.expires_ms = now + ttl;
            drop(t);
            self.count(|c| c.tokens_renewed += 1);
            return (tok, ttl / 1000, true);
        }
        let tok = uuid::Uuid::new_v4().simple().to_string();
        t.by_token.insert(
            tok.clone(),
            TokenEntry {
                app_key: app_key.to_owned(),
                expires_ms: now + ttl,
            },
        );
        t.by_app.insert(app_key.to_owned(), tok.clone());
        drop(t);
        self.count(|c| c.tokens_issued += 1);
        (tok, ttl / 1000, false)
    }

    /// The app key a token belongs to.
    pub fn check_token(&self, token: Option<&str>) -> Result<String, TokenProblem> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(TokenProblem::Missing)?;
        let t = self.tokens();
        let e = t.by_token.get(token).ok_or(TokenProblem::Unknown)?;
        if e.expires_ms <= self.now_ms() {
            return Err(TokenProblem::Expired);
        }
        Ok(e.app_key.clone())
    }

    /// Forced expiry (admin): every token of `app_key` (or of every app) expires now.
    pub fn expire_tokens(&self, app_key: Option<&str>) -> usize {
        let now = self.now_ms();
        let mut t = self.tokens();
        let mut n = 0;
        for e in t.by_token.values_mut() {
            if app_key.is_none_or(|k| k == e.app_key) && e.expires_ms > now {
                e.expires_ms = now;
                n += 1;
            }
        }
        n
    }

    fn credentials_ok(&self, key: &str, secret: &str) -> bool {
        self.app(key).is_some_and(|a| a.app_secret == secret)
    }
}

/// `GET /gettoken?appkey=&appsecret=` (§1.2). Wrong credentials: 40089 (§9.1 unconfirmed
/// which code appkey mistakes get; 40089 is the global "不合法的corpId或corpSecret").
pub fn gettoken(sb: &DingTalkSandbox, p: &Params) -> Result<Value, ApiError> {
    let key = p.str_opt("appkey").or_else(|| p.str_opt("corpid"));
    let secret = p.str_opt("appsecret").or_else(|| p.str_opt("corpsecret"));
    let (Some(key), Some(secret)) = (key, secret) else {
        return Err(ApiError::oapi(40089, "不合法的corpId或corpSecret"));
    };
    if !sb.credentials_ok(&key, &secret) {
        return Err(ApiError::oapi(40089, "不合法的corpId或corpSecret"));
    }
    let (token, expires_in, _) = sb.issue_token(&key);
    Ok(json!({"access_token": token, "expires_in": expires_in}))
}

/// `POST /v1.0/oauth2/accessToken` `{appKey, appSecret}` (§1.3); 400 `invalidClientIdOrSecret`.
pub fn access_token_v1(sb: &DingTalkSandbox, p: &Params) -> Result<Value, ApiError> {
    let bad = || {
        ApiError::v1(
            StatusCode::BAD_REQUEST,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        )
    };
    let key = p.str_opt("appKey").ok_or_else(bad)?;
    let secret = p.str_opt("appSecret").ok_or_else(bad)?;
    if !sb.credentials_ok(&key, &secret) {
        return Err(bad());
    }
    let (token, expires_in, _) = sb.issue_token(&key);
    Ok(json!({"accessToken": token, "expireIn": expires_in}))
}

/// `POST /v1.0/oauth2/{corpId}/token` `{client_id, client_secret, grant_type}` (§1.4).
pub fn corp_token_v1(sb: &DingTalkSandbox, corp: &str, p: &Params) -> Result<Value, ApiError> {
    if p.str_opt("grant_type").as_deref() != Some("client_credentials") {
        return Err(ApiError::v1(
            StatusCode::BAD_REQUEST,
            "unsupported.grant.type",
            "不支持的grant_type",
        ));
    }
    let key = p.str_opt("client_id").unwrap_or_default();
    let secret = p.str_opt("client_secret").unwrap_or_default();
    if corp != sb.corp_id() || !sb.credentials_ok(&key, &secret) {
        return Err(ApiError::v1(
            StatusCode::BAD_REQUEST,
            "invalid.client",
            "无效的client_id或client_secret",
        ));
    }
    let (token, expires_in, _) = sb.issue_token(&key);
    Ok(json!({"access_token": token, "expires_in": expires_in}))
}
