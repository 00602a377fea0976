//! The reconciliation diff: what the source says against what the target holds, entity by
//! entity, decided by the master-source policy. Pure functions, so the plan a dry run prints
//! is exactly the plan a real run applies.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::options::Master;
use super::target::{Entity, TargetRecord, TargetRow};

/// One field two sides disagree about, and a person must decide (master `manual`), or a key
/// two sources claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub entity: Entity,
    pub source_key: String,
    pub key: String,
    pub field: Option<String>,
    pub source_value: Value,
    pub target_value: Value,
    pub reason: String,
}

/// What to do to bring the target in step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub create: Vec<TargetRecord>,
    /// Records to write again, with the fields that differ (for the report).
    pub update: Vec<(TargetRecord, Vec<String>)>,
    /// Target keys to disable, with the DingTalk id they were linked to.
    pub disable: Vec<(String, String)>,
    pub conflicts: Vec<Conflict>,
    pub unchanged: usize,
    /// Target records the hub never wrote and the source does not have: left alone.
    pub unmanaged: usize,
    /// Disables not planned because the snapshot is incomplete.
    pub withheld_disables: usize,
}

/// Whether two values mean the same, across the ways targets echo what they were sent:
/// `null` = `""`, numbers against numeric text, a date against its midnight timestamp
/// (`2024-03-01` ↔ `2024-03-01T00:00:00`), `{"FNumber": x}` against `{"FNumber": x}` with
/// another key case.
pub fn same_value(source: &Value, target: &Value) -> bool {
    match (source, target) {
        (Value::Null, Value::Null) => true,
        (Value::Null, Value::String(s)) | (Value::String(s), Value::Null) => s.trim().is_empty(),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    b.iter()
                        .find(|(bk, _)| bk.eq_ignore_ascii_case(k))
                        .is_some_and(|(_, bv)| same_value(v, bv))
                })
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) => {
            matches!(
                (b, s.to_ascii_lowercase().as_str()),
                (true, "true" | "1") | (false, "false" | "0")
            )
        }
        (Value::Bool(b), Value::Number(n)) | (Value::Number(n), Value::Bool(b)) => {
            n.as_i64() == Some(i64::from(*b))
        }
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (a.trim(), b.trim());
            a == b || midnight(a, b) || midnight(b, a)
        }
        _ => source == target,
    }
}

fn midnight(date: &str, stamp: &str) -> bool {
    date.len() == 10
        && stamp.starts_with(date)
        && matches!(
            &stamp[10..],
            "T00:00:00" | " 00:00:00" | "T00:00:00Z" | "T00:00:00.000"
        )
}

/// Fields of `record` that differ from `row`, by master policy: (fields to write, fields in
/// conflict). Target-mastered fields are never compared.
pub fn differing_fields(
    record: &TargetRecord,
    row: &TargetRow,
    master_of: &dyn Fn(&str) -> Master,
) -> (Vec<String>, Vec<String>) {
    let mut write = Vec::new();
    let mut conflict = Vec::new();
    for (field, value) in &record.fields {
        let theirs = row.fields.get(field).unwrap_or(&Value::Null);
        if same_value(value, theirs) {
            continue;
        }
        match master_of(field) {
            Master::Dingtalk => write.push(field.clone()),
            Master::Manual => conflict.push(field.clone()),
            Master::Target => {}
        }
    }
    (write, conflict)
}

/// For an existing target record: the record to send, with every field DingTalk does not
/// master taken from the target (so writing it changes only what DingTalk owns).
pub fn respect_master(
    record: &TargetRecord,
    row: Option<&Map<String, Value>>,
    master_of: &dyn Fn(&str) -> Master,
) -> TargetRecord {
    let mut out = record.clone();
    out.fields = record
        .fields
        .iter()
        .filter_map(|(field, value)| {
            if master_of(field) == Master::Dingtalk {
                return Some((field.clone(), value.clone()));
            }
            // The target's own value; when it is not known, the field is left out of the
            // write (null would clear it).
            row.and_then(|r| r.get(field))
                .map(|theirs| (field.clone(), theirs.clone()))
        })
        .collect();
    out
}

/// Inputs of one entity's diff.
pub struct DiffInput<'a> {
    pub entity: Entity,
    /// Mapped source records (mapping failures are not here: they are rejected records).
    pub source: &'a [TargetRecord],
    /// The target's records, or `None` when it cannot list them (then links stand in).
    pub target: Option<&'a [TargetRow]>,
    /// The hub's links of this entity: source key → (target key, step, payload hash).
    pub links: &'a HashMap<String, LinkState>,
    /// Source keys the snapshot proves absent are only trusted when it is complete.
    pub complete: bool,
    pub disable_leavers: bool,
    pub master_of: &'a dyn Fn(&str) -> Master,
}

