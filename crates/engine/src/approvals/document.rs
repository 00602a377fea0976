//! `approval_to_document`: a DingTalk approval that finishes with `agree` becomes a Kingdee bill,
//! exactly once.
//!
//! The saga is one job per step, each step's outcome committed with its job's ack: the link
//! (flow, `instance:<id>`) records the step reached and the bill number, the transfer log every
//! attempt, and the ack enqueues the next step. A crash repeats at most the step in flight, and
//! every step first finds out what an interrupted attempt already did:
//!
//! 1. `save`: read the instance, map it (detail rows → entry rows), then **look the bill up by
//!    the field that carries the instance id** and Save only when there is none. A crash
//!    between Save and its commit finds the bill on the next attempt instead of saving twice.
//! 2. `submit`, 3. `audit` (each optional): a refusal is checked against the bill's status, so
//!    a bill an interrupted attempt submitted (B) or audited (C) counts as done.
//! 4. `writeback`: the bill number as a comment on the instance and/or a webhook message.
//!
//! A revoked approval (`terminate` after the bill exists) runs `approval_to_document.revoke`:
//! UnAudit/withdraw and Delete, UnAudit only, or a dead letter for a person (`on_revoke`).
//! The recipe job itself (scheduled) is the backfill poll: approved instances of the templates
//! the events missed (`listids`) get their `save` job; the idempotency key of that job makes an
//! instance found twice (event and poll) one job.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dingtalk::approvals::{FieldValue, FormField, ProcessInstance};
use dingtalk::{DingTalkClient, ProcessInstanceId, UserId};
use kingdee::{BillNo, FormId, KingdeeClient, Model, QueryRequest, SaveOptions, Selection};
use mapping::Mapping;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::{Event, IdentityKey, Job, Link, Millis, NewJob, NewTransfer, NewWebhookMessage, Store};

use super::bridge::list_ids;
use super::options::{DocumentOptions, EntryOptions, OnRevoke, OptionsError};
use crate::clock::now_ms;
use crate::failpoint;
use crate::jobs::inbox::EventSubscriber;
use crate::jobs::{JobContext, JobEffects, JobError, JobHandler, OutboxEffect};

pub const RECIPE: &str = "approval_to_document";
pub const STEP_KIND: &str = "approval_to_document.step";
pub const REVOKE_KIND: &str = "approval_to_document.revoke";

/// The backfill poll runs every 5 minutes unless the flow sets its own `schedule`.
pub const DEFAULT_SCHEDULE: &str = "0 */5 * * * *";

/// Link steps, in order. `skipped` (not approved), `revoked` (revoked before a bill existed)
/// and `compensated` (the bill was undone) end the saga.
pub mod steps {
    pub const SAVED: &str = "saved";
    pub const SUBMITTED: &str = "submitted";
    pub const AUDITED: &str = "audited";
    pub const DONE: &str = "done";
    pub const SKIPPED: &str = "skipped";
    pub const REVOKED: &str = "revoked";
    pub const COMPENSATED: &str = "compensated";
}

/// The step a job performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Save,
    Submit,
    Audit,
    Writeback,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Save => "save",
            Step::Submit => "submit",
            Step::Audit => "audit",
            Step::Writeback => "writeback",
        }
    }
    /// Claim priority: later steps first.
    fn priority(self) -> i32 {
        match self {
            Step::Save => 1,
            Step::Submit => 2,
            Step::Audit => 3,
            Step::Writeback => 4,
        }
    }
    /// The link step that means this step is done.
    fn done_mark(self) -> &'static str {
        match self {
            Step::Save => steps::SAVED,
            Step::Submit => steps::SUBMITTED,
            Step::Audit => steps::AUDITED,
            Step::Writeback => steps::DONE,
        }
    }
    /// How far along a link step is (for "is this step done already").
    fn rank(link_step: &str) -> u8 {
        match link_step {
            steps::SAVED => 1,
            steps::SUBMITTED => 2,
            steps::AUDITED => 3,
            steps::DONE => 4,
            _ => 0,
        }
    }
}

/// The payload of a step job or a revoke job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRef {
    pub flow: String,
    pub instance_id: String,
    #[serde(default)]
    pub step: Option<Step>,
    /// Set from `submit` on: the bill, and who started the approval (the comment's author).
    #[serde(default)]
    pub bill_no: Option<String>,
    #[serde(default)]
    pub originator: Option<String>,
}

