//! One error type for every call, with the class the engine's retry policy needs
//! ([`KingdeeError::is_retryable`]).

use crate::envelope::{LoginResultType, MsgCode, ResponseStatus};

/// Everything a Kingdee call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KingdeeError {
    /// The configuration cannot work (checked before any call).
    #[error("Kingdee configuration: {0}")]
    Config(String),

    /// The request did not complete (connect, TLS, timeout, body read).
    #[error("transport error calling {service}: {source}")]
    Transport {
        /// Service called.
        service: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },

    /// A non-200 HTTP status (the server answers business failures with 200, §1.1, so this is a
    /// proxy, gateway or IIS problem).
    #[error("HTTP {status} from {service}: {snippet}")]
    Http {
        /// Service called.
        service: String,
        /// The status.
        status: u16,
        /// Start of the body.
        snippet: String,
    },

    /// The body was not what the protocol describes.
    #[error("unexpected response from {service}: {reason}; body starts: {snippet}")]
    Decode {
        /// Service called.
        service: String,
        /// What did not fit.
        reason: String,
        /// Start of the body.
        snippet: String,
    },

    /// A `response_error:` body: an exception thrown on the server (§1.1).
    #[error("Kingdee server exception in {service}: {message}{}", inner.as_deref().map(|i| format!(" ({i})")).unwrap_or_default())]
    ServerException {
        /// Service called.
        service: String,
        /// `Message`.
        message: String,
        /// `InnerExWrapper`/`InnerException` message, if any.
        inner: Option<String>,
    },

    /// Login refused (`LoginResultType` other than success).
    #[error("Kingdee login refused ({result_type:?}): {message}")]
    Login {
        /// `LoginResultType`.
        result_type: LoginResultType,
        /// `Message` (or `MessageCode`).
        message: String,
    },

    /// A login that another caller attempted while this one waited failed; its reason.
    #[error("Kingdee login failed (attempted by a concurrent caller): {message}")]
    SharedLoginFailure {
        /// The other caller's error.
        message: String,
        /// Whether that error was retryable.
        retryable: bool,
    },

    /// `IsSuccess:false` in the envelope.
    #[error("{service} failed [{}]: {}", status.msg_code, status.summary())]
    Api {
        /// Service called.
        service: String,
        /// The full `ResponseStatus`, with every row error.
        status: Box<ResponseStatus>,
    },
}

impl KingdeeError {
    /// The MsgCode of an API failure.
    pub fn msg_code(&self) -> Option<MsgCode> {
        match self {
            KingdeeError::Api { status, .. } => Some(status.msg_code),
            _ => None,
        }
    }

    /// The `ResponseStatus` of an API failure.
    pub fn response_status(&self) -> Option<&ResponseStatus> {
        match self {
            KingdeeError::Api { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The session was lost (and the one re-login did not help).
    pub fn is_session_lost(&self) -> bool {
        self.response_status()
            .is_some_and(ResponseStatus::is_session_lost)
    }

    /// MsgCode 14 (call limit), or HTTP 429/503 from a gateway.
    pub fn is_throttled(&self) -> bool {
        match self {
            KingdeeError::Api { status, .. } => status.is_call_limit(),
            KingdeeError::Http { status, .. } => matches!(status, 429 | 503),
            _ => false,
        }
    }

    /// Whether the engine should back off and try again (DESIGN §6): transport problems, HTTP
    /// 5xx/429/408, server exceptions, lost sessions, call limits and the other transient
    /// MsgCodes ([`MsgCode::is_transient`]). Validation, permission, parameter, licence,
    /// configuration and login refusals are permanent: they need a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            KingdeeError::Config(_) | KingdeeError::Decode { .. } | KingdeeError::Login { .. } => {
                false
            }
            KingdeeError::Transport { source, .. } => !source.is_builder(),
            KingdeeError::Http { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            KingdeeError::ServerException { .. } => true,
            KingdeeError::SharedLoginFailure { retryable, .. } => *retryable,
            KingdeeError::Api { status, .. } => {
                status.msg_code.is_transient() || status.is_session_lost()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64) -> KingdeeError {
        KingdeeError::Api {
            service: "Save".into(),
            status: Box::new(ResponseStatus {
                msg_code: MsgCode::from_code(code),
                ..ResponseStatus::default()
            }),
        }
    }

    #[test]
    fn retry_classes() {
        assert!(api(1).is_retryable());
        assert!(api(1).is_session_lost());
        assert!(api(14).is_retryable());
        assert!(api(14).is_throttled());
        assert!(api(13).is_retryable());
        assert!(!api(11).is_retryable());
        assert!(!api(9).is_retryable());
        assert!(!api(2).is_retryable());
        assert!(!api(0).is_retryable());
        let http = |s| KingdeeError::Http {
            service: "x".into(),
            status: s,
            snippet: String::new(),
        };
        assert!(http(502).is_retryable());
        assert!(http(429).is_throttled());
        assert!(!http(404).is_retryable());
        assert!(!KingdeeError::Config("x".into()).is_retryable());
        assert!(
            !KingdeeError::Login {
                result_type: LoginResultType::PwError,
                message: "用户名或密码错误".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn display_names_code_and_rows() {
        let e = KingdeeError::Api {
            service: "BatchSave".into(),
            status: Box::new(ResponseStatus {
                msg_code: MsgCode::ValidationFailed,
                errors: vec![crate::envelope::RowMessage {
                    field_name: Some("FName".into()),
                    message: Some("员工 张伟 已存在".into()),
                    d_index: Some(2),
                }],
                ..ResponseStatus::default()
            }),
        };
        assert_eq!(
            e.to_string(),
            "BatchSave failed [MsgCode 11 验证失败]: FName: 员工 张伟 已存在 (row 2)"
        );
    }
}
