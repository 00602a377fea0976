//! The admin API under `/_sandbox/dingtalk/` (JSON). Documented in `docs/sandbox.md`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::approval::AdminRefusal;
use super::login::CodeKind;
use super::robot::RobotConfig;
use super::{CallbackConfig, DingTalkSandbox};

pub fn routes() -> Router<DingTalkSandbox> {
    Router::new()
        .route("/reset", post(reset))
        .route("/state", get(state))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/tokens/expire", post(expire_tokens))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/config", get(config))
        .route("/callback", get(get_callback).post(set_callback))
        .route("/events", get(events))
        .route("/messages", get(messages))
        .route("/instances", get(instances))
        .route("/approvals/{id}/approve", post(approve_instance))
        .route("/approvals/{id}/refuse", post(refuse_instance))
        .route("/approvals/{id}/revoke", post(revoke_instance))
        .route("/bans", get(bans))
        .route("/bans/clear", post(clear_bans))
        .route("/stream/connections", get(stream_connections))
        .route("/stream/acks", get(stream_acks))
        .route("/stream/deliveries", get(stream_deliveries))
        .route("/stream/ping", post(stream_ping))
        .route("/stream/disconnect", post(stream_disconnect))
        .route("/stream/callback", post(stream_callback))
        .route("/robots", get(robots).post(upsert_robot))
        .route("/robot/messages", get(robot_messages))
        .route("/login", get(login_state))
        .route("/login/code", post(login_code))
        .route("/login/as", post(login_as))
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"ok": false, "error": message.into()})),
    )
        .into_response()
}

async fn reset(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    sb.reset();
    Json(json!({"ok": true}))
}

async fn state(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let (depts, users) = {
        let org = sb.org();
        (org.depts.len(), org.users.len())
    };
    let (events, failed) = {
        let e = sb.events();
        (e.log.len(), e.failed.len())
    };
    Json(json!({
        "corp_id": sb.corp_id(),
        "departments": depts,
        "users": users,
        "instances": sb.approvals().instances.len(),
        "tokens": sb.tokens().by_token.len(),
        "events": events,
        "failed_events": failed,
        "messages": sb.messages().list.len(),
        "bans": sb.limits().active_bans().len(),
        "quota_used": sb.limits().quota_used,
        "callback": sb.callback().map(|c| c.url),
        "stream_connections": sb.stream_connections().iter().filter(|c| c.state != "closed").count(),
        "stream_acks": sb.stream().acks.len(),
        "robot_messages": sb.robots().messages.len(),
        "now_ms": sb.now_ms(),
    }))
}

fn faults_json(sb: &DingTalkSandbox) -> Value {
    let f = sb.faults();
    let left = |u: Option<Instant>| {
        u.map(|u| u.saturating_duration_since(Instant::now()).as_secs_f64())
            .filter(|s| *s > 0.0)
    };
    json!({
        "latency_ms": f.latency_ms,
        "error_rate": f.error_rate,
        "error_next": f.error_next,
        "outage_seconds_left": left(f.outage_until),
        "storm_seconds_left": left(f.storm_until),
        "storm_rate": f.storm_rate,
        "quota_exhausted": f.quota_exhausted,
        "qps_override": f.qps_override,
    })
}

async fn get_faults(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(faults_json(&sb))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FaultsReq {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    error_next: Option<u32>,
    outage_seconds: Option<f64>,
    storm_seconds: Option<f64>,
    storm_rate: Option<f64>,
    quota_exhausted: Option<bool>,
    /// `0` removes the override.
    qps_override: Option<u32>,
    expire_tokens: Option<bool>,
    ban_ip: Option<String>,
    clear: Option<bool>,
}

fn until(secs: f64) -> Option<Instant> {
    (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs.min(86_400.0)))
}

