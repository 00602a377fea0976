//! The job kinds of org sync and how a node builds them from its configuration:
//! - `org_sync` (the recipe): one run of a flow; scheduled runs reconcile, `{"mode": "full"}`
//!   runs a full sync;
//! - `org_sync.entity`: bring one department or user in step (a contact event, or a replayed
//!   dead letter): the entity is read again from DingTalk, so a re-delivered or out-of-date
//!   event applies the current state and changes nothing when nothing changed.
//! - contact events in the inbox become `org_sync.entity` jobs ([`OrgEvents`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use limits::LimiterRegistry;
use mapping::Mapping;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Event, Job, Link, Millis, NewJob, NewTransfer, Store};

use super::options::{LeaverPolicy, OptionsError, OrgSyncOptions};
use super::plan::hash_record;
use super::progress::Progress;
use super::source::{fetch_department, fetch_user, user_record};
use super::sync::{ENTITY_KIND, OrgSync, SyncMode, link_key};
use super::target::http::HttpTarget;
use super::target::kingdee::{KingdeeEntityConfig, KingdeeTarget};
use super::target::sql::SqlTarget;
use super::target::{Entity, OrgTarget, RecordOutcome};
use crate::clock::now_ms;
use crate::config::{Config, ConnectionSettings};
use crate::connectors::{dingtalk_client, kingdee_client};
use crate::jobs::inbox::EventSubscriber;
use crate::jobs::{JobContext, JobEffects, JobError, JobHandler};

pub const RECIPE: &str = "org_sync";

/// Reconciliation runs every 10 minutes unless the flow sets its own `schedule`.
pub const DEFAULT_SCHEDULE: &str = "0 */10 * * * *";

/// Why an org-sync flow cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("flow `{flow}`: {message}")]
    Target { flow: String, message: String },
}

/// Build every enabled `org_sync` flow of `config`: clients paced by `limiters`, targets
/// connected, mappings compiled.
pub async fn build_syncs(
    config: &Config,
    store: Arc<dyn Store>,
    limiters: &LimiterRegistry,
) -> Result<HashMap<String, Arc<OrgSync>>, SetupError> {
    let mut out = HashMap::new();
    for flow in config
        .flows
        .values()
        .filter(|f| f.enabled && f.recipe == RECIPE)
    {
        let options = OrgSyncOptions::from_flow(flow, config)?;
        let fail = |message: String| SetupError::Target {
            flow: flow.name.clone(),
            message,
        };
        let source = match config.connections.get(&options.source).map(|c| &c.settings) {
            Some(ConnectionSettings::DingTalk(c)) => {
                dingtalk_client(&options.source, c, limiters.pacer(&options.source))
                    .map_err(|e| fail(e.to_string()))?
            }
            _ => {
                return Err(fail(format!(
                    "`{}` is not a DingTalk connection",
                    options.source
                )));
            }
        };
        let pacer = limiters.pacer(&options.target);
        let target: Arc<dyn OrgTarget> = match config
            .connections
            .get(&options.target)
            .map(|c| &c.settings)
        {
            Some(ConnectionSettings::Kingdee(c)) => {
                let client =
                    kingdee_client(&options.target, c, pacer).map_err(|e| fail(e.to_string()))?;
                let depts = options.departments.as_ref().map(|d| KingdeeEntityConfig {
                    key: &d.key,
                    raw: &d.raw,
                    rules: &d.rules,
                });
                let users = KingdeeEntityConfig {
                    key: &options.users.key,
                    raw: &options.users.raw,
                    rules: &options.users.rules,
                };
                Arc::new(KingdeeTarget::new(client, depts, users).map_err(|e| fail(e.to_string()))?)
            }
            Some(ConnectionSettings::Http(c)) => Arc::new(
                HttpTarget::new(
                    &options.target,
                    c,
                    options.departments.as_ref().map(|d| &d.raw),
                    &options.users.raw,
                    pacer,
                )
                .map_err(|e| fail(e.to_string()))?,
            ),
            Some(ConnectionSettings::Sql(c)) => Arc::new(
                SqlTarget::connect(
                    &options.target,
                    c,
                    options.departments.as_ref().map(|d| &d.raw),
                    &options.users.raw,
                )
                .await
                .map_err(|e| fail(e.to_string()))?,
            ),
            _ => {
                return Err(fail(format!(
                    "`{}` cannot be an org-sync target",
                    options.target
                )));
            }
        };
        let compile = |rules: &Value, key: &str| {
            Mapping::from_value(rules).map_err(|e| {
                SetupError::Options(OptionsError {
                    flow: flow.name.clone(),
                    key: format!("{key}.fields"),
                    reason: e.to_string(),
                })
            })
        };
        let dept_mapping = options
            .departments
            .as_ref()
            .map(|d| compile(&d.rules, "departments"))
            .transpose()?;
        let user_mapping = compile(&options.users.rules, "users")?;
        out.insert(
            flow.name.clone(),
            Arc::new(OrgSync {
                flow: flow.name.clone(),
                queue: flow.queue.clone(),
                options,
                source,
                target,
                dept_mapping,
                user_mapping,
                store: Arc::clone(&store),
            }),
        );
    }
    Ok(out)
}

