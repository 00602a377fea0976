//! `[flows.<name>.options]` of the two approval recipes, checked when the node starts so a
//! mistake is one line naming the flow, the key and the fix.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Config, ConnectionKind, FlowConfig};

/// Why a flow's options cannot work.
#[derive(Debug, thiserror::Error)]
#[error("flow `{flow}`: {message}")]
pub struct OptionsError {
    pub flow: String,
    pub message: String,
}

fn fail(flow: &FlowConfig, message: impl Into<String>) -> OptionsError {
    OptionsError {
        flow: flow.name.clone(),
        message: message.into(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(flow: &FlowConfig) -> Result<T, OptionsError> {
    serde_json::from_value(flow.options.clone()).map_err(|e| fail(flow, format!("options: {e}")))
}

fn connection_of(
    flow: &FlowConfig,
    config: &Config,
    key: &str,
    name: &str,
    kind: ConnectionKind,
) -> Result<(), OptionsError> {
    match config.connections.get(name) {
        Some(c) if c.kind() == kind => Ok(()),
        Some(c) => Err(fail(
            flow,
            format!(
                "options.{key} = \"{name}\" is a {:?} connection; it must be {kind:?}",
                c.kind()
            ),
        )),
        None => Err(fail(
            flow,
            format!(
                "options.{key} = \"{name}\" names no connection; defined: {}",
                config
                    .connections
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The webhook's connection must be an HTTP one.
fn check_webhook(
    flow: &FlowConfig,
    config: &Config,
    webhook: Option<&WebhookTarget>,
) -> Result<(), OptionsError> {
    match webhook {
        Some(w) => connection_of(
            flow,
            config,
            "webhook.connection",
            &w.connection,
            ConnectionKind::Http,
        ),
        None => Ok(()),
    }
}

fn check_backfill_days(flow: &FlowConfig, days: u32) -> Result<(), OptionsError> {
    if (1..=120).contains(&days) {
        Ok(())
    } else {
        Err(fail(
            flow,
            "options.backfill_days must be 1..=120 (DingTalk lists at most 120 days)",
        ))
    }
}

/// Where webhook messages of a flow go: an HTTP connection (its base URL, `auth_header` and
/// `hmac_secret`, which signs per Standard Webhooks) and a path below it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub connection: String,
    #[serde(default)]
    pub path: String,
}

impl WebhookTarget {
    /// The endpoint name stored with messages and deliveries: `connection:path`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.connection, self.path)
    }
}

/// `approval_bridge`: in-house systems start DingTalk approvals through the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeOptions {
    /// The DingTalk connection.
    pub source: String,
    /// Alias → process code. Requests name a template by alias or by one of these codes.
    pub templates: BTreeMap<String, String>,
    /// Where outcomes are pushed.
    pub webhook: Option<WebhookTarget>,
    /// How far back the backfill poll looks at most, in days (DingTalk allows 120).
    #[serde(default = "default_backfill_days")]
    pub backfill_days: u32,
}

fn default_backfill_days() -> u32 {
    7
}

impl BridgeOptions {
    pub fn from_flow(flow: &FlowConfig, config: &Config) -> Result<Self, OptionsError> {
        let o: Self = parse(flow)?;
        connection_of(flow, config, "source", &o.source, ConnectionKind::DingTalk)?;
        check_webhook(flow, config, o.webhook.as_ref())?;
        if o.templates.is_empty() {
            return Err(fail(
                flow,
                "options.templates is empty; add one: [flows.<name>.options.templates] expense = \"PROC-…\"",
            ));
        }
        check_backfill_days(flow, o.backfill_days)?;
        Ok(o)
    }

    /// The process code a request's `template` names (an alias or a configured code).
    pub fn process_code(&self, template: &str) -> Option<&str> {
        self.templates
            .get(template)
            .map(String::as_str)
            .or_else(|| {
                self.templates
                    .values()
                    .find(|c| *c == template)
                    .map(String::as_str)
            })
    }
}

/// What happens to the Kingdee bill when its approval is revoked after the bill exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRevoke {
    /// UnAudit (or withdraw) the bill and delete it.
    Delete,
    /// UnAudit (or withdraw) the bill and leave it for a person.
    Unaudit,
    /// Change nothing in Kingdee; a dead letter asks a person to act.
    DeadLetter,
}

/// One entry (detail table) of the bill: rows of a form's detail table become entry rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryOptions {
    /// The entry's key in the Model, e.g. `FEntity`.
    pub key: String,
    /// Where the rows are in the source record, e.g. `form.费用明细`.
    pub from: String,
    /// Mapping rules applied to each row (the row's cells, plus `header`: the instance).
    pub fields: Value,
}

/// `approval_to_document`: approved DingTalk forms become Kingdee bills.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentOptions {
    /// The DingTalk connection.
    pub source: String,
    /// The Kingdee connection.
    pub target: String,
    /// The templates whose approved instances become bills.
    pub process_codes: Vec<String>,
    /// The bill's form, e.g. `ER_ExpReimbursement`.
    pub form_id: String,
    /// The bill's field that carries the DingTalk instance id (an extension field such as
    /// `F_DDInstanceId`): the bill is looked up by it before every Save.
    pub instance_field: String,
    #[serde(default = "yes")]
    pub submit: bool,
    #[serde(default = "yes")]
    pub audit: bool,
    #[serde(default = "on_revoke_default")]
    pub on_revoke: OnRevoke,
    /// Comment the bill number on the DingTalk instance.
    #[serde(default = "yes")]
    pub comment: bool,
    /// Who the comment is written as (a DingTalk userid); the originator when absent.
    pub comment_user: Option<String>,
    /// `{bill_no}` and `{form_id}` are replaced.
    #[serde(default = "comment_text_default")]
    pub comment_text: String,
    /// Also tell an in-house system (Standard Webhooks).
    pub webhook: Option<WebhookTarget>,
    /// How far back the backfill poll looks the first time, in days.
    #[serde(default = "default_backfill_days")]
    pub backfill_days: u32,
    /// Header mapping rules (the `mapping` crate's format).
    pub fields: Value,
    #[serde(default)]
    pub entries: Vec<EntryOptions>,
}

fn yes() -> bool {
    true
}
fn on_revoke_default() -> OnRevoke {
    OnRevoke::Delete
}
fn comment_text_default() -> String {
    "已生成金蝶单据 {bill_no}".into()
}

impl DocumentOptions {
    pub fn from_flow(flow: &FlowConfig, config: &Config) -> Result<Self, OptionsError> {
        let o: Self = parse(flow)?;
        connection_of(flow, config, "source", &o.source, ConnectionKind::DingTalk)?;
        connection_of(flow, config, "target", &o.target, ConnectionKind::Kingdee)?;
        check_webhook(flow, config, o.webhook.as_ref())?;
        if o.process_codes.is_empty() {
            return Err(fail(
                flow,
                "options.process_codes is empty; name the templates: process_codes = [\"PROC-…\"]",
            ));
        }
        if o.audit && !o.submit {
            return Err(fail(
                flow,
                "options.audit = true needs submit = true (Kingdee audits submitted bills only)",
            ));
        }
        check_backfill_days(flow, o.backfill_days)?;
        Ok(o)
    }
}
