//! `/api/v1/approvals`: start, read, list and cancel approvals through the engine's
//! [`ApprovalBridge`].

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use engine::approvals::bridge::{ApprovalBridge, CancelError, StartError, StartRequest};
use engine::approvals::recipe::ApprovalFlows;
use serde_json::Value;
use store::{Approval, ApprovalFilter, ApprovalStatus};

use super::error::ApiError;
use super::schema::{
    ApprovalCreated, ApprovalList, ApprovalSummary, ApprovalView, CancelApproval, ErrorBody,
    ListParams, StartApproval,
};
use super::{Answer, auth, idempotency};
use crate::AppState;

/// Where a created approval can be read.
pub const LOCATION_PREFIX: &str = "/api/v1/approvals/";

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Start a DingTalk approval (发起审批).
///
/// The form is checked against the template's schema first; every wrong field is listed in
/// one 422. The approval is stored before DingTalk is asked, so it is never unknown to the
/// hub. Its outcome arrives later as webhook messages (and in `GET /api/v1/approvals/{id}`).
#[utoipa::path(
    post,
    path = "/api/v1/approvals",
    tag = "approvals",
    operation_id = "start_approval",
    request_body = StartApproval,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 characters; the same key with the same body within 24 h replays the first answer (`Idempotent-Replayed: true`) instead of starting a second approval"),
    ),
    responses(
        (status = 201, description = "Started (or a replay of that answer)", body = ApprovalCreated,
            headers(
                ("Location" = String, description = "/api/v1/approvals/{id}"),
                ("Idempotent-Replayed" = String, description = "`true` on a replayed answer"),
            )),
        (status = 400, description = "The body is not JSON of this shape, or the Idempotency-Key header is unusable", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `approvals:write`", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = ErrorBody),
        (status = 422, description = "Fields that cannot be used (`invalid_fields`, each named, e.g. `form.报销类别`, `flow`), or an Idempotency-Key reused with another body (`idempotency_key_reused`)", body = ErrorBody),
        (status = 502, description = "DingTalk refused to create the instance; `approval_id` names the approval stored as failed", body = ErrorBody),
        (status = 503, description = "DingTalk or the hub's database is unavailable; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds"))),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    let key = auth::require(&state, &headers, auth::APPROVALS_WRITE).await?;
    let idem = idempotency::key_of(&headers)?;
    let flows = state.approvals.clone();
    let raw = body.clone();
    let key_id = key.id;
    let answer = idempotency::once(
        state.store,
        key.id,
        idem,
        "POST /api/v1/approvals",
        &body,
        async move {
            match start_approval(&flows, key_id, &raw).await {
                Ok(a) => a,
                Err(e) => e.into(),
            }
        },
    )
    .await;
    Ok(answer.locate(LOCATION_PREFIX))
}

async fn start_approval(
    flows: &ApprovalFlows,
    key_id: i64,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let (flow, request) = parse_start(body)?;
    let bridge = pick_bridge(flows, flow.as_deref())?;
    match bridge.start(Some(key_id), &request).await {
        Ok(approval) => Ok(Answer::json(
            StatusCode::CREATED,
            &ApprovalCreated::from(&approval),
        )),
        Err(StartError::Invalid(errors)) => Err(ApiError::from_field_errors(errors)),
        Err(StartError::DingTalk {
            retryable,
            retry_after,
            message,
            approval,
        }) => {
            let id = approval.map(|a| a.fields.id);
            Err(if retryable {
                ApiError::dingtalk_retryable(&message, retry_after)
            } else {
                ApiError::dingtalk_refused(&message)
            }
            .with_approval(id))
        }
        Err(StartError::Store(e)) => Err(ApiError::store(&e)),
    }
}

