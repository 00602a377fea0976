//! Connection settings for one Kingdee data centre, and how the client authenticates.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::KingdeeError;

/// How the client proves who it is (protocol §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// v8 SDK scheme: signature headers on every request, no login call at all (§1.7).
    #[default]
    SignatureHeaders,
    /// `AuthService.LoginBySign` with a SHA-256 `sign` (§1.5); Kingdee's recommended login.
    LoginBySign,
    /// `AuthService.LoginBySign` with SHA-1, for servers before PT-146911 8.0.0.202205 (§1.5).
    LoginBySignSha1,
    /// `AuthService.LoginByAppSecret` (§1.4).
    LoginByAppSecret,
    /// `AuthService.ValidateUser` with a user password (legacy, §1.3).
    ValidateUser,
}

impl AuthMode {
    /// Whether this mode holds a login session (everything but [`AuthMode::SignatureHeaders`]).
    pub fn uses_login(self) -> bool {
        !matches!(self, AuthMode::SignatureHeaders)
    }
}

/// Default number of rows per `ExecuteBillQuery` page: the server's default cap (§5).
pub const DEFAULT_QUERY_PAGE: u32 = 2000;
/// The highest `Limit` a server can be configured to accept (§5).
pub const MAX_QUERY_PAGE: u32 = 10_000;

/// Settings of one Kingdee connection (one data centre, one integration user).
///
/// `Debug` never prints the secrets (they are [`SecretString`]).
#[derive(Debug, Clone)]
pub struct KingdeeConfig {
    /// `http(s)://host[:port]/k3cloud/`; a missing trailing `/` is added.
    pub base_url: Url,
    /// Data-centre id (`acctID`, `select FDATACENTERID from T_BAS_DATACENTER`).
    pub acct_id: String,
    /// The integration user.
    pub user_name: String,
    /// `AppId` as shown in 第三方系统登录授权: `ClientID_Suffix`.
    pub app_id: String,
    /// `AppSecret` (32 hex characters).
    pub app_secret: SecretString,
    /// The user's password, for [`AuthMode::ValidateUser`] only.
    pub password: Option<SecretString>,
    /// 2052 zh-CN (default), 1033 en, 3076 zh-TW.
    pub lcid: u32,
    /// `OrgNum` of the signature scheme (default `"0"`; may be empty, §1.7).
    pub org_num: String,
    /// How to authenticate.
    pub auth: AuthMode,
    /// Per-request timeout (the SDK uses 120 s, §5).
    pub timeout: Duration,
    /// Rows per `ExecuteBillQuery` page (clamped to 1..=[`MAX_QUERY_PAGE`]).
    pub query_page_limit: u32,
    /// How often one call is retried after MsgCode 14 (call limit) before the error is returned.
    pub throttle_retries: u32,
    /// First wait after MsgCode 14; doubled on each further retry. The pacer is told as well.
    pub throttle_backoff: Duration,
}

impl KingdeeConfig {
    /// A configuration with the defaults: LCID 2052, OrgNum `0`, signature headers, 120 s
    /// timeout, pages of 2000 rows, two retries after a call limit starting at 1 s.
    pub fn new(
        base_url: &str,
        acct_id: impl Into<String>,
        user_name: impl Into<String>,
        app_id: impl Into<String>,
        app_secret: SecretString,
    ) -> Result<Self, KingdeeError> {
        Ok(Self {
            base_url: normalise_base(base_url)?,
            acct_id: acct_id.into(),
            user_name: user_name.into(),
            app_id: app_id.into(),
            app_secret,
            password: None,
            lcid: 2052,
            org_num: "0".to_owned(),
            auth: AuthMode::default(),
            timeout: Duration::from_secs(120),
            query_page_limit: DEFAULT_QUERY_PAGE,
            throttle_retries: 2,
            throttle_backoff: Duration::from_secs(1),
        })
    }

    /// Sets the authentication mode.
    pub fn with_auth(mut self, auth: AuthMode) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the password (for [`AuthMode::ValidateUser`]).
    pub fn with_password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets the LCID.
    pub fn with_lcid(mut self, lcid: u32) -> Self {
        self.lcid = lcid;
        self
    }

    /// Sets the organisation number sent in `X-Kd-Appdata`.
    pub fn with_org_num(mut self, org_num: impl Into<String>) -> Self {
        self.org_num = org_num.into();
        self
    }

