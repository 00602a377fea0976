//! Approvals (OA 审批), protocol §3: the oapi family (`/topapi/processinstance/*`, DOC
//! oa-approval-initiates-approval-instances, get-details-single-approval-instance,
//! operation-to-retrieve-a-list-of) and the v1.0 workflow family (`/v1.0/workflow/*`, DOC
//! create-an-approval-instance, obtains-the-details-of-a-single-approval-instance-pop,
//! obtain-the-form-schema; ALI-SDK `workflow_1_0` for execute/terminate/comments). Pacer group
//! `workflow`.
//!
//! Form values are strings on the wire; JSON-typed controls carry JSON *inside* the string
//! (multi-select `"[\"a\",\"b\"]"`, date range: name and value both JSON arrays, 明细/TableField:
//! an array of rows, each an array of `{name,value}`, attachments: an array of file objects).
//! [`FormField`] builds and [`FormValue::typed`] reads them.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{DingTalkClient, from_value};
use crate::error::{Error, Result};
use crate::ids::{AgentId, DeptId, ProcessCode, ProcessInstanceId, TaskId, UserId};

/// Pacer group: the approval APIs' rule (`[connections.*.limits]` names it).
pub const GROUP: &str = "workflow";

/// The pacer group of one approval API: DingTalk's quota is per app × API (protocol §7), so
/// reading instances and commenting on them are paced apart, each just under its own quota,
/// under the `workflow` rule. `api` is the path, with the method for v1.0 (`GET /v1.0/…`),
/// where one path serves two APIs.
pub fn group_for(api: &str) -> String {
    format!("{GROUP}:{api}")
}

/// An uploaded file referenced by an attachment control (`DDAttachment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// DingTalk drive space id.
    #[serde(
        default,
        deserialize_with = "crate::lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub space_id: Option<String>,
    /// File name.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub file_name: String,
    /// Size in bytes (sent as a string by the platform).
    #[serde(
        default,
        deserialize_with = "crate::lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_size: Option<String>,
    /// Extension, e.g. `pdf`.
    #[serde(
        default,
        deserialize_with = "crate::lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_type: Option<String>,
    /// File id.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub file_id: String,
}

/// A typed form value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text, number, money, single select, date… (sent verbatim).
    Text(String),
    /// Multi-select (`DDMultiSelectField`): a JSON array inside the string.
    MultiSelect(Vec<String>),
    /// Date range (`DDDateRangeField`): `[start, end]` (the name is `[label1, label2]`).
    DateRange([String; 2]),
    /// Detail table (`TableField`): rows of cells.
    Table(Vec<Vec<FormField>>),
    /// Attachments (`DDAttachment`).
    Attachments(Vec<Attachment>),
    /// Any other JSON-typed control (images, related instances, contacts, …).
    Json(Value),
}

/// One form control value to send.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    /// Label (for a date range: the JSON array of both labels).
    pub name: String,
    /// The value.
    pub value: FieldValue,
    /// `ext_value` / `extValue`.
    pub ext_value: Option<String>,
    /// Component id (v1.0, optional).
    pub id: Option<String>,
    /// Business alias (v1.0, optional).
    pub biz_alias: Option<String>,
    /// Component type (v1.0, optional).
    pub component_type: Option<String>,
}

