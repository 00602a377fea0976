//! Typed errors and their classification (protocol §1.5 token errors, §1.6 / §7 throttling).
//!
//! oapi answers errors as HTTP 200 + non-zero `errcode` (protocol §0, OBS satorijs/satori#240);
//! v1.0 answers HTTP 4xx/5xx with `{"code","message","requestid"}` (ALI-SDK
//! `alibabacloud_gateway_dingtalk`). Both are folded into [`Error`] here so callers decide on
//! retries with [`Error::is_retryable`] and [`Error::retry_after`] alone.

use std::time::Duration;

use crate::crypto::CryptoError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure of the DingTalk client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rate limited: oapi 90018/90002 (and the other 9000x QPS codes), v1.0 HTTP 403
    /// `Forbidden.AccessDenied.Qps*/Qpm*`, HTTP 429 `system.busy`, or the per-IP ban page
    /// (HTML, or `{"status":1111,"wait":…}`) — protocol §1.6, §7.
    #[error("throttled by DingTalk ({code}): {message}")]
    Throttled {
        /// How long to wait before the next call, when known.
        retry_after: Option<Duration>,
        /// The errcode / code that said so (`"ip-ban"` for the IP ban page).
        code: String,
        /// The platform's message.
        message: String,
    },
    /// The access token is invalid or expired: oapi 40014, 42001, 40001, 33001, 88 (with its
    /// `sub_code`), v1.0 `InvalidAuthentication` / HTTP 401 — protocol §1.5.
    #[error("access token invalid ({code}): {message}")]
    TokenInvalid {
        /// The errcode / code.
        code: String,
        /// The platform's message.
        message: String,
    },
    /// The app lacks a permission or the server IP is not allow-listed: oapi 60011, 60020,
    /// 43007, 50002, 50004; v1.0 403 `Forbidden.AccessDenied.*` — protocol §1.5.
    #[error("permission denied ({code}): {message}")]
    PermissionDenied {
        /// The errcode / code.
        code: String,
        /// The platform's message.
        message: String,
    },
    /// The monthly call quota is used up (oapi 90020, v1.0 `ApiCountLimitForOrg`): never retry
    /// (protocol §1.6, DESIGN §6).
    #[error("monthly API quota exhausted ({code}): {message}")]
    QuotaExhausted {
        /// The errcode / code.
        code: String,
        /// The platform's message.
        message: String,
    },
    /// A temporary server-side failure: HTTP 5xx, oapi `-1` (系统繁忙), v1.0 `systemError`.
    #[error("DingTalk unavailable ({code}): {message}")]
    Unavailable {
        /// HTTP status, when the failure was an HTTP status.
        status: Option<u16>,
        /// The errcode / code.
        code: String,
        /// The platform's message.
        message: String,
    },
    /// Any other error the platform reported (validation, not found, …): permanent.
    #[error("DingTalk error {code}: {message}")]
    Business {
        /// The errcode (oapi, as decimal text) or code (v1.0).
        code: String,
        /// The platform's message.
        message: String,
    },
    /// The request did not complete (connect, TLS, timeout, WebSocket).
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The answer could not be understood.
    #[error("cannot decode DingTalk response: {message}")]
    Decode {
        /// What was wrong.
        message: String,
    },
    /// Callback encryption, decryption or signature check failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The configuration or an argument is unusable.
    #[error("invalid configuration or argument: {0}")]
    Invalid(String),
}

impl Error {
    /// Whether a later retry may succeed (transport, 5xx, rate limit, expired token).
    /// Permission, quota (90020), validation and decoding errors are permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Throttled { .. }
                | Error::TokenInvalid { .. }
                | Error::Unavailable { .. }
                | Error::Transport { .. }
        )
    }

    /// The platform's hint how long to wait, for throttling errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The platform's error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Throttled { code, .. }
            | Error::TokenInvalid { code, .. }
            | Error::PermissionDenied { code, .. }
            | Error::QuotaExhausted { code, .. }
            | Error::Unavailable { code, .. }
            | Error::Business { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether this is an invalid/expired access token (the client refreshes once on it).
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, Error::TokenInvalid { .. })
    }

    pub(crate) fn transport(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Transport {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        Error::Decode {
            message: message.into(),
        }
    }
}

