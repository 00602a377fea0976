//! Answers in the shapes of the two API families (protocol §0): oapi answers HTTP 200 with
//! `errcode`/`errmsg`/`request_id`; v1.0 answers the bare body on success and HTTP 4xx/5xx with
//! `{code, message, requestid}` on errors.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Which family a path belongs to (protocol §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `oapi.dingtalk.com`: token in `?access_token=`, errors HTTP 200 + errcode.
    Oapi,
    /// `api.dingtalk.com/v1.0/…`: token in `x-acs-dingtalk-access-token`, errors HTTP 4xx.
    V1,
}

/// One error, in both families' terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// oapi `errcode`.
    pub errcode: i64,
    /// v1.0 HTTP status.
    pub status: StatusCode,
    /// v1.0 `code`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// An oapi error; its v1.0 form is HTTP 400 `invalidParameter`.
    pub fn oapi(errcode: i64, message: impl Into<String>) -> ApiError {
        ApiError {
            errcode,
            status: StatusCode::BAD_REQUEST,
            code: "invalidParameter".into(),
            message: message.into(),
        }
    }

    /// A v1.0 error; its oapi form is errcode 400002.
    pub fn v1(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            errcode: 400002,
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn with_v1(mut self, status: StatusCode, code: &str) -> ApiError {
        self.status = status;
        self.code = code.into();
        self
    }

    /// Missing required parameter (global code 40035 / v1.0 `MissingParameter`).
    pub fn missing(name: &str) -> ApiError {
        ApiError::oapi(40035, format!("缺少参数 {name}"))
            .with_v1(StatusCode::BAD_REQUEST, "MissingParameter")
    }

    /// A parameter with a bad value (400002 无效的参数 / v1.0 `invalidParameter`).
    pub fn invalid(name: &str, why: &str) -> ApiError {
        ApiError::oapi(400002, format!("无效的参数 {name}: {why}"))
    }

    /// Internal failure (`-1 系统繁忙` / HTTP 500 `systemError`).
    pub fn system() -> ApiError {
        ApiError::oapi(-1, "系统繁忙").with_v1(StatusCode::INTERNAL_SERVER_ERROR, "systemError")
    }

    /// Per app × API QPS exceeded (§1.6: 90018 ↔ 403 `QpsLimitForAppkeyAndApi`).
    pub fn qps() -> ApiError {
        ApiError::oapi(90018, "当前企业正在调用此接口，请稍后再试").with_v1(
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        )
    }

    /// Monthly quota used up (§1.6: 90020 ↔ `ApiCountLimitForOrg`; HTTP status unconfirmed,
    /// the sandbox answers 403).
    pub fn quota() -> ApiError {
        ApiError::oapi(
            90020,
            "您的企业调用接口次数已达到本月上限，请升级或购买更多调用次数",
        )
        .with_v1(
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.ApiCountLimitForOrg",
        )
    }
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

/// Renders a handler result. For oapi, an object payload is merged next to `errcode`; for
/// v1.0 it is the whole body.
pub fn render(family: Family, result: Result<Value, ApiError>) -> Response {
    let rid = request_id();
    match (family, result) {
        (Family::Oapi, Ok(payload)) => {
            let mut body = Map::new();
            body.insert("errcode".into(), json!(0));
            body.insert("errmsg".into(), json!("ok"));
            if let Value::Object(m) = payload {
                body.extend(m);
            }
            body.insert("request_id".into(), json!(rid));
            (StatusCode::OK, Json(Value::Object(body))).into_response()
        }
        (Family::V1, Ok(payload)) => (StatusCode::OK, Json(payload)).into_response(),
        (Family::Oapi, Err(e)) => (
            StatusCode::OK,
            Json(json!({"errcode": e.errcode, "errmsg": e.message, "request_id": rid})),
        )
            .into_response(),
        (Family::V1, Err(e)) => (
            e.status,
            Json(json!({"code": e.code, "message": e.message, "requestid": rid})),
        )
            .into_response(),
    }
}

/// The per-IP ban answer (protocol §1.6 / §7: no errcode, an HTML page, or the JSON
/// `{"status":1111,…}` form for callers that only accept JSON). The JSON `wait` is in minutes:
/// the documented example is `"wait":5` for the 5-minute ban (§7).
pub fn ban_page(wait_secs: u64, json_only: bool) -> Response {
    if json_only {
        let wait_minutes = wait_secs.div_ceil(60);
        return (
            StatusCode::OK,
            Json(json!({"status": 1111, "wait": wait_minutes, "source": "x5",
                        "punish": "deny", "uuid": uuid::Uuid::new_v4().to_string()})),
        )
            .into_response();
    }
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>访问被拒绝</title>\
         <meta name=\"dingtalk-sandbox-ban\" content=\"ip\"></head>\n<body>\
         <h1>访问被拒绝</h1><p>您的IP访问频率过高，已被暂时限制访问（status 1111, punish deny）。\
         请 {wait_secs} 秒后再试。</p></body></html>\n"
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// Injected outage: the gateway answers HTTP 503.
pub fn outage() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(
            json!({"code": "ServiceUnavailable", "message": "服务暂不可用（sandbox outage）",
                    "requestid": request_id()}),
        ),
    )
        .into_response()
}
