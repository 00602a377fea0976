//! `approval_bridge`: in-house systems start DingTalk approvals without speaking DingTalk.
//!
//! - [`ApprovalBridge::start`] checks a request (template, originator through the identity
//!   table, form values converted with the template's schema), stores the approval, then
//!   creates the DingTalk instance. The REST API (`server`) calls it.
//! - `approval_bridge.sync` (one instance): reads the instance and turns what changed since the
//!   last read into webhook messages, in a canonical order, each with a stable id (so an event
//!   and the backfill poll finding the same change make one message). `bpms_instance_change`
//!   and `bpms_task_change` events trigger it.
//! - `approval_bridge` (the recipe, scheduled): the backfill poll. It lists finished instances
//!   of the templates (`listids`) since the oldest approval still open and syncs those the hub
//!   has not seen finish, so no outcome is missed when an event is.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dingtalk::approvals::{ActionType, ApproverStep, IdsQuery, NewInstance, ProcessInstance};
use dingtalk::{DeptId, DingTalkClient, ProcessCode, ProcessInstanceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::{
    Approval, ApprovalFilter, ApprovalStatus, ApprovalUpdate, Event, IdentityKey, Job, Millis,
    NewApproval, NewJob, NewTransfer, NewWebhookMessage, Store, StoreError,
};

use super::form::{FieldError, FormTemplate, convert};
use super::options::BridgeOptions;
use crate::clock::now_ms;
use crate::jobs::inbox::EventSubscriber;
use crate::jobs::{JobContext, JobEffects, JobError, JobHandler, OutboxEffect};

pub const RECIPE: &str = "approval_bridge";
pub const SYNC_KIND: &str = "approval_bridge.sync";

/// The backfill poll runs every 5 minutes unless the flow sets its own `schedule`.
pub const DEFAULT_SCHEDULE: &str = "0 */5 * * * *";

/// A template's schema is read again after this long (templates change rarely).
const SCHEMA_TTL: Duration = Duration::from_secs(600);

/// Who starts the approval: a DingTalk userid, or an in-house id the identity table resolves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Originator {
    UserId(String),
    By(OriginatorKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OriginatorKey {
    Userid(String),
    JobNumber(String),
    Mobile(String),
    EhrNumber(String),
    KingdeeUser(String),
}

/// One approval step of a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverInput {
    /// `and` (会签), `or` (或签) or `none` (one approver).
    #[serde(rename = "type", default = "step_none")]
    pub kind: String,
    pub users: Vec<String>,
}

fn step_none() -> String {
    "none".into()
}

/// What an in-house system sends to start an approval.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A template alias of the flow or its process code.
    pub template: String,
    pub originator: Originator,
    /// The originator's department; the first one when absent.
    #[serde(default)]
    pub dept_id: Option<i64>,
    /// The caller's own reference, echoed in every webhook.
    #[serde(default)]
    pub business_key: Option<String>,
    /// Form values as plain JSON, by label, component id or alias.
    pub form: Map<String, Value>,
    #[serde(default)]
    pub approvers: Vec<ApproverInput>,
    #[serde(default)]
    pub cc: Vec<String>,
    /// `start`, `finish` or `start_finish`.
    #[serde(default)]
    pub cc_position: Option<String>,
}

/// Why an approval was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request is wrong: every bad field, with the fix.
    #[error("invalid request: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// DingTalk did not create the instance. `retryable`: try again later (the approval is
    /// stored as failed either way, and the idempotency key is released when retryable).
    #[error("DingTalk: {message}")]
    DingTalk {
        retryable: bool,
        retry_after: Option<Duration>,
        message: String,
        approval: Option<Box<Approval>>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field_error(field: &str, reason: impl Into<String>, reason_zh: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: reason.into(),
        reason_zh: reason_zh.into(),
    }
}

/// One `approval_bridge` flow.
pub struct ApprovalBridge {
    pub flow: String,
    pub options: BridgeOptions,
    pub queue: String,
    dingtalk: DingTalkClient,
    store: Arc<dyn Store>,
    schemas: Mutex<HashMap<String, (Instant, Arc<FormTemplate>)>>,
}

