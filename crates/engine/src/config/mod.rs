//! `dingbridge.toml`: the typed configuration, its loader and its error messages.
//!
//! Every string value may contain `${ENV_VAR}` references, expanded from the environment when
//! the file is loaded (`$${` stands for a literal `${`). Secrets are [`SecretString`]s, so the
//! `Debug` output of a [`Config`] never shows them. Errors are one line each:
//! `dingbridge.toml:12:1: unknown key `queus` in [workers]; allowed: …`, in English or Chinese
//! ([`ConfigError::render`]).

mod error;
mod read;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use limits::{ConnectionLimits, DingTalkEdition, LimiterRegistry, LimitsError};
use secrecy::SecretString;

pub use error::{
    ConfigError, ConfigErrorKind, CronProblem, EnvSyntax, Expected, Format, Lang, Location,
};

/// The whole configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub workers: WorkersConfig,
    /// By connection name.
    pub connections: BTreeMap<String, Connection>,
    /// By flow name.
    pub flows: BTreeMap<String, FlowConfig>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `host:port`, default `127.0.0.1:8080`.
    pub listen: String,
    pub log_format: LogFormat,
    /// Language of messages; `None` = from the environment ([`Lang::from_env`]).
    pub lang: Option<Lang>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            log_format: LogFormat::Text,
            lang: None,
        }
    }
}

/// `[server] log_format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[store]`
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://…` or `postgres://…` (`postgresql://` too). May hold a password: `Debug`
    /// hides it.
    pub url: String,
    pub max_connections: u32,
}

impl StoreConfig {
    /// Which backend the URL selects.
    pub fn backend(&self) -> StoreBackend {
        if self.url.starts_with("sqlite:") {
            StoreBackend::Sqlite
        } else {
            StoreBackend::Postgres
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://dingbridge.sqlite".to_owned(),
            max_connections: 8,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// The store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite,
    Postgres,
}

/// `[workers]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkersConfig {
    pub count: usize,
    pub lease_seconds: u64,
    pub poll_interval_ms: u64,
    pub queues: Vec<String>,
    pub shutdown_grace_seconds: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            count: 4,
            lease_seconds: 30,
            poll_interval_ms: 250,
            queues: vec!["default".to_owned()],
            shutdown_grace_seconds: 20,
        }
    }
}

impl WorkersConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// `[connections.<name>]`
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub settings: ConnectionSettings,
    /// The `[connections.<name>.limits]` table over the kind's preset (keys left out keep the
    /// preset's value); the preset alone when there is no such table.
    pub limits: ConnectionLimits,
}

impl Connection {
    pub fn kind(&self) -> ConnectionKind {
        match self.settings {
            ConnectionSettings::DingTalk(_) => ConnectionKind::DingTalk,
            ConnectionSettings::Kingdee(_) => ConnectionKind::Kingdee,
            ConnectionSettings::Http(_) => ConnectionKind::Http,
            ConnectionSettings::Sql(_) => ConnectionKind::Sql,
        }
    }
}

/// `kind = …`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    DingTalk,
    Kingdee,
    Http,
    Sql,
}

impl ConnectionKind {
    pub const ALL: [ConnectionKind; 4] = [Self::DingTalk, Self::Kingdee, Self::Http, Self::Sql];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DingTalk => "dingtalk",
            Self::Kingdee => "kingdee",
            Self::Http => "http",
            Self::Sql => "sql",
        }
    }
}

/// The kind-specific part of a connection.
#[derive(Debug, Clone)]
pub enum ConnectionSettings {
    DingTalk(DingTalkConnection),
    Kingdee(KingdeeConnection),
    Http(HttpConnection),
    Sql(SqlConnection),
}

/// `kind = "dingtalk"`: one DingTalk internal app.
#[derive(Debug, Clone)]
pub struct DingTalkConnection {
    pub corp_id: String,
    pub agent_id: i64,
    pub app_key: String,
    pub app_secret: SecretString,
    pub callback_token: Option<SecretString>,
    pub encoding_aes_key: Option<SecretString>,
    /// Default `https://oapi.dingtalk.com`.
    pub oapi_base_url: String,
    /// Default `https://api.dingtalk.com`.
    pub api_base_url: String,
    pub edition: DingTalkEdition,
    /// Receive events over Stream mode (an outbound WebSocket; no public IP needed).
    pub stream: bool,
}

