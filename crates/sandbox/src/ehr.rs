//! A generic eHR (人事系统) simulator: the kind of REST API the hub's HTTP org-sync target
//! writes to, with the auth and failure modes of real ones. Written from the HTTP conventions
//! only (REST, Standard Webhooks signatures), never from the hub's client.
//!
//! API (JSON, UTF-8), for the collections `employees` and `departments`:
//! - `PUT /api/{collection}/{key}`: create (201) or replace (200) the record; the answer is the
//!   stored record: the body's fields plus `id` (generated, stable), `key` and `active`
//!   (`true` unless the body says otherwise).
//! - `PATCH /api/{collection}/{key}`: merge fields into an existing record (404 when unknown).
//! - `GET /api/{collection}/{key}` (404 when unknown) and `GET /api/{collection}?cursor=&limit=`
//!   → `{"items": [...], "next_cursor": "…" | null}`, ordered by key, `limit` 1..=1000
//!   (default 100).
//! - `DELETE /api/{collection}/{key}`: marks the record `active = false` (200); 404 when unknown.
//! - A record whose `mobile` is present and not 11 digits → 422 `{"error", "field": "mobile"}`.
//! - Auth: a bearer token (`Authorization: Bearer …`) and/or a Standard Webhooks secret
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//!   "{id}.{timestamp}.{body}">`); a request failing either → 401 and nothing stored.
//!
//! Admin API under `/_sandbox/ehr/`: `GET|POST faults` (`outage_seconds`, `error_rate`,
//! `latency_ms`, `throttle_next` + `retry_after_seconds`, `clear`), `GET records/{collection}`,
//! `POST reset`, `GET counters`, `POST counters/reset`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sandbox::ehr::{EhrSandbox, EhrSandboxConfig, serve};
//! let sandbox = EhrSandbox::new(EhrSandboxConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, sandbox).await
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The collections the simulator holds.
pub const COLLECTIONS: [&str; 2] = ["employees", "departments"];
/// Largest request body accepted (a record is small; this only bounds memory).
const MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

/// Auth and signature settings.
#[derive(Debug, Clone)]
pub struct EhrSandboxConfig {
    /// When set, every API request must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// When set, every API request must carry a valid Standard Webhooks signature made with
    /// this secret (`whsec_<base64>`, or plain text used as bytes).
    pub hmac_secret: Option<String>,
    /// Largest accepted difference between `webhook-timestamp` and the sandbox clock.
    pub signature_tolerance: Duration,
}

impl Default for EhrSandboxConfig {
    fn default() -> Self {
        EhrSandboxConfig {
            bearer_token: None,
            hmac_secret: None,
            signature_tolerance: Duration::from_secs(5 * 60),
        }
    }
}

/// Fault injection (admin API).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay before every API answer.
    pub latency_ms: u64,
    /// Probability 0..=1 that an API request answers 500.
    pub error_rate: f64,
    /// Until this instant every API request answers 503.
    pub outage_until: Option<Instant>,
    /// The next N API requests answer 429 with `Retry-After: retry_after_seconds`.
    pub throttle_next: u32,
    pub retry_after_seconds: u64,
}

/// What the simulator has seen (admin API `counters`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    /// API requests (admin calls not included).
    pub requests: u64,
    /// API answers per HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    pub created: u64,
    pub updated: u64,
    pub disabled: u64,
}

#[derive(Debug, Default)]
struct Records {
    /// collection → key → stored record.
    collections: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Last id handed out per collection.
    last_id: BTreeMap<String, u64>,
}

struct Inner {
    config: EhrSandboxConfig,
    /// The decoded HMAC key, when signatures are required.
    hmac_key: Option<Vec<u8>>,
    records: Mutex<Records>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
}

/// The shared state of one simulated eHR. Cheap to clone.
#[derive(Clone)]
pub struct EhrSandbox {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EhrSandbox {
    /// An empty eHR. A `whsec_` secret that is not base64 is used as plain bytes, so a
    /// misconfigured secret fails every request with 401 rather than the constructor.
    pub fn new(config: EhrSandboxConfig) -> EhrSandbox {
        let hmac_key = config.hmac_secret.as_deref().map(|secret| {
            secret
                .strip_prefix("whsec_")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_else(|| secret.as_bytes().to_vec())
        });
        EhrSandbox {
            inner: Arc::new(Inner {
                config,
                hmac_key,
                records: Mutex::new(Records::default()),
                faults: Mutex::new(Faults::default()),
                counters: Mutex::new(Counters::default()),
            }),
        }
    }

