//! Every `Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.<Op>` call with its positional
//! parameters (protocol §2.1), typed requests for the `data` object, and typed results.

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::KingdeeClient;
use crate::config::{DEFAULT_QUERY_PAGE, MAX_QUERY_PAGE};
use crate::envelope::{
    MsgCode, OperationResult, ResponseStatus, RowMessage, SuccessEntity, expect_success,
    find_status, parse_operation, snippet,
};
use crate::error::KingdeeError;
use crate::ids::{BillNo, EntityId, FormId};
use crate::model::Model;

/// Namespace of the business operations. [MANUAL] [SDK-PY main.py] (§2)
pub const DYNAMIC_FORM_SERVICE: &str = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService";

/// A DynamicFormService operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `Save`.
    Save,
    /// `BatchSave`.
    BatchSave,
    /// `Draft` (暂存).
    Draft,
    /// `Submit`.
    Submit,
    /// `Audit`.
    Audit,
    /// `UnAudit`.
    UnAudit,
    /// `Delete`.
    Delete,
    /// `View`.
    View,
    /// `ExecuteBillQuery`.
    ExecuteBillQuery,
    /// `BillQuery` (2023-09).
    BillQuery,
    /// `ExcuteOperation` (sic, as the SDKs spell it).
    ExcuteOperation,
    /// `QueryBusinessInfo`.
    QueryBusinessInfo,
    /// `Push` (下推).
    Push,
    /// `WorkflowAudit`.
    WorkflowAudit,
}

impl Op {
    /// The method name in the URL.
    pub fn method(self) -> &'static str {
        match self {
            Op::Save => "Save",
            Op::BatchSave => "BatchSave",
            Op::Draft => "Draft",
            Op::Submit => "Submit",
            Op::Audit => "Audit",
            Op::UnAudit => "UnAudit",
            Op::Delete => "Delete",
            Op::View => "View",
            Op::ExecuteBillQuery => "ExecuteBillQuery",
            Op::BillQuery => "BillQuery",
            // [SDK-PY] [SDK-JAVA] [POSTMAN] spell it `ExcuteOperation` (§2.1).
            Op::ExcuteOperation => "ExcuteOperation",
            Op::QueryBusinessInfo => "QueryBusinessInfo",
            Op::Push => "Push",
            Op::WorkflowAudit => "WorkflowAudit",
        }
    }

    /// The service name (the URL without base and `.common.kdsvc`).
    pub fn service(self) -> String {
        format!("{DYNAMIC_FORM_SERVICE}.{}", self.method())
    }

    /// The pacer group: `query` for reads, `save` for writes of records, `operate` for state
    /// changes.
    pub fn group(self) -> &'static str {
        match self {
            Op::View | Op::ExecuteBillQuery | Op::BillQuery | Op::QueryBusinessInfo => "query",
            Op::Save | Op::BatchSave | Op::Draft => "save",
            _ => "operate",
        }
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_owned(), value.into());
}

fn put_opt<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// Options of Save / BatchSave / Draft (§2.2). Unset options are not sent, so the server's
/// defaults apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveOptions {
    /// `Creator`.
    pub creator: Option<String>,
    /// `NeedUpDateFields`: update only these field keys.
    pub need_update_fields: Vec<String>,
    /// `NeedReturnFields`.
    pub need_return_fields: Vec<String>,
    /// `IsDeleteEntry` (server default true).
    pub is_delete_entry: Option<bool>,
    /// `SubSystemId`.
    pub sub_system_id: Option<String>,
    /// `IsVerifyBaseDataField`.
    pub is_verify_base_data_field: Option<bool>,
    /// `IsEntryBatchFill`.
    pub is_entry_batch_fill: Option<bool>,
    /// `ValidateFlag`.
    pub validate_flag: Option<bool>,
    /// `NumberSearch`.
    pub number_search: Option<bool>,
    /// `IsAutoAdjustField`.
    pub is_auto_adjust_field: Option<bool>,
    /// `InterationFlags`, joined with `;` (e.g. `STK_InvCheckResult`).
    pub interation_flags: Vec<String>,
    /// `IgnoreInterationFlag`.
    pub ignore_interation_flag: Option<bool>,
    /// `ValidateRepeatJson`: reject a data package already submitted once ◐ [XUEYU].
    pub validate_repeat_json: Option<bool>,
    /// `IsDraftWhenSaveFail` ◐.
    pub is_draft_when_save_fail: Option<bool>,
}

