//! The DingTalk (钉钉) Open Platform sandbox: the old `oapi.dingtalk.com` paths and the new
//! `api.dingtalk.com/v1.0/…` paths on one listener, HTTP-callback and Stream-mode event
//! pushes, group robots, login (免登 and OAuth2), and an admin API under `/_sandbox/dingtalk/`.
//!
//! Written from `shared/protocols/dingtalk.md` only (section numbers in the comments), never
//! from the `dingtalk` client crate, so a client bug cannot hide behind the same simulator bug.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, serve};
//! let sandbox = DingTalkSandbox::new(DingTalkSandboxConfig::default(), &sandbox::seed::Seed::builtin());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, sandbox).await
//! # }
//! ```

pub mod admin;
pub mod approval;
pub mod contacts;
pub mod crypto;
pub mod events;
pub mod gateway;
pub mod limits;
pub mod login;
pub mod messages;
pub mod org;
pub mod params;
pub mod reply;
pub mod robot;
pub mod stream;
pub mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde::Serialize;

use crate::seed::Seed;

/// DingTalk organisation edition; sets the per-app-per-API QPS (protocol §7: standard 20/s;
/// professional 40 and exclusive 60 as the issue states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    #[default]
    Standard,
    Professional,
    Exclusive,
}

impl Edition {
    pub fn qps(self) -> u32 {
        match self {
            Edition::Standard => 20,
            Edition::Professional => 40,
            Edition::Exclusive => 60,
        }
    }
}

/// One internal app (企业内部应用, protocol §1.1: Client ID = AppKey).
#[derive(Debug, Clone, Serialize)]
pub struct AppConfig {
    pub app_key: String,
    pub app_secret: String,
    pub agent_id: u64,
    pub edition: Edition,
}

/// An HTTP-callback subscription (protocol §5.1).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CallbackConfig {
    pub url: String,
    /// The console "token" (signature key).
    pub token: String,
    /// The 43-character EncodingAESKey.
    pub aes_key: String,
    /// Owner key of the cipher: the AppKey for console subscriptions (default: the first
    /// app's key), the CorpId for `call_back` API registrations.
    #[serde(default)]
    pub owner_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DingTalkSandboxConfig {
    /// Empty: the seed company's corp id.
    pub corp_id: String,
    pub apps: Vec<AppConfig>,
    /// Access-token lifetime (§1.2: 7200 s, extended on re-fetch).
    pub token_ttl: Duration,
    pub callback: Option<CallbackConfig>,
    /// Retries of a failed push (§5.1: +10 s, then +30 s).
    pub callback_retry_delays: Vec<Duration>,
    /// How long a subscriber may take to answer (§5.1: 2.5 s).
    pub callback_timeout: Duration,
    /// Per source IP: `ip_limit` requests per `ip_window`, then banned for `ip_ban`
    /// (§7: 10 000 / 20 s, 5 minutes).
    pub ip_limit: u32,
    pub ip_window: Duration,
    pub ip_ban: Duration,
    /// Monthly call quota for the non-exempt APIs (§7: 5 000 for a standard org); `None` =
    /// unlimited (the admin switch still forces 90020).
    pub monthly_quota: Option<u64>,
    /// Stream mode (§5.2): the WebSocket endpoint answered by `connections/open`; `None` =
    /// `ws://<Host header of the open call>/connect`.
    pub stream_endpoint: Option<String>,
    /// Ticket lifetime (§5.2: 90 s, single use).
    pub stream_ticket_ttl: Duration,
    /// How long a pushed event waits for its ACK before it is pushed again (§7: 3 s).
    pub stream_ack_timeout: Duration,
    /// Pushes of one event at most, then it is marked failed (§9.6 unconfirmed; 20 × 3 s
    /// ≈ the NPM SDK's "retries within 60 s").
    pub stream_max_deliveries: u32,
    /// `SYSTEM ping` frames on every connection at this interval; `None` = only on the
    /// admin's request.
    pub stream_ping_interval: Option<Duration>,
    /// After a `SYSTEM disconnect` the socket is closed this much later (§5.2: 10 s).
    pub stream_disconnect_grace: Duration,
    /// Custom group robots (§4.2); default: one signing robot
    /// ([`robot::DEFAULT_ROBOT_TOKEN`], [`robot::DEFAULT_ROBOT_SECRET`]).
    pub robots: Vec<robot::RobotConfig>,
    /// §4.2: 20 messages per minute per robot, then 410100 for 10 minutes.
    pub robot_rate_per_minute: u32,
    pub robot_throttle: Duration,
    /// §4.2: the signing timestamp must be within 1 h of the server's time.
    pub robot_timestamp_skew: Duration,
    /// §6.1: auth codes live 5 minutes (single use).
    pub auth_code_ttl: Duration,
    /// §6.2: user access token `expireIn` 7200 s; refresh token 30 days.
    pub user_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
}