impl FormField {
    fn of(name: impl Into<String>, value: FieldValue) -> Self {
        Self {
            name: name.into(),
            value,
            ext_value: None,
            id: None,
            biz_alias: None,
            component_type: None,
        }
    }
    /// A text-like control.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::of(name, FieldValue::Text(value.into()))
    }
    /// A multi-select.
    pub fn multi_select<S: Into<String>>(
        name: impl Into<String>,
        items: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::of(
            name,
            FieldValue::MultiSelect(items.into_iter().map(Into::into).collect()),
        )
    }
    /// A date range; `labels` are the two sub-labels, e.g. `["开始时间", "结束时间"]`.
    pub fn date_range(labels: [&str; 2], start: impl Into<String>, end: impl Into<String>) -> Self {
        let name = Value::from(vec![labels[0], labels[1]]).to_string();
        Self::of(name, FieldValue::DateRange([start.into(), end.into()]))
    }
    /// A detail table (明细).
    pub fn table(name: impl Into<String>, rows: Vec<Vec<FormField>>) -> Self {
        Self::of(name, FieldValue::Table(rows))
    }
    /// An attachment control.
    pub fn attachments(name: impl Into<String>, files: Vec<Attachment>) -> Self {
        Self::of(name, FieldValue::Attachments(files))
    }
    /// Any JSON-typed control.
    pub fn json(name: impl Into<String>, value: Value) -> Self {
        Self::of(name, FieldValue::Json(value))
    }
    /// Set `ext_value`.
    pub fn with_ext_value(mut self, ext: impl Into<String>) -> Self {
        self.ext_value = Some(ext.into());
        self
    }
    /// Set the component id (v1.0).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The string put in `value`.
    pub fn wire_value(&self) -> String {
        match &self.value {
            FieldValue::Text(s) => s.clone(),
            FieldValue::MultiSelect(items) => Value::from(items.clone()).to_string(),
            FieldValue::DateRange([a, b]) => Value::from(vec![a.clone(), b.clone()]).to_string(),
            FieldValue::Table(rows) => Value::Array(
                rows.iter()
                    .map(|row| {
                        Value::Array(
                            row.iter()
                                .map(|c| json!({ "name": c.name, "value": c.wire_value() }))
                                .collect(),
                        )
                    })
                    .collect(),
            )
            .to_string(),
            FieldValue::Attachments(files) => serde_json::to_string(files).unwrap_or_default(),
            FieldValue::Json(v) => v.to_string(),
        }
    }

    /// oapi shape `{name, value, ext_value}`.
    pub fn to_oapi(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("value".into(), self.wire_value().into());
        if let Some(e) = &self.ext_value {
            m.insert("ext_value".into(), e.clone().into());
        }
        Value::Object(m)
    }

    /// v1.0 shape `{id, bizAlias, name, value, extValue, componentType}`.
    pub fn to_v1(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), id.clone().into());
        }
        if let Some(a) = &self.biz_alias {
            m.insert("bizAlias".into(), a.clone().into());
        }
        m.insert("name".into(), self.name.clone().into());
        m.insert("value".into(), self.wire_value().into());
        if let Some(e) = &self.ext_value {
            m.insert("extValue".into(), e.clone().into());
        }
        if let Some(t) = &self.component_type {
            m.insert("componentType".into(), t.clone().into());
        }
        Value::Object(m)
    }
}

/// `AND` (会签), `OR` (或签), `NONE` (single approver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActionType {
    /// Everyone must agree.
    And,
    /// Any one may decide.
    Or,
    /// One approver.
    None,
}

/// One approval step.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproverStep {
    /// How the step's users decide (AND/OR need ≥2 users).
    pub action_type: ActionType,
    /// The approvers.
    pub user_ids: Vec<UserId>,
}

/// A new approval instance (both families).
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    /// Template.
    pub process_code: ProcessCode,
    /// Originator.
    pub originator: UserId,
    /// Originator's department (`-1` = root for oapi).
    pub dept_id: Option<DeptId>,
    /// Explicit approval steps (≤20); empty = the template's rules.
    pub approvers: Vec<ApproverStep>,
    /// CC users.
    pub cc_list: Vec<UserId>,
    /// `START`, `FINISH` or `START_FINISH`.
    pub cc_position: Option<String>,
    /// Form values (≤150).
    pub form: Vec<FormField>,
    /// Micro-app agent id (ISV apps).
    pub agent_id: Option<AgentId>,
}

impl NewInstance {
    /// An instance with the template's own approval rules.
    pub fn new(
        process_code: impl Into<ProcessCode>,
        originator: impl Into<UserId>,
        dept_id: Option<DeptId>,
        form: Vec<FormField>,
    ) -> Self {
        Self {
            process_code: process_code.into(),
            originator: originator.into(),
            dept_id,
            approvers: Vec::new(),
            cc_list: Vec::new(),
            cc_position: None,
            form,
            agent_id: None,
        }
    }