/// oapi QPS codes: 90018 (app × API), 90002 (API platform-wide), 90001, 90003–90014, 90017
/// (DOC global codes via protocol §1.6).
fn oapi_throttle(code: i64) -> bool {
    matches!(code, 90001..=90014 | 90017 | 90018)
}

const TOKEN_CODES: [i64; 4] = [40014, 42001, 40001, 33001];
const PERMISSION_CODES: [i64; 5] = [60011, 60020, 43007, 50002, 50004];

/// Classify a non-zero oapi `errcode` (protocol §1.5, §1.6).
pub(crate) fn classify_oapi(
    errcode: i64,
    errmsg: &str,
    sub_code: Option<&str>,
    sub_msg: Option<&str>,
) -> Error {
    let code = errcode.to_string();
    let message = errmsg.to_owned();
    if errcode == 88 {
        // 鉴权异常: the detail is in sub_code / sub_msg (TOP-JAVA `TaobaoResponse`;
        // OBS cryozerolabs/n8n-nodes-dingtalk#12 shows sub_code 40014).
        let detail = sub_msg
            .filter(|m| !m.is_empty())
            .unwrap_or(errmsg)
            .to_owned();
        if let Some(sub) = sub_code
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|s| *s != 88 && *s != 0)
        {
            return match classify_oapi(sub, &detail, None, None) {
                Error::Business { .. } => Error::TokenInvalid {
                    code: format!("88/{sub}"),
                    message: detail,
                },
                other => other,
            };
        }
        return Error::TokenInvalid {
            code: "88".into(),
            message: detail,
        };
    }
    if oapi_throttle(errcode) {
        return Error::Throttled {
            // DOC how-to-process-api-throttling: "sleep 1 s and retry".
            retry_after: Some(Duration::from_secs(1)),
            code,
            message,
        };
    }
    if errcode == 410_100 {
        // Custom robot: 20 msgs/min per robot, then a 10-minute throttle (DOC
        // custom-robots-send-group-messages, protocol §4.2).
        return Error::Throttled {
            retry_after: Some(Duration::from_secs(600)),
            code,
            message,
        };
    }
    if errcode == 90020 {
        return Error::QuotaExhausted { code, message };
    }
    if TOKEN_CODES.contains(&errcode) {
        return Error::TokenInvalid { code, message };
    }
    if PERMISSION_CODES.contains(&errcode) {
        return Error::PermissionDenied { code, message };
    }
    if errcode == -1 {
        // -1 系统繁忙 (DOC global codes).
        return Error::Unavailable {
            status: None,
            code,
            message,
        };
    }
    Error::Business { code, message }
}