/// `kind = "kingdee"`: one K3Cloud data centre.
#[derive(Debug, Clone)]
pub struct KingdeeConnection {
    /// Ends with `/` (added if missing), e.g. `https://erp.example.com/k3cloud/`.
    pub base_url: String,
    pub acct_id: String,
    pub user_name: String,
    pub app_id: String,
    pub app_secret: SecretString,
    /// For `auth = "validate_user"` (required then).
    pub password: Option<SecretString>,
    /// Default 2052 (简体中文).
    pub lcid: u32,
    pub org_number: Option<String>,
    pub auth: KingdeeAuth,
}

/// Kingdee authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KingdeeAuth {
    /// Signature headers on every call (no login call).
    #[default]
    Signature,
    LoginBySign,
    LoginBySignSha1,
    LoginByAppSecret,
    ValidateUser,
}

impl KingdeeAuth {
    pub const ALL: [KingdeeAuth; 5] = [
        Self::Signature,
        Self::LoginBySign,
        Self::LoginBySignSha1,
        Self::LoginByAppSecret,
        Self::ValidateUser,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::LoginBySign => "login_by_sign",
            Self::LoginBySignSha1 => "login_by_sign_sha1",
            Self::LoginByAppSecret => "login_by_app_secret",
            Self::ValidateUser => "validate_user",
        }
    }
}

/// `kind = "http"`: an in-house system or eHR over HTTP.
#[derive(Debug, Clone)]
pub struct HttpConnection {
    pub base_url: String,
    /// Sent as the `Authorization` header value.
    pub auth_header: Option<SecretString>,
    /// Key of Standard Webhooks signatures.
    pub hmac_secret: Option<SecretString>,
    /// Default 30.
    pub timeout_seconds: u64,
}

impl HttpConnection {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }
}

/// `kind = "sql"`: a table of an in-house database.
#[derive(Debug, Clone)]
pub struct SqlConnection {
    pub url: SecretString,
}

/// `[flows.<name>]`
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    pub name: String,
    pub recipe: String,
    pub enabled: bool,
    /// A validated cron expression (5 fields, or 6 with seconds first).
    pub schedule: Option<String>,
    pub queue: String,
    pub priority: i32,
    /// Every name is a defined connection.
    pub connections: Vec<String>,
    pub retry: RetryConfig,
    /// `[flows.<name>.options]` as JSON (an object; empty if absent).
    pub options: serde_json::Value,
}

/// `[flows.<name>.retry]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Delay before each retry (jitter is added by the retry policy).
    pub schedule: Vec<Duration>,
    /// Total attempts including the first; `None` = one more than the schedule has steps.
    pub max_attempts: Option<u32>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            schedule: crate::retry::DEFAULT_SCHEDULE.to_vec(),
            max_attempts: None,
        }
    }
}

impl RetryConfig {
    /// Total attempts allowed (the first one included).
    pub fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or_else(|| {
            u32::try_from(self.schedule.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        })
    }
}

impl Config {
    /// Reads and validates a config file, expanding `${ENV}` from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: source.clone(),
            location: None,
            key: None,
            kind: Box::new(ConfigErrorKind::Io {
                message: e.to_string(),
            }),
        })?;
        Self::from_str(&text, &source)
    }

    /// Parses config text; `source_name` is used in error messages.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        Self::from_str_with_env(text, source_name, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_str`] with an injectable environment.
    pub fn from_str_with_env(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        sections::parse(text, source_name, env)
    }

    /// One limiter per connection.
    pub fn limiter_registry(&self) -> Result<LimiterRegistry, LimitsError> {
        LimiterRegistry::from_configs(
            self.connections
                .iter()
                .map(|(name, c)| (name.clone(), c.limits.clone())),
        )
    }

    /// The language for messages: `[server] lang`, else the environment.
    pub fn lang(&self) -> Lang {
        self.server.lang.unwrap_or_else(Lang::from_env)
    }
}