    /// Body of `/topapi/processinstance/create`.
    pub fn to_oapi(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("process_code".into(), json!(self.process_code));
        m.insert("originator_user_id".into(), json!(self.originator));
        m.insert(
            "dept_id".into(),
            json!(self.dept_id.map_or(-1, DeptId::get)),
        );
        if let Some(a) = self.agent_id {
            m.insert("agent_id".into(), json!(a));
        }
        if !self.approvers.is_empty() {
            m.insert(
                "approvers_v2".into(),
                Value::Array(
                    self.approvers
                        .iter()
                        .map(|s| json!({ "task_action_type": s.action_type, "user_ids": s.user_ids }))
                        .collect(),
                ),
            );
        }
        if !self.cc_list.is_empty() {
            let cc: Vec<&str> = self.cc_list.iter().map(UserId::as_str).collect();
            m.insert("cc_list".into(), cc.join(",").into());
            m.insert(
                "cc_position".into(),
                self.cc_position
                    .clone()
                    .unwrap_or_else(|| "FINISH".into())
                    .into(),
            );
        }
        m.insert(
            "form_component_values".into(),
            Value::Array(self.form.iter().map(FormField::to_oapi).collect()),
        );
        Value::Object(m)
    }

    /// Body of `POST /v1.0/workflow/processInstances`.
    pub fn to_v1(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("processCode".into(), json!(self.process_code));
        m.insert("originatorUserId".into(), json!(self.originator));
        if let Some(d) = self.dept_id {
            m.insert("deptId".into(), json!(d));
        }
        if let Some(a) = self.agent_id {
            m.insert("microappAgentId".into(), json!(a));
        }
        if !self.approvers.is_empty() {
            m.insert(
                "approvers".into(),
                Value::Array(
                    self.approvers
                        .iter()
                        .map(|s| json!({ "actionType": s.action_type, "userIds": s.user_ids }))
                        .collect(),
                ),
            );
        }
        if !self.cc_list.is_empty() {
            m.insert("ccList".into(), json!(self.cc_list));
            m.insert(
                "ccPosition".into(),
                self.cc_position
                    .clone()
                    .unwrap_or_else(|| "FINISH".into())
                    .into(),
            );
        }
        m.insert(
            "formComponentValues".into(),
            Value::Array(self.form.iter().map(FormField::to_v1).collect()),
        );
        Value::Object(m)
    }
}

/// A form value as read back (oapi snake_case and v1.0 camelCase alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormValue {
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
    /// Value text.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub value: Option<String>,
    /// Extra value.
    #[serde(
        default,
        alias = "extValue",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub ext_value: Option<String>,
    /// Component id.
    #[serde(default)]
    pub id: Option<String>,
    /// Component type (e.g. `TextField`, `TableField`, `DDMultiSelectField`).
    #[serde(default, alias = "componentType")]
    pub component_type: Option<String>,
    /// Business alias.
    #[serde(default, alias = "bizAlias")]
    pub biz_alias: Option<String>,
}

impl FormValue {
    /// Interpret the value according to its component type; a JSON control whose text does
    /// not parse stays [`FieldValue::Text`].
    pub fn typed(&self) -> FieldValue {
        let raw = self.value.clone().unwrap_or_default();
        parse_field(self.component_type.as_deref().unwrap_or(""), &raw)
    }
}