impl SaveOptions {
    fn write(&self, d: &mut Map<String, Value>) {
        put_opt(d, "Creator", self.creator.clone());
        if !self.need_update_fields.is_empty() {
            put(d, "NeedUpDateFields", self.need_update_fields.clone());
        }
        if !self.need_return_fields.is_empty() {
            put(d, "NeedReturnFields", self.need_return_fields.clone());
        }
        put_opt(d, "IsDeleteEntry", self.is_delete_entry);
        put_opt(d, "SubSystemId", self.sub_system_id.clone());
        put_opt(d, "IsVerifyBaseDataField", self.is_verify_base_data_field);
        put_opt(d, "IsEntryBatchFill", self.is_entry_batch_fill);
        put_opt(d, "ValidateFlag", self.validate_flag);
        put_opt(d, "NumberSearch", self.number_search);
        put_opt(d, "IsAutoAdjustField", self.is_auto_adjust_field);
        if !self.interation_flags.is_empty() {
            put(d, "InterationFlags", self.interation_flags.join(";"));
        }
        put_opt(d, "IgnoreInterationFlag", self.ignore_interation_flag);
        put_opt(d, "ValidateRepeatJson", self.validate_repeat_json);
        put_opt(d, "IsDraftWhenSaveFail", self.is_draft_when_save_fail);
    }

    /// The `data` of Save/Draft: options first, then `Model`.
    pub fn save_data(&self, model: &Model) -> Value {
        let mut d = Map::new();
        self.write(&mut d);
        put(&mut d, "Model", model.clone().into_value());
        Value::Object(d)
    }

    /// The `data` of BatchSave: options, `BatchCount` if set, then `Model` as an array.
    pub fn batch_save_data(&self, models: &[Model], batch_count: Option<u32>) -> Value {
        let mut d = Map::new();
        self.write(&mut d);
        put_opt(&mut d, "BatchCount", batch_count);
        let rows: Vec<Value> = models.iter().cloned().map(Model::into_value).collect();
        put(&mut d, "Model", rows);
        Value::Object(d)
    }
}

/// Which records Submit/Audit/UnAudit/Delete/ExcuteOperation/Push act on: bill numbers and/or
/// primary keys, plus any further keys (`NetworkCtrl`, `InterationFlags`, `IsVerifyProcInst`…).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// `CreateOrgId` (0 = the user's current organisation).
    pub create_org_id: i64,
    /// `Numbers`.
    pub numbers: Vec<BillNo>,
    /// `Ids` (sent as a comma-separated string, §2.1).
    pub ids: Vec<EntityId>,
    /// Further keys, in order.
    pub extra: Map<String, Value>,
}

