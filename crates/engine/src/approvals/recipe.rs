//! How a node builds the approval flows from its configuration and registers their job kinds
//! and event routes.

use std::collections::HashMap;
use std::sync::Arc;

use limits::LimiterRegistry;
use store::Store;

use super::bridge::{self, ApprovalBridge, BridgeEvents, BridgeJobs};
use super::document::{self, DocumentEvents, DocumentFlow, DocumentJobs, DocumentSetupError};
use super::options::{BridgeOptions, DocumentOptions, OptionsError};
use super::outbox::{self, DeliverWebhook};
use crate::config::{Config, ConnectionSettings};
use crate::connectors::{dingtalk_client, kingdee_client};
use crate::jobs::HandlerRegistry;
use crate::jobs::inbox::EventSubscriber;

/// Why an approval flow cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalSetupError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Document(#[from] DocumentSetupError),
    #[error("flow `{flow}`: {message}")]
    Connection { flow: String, message: String },
    #[error("{0}")]
    Receiver(String),
}

/// The approval flows of a configuration, built.
#[derive(Default, Clone)]
pub struct ApprovalFlows {
    pub bridges: HashMap<String, Arc<ApprovalBridge>>,
    pub documents: HashMap<String, Arc<DocumentFlow>>,
}

impl ApprovalFlows {
    /// The bridge a request means: the named flow, or the only one.
    pub fn bridge(&self, flow: Option<&str>) -> Option<&Arc<ApprovalBridge>> {
        match flow {
            Some(f) => self.bridges.get(f),
            None if self.bridges.len() == 1 => self.bridges.values().next(),
            None => None,
        }
    }
}

/// Build every enabled `approval_bridge` and `approval_to_document` flow of `config`.
pub fn build_approval_flows(
    config: &Config,
    store: Arc<dyn Store>,
    limiters: &LimiterRegistry,
) -> Result<ApprovalFlows, ApprovalSetupError> {
    let mut out = ApprovalFlows::default();
    let conn_err = |flow: &str, message: String| ApprovalSetupError::Connection {
        flow: flow.to_owned(),
        message,
    };
    let dingtalk = |flow: &str, name: &str| match config.connections.get(name).map(|c| &c.settings)
    {
        Some(ConnectionSettings::DingTalk(c)) => dingtalk_client(name, c, limiters.pacer(name))
            .map_err(|e| conn_err(flow, e.to_string())),
        _ => Err(conn_err(
            flow,
            format!("`{name}` is not a DingTalk connection"),
        )),
    };
    for flow in config.flows.values().filter(|f| f.enabled) {
        if flow.recipe == bridge::RECIPE {
            let options = BridgeOptions::from_flow(flow, config)?;
            let client = dingtalk(&flow.name, &options.source)?;
            out.bridges.insert(
                flow.name.clone(),
                Arc::new(ApprovalBridge::new(
                    flow.name.clone(),
                    options,
                    flow.queue.clone(),
                    client,
                    Arc::clone(&store),
                )),
            );
        } else if flow.recipe == document::RECIPE {
            let options = DocumentOptions::from_flow(flow, config)?;
            let client = dingtalk(&flow.name, &options.source)?;
            let kingdee = match config.connections.get(&options.target).map(|c| &c.settings) {
                Some(ConnectionSettings::Kingdee(c)) => {
                    kingdee_client(&options.target, c, limiters.pacer(&options.target))
                        .map_err(|e| conn_err(&flow.name, e.to_string()))?
                }
                _ => {
                    return Err(conn_err(
                        &flow.name,
                        format!("`{}` is not a Kingdee connection", options.target),
                    ));
                }
            };
            out.documents.insert(
                flow.name.clone(),
                Arc::new(DocumentFlow::new(
                    flow.name.clone(),
                    options,
                    flow.queue.clone(),
                    client,
                    kingdee,
                )?),
            );
        }
    }
    Ok(out)
}

/// Register the approval kinds, the webhook delivery and the approval-event routes.
pub fn register(
    registry: &mut HandlerRegistry,
    config: &Config,
    flows: &ApprovalFlows,
) -> Result<(), ApprovalSetupError> {
    let receivers = outbox::receivers(config).map_err(ApprovalSetupError::Receiver)?;
    registry.register(
        outbox::KIND,
        Arc::new(DeliverWebhook {
            receivers: Arc::new(receivers),
        }),
    );
    let bridge_jobs = Arc::new(BridgeJobs {
        bridges: Arc::new(flows.bridges.clone()),
    });
    registry.register_recipe(bridge::RECIPE, bridge_jobs.clone());
    registry.register(bridge::SYNC_KIND, bridge_jobs);
    let document_jobs = Arc::new(DocumentJobs {
        flows: Arc::new(flows.documents.clone()),
    });
    registry.register_recipe(document::RECIPE, document_jobs.clone());
    registry.register(document::STEP_KIND, document_jobs.clone());
    registry.register(document::REVOKE_KIND, document_jobs);
    let mut subscribers: Vec<Arc<dyn EventSubscriber>> = Vec::new();
    for b in flows.bridges.values() {
        subscribers.push(Arc::new(BridgeEvents {
            bridge: Arc::clone(b),
        }));
    }
    for d in flows.documents.values() {
        subscribers.push(Arc::new(DocumentEvents {
            flow: Arc::clone(d),
        }));
    }
    registry.add_event_subscribers(subscribers);
    Ok(())
}
