//! One org-sync run: full (stream the source, write what changed since the hub's last write),
//! reconcile (compare the source with what the target holds now and apply the diff) or dry run
//! (the reconcile plan, nothing written). Every run is a stored [`store::SyncRun`]; writes are
//! committed batch by batch with their links, transfer-log rows, identities and dead letters,
//! so a run cut short (kill -9) resumes where it stopped: records whose link already carries
//! their digest are not written again, and the target's upsert-by-key makes a batch that was
//! sent but not recorded safe to send again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk::DingTalkClient;
use mapping::Mapping;
use serde::Serialize;
use serde_json::{Map, Value, json};
use store::{
    Job, JobId, Link, Millis, NewIdentity, NewJob, NewSyncRun, NewTransfer, Store, SyncRunFinish,
    SyncRunStatus,
};

use super::options::{LeaverPolicy, OrgSyncOptions};
use super::plan::{Conflict, DiffInput, LinkState, Plan, diff, hash_record, respect_master};
use super::progress::{Progress, ProgressSnapshot};
use super::source::{
    DeptNode, Gap, MemberCounts, member_counts, stream_members, user_record, walk_departments,
};
use super::target::{Entity, OrgTarget, RecordOutcome, TargetRecord};
use crate::clock::now_ms;
use crate::config::ConnectionKind;
use crate::jobs::JobError;

/// The job kind that (re)syncs one department or user: incremental events and replayed dead
/// letters.
pub const ENTITY_KIND: &str = "org_sync.entity";

/// How much of a run's detail its report keeps (the counts are always whole).
const REPORT_CAP: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Full,
    Reconcile,
    DryRun,
}

impl SyncMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Reconcile => "reconcile",
            SyncMode::DryRun => "dry_run",
        }
    }
}

/// A record the target refused or the mapping could not produce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub entity: Entity,
    pub source_key: String,
    pub field: Option<String>,
    pub reason: String,
}

/// Counts of one entity's plan, with a sample of each list (dry runs print it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanSummary {
    pub create: usize,
    pub update: usize,
    pub disable: usize,
    pub unchanged: usize,
    pub unmanaged: usize,
    pub withheld_disables: usize,
    pub sample_create: Vec<String>,
    pub sample_update: Vec<(String, Vec<String>)>,
    pub sample_disable: Vec<String>,
}

impl PlanSummary {
    fn of(plan: &Plan) -> Self {
        Self {
            create: plan.create.len(),
            update: plan.update.len(),
            disable: plan.disable.len(),
            unchanged: plan.unchanged,
            unmanaged: plan.unmanaged,
            withheld_disables: plan.withheld_disables,
            sample_create: plan.create.iter().take(20).map(|r| r.key.clone()).collect(),
            sample_update: plan
                .update
                .iter()
                .take(20)
                .map(|(r, f)| (r.key.clone(), f.clone()))
                .collect(),
            sample_disable: plan
                .disable
                .iter()
                .take(20)
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

/// What a run found and did, stored as the run's `report`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub complete: bool,
    pub gaps: Vec<Gap>,
    pub gaps_total: usize,
    pub rejected: Vec<Rejected>,
    pub conflicts: Vec<Conflict>,
    /// Disables not done because the snapshot was incomplete.
    pub withheld_disables: usize,
    pub departments: Option<PlanSummary>,
    pub users: Option<PlanSummary>,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: i64,
    pub resumed: bool,
    pub status: SyncRunStatus,
    pub counts: ProgressSnapshot,
    pub report: RunReport,
    pub duration: Duration,
}

/// Everything one org-sync flow needs, built once per node from the configuration.
pub struct OrgSync {
    pub flow: String,
    pub queue: String,
    pub options: OrgSyncOptions,
    pub source: DingTalkClient,
    pub target: Arc<dyn OrgTarget>,
    pub dept_mapping: Option<Mapping>,
    pub user_mapping: Mapping,
    pub store: Arc<dyn Store>,
}

/// A record on its way, with what the identity table needs.
#[derive(Debug, Clone)]
struct Pending {
    /// What is sent (fields DingTalk does not master may be left out).
    rec: TargetRecord,
    /// The digest of the record as mapped, before the master policy: what the link keeps, so
    /// the next run knows the source has not changed.
    hash: String,
    person: Option<Person>,
    /// A department's level: a batch never mixes levels, because a parent must be saved
    /// before a child in the same batch can refer to it.
    depth: usize,
}

#[derive(Debug, Clone)]
struct Person {
    unionid: Option<String>,
    mobile: Option<String>,
    job_number: Option<String>,
    email: Option<String>,
}

/// State shared by the steps of one run.
struct RunCtx<'a> {
    job_id: Option<JobId>,
    attempt: i32,
    progress: &'a Progress,
    links: HashMap<String, LinkState>,
    rejected: Mutex<Vec<Rejected>>,
}

/// What the user pass does with each mapped person.
#[derive(Debug, Clone, Copy)]
enum UserPass {
    /// Full sync: write what changed, in batches, as the people arrive.
    Write,
    /// Reconcile and dry run: hold everyone for the diff; `record_failures` dead-letters
    /// mapping failures (not in a dry run).
    Collect { record_failures: bool },
}

#[derive(Default)]
struct UsersRead {
    seen: HashSet<String>,
    /// Members listed per department (checked against `member_count`).
    listed: HashMap<i64, i64>,
    gaps: Vec<Gap>,
    collected: Vec<Pending>,
}

pub fn link_key(entity: Entity, id: &str) -> String {
    match entity {
        Entity::Department => format!("dept:{id}"),
        Entity::User => format!("user:{id}"),
    }
}

impl OrgSync {
    fn mapping(&self, entity: Entity) -> Option<&Mapping> {
        match entity {
            Entity::Department => self.dept_mapping.as_ref(),
            Entity::User => Some(&self.user_mapping),
        }
    }

