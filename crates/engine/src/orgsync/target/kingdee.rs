//! Kingdee as an org-sync target: departments into `BD_Department`, employees into
//! `BD_Empinfo` (forms configurable), by BatchSave; leavers and removed departments disabled
//! with the `Forbid` operation (ExcuteOperation, protocol §2).
//!
//! Base data is numbered by the caller, and Save with a number that exists (and no id) is
//! refused as a duplicate, so an upsert must know the record's id: the target reads number → id
//! for the whole form once (ExecuteBillQuery, paged) and keeps it up to date from the save
//! answers. A record saved by an attempt that crashed before recording it is found by that read
//! on the next attempt and updated instead of duplicated (lookup before save).

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;
use kingdee::{FormId, KingdeeClient, KingdeeError, Model, QueryRequest, SaveOptions, Selection};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{Entity, OrgTarget, RecordOutcome, TargetError, TargetRecord, TargetRow};

/// Per-entity settings from `[flows.<name>.options.users]` / `.departments`.
#[derive(Debug, Clone, Deserialize)]
pub struct KingdeeEntitySettings {
    /// Form id; default `BD_Department` / `BD_Empinfo`.
    pub form: Option<String>,
    /// The form's primary-key field; default `FDEPTID` / `FID`.
    pub pk: Option<String>,
    /// Operation that disables a record; default `Forbid`.
    #[serde(default = "default_forbid")]
    pub disable_op: String,
    /// Operation that enables it again (someone rehired, a department restored).
    #[serde(default = "default_enable")]
    pub enable_op: String,
    /// Submit and audit what was saved (default true): bills can only refer to audited base
    /// data, and only audited data can be forbidden. An audited record is un-audited before
    /// it is saved again (Save refuses audited records, protocol §2.3).
    #[serde(default = "default_true")]
    pub audit: bool,
}

fn default_true() -> bool {
    true
}

fn default_forbid() -> String {
    "Forbid".into()
}
fn default_enable() -> String {
    "Enable".into()
}

#[derive(Debug, Clone)]
struct FormSettings {
    form: FormId,
    pk: String,
    number_field: String,
    disable_op: String,
    enable_op: String,
    audit: bool,
    /// Mapped fields that are base-data references, and the reference key (`FNumber`):
    /// read back as `<field>.<key>`.
    references: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    id: i64,
    forbidden: bool,
    /// `FDocumentStatus`: Z draft, A created, B submitted, C audited, D re-audit.
    status: char,
}

fn status_of(v: Option<&Value>) -> char {
    v.and_then(text)
        .and_then(|s| s.chars().next())
        .unwrap_or('A')
}

pub struct KingdeeTarget {
    client: KingdeeClient,
    departments: Option<FormSettings>,
    users: FormSettings,
    /// number → id per entity, loaded on first use.
    known: Mutex<HashMap<Entity, HashMap<String, Known>>>,
    /// Held while a form is read, so workers that start at once read it once, not each.
    loading: Mutex<()>,
}

/// The settings of one entity, as the flow's options give them.
pub struct KingdeeEntityConfig<'a> {
    /// The mapping's key field (the form's number field).
    pub key: &'a str,
    /// The entity's options table (`form`, `pk`, …; `key` and `fields` are the mapping's).
    pub raw: &'a Value,
    /// The mapping rules, to learn which fields are references.
    pub rules: &'a Value,
}

impl KingdeeTarget {
    pub fn new(
        client: KingdeeClient,
        departments: Option<KingdeeEntityConfig<'_>>,
        users: KingdeeEntityConfig<'_>,
    ) -> Result<Self, TargetError> {
        Ok(Self {
            client,
            departments: departments
                .map(|c| form_settings(Entity::Department, &c))
                .transpose()?,
            users: form_settings(Entity::User, &users)?,
            known: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        })
    }