impl ApprovalBridge {
    pub fn new(
        flow: String,
        options: BridgeOptions,
        queue: String,
        dingtalk: DingTalkClient,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            flow,
            options,
            queue,
            dingtalk,
            store,
            schemas: Mutex::new(HashMap::new()),
        }
    }

    async fn template(&self, process_code: &str) -> Result<Arc<FormTemplate>, dingtalk::Error> {
        if let Some((at, t)) = self
            .schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(process_code)
            && at.elapsed() < SCHEMA_TTL
        {
            return Ok(Arc::clone(t));
        }
        let schema = self
            .dingtalk
            .approval_form_schema(&ProcessCode(process_code.to_owned()))
            .await?;
        let t = Arc::new(FormTemplate::from_schema(&schema));
        self.schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(process_code.to_owned(), (Instant::now(), Arc::clone(&t)));
        Ok(t)
    }

    async fn resolve_originator(&self, o: &Originator) -> Result<String, StartError> {
        let (key, label, value) = match o {
            Originator::UserId(u) | Originator::By(OriginatorKey::Userid(u)) => {
                return if u.trim().is_empty() {
                    Err(StartError::Invalid(vec![field_error(
                        "originator",
                        "is empty; give a DingTalk userid or {\"job_number\": …}",
                        "不能为空；请填写钉钉 userid 或 {\"job_number\": …}",
                    )]))
                } else {
                    Ok(u.clone())
                };
            }
            Originator::By(OriginatorKey::JobNumber(v)) => {
                (IdentityKey::JobNumber(v.clone()), "job_number", v)
            }
            Originator::By(OriginatorKey::Mobile(v)) => {
                (IdentityKey::Mobile(v.clone()), "mobile", v)
            }
            Originator::By(OriginatorKey::EhrNumber(v)) => {
                (IdentityKey::EhrNumber(v.clone()), "ehr_number", v)
            }
            Originator::By(OriginatorKey::KingdeeUser(v)) => {
                (IdentityKey::KingdeeUser(v.clone()), "kingdee_user", v)
            }
        };
        match self.store.find_identity(&key).await? {
            Some(i) => Ok(i.fields.dingtalk_userid),
            None => Err(StartError::Invalid(vec![field_error(
                &format!("originator.{label}"),
                format!(
                    "no person with {label} `{value}` in the identity table; run the org sync (dingbridge sync run …) or give the DingTalk userid"
                ),
                format!(
                    "身份映射表中没有 {label} 为 `{value}` 的人员；请先运行通讯录同步，或直接填写钉钉 userid"
                ),
            )])),
        }
    }

    fn approver_steps(req: &StartRequest) -> Result<Vec<ApproverStep>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut steps = Vec::new();
        for (i, a) in req.approvers.iter().enumerate() {
            let action = match a.kind.to_ascii_lowercase().as_str() {
                "and" => ActionType::And,
                "or" => ActionType::Or,
                "none" => ActionType::None,
                other => {
                    errors.push(field_error(
                        &format!("approvers[{i}].type"),
                        format!("`{other}` is not a step type; use and, or or none"),
                        format!(
                            "`{other}` 不是审批方式；可用 and（会签）、or（或签）、none（单人）"
                        ),
                    ));
                    continue;
                }
            };
            let enough = match action {
                ActionType::None => a.users.len() == 1,
                _ => a.users.len() >= 2,
            };
            if !enough {
                errors.push(field_error(
                    &format!("approvers[{i}].users"),
                    "a `none` step has exactly one user; `and`/`or` steps need two or more",
                    "单人审批只能有一人；会签/或签至少两人",
                ));
                continue;
            }
            steps.push(ApproverStep {
                action_type: action,
                user_ids: a.users.iter().cloned().map(UserId).collect(),
            });
        }
        if steps.len() > 20 {
            errors.push(field_error(
                "approvers",
                "at most 20 steps (DingTalk's limit)",
                "审批节点最多 20 个（钉钉限制）",
            ));
        }
        if errors.is_empty() {
            Ok(steps)
        } else {
            Err(errors)
        }
    }

    /// Check, store and start one approval. `id` is the hub's id for it (new per request).
    pub async fn start(
        &self,
        api_key_id: Option<i64>,
        req: &StartRequest,
    ) -> Result<Approval, StartError> {
        let mut errors = Vec::new();
        let process_code = match self.options.process_code(&req.template) {
            Some(c) => Some(c.to_owned()),
            None => {
                errors.push(field_error(
                    "template",
                    format!(
                        "`{}` is not a template of flow `{}`; use one of: {}",
                        req.template,
                        self.flow,
                        self.options
                            .templates
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!(
                        "`{}` 不是流程 `{}` 的审批模板；可用：{}",
                        req.template,
                        self.flow,
                        self.options
                            .templates
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("、")
                    ),
                ));
                None
            }
        };
        let originator = match self.resolve_originator(&req.originator).await {
            Ok(o) => Some(o),
            Err(StartError::Invalid(e)) => {
                errors.extend(e);
                None
            }
            Err(e) => return Err(e),
        };
        let steps = match Self::approver_steps(req) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(e);
                Vec::new()
            }
        };
        if req.cc.len() > 50 {
            errors.push(field_error("cc", "at most 50 people", "抄送人最多 50 个"));
        }
        let cc_position = match req.cc_position.as_deref().map(str::to_ascii_uppercase) {
            None => None,
            Some(p) if matches!(p.as_str(), "START" | "FINISH" | "START_FINISH") => Some(p),
            Some(p) => {
                errors.push(field_error(
                    "cc_position",
                    format!("`{p}` is not start, finish or start_finish"),
                    format!("`{p}` 无效；可用 start、finish、start_finish"),
                ));
                None
            }
        };
        let form = match &process_code {
            Some(code) => {
                let template = self
                    .template(code)
                    .await
                    .map_err(|e| dingtalk_failure(e, None))?;
                match convert(&template, &req.form) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        errors.extend(e.into_iter().map(|mut fe| {
                            fe.field = format!("form.{}", fe.field);
                            fe
                        }));
                        None
                    }
                }
            }
            None => None,
        };
        let (Some(process_code), Some(originator), Some(form), true) =
            (process_code, originator, form, errors.is_empty())
        else {
            return Err(StartError::Invalid(errors));
        };

        let now = now_ms();
        let id = format!("apv_{}", uuid::Uuid::now_v7().simple());
        let new = NewApproval {
            id: id.clone(),
            flow: self.flow.clone(),
            api_key_id,
            process_code: process_code.clone(),
            originator: originator.clone(),
            business_key: req.business_key.clone(),
            request: serde_json::to_value(req).unwrap_or(Value::Null),
            created_at: now,
        };
        // Stored before DingTalk is asked, so the approval is never unknown to the hub.
        let mut tx = self.store.begin().await?;
        tx.insert_approval(&new).await?;
        tx.commit().await?;

        let mut instance = NewInstance::new(
            process_code.clone(),
            originator.clone(),
            Some(DeptId(req.dept_id.unwrap_or(-1))),
            form,
        );
        instance.approvers = steps;
        instance.cc_list = req.cc.iter().cloned().map(UserId).collect();
        instance.cc_position = cc_position;
        match self.dingtalk.approval_create(&instance).await {
            Ok(instance_id) => {
                let mut tx = self.store.begin().await?;
                tx.update_approval(&ApprovalUpdate {
                    id: id.clone(),
                    instance_id: Some(instance_id.0.clone()),
                    status: Some(ApprovalStatus::Running),
                    now: now_ms(),
                    ..ApprovalUpdate::default()
                })
                .await?;
                // The first read of the instance and its "started" message: the start event
                // may have been processed before the instance id was recorded.
                tx.enqueue(&self.sync_job(&instance_id.0, &format!("created:{id}"), now_ms()))
                    .await?;
                tx.commit().await?;
                crate::worker::wake_workers(1);
            }
            Err(e) => {
                let mut tx = self.store.begin().await?;
                tx.update_approval(&ApprovalUpdate {
                    id: id.clone(),
                    status: Some(ApprovalStatus::Failed),
                    snapshot: Some(json!({ "error": e.to_string(), "code": e.code() })),
                    now: now_ms(),
                    ..ApprovalUpdate::default()
                })
                .await?;
                tx.commit().await?;
                let stored = self.store.get_approval(&id).await?;
                return Err(dingtalk_failure(e, stored));
            }
        }
        self.store
            .get_approval(&id)
            .await?
            .ok_or_else(|| StartError::Store(StoreError::NotFound(id)))
    }

    /// Terminate (撤销) a running approval in DingTalk, as `operator` (the originator when
    /// `None`). The outcome arrives like any other change (event, then webhook).
    pub async fn cancel(
        &self,
        approval: &Approval,
        operator: Option<&str>,
        remark: &str,
    ) -> Result<(), CancelError> {
        let Some(instance) = &approval.instance_id else {
            return Err(CancelError::NotStarted);
        };
        if approval.status.is_final() {
            return Err(CancelError::Finished(approval.status));
        }
        let operator = UserId(operator.unwrap_or(&approval.fields.originator).to_owned());
        self.dingtalk
            .approval_terminate(
                &ProcessInstanceId(instance.clone()),
                Some(&operator),
                remark,
            )
            .await
            .map_err(|e| CancelError::DingTalk {
                retryable: e.is_retryable(),
                retry_after: e.retry_after(),
                message: e.to_string(),
            })?;
        let now = now_ms();
        self.store
            .enqueue(&self.sync_job(instance, &format!("cancel:{now}"), now))
            .await?;
        Ok(())
    }

    /// The job that reads one instance and records what changed.
    pub fn sync_job(&self, instance_id: &str, cause: &str, now: Millis) -> NewJob {
        NewJob::new(
            SYNC_KIND,
            json!({ "flow": self.flow, "instance_id": instance_id }),
            now,
        )
        .flow(self.flow.clone())
        .queue(self.queue.clone())
        .idempotency_key(format!("apvsync:{}:{instance_id}:{cause}", self.flow))
    }

    /// Read the instance and turn what changed into an approval update and webhook messages.
    async fn sync(&self, approval: &Approval, job: &Job) -> Result<JobEffects, JobError> {
        let started = now_ms();
        let Some(instance_id) = approval.instance_id.clone() else {
            return Ok(JobEffects::default());
        };
        let instance = self
            .dingtalk
            .approval_get(&ProcessInstanceId(instance_id.clone()))
            .await?;
        let status = match instance.status.as_str() {
            "COMPLETED" => ApprovalStatus::Completed,
            "TERMINATED" | "CANCELED" => ApprovalStatus::Terminated,
            _ => ApprovalStatus::Running,
        };
        let snapshot = serde_json::to_value(&instance).unwrap_or(Value::Null);
        let messages = self
            .options
            .webhook
            .as_ref()
            .map(|w| messages_for(approval, &instance, &w.endpoint(), started))
            .unwrap_or_default();
        let count = messages.len();
        Ok(JobEffects {
            approvals: vec![ApprovalUpdate {
                id: approval.fields.id.clone(),
                instance_id: None,
                status: Some(status),
                result: instance.result.clone().filter(|r| !r.is_empty()),
                snapshot: Some(snapshot),
                now: started,
            }],
            outbox: messages
                .into_iter()
                .map(|message| OutboxEffect::Add {
                    message,
                    flow: Some(self.flow.clone()),
                })
                .collect(),
            transfers: vec![NewTransfer {
                flow: self.flow.clone(),
                source_key: format!("instance:{instance_id}"),
                target_key: Some(approval.fields.id.clone()),
                job_id: Some(job.id),
                attempt: job.attempts,
                request: None,
                response: Some(
                    json!({ "status": instance.status, "result": instance.result, "tasks": instance.tasks.len(), "messages": count }),
                ),
                outcome: "synced".into(),
                error: None,
                started_at: started,
                duration_ms: now_ms() - started,
            }],
            ..JobEffects::default()
        })
    }

    /// The backfill poll: finished instances of the templates since the oldest open approval.
    async fn backfill(&self, job: &Job, store: &dyn Store) -> Result<JobEffects, JobError> {
        let now = now_ms();
        let mut open: BTreeMap<String, Approval> = BTreeMap::new();
        let mut before = None;
        loop {
            let page = store
                .list_approvals(&ApprovalFilter {
                    flow: Some(self.flow.clone()),
                    status: Some(ApprovalStatus::Running),
                    before: before.clone(),
                    limit: 500,
                    ..ApprovalFilter::default()
                })
                .await?;
            let last = page.last().map(|a| a.fields.id.clone());
            let full = page.len() == 500;
            for a in page {
                if let Some(i) = &a.instance_id {
                    open.insert(i.clone(), a);
                }
            }
            if !full {
                break;
            }
            before = last;
        }
        let floor = now - i64::from(self.options.backfill_days) * 86_400_000;
        let mut enqueue = Vec::new();
        let mut listed = 0usize;
        if !open.is_empty() {
            let mut codes: Vec<&str> = open
                .values()
                .map(|a| a.fields.process_code.as_str())
                .collect();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                let since = open
                    .values()
                    .filter(|a| a.fields.process_code == code)
                    .map(|a| a.fields.created_at)
                    .min()
                    .unwrap_or(now)
                    .saturating_sub(60_000)
                    .max(floor);
                let ids =
                    list_ids(&self.dingtalk, code, since, &["COMPLETED", "TERMINATED"]).await?;
                listed += ids.len();
                for id in ids {
                    if open.contains_key(&id) {
                        enqueue.push(self.sync_job(&id, &format!("backfill:{}", job.id), now));
                    }
                }
            }
        }
        Ok(JobEffects {
            transfers: vec![NewTransfer {
                flow: self.flow.clone(),
                source_key: "backfill".into(),
                target_key: None,
                job_id: Some(job.id),
                attempt: job.attempts,
                request: Some(json!({ "open": open.len() })),
                response: Some(json!({ "listed": listed, "missed": enqueue.len() })),
                outcome: "polled".into(),
                error: None,
                started_at: now,
                duration_ms: now_ms() - now,
            }],
            enqueue,
            ..JobEffects::default()
        })
    }
}

