//! `[flows.<name>.options]` of an `org_sync` flow, checked when the node starts so a bad option
//! is one clear line (flow, key, fix) instead of a failure in the middle of a run.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Config, ConnectionKind, FlowConfig};

/// Who wins when source and target disagree about a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Master {
    /// DingTalk's value overwrites the target's (the default).
    Dingtalk,
    /// The target keeps its value; the field is written only when the record is created.
    Target,
    /// Differences are listed as conflicts and wait for a person.
    Manual,
}

/// What happens in the target to a person who left DingTalk (or a removed department).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaverPolicy {
    /// Disable (Kingdee `Forbid`, the target's disable call): the default.
    Disable,
    /// Leave the target record as it is.
    Keep,
}

/// Which source field identifies a person to the target (recorded in the identity table as
/// `matched_by`), or explicit pairs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    JobNumber,
    Mobile,
    Email,
    Userid,
}

impl MatchKey {
    pub const fn as_str(&self) -> &'static str {
        match self {
            MatchKey::JobNumber => "job_number",
            MatchKey::Mobile => "mobile",
            MatchKey::Email => "email",
            MatchKey::Userid => "userid",
        }
    }
}

/// One entity's part of the options: the key field, the mapping rules and the target's own
/// settings (form, table, paths), kept raw for the target to read.
#[derive(Debug, Clone)]
pub struct EntityOptions {
    /// Which mapped field is the target's business key.
    pub key: String,
    /// The mapping rules (`fields`).
    pub rules: Value,
    /// The whole table, for the target's settings.
    pub raw: Value,
}

#[derive(Debug, Clone)]
pub struct OrgSyncOptions {
    /// The DingTalk connection read from.
    pub source: String,
    /// The connection written to (kingdee, http or sql).
    pub target: String,
    pub target_kind: ConnectionKind,
    /// Master source per field; fields not listed follow `master`.
    pub master: Master,
    pub master_fields: BTreeMap<String, Master>,
    pub leavers: LeaverPolicy,
    /// Records per target call.
    pub batch_size: usize,
    /// Requests in flight against DingTalk per API (each API has its own quota).
    pub concurrency: usize,
    /// Compare every department's member list with its `member_count` (one `department/get`
    /// per department; a different API, so it runs alongside the walk).
    pub check_member_counts: bool,
    /// Root department id (1 = the whole organisation).
    pub root: i64,
    /// Whether the root itself is written as a department.
    pub include_root: bool,
    /// Which source field identifies people (`matched_by` in the identity table).
    pub match_by: MatchKey,
    /// DingTalk userid → target key, overriding the mapped key.
    pub explicit: BTreeMap<String, String>,
    pub departments: Option<EntityOptions>,
    pub users: EntityOptions,
}

/// An option that cannot work, with the fix.
#[derive(Debug, thiserror::Error)]
#[error("flow `{flow}`: options.{key}: {reason}")]
pub struct OptionsError {
    pub flow: String,
    pub key: String,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    source: String,
    target: String,
    #[serde(default = "default_master")]
    master: Master,
    #[serde(default)]
    master_fields: BTreeMap<String, Master>,
    #[serde(default = "default_leavers")]
    leavers: LeaverPolicy,
    #[serde(default = "default_batch")]
    batch_size: usize,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_true")]
    check_member_counts: bool,
    #[serde(default = "default_root")]
    root: i64,
    #[serde(default)]
    include_root: bool,
    #[serde(default = "default_match")]
    match_by: MatchKey,
    #[serde(default)]
    explicit: BTreeMap<String, String>,
    departments: Option<Value>,
    users: Option<Value>,
}

fn default_master() -> Master {
    Master::Dingtalk
}
fn default_leavers() -> LeaverPolicy {
    LeaverPolicy::Disable
}
fn default_batch() -> usize {
    100
}
fn default_concurrency() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_root() -> i64 {
    1
}
fn default_match() -> MatchKey {
    MatchKey::JobNumber
}

