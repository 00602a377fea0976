//! `/api/v1`: the REST API through which in-house systems use the approval bridge.
//!
//! Every route but `openapi.json` needs an API key (`Authorization: Bearer dbk_…` or
//! `X-API-Key`) holding the route's scope ([`auth`]). POST routes honour `Idempotency-Key`
//! ([`idempotency`]). Errors are one JSON shape ([`error::ApiError`]) in English and Chinese.
//! Handlers translate HTTP to the engine and the store and back; the rules live in the engine.
//!
//! Reads are not restricted to what a key started: any key with `approvals:read` sees every
//! approval of the hub (keys belong to trusted in-house systems, not to end users).

pub mod approvals;
pub mod auth;
pub mod deliveries;
pub mod error;
pub mod idempotency;
pub mod openapi;
pub mod schema;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use error::ApiError;

/// The routes below `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/approvals", post(approvals::start).get(approvals::list))
        .route("/approvals/{id}", get(approvals::get_one))
        .route("/approvals/{id}/cancel", post(approvals::cancel))
        .route("/approvals/{id}/deliveries", get(deliveries::of_approval))
        .route(
            "/deliveries/{message_id}/redeliver",
            post(deliveries::redeliver),
        )
        .route("/openapi.json", get(openapi::document))
        .fallback(unknown_route)
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        format!(
            "no API route `{}`; the routes are listed in /api/v1/openapi.json",
            uri.path()
        ),
        format!("没有接口 `{}`；全部接口见 /api/v1/openapi.json", uri.path()),
    )
}

/// A JSON answer: what a handler produces and what [`idempotency`] stores and replays
/// (status and body; headers are rebuilt, not stored).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    pub fn json(status: StatusCode, body: &impl Serialize) -> Answer {
        match serde_json::to_value(body) {
            Ok(body) => Answer {
                status,
                body,
                headers: HeaderMap::new(),
            },
            Err(e) => ApiError::internal(&format!("the answer could not be encoded: {e}")).into(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Answer {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// `Location: {prefix}{body.id}` on a 201 that has none (a replayed one).
    pub fn locate(self, prefix: &str) -> Answer {
        if self.status != StatusCode::CREATED || self.headers.contains_key(header::LOCATION) {
            return self;
        }
        match self.body.get("id").and_then(Value::as_str) {
            Some(id) => {
                let location = format!("{prefix}{id}");
                self.header(header::LOCATION, &location)
            }
            None => self,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body)).into_response();
        res.headers_mut().extend(self.headers);
        res
    }
}