pub const DEFAULT_APP_KEY: &str = "dingsimappkey0000001";
pub const DEFAULT_APP_SECRET: &str =
    "sandboxSecret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL";
pub const DEFAULT_AGENT_ID: u64 = 3_000_000_001;
/// Callback token and EncodingAESKey of the golden vectors (`shared/vectors/dingtalk.json`).
pub const DEFAULT_CALLBACK_TOKEN: &str = "dtsimtoken01";
pub const DEFAULT_CALLBACK_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

impl Default for DingTalkSandboxConfig {
    fn default() -> Self {
        DingTalkSandboxConfig {
            corp_id: String::new(),
            apps: vec![AppConfig {
                app_key: DEFAULT_APP_KEY.into(),
                app_secret: DEFAULT_APP_SECRET.into(),
                agent_id: DEFAULT_AGENT_ID,
                edition: Edition::Standard,
            }],
            token_ttl: Duration::from_secs(7200),
            callback: None,
            callback_retry_delays: vec![Duration::from_secs(10), Duration::from_secs(30)],
            callback_timeout: Duration::from_millis(2500),
            ip_limit: 10_000,
            ip_window: Duration::from_secs(20),
            ip_ban: Duration::from_secs(300),
            monthly_quota: None,
            stream_endpoint: None,
            stream_ticket_ttl: Duration::from_secs(90),
            stream_ack_timeout: stream::DEFAULT_ACK_TIMEOUT,
            stream_max_deliveries: 20,
            stream_ping_interval: None,
            stream_disconnect_grace: Duration::from_secs(10),
            robots: vec![robot::RobotConfig::default_robot()],
            robot_rate_per_minute: 20,
            robot_throttle: Duration::from_secs(600),
            robot_timestamp_skew: Duration::from_secs(3600),
            auth_code_ttl: Duration::from_secs(300),
            user_token_ttl: Duration::from_secs(7200),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Fault injection (admin API `POST /_sandbox/dingtalk/faults`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub latency_ms: u64,
    /// Probability 0..=1 that a call answers a system error (`-1` / HTTP 500 `systemError`).
    pub error_rate: f64,
    /// The next N calls answer a system error.
    pub error_next: u32,
    /// Until then every API call answers HTTP 503.
    #[serde(skip)]
    pub outage_until: Option<Instant>,
    /// Throttling storm: until then a fraction `storm_rate` of calls answer 90018 / 403.
    #[serde(skip)]
    pub storm_until: Option<Instant>,
    pub storm_rate: f64,
    /// Monthly quota switch: non-exempt APIs answer 90020.
    pub quota_exhausted: bool,
    /// Per-app QPS override (all editions), for tests.
    pub qps_override: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Calls per API (the path, e.g. `/topapi/v2/user/list`), including rejected ones.
    pub calls: BTreeMap<String, u64>,
    /// Errors per code (oapi errcode or v1.0 code as text).
    pub errors: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub tokens_renewed: u64,
    pub qps_rejections: u64,
    pub quota_rejections: u64,
    pub ip_bans: u64,
    pub banned_requests: u64,
    pub http_503: u64,
    pub events_emitted: u64,
    pub callback_attempts: u64,
    pub callbacks_delivered: u64,
    pub callbacks_failed: u64,
    pub quota_used: u64,
    /// Stream mode (§5.2).
    pub stream_tickets: u64,
    pub stream_connections: u64,
    pub stream_frames_sent: u64,
    pub stream_events_pushed: u64,
    pub stream_redeliveries: u64,
    pub stream_events_delivered: u64,
    pub stream_deliveries_failed: u64,
    pub stream_acks: u64,
    pub stream_acks_rejected: u64,
    pub stream_pings: u64,
    pub stream_pongs: u64,
    pub stream_disconnects: u64,
    pub stream_callbacks_pushed: u64,
    pub stream_bad_frames: u64,
    /// Group robots (§4.2).
    pub robot_messages: u64,
    pub robot_throttled: u64,
    /// Login (§6).
    pub auth_codes_issued: u64,
    pub user_tokens_issued: u64,
}

#[derive(Debug, Default)]
struct Clock {
    pinned_ms: Option<i64>,
    offset_ms: i64,
}

struct Inner {
    config: DingTalkSandboxConfig,
    corp_id: String,
    seed: Seed,
    org: RwLock<org::Org>,
    approvals: Mutex<approval::Approvals>,
    tokens: Mutex<tokens::Tokens>,
    limits: Mutex<limits::Limits>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
    clock: Mutex<Clock>,
    events: Mutex<events::Events>,
    callback: Mutex<Option<CallbackConfig>>,
    messages: Mutex<messages::Messages>,
    stream: Mutex<stream::Stream>,
    robots: Mutex<robot::Robots>,
    login: Mutex<login::Login>,
    http: reqwest::Client,
}

/// The shared state of one simulated DingTalk organisation. Cheap to clone.
#[derive(Clone)]
pub struct DingTalkSandbox {
    inner: Arc<Inner>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn real_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl DingTalkSandbox {
    pub fn new(config: DingTalkSandboxConfig, seed: &Seed) -> DingTalkSandbox {
        let corp_id = if config.corp_id.is_empty() {
            seed.company.corp_id.clone()
        } else {
            config.corp_id.clone()
        };
        let org = org::Org::from_seed(seed, &seed.company.name, real_now_ms());
        let http = reqwest::Client::builder()
            .timeout(config.callback_timeout)
            .build()
            .unwrap_or_default();
        DingTalkSandbox {
            inner: Arc::new(Inner {
                callback: Mutex::new(config.callback.clone()),
                robots: Mutex::new(robot::Robots::new(config.robots.clone())),
                config,
                corp_id,
                seed: seed.clone(),
                org: RwLock::new(org),
                approvals: Mutex::new(approval::Approvals::default()),
                tokens: Mutex::new(tokens::Tokens::default()),
                limits: Mutex::new(limits::Limits::default()),
                faults: Mutex::new(Faults::default()),
                counters: Mutex::new(Counters::default()),
                clock: Mutex::new(Clock::default()),
                events: Mutex::new(events::Events::default()),
                messages: Mutex::new(messages::Messages::default()),
                stream: Mutex::new(stream::Stream::default()),
                login: Mutex::new(login::Login::default()),
                http,
            }),
        }
    }

    pub fn config(&self) -> &DingTalkSandboxConfig {
        &self.inner.config
    }

    pub fn corp_id(&self) -> &str {
        &self.inner.corp_id
    }

    pub fn app(&self, app_key: &str) -> Option<&AppConfig> {
        self.inner.config.apps.iter().find(|a| a.app_key == app_key)
    }

    /// The sandbox clock (Unix ms): real time, shifted or pinned through the admin API.
    /// Token lifetimes and event / record timestamps follow it; QPS windows and IP bans use
    /// the real monotonic clock.
    pub fn now_ms(&self) -> i64 {
        let c = lock(&self.inner.clock);
        c.pinned_ms.unwrap_or_else(|| real_now_ms() + c.offset_ms)
    }

    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Pins the clock at Unix seconds (`Some`) or lets it run again (`None`).
    pub fn pin_clock(&self, at: Option<i64>) {
        lock(&self.inner.clock).pinned_ms = at.map(|s| s * 1000);
    }

    pub fn advance_clock(&self, secs: i64) {
        let mut c = lock(&self.inner.clock);
        match c.pinned_ms.as_mut() {
            Some(p) => *p += secs * 1000,
            None => c.offset_ms += secs * 1000,
        }
    }

    pub fn reset_clock(&self) {
        *lock(&self.inner.clock) = Clock::default();
    }

    pub fn org(&self) -> RwLockReadGuard<'_, org::Org> {
        self.inner
            .org
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn org_mut(&self) -> RwLockWriteGuard<'_, org::Org> {
        self.inner
            .org
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn approvals(&self) -> MutexGuard<'_, approval::Approvals> {
        lock(&self.inner.approvals)
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, tokens::Tokens> {
        lock(&self.inner.tokens)
    }

    pub(crate) fn limits(&self) -> MutexGuard<'_, limits::Limits> {
        lock(&self.inner.limits)
    }

    pub(crate) fn events(&self) -> MutexGuard<'_, events::Events> {
        lock(&self.inner.events)
    }

    pub(crate) fn messages(&self) -> MutexGuard<'_, messages::Messages> {
        lock(&self.inner.messages)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The current HTTP-callback subscription.
    pub fn callback(&self) -> Option<CallbackConfig> {
        lock(&self.inner.callback).clone()
    }

    pub fn set_callback(&self, cb: Option<CallbackConfig>) {
        *lock(&self.inner.callback) = cb;
    }

    /// Back to the seed: organisation, approvals, tokens, limits, bans, faults, counters,
    /// events, messages, clock, the configured subscription, Stream mode (open sockets are
    /// closed), robots and their messages, login codes and user tokens.
    pub fn reset(&self) {
        self.reset_clock();
        *self.org_mut() = org::Org::from_seed(
            &self.inner.seed,
            &self.inner.seed.company.name,
            self.now_ms(),
        );
        *self.approvals() = approval::Approvals::default();
        *self.tokens() = tokens::Tokens::default();
        *self.limits() = limits::Limits::default();
        *lock(&self.inner.faults) = Faults::default();
        *lock(&self.inner.counters) = Counters::default();
        *self.events() = events::Events::default();
        *self.messages() = messages::Messages::default();
        self.set_callback(self.inner.config.callback.clone());
        self.reset_stream();
        *self.robots() = robot::Robots::new(self.inner.config.robots.clone());
        *self.login() = login::Login::default();
    }

    pub fn counters(&self) -> Counters {
        lock(&self.inner.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.inner.counters) = Counters::default();
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.inner.counters));
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.inner.faults));
    }
}

/// The whole DingTalk sandbox as an axum router: every API path (oapi and v1.0) through one
/// gateway, the Stream WebSocket (`/connect`), the OAuth2 login page (`/oauth2/auth`), and
/// the admin API under `/_sandbox/dingtalk/`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` for per-IP limits (as [`serve`]
/// does); without it every caller counts as one address.
pub fn router(state: DingTalkSandbox) -> Router {
    Router::new()
        .nest("/_sandbox/dingtalk", admin::routes())
        .route("/connect", axum::routing::get(stream::connect))
        .route("/oauth2/auth", axum::routing::get(login::oauth_page))
        .fallback(gateway::dispatch)
        .with_state(state)
}

/// Serves the sandbox on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sandbox: DingTalkSandbox,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(sandbox).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