/// Why a flow cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DocumentSetupError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("flow `{flow}`: {message}")]
    Mapping { flow: String, message: String },
}

/// One `approval_to_document` flow, built from configuration.
pub struct DocumentFlow {
    pub flow: String,
    pub options: DocumentOptions,
    pub queue: String,
    dingtalk: DingTalkClient,
    kingdee: KingdeeClient,
    header: Mapping,
    entries: Vec<(EntryOptions, Mapping)>,
}

impl DocumentFlow {
    pub fn new(
        flow: String,
        options: DocumentOptions,
        queue: String,
        dingtalk: DingTalkClient,
        kingdee: KingdeeClient,
    ) -> Result<Self, DocumentSetupError> {
        let header =
            Mapping::from_value(&options.fields).map_err(|e| DocumentSetupError::Mapping {
                flow: flow.clone(),
                message: format!("options.fields: {e}"),
            })?;
        let mut entries = Vec::new();
        for (i, e) in options.entries.iter().enumerate() {
            let m = Mapping::from_value(&e.fields).map_err(|err| DocumentSetupError::Mapping {
                flow: flow.clone(),
                message: format!("options.entries[{i}] (`{}`).fields: {err}", e.key),
            })?;
            entries.push((e.clone(), m));
        }
        Ok(Self {
            flow,
            options,
            queue,
            dingtalk,
            kingdee,
            header,
            entries,
        })
    }

    fn form(&self) -> FormId {
        FormId::new(self.options.form_id.clone())
    }

    fn link_key(instance_id: &str) -> String {
        format!("instance:{instance_id}")
    }

    /// The job of one step (its key makes a step of an instance one job, however often it is
    /// asked for).
    pub fn step_job(&self, r: &StepRef, step: Step, now: Millis) -> NewJob {
        let payload = StepRef {
            step: Some(step),
            ..r.clone()
        };
        NewJob::new(
            STEP_KIND,
            serde_json::to_value(&payload).unwrap_or(Value::Null),
            now,
        )
        .flow(self.flow.clone())
        .queue(self.queue.clone())
        // Later steps first: in a burst, sagas under way finish before new ones start, so
        // bills come out steadily instead of all at the end.
        .priority(step.priority())
        .idempotency_key(format!(
            "a2d:{}:{}:{}",
            self.flow,
            r.instance_id,
            step.as_str()
        ))
    }

    fn first_job(&self, instance_id: &str, now: Millis) -> NewJob {
        self.step_job(&self.start_ref(instance_id), Step::Save, now)
    }

    fn start_ref(&self, instance_id: &str) -> StepRef {
        StepRef {
            flow: self.flow.clone(),
            instance_id: instance_id.to_owned(),
            step: None,
            bill_no: None,
            originator: None,
        }
    }

    pub fn revoke_job(&self, instance_id: &str, now: Millis) -> NewJob {
        NewJob::new(
            REVOKE_KIND,
            serde_json::to_value(self.start_ref(instance_id)).unwrap_or(Value::Null),
            now,
        )
        .flow(self.flow.clone())
        .queue(self.queue.clone())
        .idempotency_key(format!("a2d:{}:{instance_id}:revoke", self.flow))
    }

    fn next_step(&self, done: Step) -> Option<Step> {
        match done {
            Step::Save if self.options.submit => Some(Step::Submit),
            Step::Save | Step::Submit if self.options.audit => Some(Step::Audit),
            Step::Save | Step::Submit | Step::Audit
                if self.options.comment || self.options.webhook.is_some() =>
            {
                Some(Step::Writeback)
            }
            _ => None,
        }
    }