    /// The part of `AppId` before the first `_` (`X-Api-ClientID`).
    pub fn client_id(&self) -> &str {
        self.app_id
            .split_once('_')
            .map_or(self.app_id.as_str(), |(c, _)| c)
    }

    /// The full URL of a service, e.g. `Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save`
    /// becomes `{base}Kingdee.BOS….Save.common.kdsvc` (§1.1).
    pub fn service_url(&self, service: &str) -> Result<Url, KingdeeError> {
        self.base_url
            .join(&format!("{service}.common.kdsvc"))
            .map_err(|e| KingdeeError::Config(format!("bad service name {service:?}: {e}")))
    }

    /// Checks the settings that can be checked without a network call.
    pub fn validate(&self) -> Result<(), KingdeeError> {
        use secrecy::ExposeSecret;
        if self.acct_id.trim().is_empty() {
            return Err(KingdeeError::Config("acct_id (数据中心ID) is empty".into()));
        }
        if self.user_name.trim().is_empty() {
            return Err(KingdeeError::Config("user_name is empty".into()));
        }
        match self.auth {
            AuthMode::ValidateUser => {
                if self.password.is_none() {
                    return Err(KingdeeError::Config(
                        "auth = validate_user needs a password".into(),
                    ));
                }
            }
            _ => {
                if self.app_id.is_empty() || self.app_secret.expose_secret().is_empty() {
                    return Err(KingdeeError::Config(
                        "app_id and app_secret (第三方系统登录授权) are required".into(),
                    ));
                }
            }
        }
        if self.auth == AuthMode::SignatureHeaders && !self.app_id.contains('_') {
            return Err(KingdeeError::Config(
                "signature headers need an AppId of the form ClientID_Suffix".into(),
            ));
        }
        Ok(())
    }

    /// The page size actually used for `ExecuteBillQuery`.
    pub fn page_limit(&self) -> u32 {
        self.query_page_limit.clamp(1, MAX_QUERY_PAGE)
    }
}

fn normalise_base(base: &str) -> Result<Url, KingdeeError> {
    let mut text = base.trim().to_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    let url =
        Url::parse(&text).map_err(|e| KingdeeError::Config(format!("base_url {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(KingdeeError::Config(format!(
            "base_url {base:?} must be http(s)"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base: &str) -> KingdeeConfig {
        KingdeeConfig::new(
            base,
            "65f0a1b2c3d4e5",
            "webapi",
            "300001_abc",
            "s".to_owned().into(),
        )
        .expect("config")
    }

    #[test]
    fn base_url_gets_trailing_slash_and_service_urls_join() {
        let c = cfg("https://erp.example.local/K3Cloud");
        assert_eq!(
            c.service_url("Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery")
                .expect("url")
                .as_str(),
            "https://erp.example.local/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
        );
        assert_eq!(c.client_id(), "300001");
        assert_eq!(c.lcid, 2052);
        assert_eq!(c.org_num, "0");
    }

    #[test]
    fn validation_catches_missing_pieces() {
        assert!(KingdeeConfig::new("ftp://x/", "a", "b", "c_d", "s".to_owned().into()).is_err());
        let c = cfg("http://k3.example.local/k3cloud/");
        assert!(c.validate().is_ok());
        assert!(
            c.clone()
                .with_auth(AuthMode::ValidateUser)
                .validate()
                .is_err()
        );
        assert!(
            c.clone()
                .with_auth(AuthMode::ValidateUser)
                .with_password("888888".to_owned().into())
                .validate()
                .is_ok()
        );
        let mut no_underscore = c;
        no_underscore.app_id = "300001".into();
        assert!(no_underscore.validate().is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = cfg("http://k3/k3cloud/").with_password("pässwörd-秘密".to_owned().into());
        let text = format!("{c:?}");
        assert!(!text.contains("秘密"));
        assert!(text.contains("REDACTED"));
    }

    #[test]
    fn auth_mode_names() {
        let m: AuthMode = serde_json::from_str("\"login_by_sign_sha1\"").expect("parse");
        assert_eq!(m, AuthMode::LoginBySignSha1);
        assert!(!AuthMode::SignatureHeaders.uses_login());
        assert!(AuthMode::ValidateUser.uses_login());
    }
}
