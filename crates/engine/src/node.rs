//! A node assembled from configuration: the handler registry, retry policies, worker pool
//! and scheduler, all driven by one shutdown token. `dingbridge serve` and `demo` run this.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use store::{ConnectionRecord, FlowRecord, Millis, NewJob, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FlowConfig};
use crate::jobs::HandlerRegistry;
use crate::retry::RetryPolicy;
use crate::scheduler::{ScheduledFlow, Scheduler, parse_cron};
use crate::worker::{RetryPolicies, WorkerPool, WorkerSettings, default_node_id};

/// Why a configuration cannot run on this node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "flow `{flow}`: recipe `{recipe}` is not available in this build; available: {available}"
    )]
    UnknownRecipe {
        flow: String,
        recipe: String,
        available: String,
    },
    #[error("flow `{flow}`: schedule `{expr}`: {reason}")]
    BadSchedule {
        flow: String,
        expr: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Node {
    store: Arc<dyn Store>,
    config: Config,
    handlers: HandlerRegistry,
}

impl Node {
    /// Check every enabled flow's recipe against the job kinds this build knows.
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        handlers: HandlerRegistry,
    ) -> Result<Self, NodeError> {
        for flow in config.flows.values().filter(|f| f.enabled) {
            if !handlers.recipes().any(|r| r == flow.recipe) {
                return Err(NodeError::UnknownRecipe {
                    flow: flow.name.clone(),
                    recipe: flow.recipe.clone(),
                    available: handlers.recipes().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(Self {
            store,
            config,
            handlers,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The job one run of `flow` is.
    pub fn flow_job(flow: &FlowConfig, now: Millis) -> NewJob {
        NewJob::new(flow.recipe.clone(), flow.options.clone(), now)
            .flow(flow.name.clone())
            .queue(flow.queue.clone())
            .priority(flow.priority)
            .max_attempts(i32::try_from(flow.retry.attempts()).unwrap_or(i32::MAX))
    }

    /// Record the configured connections and flows in the store (for the console and API).
    pub async fn register(&self, now: Millis) -> Result<(), NodeError> {
        let mut tx = self.store.begin().await?;
        for c in self.config.connections.values() {
            tx.upsert_connection(&ConnectionRecord {
                name: c.name.clone(),
                kind: format!("{:?}", c.kind()).to_lowercase(),
                config_hash: debug_hash(c),
                updated_at: now,
            })
            .await?;
        }
        for f in self.config.flows.values() {
            tx.upsert_flow(&FlowRecord {
                name: f.name.clone(),
                recipe: f.recipe.clone(),
                enabled: f.enabled,
                config_hash: debug_hash(f),
                updated_at: now,
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn scheduled_flows(&self) -> Result<Vec<ScheduledFlow>, NodeError> {
        let now = crate::clock::now_ms();
        let mut out = Vec::new();
        for f in self.config.flows.values().filter(|f| f.enabled) {
            // org_sync reconciles every 10 minutes, the approval flows poll for missed events
            // every 5, unless the flow says otherwise.
            let default = match f.recipe.as_str() {
                crate::orgsync::RECIPE => Some(crate::orgsync::DEFAULT_SCHEDULE),
                crate::approvals::bridge::RECIPE => {
                    Some(crate::approvals::bridge::DEFAULT_SCHEDULE)
                }
                crate::approvals::document::RECIPE => {
                    Some(crate::approvals::document::DEFAULT_SCHEDULE)
                }
                _ => None,
            }
            .map(str::to_owned);
            let Some(expr) = f.schedule.clone().or(default) else {
                continue;
            };
            let expr = &expr;
            let cron = parse_cron(expr).map_err(|e| NodeError::BadSchedule {
                flow: f.name.clone(),
                expr: expr.clone(),
                reason: e.to_string(),
            })?;
            out.push(ScheduledFlow {
                name: f.name.clone(),
                cron_text: expr.clone(),
                cron,
                job: Self::flow_job(f, now),
            });
        }
        Ok(out)
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        let w = &self.config.workers;
        WorkerSettings {
            count: w.count,
            lease: w.lease(),
            poll_interval: w.poll_interval(),
            queues: w.queues.clone(),
            shutdown_grace: w.shutdown_grace(),
            node_id: default_node_id(),
        }
    }

    fn retry_policies(&self) -> RetryPolicies {
        let per_flow: HashMap<String, RetryPolicy> = self
            .config
            .flows
            .values()
            .map(|f| (f.name.clone(), RetryPolicy::from_config(&f.retry)))
            .collect();
        RetryPolicies {
            default: RetryPolicy::default(),
            per_flow,
        }
    }

    /// Run the workers and the scheduler until `shutdown`; returns when every claimed job has
    /// been finished or released.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NodeError> {
        let scheduler = Scheduler::new(Arc::clone(&self.store), self.scheduled_flows()?);
        let pool = WorkerPool::new(
            Arc::clone(&self.store),
            self.handlers.clone(),
            self.retry_policies(),
            self.worker_settings(),
        );
        let sched = tokio::spawn(scheduler.run(shutdown.clone()));
        pool.run(shutdown).await;
        let _ = sched.await;
        Ok(())
    }
}

/// A fingerprint of a config section (its `Debug`, which never shows secrets).
fn debug_hash<T: std::fmt::Debug>(v: &T) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{v:?}").hash(&mut h);
    format!("{:016x}", h.finish())
}
