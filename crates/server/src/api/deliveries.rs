//! The webhook messages of an approval and their delivery attempts, and redelivery.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use engine::approvals::outbox::{self, RedeliverError};
use store::now_ms;

use super::error::ApiError;
use super::schema::{ApprovalDeliveries, AttemptView, ErrorBody, MessageDeliveries, MessageView};
use super::{Answer, auth, idempotency};
use crate::AppState;

/// The webhook messages of an approval (推送记录).
///
/// In delivery order, each with its status, attempts and every attempt's answer.
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}/deliveries",
    tag = "deliveries",
    operation_id = "approval_deliveries",
    params(("id" = String, Path, description = "The hub's approval id, `apv_…`")),
    responses(
        (status = 200, description = "The approval's messages", body = ApprovalDeliveries),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `approvals:read`", body = ErrorBody),
        (status = 404, description = "No such approval", body = ErrorBody),
        (status = 503, description = "The hub's database is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn of_approval(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Answer, ApiError> {
    auth::require(&state, &headers, auth::APPROVALS_READ).await?;
    let store = state.store.as_ref();
    let found = store
        .get_approval(&id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    if found.is_none() {
        return Err(ApiError::not_found(
            format!("no approval `{id}`"),
            format!("没有审批 `{id}`"),
        ));
    }
    let messages = store
        .list_webhook_messages(&id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let mut items = Vec::with_capacity(messages.len());
    for m in &messages {
        let deliveries = store
            .list_message_deliveries(&m.fields.message_id)
            .await
            .map_err(|e| ApiError::store(&e))?
            .iter()
            .map(AttemptView::from)
            .collect();
        items.push(MessageDeliveries {
            message: MessageView::from(m),
            deliveries,
        });
    }
    Ok(Answer::json(
        StatusCode::OK,
        &ApprovalDeliveries {
            approval_id: id,
            items,
        },
    ))
}

/// Deliver a webhook message again (重新推送).
///
/// The message becomes pending and is delivered again on its flow's retry schedule; a dead
/// message that was holding the approval's later messages back releases them once delivered.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{message_id}/redeliver",
    tag = "deliveries",
    operation_id = "redeliver",
    params(
        ("message_id" = String, Path, description = "The message's id (its `webhook-id` header)"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key within 24 h replays the first answer"),
    ),
    responses(
        (status = 202, description = "Queued for delivery", body = MessageView,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 400, description = "The Idempotency-Key header is unusable", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `deliveries:write`", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still running, or an earlier message of the approval is not delivered yet (`out_of_order`)", body = ErrorBody),
        (status = 422, description = "An Idempotency-Key reused with another request", body = ErrorBody),
        (status = 503, description = "The hub's database is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn redeliver(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
    body: Bytes,
) -> Result<Answer, ApiError> {
    let key = auth::require(&state, &headers, auth::DELIVERIES_WRITE).await?;
    let idem = idempotency::key_of(&headers)?;
    let route = format!("POST /api/v1/deliveries/{message_id}/redeliver");
    let store = state.store.clone();
    Ok(
        idempotency::once(state.store, key.id, idem, &route, &body, async move {
            match redeliver_message(store.as_ref(), &message_id).await {
                Ok(a) => a,
                Err(e) => e.into(),
            }
        })
        .await,
    )
}

async fn redeliver_message(store: &dyn store::Store, message_id: &str) -> Result<Answer, ApiError> {
    let not_found = || {
        ApiError::not_found(
            format!(
                "no webhook message `{message_id}`; GET /api/v1/approvals/{{id}}/deliveries lists an approval's messages"
            ),
            format!(
                "没有推送消息 `{message_id}`；可通过 GET /api/v1/approvals/{{id}}/deliveries 查看审批的推送消息"
            ),
        )
    };
    match outbox::redeliver(store, message_id, "api", now_ms()).await {
        Ok(r) => Ok(Answer::json(
            StatusCode::ACCEPTED,
            &MessageView::from(&r.message),
        )),
        Err(RedeliverError::NotFound(_)) => Err(not_found()),
        Err(RedeliverError::Behind { earlier, status }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "out_of_order",
            format!(
                "message `{earlier}` of the same approval comes first and is {}; {}",
                status.as_str(),
                if status == store::WebhookMessageStatus::Dead {
                    "redeliver that one first"
                } else {
                    "it is being delivered; this one follows it"
                }
            ),
            format!(
                "同一审批的消息 `{earlier}` 在前且状态为 {}；{}",
                status.as_str(),
                if status == store::WebhookMessageStatus::Dead {
                    "请先重新推送它"
                } else {
                    "它正在推送，本条随后送达"
                }
            ),
        )),
        Err(RedeliverError::Store(e)) => Err(ApiError::store(&e)),
    }
}