impl Selection {
    /// Records by bill number.
    pub fn numbers(numbers: impl IntoIterator<Item = BillNo>) -> Self {
        Self {
            numbers: numbers.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Records by primary key.
    pub fn ids(ids: impl IntoIterator<Item = EntityId>) -> Self {
        Self {
            ids: ids.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Sets `CreateOrgId`.
    pub fn create_org_id(mut self, org: i64) -> Self {
        self.create_org_id = org;
        self
    }

    /// Adds a further key.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The `data` object, in the manual's order: `CreateOrgId`, `Numbers`, `Ids`, then extras.
    pub fn data(&self) -> Value {
        let mut d = Map::new();
        put(&mut d, "CreateOrgId", self.create_org_id);
        let numbers: Vec<Value> = self.numbers.iter().map(|n| json!(n.as_str())).collect();
        put(&mut d, "Numbers", numbers);
        put(&mut d, "Ids", join_ids(&self.ids));
        for (k, v) in &self.extra {
            d.insert(k.clone(), v.clone());
        }
        Value::Object(d)
    }
}

fn join_ids(ids: &[EntityId]) -> String {
    ids.iter()
        .map(EntityId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// What View opens: one record by number or by primary key.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRequest {
    /// `CreateOrgId`.
    pub create_org_id: i64,
    /// `Number`.
    pub number: Option<BillNo>,
    /// `Id`.
    pub id: Option<EntityId>,
    /// Further keys (`IsSortBySeq`, `IsUserModelInit`…).
    pub extra: Map<String, Value>,
}

impl ViewRequest {
    /// By bill/base-data number.
    pub fn by_number(number: impl Into<BillNo>) -> Self {
        Self {
            create_org_id: 0,
            number: Some(number.into()),
            id: None,
            extra: Map::new(),
        }
    }

    /// By primary key.
    pub fn by_id(id: impl Into<EntityId>) -> Self {
        Self {
            create_org_id: 0,
            number: None,
            id: Some(id.into()),
            extra: Map::new(),
        }
    }

    /// Adds a further key.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The `data` object.
    pub fn data(&self) -> Value {
        let mut d = Map::new();
        put(&mut d, "CreateOrgId", self.create_org_id);
        put_opt(
            &mut d,
            "Number",
            self.number.as_ref().map(|n| n.as_str().to_owned()),
        );
        put_opt(
            &mut d,
            "Id",
            self.id.as_ref().map(|n| n.as_str().to_owned()),
        );
        for (k, v) in &self.extra {
            d.insert(k.clone(), v.clone());
        }
        Value::Object(d)
    }
}

/// ExecuteBillQuery / BillQuery parameters (§2.1, §5).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// `FormId`.
    pub form_id: FormId,
    /// `FieldKeys` (sent comma-separated; keep base-data fields ≤ 30).
    pub field_keys: Vec<String>,
    /// `FilterString`: a string, or an array of `{Left, FieldName, Compare, Value, Right, Logic}`.
    pub filter: Value,
    /// `OrderString`.
    pub order_string: String,
    /// `TopRowCount` (0 = no cap).
    pub top_row_count: u32,
    /// `StartRow` (zero-based).
    pub start_row: u32,
    /// `Limit` (0 = server default; at most 2000 by default, 10000 when raised).
    pub limit: u32,
    /// `SubSystemId`.
    pub sub_system_id: String,
}

impl QueryRequest {
    /// A query of `field_keys` on `form_id`, unfiltered.
    pub fn new<I, S>(form_id: impl Into<FormId>, field_keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            form_id: form_id.into(),
            field_keys: field_keys.into_iter().map(Into::into).collect(),
            filter: Value::String(String::new()),
            order_string: String::new(),
            top_row_count: 0,
            start_row: 0,
            limit: 0,
            sub_system_id: String::new(),
        }
    }

    /// Sets a `FilterString` text such as `FNumber like 'BM%'`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Value::String(filter.into());
        self
    }

    /// Sets `FilterString` as an array of condition objects.
    pub fn filter_conditions(mut self, conditions: Vec<Value>) -> Self {
        self.filter = Value::Array(conditions);
        self
    }

    /// Sets `OrderString`.
    pub fn order(mut self, order: impl Into<String>) -> Self {
        self.order_string = order.into();
        self
    }

    /// Sets `TopRowCount`.
    pub fn top(mut self, rows: u32) -> Self {
        self.top_row_count = rows;
        self
    }

    /// Sets `StartRow` and `Limit`.
    pub fn page(mut self, start_row: u32, limit: u32) -> Self {
        self.start_row = start_row;
        self.limit = limit;
        self
    }

    /// The `data` object, in the manual's key order.
    pub fn data(&self) -> Value {
        let mut d = Map::new();
        put(&mut d, "FormId", self.form_id.as_str());
        put(&mut d, "FieldKeys", self.field_keys.join(","));
        put(&mut d, "FilterString", self.filter.clone());
        put(&mut d, "OrderString", self.order_string.clone());
        put(&mut d, "TopRowCount", self.top_row_count);
        put(&mut d, "StartRow", self.start_row);
        put(&mut d, "Limit", self.limit);
        put(&mut d, "SubSystemId", self.sub_system_id.clone());
        Value::Object(d)
    }
}

/// Push (下推) parameters (§2.1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushRequest {
    /// `Ids` of the source bills.
    pub ids: Vec<EntityId>,
    /// `Numbers` of the source bills.
    pub numbers: Vec<BillNo>,
    /// `EntryIds` (comma-separated).
    pub entry_ids: Vec<EntityId>,
    /// `RuleId` (conversion rule).
    pub rule_id: Option<String>,
    /// `TargetBillTypeId`.
    pub target_bill_type_id: Option<String>,
    /// `TargetOrgId`.
    pub target_org_id: Option<i64>,
    /// `TargetFormId`.
    pub target_form_id: Option<FormId>,
    /// `IsEnableDefaultRule`.
    pub is_enable_default_rule: Option<bool>,
    /// `IsDraftWhenSaveFail`.
    pub is_draft_when_save_fail: Option<bool>,
    /// `CustomParams`.
    pub custom_params: Option<Value>,
}

impl PushRequest {
    /// The `data` object.
    pub fn data(&self) -> Value {
        let mut d = Map::new();
        put(&mut d, "Ids", join_ids(&self.ids));
        let numbers: Vec<Value> = self.numbers.iter().map(|n| json!(n.as_str())).collect();
        put(&mut d, "Numbers", numbers);
        put(&mut d, "EntryIds", join_ids(&self.entry_ids));
        put_opt(&mut d, "RuleId", self.rule_id.clone());
        put_opt(&mut d, "TargetBillTypeId", self.target_bill_type_id.clone());
        put_opt(&mut d, "TargetOrgId", self.target_org_id);
        put_opt(
            &mut d,
            "TargetFormId",
            self.target_form_id.as_ref().map(|f| f.as_str().to_owned()),
        );
        put_opt(&mut d, "IsEnableDefaultRule", self.is_enable_default_rule);
        put_opt(&mut d, "IsDraftWhenSaveFail", self.is_draft_when_save_fail);
        put_opt(&mut d, "CustomParams", self.custom_params.clone());
        Value::Object(d)
    }
}

/// `ApprovalType` of WorkflowAudit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalType {
    /// 1: approve.
    Approve = 1,
    /// 2: reject.
    Reject = 2,
    /// 3: terminate.
    Terminate = 3,
}

