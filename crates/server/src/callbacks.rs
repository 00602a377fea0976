//! `POST /callbacks/dingtalk/{connection}`: DingTalk's HTTP push (protocol §5.1).
//!
//! Order of checks, each failure answered 4xx with nothing stored and a log line saying why:
//! the connection has callback keys (404) → query and body are well formed (400, naming the
//! field) → the timestamp is within the replay window (403) → the signature verifies, in
//! constant time (403) → the message decrypts for our owner key (403). Then the event and its
//! job are stored in one transaction, and only after that commit do we answer the encrypted
//! `success` (nothing is acknowledged before it is durable). A re-sent event (same `eventId`)
//! is acknowledged again but stored once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dingtalk::crypto::{CallbackBody, CallbackQuery};
use dingtalk::{CallbackCrypto, CryptoError};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{Millis, now_ms};
use tracing::{info, warn};

use crate::AppState;

/// Callback crypto per DingTalk connection name.
pub type DingTalkCallbacks = Arc<HashMap<String, CallbackCrypto>>;

/// How far a callback's timestamp may be from our clock. DingTalk retries a failed push after
/// 10 s and 30 s (§5.1); anything much older is a replay of a captured request.
pub const REPLAY_WINDOW_MS: i64 = 10 * 60 * 1000;

fn reject(status: StatusCode, connection: &str, field: Option<&str>, why: String) -> Response {
    warn!(connection, status = status.as_u16(), reason = %why, "DingTalk callback rejected; nothing stored");
    let body = match field {
        Some(f) => json!({ "error": why, "field": f }),
        None => json!({ "error": why }),
    };
    (status, Json(body)).into_response()
}

/// Unix ms from a callback timestamp, which may be in seconds or milliseconds (§5.1).
fn timestamp_ms(ts: &str) -> Option<Millis> {
    let n: i64 = ts.trim().parse().ok()?;
    Some(if n < 100_000_000_000 { n * 1000 } else { n })
}

pub async fn dingtalk(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Query(query): Query<CallbackQuery>,
    body: Bytes,
) -> Response {
    let Some(crypto) = state.dingtalk_callbacks.get(&connection) else {
        return reject(
            StatusCode::NOT_FOUND,
            &connection,
            None,
            format!(
                "no DingTalk connection `{connection}` with callback keys; set callback_token and encoding_aes_key in [connections.{connection}]"
            ),
        );
    };
    for (field, value) in [
        ("signature", &query.msg_signature),
        ("timestamp", &query.timestamp),
        ("nonce", &query.nonce),
    ] {
        if value.as_deref().is_none_or(str::is_empty) {
            return reject(
                StatusCode::BAD_REQUEST,
                &connection,
                Some(field),
                format!("query parameter `{field}` is missing"),
            );
        }
    }
    let body: CallbackBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                &connection,
                Some("encrypt"),
                format!("the body must be JSON {{\"encrypt\": \"…\"}}: {e}"),
            );
        }
    };
    let now = now_ms();
    let ts = query.timestamp.as_deref().unwrap_or_default();
    match timestamp_ms(ts) {
        Some(t) if (now - t).abs() <= REPLAY_WINDOW_MS => {}
        Some(_) => {
            return reject(
                StatusCode::FORBIDDEN,
                &connection,
                Some("timestamp"),
                format!(
                    "timestamp {ts} is more than 10 minutes from this server's clock (a replay, or a wrong clock)"
                ),
            );
        }
        None => {
            return reject(
                StatusCode::BAD_REQUEST,
                &connection,
                Some("timestamp"),
                format!("timestamp `{ts}` is not a number of seconds or milliseconds"),
            );
        }
    }
    let event = match crypto.open_event(&query, &body) {
        Ok(ev) => ev,
        Err(e @ (CryptoError::SignatureMismatch | CryptoError::OwnerKeyMismatch { .. })) => {
            return reject(
                StatusCode::FORBIDDEN,
                &connection,
                Some("signature"),
                e.to_string(),
            );
        }
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                &connection,
                Some("encrypt"),
                e.to_string(),
            );
        }
    };
    if event.is_check_url() {
        info!(connection, "DingTalk callback URL verified");
        return Json(crypto.success_reply()).into_response();
    }
    // Events without an eventId (older formats) are keyed by their content, so a re-push of
    // the same event still collapses to one.
    let event_id = event.event_id.clone().unwrap_or_else(|| {
        let digest = Sha256::digest(event.plaintext.as_bytes());
        format!("sha256:{}", hex::encode(digest))
    });
    let stored = engine::jobs::inbox::store_event(
        state.store.as_ref(),
        &connection,
        &event_id,
        &event.event_type,
        event.payload.clone(),
        now,
    );
    match stored.await {
        Ok(new) => {
            metrics::counter!("dingbridge_callbacks_total", "connection" => connection.clone(), "new" => if new { "true" } else { "false" })
                .increment(1);
            info!(connection, event_id, event_type = %event.event_type, new, "DingTalk event stored");
            Json(crypto.success_reply()).into_response()
        }
        Err(e) => {
            // Not stored: answer 503 so DingTalk retries (+10 s, +30 s) or parks it for the
            // failed-callback list.
            warn!(connection, error = %e, "DingTalk event could not be stored");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": format!("the event could not be stored: {e}") })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp_ms;

    #[test]
    fn timestamps_in_seconds_or_milliseconds() {
        assert_eq!(timestamp_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(timestamp_ms("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(timestamp_ms("昨天"), None);
    }
}