    fn settings(&self, entity: Entity) -> Result<&FormSettings, TargetError> {
        match entity {
            Entity::User => Ok(&self.users),
            Entity::Department => self.departments.as_ref().ok_or_else(|| {
                TargetError::permanent("no departments settings for the Kingdee target")
            }),
        }
    }

    /// number → id of every record of the entity's form (read once, then kept current).
    async fn ensure_known(&self, entity: Entity) -> Result<(), TargetError> {
        if self.known.lock().await.contains_key(&entity) {
            return Ok(());
        }
        let _loading = self.loading.lock().await;
        if self.known.lock().await.contains_key(&entity) {
            return Ok(()); // another worker read it while we waited
        }
        let s = self.settings(entity)?;
        let q = QueryRequest::new(
            s.form.clone(),
            [
                s.number_field.as_str(),
                s.pk.as_str(),
                "FForbidStatus",
                "FDocumentStatus",
            ],
        );
        let rows: Vec<Vec<Value>> = self
            .client
            .query_rows(q)
            .try_collect()
            .await
            .map_err(kingdee_error)?;
        let mut map = HashMap::with_capacity(rows.len());
        for row in rows {
            if let (Some(number), Some(id)) = (row.first().and_then(text), row.get(1).and_then(int))
            {
                let forbidden = row.get(2).and_then(text).is_some_and(|s| s == "B");
                let status = status_of(row.get(3));
                map.insert(
                    number,
                    Known {
                        id,
                        forbidden,
                        status,
                    },
                );
            }
        }
        self.known.lock().await.insert(entity, map);
        Ok(())
    }

    async fn lookup(&self, entity: Entity, number: &str) -> Option<Known> {
        self.known
            .lock()
            .await
            .get(&entity)
            .and_then(|m| m.get(number).copied())
    }

    /// Ask Kingdee for one number's id (the cache may be stale when another writer created it).
    async fn query_one(
        &self,
        s: &FormSettings,
        number: &str,
    ) -> Result<Option<Known>, TargetError> {
        let q = QueryRequest::new(
            s.form.clone(),
            [
                s.number_field.as_str(),
                s.pk.as_str(),
                "FForbidStatus",
                "FDocumentStatus",
            ],
        )
        .filter(format!(
            "{} = '{}'",
            s.number_field,
            number.replace('\'', "''")
        ));
        let rows = self
            .client
            .execute_bill_query(&q)
            .await
            .map_err(kingdee_error)?;
        Ok(rows.first().and_then(|row| {
            Some(Known {
                id: row.get(1).and_then(int)?,
                forbidden: row.get(2).and_then(text).is_some_and(|s| s == "B"),
                status: status_of(row.get(3)),
            })
        }))
    }

    fn model(s: &FormSettings, r: &TargetRecord, id: Option<i64>) -> Model {
        let mut m = Model::new();
        // Kingdee reads the id first to decide between create and update (protocol §2.2).
        m.set(s.pk.clone(), id.unwrap_or(0));
        // A null clears the field (a person without an e-mail, a department moved to the top):
        // Kingdee stores "" for text and nothing for a reference or a date.
        for (k, v) in &r.fields {
            if k.eq_ignore_ascii_case(&s.pk) {
                continue;
            }
            m.set(k.clone(), v.clone());
        }
        m
    }