async fn set_faults(State(sb): State<DingTalkSandbox>, Json(req): Json<FaultsReq>) -> Response {
    for (name, rate) in [
        ("error_rate", req.error_rate),
        ("storm_rate", req.storm_rate),
    ] {
        if rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return bad(format!("{name} must be within 0..=1"));
        }
    }
    let ban_ip = match req.ban_ip.as_deref().map(str::parse::<IpAddr>) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => return bad("ban_ip is not an IP address"),
    };
    sb.set_faults(|f| {
        if req.clear == Some(true) {
            *f = super::Faults::default();
        }
        if let Some(v) = req.latency_ms {
            f.latency_ms = v;
        }
        if let Some(v) = req.error_rate {
            f.error_rate = v;
        }
        if let Some(v) = req.error_next {
            f.error_next = v;
        }
        if let Some(s) = req.outage_seconds {
            f.outage_until = until(s);
        }
        if let Some(s) = req.storm_seconds {
            f.storm_until = until(s);
            if req.storm_rate.is_none() && f.storm_rate == 0.0 {
                f.storm_rate = 1.0;
            }
        }
        if let Some(v) = req.storm_rate {
            f.storm_rate = v;
        }
        if let Some(v) = req.quota_exhausted {
            f.quota_exhausted = v;
        }
        if let Some(v) = req.qps_override {
            f.qps_override = (v > 0).then_some(v);
        }
    });
    let mut expired = 0;
    if req.expire_tokens == Some(true) {
        expired = sb.expire_tokens(None);
    }
    if let Some(ip) = ban_ip {
        let ban = sb.config().ip_ban;
        sb.limits().ban(ip, ban);
    }
    Json(json!({"ok": true, "tokens_expired": expired, "faults": faults_json(&sb)})).into_response()
}

#[derive(Deserialize, Default)]
struct ExpireReq {
    app_key: Option<String>,
}

async fn expire_tokens(
    State(sb): State<DingTalkSandbox>,
    body: Option<Json<ExpireReq>>,
) -> Json<Value> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let n = sb.expire_tokens(req.app_key.as_deref());
    Json(json!({"ok": true, "expired": n}))
}

async fn counters(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(serde_json::to_value(sb.counters()).unwrap_or(Value::Null))
}

async fn reset_counters(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    sb.reset_counters();
    Json(json!({"ok": true}))
}

async fn get_clock(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"now": sb.now(), "now_ms": sb.now_ms()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockReq {
    pin: Option<i64>,
    advance_secs: Option<i64>,
    reset: Option<bool>,
}

async fn set_clock(State(sb): State<DingTalkSandbox>, Json(req): Json<ClockReq>) -> Json<Value> {
    if req.reset == Some(true) {
        sb.reset_clock();
    }
    if let Some(p) = req.pin {
        sb.pin_clock(Some(p));
    }
    if let Some(a) = req.advance_secs {
        sb.advance_clock(a);
    }
    Json(json!({"now": sb.now(), "now_ms": sb.now_ms()}))
}

async fn config(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let c = sb.config();
    Json(json!({
        "corp_id": sb.corp_id(),
        "apps": c.apps,
        "token_ttl_secs": c.token_ttl.as_secs(),
        "callback": sb.callback(),
        "callback_retry_delays_secs": c.callback_retry_delays.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "ip_limit": c.ip_limit,
        "ip_window_secs": c.ip_window.as_secs(),
        "ip_ban_secs": c.ip_ban.as_secs(),
        "monthly_quota": c.monthly_quota,
        "stream_endpoint": c.stream_endpoint,
        "stream_ticket_ttl_secs": c.stream_ticket_ttl.as_secs_f64(),
        "stream_ack_timeout_secs": c.stream_ack_timeout.as_secs_f64(),
        "stream_max_deliveries": c.stream_max_deliveries,
        "stream_ping_interval_secs": c.stream_ping_interval.map(|d| d.as_secs_f64()),
        "stream_disconnect_grace_secs": c.stream_disconnect_grace.as_secs_f64(),
        "robots": sb.robots().robots.clone(),
        "robot_rate_per_minute": c.robot_rate_per_minute,
        "robot_throttle_secs": c.robot_throttle.as_secs(),
        "robot_timestamp_skew_secs": c.robot_timestamp_skew.as_secs(),
        "auth_code_ttl_secs": c.auth_code_ttl.as_secs(),
        "user_token_ttl_secs": c.user_token_ttl.as_secs(),
        "refresh_token_ttl_secs": c.refresh_token_ttl.as_secs(),
        "templates": super::approval::TEMPLATES.iter().map(|t| json!({"process_code": t.process_code, "name": t.name})).collect::<Vec<_>>(),
    }))
}

async fn get_callback(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"callback": sb.callback()}))
}