/// The body: a [`StartRequest`] plus an optional `flow`.
fn parse_start(body: &[u8]) -> Result<(Option<String>, StartRequest), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            format!("the body is not JSON: {e}"),
            format!("请求体不是合法的 JSON：{e}"),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"template\": …, \"originator\": …, \"form\": {…}}",
            "请求体必须是 JSON 对象：{\"template\": …, \"originator\": …, \"form\": {…}}",
        ));
    };
    let flow = match object.remove("flow") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`flow` must be a string: the name of an approval_bridge flow",
                "`flow` 必须是字符串：approval_bridge 流程的名称",
            ));
        }
    };
    let request: StartRequest = serde_json::from_value(Value::Object(object)).map_err(|e| {
        ApiError::bad_request(
            format!("the body does not have the shape of a start request: {e}; see StartApproval in /api/v1/openapi.json"),
            format!("请求体结构不正确：{e}；请参考 /api/v1/openapi.json 中的 StartApproval"),
        )
    })?;
    Ok((flow, request))
}

fn flow_names(flows: &ApprovalFlows) -> Vec<String> {
    let mut names: Vec<String> = flows.bridges.keys().cloned().collect();
    names.sort();
    names
}

/// The bridge a request means; 422 naming `flow` when that is not clear.
fn pick_bridge<'a>(
    flows: &'a ApprovalFlows,
    flow: Option<&str>,
) -> Result<&'a ApprovalBridge, ApiError> {
    if let Some(bridge) = flows.bridge(flow) {
        return Ok(bridge);
    }
    let names = flow_names(flows);
    Err(match (flow, names.len()) {
        (_, 0) => ApiError::invalid_field(
            "flow",
            "this node has no enabled approval_bridge flow; add one to dingbridge.toml ([flows.<name>] recipe = \"approval_bridge\") and restart",
            "本节点没有启用的 approval_bridge 流程；请在 dingbridge.toml 中添加（[flows.<名称>] recipe = \"approval_bridge\"）并重启",
        ),
        (Some(f), _) => ApiError::invalid_field(
            "flow",
            format!(
                "`{f}` is not an enabled approval_bridge flow; use one of: {}",
                names.join(", ")
            ),
            format!(
                "`{f}` 不是已启用的 approval_bridge 流程；可用：{}",
                names.join("、")
            ),
        ),
        (None, _) => ApiError::invalid_field(
            "flow",
            format!(
                "this node has several approval_bridge flows; name one in `flow`: {}",
                names.join(", ")
            ),
            format!(
                "本节点有多个 approval_bridge 流程；请在 `flow` 中指定：{}",
                names.join("、")
            ),
        ),
    })
}