/// What the hub last recorded about one source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub target_key: Option<String>,
    pub step: String,
    pub payload_hash: Option<String>,
}

impl LinkState {
    /// The hub last wrote exactly the record with this digest.
    pub fn holds(&self, hash: &str) -> bool {
        self.step == "synced" && self.payload_hash.as_deref() == Some(hash)
    }
}

impl From<store::Link> for LinkState {
    fn from(l: store::Link) -> Self {
        Self {
            target_key: l.target_key,
            step: l.step,
            payload_hash: l.payload_hash,
        }
    }
}

pub fn diff(input: &DiffInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    let rows: Option<HashMap<&str, &TargetRow>> = input
        .target
        .map(|t| t.iter().map(|r| (r.key.as_str(), r)).collect());
    let source_keys: HashSet<&str> = input.source.iter().map(|r| r.source_key.as_str()).collect();
    for rec in input.source {
        if let Some(other) = claimed.insert(rec.key.as_str(), rec.source_key.as_str()) {
            plan.conflicts.push(Conflict {
                entity: input.entity,
                source_key: rec.source_key.clone(),
                key: rec.key.clone(),
                field: None,
                source_value: Value::String(rec.source_key.clone()),
                target_value: Value::String(other.to_owned()),
                reason: format!(
                    "DingTalk {} `{}` and `{other}` map to the same target key `{}`",
                    input.entity.as_str(),
                    rec.source_key,
                    rec.key
                ),
            });
            continue;
        }
        let link = input.links.get(&rec.source_key);
        match &rows {
            Some(rows) => match rows.get(rec.key.as_str()) {
                None => plan.create.push(rec.clone()),
                Some(row) => {
                    let (write, conflict) = differing_fields(rec, row, input.master_of);
                    for f in &conflict {
                        plan.conflicts.push(Conflict {
                            entity: input.entity,
                            source_key: rec.source_key.clone(),
                            key: rec.key.clone(),
                            field: Some(f.clone()),
                            source_value: rec.fields.get(f).cloned().unwrap_or(Value::Null),
                            target_value: row.fields.get(f).cloned().unwrap_or(Value::Null),
                            reason: "both sides differ and the field's master is `manual`".into(),
                        });
                    }
                    if !write.is_empty() || row.disabled {
                        let mut fields = write;
                        if row.disabled {
                            fields.push("(enable)".into());
                        }
                        plan.update.push((
                            respect_master(rec, Some(&row.fields), input.master_of),
                            fields,
                        ));
                    } else if conflict.is_empty() {
                        plan.unchanged += 1;
                    }
                }
            },
            // No listing: the links say what the hub wrote last.
            None => match link {
                Some(l)
                    if l.step == "synced"
                        && l.payload_hash.as_deref() == Some(&hash_record(rec)) =>
                {
                    plan.unchanged += 1;
                }
                Some(l) if l.step == "synced" || l.step == "disabled" => plan.update.push((
                    respect_master(rec, None, input.master_of),
                    vec!["(changed)".into()],
                )),
                _ => plan.create.push(rec.clone()),
            },
        }
    }
    // Linked records the source no longer has.
    let mut gone: Vec<(String, String)> = input
        .links
        .iter()
        .filter(|(sk, l)| l.step == "synced" && !source_keys.contains(sk.as_str()))
        .filter_map(|(sk, l)| Some((l.target_key.clone()?, sk.clone())))
        .filter(|(key, _)| {
            rows.as_ref()
                .is_none_or(|rows| rows.get(key.as_str()).is_some_and(|r| !r.disabled))
        })
        .collect();
    gone.sort();
    if input.disable_leavers {
        if input.complete {
            plan.disable = gone;
        } else {
            plan.withheld_disables = gone.len();
        }
    }
    if let Some(t) = input.target {
        let linked: HashSet<&str> = input
            .links
            .values()
            .filter_map(|l| l.target_key.as_deref())
            .collect();
        plan.unmanaged = t
            .iter()
            .filter(|r| !claimed.contains_key(r.key.as_str()) && !linked.contains(r.key.as_str()))
            .count();
    }
    plan
}

