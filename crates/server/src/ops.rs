//! Operational endpoints: liveness, readiness, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready to work: the store answers and its migrations are exactly the embedded ones.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(e) = state.store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "store": "unreachable", "error": e.to_string()})),
        )
            .into_response();
    }
    match state.store.migration_status().await {
        Ok(m) if m.is_current() => (
            StatusCode::OK,
            Json(json!({"ready": true, "store": state.store.backend(), "migrations": m.applied})),
        )
            .into_response(),
        Ok(m) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "store": state.store.backend(),
                "error": "migrations are not current; run `dingbridge migrate`",
                "embedded": m.embedded,
                "applied": m.applied,
            })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Prometheus text. Queue depths are read from the store at scrape time, so they are exact
/// for the whole cluster, not just this node.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "no metrics recorder in this process").into_response();
    };
    match state.store.queue_depths().await {
        Ok(depths) => {
            // Every status gets a value, so a drained state reads 0 instead of a stale number.
            let queues: std::collections::BTreeSet<&str> =
                depths.iter().map(|d| d.queue.as_str()).collect();
            for queue in queues {
                for status in store::JobStatus::ALL {
                    let count = depths
                        .iter()
                        .find(|d| d.queue == queue && d.status == status)
                        .map_or(0, |d| d.count);
                    metrics::gauge!("dingbridge_queue_depth", "queue" => queue.to_owned(), "status" => status.as_str())
                        .set(count as f64);
                }
            }
            metrics::gauge!("dingbridge_store_up").set(1.0);
        }
        Err(_) => metrics::gauge!("dingbridge_store_up").set(0.0),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
