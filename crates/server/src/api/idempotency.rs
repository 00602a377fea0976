//! `Idempotency-Key` for POST routes (draft-ietf-httpapi-idempotency-key-header).
//!
//! A key is claimed per API key for 24 hours together with the SHA-256 of the raw request body
//! (prefixed with the route, so one key cannot replay another route's answer).
//! The first request runs and its answer (status and JSON body) is stored; a repeat with the
//! same body gets that answer again with `Idempotent-Replayed: true`, without running again.
//! Answers the client should retry (500, 503, 504) are not stored: the claim is released so
//! the retry runs. A repeat while the first is still running gets 409; the same key with a
//! different body gets 422.
//!
//! The claim, the work and the recording of its answer run in a task of their own, so a client
//! that hangs up half-way neither cuts the work short nor leaves the key claimed.

use std::future::Future;

use axum::http::{HeaderMap, HeaderName, StatusCode};
use sha2::{Digest, Sha256};
use store::{IdempotencyClaim, Store, now_ms};
use tracing::warn;

use super::Answer;
use super::error::ApiError;

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
pub const MAX_KEY_CHARS: usize = 255;
/// How long an answer is kept for replay.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// The request's idempotency key: `None` when it has none, 400 when it is unusable.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = |why: &str, why_zh: &str| {
        ApiError::bad_request(
            format!(
                "Idempotency-Key {why}; send 1 to {MAX_KEY_CHARS} visible ASCII characters, e.g. a UUID"
            ),
            format!(
                "Idempotency-Key {why_zh}；请使用 1 到 {MAX_KEY_CHARS} 个可见 ASCII 字符，例如 UUID"
            ),
        )
    };
    let Ok(text) = v.to_str() else {
        return Err(bad("is not visible ASCII", "含有非 ASCII 字符"));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("is empty", "为空"));
    }
    if text.chars().count() > MAX_KEY_CHARS {
        return Err(bad(
            &format!("is {} characters long", text.chars().count()),
            &format!("长度为 {} 个字符，超出上限", text.chars().count()),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Answers worth retrying: not stored, the key is released.
fn retry_worthy(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 503 | 504)
}

/// The request's fingerprint: SHA-256 of the route (method and path) and the raw body, so a
/// key reused on another route or approval is refused instead of replaying a foreign answer.
fn fingerprint(route: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// Run `work` at most once per (`api_key_id`, `key`) for one request (`route` such as
/// `POST /api/v1/approvals`, and `body`); without a key, just run it.
pub async fn once<W>(
    store: std::sync::Arc<dyn Store>,
    api_key_id: i64,
    key: Option<String>,
    route: &str,
    body: &[u8],
    work: W,
) -> Answer
where
    W: Future<Output = Answer> + Send + 'static,
{
    let request_hash = fingerprint(route, body);
    let task = tokio::spawn(async move {
        let Some(key) = key else {
            return work.await;
        };
        let now = now_ms();
        let claim = store
            .claim_idempotency_key(api_key_id, &key, &request_hash, now, now + TTL_MS)
            .await;
        match claim {
            Err(e) => ApiError::store(&e).into(),
            Ok(IdempotencyClaim::InProgress { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being answered; retry after it has finished",
                "使用此 Idempotency-Key 的请求仍在处理中；请在其完成后重试",
            )
            .into(),
            Ok(IdempotencyClaim::Completed {
                request_hash: earlier,
                status_code,
                response,
            }) if earlier == request_hash => {
                let status = u16::try_from(status_code)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Answer {
                    status,
                    body: response,
                    headers: HeaderMap::new(),
                }
                .header(REPLAYED, "true")
            }
            Ok(IdempotencyClaim::Completed { .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body in the last 24 hours; use a new key for a new request",
                "此 Idempotency-Key 在 24 小时内已用于内容不同的请求；新请求请使用新的键",
            )
            .into(),
            Ok(IdempotencyClaim::Claimed) => {
                let answer = run(work).await;
                let recorded = if retry_worthy(answer.status) {
                    store.release_idempotency_key(api_key_id, &key).await
                } else {
                    store
                        .complete_idempotency_key(
                            api_key_id,
                            &key,
                            i32::from(answer.status.as_u16()),
                            &answer.body,
                        )
                        .await
                };
                if let Err(e) = recorded {
                    // The answer stands; a repeat of the request gets 409 until the claim
                    // expires.
                    warn!(key, error = %e, "could not record the answer of an idempotent request");
                }
                answer
            }
        }
    });
    task.await.unwrap_or_else(|e| {
        warn!(error = %e, "an API request's task failed");
        ApiError::internal("the request's task failed").into()
    })
}

/// `work` in a task of its own, so a panic becomes a 500 (and the claim is released) instead of
/// an answer never recorded.
async fn run<W>(work: W) -> Answer
where
    W: Future<Output = Answer> + Send + 'static,
{
    tokio::spawn(work).await.unwrap_or_else(|e| {
        warn!(error = %e, "an API request's work failed");
        ApiError::internal("the request's work failed").into()
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn keys_are_1_to_255_visible_characters() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(HEADER, HeaderValue::from_str(v).expect("header"));
            key_of(&h)
        };
        assert_eq!(key_of(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(
            with("bx-2025-000123").ok().flatten().as_deref(),
            Some("bx-2025-000123")
        );
        assert_eq!(
            with(&"k".repeat(255)).ok().flatten().map(|k| k.len()),
            Some(255)
        );
        assert!(with(&"k".repeat(256)).is_err());
        assert!(with("  ").is_err());
    }

    #[test]
    fn only_retry_worthy_answers_are_released() {
        for s in [500, 503, 504] {
            assert!(retry_worthy(StatusCode::from_u16(s).expect("status")));
        }
        for s in [200, 201, 202, 400, 404, 409, 422, 502] {
            assert!(!retry_worthy(StatusCode::from_u16(s).expect("status")));
        }
    }
}