    /// The source record the mapping sees: the instance's fields, `form` (label → value, detail
    /// tables as arrays of row objects), `finish_date` (YYYY-MM-DD, UTC+8) and `originator`
    /// (the person: userid, name, job_number, mobile, email, main_dept_id …).
    pub fn source_record(
        instance_id: &str,
        inst: &ProcessInstance,
        originator: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("instance_id".into(), instance_id.into());
        m.insert("title".into(), inst.title.clone().into());
        m.insert("business_id".into(), json!(inst.business_id));
        m.insert("status".into(), inst.status.clone().into());
        m.insert("result".into(), json!(inst.result));
        m.insert("originator_userid".into(), json!(inst.originator_userid));
        m.insert("originator_dept_id".into(), json!(inst.originator_dept_id));
        m.insert(
            "originator_dept_name".into(),
            json!(inst.originator_dept_name),
        );
        m.insert("create_time".into(), json!(inst.create_time));
        m.insert("finish_time".into(), json!(inst.finish_time));
        m.insert(
            "finish_date".into(),
            json!(inst.finish_time.as_deref().and_then(local_date)),
        );
        m.insert(
            "create_date".into(),
            json!(inst.create_time.as_deref().and_then(local_date)),
        );
        m.insert("originator".into(), Value::Object(originator));
        let mut form = Map::new();
        for v in &inst.form_component_values {
            if let Some(name) = &v.name {
                form.insert(name.clone(), field_json(&v.typed()));
            }
        }
        m.insert("form".into(), Value::Object(form));
        m
    }