/// `{"url":…,"token":…,"aes_key":…,"owner_key":…}` subscribes; `{}` or `{"url":null}`
/// unsubscribes.
async fn set_callback(State(sb): State<DingTalkSandbox>, Json(req): Json<Value>) -> Response {
    if req.get("url").is_none_or(Value::is_null) {
        sb.set_callback(None);
        return Json(json!({"ok": true, "callback": null})).into_response();
    }
    let cb: CallbackConfig = match serde_json::from_value(req) {
        Ok(c) => c,
        Err(e) => return bad(format!("bad callback: {e}")),
    };
    if let Err(e) = super::crypto::aes_key(&cb.aes_key) {
        return bad(e.to_string());
    }
    sb.set_callback(Some(cb.clone()));
    Json(json!({"ok": true, "callback": cb})).into_response()
}

async fn events(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let e = sb.events();
    Json(json!({"events": e.log, "failed": e.failed}))
}

async fn messages(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"messages": sb.messages().list}))
}

async fn instances(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"instances": sb.instances()}))
}

fn refused(r: AdminRefusal) -> Response {
    let (status, message) = match r {
        AdminRefusal::NotFound(m) => (StatusCode::NOT_FOUND, m),
        AdminRefusal::Conflict(m) => (StatusCode::CONFLICT, m),
        AdminRefusal::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
    };
    (status, Json(json!({"ok": false, "error": message}))).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecideReq {
    remark: Option<String>,
}

/// Agrees every remaining task, as its approver, through the v1.0 execute path.
async fn approve_instance(
    State(sb): State<DingTalkSandbox>,
    Path(id): Path<String>,
    body: Option<Json<DecideReq>>,
) -> Response {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    match sb.admin_decide(&id, true, req.remark.as_deref().unwrap_or("")) {
        Ok(v) => Json(v).into_response(),
        Err(r) => refused(r),
    }
}

/// Refuses the first remaining task (which ends the instance COMPLETED + refuse).
async fn refuse_instance(
    State(sb): State<DingTalkSandbox>,
    Path(id): Path<String>,
    body: Option<Json<DecideReq>>,
) -> Response {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    match sb.admin_decide(&id, false, req.remark.as_deref().unwrap_or("")) {
        Ok(v) => Json(v).into_response(),
        Err(r) => refused(r),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeReq {
    operator: Option<String>,
    remark: Option<String>,
}

/// Revokes (撤销) an approved instance: COMPLETED + agree → TERMINATED.
async fn revoke_instance(
    State(sb): State<DingTalkSandbox>,
    Path(id): Path<String>,
    body: Option<Json<RevokeReq>>,
) -> Response {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    match sb.admin_revoke(
        &id,
        req.operator.as_deref(),
        req.remark.as_deref().unwrap_or(""),
    ) {
        Ok(v) => Json(v).into_response(),
        Err(r) => refused(r),
    }
}

async fn bans(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let list: Vec<Value> = sb
        .limits()
        .active_bans()
        .into_iter()
        .map(|(ip, left)| json!({"ip": ip.to_string(), "seconds_left": left}))
        .collect();
    Json(json!({"bans": list}))
}

async fn clear_bans(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let n = sb.limits().unban_all();
    Json(json!({"ok": true, "cleared": n}))
}

async fn stream_connections(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"connections": sb.stream_connections()}))
}

async fn stream_acks(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"acks": sb.stream_acks()}))
}