async fn load(state: &AppState, id: &str) -> Result<Approval, ApiError> {
    state
        .store
        .get_approval(id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(|| {
            ApiError::not_found(
                format!("no approval `{id}`; ids look like apv_… and are answered by POST /api/v1/approvals"),
                format!("没有审批 `{id}`；审批 id 形如 apv_…，由 POST /api/v1/approvals 返回"),
            )
        })
}

/// One approval (查询审批).
///
/// Any key with `approvals:read` can read every approval, not only those it started. `tasks`,
/// `operation_records` and `title` are DingTalk's as of the hub's last read of the instance
/// (after every approval event, and by the backfill poll).
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}",
    tag = "approvals",
    operation_id = "get_approval",
    params(("id" = String, Path, description = "The hub's approval id, `apv_…`")),
    responses(
        (status = 200, description = "The approval", body = ApprovalView),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `approvals:read`", body = ErrorBody),
        (status = 404, description = "No such approval", body = ErrorBody),
        (status = 503, description = "The hub's database is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Answer, ApiError> {
    auth::require(&state, &headers, auth::APPROVALS_READ).await?;
    let approval = load(&state, &id).await?;
    Ok(Answer::json(StatusCode::OK, &ApprovalView::from(&approval)))
}

/// Approvals, newest first (审批列表).
///
/// Every key with `approvals:read` sees every approval. Page with `before` = the previous
/// page's `next_before`.
#[utoipa::path(
    get,
    path = "/api/v1/approvals",
    tag = "approvals",
    operation_id = "list_approvals",
    params(ListParams),
    responses(
        (status = 200, description = "A page of approvals", body = ApprovalList),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `approvals:read`", body = ErrorBody),
        (status = 422, description = "A query parameter that cannot be used, named in `fields`", body = ErrorBody),
        (status = 503, description = "The hub's database is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Answer, ApiError> {
    auth::require(&state, &headers, auth::APPROVALS_READ).await?;
    let (mut filter, limit) = parse_list(query.as_deref().unwrap_or(""), &state.approvals)?;
    if let Some(before) = &filter.before
        && state
            .store
            .get_approval(before)
            .await
            .map_err(|e| ApiError::store(&e))?
            .is_none()
    {
        return Err(ApiError::invalid_field(
            "before",
            format!("no approval `{before}`; pass the `next_before` of the previous page"),
            format!("没有审批 `{before}`；请传入上一页返回的 `next_before`"),
        ));
    }
    // One more than asked tells whether another page follows.
    filter.limit = i64::from(limit) + 1;
    let mut page = state
        .store
        .list_approvals(&filter)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next_before = more
        .then(|| page.last().map(|a| a.fields.id.clone()))
        .flatten();
    Ok(Answer::json(
        StatusCode::OK,
        &ApprovalList {
            items: page.iter().map(ApprovalSummary::from).collect(),
            next_before,
        },
    ))
}

/// The filter and page size a query string asks for; 422 naming the first bad parameter.
fn parse_list(query: &str, flows: &ApprovalFlows) -> Result<(ApprovalFilter, u32), ApiError> {
    const KNOWN: &[&str] = &[
        "status",
        "result",
        "flow",
        "process_code",
        "template",
        "business_key",
        "limit",
        "before",
    ];
    let mut filter = ApprovalFilter::default();
    let mut limit = DEFAULT_LIMIT;
    let mut seen: Vec<String> = Vec::new();
    let mut template: Option<String> = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.trim().to_owned());
        if !KNOWN.contains(&name.as_str()) {
            return Err(ApiError::invalid_field(
                &name,
                format!("unknown query parameter; known: {}", KNOWN.join(", ")),
                format!("未知的查询参数；可用：{}", KNOWN.join("、")),
            ));
        }
        if seen.contains(&name) {
            return Err(ApiError::invalid_field(
                &name,
                "given twice; give it once",
                "重复出现；只能给一次",
            ));
        }
        seen.push(name.clone());
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "status" => {
                filter.status = Some(ApprovalStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid_field(
                        "status",
                        format!("`{value}` is not a status; use pending, running, completed, terminated or failed"),
                        format!("`{value}` 不是有效状态；可用 pending、running、completed、terminated、failed"),
                    )
                })?);
            }
            "result" => {
                let r = value.to_ascii_lowercase();
                if r != "agree" && r != "refuse" {
                    return Err(ApiError::invalid_field(
                        "result",
                        format!("`{value}` is not a result; use agree or refuse"),
                        format!("`{value}` 不是有效的审批结果；可用 agree（同意）、refuse（拒绝）"),
                    ));
                }
                filter.result = Some(r);
            }
            "flow" => filter.flow = Some(value),
            "process_code" => filter.process_code = Some(value),
            "template" => template = Some(value),
            "business_key" => filter.business_key = Some(value),
            "before" => filter.before = Some(value),
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            "limit",
                            format!("`{value}` is not a page size; use 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
                            format!("`{value}` 不是有效的分页大小；可用 1 到 {MAX_LIMIT}（默认 {DEFAULT_LIMIT}）"),
                        )
                    })?;
            }
            _ => {}
        }
    }
    if let Some(t) = template {
        let code = flows
            .bridges
            .values()
            .find_map(|b| b.options.process_code(&t))
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "template",
                    format!("`{t}` is not a template alias or process code of any approval_bridge flow; filter by process_code for others"),
                    format!("`{t}` 不是任何 approval_bridge 流程的模板别名或 process code；其他模板请用 process_code 过滤"),
                )
            })?;
        if filter.process_code.as_ref().is_some_and(|p| *p != code) {
            return Err(ApiError::invalid_field(
                "template",
                format!(
                    "`{t}` is process code {code}, which contradicts process_code; give one of the two"
                ),
                format!(
                    "`{t}` 对应 process code {code}，与 process_code 参数不一致；请只给其中一个"
                ),
            ));
        }
        filter.process_code = Some(code);
    }
    Ok((filter, limit))
}

