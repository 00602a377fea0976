//! Credentials and configuration of one DingTalk app (protocol §1.1).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::error::{Error, Result};
use crate::ids::{AgentId, ClientId, CorpId};

/// Production base of the old "oapi" family (protocol §0).
pub const DEFAULT_OAPI_BASE: &str = "https://oapi.dingtalk.com";
/// Production base of the new v1.0 family (protocol §0).
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
/// Production base of the browser login (protocol §6.2).
pub const DEFAULT_LOGIN_BASE: &str = "https://login.dingtalk.com";

/// An app's credential pair: Client ID / Client Secret, formerly AppKey / AppSecret
/// (SuiteKey / SuiteSecret for ISV apps), protocol §1.1.
#[derive(Clone)]
pub struct Credentials {
    /// Client ID (AppKey).
    pub client_id: ClientId,
    /// Client Secret (AppSecret).
    pub client_secret: SecretString,
}

impl Credentials {
    /// A credential pair.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: ClientId::new(client_id),
            client_secret: SecretString::from(client_secret.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

/// HTTP-callback settings from the developer console (protocol §5.1).
#[derive(Clone)]
pub struct CallbackSettings {
    /// The callback `token` (signature key).
    pub token: SecretString,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: SecretString,
    /// The owner key bound into every message: the AppKey for console subscriptions, the
    /// CorpId for `call_back` API registrations, the SuiteKey for ISV apps (protocol §5.1).
    pub owner_key: String,
}

impl fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("token", &"[REDACTED]")
            .field("encoding_aes_key", &"[REDACTED]")
            .field("owner_key", &self.owner_key)
            .finish()
    }
}

/// Which endpoint the token cache uses (both yield a token valid for both families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoint {
    /// `POST /v1.0/oauth2/accessToken` (protocol §1.3), the recommended one.
    #[default]
    V1,
    /// `GET /gettoken?appkey=&appsecret=` (protocol §1.2), "历史文档" but live.
    Oapi,
}

/// Everything the client needs for one DingTalk app.
#[derive(Debug, Clone)]
pub struct DingTalkConfig {
    /// The organisation.
    pub corp_id: CorpId,
    /// The app's AgentId (work notifications need it).
    pub agent_id: Option<AgentId>,
    /// Client ID / Secret.
    pub credentials: Credentials,
    /// HTTP-callback settings, when callbacks are used.
    pub callback: Option<CallbackSettings>,
    /// Base URL of the oapi family (overridable for a sandbox).
    pub oapi_base: Url,
    /// Base URL of the v1.0 family (overridable for a sandbox).
    pub api_base: Url,
    /// Base URL of the browser login page (overridable for a sandbox).
    pub login_base: Url,
    /// Which token endpoint to use.
    pub token_endpoint: TokenEndpoint,
    /// Refresh the token this long before it expires (the Python Stream SDK uses 300 s).
    pub token_refresh_margin: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl DingTalkConfig {
    /// A configuration pointing at the production platform.
    pub fn new(corp_id: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            corp_id: CorpId::new(corp_id),
            agent_id: None,
            credentials,
            callback: None,
            oapi_base: fixed_url(DEFAULT_OAPI_BASE),
            api_base: fixed_url(DEFAULT_API_BASE),
            login_base: fixed_url(DEFAULT_LOGIN_BASE),
            token_endpoint: TokenEndpoint::V1,
            token_refresh_margin: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Set the AgentId.
    pub fn with_agent_id(mut self, agent_id: impl Into<AgentId>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Set the callback token, EncodingAESKey and owner key.
    pub fn with_callback(
        mut self,
        token: impl Into<String>,
        encoding_aes_key: impl Into<String>,
        owner_key: impl Into<String>,
    ) -> Self {
        self.callback = Some(CallbackSettings {
            token: SecretString::from(token.into()),
            encoding_aes_key: SecretString::from(encoding_aes_key.into()),
            owner_key: owner_key.into(),
        });
        self
    }

    /// Point both API families (and the login page) at other bases, e.g. a sandbox.
    pub fn with_bases(mut self, oapi: &str, api: &str) -> Result<Self> {
        self.oapi_base = parse_base(oapi)?;
        self.api_base = parse_base(api)?;
        Ok(self)
    }

    /// Point the browser login page at another base.
    pub fn with_login_base(mut self, login: &str) -> Result<Self> {
        self.login_base = parse_base(login)?;
        Ok(self)
    }

    /// Choose the token endpoint.
    pub fn with_token_endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.token_endpoint = endpoint;
        self
    }
}

fn fixed_url(s: &str) -> Url {
    // Only called with the built-in constants above, which are valid URLs.
    #[allow(clippy::expect_used)]
    Url::parse(s).expect("built-in base URL is valid")
}

/// Parse a base URL; it must be absolute http(s).
pub(crate) fn parse_base(s: &str) -> Result<Url> {
    let url = Url::parse(s).map_err(|e| Error::Invalid(format!("base URL {s:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Invalid(format!("base URL {s:?} is not http(s)")));
    }
    Ok(url)
}

/// Join a base URL and an absolute API path (`/topapi/...`), keeping any base path prefix.
pub(crate) fn join(base: &Url, path: &str) -> String {
    let b = base.as_str().trim_end_matches('/');
    format!("{b}{path}")
}