async fn stream_deliveries(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"deliveries": sb.stream_deliveries()}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StreamTarget {
    connection_id: Option<String>,
    reason: Option<String>,
}

async fn stream_ping(
    State(sb): State<DingTalkSandbox>,
    body: Option<Json<StreamTarget>>,
) -> Json<Value> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let ids = sb.stream_ping(req.connection_id.as_deref());
    Json(json!({"ok": true, "message_ids": ids}))
}

async fn stream_disconnect(
    State(sb): State<DingTalkSandbox>,
    body: Option<Json<StreamTarget>>,
) -> Json<Value> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let reason = req.reason.as_deref().unwrap_or("connection is expired");
    let ids = sb.stream_disconnect(req.connection_id.as_deref(), reason);
    Json(json!({"ok": true, "connections": ids}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackPush {
    topic: String,
    data: Value,
    app_key: Option<String>,
}

async fn stream_callback(
    State(sb): State<DingTalkSandbox>,
    Json(req): Json<CallbackPush>,
) -> Response {
    match sb.stream_callback(&req.topic, &req.data, req.app_key.as_deref()) {
        Some(id) => Json(json!({"ok": true, "message_id": id})).into_response(),
        None => (
            StatusCode::CONFLICT,
            Json(json!({"ok": false, "error": format!("no open connection subscribed to CALLBACK {}", req.topic)})),
        )
            .into_response(),
    }
}

async fn robots(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    Json(json!({"robots": sb.robots().robots.clone()}))
}

async fn upsert_robot(State(sb): State<DingTalkSandbox>, Json(req): Json<Value>) -> Response {
    let r: RobotConfig = match serde_json::from_value(req) {
        Ok(r) => r,
        Err(e) => return bad(format!("bad robot: {e}")),
    };
    if r.access_token.is_empty() {
        return bad("access_token must not be empty");
    }
    if r.keywords.len() > 10 {
        return bad("at most 10 keywords (protocol §4.2)");
    }
    sb.upsert_robot(r.clone());
    Json(json!({"ok": true, "robot": r})).into_response()
}

#[derive(Deserialize)]
struct RobotFilter {
    access_token: Option<String>,
}

async fn robot_messages(
    State(sb): State<DingTalkSandbox>,
    axum::extract::Query(f): axum::extract::Query<RobotFilter>,
) -> Json<Value> {
    let list: Vec<_> = sb
        .robot_messages()
        .into_iter()
        .filter(|m| {
            f.access_token
                .as_deref()
                .is_none_or(|t| t == m.access_token)
        })
        .collect();
    Json(json!({"messages": list}))
}

async fn login_state(State(sb): State<DingTalkSandbox>) -> Json<Value> {
    let login_as = sb.login_as();
    let l = sb.login();
    Json(json!({
        "login_as": login_as,
        "codes": l.codes.len(),
        "user_tokens": l.user_tokens.len(),
        "refresh_tokens": l.refresh_tokens.len(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeReq {
    userid: String,
    /// `inapp` (default) or `oauth`.
    kind: Option<String>,
    app_key: Option<String>,
}

async fn login_code(State(sb): State<DingTalkSandbox>, Json(req): Json<CodeReq>) -> Response {
    let kind = match req.kind.as_deref() {
        None | Some("inapp") => CodeKind::Inapp,
        Some("oauth") => CodeKind::Oauth,
        Some(other) => return bad(format!("kind {other:?}: use inapp or oauth")),
    };
    match sb.mint_auth_code(&req.userid, kind, req.app_key.as_deref()) {
        Ok(code) => Json(json!({
            "ok": true,
            "code": code,
            "kind": kind,
            "expires_in": sb.config().auth_code_ttl.as_secs(),
        }))
        .into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginAsReq {
    userid: Option<String>,
}

async fn login_as(State(sb): State<DingTalkSandbox>, Json(req): Json<LoginAsReq>) -> Response {
    match sb.set_login_as(req.userid) {
        Ok(()) => Json(json!({"ok": true, "login_as": sb.login_as()})).into_response(),
        Err(e) => bad(e),
    }
}