impl OrgSyncOptions {
    /// Read and check the options of `flow` against the configured connections.
    pub fn from_flow(flow: &FlowConfig, config: &Config) -> Result<Self, OptionsError> {
        let fail = |key: &str, reason: String| OptionsError {
            flow: flow.name.clone(),
            key: key.to_owned(),
            reason,
        };
        let raw: Raw = serde_json::from_value(flow.options.clone()).map_err(|e| {
            fail(
                "*",
                format!(
                    "{e}; expected source = \"<dingtalk connection>\", target = \"<connection>\", \
                     [users] with key and fields (see examples/dingbridge.toml)"
                ),
            )
        })?;
        let conn_kind = |key: &str, name: &str| {
            config
                .connections
                .get(name)
                .map(|c| c.kind())
                .ok_or_else(|| {
                    fail(
                        key,
                        format!(
                            "no connection `{name}`; define [connections.{name}] or use one of: {}",
                            config
                                .connections
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        };
        if conn_kind("source", &raw.source)? != ConnectionKind::DingTalk {
            return Err(fail(
                "source",
                format!("`{}` is not a DingTalk connection", raw.source),
            ));
        }
        let target_kind = conn_kind("target", &raw.target)?;
        if target_kind == ConnectionKind::DingTalk {
            return Err(fail(
                "target",
                "the target must be a kingdee, http or sql connection".into(),
            ));
        }
        if raw.batch_size == 0 || raw.batch_size > 1000 {
            return Err(fail(
                "batch_size",
                "must be between 1 and 1000 (Kingdee advises 100–500 per BatchSave)".into(),
            ));
        }
        if raw.concurrency == 0 || raw.concurrency > 32 {
            return Err(fail("concurrency", "must be between 1 and 32".into()));
        }
        let entity = |key: &str,
                      v: Value,
                      default_key: &str|
         -> Result<EntityOptions, OptionsError> {
            let Some(table) = v.as_object() else {
                return Err(fail(key, "must be a table".into()));
            };
            let key_field = match table.get("key") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                None if !default_key.is_empty() => default_key.to_owned(),
                _ => {
                    return Err(fail(
                        &format!("{key}.key"),
                        "name the mapped field that is the target's key, e.g. key = \"FStaffNumber\""
                            .into(),
                    ));
                }
            };
            let rules = table.get("fields").cloned().ok_or_else(|| {
                fail(
                    &format!("{key}.fields"),
                    "missing: add [[flows.<name>.options.<entity>.fields]] rules".into(),
                )
            })?;
            let mapping = mapping::Mapping::from_value(&rules)
                .map_err(|e| fail(&format!("{key}.fields"), e.to_string()))?;
            if !mapping.target_fields().contains(&key_field) {
                return Err(fail(
                    &format!("{key}.key"),
                    format!(
                        "`{key_field}` is not produced by any rule; add a rule with to = \"{key_field}\""
                    ),
                ));
            }
            Ok(EntityOptions {
                key: key_field,
                rules,
                raw: v,
            })
        };
        let (dept_key, user_key) = match target_kind {
            ConnectionKind::Kingdee => ("FNumber", "FStaffNumber"),
            _ => ("", ""),
        };
        let users = entity(
            "users",
            raw.users
                .ok_or_else(|| fail("users", "missing: add [flows.<name>.options.users]".into()))?,
            user_key,
        )?;
        let departments = raw
            .departments
            .map(|v| entity("departments", v, dept_key))
            .transpose()?;
        if target_kind == ConnectionKind::Kingdee && departments.is_none() {
            return Err(fail(
                "departments",
                "a Kingdee target needs [flows.<name>.options.departments] (employees refer to BD_Department)".into(),
            ));
        }
        Ok(OrgSyncOptions {
            source: raw.source,
            target: raw.target,
            target_kind,
            master: raw.master,
            master_fields: raw.master_fields,
            leavers: raw.leavers,
            batch_size: raw.batch_size,
            concurrency: raw.concurrency,
            check_member_counts: raw.check_member_counts,
            root: raw.root,
            include_root: raw.include_root,
            match_by: raw.match_by,
            explicit: raw.explicit,
            departments,
            users,
        })
    }

    /// Who wins for `field`.
    pub fn master_of(&self, field: &str) -> Master {
        self.master_fields
            .get(field)
            .copied()
            .unwrap_or(self.master)
    }
}