    /// Map the record to the bill's `Model`: header rules in their order, the instance id in
    /// its field, then each entry's rows.
    pub fn model(&self, instance_id: &str, record: &Map<String, Value>) -> Result<Model, JobError> {
        let mapping_error = |e: mapping::MappingError| {
            JobError::permanent(format!(
                "mapping: field `{}`: {} (fix the flow's mapping, then `dingbridge dlq replay`)",
                e.field, e.reason
            ))
        };
        let header = self.header.apply(record).map_err(mapping_error)?;
        let mut model = Model::new();
        for (k, v) in header {
            model.set(k, v);
        }
        model.set(self.options.instance_field.clone(), instance_id);
        // Entries with the same key add their rows in order (a voucher's debit rows from the
        // detail table, then its one credit row from the header).
        let mut by_key: Vec<(String, Vec<Model>)> = Vec::new();
        for (entry, rules) in &self.entries {
            let rows = match lookup(record, &entry.from) {
                Some(Value::Array(rows)) => rows.clone(),
                Some(one @ Value::Object(_)) => vec![one.clone()],
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(JobError::permanent(format!(
                        "mapping: entry `{}`: `{}` is {}, not a detail table",
                        entry.key,
                        entry.from,
                        kind_of(other)
                    )));
                }
            };
            let at = match by_key.iter().position(|(k, _)| *k == entry.key) {
                Some(i) => i,
                None => {
                    by_key.push((entry.key.clone(), Vec::new()));
                    by_key.len() - 1
                }
            };
            for (i, row) in rows.iter().enumerate() {
                let mut source = row.as_object().cloned().unwrap_or_default();
                source.insert("row".into(), json!(i + 1));
                source.insert("header".into(), Value::Object(record.clone()));
                let out = rules.apply(&source).map_err(|e| {
                    JobError::permanent(format!(
                        "mapping: field `{}[{}].{}`: {} (fix the flow's mapping, then `dingbridge dlq replay`)",
                        entry.key,
                        i + 1,
                        e.field,
                        e.reason
                    ))
                })?;
                let mut m = Model::new();
                for (k, v) in out {
                    m.set(k, v);
                }
                by_key[at].1.push(m);
            }
        }
        for (key, rows) in by_key {
            model = model.entry(key, rows);
        }
        Ok(model)
    }

    /// The person who started the approval: from the identity table, else from DingTalk.
    async fn originator(
        &self,
        store: &dyn Store,
        userid: &str,
    ) -> Result<Map<String, Value>, JobError> {
        if let Some(i) = store
            .find_identity(&IdentityKey::DingtalkUserId(userid.to_owned()))
            .await?
            && i.fields.job_number.is_some()
        {
            let f = i.fields;
            let mut m = Map::new();
            m.insert("userid".into(), f.dingtalk_userid.into());
            m.insert("job_number".into(), json!(f.job_number));
            m.insert("mobile".into(), json!(f.mobile));
            m.insert("email".into(), json!(f.email));
            m.insert("kingdee_user".into(), json!(f.kingdee_user));
            m.insert("ehr_number".into(), json!(f.ehr_number));
            return Ok(m);
        }
        let user = self.dingtalk.user_get(&UserId(userid.to_owned())).await?;
        Ok(crate::orgsync::source::user_record(&user))
    }

    /// The bill carrying this instance id, if Kingdee has one: (FID, bill number, status).
    async fn find_bill(
        &self,
        instance_id: &str,
    ) -> Result<Option<(String, String, String)>, JobError> {
        let filter = format!(
            "{} = '{}'",
            self.options.instance_field,
            instance_id.replace('\'', "''")
        );
        let rows = self
            .kingdee
            .execute_bill_query(
                &QueryRequest::new(
                    self.form(),
                    [
                        pk_field(&self.options.form_id),
                        "FBillNo",
                        "FDocumentStatus",
                    ],
                )
                .filter(filter)
                .top(2),
            )
            .await?;
        Ok(rows.first().map(|r| {
            let s = |i: usize| r.get(i).map(text).unwrap_or_default();
            (s(0), s(1), s(2))
        }))
    }

    async fn bill_status(&self, bill_no: &str) -> Result<Option<String>, JobError> {
        let rows = self
            .kingdee
            .execute_bill_query(
                &QueryRequest::new(self.form(), ["FDocumentStatus"])
                    .filter(format!("FBillNo = '{}'", bill_no.replace('\'', "''")))
                    .top(1),
            )
            .await?;
        Ok(rows.first().and_then(|r| r.first()).map(text))
    }

    fn transfer(
        &self,
        job: &Job,
        r: &StepRef,
        bill: Option<&str>,
        outcome: &str,
        started: Millis,
    ) -> NewTransfer {
        NewTransfer {
            flow: self.flow.clone(),
            source_key: Self::link_key(&r.instance_id),
            target_key: bill.map(str::to_owned),
            job_id: Some(job.id),
            attempt: job.attempts,
            request: None,
            response: None,
            outcome: outcome.to_owned(),
            error: None,
            started_at: started,
            duration_ms: now_ms() - started,
        }
    }

    fn link(&self, r: &StepRef, bill: Option<&str>, step: &str, fid: Option<&str>) -> Link {
        Link {
            flow: self.flow.clone(),
            source_key: Self::link_key(&r.instance_id),
            target_key: bill.map(str::to_owned),
            step: step.to_owned(),
            payload_hash: fid.map(str::to_owned),
            updated_at: now_ms(),
        }
    }

    /// Effects of a step that is finished: the link advanced, the transfer row, the next job.
    fn advance(
        &self,
        r: &StepRef,
        done: Step,
        bill: &str,
        fid: Option<&str>,
        transfer: NewTransfer,
    ) -> JobEffects {
        let next = self.next_step(done);
        let step = if next.is_none() {
            steps::DONE
        } else {
            done.done_mark()
        };
        let now = now_ms();
        let mut r2 = r.clone();
        r2.bill_no = Some(bill.to_owned());
        JobEffects {
            links: vec![self.link(r, Some(bill), step, fid)],
            transfers: vec![transfer],
            enqueue: next
                .map(|s| self.step_job(&r2, s, now))
                .into_iter()
                .collect(),
            ..JobEffects::default()
        }
    }

    async fn run_step(
        &self,
        job: &Job,
        r: &StepRef,
        store: &dyn Store,
    ) -> Result<JobEffects, JobError> {
        let step = r.step.unwrap_or(Step::Save);
        let started = now_ms();
        let link = store
            .get_link(&self.flow, &Self::link_key(&r.instance_id))
            .await?;
        if let Some(l) = &link {
            if matches!(
                l.step.as_str(),
                steps::REVOKED | steps::COMPENSATED | steps::SKIPPED
            ) {
                return Ok(JobEffects {
                    transfers: vec![NewTransfer {
                        response: Some(json!({ "link_step": l.step })),
                        ..self.transfer(job, r, l.target_key.as_deref(), "stopped", started)
                    }],
                    ..JobEffects::default()
                });
            }
            if Step::rank(&l.step) >= Step::rank(step.done_mark()) {
                // Done by an earlier job (e.g. before a replay): hand on to the next step.
                let bill = l.target_key.clone().unwrap_or_default();
                let mut e = self.advance(
                    r,
                    step,
                    &bill,
                    l.payload_hash.as_deref(),
                    self.transfer(job, r, Some(&bill), "already_done", started),
                );
                e.links.clear();
                return Ok(e);
            }
        }
        match step {
            Step::Save => self.save(job, r, store, started).await,
            Step::Submit | Step::Audit => self.operate(job, r, step, link.as_ref(), started).await,
            Step::Writeback => self.writeback(job, r, link.as_ref(), started).await,
        }
    }

    async fn save(
        &self,
        job: &Job,
        r: &StepRef,
        store: &dyn Store,
        started: Millis,
    ) -> Result<JobEffects, JobError> {
        let instance = self
            .dingtalk
            .approval_get(&ProcessInstanceId(r.instance_id.clone()))
            .await?;
        let originator = instance.originator_userid.as_ref().map(|u| u.0.clone());
        if !instance.is_approved() {
            let step = if instance.status == "RUNNING" || instance.status == "NEW" {
                // Not finished yet: the finish event or the poll will ask again.
                return Err(JobError::Retryable {
                    message: format!("instance {} is still {}", r.instance_id, instance.status),
                    retry_after: Some(std::time::Duration::from_secs(30)),
                });
            } else if instance.status == "TERMINATED" {
                steps::REVOKED
            } else {
                steps::SKIPPED
            };
            return Ok(JobEffects {
                links: vec![self.link(r, None, step, None)],
                transfers: vec![NewTransfer {
                    response: Some(json!({ "status": instance.status, "result": instance.result })),
                    ..self.transfer(job, r, None, step, started)
                }],
                ..JobEffects::default()
            });
        }
        let person = match &originator {
            Some(u) => self.originator(store, u).await?,
            None => Map::new(),
        };
        let record = Self::source_record(&r.instance_id, &instance, person);
        let model = self.model(&r.instance_id, &record)?;
        let request = Some(model.clone().into_value());
        let mut r = r.clone();
        r.originator = originator;
        // Lookup before save: an interrupted attempt may have saved it already.
        if let Some((fid, bill_no, status)) = self.find_bill(&r.instance_id).await? {
            let t = NewTransfer {
                request,
                response: Some(
                    json!({ "FID": fid, "FBillNo": bill_no, "FDocumentStatus": status }),
                ),
                ..self.transfer(job, &r, Some(&bill_no), "found", started)
            };
            return Ok(self.advance(&r, Step::Save, &bill_no, Some(&fid), t));
        }
        let saved = self
            .kingdee
            .save(&self.form(), &model, &SaveOptions::default())
            .await?;
        failpoint::hit("approval_to_document.after_save");
        let fid = saved.first_id().map(|i| i.as_str().to_owned());
        let bill_no = saved
            .number
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .or_else(|| {
                saved
                    .status
                    .success_entitys
                    .iter()
                    .find_map(|e| e.number.as_ref().map(|n| n.as_str().to_owned()))
            })
            .ok_or_else(|| {
                JobError::retryable("Kingdee saved the bill but returned no bill number")
            })?;
        let t = NewTransfer {
            request,
            response: Some(json!({ "FID": fid, "FBillNo": bill_no })),
            ..self.transfer(job, &r, Some(&bill_no), "saved", started)
        };
        Ok(self.advance(&r, Step::Save, &bill_no, fid.as_deref(), t))
    }

    async fn operate(
        &self,
        job: &Job,
        r: &StepRef,
        step: Step,
        link: Option<&Link>,
        started: Millis,
    ) -> Result<JobEffects, JobError> {
        let bill_no = r
            .bill_no
            .clone()
            .or_else(|| link.and_then(|l| l.target_key.clone()))
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "{}: no bill number recorded for instance {}",
                    step.as_str(),
                    r.instance_id
                ))
            })?;
        let fid = link.and_then(|l| l.payload_hash.clone());
        let sel = Selection::numbers([BillNo::new(bill_no.clone())]);
        let reached: &[&str] = if step == Step::Submit {
            &["B", "C"]
        } else {
            &["C"]
        };
        // A repeated attempt may follow a crash right after the operation: ask Kingdee first.
        if job.attempts > 1
            && let Some(s) = self.bill_status(&bill_no).await?
            && reached.contains(&s.as_str())
        {
            let t = self.transfer(job, r, Some(&bill_no), "already_done", started);
            return Ok(self.advance(r, step, &bill_no, fid.as_deref(), t));
        }
        let result = match step {
            Step::Submit => self.kingdee.submit(&self.form(), &sel).await,
            _ => self.kingdee.audit(&self.form(), &sel).await,
        };
        let outcome = match result {
            Ok(_) => {
                failpoint::hit(&format!("approval_to_document.after_{}", step.as_str()));
                "done"
            }
            // Refused: maybe an interrupted attempt did it already.
            Err(e) => match self.bill_status(&bill_no).await {
                Ok(Some(s)) if reached.contains(&s.as_str()) => "already_done",
                _ => return Err(e.into()),
            },
        };
        let t = NewTransfer {
            request: Some(json!({ "op": step.as_str() })),
            ..self.transfer(job, r, Some(&bill_no), outcome, started)
        };
        Ok(self.advance(r, step, &bill_no, fid.as_deref(), t))
    }

    async fn writeback(
        &self,
        job: &Job,
        r: &StepRef,
        link: Option<&Link>,
        started: Millis,
    ) -> Result<JobEffects, JobError> {
        let bill_no = r
            .bill_no
            .clone()
            .or_else(|| link.and_then(|l| l.target_key.clone()))
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "writeback: no bill number recorded for instance {}",
                    r.instance_id
                ))
            })?;
        let instance_id = ProcessInstanceId(r.instance_id.clone());
        let text = self
            .options
            .comment_text
            .replace("{bill_no}", &bill_no)
            .replace("{form_id}", &self.options.form_id);
        let mut commented = false;
        if self.options.comment {
            let author = self
                .options
                .comment_user
                .clone()
                .or_else(|| r.originator.clone());
            // A repeated attempt first looks for its comment, so a crash after commenting does
            // not comment twice.
            let exists = if job.attempts > 1 {
                let inst = self.dingtalk.approval_get(&instance_id).await?;
                inst.operation_records.iter().any(|rec| {
                    rec.get("remark")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s == text)
                })
            } else {
                false
            };
            match (author, exists) {
                (_, true) => {}
                (Some(author), false) => {
                    self.dingtalk
                        .approval_add_comment(&instance_id, &text, &UserId(author))
                        .await?;
                    commented = true;
                }
                (None, false) => {
                    return Err(JobError::permanent(
                        "writeback: no comment author (set options.comment_user)",
                    ));
                }
            }
        }
        let now = now_ms();
        let outbox = self
            .document_message(r, "document.created", json!({ "bill_no": bill_no }), now)
            .into_iter()
            .collect();
        let t = NewTransfer {
            request: Some(json!({ "comment": text })),
            response: Some(json!({ "commented": commented })),
            ..self.transfer(job, r, Some(&bill_no), "written_back", started)
        };
        Ok(JobEffects {
            links: vec![self.link(
                r,
                Some(&bill_no),
                steps::DONE,
                link.and_then(|l| l.payload_hash.as_deref()),
            )],
            transfers: vec![t],
            outbox,
            ..JobEffects::default()
        })
    }

    /// A message for the flow's webhook (if it has one) about the bill of `r`'s instance; its
    /// id names the change, so a repeated step adds it once.
    fn document_message(
        &self,
        r: &StepRef,
        kind: &str,
        extra: Value,
        now: Millis,
    ) -> Option<OutboxEffect> {
        let w = self.options.webhook.as_ref()?;
        let mut data = json!({
            "flow": self.flow,
            "instance_id": r.instance_id,
            "form_id": self.options.form_id,
        });
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
        Some(OutboxEffect::Add {
            message: NewWebhookMessage {
                subject: Self::link_key(&r.instance_id),
                endpoint: w.endpoint(),
                message_id: format!("{}.{}.{kind}", self.flow, r.instance_id),
                event_type: kind.to_owned(),
                payload: json!({ "type": kind, "timestamp": rfc3339(now), "data": data }),
                created_at: now,
            },
            flow: Some(self.flow.clone()),
        })
    }

    async fn revoke(
        &self,
        job: &Job,
        r: &StepRef,
        store: &dyn Store,
    ) -> Result<JobEffects, JobError> {
        let started = now_ms();
        let link = store
            .get_link(&self.flow, &Self::link_key(&r.instance_id))
            .await?;
        if link.as_ref().is_some_and(|l| {
            matches!(
                l.step.as_str(),
                steps::COMPENSATED | steps::REVOKED | steps::SKIPPED
            )
        }) {
            return Ok(JobEffects::default());
        }
        // Kingdee is the truth: the bill may exist without its link (a crash before the commit).
        let Some((fid, bill_no, status)) = self.find_bill(&r.instance_id).await? else {
            return Ok(JobEffects {
                links: vec![self.link(r, None, steps::REVOKED, None)],
                transfers: vec![self.transfer(job, r, None, "revoked_before_bill", started)],
                ..JobEffects::default()
            });
        };
        let sel = || Selection::numbers([BillNo::new(bill_no.clone())]);
        let mut done = Vec::new();
        match self.options.on_revoke {
            OnRevoke::DeadLetter => {
                return Err(JobError::permanent(format!(
                    "approval {} was revoked after Kingdee bill {bill_no} (status {status}) was created; undo the bill by hand, then discard this dead letter (on_revoke = \"dead_letter\")",
                    r.instance_id
                )));
            }
            OnRevoke::Unaudit | OnRevoke::Delete => {
                match status.as_str() {
                    "C" => {
                        self.kingdee.unaudit(&self.form(), &sel()).await?;
                        done.push("UnAudit");
                    }
                    "B" => {
                        self.kingdee
                            .execute_operation(&self.form(), "CancelAssign", &sel())
                            .await?;
                        done.push("CancelAssign");
                    }
                    _ => {}
                }
                if self.options.on_revoke == OnRevoke::Delete {
                    self.kingdee.delete(&self.form(), &sel()).await?;
                    done.push("Delete");
                }
            }
        }
        let now = now_ms();
        let outbox = self
            .document_message(
                r,
                "document.revoked",
                json!({ "bill_no": bill_no, "operations": done }),
                now,
            )
            .into_iter()
            .collect();
        Ok(JobEffects {
            links: vec![self.link(r, Some(&bill_no), steps::COMPENSATED, Some(&fid))],
            transfers: vec![NewTransfer {
                request: Some(json!({ "status": status })),
                response: Some(json!({ "operations": done })),
                ..self.transfer(job, r, Some(&bill_no), "compensated", started)
            }],
            outbox,
            ..JobEffects::default()
        })
    }

    /// The backfill poll: approved and revoked instances of the templates in the window.
    async fn backfill(&self, job: &Job, store: &dyn Store) -> Result<JobEffects, JobError> {
        let now = now_ms();
        let since = now - i64::from(self.options.backfill_days) * 86_400_000;
        let mut enqueue = Vec::new();
        let mut listed = 0usize;
        for code in &self.options.process_codes {
            for id in list_ids(&self.dingtalk, code, since, &["COMPLETED"]).await? {
                listed += 1;
                if store
                    .get_link(&self.flow, &Self::link_key(&id))
                    .await?
                    .is_none()
                {
                    enqueue.push(self.first_job(&id, now));
                }
            }
            for id in list_ids(&self.dingtalk, code, since, &["TERMINATED"]).await? {
                listed += 1;
                if let Some(l) = store.get_link(&self.flow, &Self::link_key(&id)).await?
                    && Step::rank(&l.step) > 0
                {
                    enqueue.push(self.revoke_job(&id, now));
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
                request: Some(json!({ "since": since })),
                response: Some(json!({ "listed": listed, "enqueued": enqueue.len() })),
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

/// The primary-key field of a bill form (`GL_VOUCHER` calls it `FVoucherID`).
fn pk_field(form_id: &str) -> &'static str {
    match form_id {
        "GL_VOUCHER" => "FVoucherID",
        _ => "FID",
    }
}

fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `a.b.c` in nested objects.
fn lookup<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = record.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A form value as plain JSON: text, a list (multi-select), `[start, end]`, rows of objects.
fn field_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Text(s) => Value::String(s.clone()),
        FieldValue::MultiSelect(items) => json!(items),
        FieldValue::DateRange([a, b]) => json!([a, b]),
        FieldValue::Table(rows) => Value::Array(
            rows.iter()
                .map(|row| {
                    Value::Object(
                        row.iter()
                            .map(|c: &FormField| (c.name.clone(), field_json(&c.value)))
                            .collect(),
                    )
                })
                .collect(),
        ),
        FieldValue::Attachments(files) => serde_json::to_value(files).unwrap_or(Value::Null),
        FieldValue::Json(v) => v.clone(),
    }
}

/// A DingTalk time (`yyyy-MM-dd HH:mm:ss` in China time, or v1.0's UTC `yyyy-MM-ddTHH:mmZ`)
/// as the date in China (UTC+8).
fn local_date(t: &str) -> Option<String> {
    use chrono::{FixedOffset, NaiveDateTime, TimeZone};
    let china = FixedOffset::east_opt(8 * 3600)?;
    if let Some(utc) = t.strip_suffix('Z') {
        let naive = NaiveDateTime::parse_from_str(utc, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(utc, "%Y-%m-%dT%H:%M:%S"))
            .ok()?;
        return Some(
            chrono::Utc
                .from_utc_datetime(&naive)
                .with_timezone(&china)
                .format("%Y-%m-%d")
                .to_string(),
        );
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&china).format("%Y-%m-%d").to_string());
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .or_else(|| (t.len() >= 10).then(|| t[..10].to_owned()))
}