/// A stable digest of a mapped record (field order included), stored in its link so an
/// unchanged record is not written again.
pub fn hash_record(r: &TargetRecord) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(&r.fields).unwrap_or_default();
    let digest = Sha256::digest(format!("{}\u{1f}{text}", r.key).as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(sk: &str, key: &str, fields: Value) -> TargetRecord {
        TargetRecord {
            entity: Entity::User,
            source_key: sk.into(),
            key: key.into(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }
    fn row(key: &str, fields: Value, disabled: bool) -> TargetRow {
        TargetRow {
            key: key.into(),
            target_id: None,
            disabled,
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }
    fn link(key: &str) -> LinkState {
        LinkState {
            target_key: Some(key.into()),
            step: "synced".into(),
            payload_hash: None,
        }
    }

    #[test]
    fn values_compare_across_target_echoes() {
        assert!(same_value(
            &json!("2024-03-01"),
            &json!("2024-03-01T00:00:00")
        ));
        assert!(same_value(&json!(null), &json!("")));
        assert!(same_value(&json!(12), &json!("12")));
        assert!(same_value(
            &json!({"FNumber": "DT2"}),
            &json!({"FNUMBER": "DT2"})
        ));
        assert!(!same_value(&json!("张三"), &json!("张四")));
        assert!(!same_value(
            &json!("2024-03-01"),
            &json!("2024-03-01T08:00:00")
        ));
        assert!(!same_value(
            &json!({"FNumber": "DT2"}),
            &json!({"FNumber": "DT3"})
        ));
    }

    #[test]
    fn diff_plans_create_update_disable_and_conflicts() {
        let source = vec![
            rec(
                "u1",
                "E1",
                json!({"FStaffNumber": "E1", "FName": "张三", "FPostName": "工程师"}),
            ),
            rec(
                "u2",
                "E2",
                json!({"FStaffNumber": "E2", "FName": "李四", "FPostName": "经理"}),
            ),
            rec(
                "u3",
                "E3",
                json!({"FStaffNumber": "E3", "FName": "王五", "FPostName": "销售"}),
            ),
            rec(
                "u4",
                "E3",
                json!({"FStaffNumber": "E3", "FName": "赵六", "FPostName": "销售"}),
            ),
        ];
        let target = vec![
            row(
                "E1",
                json!({"FStaffNumber": "E1", "FName": "张三", "FPostName": "工程师"}),
                false,
            ),
            row(
                "E2",
                json!({"FStaffNumber": "E2", "FName": "李四", "FPostName": "主管"}),
                false,
            ),
            row(
                "E9",
                json!({"FStaffNumber": "E9", "FName": "离职者", "FPostName": ""}),
                false,
            ),
            row(
                "X1",
                json!({"FStaffNumber": "X1", "FName": "外部", "FPostName": ""}),
                false,
            ),
        ];
        let links: HashMap<String, LinkState> = [
            ("u1".to_owned(), link("E1")),
            ("u2".to_owned(), link("E2")),
            ("u9".to_owned(), link("E9")),
        ]
        .into_iter()
        .collect();
        let dingtalk = |_: &str| Master::Dingtalk;
        let input = DiffInput {
            entity: Entity::User,
            source: &source,
            target: Some(&target),
            links: &links,
            complete: true,
            disable_leavers: true,
            master_of: &dingtalk,
        };
        let plan = diff(&input);
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].1, vec!["FPostName".to_owned()]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].key, "E3");
        assert_eq!(plan.disable, vec![("E9".to_owned(), "u9".to_owned())]);
        assert_eq!(plan.conflicts.len(), 1, "{:?}", plan.conflicts);
        assert_eq!(plan.unmanaged, 1, "X1 is not ours");

        // Incomplete snapshot: no disable, but the count is reported.
        let plan = diff(&DiffInput {
            complete: false,
            ..input
        });
        assert!(plan.disable.is_empty());
        assert_eq!(plan.withheld_disables, 1);
    }

    #[test]
    fn per_field_master() {
        let source = vec![rec(
            "u2",
            "E2",
            json!({"FStaffNumber": "E2", "FName": "李四", "FPostName": "经理"}),
        )];
        let target = vec![row(
            "E2",
            json!({"FStaffNumber": "E2", "FName": "李四（财务）", "FPostName": "主管"}),
            false,
        )];
        let links = HashMap::new();
        let master = |f: &str| match f {
            "FPostName" => Master::Target,
            "FName" => Master::Manual,
            _ => Master::Dingtalk,
        };
        let plan = diff(&DiffInput {
            entity: Entity::User,
            source: &source,
            target: Some(&target),
            links: &links,
            complete: true,
            disable_leavers: true,
            master_of: &master,
        });
        assert!(
            plan.update.is_empty(),
            "target-mastered difference is not written"
        );
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].field.as_deref(), Some("FName"));
        let sent = respect_master(&source[0], Some(&target[0].fields), &master);
        assert_eq!(sent.fields["FPostName"], json!("主管"));
    }
}