fn sync_of<'a>(
    syncs: &'a HashMap<String, Arc<OrgSync>>,
    flow: Option<&str>,
) -> Result<&'a Arc<OrgSync>, JobError> {
    let flow = flow.ok_or_else(|| JobError::permanent("org_sync job without a flow"))?;
    syncs.get(flow).ok_or_else(|| {
        JobError::permanent(format!(
            "flow `{flow}` is not an enabled org_sync flow on this node; check [flows.{flow}]"
        ))
    })
}

/// `org_sync`: one run of a flow.
pub struct OrgSyncRun {
    pub syncs: Arc<HashMap<String, Arc<OrgSync>>>,
}

#[async_trait]
impl JobHandler for OrgSyncRun {
    async fn run(&self, job: &Job, _ctx: &JobContext) -> Result<JobEffects, JobError> {
        let sync = sync_of(&self.syncs, job.flow.as_deref())?;
        let mode = match job.payload.get("mode").and_then(Value::as_str) {
            Some("full") => SyncMode::Full,
            Some("dry_run") => SyncMode::DryRun,
            Some("reconcile") | None => SyncMode::Reconcile,
            Some(other) => {
                return Err(JobError::permanent(format!(
                    "payload.mode `{other}`: use full, reconcile or dry_run"
                )));
            }
        };
        let summary = sync.run(mode, Some(job), &Progress::new()).await?;
        tracing::info!(
            flow = %sync.flow, run = summary.run_id, status = summary.status.as_str(),
            resumed = summary.resumed, counts = ?summary.counts, "org sync run finished"
        );
        Ok(JobEffects::default())
    }
}

/// The payload of an `org_sync.entity` job.
#[derive(Debug, Deserialize)]
pub struct EntityRef {
    pub flow: String,
    pub entity: Entity,
    pub id: String,
}

/// `org_sync.entity`: bring one department or user in step with DingTalk now.
pub struct OrgSyncEntity {
    pub syncs: Arc<HashMap<String, Arc<OrgSync>>>,
}

#[async_trait]
impl JobHandler for OrgSyncEntity {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let r: EntityRef = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(format!(
                "org_sync.entity payload: {e}; expected flow, entity, id"
            ))
        })?;
        let sync = sync_of(&self.syncs, Some(&r.flow))?;
        sync_entity(sync, &r, job, ctx.store.as_ref()).await
    }
}