/// Classify a v1.0 HTTP error (protocol §0, §1.5, §1.6).
pub(crate) fn classify_v1(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Error {
    let code_s = if code.is_empty() {
        status.to_string()
    } else {
        code.to_owned()
    };
    let message = message.to_owned();
    if code.starts_with("Forbidden.AccessDenied.Qpm") {
        return Error::Throttled {
            retry_after: retry_after.or(Some(Duration::from_secs(60))),
            code: code_s,
            message,
        };
    }
    if code.starts_with("Forbidden.AccessDenied.Qps")
        || status == 429
        || code.eq_ignore_ascii_case("system.busy")
        || code.eq_ignore_ascii_case("systemBusy")
    {
        return Error::Throttled {
            retry_after: retry_after.or(Some(Duration::from_secs(1))),
            code: code_s,
            message,
        };
    }
    if code == "Forbidden.AccessDenied.ApiCountLimitForOrg" {
        return Error::QuotaExhausted {
            code: code_s,
            message,
        };
    }
    if code == "InvalidAuthentication" || code == "accesstoken.expired" || status == 401 {
        return Error::TokenInvalid {
            code: code_s,
            message,
        };
    }
    if code.starts_with("Forbidden") || status == 403 {
        return Error::PermissionDenied {
            code: code_s,
            message,
        };
    }
    if status >= 500 {
        return Error::Unavailable {
            status: Some(status),
            code: code_s,
            message,
        };
    }
    Error::Business {
        code: code_s,
        message,
    }
}

/// The per-IP ban answer: an HTML page, or JSON `{"status":1111,"wait":5,…}`
/// (DOC call-frequency-limit, protocol §1.6). The doc says the IP is blocked for 5 minutes;
/// `wait` is read as minutes for that reason (the unit is not documented).
pub(crate) fn detect_ip_ban(body: &[u8], json: Option<&serde_json::Value>) -> Option<Error> {
    if let Some(v) = json {
        if v.get("status").and_then(crate::lenient::as_i64) == Some(1111) {
            let wait_min = v
                .get("wait")
                .and_then(crate::lenient::as_i64)
                .filter(|w| *w > 0)
                .unwrap_or(5);
            return Some(Error::Throttled {
                retry_after: Some(Duration::from_secs(wait_min.unsigned_abs() * 60)),
                code: "ip-ban".into(),
                message: String::from_utf8_lossy(body).chars().take(200).collect(),
            });
        }
        return None;
    }
    let head = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(1)
        .next();
    if head == Some(&b'<') {
        return Some(Error::Throttled {
            retry_after: Some(Duration::from_secs(300)),
            code: "ip-ban".into(),
            message: "HTML answer (IP frequency ban page)".into(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oapi_codes() {
        assert!(matches!(
            classify_oapi(90018, "qps", None, None),
            Error::Throttled {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify_oapi(90002, "qps", None, None),
            Error::Throttled { .. }
        ));
        let q = classify_oapi(90020, "本月调用量已用完", None, None);
        assert!(matches!(q, Error::QuotaExhausted { .. }));
        assert!(!q.is_retryable());
        for c in [40014, 42001, 40001] {
            let e = classify_oapi(c, "不合法的access_token", None, None);
            assert!(e.is_token_invalid() && e.is_retryable(), "{c}");
        }
        let e = classify_oapi(88, "鉴权异常", Some("40014"), Some("不合法的access_token"));
        assert!(e.is_token_invalid());
        assert_eq!(e.code(), Some("40014"));
        let e = classify_oapi(88, "鉴权异常", Some("60011"), Some("没有调用该接口的权限"));
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert!(classify_oapi(88, "不合法的access_token", None, None).is_token_invalid());
        let e = classify_oapi(60011, "no perm", None, None);
        assert!(matches!(e, Error::PermissionDenied { .. }) && !e.is_retryable());
        assert!(matches!(
            classify_oapi(60020, "ip", None, None),
            Error::PermissionDenied { .. }
        ));
        assert!(classify_oapi(-1, "系统繁忙", None, None).is_retryable());
        let b = classify_oapi(60121, "找不到该用户", None, None);
        assert!(matches!(b, Error::Business { .. }) && !b.is_retryable());
    }

    #[test]
    fn v1_codes() {
        let e = classify_v1(
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "x",
            None,
        );
        assert!(matches!(e, Error::Throttled { .. }));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        let e = classify_v1(
            403,
            "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi",
            "x",
            None,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        let e = classify_v1(429, "system.busy", "x", Some(Duration::from_secs(7)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(
            classify_v1(400, "InvalidAuthentication", "不合法的access_token", None)
                .is_token_invalid()
        );
        assert!(classify_v1(401, "", "Unauthorized", None).is_token_invalid());
        assert!(matches!(
            classify_v1(403, "Forbidden.AccessDenied.IpNotInWhiteList", "x", None),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            classify_v1(403, "Forbidden.AccessDenied.ApiCountLimitForOrg", "x", None),
            Error::QuotaExhausted { .. }
        ));
        assert!(classify_v1(500, "systemError", "x", None).is_retryable());
        assert!(!classify_v1(400, "processInstanceNotExist", "x", None).is_retryable());
    }

    #[test]
    fn ip_ban() {
        let v =
            serde_json::json!({"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"});
        let e = detect_ip_ban(b"{}", Some(&v));
        assert!(matches!(e, Some(Error::Throttled { .. })));
        assert_eq!(
            e.and_then(|e| e.retry_after()),
            Some(Duration::from_secs(300))
        );
        assert!(detect_ip_ban(b"  <!DOCTYPE html><html>", None).is_some());
        assert!(
            detect_ip_ban(b"{\"errcode\":0}", Some(&serde_json::json!({"errcode":0}))).is_none()
        );
    }
}
