//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of `/api/v1`, generated from the
//! handlers' `#[utoipa::path]` annotations and the types of [`super::schema`]. Public (no key):
//! it describes the API, it holds nothing of the hub's.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::schema;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dingbridge API",
        description = "The REST API of the dingbridge hub: in-house systems start and follow DingTalk approvals (审批接入) and manage the webhooks that report their outcome.\n\nAuthenticate with an API key (`Authorization: Bearer dbk_…` or `X-API-Key: dbk_…`) that holds the route's scope: `approvals:write`, `approvals:read` or `deliveries:write`. Any key with `approvals:read` reads every approval, not only those it started.\n\nErrors are `{\"error\": {\"code\", \"message\", \"message_zh\", \"fields\"?, \"approval_id\"?}}`. POST routes accept `Idempotency-Key`.",
    ),
    paths(
        super::approvals::start,
        super::approvals::list,
        super::approvals::get_one,
        super::approvals::cancel,
        super::deliveries::of_approval,
        super::deliveries::redeliver,
    ),
    components(schemas(
        schema::StartApproval,
        schema::OriginatorDoc,
        schema::OriginatorKeyDoc,
        schema::ApproverStepDoc,
        schema::StepType,
        schema::CcPosition,
        schema::CancelApproval,
        schema::Status,
        schema::ApprovalCreated,
        schema::ApprovalSummary,
        schema::ApprovalView,
        schema::TaskView,
        schema::FailureView,
        schema::ApprovalList,
        schema::MessageStatus,
        schema::MessageView,
        schema::AttemptView,
        schema::MessageDeliveries,
        schema::ApprovalDeliveries,
        schema::ErrorBody,
        schema::ErrorDetail,
        schema::FieldProblem,
    )),
    modifiers(&Security),
    tags(
        (name = "approvals", description = "Start, read, list and cancel DingTalk approvals (审批)"),
        (name = "deliveries", description = "The webhook messages that report an approval's progress (推送)"),
    ),
)]
pub struct ApiDoc;

/// The two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dbk_<prefix>_<secret>")
                    .description(Some(
                        "An API key (`dingbridge keys create <name> --scope …`) as a bearer token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same API key in its own header",
            ))),
        );
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The OpenAPI 3.1 document of `/api/v1`.
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}
