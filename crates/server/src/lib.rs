//! The HTTP face of a node (axum): `/healthz`, `/readyz`, `/metrics`, DingTalk's HTTP
//! callbacks (`/callbacks/dingtalk/{connection}`), the Stream consumer, and the REST API of
//! in-house systems (`/api/v1`, with its OpenAPI document); SSO/OIDC and the console come with
//! later issues. Handlers translate between HTTP and the engine/store; no business logic lives
//! here.

pub mod api;
pub mod callbacks;
mod ops;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Renders the process's metrics; `None` when no recorder is installed (tests).
    pub metrics: Option<PrometheusHandle>,
    /// Callback crypto per DingTalk connection that has callback keys.
    pub dingtalk_callbacks: callbacks::DingTalkCallbacks,
    /// The approval flows the REST API starts and cancels approvals through.
    pub approvals: engine::approvals::recipe::ApprovalFlows,
}

/// All routes of a node.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route(
            "/callbacks/dingtalk/{connection}",
            post(callbacks::dingtalk),
        )
        .nest("/api/v1", api::routes())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve until `shutdown` is cancelled; requests in flight are finished first.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Bind `addr`, reporting a clear error naming it.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
