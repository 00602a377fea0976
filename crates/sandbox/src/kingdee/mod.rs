//! The Kingdee Cloud Galaxy (金蝶云星空 / K3Cloud) sandbox: the WebAPI
//! (`POST {base}/Kingdee.BOS.WebApi.ServicesStub.<Service>.<Method>.common.kdsvc`), the SSO
//! entry (`GET {base}/html5/index.aspx?ud=…`) and an admin API under `/_sandbox/kingdee/`.
//!
//! Written from `shared/protocols/kingdee.md` only (section numbers in the comments), never
//! from the `kingdee` client crate, so a client bug cannot hide behind the same simulator bug.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig, serve};
//! let sandbox = KingdeeSandbox::new(KingdeeSandboxConfig::default(), &sandbox::seed::Seed::builtin());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, sandbox).await
//! # }
//! ```

pub mod admin;
pub mod auth;
pub mod envelope;
pub mod forms;
pub mod query;
pub mod service;
pub mod sso;
pub mod store;
pub mod verify;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;

use crate::seed::Seed;
use store::Db;

/// Everything configurable about the simulated data centre. `Default` gives the documented
/// sandbox credentials (see `docs/sandbox.md`), which are also the inputs of the golden
/// vectors in `shared/vectors/kingdee.json`.
#[derive(Debug, Clone)]
pub struct KingdeeSandboxConfig {
    /// 数据中心 id (`acctID`, `dbid`).
    pub acct_id: String,
    pub acct_name: String,
    /// 第三方系统登录授权: `ClientID_Suffix` (suffix 32 characters of base64).
    pub app_id: String,
    /// 32 hex characters.
    pub app_secret: String,
    /// The integration user (集成用户), also the ValidateUser account.
    pub user_name: String,
    /// The ValidateUser password, for every SEC_User account.
    pub password: String,
    /// Sliding session lifetime (protocol §1.8: 20 minutes).
    pub session_idle: Duration,
    /// Allowed difference between a signed timestamp (`x-api-timestamp`, LoginBySign) and
    /// the sandbox clock. Not documented by Kingdee (§1.7 ❌); 5 minutes by default.
    pub clock_skew: Duration,
    /// LoginBySign with SHA-1 (servers before 8.0.0.202205) accepted.
    pub login_sign_allow_sha1: bool,
    /// SSO app (第三方系统登录授权 used for `ud=` links).
    pub sso_app_id: String,
    pub sso_app_secret: String,
    /// SSO `timestamp` window (§4.6 ❌ undocumented).
    pub sso_link_validity: Duration,
    /// 链接仅供使用一次 (true) or 支持链接重复使用 (false).
    pub sso_one_time: bool,
    /// 指定用户登录: `Some(list)`; 允许全部用户登录: `None`.
    pub sso_allowed_users: Option<Vec<String>>,
    /// SSO V2/V3 (SHA-1) links accepted besides V4 (SHA-256).
    pub sso_allow_sha1: bool,
    /// ExecuteBillQuery `Limit` cap (protocol §5: 2000 by default, up to 10000).
    pub query_limit_cap: usize,
    /// Reject unknown field keys on Save (real servers ignore them, §2.2).
    pub strict_fields: bool,
    /// Load the seed's departments and employees into BD_Department / BD_Empinfo /
    /// SEC_User. `false` starts with an empty organisation (for sync demos and benchmarks).
    pub seed_org: bool,
}

impl Default for KingdeeSandboxConfig {
    fn default() -> Self {
        KingdeeSandboxConfig {
            acct_id: "65f0a1b2c3d4e5".into(),
            acct_name: "杭州示例科技-演示账套".into(),
            app_id: "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs".into(),
            app_secret: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
            user_name: "webapi".into(),
            password: "888888".into(),
            session_idle: Duration::from_secs(20 * 60),
            clock_skew: Duration::from_secs(5 * 60),
            login_sign_allow_sha1: true,
            sso_app_id: "HRApprovalApp".into(),
            sso_app_secret: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
            sso_link_validity: Duration::from_secs(5 * 60),
            sso_one_time: false,
            sso_allowed_users: None,
            sso_allow_sha1: true,
            query_limit_cap: 2000,
            strict_fields: false,
            seed_org: true,
        }
    }
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum LoginMode {
    ValidateUser,
    LoginByAppSecret,
    LoginBySign,
    SignatureHeaders,
    Sso,
}

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: String,
    pub asp_net_id: String,
    pub user: String,
    pub mode: LoginMode,
    pub lcid: String,
    /// Sandbox clock, Unix seconds.
    pub last_seen: i64,
    pub created: i64,
}