    async fn save_batch(
        &self,
        entity: Entity,
        s: &FormSettings,
        records: &[TargetRecord],
        ids: &[Option<i64>],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let models: Vec<Model> = records
            .iter()
            .zip(ids)
            .map(|(r, id)| Self::model(s, r, *id))
            .collect();
        let report = self
            .client
            .batch_save(&s.form, &models, None, &SaveOptions::default())
            .await
            .map_err(kingdee_error)?;
        let mut out: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut saved = Vec::new();
        for e in &report.succeeded {
            let Some(i) = e.d_index.and_then(|i| usize::try_from(i).ok()) else {
                continue;
            };
            let Some(rec) = records.get(i) else { continue };
            let id =
                e.id.as_ref()
                    .and_then(|id| id.as_i64())
                    .or(ids[i])
                    .unwrap_or(0);
            saved.push((rec.key.clone(), id));
            out[i] = Some(RecordOutcome::Written {
                target_id: id.to_string(),
                created: ids[i].is_none(),
            });
        }
        for f in &report.failed {
            let Some(i) = usize::try_from(f.d_index).ok() else {
                continue;
            };
            if i >= out.len() {
                continue;
            }
            let field = f
                .errors
                .iter()
                .find_map(|e| e.field_name.clone().filter(|s| !s.is_empty()));
            let reason = f
                .errors
                .iter()
                .map(|e| e.message.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("; ");
            out[i] = Some(RecordOutcome::Rejected { field, reason });
        }
        {
            let mut known = self.known.lock().await;
            let map = known.entry(entity).or_default();
            for (number, id) in saved {
                let forbidden = map.get(&number).is_some_and(|k| k.forbidden);
                map.insert(
                    number,
                    Known {
                        id,
                        forbidden,
                        status: 'A',
                    },
                );
            }
        }
        let general = report
            .general_errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| RecordOutcome::Rejected {
                    field: None,
                    reason: if general.is_empty() {
                        "Kingdee answered nothing about this row".into()
                    } else {
                        general.clone()
                    },
                })
            })
            .collect())
    }

    /// Run `op` (Forbid / Enable) on these numbers; the outcome per number.
    async fn operate(
        &self,
        entity: Entity,
        s: &FormSettings,
        op: &str,
        numbers: &[String],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let sel = Selection::numbers(numbers.iter().map(|n| kingdee::BillNo::new(n.clone())));
        let answer = match op {
            "Submit" => self.client.submit(&s.form, &sel).await,
            "Audit" => self.client.audit(&s.form, &sel).await,
            "UnAudit" => self.client.unaudit(&s.form, &sel).await,
            other => self.client.execute_operation(&s.form, other, &sel).await,
        };
        match answer {
            Ok(_) => {}
            // Several numbers in one call: on a data error, fall back to one call each so one
            // bad record does not hold back the others.
            Err(e) if !e.is_retryable() && numbers.len() > 1 => {
                let mut out = Vec::with_capacity(numbers.len());
                for n in numbers {
                    let one =
                        Box::pin(self.operate(entity, s, op, std::slice::from_ref(n))).await?;
                    out.extend(one);
                }
                return Ok(out);
            }
            Err(e) if !e.is_retryable() => {
                return Ok(vec![RecordOutcome::Rejected {
                    field: None,
                    reason: e.to_string(),
                }]);
            }
            Err(e) => return Err(kingdee_error(e)),
        }
        let mut known = self.known.lock().await;
        let map = known.entry(entity).or_default();
        Ok(numbers
            .iter()
            .map(|n| {
                let id = map.get(n).map_or(0, |k| k.id);
                if let Some(k) = map.get_mut(n) {
                    if op.eq_ignore_ascii_case(&s.disable_op) {
                        k.forbidden = true;
                    } else if op.eq_ignore_ascii_case(&s.enable_op) {
                        k.forbidden = false;
                    } else if op == "Submit" {
                        k.status = 'B';
                    } else if op == "Audit" {
                        k.status = 'C';
                    } else if op == "UnAudit" || op == "CancelAssign" {
                        // Both leave the record editable (status D, 重新审核).
                        k.status = 'D';
                    }
                }
                RecordOutcome::Written {
                    target_id: id.to_string(),
                    created: false,
                }
            })
            .collect())
    }
}