/// WorkflowAudit parameters (§2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowAuditRequest {
    /// `FormId`.
    pub form_id: FormId,
    /// `Ids` / `Numbers`.
    pub selection: Selection,
    /// `UserId`.
    pub user_id: Option<i64>,
    /// `UserName`.
    pub user_name: Option<String>,
    /// `ApprovalType`.
    pub approval_type: ApprovalType,
    /// `ActionResultId`.
    pub action_result_id: Option<String>,
    /// `PostId`.
    pub post_id: Option<i64>,
    /// `PostNumber`.
    pub post_number: Option<String>,
    /// `Disposition` (审批意见) ◐.
    pub disposition: Option<String>,
}

impl WorkflowAuditRequest {
    /// The `data` object.
    pub fn data(&self) -> Value {
        let mut d = Map::new();
        put(&mut d, "FormId", self.form_id.as_str());
        let numbers: Vec<Value> = self
            .selection
            .numbers
            .iter()
            .map(|n| json!(n.as_str()))
            .collect();
        put(&mut d, "Ids", join_ids(&self.selection.ids));
        put(&mut d, "Numbers", numbers);
        put_opt(&mut d, "UserId", self.user_id);
        put_opt(&mut d, "UserName", self.user_name.clone());
        put(&mut d, "ApprovalType", self.approval_type as i64);
        put_opt(&mut d, "ActionResultId", self.action_result_id.clone());
        put_opt(&mut d, "PostId", self.post_id);
        put_opt(&mut d, "PostNumber", self.post_number.clone());
        put_opt(&mut d, "Disposition", self.disposition.clone());
        for (k, v) in &self.selection.extra {
            d.insert(k.clone(), v.clone());
        }
        Value::Object(d)
    }
}