fn parse_field(component_type: &str, raw: &str) -> FieldValue {
    let text = || FieldValue::Text(raw.to_owned());
    match component_type {
        "DDMultiSelectField" => serde_json::from_str::<Vec<String>>(raw)
            .map(FieldValue::MultiSelect)
            .unwrap_or_else(|_| text()),
        "DDDateRangeField" => match serde_json::from_str::<Vec<Value>>(raw) {
            Ok(v) if v.len() == 2 => {
                let s = |x: &Value| crate::lenient::as_string(x).unwrap_or_default();
                FieldValue::DateRange([s(&v[0]), s(&v[1])])
            }
            _ => text(),
        },
        "TableField" => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(rows)) => {
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    // Rows come as arrays of {name,value}; the v1.0 read side also shows
                    // `{"rowValue":[{label,key,value}]}` objects.
                    let cells = match row {
                        Value::Array(c) => c,
                        Value::Object(mut o) => match o.remove("rowValue") {
                            Some(Value::Array(c)) => c,
                            _ => return text(),
                        },
                        _ => return text(),
                    };
                    let mut r = Vec::with_capacity(cells.len());
                    for c in cells {
                        let name = c
                            .get("name")
                            .or_else(|| c.get("label"))
                            .and_then(crate::lenient::as_string)
                            .unwrap_or_default();
                        let value = match c.get("value") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        };
                        let ct = c.get("componentType").and_then(Value::as_str).unwrap_or("");
                        r.push(FormField::of(name, parse_field(ct, &value)));
                    }
                    out.push(r);
                }
                FieldValue::Table(out)
            }
            _ => text(),
        },
        "DDAttachment" => serde_json::from_str::<Vec<Attachment>>(raw)
            .map(FieldValue::Attachments)
            .unwrap_or_else(|_| text()),
        "DDPhotoField" | "RelateField" | "InnerContactField" | "DepartmentField" => {
            serde_json::from_str::<Value>(raw)
                .map(FieldValue::Json)
                .unwrap_or_else(|_| text())
        }
        _ => text(),
    }
}

/// An approval task (oapi `tasks[]` / v1.0 `tasks[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task id.
    #[serde(default, alias = "taskid", alias = "taskId")]
    pub task_id: Option<TaskId>,
    /// Approver.
    #[serde(default, alias = "userId")]
    pub userid: Option<UserId>,
    /// NEW | RUNNING | PAUSED | CANCELED | COMPLETED | TERMINATED.
    #[serde(default, alias = "status")]
    pub task_status: Option<String>,
    /// AGREE | REFUSE | REDIRECTED.
    #[serde(default, alias = "result")]
    pub task_result: Option<String>,
    /// Activity (node) id.
    #[serde(default, alias = "activityId")]
    pub activity_id: Option<String>,
    /// Created.
    #[serde(
        default,
        alias = "createTime",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub create_time: Option<String>,
    /// Finished.
    #[serde(
        default,
        alias = "finishTime",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub finish_time: Option<String>,
}

/// An approval instance as `processinstance/get` (oapi) or `GET processInstances` (v1.0)
/// returns it; both spellings deserialize into this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInstance {
    /// Title, e.g. `张三提交的费用报销`.
    #[serde(default)]
    pub title: String,
    /// NEW | RUNNING | TERMINATED | COMPLETED | CANCELED.
    #[serde(default)]
    pub status: String,
    /// agree | refuse (empty while running or when terminated).
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub result: Option<String>,
    /// Originator.
    #[serde(default, alias = "originatorUserId")]
    pub originator_userid: Option<UserId>,
    /// Originator department.
    #[serde(
        default,
        alias = "originatorDeptId",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub originator_dept_id: Option<String>,
    /// Originator department name.
    #[serde(default, alias = "originatorDeptName")]
    pub originator_dept_name: Option<String>,
    /// Approval number (审批编号).
    #[serde(
        default,
        alias = "businessId",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub business_id: Option<String>,
    /// MODIFY | REVOKE | NONE.
    #[serde(default, alias = "bizAction")]
    pub biz_action: Option<String>,
    /// Created ("yyyy-MM-dd HH:mm:ss" oapi, "yyyy-MM-ddTHH:mmZ" v1.0).
    #[serde(
        default,
        alias = "createTime",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub create_time: Option<String>,
    /// Finished.
    #[serde(
        default,
        alias = "finishTime",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub finish_time: Option<String>,
    /// CC users.
    #[serde(
        default,
        alias = "ccUserIds",
        deserialize_with = "crate::lenient::vec_string"
    )]
    pub cc_userids: Vec<String>,
    /// Approvers.
    #[serde(
        default,
        alias = "approverUserIds",
        deserialize_with = "crate::lenient::vec_string"
    )]
    pub approver_userids: Vec<String>,
    /// Form values.
    #[serde(
        default,
        alias = "formComponentValues",
        deserialize_with = "crate::lenient::null_default"
    )]
    pub form_component_values: Vec<FormValue>,
    /// Tasks.
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub tasks: Vec<Task>,
    /// Operation records (kept as JSON).
    #[serde(
        default,
        alias = "operationRecords",
        deserialize_with = "crate::lenient::null_default"
    )]
    pub operation_records: Vec<Value>,
}