impl KingdeeTarget {
    /// Run `op` on the numbers of `items` (index into the caller's records), turning a refusal
    /// into that record's rejection with `what` in the reason.
    async fn step(
        &self,
        entity: Entity,
        s: &FormSettings,
        op: &str,
        items: &[(usize, String)],
        out: &mut [RecordOutcome],
    ) -> Result<(), TargetError> {
        for chunk in items.chunks(100) {
            let numbers: Vec<String> = chunk.iter().map(|(_, n)| n.clone()).collect();
            let results = self.operate(entity, s, op, &numbers).await?;
            for ((i, _), r) in chunk.iter().zip(results) {
                if let RecordOutcome::Rejected { reason, .. } = r {
                    out[*i] = RecordOutcome::Rejected {
                        field: None,
                        reason: format!("{op}: {reason}"),
                    };
                }
            }
        }
        Ok(())
    }

    /// Submit and audit the written records among `items` that are not audited yet (a record
    /// already submitted, e.g. by an attempt that stopped between Submit and Audit, is only
    /// audited).
    async fn audit_written(
        &self,
        entity: Entity,
        s: &FormSettings,
        items: &[(usize, String)],
        out: &mut [RecordOutcome],
    ) -> Result<(), TargetError> {
        let mut to_submit = Vec::new();
        let mut submitted = Vec::new();
        for (i, n) in items {
            if !matches!(out[*i], RecordOutcome::Written { .. }) {
                continue;
            }
            match self.lookup(entity, n).await.map(|k| k.status) {
                Some('C') => {}
                Some('B') => submitted.push((*i, n.clone())),
                _ => to_submit.push((*i, n.clone())),
            }
        }
        self.step(entity, s, "Submit", &to_submit, out).await?;
        submitted.extend(
            to_submit
                .into_iter()
                .filter(|(i, _)| matches!(out[*i], RecordOutcome::Written { .. })),
        );
        self.step(entity, s, "Audit", &submitted, out).await
    }
}