/// The errors of one submitted row of a BatchSave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// `DIndex` (within its batch when `BatchCount` was set).
    pub d_index: i64,
    /// Every message about this row.
    pub errors: Vec<RowMessage>,
}

/// The outcome of a BatchSave that the server processed: which rows were saved and which
/// failed, and why. With `BatchCount` set, `DIndex` counts within each server batch
/// (§2.1), so [`BatchSaveReport::batch_relative`] is true and indexes are not global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSaveReport {
    /// Saved rows (`SuccessEntitys`).
    pub succeeded: Vec<SuccessEntity>,
    /// Failed rows, by `DIndex`, in index order.
    pub failed: Vec<RowFailure>,
    /// Errors without a `DIndex` (about the whole call).
    pub general_errors: Vec<RowMessage>,
    /// Whether `DIndex` values are relative to server batches.
    pub batch_relative: bool,
    /// The raw status.
    pub status: ResponseStatus,
}

impl BatchSaveReport {
    /// Whether every row was saved.
    pub fn all_succeeded(&self) -> bool {
        self.status.is_success && self.failed.is_empty() && self.general_errors.is_empty()
    }

    /// Builds the report from a status.
    pub fn from_status(status: ResponseStatus, batch_relative: bool) -> Self {
        let mut by_row: BTreeMap<i64, Vec<RowMessage>> = BTreeMap::new();
        let mut general = Vec::new();
        for e in &status.errors {
            match e.d_index {
                Some(i) => by_row.entry(i).or_default().push(e.clone()),
                None => general.push(e.clone()),
            }
        }
        Self {
            succeeded: status.success_entitys.clone(),
            failed: by_row
                .into_iter()
                .map(|(d_index, errors)| RowFailure { d_index, errors })
                .collect(),
            general_errors: general,
            batch_relative,
            status,
        }
    }
}

fn decode_err(service: &str, reason: &str, body: &Value) -> KingdeeError {
    KingdeeError::Decode {
        service: service.to_owned(),
        reason: reason.to_owned(),
        snippet: snippet(&body.to_string()),
    }
}

/// Fails with [`KingdeeError::Api`] when a query body is a wrapped failure status.
fn reject_wrapped_failure(service: &str, body: &Value) -> Result<(), KingdeeError> {
    match find_status(body) {
        Some(status) if !status.is_success => Err(KingdeeError::Api {
            service: service.to_owned(),
            status: Box::new(status),
        }),
        _ => Ok(()),
    }
}

impl KingdeeClient {
    async fn op(&self, op: Op, params: &[Value]) -> Result<Value, KingdeeError> {
        self.call(&op.service(), op.group(), params).await
    }

    async fn op_envelope(&self, op: Op, params: &[Value]) -> Result<OperationResult, KingdeeError> {
        let body = self.op(op, params).await?;
        expect_success(op.method(), &body)
    }