/// Fault injection (admin API).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub latency_ms: u64,
    /// Probability 0..=1 that a business call answers MsgCode 14 (调用限制).
    pub msgcode14_rate: f64,
    /// The next N business calls answer MsgCode 14.
    pub msgcode14_next: u32,
    /// Until this instant every WebAPI / SSO request answers HTTP 503.
    #[serde(skip)]
    pub outage_until: Option<Instant>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Sessions opened, all modes.
    pub logins: u64,
    pub logins_by_mode: BTreeMap<String, u64>,
    pub failed_logins: u64,
    /// WebAPI calls per method (canonical name: `Save`, `ExecuteBillQuery`, …).
    pub calls: BTreeMap<String, u64>,
    /// Error answers per MsgCode.
    pub errors_by_msgcode: BTreeMap<u8, u64>,
    pub sessions_expired: u64,
    pub http_503: u64,
    pub sso_logins: u64,
    pub sso_refused: u64,
}

#[derive(Debug, Default)]
struct Clock {
    pinned: Option<i64>,
    offset: i64,
}

struct Inner {
    config: KingdeeSandboxConfig,
    seed: Seed,
    db: RwLock<Db>,
    sessions: Mutex<HashMap<String, Session>>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
    clock: Mutex<Clock>,
    used_sso: Mutex<HashSet<String>>,
}

/// The shared state of one simulated data centre. Cheap to clone.
#[derive(Clone)]
pub struct KingdeeSandbox {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KingdeeSandbox {
    pub fn new(config: KingdeeSandboxConfig, seed: &Seed) -> KingdeeSandbox {
        let clock = Clock::default();
        let now = real_now();
        let db = Self::fresh_db(&config, seed, now);
        KingdeeSandbox {
            inner: Arc::new(Inner {
                config,
                seed: seed.clone(),
                db: RwLock::new(db),
                sessions: Mutex::new(HashMap::new()),
                faults: Mutex::new(Faults::default()),
                counters: Mutex::new(Counters::default()),
                clock: Mutex::new(clock),
                used_sso: Mutex::new(HashSet::new()),
            }),
        }
    }

    fn fresh_db(config: &KingdeeSandboxConfig, seed: &Seed, now: i64) -> Db {
        let mut db = Db::new(seed, config.seed_org, &format_time(now));
        db.strict_fields = config.strict_fields;
        // The integration user must exist to log in.
        if db.id_by_number("SEC_User", &config.user_name).is_none() {
            let model =
                serde_json::json!({"FUserAccount": config.user_name, "FName": "WebAPI集成用户"});
            if let (Some(form), serde_json::Value::Object(m)) = (forms::form("SEC_User"), model) {
                let now_s = format_time(now);
                if let Ok((id, _)) =
                    db.save_one(form, &m, &store::SaveOpts::default(), false, &now_s)
                    && let Some(r) = db.record_mut("SEC_User", id)
                {
                    r.status = 'C';
                }
            }
        }
        db
    }

    pub fn config(&self) -> &KingdeeSandboxConfig {
        &self.inner.config
    }

    /// The sandbox clock (Unix seconds): real time, shifted or pinned through the admin API.
    pub fn now(&self) -> i64 {
        let c = lock(&self.inner.clock);
        c.pinned.unwrap_or_else(|| real_now() + c.offset)
    }

    pub fn now_text(&self) -> String {
        format_time(self.now())
    }

    /// Pins the clock (`Some`) or lets it run again (`None`).
    pub fn pin_clock(&self, at: Option<i64>) {
        lock(&self.inner.clock).pinned = at;
    }

