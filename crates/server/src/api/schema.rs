//! The bodies of `/api/v1`, as the OpenAPI document describes them (`ToSchema`).
//!
//! Responses are built from these types, so what is documented is what is sent. Requests are
//! parsed by the engine's own types (`StartRequest`); [`StartApproval`] mirrors it for the
//! document only (the engine does not depend on utoipa), and a test checks that both accept the
//! same examples.

use dingtalk::approvals::ProcessInstance;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use store::{Approval, ApprovalStatus, Delivery, Millis, WebhookMessage, WebhookMessageStatus};
use utoipa::{IntoParams, ToSchema};

/// RFC 3339 in UTC with milliseconds, e.g. `2025-03-01T08:30:00.000Z`.
pub fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

// ---- requests ---------------------------------------------------------------------------

/// Start an approval (发起审批). The form is plain JSON keyed by the template's control labels
/// (or component ids, or bizAlias); the hub converts it to DingTalk's form values.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "template": "费用报销",
    "originator": {"job_number": "E0007"},
    "business_key": "BX-2025-000123",
    "form": {
        "报销事由": "上海客户拜访（华东区）",
        "报销类别": "差旅报销",
        "费用明细": [
            {"费用类型": "差旅费", "金额（元）": 1280.5, "发生日期": "2025-03-01", "费用说明": "上海出差高铁票"},
            {"费用类型": "招待费", "金额（元）": 300}
        ],
        "报销总金额（元）": 1580.5
    }
}))]
pub struct StartApproval {
    /// The `approval_bridge` flow; needed only when this node has several.
    #[serde(default)]
    pub flow: Option<String>,
    /// A template alias of the flow (e.g. `费用报销`) or its process code.
    pub template: String,
    pub originator: OriginatorDoc,
    /// The originator's department; their first department when absent.
    #[serde(default)]
    pub dept_id: Option<i64>,
    /// Your own reference, echoed in every webhook and filterable in listings.
    #[serde(default)]
    pub business_key: Option<String>,
    /// Form values by control label, component id or bizAlias; detail tables as arrays of row
    /// objects.
    #[schema(value_type = Object)]
    pub form: Map<String, Value>,
    /// Approval steps in order; the template's own chain when empty.
    #[serde(default)]
    pub approvers: Vec<ApproverStepDoc>,
    /// DingTalk userids to copy (抄送), at most 50.
    #[serde(default)]
    pub cc: Vec<String>,
    /// When the cc list is told.
    #[serde(default)]
    pub cc_position: Option<CcPosition>,
}

/// A DingTalk userid, or an in-house identifier the identity table (filled by the org sync)
/// resolves.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OriginatorDoc {
    /// A DingTalk userid.
    UserId(String),
    By(OriginatorKeyDoc),
}

/// Exactly one key.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OriginatorKeyDoc {
    Userid(String),
    JobNumber(String),
    Mobile(String),
    EhrNumber(String),
    KingdeeUser(String),
}

/// One approval step.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproverStepDoc {
    /// `and` (会签, all agree), `or` (或签, the first agreement wins) or `none` (one person).
    #[serde(rename = "type", default)]
    pub kind: Option<StepType>,
    /// DingTalk userids: exactly one for `none`, two or more for `and` / `or`.
    pub users: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepType {
    And,
    Or,
    None,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CcPosition {
    Start,
    Finish,
    StartFinish,
}

/// Cancel (撤销) a running approval. Both fields are optional; the body may be empty.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"operator": "manager4521", "remark": "报销单已在 ERP 中作废"}))]
pub struct CancelApproval {
    /// The DingTalk userid that cancels; the originator when absent (DingTalk lets only the
    /// originator cancel).
    #[serde(default)]
    pub operator: Option<String>,
    /// Shown in the approval's records.
    #[serde(default)]
    pub remark: Option<String>,
}

/// Filters and paging of `GET /api/v1/approvals` (documentation of the query string).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// `pending`, `running`, `completed`, `terminated` or `failed`.
    status: Option<Status>,
    /// `agree` or `refuse` (completed approvals only).
    result: Option<String>,
    /// An `approval_bridge` flow.
    flow: Option<String>,
    /// A DingTalk process code.
    process_code: Option<String>,
    /// A template alias or process code (same as `process_code`, aliases resolved).
    template: Option<String>,
    business_key: Option<String>,
    /// 1–500, default 50.
    limit: Option<u32>,
    /// Continue after this approval id (the previous page's `next_before`).
    before: Option<String>,
}

// ---- responses --------------------------------------------------------------------------