fn form_settings(entity: Entity, c: &KingdeeEntityConfig<'_>) -> Result<FormSettings, TargetError> {
    let mut table = c.raw.as_object().cloned().unwrap_or_default();
    table.remove("key");
    table.remove("fields");
    let s: KingdeeEntitySettings = serde_json::from_value(Value::Object(table)).map_err(|e| {
        TargetError::permanent(format!(
            "options.{}: {e}; Kingdee settings are form, pk, disable_op, enable_op",
            match entity {
                Entity::Department => "departments",
                Entity::User => "users",
            }
        ))
    })?;
    let (form, pk) = match entity {
        Entity::Department => ("BD_Department", "FDEPTID"),
        Entity::User => ("BD_Empinfo", "FID"),
    };
    let references = c
        .rules
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| {
                    let to = r.get("to")?.as_str()?.to_owned();
                    // A reference rule, or a constant reference such as {"FNumber": "100"}.
                    let sub = match (r.get("reference"), r.get("constant")) {
                        (Some(Value::String(k)), _) => k.clone(),
                        (None, Some(Value::Object(m))) if m.len() == 1 => m.keys().next()?.clone(),
                        _ => return None,
                    };
                    Some((to, sub))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(FormSettings {
        form: FormId::new(s.form.unwrap_or_else(|| form.to_owned())),
        pk: s.pk.unwrap_or_else(|| pk.to_owned()),
        number_field: c.key.to_owned(),
        disable_op: s.disable_op,
        enable_op: s.enable_op,
        audit: s.audit,
        references,
    })
}

fn kingdee_error(e: KingdeeError) -> TargetError {
    if e.is_retryable() {
        TargetError::Retryable {
            message: format!("Kingdee: {e}"),
            retry_after: None,
        }
    } else {
        TargetError::permanent(format!("Kingdee: {e}"))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl OrgTarget for KingdeeTarget {
    fn kind(&self) -> &'static str {
        "kingdee"
    }

    /// People edit Kingdee between runs (audit, withdraw, forbid): a run starts from a fresh
    /// read of every form's numbers and statuses.
    async fn start_run(&self) {
        self.known.lock().await.clear();
    }

    async fn upsert(
        &self,
        entity: Entity,
        records: &[TargetRecord],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.settings(entity)?.clone();
        self.ensure_known(entity).await?;
        let mut ids = Vec::with_capacity(records.len());
        let mut to_enable = Vec::new();
        let mut audited = Vec::new();
        let mut submitted = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let k = self.lookup(entity, &r.key).await;
            if k.is_some_and(|k| k.forbidden) {
                to_enable.push(r.key.clone());
            }
            match k.map(|k| k.status) {
                Some('C') => audited.push((i, r.key.clone())),
                Some('B') => submitted.push((i, r.key.clone())),
                _ => {}
            }
            ids.push(k.map(|k| k.id));
        }
        let mut pre: Vec<RecordOutcome> = vec![
            RecordOutcome::Written {
                target_id: String::new(),
                created: false,
            };
            records.len()
        ];
        self.step(entity, &s, "UnAudit", &audited, &mut pre).await?;
        // Submitted but not audited (an attempt stopped between Submit and Audit): Save refuses
        // it too; withdraw the submission first (撤销).
        self.step(entity, &s, "CancelAssign", &submitted, &mut pre)
            .await?;
        // A refusal may come from a status we knew wrong (someone audited or withdrew the
        // record meanwhile): read it and try once more with the operation it needs.
        for (i, key) in audited.iter().chain(&submitted) {
            if !matches!(pre[*i], RecordOutcome::Rejected { .. }) {
                continue;
            }
            let Some(k) = self.query_one(&s, key).await? else {
                continue;
            };
            self.known
                .lock()
                .await
                .entry(entity)
                .or_default()
                .insert(key.clone(), k);
            pre[*i] = RecordOutcome::Written {
                target_id: String::new(),
                created: false,
            };
            let op = match k.status {
                'C' => "UnAudit",
                'B' => "CancelAssign",
                _ => continue,
            };
            self.step(entity, &s, op, &[(*i, key.clone())], &mut pre)
                .await?;
        }
        let mut out = self.save_batch(entity, &s, records, &ids).await?;
        for (o, p) in out.iter_mut().zip(pre) {
            if matches!(p, RecordOutcome::Rejected { .. }) {
                *o = p;
            }
        }
        // A row refused for a number we did not know: perhaps another writer (or an attempt
        // that crashed before recording it) created it meanwhile. Look it up and save it once
        // more as an update.
        for i in 0..records.len() {
            if ids[i].is_some() || !matches!(out[i], RecordOutcome::Rejected { .. }) {
                continue;
            }
            if let Some(k) = self.query_one(&s, &records[i].key).await? {
                self.known
                    .lock()
                    .await
                    .entry(entity)
                    .or_default()
                    .insert(records[i].key.clone(), k);
                if k.forbidden {
                    to_enable.push(records[i].key.clone());
                }
                let again = self
                    .save_batch(entity, &s, std::slice::from_ref(&records[i]), &[Some(k.id)])
                    .await?;
                if let Some(o) = again.into_iter().next() {
                    out[i] = o;
                }
            }
        }
        // A person who comes back, or a department restored: enable what was forbidden.
        let written: Vec<String> = to_enable
            .into_iter()
            .filter(|key| {
                records
                    .iter()
                    .zip(&out)
                    .any(|(r, o)| &r.key == key && matches!(o, RecordOutcome::Written { .. }))
            })
            .collect();
        if s.audit {
            let items: Vec<(usize, String)> = records
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.key.clone()))
                .collect();
            self.audit_written(entity, &s, &items, &mut out).await?;
        }
        if !written.is_empty() {
            let enabled = self
                .operate(entity, &s, &s.enable_op.clone(), &written)
                .await?;
            for (key, o) in written.iter().zip(enabled) {
                if let RecordOutcome::Rejected { reason, .. } = o
                    && let Some(i) = records.iter().position(|r| &r.key == key)
                {
                    out[i] = RecordOutcome::Rejected {
                        field: None,
                        reason: format!("saved, but {} failed: {reason}", s.enable_op),
                    };
                }
            }
        }
        Ok(out)
    }

    async fn disable(
        &self,
        entity: Entity,
        keys: &[String],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let s = self.settings(entity)?.clone();
        self.ensure_known(entity).await?;
        let mut out: Vec<Option<RecordOutcome>> = vec![None; keys.len()];
        let mut todo = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.lookup(entity, key).await {
                Some(k) if !k.forbidden => todo.push((i, key.clone())),
                Some(k) => {
                    out[i] = Some(RecordOutcome::Written {
                        target_id: k.id.to_string(),
                        created: false,
                    })
                }
                None => {
                    out[i] = Some(RecordOutcome::Written {
                        target_id: String::new(),
                        created: false,
                    })
                }
            }
        }
        // Only audited data can be forbidden (protocol §2.3): audit what is not yet.
        let mut staged: Vec<RecordOutcome> = vec![
            RecordOutcome::Written {
                target_id: String::new(),
                created: false,
            };
            keys.len()
        ];
        self.audit_written(entity, &s, &todo, &mut staged).await?;
        for (i, o) in staged.into_iter().enumerate() {
            if matches!(o, RecordOutcome::Rejected { .. }) {
                out[i] = Some(o);
            }
        }
        let todo: Vec<(usize, String)> = todo
            .into_iter()
            .filter(|(i, _)| out[*i].is_none())
            .collect();
        for chunk in todo.chunks(100) {
            let numbers: Vec<String> = chunk.iter().map(|(_, k)| k.clone()).collect();
            let results = self
                .operate(entity, &s, &s.disable_op.clone(), &numbers)
                .await?;
            for ((i, _), o) in chunk.iter().zip(results) {
                out[*i] = Some(o);
            }
        }
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or(RecordOutcome::Rejected {
                    field: None,
                    reason: "not processed".into(),
                })
            })
            .collect())
    }

    async fn read_all(
        &self,
        entity: Entity,
        fields: &[String],
    ) -> Result<Option<Vec<TargetRow>>, TargetError> {
        let s = self.settings(entity)?.clone();
        let wanted: Vec<&String> = fields
            .iter()
            .filter(|f| **f != s.number_field && !f.eq_ignore_ascii_case(&s.pk))
            .collect();
        let mut keys = vec![
            s.number_field.clone(),
            s.pk.clone(),
            "FForbidStatus".to_owned(),
            "FDocumentStatus".to_owned(),
        ];
        for f in &wanted {
            keys.push(match s.references.get(*f) {
                Some(sub) => format!("{f}.{sub}"),
                None => (*f).clone(),
            });
        }
        let rows: Vec<Vec<Value>> = self
            .client
            .query_rows(QueryRequest::new(s.form.clone(), keys))
            .try_collect()
            .await
            .map_err(kingdee_error)?;
        let mut known = HashMap::with_capacity(rows.len());
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (Some(number), Some(id)) = (row.first().and_then(text), row.get(1).and_then(int))
            else {
                continue;
            };
            let forbidden = row.get(2).and_then(text).is_some_and(|s| s == "B");
            known.insert(
                number.clone(),
                Known {
                    id,
                    forbidden,
                    status: status_of(row.get(3)),
                },
            );
            let mut m = Map::new();
            m.insert(s.number_field.clone(), Value::String(number.clone()));
            for (f, v) in wanted.iter().zip(row.iter().skip(4)) {
                let v = match s.references.get(*f) {
                    Some(sub) if !v.is_null() && v.as_str() != Some("") => {
                        let mut r = Map::new();
                        r.insert(sub.clone(), v.clone());
                        Value::Object(r)
                    }
                    Some(_) => Value::Null,
                    None => v.clone(),
                };
                m.insert((*f).clone(), v);
            }
            out.push(TargetRow {
                key: number,
                target_id: Some(id.to_string()),
                disabled: forbidden,
                fields: m,
            });
        }
        self.known.lock().await.insert(entity, known);
        Ok(Some(out))
    }
}