    pub fn config(&self) -> &EhrSandboxConfig {
        &self.inner.config
    }

    /// The stored records of a collection, ordered by key.
    pub fn records(&self, collection: &str) -> Vec<Map<String, Value>> {
        lock(&self.inner.records)
            .collections
            .get(collection)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One stored record.
    pub fn record(&self, collection: &str, key: &str) -> Option<Map<String, Value>> {
        lock(&self.inner.records)
            .collections
            .get(collection)
            .and_then(|c| c.get(key).cloned())
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.inner.faults));
    }

    pub fn counters(&self) -> Counters {
        lock(&self.inner.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.inner.counters) = Counters::default();
    }

    /// Empty collections, no faults, zero counters.
    pub fn reset(&self) {
        *lock(&self.inner.records) = Records::default();
        *lock(&self.inner.faults) = Faults::default();
        self.reset_counters();
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.inner.counters));
    }

    /// Creates or replaces a record; `true` when it was created.
    fn put(&self, collection: &str, key: &str, fields: Map<String, Value>) -> (bool, Value) {
        let mut records = lock(&self.inner.records);
        let Records {
            collections,
            last_id,
        } = &mut *records;
        let stored = collections.entry(collection.to_owned()).or_default();
        let (created, id) = match stored.get(key).and_then(|r| r.get("id")).cloned() {
            Some(id) => (false, id),
            None => {
                let n = last_id.entry(collection.to_owned()).or_default();
                *n += 1;
                let prefix = if collection == "departments" {
                    "D"
                } else {
                    "E"
                };
                (true, Value::String(format!("{prefix}{:06}", *n)))
            }
        };
        let active = fields
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut record = fields;
        record.insert("id".into(), id);
        record.insert("key".into(), Value::String(key.to_owned()));
        record.insert("active".into(), Value::Bool(active));
        stored.insert(key.to_owned(), record.clone());
        (created, Value::Object(record))
    }

    /// Merges fields into an existing record.
    fn patch(&self, collection: &str, key: &str, fields: Map<String, Value>) -> Option<Value> {
        let mut records = lock(&self.inner.records);
        let record = records.collections.get_mut(collection)?.get_mut(key)?;
        for (name, value) in fields {
            // The server owns these two.
            if name != "id" && name != "key" {
                record.insert(name, value);
            }
        }
        Some(Value::Object(record.clone()))
    }

    fn deactivate(&self, collection: &str, key: &str) -> Option<Value> {
        let mut records = lock(&self.inner.records);
        let record = records.collections.get_mut(collection)?.get_mut(key)?;
        record.insert("active".into(), Value::Bool(false));
        Some(Value::Object(record.clone()))
    }

    /// Records after `after` (exclusive), at most `limit`, and whether more follow.
    fn page(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Value>, Option<String>) {
        let records = lock(&self.inner.records);
        let Some(stored) = records.collections.get(collection) else {
            return (Vec::new(), None);
        };
        let range = match after {
            Some(a) => {
                stored.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            }
            None => stored.range::<str, _>(..),
        };
        let mut items = Vec::with_capacity(limit);
        let mut last_key = None;
        let mut more = false;
        for (key, record) in range {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(Value::Object(record.clone()));
            last_key = Some(key.clone());
        }
        (
            items,
            if more {
                last_key.map(encode_cursor)
            } else {
                None
            },
        )
    }

    /// Checks the bearer token and the Standard Webhooks signature, as configured.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
        if let Some(token) = &self.inner.config.bearer_token {
            let expected = format!("Bearer {token}");
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                return Err("missing or wrong bearer token");
            }
        }
        if let Some(key) = &self.inner.hmac_key {
            let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let (Some(id), Some(timestamp), Some(signatures)) = (
                text("webhook-id"),
                text("webhook-timestamp"),
                text("webhook-signature"),
            ) else {
                return Err("missing webhook-id, webhook-timestamp or webhook-signature");
            };
            let Ok(sent_at) = timestamp.parse::<i64>() else {
                return Err("webhook-timestamp is not Unix seconds");
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if now.abs_diff(sent_at) > self.inner.config.signature_tolerance.as_secs() {
                return Err("webhook-timestamp is outside the tolerance");
            }
            // Several space-separated signatures may be sent (key rotation); one must match.
            let valid = signatures.split(' ').any(|candidate| {
                let Some(encoded) = candidate.strip_prefix("v1,") else {
                    return false;
                };
                let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(encoded)
                else {
                    return false;
                };
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
                    return false;
                };
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&signature).is_ok()
            });
            if !valid {
                return Err("no valid webhook-signature");
            }
        }
        Ok(())
    }
}