/// Read the entity from DingTalk, then write it (or disable it when DingTalk no longer has
/// it). The effects are returned for the worker to commit with the ack.
pub async fn sync_entity(
    sync: &OrgSync,
    r: &EntityRef,
    job: &Job,
    store: &dyn Store,
) -> Result<JobEffects, JobError> {
    let started = now_ms();
    let o = &sync.options;
    let lk = link_key(r.entity, &r.id);
    let link = store.get_link(&sync.flow, &lk).await?;
    let (source, person) = match r.entity {
        Entity::User => match fetch_user(&sync.source, &r.id)
            .await
            .map_err(JobError::from)?
        {
            Some(u) => (Some(user_record(&u)), Some(u)),
            None => (None, None),
        },
        Entity::Department => {
            if sync.dept_mapping.is_none() {
                return Ok(JobEffects::default());
            }
            let id: i64 = r.id.parse().map_err(|_| {
                JobError::permanent(format!("department id `{}` is not a number", r.id))
            })?;
            let node = fetch_department(&sync.source, id, o.root, o.include_root)
                .await
                .map_err(JobError::from)?;
            (node.map(|n| n.source_record()), None)
        }
    };
    let mut effects = JobEffects::default();
    let transfer = |outcome: &str,
                    target_key: Option<String>,
                    request: Option<Value>,
                    error: Option<String>| NewTransfer {
        flow: sync.flow.clone(),
        source_key: lk.clone(),
        target_key,
        job_id: Some(job.id),
        attempt: job.attempts,
        request,
        response: None,
        outcome: outcome.into(),
        error,
        started_at: started,
        duration_ms: now_ms() - started,
    };
    let Some(source) = source else {
        // Gone from DingTalk: disable what we wrote, per policy.
        let target_key = link.as_ref().and_then(|l| l.target_key.clone());
        match (
            o.leavers,
            target_key,
            link.as_ref().map(|l| l.step.as_str()),
        ) {
            (LeaverPolicy::Disable, Some(key), Some(step)) if step != "disabled" => {
                let outcome = sync
                    .target
                    .disable(r.entity, std::slice::from_ref(&key))
                    .await?;
                if let Some(RecordOutcome::Rejected { reason, .. }) = outcome.first() {
                    return Err(JobError::permanent(format!("disable `{key}`: {reason}")));
                }
                effects.links.push(Link {
                    flow: sync.flow.clone(),
                    source_key: lk.clone(),
                    target_key: Some(key.clone()),
                    step: "disabled".into(),
                    payload_hash: None,
                    updated_at: now_ms(),
                });
                effects.transfers.push(transfer(
                    "disabled",
                    Some(key.clone()),
                    Some(json!({ "disable": key })),
                    None,
                ));
            }
            (_, key, _) => effects
                .transfers
                .push(transfer("unchanged", key, None, None)),
        }
        return Ok(effects);
    };
    let rec = sync
        .map_record(r.entity, &r.id, &source)
        .map_err(|(_, reason)| JobError::permanent(reason))?;
    let hash = hash_record(&rec);
    let link = link.map(super::plan::LinkState::from);
    if link.as_ref().is_some_and(|l| l.holds(&hash)) {
        effects
            .transfers
            .push(transfer("unchanged", Some(rec.key.clone()), None, None));
        return Ok(effects);
    }
    let exists = link
        .as_ref()
        .is_some_and(|l| l.step == "synced" || l.step == "disabled");
    let sent = if exists {
        let master_of = |f: &str| o.master_of(f);
        super::plan::respect_master(&rec, None, &master_of)
    } else {
        rec.clone()
    };
    let outcome = sync
        .target
        .upsert(r.entity, std::slice::from_ref(&sent))
        .await?;
    match outcome.into_iter().next() {
        Some(RecordOutcome::Written { target_id, created }) => {
            // A new key (a changed job number): the record under the old key is disabled.
            if let Some(old) = sync.replaced_key(link.as_ref(), &rec.key) {
                sync.disable_replaced(
                    r.entity,
                    &[(old, lk.clone())],
                    Some(job.id),
                    job.attempts,
                    &Progress::new(),
                )
                .await?;
            }
            effects.links.push(Link {
                flow: sync.flow.clone(),
                source_key: lk.clone(),
                target_key: Some(rec.key.clone()),
                step: "synced".into(),
                payload_hash: Some(hash),
                updated_at: now_ms(),
            });
            let mut t = transfer(
                if created { "created" } else { "updated" },
                Some(rec.key.clone()),
                Some(Value::Object(sent.fields.clone())),
                None,
            );
            t.response = Some(json!({ "target_id": target_id }));
            effects.transfers.push(t);
            if let Some(u) = &person {
                effects.identities.push(sync.identity_of(&rec, u, now_ms()));
            }
            // A renamed or moved department changes its sub-departments' paths too: bring each
            // child in step (each goes further down only if it changed in turn).
            if r.entity == Entity::Department
                && let Ok(id) = r.id.parse::<i64>()
            {
                let children = super::source::with_retries(|| {
                    sync.source.department_list_sub(dingtalk::DeptId(id))
                })
                .await
                .map_err(JobError::from)?;
                for c in children {
                    effects.enqueue.push(
                        NewJob::new(
                            ENTITY_KIND,
                            json!({ "flow": sync.flow, "entity": Entity::Department, "id": c.dept_id.0.to_string() }),
                            now_ms(),
                        )
                        .flow(sync.flow.clone())
                        .queue(sync.queue.clone())
                        .idempotency_key(format!("org_sync:{}:after:{}:dept:{}", sync.flow, job.id, c.dept_id.0)),
                    );
                }
            }
            Ok(effects)
        }
        Some(RecordOutcome::Rejected { field, reason }) => Err(JobError::permanent(match field {
            Some(f) if !reason.contains(f.as_str()) => format!("field `{f}`: {reason}"),
            _ => reason,
        })),
        None => Err(JobError::retryable(
            "the target answered nothing for the record",
        )),
    }
}