    /// `Save` one record (§2.2).
    pub async fn save(
        &self,
        form: &FormId,
        model: &Model,
        opts: &SaveOptions,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Save, &[json!(form.as_str()), opts.save_data(model)])
            .await
    }

    /// `Draft` (暂存) one record.
    pub async fn draft(
        &self,
        form: &FormId,
        model: &Model,
        opts: &SaveOptions,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Draft, &[json!(form.as_str()), opts.save_data(model)])
            .await
    }

    /// `BatchSave`: returns a per-row report when the server processed the rows (even if some
    /// failed); fails as a whole when no row was saved and the failure is not a data error of
    /// the rows (e.g. an unknown form id, no permission, a call limit), whatever `DIndex` says.
    pub async fn batch_save(
        &self,
        form: &FormId,
        models: &[Model],
        batch_count: Option<u32>,
        opts: &SaveOptions,
    ) -> Result<BatchSaveReport, KingdeeError> {
        let data = opts.batch_save_data(models, batch_count);
        let body = self
            .op(Op::BatchSave, &[json!(form.as_str()), data])
            .await?;
        let result = parse_operation(Op::BatchSave.method(), &body)?;
        let status = result.status;
        // `DIndex` is an `int` in the server's DTO, so errors about the whole call (unknown
        // form, no permission, bad parameters…) carry `DIndex: 0` too (§2.3): its presence does
        // not make an error row-level. Rows were processed when some were saved, or when the
        // failure is a data error of the rows (validation, missing reference, no such record).
        let row_level = !status.success_entitys.is_empty()
            || (status.errors.iter().any(|e| e.d_index.is_some())
                && matches!(
                    status.msg_code,
                    MsgCode::Default
                        | MsgCode::NotFound
                        | MsgCode::NoMatchingData
                        | MsgCode::ValidationFailed
                ));
        if !status.is_success && !row_level {
            return Err(KingdeeError::Api {
                service: Op::BatchSave.method().to_owned(),
                status: Box::new(status),
            });
        }
        Ok(BatchSaveReport::from_status(
            status,
            batch_count.is_some_and(|c| c > 1),
        ))
    }

    /// `Submit`.
    pub async fn submit(
        &self,
        form: &FormId,
        sel: &Selection,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Submit, &[json!(form.as_str()), sel.data()])
            .await
    }

    /// `Audit`.
    pub async fn audit(
        &self,
        form: &FormId,
        sel: &Selection,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Audit, &[json!(form.as_str()), sel.data()])
            .await
    }

    /// `UnAudit`.
    pub async fn unaudit(
        &self,
        form: &FormId,
        sel: &Selection,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::UnAudit, &[json!(form.as_str()), sel.data()])
            .await
    }

    /// `Delete` (only bills in status Z, A or D can be deleted).
    pub async fn delete(
        &self,
        form: &FormId,
        sel: &Selection,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Delete, &[json!(form.as_str()), sel.data()])
            .await
    }

    /// `ExcuteOperation` (e.g. `Forbid`, `Enable` on `BD_Empinfo`): `[formid, opNumber, data]`.
    pub async fn execute_operation(
        &self,
        form: &FormId,
        op_number: &str,
        sel: &Selection,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(
            Op::ExcuteOperation,
            &[json!(form.as_str()), json!(op_number), sel.data()],
        )
        .await
    }

    /// `View`: the record object (`Result.Result`), with object property names (§2.2).
    pub async fn view(&self, form: &FormId, req: &ViewRequest) -> Result<Value, KingdeeError> {
        let r = self
            .op_envelope(Op::View, &[json!(form.as_str()), req.data()])
            .await?;
        Ok(r.result.unwrap_or(Value::Null))
    }

    /// One `ExecuteBillQuery` call: rows of values in `FieldKeys` order.
    pub async fn execute_bill_query(
        &self,
        req: &QueryRequest,
    ) -> Result<Vec<Vec<Value>>, KingdeeError> {
        let service = Op::ExecuteBillQuery.method();
        let body = self.op(Op::ExecuteBillQuery, &[req.data()]).await?;
        reject_wrapped_failure(service, &body)?;
        match body {
            Value::Array(rows) => rows
                .into_iter()
                .map(|row| match row {
                    Value::Array(cells) => Ok(cells),
                    other => Err(decode_err(service, "a row is not an array", &other)),
                })
                .collect(),
            other => Err(decode_err(service, "expected [[…],…]", &other)),
        }
    }

    /// All rows of an `ExecuteBillQuery`, fetched page by page (`StartRow`/`Limit`, at most the
    /// configured page size and never over the server cap of 10000). `TopRowCount` is applied
    /// on this side. A page shorter than asked ends the stream when at most 2000 rows were asked
    /// (the default server cap); with larger pages, which a server may cap silently, an empty
    /// page does.
    pub fn query_rows(
        &self,
        req: QueryRequest,
    ) -> BoxStream<'static, Result<Vec<Value>, KingdeeError>> {
        let page = if req.limit == 0 {
            self.config().page_limit()
        } else {
            req.limit.min(MAX_QUERY_PAGE)
        };
        let remaining = (req.top_row_count > 0).then_some(req.top_row_count);
        let start = req.start_row;
        let state = (self.clone(), req, start, remaining, false);
        stream::try_unfold(
            state,
            move |(client, req, start, remaining, done)| async move {
                if done || remaining == Some(0) {
                    return Ok(None);
                }
                let limit = remaining.map_or(page, |r| r.min(page));
                let mut page_req = req.clone();
                page_req.start_row = start;
                page_req.limit = limit;
                page_req.top_row_count = 0;
                let mut rows = client.execute_bill_query(&page_req).await?;
                // A server that ignores `Limit` must not push the stream past `TopRowCount`.
                if let Some(r) = remaining {
                    rows.truncate(usize::try_from(r).unwrap_or(usize::MAX));
                }
                let got = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                // A short page ends the stream, unless more rows were asked than a server
                // returns by default (2000, §5): a server that was not raised caps `Limit`
                // silently, so only an empty page proves the end there.
                let done = got == 0 || (got < limit && limit <= DEFAULT_QUERY_PAGE);
                let remaining = remaining.map(|r| r.saturating_sub(got));
                Ok(Some((
                    rows,
                    (client, req, start.saturating_add(got), remaining, done),
                )))
            },
        )
        .map_ok(|rows| stream::iter(rows.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// `BillQuery`: rows as objects keyed by field key.
    pub async fn bill_query(
        &self,
        req: &QueryRequest,
    ) -> Result<Vec<Map<String, Value>>, KingdeeError> {
        let service = Op::BillQuery.method();
        let body = self.op(Op::BillQuery, &[req.data()]).await?;
        reject_wrapped_failure(service, &body)?;
        match body {
            Value::Array(rows) => rows
                .into_iter()
                .map(|row| match row {
                    Value::Object(m) => Ok(m),
                    other => Err(decode_err(service, "a row is not an object", &other)),
                })
                .collect(),
            other => Err(decode_err(service, "expected [{…},…]", &other)),
        }
    }

    /// `QueryBusinessInfo`: form metadata, returned as sent (its shape is not documented).
    pub async fn query_business_info(&self, form: &FormId) -> Result<Value, KingdeeError> {
        let body = self
            .op(Op::QueryBusinessInfo, &[json!({ "FormId": form.as_str() })])
            .await?;
        reject_wrapped_failure(Op::QueryBusinessInfo.method(), &body)?;
        Ok(body)
    }

    /// `Push` (下推) source bills of `form` to a target form.
    pub async fn push(
        &self,
        form: &FormId,
        req: &PushRequest,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::Push, &[json!(form.as_str()), req.data()])
            .await
    }

    /// `WorkflowAudit`: approve, reject or terminate in the workflow.
    pub async fn workflow_audit(
        &self,
        req: &WorkflowAuditRequest,
    ) -> Result<OperationResult, KingdeeError> {
        self.op_envelope(Op::WorkflowAudit, &[req.data()]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert_eq!(
            Op::ExcuteOperation.service(),
            "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExcuteOperation"
        );
        assert_eq!(Op::ExecuteBillQuery.group(), "query");
        assert_eq!(Op::BatchSave.group(), "save");
        assert_eq!(Op::Audit.group(), "operate");
    }

    #[test]
    fn save_data_order() {
        let opts = SaveOptions {
            need_update_fields: vec!["FName".into()],
            is_delete_entry: Some(false),
            interation_flags: vec!["STK_InvCheckResult".into(), "X".into()],
            ..SaveOptions::default()
        };
        let m = Model::new()
            .field("FName", "费用报销")
            .field("FNumber", "A1");
        assert_eq!(
            serde_json::to_string(&opts.save_data(&m)).expect("json"),
            r#"{"NeedUpDateFields":["FName"],"IsDeleteEntry":false,"InterationFlags":"STK_InvCheckResult;X","Model":{"FName":"费用报销","FNumber":"A1"}}"#
        );
        let b = SaveOptions::default().batch_save_data(&[m.clone(), m], Some(2));
        assert_eq!(b["BatchCount"], json!(2));
        assert_eq!(b["Model"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn selection_and_query_data() {
        let s = Selection::numbers([BillNo::new("FYBXD001")])
            .with("NetworkCtrl", "")
            .create_org_id(1);
        assert_eq!(
            serde_json::to_string(&s.data()).expect("json"),
            r#"{"CreateOrgId":1,"Numbers":["FYBXD001"],"Ids":"","NetworkCtrl":""}"#
        );
        let s = Selection::ids([EntityId::from(1), EntityId::from(2)]);
        assert_eq!(s.data()["Ids"], json!("1,2"));
        let q = QueryRequest::new("BD_Department", ["FNumber", "FName"])
            .filter("FName like '%部%'")
            .page(0, 100);
        assert_eq!(
            serde_json::to_string(&q.data()).expect("json"),
            r#"{"FormId":"BD_Department","FieldKeys":"FNumber,FName","FilterString":"FName like '%部%'","OrderString":"","TopRowCount":0,"StartRow":0,"Limit":100,"SubSystemId":""}"#
        );
    }

    #[test]
    fn batch_report_groups_rows() {
        let status: ResponseStatus = serde_json::from_value(json!({
            "IsSuccess": false, "MsgCode": 11,
            "Errors": [
                {"FieldName":"FDeptId","Message":"部门 不存在","DIndex":2},
                {"FieldName":"FName","Message":"名称 必填","DIndex":2},
                {"FieldName":"FName","Message":"员工 张伟 重复","DIndex":0},
                {"Message":"部分失败"}
            ],
            "SuccessEntitys": [{"Id":11,"Number":"E1","DIndex":1}]
        }))
        .expect("status");
        let r = BatchSaveReport::from_status(status, false);
        assert!(!r.all_succeeded());
        assert_eq!(
            r.failed.iter().map(|f| f.d_index).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(r.failed[1].errors.len(), 2);
        assert_eq!(r.general_errors.len(), 1);
        assert_eq!(r.succeeded[0].d_index, Some(1));
    }

    #[test]
    fn workflow_and_push_data() {
        let w = WorkflowAuditRequest {
            form_id: FormId::new("ER_ExpReimbursement"),
            selection: Selection::numbers([BillNo::new("FYBXD1")]),
            user_id: None,
            user_name: Some("张伟".into()),
            approval_type: ApprovalType::Reject,
            action_result_id: None,
            post_id: None,
            post_number: None,
            disposition: Some("金额 不符".into()),
        };
        let d = w.data();
        assert_eq!(d["ApprovalType"], json!(2));
        assert_eq!(d["UserName"], json!("张伟"));
        let p = PushRequest {
            numbers: vec![BillNo::new("FYSQ1")],
            target_form_id: Some(FormId::new("ER_ExpReimbursement")),
            ..PushRequest::default()
        };
        assert_eq!(p.data()["TargetFormId"], json!("ER_ExpReimbursement"));
        assert_eq!(p.data()["Ids"], json!(""));
    }
}
