//! Login / SSO, protocol §6: in-app 免登 (auth code → userid, DOC
//! obtain-the-userid-of-a-user-by-using-the-log-free) and web/QR OAuth2 (DOC
//! tutorial-obtaining-user-personal-information, obtain-user-token,
//! dingtalk-retrieve-user-information). Pacer group `login`.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::client::{DingTalkClient, Family, from_value};
use crate::config::join;
use crate::error::{Error, Result};
use crate::ids::{UnionId, UserId};

/// Pacer group.
pub const GROUP: &str = "login";

/// `getuserinfo` → `result` (in-app auth code).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AuthCodeUser {
    /// User id.
    pub userid: UserId,
    /// Union id.
    #[serde(default)]
    pub unionid: Option<UnionId>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Device id.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Administrator.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub sys: Option<bool>,
    /// 1 main admin, 2 sub admin, 100 boss, 0 other.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub sys_level: Option<i64>,
}

/// A user access token from `/v1.0/oauth2/userAccessToken`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserToken {
    /// The user access token.
    pub access_token: SecretString,
    /// Refresh token (30 days).
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Lifetime in seconds.
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub expire_in: i64,
    /// The chosen org (with `scope=openid corpid`).
    #[serde(default)]
    pub corp_id: Option<String>,
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserToken")
            .field("expire_in", &self.expire_in)
            .field("corp_id", &self.corp_id)
            .finish_non_exhaustive()
    }
}

/// `GET /v1.0/contact/users/me`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// Nickname.
    #[serde(default)]
    pub nick: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Mobile (with permission).
    #[serde(default)]
    pub mobile: Option<String>,
    /// Open id.
    #[serde(default)]
    pub open_id: Option<String>,
    /// Union id.
    pub union_id: UnionId,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Country code.
    #[serde(default)]
    pub state_code: Option<String>,
}

/// Parameters of the browser authorization URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// Must match the console setting.
    pub redirect_uri: String,
    /// CSRF state.
    pub state: String,
    /// `openid` or `openid corpid`.
    pub scope: String,
    /// `consent`.
    pub prompt: String,
    /// Pre-select an org.
    pub corp_id: Option<String>,
}

impl AuthorizeRequest {
    /// `scope=openid`, `prompt=consent`.
    pub fn new(redirect_uri: impl Into<String>, state: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            state: state.into(),
            scope: "openid".into(),
            prompt: "consent".into(),
            corp_id: None,
        }
    }
}

impl DingTalkClient {
    /// In-app 免登: auth code (5 min, single use) → user:
    /// `POST /topapi/v2/user/getuserinfo {code}`; a used/unknown code answers 40078.
    pub async fn user_by_auth_code(&self, code: &str) -> Result<AuthCodeUser> {
        let v = self
            .oapi_post_raw(
                GROUP,
                "/topapi/v2/user/getuserinfo",
                &json!({ "code": code }),
            )
            .await?;
        let r = v
            .get("result")
            .cloned()
            .ok_or_else(|| Error::decode("getuserinfo: no result"))?;
        from_value("getuserinfo", r)
    }

    /// The browser login URL: `{login}/oauth2/auth?redirect_uri=…&response_type=code&
    /// client_id=…&scope=…&state=…&prompt=consent`.
    pub fn authorize_url(&self, req: &AuthorizeRequest) -> String {
        let mut url = format!(
            "{}?redirect_uri={}&response_type=code&client_id={}&scope={}&state={}&prompt={}",
            join(&self.config().login_base, "/oauth2/auth"),
            urlencoding::encode(&req.redirect_uri),
            urlencoding::encode(self.config().credentials.client_id.as_str()),
            urlencoding::encode(&req.scope),
            urlencoding::encode(&req.state),
            urlencoding::encode(&req.prompt),
        );
        if let Some(corp) = &req.corp_id {
            url.push_str(&format!("&corpId={}", urlencoding::encode(corp)));
        }
        url
    }

    async fn user_token_call(&self, body: serde_json::Value) -> Result<UserToken> {
        let req = self
            .http()
            .client
            .post(join(
                &self.config().api_base,
                "/v1.0/oauth2/userAccessToken",
            ))
            .header("accept", "application/json")
            .json(&body);
        let v = self.http().call(GROUP, Family::V1, req).await?;
        from_value("userAccessToken", v)
    }

    /// Exchange the browser `code`/`authCode` for a user token
    /// (`grantType=authorization_code`).
    pub async fn user_access_token(&self, code: &str) -> Result<UserToken> {
        let c = &self.config().credentials;
        self.user_token_call(json!({
            "clientId": c.client_id.as_str(),
            "clientSecret": c.client_secret.expose_secret(),
            "code": code,
            "grantType": "authorization_code",
        }))
        .await
    }

    /// Refresh a user token (`grantType=refresh_token`).
    pub async fn refresh_user_access_token(
        &self,
        refresh_token: &SecretString,
    ) -> Result<UserToken> {
        let c = &self.config().credentials;
        self.user_token_call(json!({
            "clientId": c.client_id.as_str(),
            "clientSecret": c.client_secret.expose_secret(),
            "refreshToken": refresh_token.expose_secret(),
            "grantType": "refresh_token",
        }))
        .await
    }

    /// The user behind a user token: `GET /v1.0/contact/users/me` (no app-token refresh: a
    /// rejected user token is returned as [`Error::TokenInvalid`]).
    pub async fn user_me(&self, user_token: &UserToken) -> Result<UserProfile> {
        self.contact_user_with_token(user_token, "me").await
    }

    /// A user by union id with a user token: `GET /v1.0/contact/users/{unionId}`.
    pub async fn contact_user_with_token(
        &self,
        user_token: &UserToken,
        union_id: &str,
    ) -> Result<UserProfile> {
        let path = format!("/v1.0/contact/users/{}", urlencoding::encode(union_id));
        let req = self
            .http()
            .client
            .request(Method::GET, join(&self.config().api_base, &path))
            .header(
                "x-acs-dingtalk-access-token",
                user_token.access_token.expose_secret(),
            )
            .header("accept", "application/json");
        let v = self.http().call(GROUP, Family::V1, req).await?;
        from_value("contact/users", v)
    }
}