impl ProcessInstance {
    /// Approved = COMPLETED + agree (protocol §3.1).
    pub fn is_approved(&self) -> bool {
        self.status == "COMPLETED"
            && self
                .result
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("agree"))
    }
    /// Finished in any way.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "COMPLETED" | "TERMINATED" | "CANCELED"
        )
    }
    /// The form value with this label.
    pub fn field(&self, name: &str) -> Option<&FormValue> {
        self.form_component_values
            .iter()
            .find(|f| f.name.as_deref() == Some(name))
    }
}

/// One page of instance ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdsPage {
    /// Ids.
    pub ids: Vec<ProcessInstanceId>,
    /// Cursor / token of the next page; `None` when done.
    pub next: Option<String>,
}

/// Query of instance ids (oapi `listids` / v1.0 `instanceIds/query`).
#[derive(Debug, Clone, PartialEq)]
pub struct IdsQuery {
    /// Template.
    pub process_code: ProcessCode,
    /// Start, ms (≤365 days ago; window ≤120 days).
    pub start_time: i64,
    /// End, ms.
    pub end_time: Option<i64>,
    /// Only these originators (≤10).
    pub user_ids: Vec<UserId>,
    /// Only instances in these states (`RUNNING`, `TERMINATED`, `COMPLETED`; v1.0 only);
    /// empty = all.
    pub statuses: Vec<String>,
    /// Page size (≤20).
    pub size: u32,
}

/// A decision on an approval task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// 同意.
    Agree,
    /// 拒绝.
    Refuse,
}

impl DingTalkClient {
    /// Start an instance (oapi): `/topapi/processinstance/create`.
    pub async fn approval_create_oapi(&self, req: &NewInstance) -> Result<ProcessInstanceId> {
        let v = self
            .oapi_post_raw(
                &group_for("/topapi/processinstance/create"),
                "/topapi/processinstance/create",
                &req.to_oapi(),
            )
            .await?;
        v.get("process_instance_id")
            .and_then(crate::lenient::as_string)
            .map(ProcessInstanceId)
            .ok_or_else(|| Error::decode("processinstance/create: no process_instance_id"))
    }

    /// Read an instance (oapi): `/topapi/processinstance/get`.
    pub async fn approval_get_oapi(&self, id: &ProcessInstanceId) -> Result<ProcessInstance> {
        let v = self
            .oapi_post_raw(
                &group_for("/topapi/processinstance/get"),
                "/topapi/processinstance/get",
                &json!({ "process_instance_id": id }),
            )
            .await?;
        let inner = v
            .get("process_instance")
            .cloned()
            .ok_or_else(|| Error::decode("processinstance/get: no process_instance"))?;
        from_value("processinstance/get", inner)
    }