/// Where an approval is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Stored; DingTalk has not (yet) confirmed the instance.
    Pending,
    Running,
    Completed,
    Terminated,
    /// DingTalk refused to create it.
    Failed,
}

impl From<ApprovalStatus> for Status {
    fn from(s: ApprovalStatus) -> Self {
        match s {
            ApprovalStatus::Pending => Status::Pending,
            ApprovalStatus::Running => Status::Running,
            ApprovalStatus::Completed => Status::Completed,
            ApprovalStatus::Terminated => Status::Terminated,
            ApprovalStatus::Failed => Status::Failed,
        }
    }
}

/// A started approval (201).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalCreated {
    /// The hub's id, e.g. `apv_0195…`.
    pub id: String,
    /// DingTalk's process instance id.
    pub instance_id: Option<String>,
    pub status: Status,
    pub flow: String,
    pub process_code: String,
    pub business_key: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Approval> for ApprovalCreated {
    fn from(a: &Approval) -> Self {
        ApprovalCreated {
            id: a.fields.id.clone(),
            instance_id: a.instance_id.clone(),
            status: a.status.into(),
            flow: a.fields.flow.clone(),
            process_code: a.fields.process_code.clone(),
            business_key: a.fields.business_key.clone(),
            created_at: time(a.fields.created_at),
        }
    }
}

/// One approval in a listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalSummary {
    pub id: String,
    pub flow: String,
    pub instance_id: Option<String>,
    pub status: Status,
    /// `agree` / `refuse` once completed.
    pub result: Option<String>,
    pub business_key: Option<String>,
    pub process_code: String,
    /// The originator's DingTalk userid.
    pub originator: String,
    /// DingTalk's title, once the instance was read.
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Approval> for ApprovalSummary {
    fn from(a: &Approval) -> Self {
        ApprovalSummary {
            id: a.fields.id.clone(),
            flow: a.fields.flow.clone(),
            instance_id: a.instance_id.clone(),
            status: a.status.into(),
            result: a.result.clone(),
            business_key: a.fields.business_key.clone(),
            process_code: a.fields.process_code.clone(),
            originator: a.fields.originator.clone(),
            title: instance_of(a).map(|i| i.title).filter(|t| !t.is_empty()),
            created_at: time(a.fields.created_at),
            updated_at: time(a.updated_at),
        }
    }
}

/// The instance last read from DingTalk, if the snapshot is one.
fn instance_of(a: &Approval) -> Option<ProcessInstance> {
    let snapshot = a.snapshot.as_ref()?;
    if snapshot.get("error").is_some() {
        return None;
    }
    serde_json::from_value(snapshot.clone()).ok()
}

/// One approval with its form and what DingTalk last reported.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalView {
    pub id: String,
    pub flow: String,
    pub instance_id: Option<String>,
    pub status: Status,
    pub result: Option<String>,
    pub business_key: Option<String>,
    pub process_code: String,
    /// The template as the request named it.
    pub template: Option<String>,
    pub originator: String,
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The form as the request sent it (plain JSON).
    #[schema(value_type = Object)]
    pub form: Value,
    /// The approval tasks, as of the last read of the instance (empty before it).
    pub tasks: Vec<TaskView>,
    /// DingTalk's operation records (as DingTalk gives them), as of the last read.
    #[schema(value_type = Vec<Object>)]
    pub operation_records: Vec<Value>,
    /// Why DingTalk refused to create it (status `failed`).
    pub error: Option<FailureView>,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        let instance = instance_of(a);
        let request = &a.fields.request;
        let error = a
            .snapshot
            .as_ref()
            .and_then(|s| s.get("error"))
            .map(|e| FailureView {
                message: e.as_str().map_or_else(|| e.to_string(), str::to_owned),
                code: a
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.get("code"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        let (title, tasks, operation_records) = match instance {
            Some(i) => (
                Some(i.title).filter(|t| !t.is_empty()),
                i.tasks.iter().map(TaskView::from).collect(),
                i.operation_records,
            ),
            None => (None, Vec::new(), Vec::new()),
        };
        ApprovalView {
            id: a.fields.id.clone(),
            flow: a.fields.flow.clone(),
            instance_id: a.instance_id.clone(),
            status: a.status.into(),
            result: a.result.clone(),
            business_key: a.fields.business_key.clone(),
            process_code: a.fields.process_code.clone(),
            template: request
                .get("template")
                .and_then(Value::as_str)
                .map(str::to_owned),
            originator: a.fields.originator.clone(),
            title,
            created_at: time(a.fields.created_at),
            updated_at: time(a.updated_at),
            form: request
                .get("form")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
            tasks,
            operation_records,
            error,
        }
    }
}

/// One approval task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub task_id: Option<i64>,
    /// The approver's DingTalk userid.
    pub userid: Option<String>,
    /// NEW, RUNNING, PAUSED, CANCELED, COMPLETED or TERMINATED.
    pub status: Option<String>,
    /// AGREE, REFUSE or REDIRECTED.
    pub result: Option<String>,
    pub activity_id: Option<String>,
    /// As DingTalk gives it.
    pub create_time: Option<String>,
    pub finish_time: Option<String>,
}