/// Cancel (撤销) a running approval.
///
/// DingTalk terminates the instance at once; the approval's status follows when the hub reads
/// the instance again (its event, a moment later), and the `approval.terminated` webhook
/// message with it. 202 answers the approval as stored at that moment.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/cancel",
    tag = "approvals",
    operation_id = "cancel_approval",
    params(
        ("id" = String, Path, description = "The hub's approval id, `apv_…`"),
        ("Idempotency-Key" = Option<String>, Header, description = "As for starting: the same key with the same body within 24 h replays the first answer"),
    ),
    request_body(content = Option<CancelApproval>, description = "Optional; an empty body cancels as the originator with no remark"),
    responses(
        (status = 202, description = "DingTalk accepted the cancellation", body = ApprovalView,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 400, description = "The body is not JSON of this shape, or the Idempotency-Key header is unusable", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks `approvals:write`", body = ErrorBody),
        (status = 404, description = "No such approval", body = ErrorBody),
        (status = 409, description = "The approval was never started or has finished (`conflict`), or a request with this Idempotency-Key is still running", body = ErrorBody),
        (status = 422, description = "An Idempotency-Key reused with another body", body = ErrorBody),
        (status = 502, description = "DingTalk refused (e.g. the operator is not the originator)", body = ErrorBody),
        (status = 503, description = "DingTalk or the hub's database is unavailable; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds"))),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Answer, ApiError> {
    let key = auth::require(&state, &headers, auth::APPROVALS_WRITE).await?;
    let idem = idempotency::key_of(&headers)?;
    let route = format!("POST {LOCATION_PREFIX}{id}/cancel");
    let raw = body.clone();
    let work_state = state.clone();
    Ok(
        idempotency::once(state.store, key.id, idem, &route, &body, async move {
            match cancel_approval(&work_state, &id, &raw).await {
                Ok(a) => a,
                Err(e) => e.into(),
            }
        })
        .await,
    )
}

