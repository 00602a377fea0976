//! API keys on requests: `Authorization: Bearer dbk_…` or `X-API-Key: dbk_…`. The check itself
//! (hash, revocation, scope) is the engine's ([`engine::approvals::keys::authenticate`]); this
//! module reads the header and turns a refusal into 401 or 403.

use axum::http::{HeaderMap, StatusCode, header};
use engine::approvals::keys::{self, Rejection};
use store::{ApiKey, now_ms};
use tracing::warn;

use super::error::ApiError;
use crate::AppState;

pub const APPROVALS_WRITE: &str = "approvals:write";
pub const APPROVALS_READ: &str = "approvals:read";
pub const DELIVERIES_WRITE: &str = "deliveries:write";

/// `last_used_at` is written at most this often per key, so a busy client does not turn every
/// read into a write.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The key a request presents: the bearer token, else `X-API-Key`. A header that is there
/// but unreadable, or another `Authorization` scheme, is presented as it is (and so refused as
/// malformed, not as missing).
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let text = v.to_str().unwrap_or("").trim();
        return Some(match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => text.to_owned(),
        });
    }
    headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned())
}

/// The key of the request if it holds `scope`; 401/403 (or 503 when the store fails)
/// otherwise.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ApiKey, ApiError> {
    let presented = presented(headers);
    let verdict = keys::authenticate(state.store.as_ref(), presented.as_deref(), scope)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let key = match verdict {
        Ok(key) => key,
        Err(Rejection::Forbidden { scope }) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this API key lacks the scope `{scope}`; create a key that has it (dingbridge keys create <name> --scope {scope})"
                ),
                format!(
                    "此 API 密钥没有 `{scope}` 权限；请创建带此权限的密钥（dingbridge keys create <名称> --scope {scope}）"
                ),
            ));
        }
        Err(Rejection::Unauthenticated(why)) => {
            return Err(ApiError::unauthorized(
                why.en().to_owned(),
                why.zh().to_owned(),
            ));
        }
    };
    let now = now_ms();
    if key.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS)
        && let Err(e) = state.store.touch_api_key(key.id, now).await
    {
        // The request goes on: a missed `last_used_at` is not worth failing it.
        warn!(key = %key.prefix, error = %e, "could not record the API key's last use");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::presented;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn the_key_comes_from_the_bearer_token_or_x_api_key() {
        assert_eq!(presented(&headers(&[])), None);
        assert_eq!(
            presented(&headers(&[("authorization", "Bearer dbk_abcdefgh_s")])).as_deref(),
            Some("dbk_abcdefgh_s")
        );
        assert_eq!(
            presented(&headers(&[("authorization", "bearer  dbk_x ")])).as_deref(),
            Some("dbk_x")
        );
        assert_eq!(
            presented(&headers(&[("x-api-key", "dbk_y")])).as_deref(),
            Some("dbk_y")
        );
        // Another scheme is presented whole, so it is refused as malformed.
        assert_eq!(
            presented(&headers(&[("authorization", "Basic YWJj")])).as_deref(),
            Some("Basic YWJj")
        );
    }
}