    /// Moves the clock forward (or back) by `secs`.
    pub fn advance_clock(&self, secs: i64) {
        let mut c = lock(&self.inner.clock);
        match c.pinned.as_mut() {
            Some(p) => *p += secs,
            None => c.offset += secs,
        }
    }

    pub fn reset_clock(&self) {
        *lock(&self.inner.clock) = Clock::default();
    }

    pub fn db(&self) -> RwLockReadGuard<'_, Db> {
        self.inner
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn db_mut(&self) -> RwLockWriteGuard<'_, Db> {
        self.inner
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Back to the seed: data, sessions, used SSO links, faults, counters and clock.
    pub fn reset(&self) {
        self.reset_clock();
        let fresh = Self::fresh_db(&self.inner.config, &self.inner.seed, self.now());
        *self.db_mut() = fresh;
        lock(&self.inner.sessions).clear();
        lock(&self.inner.used_sso).clear();
        *lock(&self.inner.faults) = Faults::default();
        *lock(&self.inner.counters) = Counters::default();
    }

    pub fn counters(&self) -> Counters {
        lock(&self.inner.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.inner.counters) = Counters::default();
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.inner.counters));
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.inner.faults));
    }

    /// Drops every session: the next call without signature headers gets MsgCode 1.
    pub fn drop_sessions(&self) -> usize {
        let mut s = lock(&self.inner.sessions);
        let n = s.len();
        s.clear();
        n
    }

    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.inner.sessions).values().cloned().collect()
    }

    /// Opens a session and counts the login.
    pub fn open_session(&self, user: &str, mode: LoginMode, lcid: &str) -> Session {
        let now = self.now();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            asp_net_id: uuid::Uuid::new_v4().simple().to_string()[..24].to_owned(),
            user: user.to_owned(),
            mode,
            lcid: lcid.to_owned(),
            last_seen: now,
            created: now,
        };
        lock(&self.inner.sessions).insert(session.id.clone(), session.clone());
        self.count(|c| {
            c.logins += 1;
            *c.logins_by_mode.entry(format!("{mode:?}")).or_default() += 1;
        });
        session
    }

    /// Looks a session up and slides its expiry; `None` when unknown or idle too long.
    pub fn touch_session(&self, id: &str) -> Option<Session> {
        let now = self.now();
        let idle = self.inner.config.session_idle.as_secs() as i64;
        let mut sessions = lock(&self.inner.sessions);
        let expired = match sessions.get_mut(id) {
            None => return None,
            Some(s) if now - s.last_seen > idle => true,
            Some(s) => {
                s.last_seen = now;
                return Some(s.clone());
            }
        };
        if expired {
            sessions.remove(id);
            drop(sessions);
            self.count(|c| c.sessions_expired += 1);
        }
        None
    }

    pub fn end_session(&self, id: &str) -> bool {
        lock(&self.inner.sessions).remove(id).is_some()
    }

    /// Remembers a one-time SSO link; `false` if it was used before.
    pub fn use_sso_link(&self, key: String) -> bool {
        lock(&self.inner.used_sso).insert(key)
    }
}

fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Server-local time as Kingdee prints it (`2024-05-01T09:30:00`, China Standard Time).
pub fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix + 8 * 3600, 0)
        .map(|d| d.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The whole Kingdee sandbox as an axum router: WebAPI under `/k3cloud/` (and `/K3Cloud/`),
/// the SSO entry, and the admin API under `/_sandbox/kingdee/`.
pub fn router(state: KingdeeSandbox) -> Router {
    Router::new()
        .route("/k3cloud/{service}", post(service::handle))
        .route("/K3Cloud/{service}", post(service::handle))
        .route("/k3cloud/html5/index.aspx", get(sso::handle))
        .route("/K3Cloud/html5/index.aspx", get(sso::handle))
        .route("/k3cloud/html5/lightstartapp.aspx", get(sso::handle))
        .route("/K3Cloud/html5/lightstartapp.aspx", get(sso::handle))
        .nest("/_sandbox/kingdee", admin::routes())
        .with_state(state)
}

/// Serves the sandbox on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sandbox: KingdeeSandbox,
) -> std::io::Result<()> {
    axum::serve(listener, router(sandbox)).await
}
