//! The one error shape of `/api/v1`:
//! `{"error": {"code", "message", "message_zh", "fields"?, "approval_id"?}}`. Every message
//! names the fix, in English and Chinese.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::approvals::form::FieldError;
use store::StoreError;
use tracing::warn;

use super::Answer;
use super::schema::{ErrorBody, ErrorDetail, FieldProblem};

/// Seconds a client is asked to wait when DingTalk or the store is unavailable and no better
/// hint was given.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// An API error answer. Built by the constructors below so codes stay few and stable. Boxed:
/// it travels in every handler's `Result`.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Details>);

#[derive(Debug, Clone)]
pub struct Details {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub message_zh: String,
    pub fields: Vec<FieldProblem>,
    pub approval_id: Option<String>,
    /// Sent as `Retry-After` (seconds).
    pub retry_after: Option<u64>,
    /// 401 answers carry `WWW-Authenticate` (RFC 6750).
    www_authenticate: Option<&'static str>,
}

impl std::ops::Deref for ApiError {
    type Target = Details;
    fn deref(&self) -> &Details {
        &self.0
    }
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        message_zh: impl Into<String>,
    ) -> Self {
        ApiError(Box::new(Details {
            status,
            code,
            message: message.into(),
            message_zh: message_zh.into(),
            fields: Vec::new(),
            approval_id: None,
            retry_after: None,
            www_authenticate: None,
        }))
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>, message_zh: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message,
            message_zh,
        );
        e.0.www_authenticate = Some("Bearer realm=\"dingbridge\"");
        e
    }

    /// 400 `invalid_request`: a header or the body cannot be read at all.
    pub fn bad_request(message: impl Into<String>, message_zh: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message,
            message_zh,
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>, message_zh: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message, message_zh)
    }

    /// 422 `invalid_fields`, every problem listed.
    pub fn invalid_fields(fields: Vec<FieldProblem>) -> Self {
        let message = format!(
            "{} field(s) cannot be used: {}; fix them and send the request again",
            fields.len(),
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let message_zh = format!(
            "有 {} 个字段无法使用：{}；请修改后重新提交",
            fields.len(),
            fields
                .iter()
                .map(|f| format!("{}：{}", f.field, f.reason_zh))
                .collect::<Vec<_>>()
                .join("；")
        );
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fields",
            message,
            message_zh,
        );
        e.0.fields = fields;
        e
    }

    /// 422 naming one field or query parameter.
    pub fn invalid_field(
        field: &str,
        reason: impl Into<String>,
        reason_zh: impl Into<String>,
    ) -> Self {
        Self::invalid_fields(vec![FieldProblem {
            field: field.to_owned(),
            reason: reason.into(),
            reason_zh: reason_zh.into(),
        }])
    }

    /// The engine's field errors as a 422.
    pub fn from_field_errors(errors: Vec<FieldError>) -> Self {
        Self::invalid_fields(
            errors
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field,
                    reason: e.reason,
                    reason_zh: e.reason_zh,
                })
                .collect(),
        )
    }

    /// 503 `store_unavailable`: the store could not be read or written; try again.
    pub fn store(e: &StoreError) -> Self {
        warn!(error = %e, "API request failed on the store");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the hub's database did not answer ({e}); retry the request later"),
            format!("数据库暂时不可用（{e}）；请稍后重试"),
        );
        err.0.retry_after = Some(DEFAULT_RETRY_AFTER_SECS);
        err
    }

    /// 503 `dingtalk_unavailable`: DingTalk failed in a way worth retrying.
    pub fn dingtalk_retryable(message: &str, retry_after: Option<Duration>) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dingtalk_unavailable",
            format!("DingTalk is unavailable or throttling ({message}); retry the request later"),
            format!("钉钉暂时不可用或限流（{message}）；请稍后重试"),
        );
        err.0.retry_after = Some(
            retry_after
                .map(|d| d.as_secs().max(1))
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS),
        );
        err
    }

    /// 502 `dingtalk_error`: DingTalk refused; retrying the same request will not help.
    pub fn dingtalk_refused(message: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "dingtalk_error",
            format!(
                "DingTalk refused the request: {message}; check the template, the people and the values in DingTalk's message"
            ),
            format!("钉钉拒绝了请求：{message}；请根据钉钉的提示检查审批模板、人员和字段值"),
        )
    }

    /// 500 `internal`: a bug; the request may be retried.
    pub fn internal(what: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error ({what}); retry, and report it if it persists"),
            format!("内部错误（{what}）；请重试，如持续出现请报告"),
        )
    }

    pub fn with_approval(mut self, id: Option<String>) -> Self {
        self.0.approval_id = id;
        self
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                message_zh: self.message_zh.clone(),
                fields: self.fields.clone(),
                approval_id: self.approval_id.clone(),
            },
        }
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Answer {
        let mut a = Answer::json(e.status, &e.body());
        if let Some(secs) = e.retry_after {
            a.headers
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(w) = e.www_authenticate {
            a.headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(w));
        }
        a
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Answer::from(self).into_response()
    }
}