    fn key_field(&self, entity: Entity) -> &str {
        match entity {
            Entity::Department => self
                .options
                .departments
                .as_ref()
                .map_or("", |d| d.key.as_str()),
            Entity::User => &self.options.users.key,
        }
    }

    /// Map one source record. `Err` holds the failing field and the reason.
    pub fn map_record(
        &self,
        entity: Entity,
        source_key: &str,
        source: &Map<String, Value>,
    ) -> Result<TargetRecord, (Option<String>, String)> {
        let mapping = self
            .mapping(entity)
            .ok_or((None, format!("no mapping for {}", entity.as_str())))?;
        let mut fields = mapping
            .apply(source)
            .map_err(|e| (Some(e.field.clone()), e.to_string()))?;
        let key_field = self.key_field(entity).to_owned();
        if entity == Entity::User
            && let Some(k) = self.options.explicit.get(source_key)
        {
            fields.insert(key_field.clone(), Value::String(k.clone()));
        }
        let key = match fields.get(&key_field) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err((
                    Some(key_field.clone()),
                    format!(
                        "field `{key_field}`: the key is empty; every record needs one (map it from a field that is always set, or list the person under options.explicit)"
                    ),
                ));
            }
        };
        Ok(TargetRecord {
            entity,
            source_key: source_key.to_owned(),
            key,
            fields,
        })
    }

    fn person(user: &dingtalk::contacts::User) -> Person {
        Person {
            unionid: user.unionid.as_ref().map(|u| u.as_str().to_owned()),
            mobile: user.mobile.clone(),
            job_number: user.job_number.clone(),
            email: user.email.clone(),
        }
    }

    /// Every link of the flow, by source key (`dept:<id>`, `user:<id>`).
    async fn load_links(&self) -> Result<HashMap<String, LinkState>, JobError> {
        let mut out = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_links(&self.flow, "", after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.source_key.clone());
            let n = page.len();
            for l in page {
                out.insert(l.source_key.clone(), LinkState::from(l));
            }
            if n < 1000 {
                break;
            }
        }
        Ok(out)
    }

    fn dead_letter(&self, entity: Entity, source_key: &str, reason: &str, now: Millis) -> NewJob {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(&Sha256::digest(reason.as_bytes())[..8]);
        NewJob::new(
            ENTITY_KIND,
            json!({ "flow": self.flow, "entity": entity, "id": source_key }),
            now,
        )
        .flow(self.flow.clone())
        .queue(self.queue.clone())
        .idempotency_key(format!(
            "org_sync:{}:{}:{source_key}:{digest}",
            self.flow,
            entity.as_str()
        ))
    }

    /// Send one batch of upserts and commit its links, transfers, identities and dead letters.
    async fn write_upserts(
        &self,
        entity: Entity,
        items: Vec<Pending>,
        ctx: &RunCtx<'_>,
    ) -> Result<(), JobError> {
        if items.is_empty() {
            return Ok(());
        }
        let records: Vec<TargetRecord> = items.iter().map(|p| p.rec.clone()).collect();
        let started = now_ms();
        let outcomes = self.target.upsert(entity, &records).await?;
        let now = now_ms();
        let mut replaced = Vec::new();
        let mut tx = self.store.begin().await?;
        for (p, outcome) in items.iter().zip(outcomes) {
            let rec = &p.rec;
            let lk = link_key(entity, &rec.source_key);
            if matches!(outcome, RecordOutcome::Written { .. })
                && let Some(old) = self.replaced_key(ctx.links.get(&lk), &rec.key)
            {
                replaced.push((old, lk.clone()));
            }
            let (step, hash, outcome_name, error, target_id) = match &outcome {
                RecordOutcome::Written { target_id, created } => {
                    if *created {
                        ctx.progress.created();
                    } else {
                        ctx.progress.updated();
                    }
                    (
                        "synced",
                        Some(p.hash.clone()),
                        if *created { "created" } else { "updated" },
                        None,
                        Some(target_id.clone()),
                    )
                }
                RecordOutcome::Rejected { field, reason } => {
                    ctx.progress.failed();
                    let reason = match field {
                        Some(f) if !reason.contains(f.as_str()) => format!("field `{f}`: {reason}"),
                        _ => reason.clone(),
                    };
                    tx.insert_dead_letter(
                        &self.dead_letter(entity, &rec.source_key, &reason, now),
                        &reason,
                    )
                    .await?;
                    push_capped(
                        &ctx.rejected,
                        Rejected {
                            entity,
                            source_key: rec.source_key.clone(),
                            field: field.clone(),
                            reason: reason.clone(),
                        },
                    );
                    ("rejected", None, "rejected", Some(reason), None)
                }
            };
            tx.upsert_link(&Link {
                flow: self.flow.clone(),
                source_key: lk.clone(),
                target_key: Some(rec.key.clone()),
                step: step.into(),
                payload_hash: hash,
                updated_at: now,
            })
            .await?;
            tx.append_transfer(&NewTransfer {
                flow: self.flow.clone(),
                source_key: lk,
                target_key: Some(rec.key.clone()),
                job_id: ctx.job_id,
                attempt: ctx.attempt,
                request: Some(Value::Object(rec.fields.clone())),
                response: target_id.map(|id| json!({ "target_id": id })),
                outcome: outcome_name.into(),
                error,
                started_at: started,
                duration_ms: now - started,
            })
            .await?;
            if let (Some(person), "synced") = (&p.person, step) {
                tx.upsert_identity(&self.identity(rec, person, now)).await?;
            }
        }
        tx.commit().await?;
        self.disable_replaced(entity, &replaced, ctx.job_id, ctx.attempt, ctx.progress)
            .await
    }

    /// The key a record was written under before, when its key has changed since (a new job
    /// number): that old record is the same person and must not stay active.
    pub fn replaced_key(&self, link: Option<&LinkState>, key: &str) -> Option<String> {
        let link = link?;
        let old = link.target_key.as_deref()?;
        (link.step == "synced" && old != key && self.options.leavers == LeaverPolicy::Disable)
            .then(|| old.to_owned())
    }

    /// Disable the records left behind by key changes: (old target key, link key).
    pub async fn disable_replaced(
        &self,
        entity: Entity,
        replaced: &[(String, String)],
        job_id: Option<JobId>,
        attempt: i32,
        progress: &Progress,
    ) -> Result<(), JobError> {
        if replaced.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = replaced.iter().map(|(k, _)| k.clone()).collect();
        let started = now_ms();
        let outcomes = self.target.disable(entity, &keys).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        for ((old, lk), outcome) in replaced.iter().zip(outcomes) {
            let error = match outcome {
                RecordOutcome::Written { .. } => {
                    progress.disabled();
                    None
                }
                RecordOutcome::Rejected { reason, .. } => {
                    progress.failed();
                    Some(reason)
                }
            };
            tx.append_transfer(&NewTransfer {
                flow: self.flow.clone(),
                source_key: lk.clone(),
                target_key: Some(old.clone()),
                job_id,
                attempt,
                request: Some(json!({ "disable": old, "why": "the record's key changed" })),
                response: None,
                outcome: if error.is_none() {
                    "replaced_disabled".into()
                } else {
                    "disable_failed".into()
                },
                error,
                started_at: started,
                duration_ms: now - started,
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The identity-table row a written user leaves behind.
    pub fn identity_of(
        &self,
        rec: &TargetRecord,
        user: &dingtalk::contacts::User,
        now: Millis,
    ) -> NewIdentity {
        self.identity(rec, &Self::person(user), now)
    }

    fn identity(&self, rec: &TargetRecord, person: &Person, now: Millis) -> NewIdentity {
        let kingdee = self.options.target_kind == ConnectionKind::Kingdee;
        NewIdentity {
            dingtalk_userid: rec.source_key.clone(),
            unionid: person.unionid.clone(),
            kingdee_user: kingdee.then(|| rec.key.clone()),
            ehr_number: (!kingdee).then(|| rec.key.clone()),
            mobile: person.mobile.clone(),
            job_number: person.job_number.clone(),
            email: person.email.clone(),
            matched_by: if self.options.explicit.contains_key(&rec.source_key) {
                "explicit".into()
            } else {
                self.options.match_by.as_str().into()
            },
            now,
        }
    }

    /// A record the mapping could not produce: dead letter, transfer row, link `rejected`.
    async fn reject_mapping(
        &self,
        entity: Entity,
        source_key: &str,
        reason: &str,
        ctx: &RunCtx<'_>,
    ) -> Result<(), JobError> {
        let now = now_ms();
        let lk = link_key(entity, source_key);
        let mut tx = self.store.begin().await?;
        tx.insert_dead_letter(&self.dead_letter(entity, source_key, reason, now), reason)
            .await?;
        tx.upsert_link(&Link {
            flow: self.flow.clone(),
            source_key: lk.clone(),
            target_key: ctx.links.get(&lk).and_then(|l| l.target_key.clone()),
            step: "rejected".into(),
            payload_hash: None,
            updated_at: now,
        })
        .await?;
        tx.append_transfer(&NewTransfer {
            flow: self.flow.clone(),
            source_key: lk,
            target_key: None,
            job_id: ctx.job_id,
            attempt: ctx.attempt,
            request: None,
            response: None,
            outcome: "mapping_failed".into(),
            error: Some(reason.to_owned()),
            started_at: now,
            duration_ms: 0,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disable target records (leavers, removed departments) and record it.
    async fn write_disables(
        &self,
        entity: Entity,
        items: &[(String, String)],
        ctx: &RunCtx<'_>,
    ) -> Result<(), JobError> {
        for chunk in items.chunks(self.options.batch_size) {
            let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            let started = now_ms();
            let outcomes = self.target.disable(entity, &keys).await?;
            let now = now_ms();
            let mut tx = self.store.begin().await?;
            for ((key, source_key), outcome) in chunk.iter().zip(outcomes) {
                let lk = if source_key.contains(':') {
                    source_key.clone()
                } else {
                    link_key(entity, source_key)
                };
                let (step, outcome_name, error) = match outcome {
                    RecordOutcome::Written { .. } => {
                        ctx.progress.disabled();
                        ("disabled", "disabled", None)
                    }
                    RecordOutcome::Rejected { reason, .. } => {
                        ctx.progress.failed();
                        ("synced", "disable_failed", Some(reason))
                    }
                };
                tx.upsert_link(&Link {
                    flow: self.flow.clone(),
                    source_key: lk.clone(),
                    target_key: Some(key.clone()),
                    step: step.into(),
                    payload_hash: None,
                    updated_at: now,
                })
                .await?;
                tx.append_transfer(&NewTransfer {
                    flow: self.flow.clone(),
                    source_key: lk,
                    target_key: Some(key.clone()),
                    job_id: ctx.job_id,
                    attempt: ctx.attempt,
                    request: Some(json!({ "disable": key })),
                    response: None,
                    outcome: outcome_name.into(),
                    error,
                    started_at: started,
                    duration_ms: now - started,
                })
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Run a sync now. `job` is the queue job running it (its run is resumed after a crash);
    /// `None` when the CLI runs it in the foreground.
    pub async fn run(
        &self,
        mode: SyncMode,
        job: Option<&Job>,
        progress: &Progress,
    ) -> Result<RunSummary, JobError> {
        let clock = std::time::Instant::now();
        let (run, resumed) = self
            .store
            .start_sync_run(&NewSyncRun {
                flow: self.flow.clone(),
                mode: mode.as_str().into(),
                job_id: job.map(|j| j.id),
                started_at: now_ms(),
            })
            .await?;
        // Progress reaches the stored run every two seconds while the run goes on.
        let ticker = {
            let store = Arc::clone(&self.store);
            let progress = progress.clone();
            let id = run.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let counts = serde_json::to_value(progress.snapshot()).unwrap_or(Value::Null);
                    if store.update_sync_run(id, &counts, now_ms()).await.is_err() {
                        return;
                    }
                }
            })
        };
        let result = self.run_steps(mode, job, progress).await;
        ticker.abort();
        let counts = progress.snapshot();
        let counts_json = serde_json::to_value(counts).unwrap_or(Value::Null);
        match result {
            Ok(report) => {
                let status = if report.complete && report.rejected.is_empty() && counts.failed == 0
                {
                    SyncRunStatus::Success
                } else {
                    SyncRunStatus::Partial
                };
                self.store
                    .finish_sync_run(
                        run.id,
                        &SyncRunFinish {
                            status,
                            complete: report.complete,
                            counts: counts_json,
                            report: serde_json::to_value(&report).unwrap_or(Value::Null),
                            now: now_ms(),
                        },
                    )
                    .await?;
                record_metrics(&self.flow, mode, status, &counts);
                Ok(RunSummary {
                    run_id: run.id,
                    resumed,
                    status,
                    counts,
                    report,
                    duration: clock.elapsed(),
                })
            }
            Err(e) => {
                // A retryable failure of a queued run leaves it running: the job's next attempt
                // resumes it. Anything else ends it as failed.
                let will_retry = matches!(e, JobError::Retryable { .. })
                    && job.is_some_and(|j| j.attempts < j.max_attempts);
                if will_retry {
                    let _ = self
                        .store
                        .update_sync_run(run.id, &counts_json, now_ms())
                        .await;
                } else {
                    let _ = self
                        .store
                        .finish_sync_run(
                            run.id,
                            &SyncRunFinish {
                                status: SyncRunStatus::Failed,
                                complete: false,
                                counts: counts_json,
                                report: json!({ "error": e.to_string() }),
                                now: now_ms(),
                            },
                        )
                        .await;
                }
                Err(e)
            }
        }
    }

    async fn run_steps(
        &self,
        mode: SyncMode,
        job: Option<&Job>,
        progress: &Progress,
    ) -> Result<RunReport, JobError> {
        let ctx = RunCtx {
            job_id: job.map(|j| j.id),
            attempt: job.map_or(1, |j| j.attempts),
            progress,
            links: self.load_links().await?,
            rejected: Mutex::new(Vec::new()),
        };
        let o = &self.options;
        self.target.start_run().await;
        let (depts, mut gaps) = walk_departments(
            &self.source,
            o.root,
            o.include_root,
            o.concurrency,
            progress,
        )
        .await;
        let counts_task = o.check_member_counts.then(|| {
            let ids: Vec<i64> = std::iter::once(o.root)
                .chain(depts.iter().map(|d| d.id))
                .collect();
            tokio::spawn(member_counts(self.source.clone(), ids, o.concurrency))
        });
        let mut report = RunReport::default();
        match mode {
            SyncMode::Full => {
                self.full_departments(&depts, &ctx).await?;
                let read = self.users(&depts, &ctx, UserPass::Write).await?;
                let seen = read.seen;
                gaps.extend(read.gaps);
                gaps.extend(check_counts(counts_task, &read.listed).await);
                report.complete = gaps.is_empty();
                let dept_ids: HashSet<String> = depts.iter().map(|d| d.id.to_string()).collect();
                let mut withheld = 0;
                for (entity, present) in [(Entity::User, &seen), (Entity::Department, &dept_ids)] {
                    if entity == Entity::Department && self.dept_mapping.is_none() {
                        continue;
                    }
                    let gone = self.gone(entity, present, &ctx.links);
                    if o.leavers == LeaverPolicy::Disable {
                        if report.complete {
                            self.write_disables(entity, &gone, &ctx).await?;
                        } else {
                            withheld += gone.len();
                        }
                    }
                }
                report.withheld_disables = withheld;
            }
            SyncMode::Reconcile | SyncMode::DryRun => {
                let apply = mode == SyncMode::Reconcile;
                let mut dept_records = Vec::new();
                if self.dept_mapping.is_some() {
                    for d in &depts {
                        match self.map_record(
                            Entity::Department,
                            &d.id.to_string(),
                            &d.source_record(),
                        ) {
                            Ok(r) => dept_records.push(Pending {
                                hash: hash_record(&r),
                                rec: r,
                                person: None,
                                depth: d.depth,
                            }),
                            Err((field, reason)) => {
                                self.fail_mapping(
                                    Entity::Department,
                                    &d.id.to_string(),
                                    field,
                                    reason,
                                    &ctx,
                                    apply,
                                )
                                .await?;
                            }
                        }
                    }
                }
                let read = self
                    .users(
                        &depts,
                        &ctx,
                        UserPass::Collect {
                            record_failures: apply,
                        },
                    )
                    .await?;
                let user_records = read.collected;
                gaps.extend(read.gaps);
                gaps.extend(check_counts(counts_task, &read.listed).await);
                report.complete = gaps.is_empty();
                let mut withheld = 0;
                for (entity, records) in [
                    (Entity::Department, &dept_records),
                    (Entity::User, &user_records),
                ] {
                    if entity == Entity::Department && self.dept_mapping.is_none() {
                        continue;
                    }
                    let plan = self.plan(entity, records, &ctx, report.complete).await?;
                    withheld += plan.withheld_disables;
                    progress.add_conflicts(plan.conflicts.len());
                    progress.add_unchanged(plan.unchanged);
                    let summary = PlanSummary::of(&plan);
                    for c in plan
                        .conflicts
                        .iter()
                        .take(REPORT_CAP.saturating_sub(report.conflicts.len()))
                    {
                        report.conflicts.push(c.clone());
                    }
                    if apply {
                        self.apply_plan(entity, records, plan, &ctx).await?;
                    }
                    match entity {
                        Entity::Department => report.departments = Some(summary),
                        Entity::User => report.users = Some(summary),
                    }
                }
                report.withheld_disables = withheld;
            }
        }
        report.gaps_total = gaps.len();
        gaps.truncate(REPORT_CAP);
        report.gaps = gaps;
        report.rejected = ctx
            .rejected
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(report)
    }

    /// Linked records of `entity` (last written as `synced`) whose source is not `present`:
    /// (target key, link key).
    fn gone(
        &self,
        entity: Entity,
        present: &HashSet<String>,
        links: &HashMap<String, LinkState>,
    ) -> Vec<(String, String)> {
        let prefix = link_key(entity, "");
        let mut out: Vec<(String, String)> = links
            .iter()
            .filter(|(k, l)| {
                l.step == "synced"
                    && k.strip_prefix(&prefix)
                        .is_some_and(|id| !present.contains(id))
            })
            .filter_map(|(k, l)| Some((l.target_key.clone()?, k.clone())))
            .collect();
        out.sort();
        out
    }

    /// Whether the link shows this exact record was written already.
    fn unchanged(&self, rec: &TargetRecord, links: &HashMap<String, LinkState>) -> bool {
        links
            .get(&link_key(rec.entity, &rec.source_key))
            .is_some_and(|l| l.holds(&hash_record(rec)))
    }

    /// For a record the target already has (linked), keep the target's fields DingTalk does
    /// not master.
    fn for_existing(&self, rec: TargetRecord, links: &HashMap<String, LinkState>) -> TargetRecord {
        let exists = links
            .get(&link_key(rec.entity, &rec.source_key))
            .is_some_and(|l| l.step == "synced" || l.step == "disabled");
        if exists
            && (!self.options.master_fields.is_empty()
                || self.options.master != super::options::Master::Dingtalk)
        {
            let master_of = |f: &str| self.options.master_of(f);
            respect_master(&rec, None, &master_of)
        } else {
            rec
        }
    }

    async fn full_departments(&self, depts: &[DeptNode], ctx: &RunCtx<'_>) -> Result<(), JobError> {
        if self.dept_mapping.is_none() {
            return Ok(());
        }
        let mut batch = Vec::new();
        for d in depts {
            let id = d.id.to_string();
            match self.map_record(Entity::Department, &id, &d.source_record()) {
                Ok(rec) if self.unchanged(&rec, &ctx.links) => ctx.progress.unchanged(),
                Ok(rec) => {
                    if batch.last().is_some_and(|p: &Pending| p.depth != d.depth) {
                        self.write_upserts(Entity::Department, std::mem::take(&mut batch), ctx)
                            .await?;
                    }
                    batch.push(Pending {
                        hash: hash_record(&rec),
                        rec: self.for_existing(rec, &ctx.links),
                        person: None,
                        depth: d.depth,
                    });
                    if batch.len() >= self.options.batch_size {
                        self.write_upserts(Entity::Department, std::mem::take(&mut batch), ctx)
                            .await?;
                    }
                }
                Err((field, reason)) => {
                    self.fail_mapping(Entity::Department, &id, field, reason, ctx, true)
                        .await?;
                }
            }
        }
        self.write_upserts(Entity::Department, batch, ctx).await
    }

    /// Stream every department's members through the mapping: written in batches as they come
    /// (`Write`), or held for a diff (`Collect`).
    async fn users(
        &self,
        depts: &[DeptNode],
        ctx: &RunCtx<'_>,
        pass: UserPass,
    ) -> Result<UsersRead, JobError> {
        let mut read = UsersRead::default();
        let mut batch = Vec::new();
        let ids: Vec<i64> = std::iter::once(self.options.root)
            .chain(depts.iter().map(|d| d.id))
            .collect();
        let mut rx = stream_members(
            self.source.clone(),
            ids,
            self.options.concurrency,
            ctx.progress.clone(),
        );
        while let Some(m) = rx.recv().await {
            read.listed
                .insert(m.dept, i64::try_from(m.users.len()).unwrap_or(i64::MAX));
            read.gaps.extend(m.gap);
            for u in m.users {
                if !read.seen.insert(u.userid.as_str().to_owned()) {
                    continue;
                }
                ctx.progress.user();
                let id = u.userid.as_str().to_owned();
                let rec = match self.map_record(Entity::User, &id, &user_record(&u)) {
                    Ok(rec) => rec,
                    Err((field, reason)) => {
                        let record = !matches!(
                            pass,
                            UserPass::Collect {
                                record_failures: false
                            }
                        );
                        self.fail_mapping(Entity::User, &id, field, reason, ctx, record)
                            .await?;
                        continue;
                    }
                };
                let person = Some(Self::person(&u));
                match pass {
                    UserPass::Collect { .. } => read.collected.push(Pending {
                        hash: hash_record(&rec),
                        rec,
                        person,
                        depth: 0,
                    }),
                    UserPass::Write if self.unchanged(&rec, &ctx.links) => ctx.progress.unchanged(),
                    UserPass::Write => {
                        batch.push(Pending {
                            hash: hash_record(&rec),
                            rec: self.for_existing(rec, &ctx.links),
                            person,
                            depth: 0,
                        });
                        if batch.len() >= self.options.batch_size {
                            self.write_upserts(Entity::User, std::mem::take(&mut batch), ctx)
                                .await?;
                        }
                    }
                }
            }
        }
        self.write_upserts(Entity::User, batch, ctx).await?;
        Ok(read)
    }

    /// A record the mapping refused: a dead letter (`record`), or only counted and reported
    /// (a dry run writes nothing).
    async fn fail_mapping(
        &self,
        entity: Entity,
        source_key: &str,
        field: Option<String>,
        reason: String,
        ctx: &RunCtx<'_>,
        record: bool,
    ) -> Result<(), JobError> {
        if record {
            self.reject_mapping(entity, source_key, &reason, ctx)
                .await?;
        }
        ctx.progress.failed();
        push_capped(
            &ctx.rejected,
            Rejected {
                entity,
                source_key: source_key.to_owned(),
                field,
                reason,
            },
        );
        Ok(())
    }

    async fn plan(
        &self,
        entity: Entity,
        records: &[Pending],
        ctx: &RunCtx<'_>,
        complete: bool,
    ) -> Result<Plan, JobError> {
        let mapping = self
            .mapping(entity)
            .ok_or_else(|| JobError::permanent(format!("no mapping for {}", entity.as_str())))?;
        let fields = mapping.target_fields();
        let target = self.target.read_all(entity, &fields).await?;
        let prefix = link_key(entity, "");
        let links: HashMap<String, LinkState> = ctx
            .links
            .iter()
            .filter_map(|(k, l)| Some((k.strip_prefix(&prefix)?.to_owned(), l.clone())))
            .collect();
        let source: Vec<TargetRecord> = records.iter().map(|p| p.rec.clone()).collect();
        let master_of = |f: &str| self.options.master_of(f);
        Ok(diff(&DiffInput {
            entity,
            source: &source,
            target: target.as_deref(),
            links: &links,
            complete,
            disable_leavers: self.options.leavers == LeaverPolicy::Disable,
            master_of: &master_of,
        }))
    }

    async fn apply_plan(
        &self,
        entity: Entity,
        records: &[Pending],
        plan: Plan,
        ctx: &RunCtx<'_>,
    ) -> Result<(), JobError> {
        // Writes in source order (parents before children), whichever list they are in.
        let mut to_write: HashMap<String, TargetRecord> = plan
            .create
            .into_iter()
            .chain(plan.update.into_iter().map(|(r, _)| r))
            .map(|r| (r.source_key.clone(), r))
            .collect();
        let mut batch = Vec::new();
        for p in records {
            let Some(rec) = to_write.remove(&p.rec.source_key) else {
                continue;
            };
            if batch.last().is_some_and(|b: &Pending| b.depth != p.depth) {
                self.write_upserts(entity, std::mem::take(&mut batch), ctx)
                    .await?;
            }
            batch.push(Pending {
                rec,
                hash: p.hash.clone(),
                person: p.person.clone(),
                depth: p.depth,
            });
            if batch.len() >= self.options.batch_size {
                self.write_upserts(entity, std::mem::take(&mut batch), ctx)
                    .await?;
            }
        }
        self.write_upserts(entity, batch, ctx).await?;
        // `diff` gives (target key, source key without prefix).
        let disables: Vec<(String, String)> = plan
            .disable
            .into_iter()
            .map(|(key, sk)| (key, link_key(entity, &sk)))
            .collect();
        self.write_disables(entity, &disables, ctx).await
    }
}

/// Prometheus: runs by status, records by outcome, and the last success (which only moves on
/// success, like the stored one).
fn record_metrics(flow: &str, mode: SyncMode, status: SyncRunStatus, c: &ProgressSnapshot) {
    metrics::counter!("dingbridge_sync_runs_total", "flow" => flow.to_owned(), "mode" => mode.as_str(), "status" => status.as_str())
        .increment(1);
    for (outcome, n) in [
        ("created", c.created),
        ("updated", c.updated),
        ("unchanged", c.unchanged),
        ("disabled", c.disabled),
        ("failed", c.failed),
        ("conflict", c.conflicts),
    ] {
        metrics::counter!("dingbridge_sync_records_total", "flow" => flow.to_owned(), "outcome" => outcome)
            .increment(n);
    }
    if status == SyncRunStatus::Success {
        metrics::gauge!("dingbridge_sync_last_success_timestamp_seconds", "flow" => flow.to_owned())
            .set(now_ms() as f64 / 1000.0);
    }
}

fn push_capped<T>(list: &Mutex<Vec<T>>, item: T) {
    let mut l = list
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if l.len() < REPORT_CAP {
        l.push(item);
    }
}

/// Departments that list fewer members than DingTalk counts are gaps: people are missing.
async fn check_counts(
    task: Option<tokio::task::JoinHandle<MemberCounts>>,
    listed: &HashMap<i64, i64>,
) -> Vec<Gap> {
    let Some(task) = task else {
        return Vec::new();
    };
    let (counts, mut gaps) = match task.await {
        Ok(r) => r,
        Err(e) => {
            return vec![Gap {
                scope: "count".into(),
                reason: format!("member counts not read: {e}"),
            }];
        }
    };
    let mut short: Vec<(i64, i64, i64)> = counts
        .iter()
        .filter_map(|(d, c)| {
            let got = listed.get(d).copied().unwrap_or(0);
            (got < *c).then_some((*d, got, *c))
        })
        .collect();
    short.sort();
    gaps.extend(short.into_iter().map(|(d, got, c)| Gap {
        scope: format!("count:{d}"),
        reason: format!("listed {got} members, DingTalk counts {c}"),
    }));
    gaps
}