/// Cursors are opaque to clients: the last key of the page, base64url.
fn encode_cursor(key: String) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Faults, auth and counting around every API request, before any handler sees it.
async fn gate(State(sb): State<EhrSandbox>, request: Request, next: Next) -> Response {
    let response = gate_inner(&sb, request, next).await;
    let status = response.status().as_u16();
    sb.count(|c| {
        c.requests += 1;
        *c.by_status.entry(status).or_default() += 1;
    });
    response
}

async fn gate_inner(sb: &EhrSandbox, request: Request, next: Next) -> Response {
    let faults = sb.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.outage_until.is_some_and(|u| u > Instant::now()) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "服务暂不可用 (sandbox outage)",
        );
    }
    if faults.throttle_next > 0 {
        sb.set_faults(|f| f.throttle_next = f.throttle_next.saturating_sub(1));
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "请求过于频繁 (throttled)");
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(faults.retry_after_seconds),
        );
        return response;
    }
    if faults.error_rate > 0.0 && rand::rng().random_bool(faults.error_rate.clamp(0.0, 1.0)) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "内部错误 (sandbox error_rate)",
        );
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    if let Err(why) = sb.authenticate(&parts.headers, &bytes) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A refused request: its status and JSON body (kept small; turned into a response last).
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            body: json!({"error": message.into()}),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

fn known_collection(collection: &str) -> Result<(), Refusal> {
    if COLLECTIONS.contains(&collection) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("unknown collection {collection}"),
        ))
    }
}

/// The body as a JSON object, validated.
fn record_body(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let fields: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("body is not a JSON object: {e}"),
        )
    })?;
    if let Some(mobile) = fields.get("mobile").filter(|m| !m.is_null()) {
        let valid = mobile
            .as_str()
            .is_some_and(|m| m.len() == 11 && m.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({
                    "error": "手机号必须是 11 位数字 (mobile must be 11 digits)",
                    "field": "mobile",
                }),
            });
        }
    }
    Ok(fields)
}