/// Every instance id of `code` created since `since` (ms) in one of `statuses`, all pages.
pub async fn list_ids(
    client: &DingTalkClient,
    code: &str,
    since: Millis,
    statuses: &[&str],
) -> Result<Vec<String>, dingtalk::Error> {
    let query = IdsQuery {
        process_code: ProcessCode(code.to_owned()),
        start_time: since,
        end_time: None,
        user_ids: Vec::new(),
        statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
        size: 20,
    };
    let mut out = Vec::new();
    let mut token = 0i64;
    loop {
        let page = client.approval_list_ids(&query, token).await?;
        out.extend(page.ids.into_iter().map(|i| i.0));
        match page.next.and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n > token => token = n,
            _ => break,
        }
    }
    Ok(out)
}

fn dingtalk_failure(e: dingtalk::Error, approval: Option<Approval>) -> StartError {
    StartError::DingTalk {
        retryable: e.is_retryable(),
        retry_after: e.retry_after(),
        message: e.to_string(),
        approval: approval.map(Box::new),
    }
}

/// Why a cancel was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("the approval has no DingTalk instance (it was never started)")]
    NotStarted,
    #[error("the approval is {} already", .0.as_str())]
    Finished(ApprovalStatus),
    #[error("DingTalk: {message}")]
    DingTalk {
        retryable: bool,
        /// DingTalk's hint when it throttled the call.
        retry_after: Option<Duration>,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The webhook messages an instance's state implies, in canonical order: started; each task
/// (by task id) started, then finished or canceled; then completed or terminated. Ids are
/// derived from the change itself, so computing them again from a later state yields the same
/// ids for the same changes (the outbox keeps one message per id).
pub fn messages_for(
    approval: &Approval,
    instance: &ProcessInstance,
    endpoint: &str,
    now: Millis,
) -> Vec<NewWebhookMessage> {
    let id = &approval.fields.id;
    let base = |status: &str| {
        json!({
            "approval_id": id,
            "instance_id": approval.instance_id,
            "business_key": approval.fields.business_key,
            "process_code": approval.fields.process_code,
            "flow": approval.fields.flow,
            "title": instance.title,
            "status": status,
            "result": instance.result.clone().filter(|r| !r.is_empty()),
        })
    };
    let status = instance.status.to_ascii_lowercase();
    let timestamp = chrono::DateTime::from_timestamp_millis(now)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let message = |suffix: String, kind: &str, data: Value| NewWebhookMessage {
        subject: id.clone(),
        endpoint: endpoint.to_owned(),
        message_id: format!("{id}.{suffix}"),
        event_type: kind.to_owned(),
        payload: json!({ "type": kind, "timestamp": timestamp, "data": data }),
        created_at: now,
    };
    let mut out = vec![message("started".into(), "approval.started", base(&status))];
    let mut tasks: Vec<_> = instance
        .tasks
        .iter()
        .filter(|t| t.task_id.is_some())
        .collect();
    tasks.sort_by_key(|t| t.task_id.map(|t| t.0));
    for t in tasks {
        let tid = t.task_id.map(|t| t.0).unwrap_or_default();
        let task = json!({
            "task_id": tid,
            "userid": t.userid,
            "status": t.task_status,
            "result": t.task_result,
            "activity_id": t.activity_id,
            "create_time": t.create_time,
            "finish_time": t.finish_time,
        });
        let with_task = || {
            let mut d = base(&status);
            d["task"] = task.clone();
            d
        };
        out.push(message(
            format!("task.{tid}.started"),
            "approval.task.started",
            with_task(),
        ));
        match t.task_status.as_deref().unwrap_or("") {
            "COMPLETED" => {
                let result = t
                    .task_result
                    .as_deref()
                    .unwrap_or("NONE")
                    .to_ascii_lowercase();
                out.push(message(
                    format!("task.{tid}.{result}"),
                    "approval.task.finished",
                    with_task(),
                ));
            }
            "CANCELED" | "TERMINATED" => out.push(message(
                format!("task.{tid}.canceled"),
                "approval.task.canceled",
                with_task(),
            )),
            _ => {}
        }
    }
    match instance.status.as_str() {
        "COMPLETED" => out.push(message(
            "completed".into(),
            "approval.completed",
            base(&status),
        )),
        "TERMINATED" | "CANCELED" => {
            out.push(message(
                "terminated".into(),
                "approval.terminated",
                base(&status),
            ));
        }
        _ => {}
    }
    out
}

/// The payload of `approval_bridge.sync`.
#[derive(Debug, Deserialize)]
struct SyncRef {
    flow: String,
    instance_id: String,
}

/// `approval_bridge.sync` and `approval_bridge` (the backfill poll).
pub struct BridgeJobs {
    pub bridges: Arc<HashMap<String, Arc<ApprovalBridge>>>,
}

impl BridgeJobs {
    fn bridge(&self, flow: Option<&str>) -> Result<&Arc<ApprovalBridge>, JobError> {
        flow.and_then(|f| self.bridges.get(f)).ok_or_else(|| {
            JobError::permanent(format!(
                "flow `{}` is not an enabled approval_bridge flow on this node",
                flow.unwrap_or("")
            ))
        })
    }
}

#[async_trait]
impl JobHandler for BridgeJobs {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        if job.kind == RECIPE {
            let bridge = self.bridge(job.flow.as_deref())?;
            return bridge.backfill(job, ctx.store.as_ref()).await;
        }
        let r: SyncRef = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(format!(
                "{SYNC_KIND} payload: {e}; expected flow, instance_id"
            ))
        })?;
        let bridge = self.bridge(Some(&r.flow))?;
        match ctx.store.find_approval_by_instance(&r.instance_id).await? {
            Some(a) if a.fields.flow == r.flow => bridge.sync(&a, job).await,
            // Not started through the hub (someone used the DingTalk app), or started so
            // recently that its id is not recorded yet: then the `created:` sync enqueued when
            // it is recorded reads the instance, this change included.
            Some(_) | None => Ok(JobEffects::default()),
        }
    }
}

/// Approval events of a bridge's templates become sync jobs.
pub struct BridgeEvents {
    pub bridge: Arc<ApprovalBridge>,
}

impl EventSubscriber for BridgeEvents {
    fn jobs_for(&self, event: &Event, now: Millis) -> Vec<NewJob> {
        if event.connection != self.bridge.options.source
            || !matches!(
                event.event_type.as_str(),
                "bpms_instance_change" | "bpms_task_change"
            )
        {
            return Vec::new();
        }
        let text = |k: &str| event.payload.get(k).and_then(Value::as_str);
        let (Some(instance), Some(code)) = (text("processInstanceId"), text("processCode")) else {
            return Vec::new();
        };
        if self.bridge.options.process_code(code).is_none() {
            return Vec::new();
        }
        vec![
            self.bridge
                .sync_job(instance, &format!("event:{}", event.event_id), now),
        ]
    }
}