    /// One page of instance ids (oapi): `/topapi/processinstance/listids`; `cursor` starts at 0.
    pub async fn approval_list_ids_oapi(&self, q: &IdsQuery, cursor: i64) -> Result<IdsPage> {
        let mut body = json!({
            "process_code": q.process_code,
            "start_time": q.start_time,
            "size": q.size.clamp(1, 20),
            "cursor": cursor,
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(end) = q.end_time {
                obj.insert("end_time".into(), json!(end));
            }
            if !q.user_ids.is_empty() {
                let ids: Vec<&str> = q.user_ids.iter().map(UserId::as_str).collect();
                obj.insert("userid_list".into(), ids.join(",").into());
            }
        }
        let v = self
            .oapi_post_raw(
                &group_for("/topapi/processinstance/listids"),
                "/topapi/processinstance/listids",
                &body,
            )
            .await?;
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        let ids = result
            .get("list")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(crate::lenient::as_string)
                    .map(ProcessInstanceId)
                    .collect()
            })
            .unwrap_or_default();
        let next = result
            .get("next_cursor")
            .and_then(crate::lenient::as_string);
        Ok(IdsPage { ids, next })
    }

    /// Start an instance (v1.0): `POST /v1.0/workflow/processInstances` → `instanceId`.
    pub async fn approval_create(&self, req: &NewInstance) -> Result<ProcessInstanceId> {
        #[derive(Deserialize)]
        struct R {
            #[serde(rename = "instanceId")]
            instance_id: ProcessInstanceId,
        }
        let r: R = self
            .api(
                &group_for("POST /v1.0/workflow/processInstances"),
                Method::POST,
                "/v1.0/workflow/processInstances",
                &[],
                Some(&req.to_v1()),
            )
            .await?;
        Ok(r.instance_id)
    }

    /// Read an instance (v1.0): `GET /v1.0/workflow/processInstances?processInstanceId=`.
    pub async fn approval_get(&self, id: &ProcessInstanceId) -> Result<ProcessInstance> {
        let v = self
            .api_raw(
                &group_for("GET /v1.0/workflow/processInstances"),
                Method::GET,
                "/v1.0/workflow/processInstances",
                &[("processInstanceId", id.to_string())],
                None,
            )
            .await?;
        let inner = v
            .get("result")
            .cloned()
            .ok_or_else(|| Error::decode("processInstances: no result"))?;
        from_value("processInstances", inner)
    }

    /// One page of instance ids (v1.0): `POST /v1.0/workflow/processes/instanceIds/query`;
    /// `next_token` starts at 0.
    pub async fn approval_list_ids(&self, q: &IdsQuery, next_token: i64) -> Result<IdsPage> {
        let mut body = json!({
            "processCode": q.process_code,
            "startTime": q.start_time,
            "nextToken": next_token,
            "maxResults": q.size.clamp(1, 20),
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(end) = q.end_time {
                obj.insert("endTime".into(), json!(end));
            }
            if !q.user_ids.is_empty() {
                obj.insert("userIds".into(), json!(q.user_ids));
            }
            if !q.statuses.is_empty() {
                obj.insert("statuses".into(), json!(q.statuses));
            }
        }
        let v = self
            .api_raw(
                &group_for("POST /v1.0/workflow/processes/instanceIds/query"),
                Method::POST,
                "/v1.0/workflow/processes/instanceIds/query",
                &[],
                Some(&body),
            )
            .await?;
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        let ids = result
            .get("list")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(crate::lenient::as_string)
                    .map(ProcessInstanceId)
                    .collect()
            })
            .unwrap_or_default();
        let next = result
            .get("nextToken")
            .and_then(crate::lenient::as_string)
            .filter(|s| !s.is_empty());
        Ok(IdsPage { ids, next })
    }

    /// Agree or refuse a task: `POST /v1.0/workflow/processInstances/execute` (ALI-SDK
    /// `ExecuteProcessInstance`: `processInstanceId, taskId, actionerUserId, result, remark`).
    pub async fn approval_execute(
        &self,
        id: &ProcessInstanceId,
        task: TaskId,
        actioner: &UserId,
        decision: Decision,
        remark: &str,
    ) -> Result<()> {
        let body = json!({
            "processInstanceId": id, "taskId": task, "actionerUserId": actioner,
            "result": decision, "remark": remark,
        });
        let v = self
            .api_raw(
                &group_for("POST /v1.0/workflow/processInstances/execute"),
                Method::POST,
                "/v1.0/workflow/processInstances/execute",
                &[],
                Some(&body),
            )
            .await?;
        check_success(&v, "processInstances/execute")
    }

    /// Terminate (revoke) an instance: `POST /v1.0/workflow/processInstances/terminate`
    /// (ALI-SDK only: `processInstanceId, isSystem, remark, operatingUserId`).
    pub async fn approval_terminate(
        &self,
        id: &ProcessInstanceId,
        operator: Option<&UserId>,
        remark: &str,
    ) -> Result<()> {
        let mut body =
            json!({ "processInstanceId": id, "isSystem": operator.is_none(), "remark": remark });
        if let (Some(op), Some(obj)) = (operator, body.as_object_mut()) {
            obj.insert("operatingUserId".into(), json!(op));
        }
        let v = self
            .api_raw(
                &group_for("POST /v1.0/workflow/processInstances/terminate"),
                Method::POST,
                "/v1.0/workflow/processInstances/terminate",
                &[],
                Some(&body),
            )
            .await?;
        check_success(&v, "processInstances/terminate")
    }

    /// Add a comment (评论) to an instance, as `comment_user_id`:
    /// `POST /v1.0/workflow/processInstances/comments` with
    /// `{processInstanceId, text, commentUserId}` → `{result, success}` (ALI-SDK `workflow_1_0`
    /// action `AddProcessInstanceComment`; not in the protocol notes). It shows in the
    /// instance's operation records as `ADD_REMARK`. The SDK's optional `file` (photos,
    /// attachments in the approval drive space) is not sent.
    pub async fn approval_add_comment(
        &self,
        instance: &ProcessInstanceId,
        text: &str,
        comment_user_id: &UserId,
    ) -> Result<()> {
        let body = json!({
            "processInstanceId": instance, "text": text, "commentUserId": comment_user_id,
        });
        let v = self
            .api_raw(
                &group_for("POST /v1.0/workflow/processInstances/comments"),
                Method::POST,
                "/v1.0/workflow/processInstances/comments",
                &[],
                Some(&body),
            )
            .await?;
        check_success(&v, "processInstances/comments")
    }

    /// The form schema of a template:
    /// `GET /v1.0/workflow/forms/schemas/processCodes?processCode=` → `result`.
    pub async fn approval_form_schema(&self, code: &ProcessCode) -> Result<FormSchema> {
        let v = self
            .api_raw(
                &group_for("GET /v1.0/workflow/forms/schemas/processCodes"),
                Method::GET,
                "/v1.0/workflow/forms/schemas/processCodes",
                &[("processCode", code.to_string())],
                None,
            )
            .await?;
        let inner = v
            .get("result")
            .cloned()
            .ok_or_else(|| Error::decode("forms/schemas: no result"))?;
        from_value("forms/schemas", inner)
    }
}