impl From<&dingtalk::approvals::Task> for TaskView {
    fn from(t: &dingtalk::approvals::Task) -> Self {
        TaskView {
            task_id: t.task_id.map(|t| t.0),
            userid: t.userid.as_ref().map(|u| u.0.clone()),
            status: t.task_status.clone(),
            result: t.task_result.clone(),
            activity_id: t.activity_id.clone(),
            create_time: t.create_time.clone(),
            finish_time: t.finish_time.clone(),
        }
    }
}

/// DingTalk's refusal to create an instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailureView {
    pub message: String,
    /// DingTalk's error code, when it gave one.
    pub code: Option<String>,
}

/// A page of approvals, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalList {
    pub items: Vec<ApprovalSummary>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Pending,
    Delivered,
    /// Attempts exhausted; holds later messages of the approval back until redelivered.
    Dead,
}

impl From<WebhookMessageStatus> for MessageStatus {
    fn from(s: WebhookMessageStatus) -> Self {
        match s {
            WebhookMessageStatus::Pending => MessageStatus::Pending,
            WebhookMessageStatus::Delivered => MessageStatus::Delivered,
            WebhookMessageStatus::Dead => MessageStatus::Dead,
        }
    }
}

/// One webhook message of an approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    /// The `webhook-id` header.
    pub message_id: String,
    /// The approval id.
    pub subject: String,
    /// 1, 2, 3 … in the order the messages are delivered.
    pub seq: i64,
    /// e.g. `approval.task.finished`.
    pub event_type: String,
    /// `connection:path`.
    pub endpoint: String,
    pub status: MessageStatus,
    pub attempts: i32,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The body that is (or was) posted.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<&WebhookMessage> for MessageView {
    fn from(m: &WebhookMessage) -> Self {
        MessageView {
            message_id: m.fields.message_id.clone(),
            subject: m.fields.subject.clone(),
            seq: m.seq,
            event_type: m.fields.event_type.clone(),
            endpoint: m.fields.endpoint.clone(),
            status: m.status.into(),
            attempts: m.attempts,
            created_at: time(m.fields.created_at),
            delivered_at: m.delivered_at.map(time),
            payload: m.fields.payload.clone(),
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    /// The receiver's HTTP status; `null` when it could not be reached.
    pub status_code: Option<i32>,
    /// `delivered`, `http_<status>` or `transport_error`.
    pub outcome: String,
    /// The receiver's answer (cut to 2,000 characters) or the transport error.
    pub response: Option<String>,
    pub created_at: String,
    pub duration_ms: i64,
}

impl From<&Delivery> for AttemptView {
    fn from(d: &Delivery) -> Self {
        AttemptView {
            attempt: d.entry.attempt,
            status_code: d.entry.status_code,
            outcome: d.entry.outcome.clone(),
            response: d.entry.response.clone(),
            created_at: time(d.entry.created_at),
            duration_ms: d.entry.duration_ms,
        }
    }
}

/// A message with its attempts, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageDeliveries {
    #[serde(flatten)]
    pub message: MessageView,
    pub deliveries: Vec<AttemptView>,
}

/// The webhook messages of one approval, in delivery order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalDeliveries {
    pub approval_id: String,
    pub items: Vec<MessageDeliveries>,
}

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {
    "code": "invalid_fields",
    "message": "1 field(s) cannot be used: form.报销类别: …",
    "message_zh": "有 1 个字段无法使用：form.报销类别：…",
    "fields": [{"field": "form.报销类别", "reason": "…", "reason_zh": "…"}]
}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request`, `invalid_fields`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `idempotency_in_progress`, `idempotency_key_reused`, `dingtalk_error`,
    /// `dingtalk_unavailable`, `store_unavailable`, `internal`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The same in Chinese.
    pub message_zh: String,
    /// Every field that is wrong (`invalid_fields`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
    /// The approval concerned (e.g. the one DingTalk refused to create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

/// One wrong field: the request's key (`form.费用明细[0].金额（元）`) or query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub reason: String,
    pub reason_zh: String,
}