/// `approval_to_document`, `.step` and `.revoke`.
pub struct DocumentJobs {
    pub flows: Arc<HashMap<String, Arc<DocumentFlow>>>,
}

#[async_trait]
impl JobHandler for DocumentJobs {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let flow_of = |name: Option<&str>| {
            name.and_then(|f| self.flows.get(f)).ok_or_else(|| {
                JobError::permanent(format!(
                    "flow `{}` is not an enabled approval_to_document flow on this node",
                    name.unwrap_or("")
                ))
            })
        };
        if job.kind == RECIPE {
            return flow_of(job.flow.as_deref())?
                .backfill(job, ctx.store.as_ref())
                .await;
        }
        let r: StepRef = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(format!(
                "{} payload: {e}; expected flow, instance_id",
                job.kind
            ))
        })?;
        let flow = flow_of(Some(&r.flow))?;
        if job.kind == REVOKE_KIND {
            flow.revoke(job, &r, ctx.store.as_ref()).await
        } else {
            flow.run_step(job, &r, ctx.store.as_ref()).await
        }
    }
}

/// `bpms_instance_change` of the flow's templates: finish + agree starts the saga, terminate
/// compensates.
pub struct DocumentEvents {
    pub flow: Arc<DocumentFlow>,
}

impl EventSubscriber for DocumentEvents {
    fn jobs_for(&self, event: &Event, now: Millis) -> Vec<NewJob> {
        if event.connection != self.flow.options.source
            || event.event_type != "bpms_instance_change"
        {
            return Vec::new();
        }
        let text = |k: &str| event.payload.get(k).and_then(Value::as_str);
        let (Some(instance), Some(code)) = (text("processInstanceId"), text("processCode")) else {
            return Vec::new();
        };
        if !self.flow.options.process_codes.iter().any(|c| c == code) {
            return Vec::new();
        }
        match (text("type"), text("result")) {
            (Some("finish"), Some("agree")) => vec![self.flow.first_job(instance, now)],
            (Some("terminate"), _) => vec![self.flow.revoke_job(instance, now)],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_times_become_china_dates() {
        assert_eq!(
            local_date("2026-11-20T17:30Z").as_deref(),
            Some("2026-11-21")
        );
        assert_eq!(
            local_date("2026-11-20T15:59Z").as_deref(),
            Some("2026-11-20")
        );
        assert_eq!(
            local_date("2026-11-20 23:10:00").as_deref(),
            Some("2026-11-20")
        );
    }

    #[test]
    fn detail_tables_become_rows_of_objects() {
        let t = FieldValue::Table(vec![vec![
            FormField::text("费用类型", "差旅费"),
            FormField::text("金额（元）", "1200.50"),
        ]]);
        assert_eq!(
            field_json(&t),
            json!([{ "费用类型": "差旅费", "金额（元）": "1200.50" }])
        );
        let rec: Map<String, Value> =
            serde_json::from_value(json!({ "form": { "费用明细": [1, 2] } })).unwrap_or_default();
        assert_eq!(lookup(&rec, "form.费用明细"), Some(&json!([1, 2])));
        assert_eq!(lookup(&rec, "form.无"), None);
    }
}
