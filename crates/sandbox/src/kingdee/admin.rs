//! The admin API under `/_sandbox/kingdee/` (JSON). Documented in `docs/sandbox.md`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::{self, SignAlgorithm};
use super::store::{SaveOpts, ref_number};
use super::{KingdeeSandbox, forms};

pub fn routes() -> Router<KingdeeSandbox> {
    Router::new()
        .route("/reset", post(reset))
        .route("/state", get(state))
        .route("/state/{form}", get(form_state))
        .route("/inventory", post(set_inventory))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/sessions", get(sessions))
        .route("/sessions/drop", post(drop_sessions))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/config", get(config))
        .route("/sso-link", get(sso_link))
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"ok": false, "error": message.into()})),
    )
        .into_response()
}

async fn reset(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    sb.reset();
    Json(json!({"ok": true}))
}

async fn state(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    let db = sb.db();
    let forms: Map<String, Value> = forms::FORMS
        .iter()
        .map(|f| {
            let n = db.data(f.id).map_or(0, |d| d.records.len());
            (f.id.to_owned(), Value::from(n))
        })
        .collect();
    Json(json!({
        "forms": forms,
        "sessions": sb.sessions().len(),
        "now": sb.now(),
    }))
}

async fn form_state(State(sb): State<KingdeeSandbox>, Path(form): Path<String>) -> Response {
    let Some(def) = forms::form(&form) else {
        return bad(format!("unknown form {form}"));
    };
    let db = sb.db();
    let records: Vec<Value> = db
        .data(def.id)
        .map(|d| {
            d.records
                .values()
                .map(|r| {
                    json!({
                        "Id": r.id, "Number": r.number,
                        "DocumentStatus": r.status.to_string(),
                        "ForbidStatus": r.forbid.to_string(),
                        "Fields": r.fields,
                        "View": db.view_record(def, r),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!({"form": def.id, "count": records.len(), "records": records})).into_response()
}

#[derive(Deserialize)]
struct InventoryReq {
    material: String,
    #[serde(default = "default_stock")]
    stock: String,
    qty: f64,
    safety_stock: Option<f64>,
    #[serde(default)]
    lot: String,
}

fn default_stock() -> String {
    "CK001".into()
}

/// Sets the on-hand quantity of a material in a stock (STK_Inventory) and, optionally, the
/// material's safety level (`BD_MATERIAL.FSafeStock`).
async fn set_inventory(
    State(sb): State<KingdeeSandbox>,
    Json(req): Json<InventoryReq>,
) -> Response {
    let now = sb.now_text();
    let mut db = sb.db_mut();
    let Some(mat_id) = db.id_by_number("BD_MATERIAL", &req.material) else {
        return bad(format!("物料“{}”不存在", req.material));
    };
    if db.id_by_number("BD_STOCK", &req.stock).is_none() {
        return bad(format!("仓库“{}”不存在", req.stock));
    }
    if let Some(safety) = req.safety_stock
        && let Some(m) = db.record_mut("BD_MATERIAL", mat_id)
    {
        m.fields.insert("FSafeStock".into(), json!(safety));
    }
    let matches = |fields: &Map<String, Value>, key: &str, want: &str| {
        fields
            .get(key)
            .and_then(Value::as_object)
            .and_then(ref_number)
            .is_some_and(|n| n == want)
    };
    let existing = db.data("STK_Inventory").and_then(|d| {
        d.records
            .values()
            .find(|r| {
                matches(&r.fields, "FMaterialId", &req.material)
                    && matches(&r.fields, "FStockId", &req.stock)
                    && r.fields.get("FLot").and_then(Value::as_str).unwrap_or("") == req.lot
            })
            .map(|r| r.id)
    });
    let qty = json!(req.qty);
    let id = match existing {
        Some(id) => {
            if let Some(r) = db.record_mut("STK_Inventory", id) {
                for k in ["FQty", "FBaseQty", "FAVBQty"] {
                    r.fields.insert(k.into(), qty.clone());
                }
                r.modified = now.clone();
            }
            id
        }
        None => {
            let unit = db
                .record("BD_MATERIAL", mat_id)
                .and_then(|m| m.fields.get("FBaseUnitId").cloned())
                .unwrap_or(Value::Null);
            let org = db
                .data("ORG_Organizations")
                .and_then(|d| d.records.values().next())
                .map(|r| r.number.clone())
                .unwrap_or_default();
            let model = json!({
                "FMaterialId": {"FNumber": req.material}, "FStockId": {"FNumber": req.stock},
                "FStockOrgId": {"FNumber": org}, "FLot": req.lot,
                "FQty": qty, "FBaseQty": qty, "FAVBQty": qty, "FBaseUnitId": unit,
            });
            let (Some(form), Value::Object(m)) = (forms::form("STK_Inventory"), model) else {
                return bad("internal: STK_Inventory form missing");
            };
            match db.save_one(form, &m, &SaveOpts::default(), false, &now) {
                Ok((id, _)) => id,
                Err(e) => return bad(format!("{e:?}")),
            }
        }
    };
    Json(json!({"ok": true, "id": id})).into_response()
}

fn faults_json(sb: &KingdeeSandbox) -> Value {
    let f = sb.faults();
    let outage_remaining = f
        .outage_until
        .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64())
        .unwrap_or(0.0);
    json!({
        "latency_ms": f.latency_ms,
        "msgcode14_rate": f.msgcode14_rate,
        "msgcode14_next": f.msgcode14_next,
        "outage_remaining_seconds": outage_remaining,
    })
}

async fn get_faults(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    Json(faults_json(&sb))
}

#[derive(Deserialize)]
struct FaultsReq {
    latency_ms: Option<u64>,
    msgcode14_rate: Option<f64>,
    msgcode14_next: Option<u32>,
    /// Seconds of outage from now (0 ends an outage).
    outage_seconds: Option<f64>,
    #[serde(default)]
    drop_sessions: bool,
}

async fn set_faults(State(sb): State<KingdeeSandbox>, Json(req): Json<FaultsReq>) -> Response {
    if let Some(r) = req.msgcode14_rate
        && !(0.0..=1.0).contains(&r)
    {
        return bad("msgcode14_rate must be between 0 and 1");
    }
    sb.set_faults(|f| {
        if let Some(v) = req.latency_ms {
            f.latency_ms = v;
        }
        if let Some(v) = req.msgcode14_rate {
            f.msgcode14_rate = v;
        }
        if let Some(v) = req.msgcode14_next {
            f.msgcode14_next = v;
        }
        if let Some(secs) = req.outage_seconds {
            f.outage_until =
                (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs.min(86_400.0)));
        }
    });
    let dropped = if req.drop_sessions {
        sb.drop_sessions()
    } else {
        0
    };
    let mut v = faults_json(&sb);
    if let Value::Object(m) = &mut v {
        m.insert("sessions_dropped".into(), Value::from(dropped));
    }
    Json(v).into_response()
}

async fn sessions(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    Json(json!({"sessions": sb.sessions()}))
}

async fn drop_sessions(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    Json(json!({"ok": true, "dropped": sb.drop_sessions()}))
}

async fn counters(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    let c = sb.counters();
    let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("sessions_active".into(), Value::from(sb.sessions().len()));
    }
    Json(v)
}

async fn reset_counters(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    sb.reset_counters();
    Json(json!({"ok": true}))
}

async fn get_clock(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    Json(json!({"now": sb.now(), "text": sb.now_text()}))
}

#[derive(Deserialize)]
struct ClockReq {
    /// Pin the clock to this Unix time (seconds).
    pin: Option<i64>,
    /// Move the clock by this many seconds.
    advance_secs: Option<i64>,
    /// Back to real time.
    #[serde(default)]
    reset: bool,
}

async fn set_clock(State(sb): State<KingdeeSandbox>, Json(req): Json<ClockReq>) -> Json<Value> {
    if req.reset {
        sb.reset_clock();
    }
    if let Some(p) = req.pin {
        sb.pin_clock(Some(p));
    }
    if let Some(s) = req.advance_secs {
        sb.advance_clock(s);
    }
    Json(json!({"now": sb.now(), "text": sb.now_text()}))
}

async fn config(State(sb): State<KingdeeSandbox>) -> Json<Value> {
    let c = sb.config();
    Json(json!({
        "acct_id": c.acct_id, "acct_name": c.acct_name,
        "app_id": c.app_id, "app_secret": c.app_secret,
        "user_name": c.user_name, "password": c.password,
        "session_idle_seconds": c.session_idle.as_secs(),
        "clock_skew_seconds": c.clock_skew.as_secs(),
        "sso_app_id": c.sso_app_id, "sso_app_secret": c.sso_app_secret,
        "sso_link_validity_seconds": c.sso_link_validity.as_secs(),
        "sso_one_time": c.sso_one_time, "sso_allowed_users": c.sso_allowed_users,
        "query_limit_cap": c.query_limit_cap,
    }))
}

#[derive(Deserialize)]
struct SsoLinkReq {
    user: String,
    /// 4 (SHA-256, default) or 2/3 (SHA-1).
    version: Option<u8>,
    formid: Option<String>,
    permitcount: Option<u32>,
}

/// A freshly signed SSO link for a user (the sandbox's own signer, for demos).
async fn sso_link(State(sb): State<KingdeeSandbox>, Query(req): Query<SsoLinkReq>) -> Json<Value> {
    let c = sb.config();
    let ts = sb.now().to_string();
    let alg = if matches!(req.version, Some(2 | 3)) {
        SignAlgorithm::Sha1
    } else {
        SignAlgorithm::Sha256
    };
    let signed = auth::sorted_sign(
        &[&c.acct_id, &req.user, &c.sso_app_id, &c.sso_app_secret, &ts],
        alg,
    );
    let other = req
        .permitcount
        .map(|n| format!("|{{'permitcount':'{n}'}}"))
        .unwrap_or_default();
    let ud = json!({
        "dbid": c.acct_id, "username": req.user, "appid": c.sso_app_id, "signeddata": signed,
        "timestamp": ts, "lcid": "2052", "origintype": "SimPas", "entryrole": "",
        "formid": req.formid.unwrap_or_default(), "formtype": "", "pkid": "",
        "otherargs": other, "openmode": null,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(ud.to_string());
    Json(json!({
        "path": format!("/k3cloud/html5/index.aspx?ud={}", urlencoding::encode(&b64)),
        "ud": b64,
    }))
}