/// Contact events of a flow's DingTalk connection → `org_sync.entity` jobs, one per id.
pub struct OrgEvents {
    pub flow: String,
    pub connection: String,
    pub queue: String,
    pub departments: bool,
}

impl OrgEvents {
    fn job(&self, entity: Entity, id: &str, event: &Event, now: Millis) -> NewJob {
        NewJob::new(
            ENTITY_KIND,
            json!({ "flow": self.flow, "entity": entity, "id": id, "event_id": event.event_id }),
            now,
        )
        .flow(self.flow.clone())
        .queue(self.queue.clone())
        .idempotency_key(format!(
            "org_sync:{}:event:{}:{}:{}:{id}",
            self.flow,
            event.connection,
            event.event_id,
            entity.as_str()
        ))
    }
}

/// Ids in an event: `userId` / `deptId` arrays (current format) or the capitalised older keys
/// (protocol §5.1); numbers or strings.
fn ids(payload: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| payload.get(*k))
        .flat_map(|v| match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        })
        .filter_map(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

impl EventSubscriber for OrgEvents {
    fn jobs_for(&self, event: &Event, now: Millis) -> Vec<NewJob> {
        if event.connection != self.connection {
            return Vec::new();
        }
        match event.event_type.as_str() {
            "user_add_org" | "user_modify_org" | "user_leave_org" | "user_active_org" => {
                ids(&event.payload, &["userId", "UserId"])
                    .into_iter()
                    .map(|id| self.job(Entity::User, &id, event, now))
                    .collect()
            }
            "org_dept_create" | "org_dept_modify" | "org_dept_remove" if self.departments => {
                ids(&event.payload, &["deptId", "DeptId"])
                    .into_iter()
                    .map(|id| self.job(Entity::Department, &id, event, now))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Register the org-sync kinds and the contact-event routes of `syncs` into `registry`.
pub fn register(registry: &mut crate::jobs::HandlerRegistry, syncs: HashMap<String, Arc<OrgSync>>) {
    let subscribers: Vec<Arc<dyn EventSubscriber>> = syncs
        .values()
        .map(|s| {
            Arc::new(OrgEvents {
                flow: s.flow.clone(),
                connection: s.options.source.clone(),
                queue: s.queue.clone(),
                departments: s.dept_mapping.is_some(),
            }) as Arc<dyn EventSubscriber>
        })
        .collect();
    let syncs = Arc::new(syncs);
    registry.register_recipe(
        RECIPE,
        Arc::new(OrgSyncRun {
            syncs: Arc::clone(&syncs),
        }),
    );
    registry.register(ENTITY_KIND, Arc::new(OrgSyncEntity { syncs }));
    registry.add_event_subscribers(subscribers);
}