async fn cancel_approval(state: &AppState, id: &str, body: &[u8]) -> Result<Answer, ApiError> {
    // An empty body, or `null`, cancels as the originator without a remark.
    let input: CancelApproval = if body.iter().all(u8::is_ascii_whitespace) {
        CancelApproval::default()
    } else {
        serde_json::from_slice::<Option<CancelApproval>>(body)
            .map_err(|e| {
                ApiError::bad_request(
                    format!("the body must be empty or {{\"operator\": \"<userid>\", \"remark\": \"…\"}}: {e}"),
                    format!("请求体须为空或 {{\"operator\": \"<userid>\", \"remark\": \"…\"}}：{e}"),
                )
            })?
            .unwrap_or_default()
    };
    let approval = load(state, id).await?;
    let flow = &approval.fields.flow;
    let Some(bridge) = state.approvals.bridges.get(flow) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "the approval belongs to flow `{flow}`, which is not an enabled approval_bridge flow on this node; enable it in dingbridge.toml"
            ),
            format!(
                "该审批属于流程 `{flow}`，本节点未启用该 approval_bridge 流程；请在 dingbridge.toml 中启用"
            ),
        ));
    };
    let remark = input.remark.as_deref().unwrap_or("");
    match bridge
        .cancel(&approval, input.operator.as_deref(), remark)
        .await
    {
        Ok(()) => {}
        Err(CancelError::NotStarted) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the approval has no DingTalk instance (DingTalk refused to create it), so there is nothing to cancel",
                "该审批没有钉钉审批实例（钉钉未能创建），无需撤销",
            ));
        }
        Err(CancelError::Finished(status)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "the approval is {} already; only running approvals can be cancelled",
                    status.as_str()
                ),
                format!(
                    "该审批已是 {} 状态；只有进行中的审批可以撤销",
                    status.as_str()
                ),
            ));
        }
        Err(CancelError::DingTalk {
            retryable: true,
            retry_after,
            message,
        }) => return Err(ApiError::dingtalk_retryable(&message, retry_after)),
        Err(CancelError::DingTalk {
            retryable: false,
            message,
            ..
        }) => return Err(ApiError::dingtalk_refused(&message).with_approval(Some(id.to_owned()))),
        Err(CancelError::Store(e)) => return Err(ApiError::store(&e)),
    }
    let approval = load(state, id).await?;
    Ok(
        Answer::json(StatusCode::ACCEPTED, &ApprovalView::from(&approval))
            .header(header::CONTENT_LOCATION, &format!("{LOCATION_PREFIX}{id}")),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::schema::StartApproval;

    /// The document's request schema and the engine's request accept the same bodies.
    #[test]
    fn the_documented_start_body_is_the_engines() {
        let bodies = [
            json!({"template": "费用报销", "originator": "manager4521", "form": {"报销事由": "出差"}}),
            json!({
                "flow": "expense_bridge",
                "template": "PROC-SBX-FYBX-7C1F3A9E-0001",
                "originator": {"job_number": "E0007"},
                "dept_id": 3,
                "business_key": "BX-2025-000123",
                "form": {"费用明细": [{"费用类型": "差旅费", "金额（元）": 1280.5}]},
                "approvers": [{"type": "or", "users": ["a", "b"]}, {"users": ["c"]}],
                "cc": ["d"],
                "cc_position": "finish"
            }),
            json!({"template": "t", "originator": {"mobile": "13800000000"}, "form": {}}),
        ];
        for body in bodies {
            let raw = serde_json::to_vec(&body).expect("json");
            assert!(parse_start(&raw).is_ok(), "engine refused {body}");
            assert!(
                serde_json::from_value::<StartApproval>(body.clone()).is_ok(),
                "document refused {body}"
            );
        }
        for body in [
            json!({"template": "t", "originator": "u", "form": {}, "extra": 1}),
            json!({"template": "t", "form": {}}),
            json!({"template": "t", "originator": {"email": "x@y"}, "form": {}}),
        ] {
            let raw = serde_json::to_vec(&body).expect("json");
            assert!(parse_start(&raw).is_err(), "engine took {body}");
            assert!(
                serde_json::from_value::<StartApproval>(body.clone()).is_err(),
                "document took {body}"
            );
        }
    }

    #[test]
    fn list_parameters_are_checked_one_by_one() {
        let flows = ApprovalFlows::default();
        let (f, limit) = parse_list(
            "status=running&result=AGREE&limit=20&business_key=BX-1",
            &flows,
        )
        .expect("valid");
        assert_eq!(f.status, Some(ApprovalStatus::Running));
        assert_eq!(f.result.as_deref(), Some("agree"));
        assert_eq!(f.business_key.as_deref(), Some("BX-1"));
        assert_eq!(limit, 20);
        assert_eq!(parse_list("", &flows).expect("empty").1, DEFAULT_LIMIT);
        for (query, field) in [
            ("status=进行中", "status"),
            ("result=maybe", "result"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=ten", "limit"),
            ("statu=running", "statu"),
            ("status=running&status=failed", "status"),
            ("template=费用报销", "template"),
        ] {
            let e = parse_list(query, &flows).expect_err(query);
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(e.fields[0].field, field, "{query}");
        }
    }
}