async fn put_record(
    State(sb): State<EhrSandbox>,
    Path((collection, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    let fields = match record_body(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let (created, record) = sb.put(&collection, &key, fields);
    sb.count(|c| {
        if created {
            c.created += 1;
        } else {
            c.updated += 1;
        }
    });
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(record)).into_response()
}

async fn patch_record(
    State(sb): State<EhrSandbox>,
    Path((collection, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    let fields = match record_body(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let deactivates = fields.get("active") == Some(&Value::Bool(false));
    match sb.patch(&collection, &key, fields) {
        Some(record) => {
            if deactivates {
                sb.count(|c| c.disabled += 1);
            } else {
                sb.count(|c| c.updated += 1);
            }
            Json(record).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("{collection}/{key} not found"),
        ),
    }
}

async fn get_record(
    State(sb): State<EhrSandbox>,
    Path((collection, key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    match sb.record(&collection, &key) {
        Some(record) => Json(record).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("{collection}/{key} not found"),
        ),
    }
}

async fn delete_record(
    State(sb): State<EhrSandbox>,
    Path((collection, key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    match sb.deactivate(&collection, &key) {
        Some(record) => {
            sb.count(|c| c.disabled += 1);
            Json(record).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("{collection}/{key} not found"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

async fn list_records(
    State(sb): State<EhrSandbox>,
    Path(collection): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "query parameters are cursor and limit",
        );
    };
    let limit = match query.limit.as_deref().filter(|l| !l.is_empty()) {
        None => DEFAULT_PAGE_SIZE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("limit must be 1..={MAX_PAGE_SIZE}"),
                );
            }
        },
    };
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(key) => Some(key),
            None => return error(StatusCode::BAD_REQUEST, "cursor is not valid"),
        },
    };
    let (items, next_cursor) = sb.page(&collection, after.as_deref(), limit);
    Json(json!({"items": items, "next_cursor": next_cursor})).into_response()
}

// ---- admin API ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FaultsRequest {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    outage_seconds: Option<f64>,
    throttle_next: Option<u32>,
    retry_after_seconds: Option<u64>,
    clear: Option<bool>,
}

fn faults_json(sb: &EhrSandbox) -> Value {
    let f = sb.faults();
    let outage_left = f
        .outage_until
        .map(|u| u.saturating_duration_since(Instant::now()).as_secs_f64())
        .filter(|s| *s > 0.0);
    json!({
        "latency_ms": f.latency_ms,
        "error_rate": f.error_rate,
        "outage_seconds_left": outage_left,
        "throttle_next": f.throttle_next,
        "retry_after_seconds": f.retry_after_seconds,
    })
}

async fn get_faults(State(sb): State<EhrSandbox>) -> Json<Value> {
    Json(faults_json(&sb))
}

async fn set_faults(
    State(sb): State<EhrSandbox>,
    body: Result<Json<FaultsRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "faults: latency_ms, error_rate (0..=1), outage_seconds, throttle_next, \
             retry_after_seconds, clear",
        );
    };
    if req.error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        return error(StatusCode::BAD_REQUEST, "error_rate must be within 0..=1");
    }
    if req
        .outage_seconds
        .is_some_and(|s| !s.is_finite() || s < 0.0)
    {
        return error(StatusCode::BAD_REQUEST, "outage_seconds must be ≥ 0");
    }
    sb.set_faults(|f| {
        if req.clear == Some(true) {
            *f = Faults::default();
        }
        if let Some(v) = req.latency_ms {
            f.latency_ms = v;
        }
        if let Some(v) = req.error_rate {
            f.error_rate = v;
        }
        if let Some(s) = req.outage_seconds {
            f.outage_until =
                (s > 0.0).then(|| Instant::now() + Duration::from_secs_f64(s.min(86_400.0)));
        }
        if let Some(v) = req.throttle_next {
            f.throttle_next = v;
        }
        if let Some(v) = req.retry_after_seconds {
            f.retry_after_seconds = v;
        }
    });
    Json(faults_json(&sb)).into_response()
}

async fn admin_records(State(sb): State<EhrSandbox>, Path(collection): Path<String>) -> Response {
    if let Err(r) = known_collection(&collection) {
        return r.into_response();
    }
    let records = sb.records(&collection);
    Json(json!({"collection": collection, "count": records.len(), "records": records}))
        .into_response()
}

async fn admin_reset(State(sb): State<EhrSandbox>) -> Json<Value> {
    sb.reset();
    Json(json!({"ok": true}))
}

async fn admin_counters(State(sb): State<EhrSandbox>) -> Json<Value> {
    Json(json!(sb.counters()))
}

async fn admin_reset_counters(State(sb): State<EhrSandbox>) -> Json<Value> {
    sb.reset_counters();
    Json(json!({"ok": true}))
}

/// The whole eHR sandbox as an axum router: the API under `/api/` and the admin API under
/// `/_sandbox/ehr/`.
pub fn router(state: EhrSandbox) -> Router {
    let api = Router::new()
        .route("/api/{collection}", get(list_records))
        .route(
            "/api/{collection}/{key}",
            get(get_record)
                .put(put_record)
                .patch(patch_record)
                .delete(delete_record),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), gate));
    let admin = Router::new()
        .route("/faults", get(get_faults).post(set_faults))
        .route("/records/{collection}", get(admin_records))
        .route("/reset", post(admin_reset))
        .route("/counters", get(admin_counters))
        .route("/counters/reset", post(admin_reset_counters));
    api.nest("/_sandbox/ehr", admin).with_state(state)
}

/// Serves the sandbox on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, sandbox: EhrSandbox) -> std::io::Result<()> {
    axum::serve(listener, router(sandbox)).await
}