fn check_success(v: &Value, what: &str) -> Result<()> {
    // `success` is a boolean or the string "true" depending on the endpoint (protocol §3.2).
    let ok = |x: Option<&Value>| match x {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s != "false",
        Some(_) => true,
    };
    if ok(v.get("success")) && ok(v.get("result")) {
        Ok(())
    } else {
        Err(Error::Business {
            code: "success=false".into(),
            message: format!("{what}: {v}"),
        })
    }
}

/// A template's form schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSchema {
    /// Template name.
    #[serde(default)]
    pub name: Option<String>,
    /// Form code.
    #[serde(default)]
    pub form_code: Option<String>,
    /// The controls.
    #[serde(default)]
    pub schema_content: SchemaContent,
}

/// `schemaContent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaContent {
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Controls.
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub items: Vec<SchemaItem>,
}

/// One control of a form schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaItem {
    /// e.g. `TextField`, `MoneyField`, `TableField`, `DDDateRangeField`.
    pub component_name: String,
    /// `id, label, bizAlias, required, placeholder, options, …`.
    #[serde(default)]
    pub props: Value,
    /// Children (controls of a TableField).
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub children: Vec<SchemaItem>,
}

impl SchemaItem {
    /// `props.label`.
    pub fn label(&self) -> Option<&str> {
        self.props.get("label").and_then(Value::as_str)
    }
    /// `props.id`.
    pub fn id(&self) -> Option<&str> {
        self.props.get("id").and_then(Value::as_str)
    }
    /// `props.required`.
    pub fn required(&self) -> bool {
        self.props
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn form_values_encode_json_inside_strings() {
        let f = FormField::multi_select("报销类别", ["差旅", "餐费"]);
        assert_eq!(f.wire_value(), r#"["差旅","餐费"]"#);
        let d = FormField::date_range(
            ["开始时间", "结束时间"],
            "2024-05-01 09:00",
            "2024-05-03 18:00",
        );
        assert_eq!(d.name, r#"["开始时间","结束时间"]"#);
        assert_eq!(d.wire_value(), r#"["2024-05-01 09:00","2024-05-03 18:00"]"#);
        let t = FormField::table(
            "费用明细",
            vec![
                vec![
                    FormField::text("费用类型", "交通费"),
                    FormField::text("金额（元）", "120.50"),
                ],
                vec![
                    FormField::text("费用类型", "住宿费"),
                    FormField::text("金额（元）", "450"),
                ],
            ],
        );
        let parsed: Value = serde_json::from_str(&t.wire_value()).unwrap();
        assert_eq!(parsed[1][0], json!({"name": "费用类型", "value": "住宿费"}));
        let back = parse_field("TableField", &t.wire_value());
        assert_eq!(back, t.value);
        let a = FormField::attachments(
            "附件",
            vec![Attachment {
                space_id: Some("123".into()),
                file_name: "发票.pdf".into(),
                file_size: Some("2048".into()),
                file_type: Some("pdf".into()),
                file_id: "f1".into(),
            }],
        );
        assert_eq!(parse_field("DDAttachment", &a.wire_value()), a.value);
        assert_eq!(parse_field("DDMultiSelectField", &f.wire_value()), f.value);
        assert_eq!(parse_field("DDDateRangeField", &d.wire_value()), d.value);
        assert_eq!(
            parse_field("TableField", "not json"),
            FieldValue::Text("not json".into())
        );
    }

    #[test]
    fn instance_reads_both_spellings() {
        let oapi = json!({
            "title": "张三提交的费用报销", "status": "COMPLETED", "result": "agree",
            "originator_userid": "zhangsan", "business_id": 202405010001u64,
            "form_component_values": [{"name":"报销类别","value":"[\"差旅\"]","component_type":"DDMultiSelectField"}],
            "tasks": [{"userid":"lisi","task_status":"COMPLETED","task_result":"AGREE","taskid":"61234"}]
        });
        let p: ProcessInstance = serde_json::from_value(oapi).unwrap();
        assert!(p.is_approved());
        assert_eq!(p.tasks[0].task_id, Some(TaskId(61234)));
        assert_eq!(
            p.field("报销类别").unwrap().typed(),
            FieldValue::MultiSelect(vec!["差旅".into()])
        );
        let v1 = json!({
            "title": "李四提交的请假", "status": "RUNNING", "originatorUserId": "lisi",
            "formComponentValues": [{"name":"[\"开始时间\",\"结束时间\"]","value":"[\"2024-05-01\",\"2024-05-02\"]","componentType":"DDDateRangeField"}],
            "tasks": [{"taskId": 77, "userId": "wangwu", "status": "RUNNING", "result": "NONE"}]
        });
        let p: ProcessInstance = serde_json::from_value(v1).unwrap();
        assert!(!p.is_finished());
        assert_eq!(p.originator_userid, Some(UserId::from("lisi")));
        assert_eq!(p.tasks[0].task_id, Some(TaskId(77)));
        assert!(matches!(
            p.form_component_values[0].typed(),
            FieldValue::DateRange(_)
        ));
    }
}
