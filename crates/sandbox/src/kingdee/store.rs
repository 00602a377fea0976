//! The in-memory data centre: records per form, numbers, document status and the business
//! operations of protocol §2.1 (Save, BatchSave, Draft, Submit, Audit, UnAudit, Delete, View,
//! Forbid/Enable, Push, WorkflowAudit). Pure and synchronous; the HTTP layer holds it behind a
//! lock.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Number, Value, json};

use super::envelope::{KdError, Outcome, SuccessEntity, msg};
use super::forms::{self, EntryDef, FieldDef, FieldType, FormDef, FormKind};
use crate::seed::Seed;

/// `FDocumentStatus`: Z 暂存, A 创建, B 审核中, C 已审核, D 重新审核 (protocol §2.3).
pub type DocStatus = char;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub id: i64,
    pub number: String,
    pub status: DocStatus,
    /// `FForbidStatus`: A enabled, B forbidden.
    pub forbid: char,
    /// Header fields and entry arrays, canonical keys, in the order first written.
    pub fields: Map<String, Value>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Default)]
pub struct FormData {
    pub records: BTreeMap<i64, Record>,
    pub by_number: HashMap<String, i64>,
    pub next_bill: u64,
}

#[derive(Debug, Clone)]
pub struct Db {
    pub forms: HashMap<&'static str, FormData>,
    pub next_id: i64,
    pub next_entry_id: i64,
    /// Reject unknown field keys on Save instead of ignoring them (protocol §2.2 says real
    /// servers ignore them silently; default false).
    pub strict_fields: bool,
}

/// Options of Save-like operations (protocol §2.2).
#[derive(Debug, Clone, Default)]
pub struct SaveOpts {
    pub need_update_fields: Vec<String>,
    pub need_return_fields: Vec<String>,
    pub is_delete_entry: bool,
    pub verify_base_data: bool,
}

impl SaveOpts {
    pub fn from_data(data: &Map<String, Value>) -> SaveOpts {
        let list = |key: &str| -> Vec<String> {
            match get_ci(data, key) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => s
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                _ => Vec::new(),
            }
        };
        SaveOpts {
            need_update_fields: list("NeedUpDateFields"),
            need_return_fields: list("NeedReturnFields"),
            is_delete_entry: get_ci(data, "IsDeleteEntry").is_none_or(truthy),
            verify_base_data: get_ci(data, "IsVerifyBaseDataField").is_some_and(truthy),
        }
    }
}

/// Case-insensitive key lookup (Kingdee binds parameter and field names without case).
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1"),
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Object(o)) => ref_number(o).is_none_or(|n| n.is_empty()),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// The number inside a reference object: `FNumber`, `FSTAFFNUMBER`, `FUserAccount`, `Number`.
pub fn ref_number(o: &Map<String, Value>) -> Option<String> {
    ["FNumber", "FSTAFFNUMBER", "FUserAccount", "Number"]
        .iter()
        .find_map(|k| get_ci(o, k))
        .and_then(scalar_string)
}

pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_decimal(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => Some(0.0),
        Value::String(s) => s.trim().parse().ok(),
        Value::Null => Some(0.0),
        _ => None,
    }
}

fn valid_date(s: &str) -> bool {
    let s = s.trim();
    let date = s.get(..10).unwrap_or("");
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && (s.len() == 10 || matches!(s.as_bytes().get(10), Some(b' ' | b'T')))
}

fn cents(v: Option<&Value>) -> i64 {
    v.and_then(parse_decimal)
        .map_or(0, |f| (f * 100.0).round() as i64)
}

fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Ids given as `"1,2"` (a comma-separated string, protocol §2.1), an array or a number.
pub fn parse_ids(v: Option<&Value>) -> Vec<i64> {
    match v {
        Some(Value::String(s)) => s.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| scalar_string(x).and_then(|s| s.trim().parse().ok()))
            .collect(),
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    }
}

pub fn parse_numbers(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(scalar_string).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn status_caption(s: DocStatus) -> &'static str {
    match s {
        'Z' => "暂存",
        'A' => "创建",
        'B' => "审核中",
        'C' => "已审核",
        'D' => "重新审核",
        _ => "未知",
    }
}

/// The status-changing operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOp {
    Submit,
    Audit,
    UnAudit,
    Delete,
    Forbid,
    Enable,
    /// 撤销 (CancelAssign): B → D.
    CancelAssign,
}

impl StatusOp {
    fn caption(self) -> &'static str {
        match self {
            StatusOp::Submit => "提交",
            StatusOp::Audit => "审核",
            StatusOp::UnAudit => "反审核",
            StatusOp::Delete => "删除",
            StatusOp::Forbid => "禁用",
            StatusOp::Enable => "反禁用",
            StatusOp::CancelAssign => "撤销",
        }
    }
}

/// A Save model split into its parts.
#[derive(Default)]
struct ParsedModel {
    errors: Vec<KdError>,
    header: Vec<(String, Value)>,
    entries: Vec<(&'static EntryDef, Vec<Value>)>,
    pk: Option<i64>,
}

/// A record reference to resolve: by id or by number, with its position in the request.
enum Target {
    Id(i64),
    Number(String),
}

impl Db {
    pub fn new(seed: &Seed, seed_org: bool, now: &str) -> Db {
        let mut db = Db {
            forms: forms::FORMS
                .iter()
                .map(|f| (f.id, FormData::default()))
                .collect(),
            next_id: 100_001,
            next_entry_id: 100_001,
            strict_fields: false,
        };
        db.load_seed(seed, seed_org, now);
        db
    }

    fn seed_insert(&mut self, form_id: &str, model: Value, now: &str) {
        let Some(form) = forms::form(form_id) else {
            return;
        };
        let Value::Object(model) = model else {
            return;
        };
        let opts = SaveOpts {
            is_delete_entry: true,
            ..SaveOpts::default()
        };
        if let Ok((id, _)) = self.save_one(form, &model, &opts, false, now) {
            let status = if form.has_status() { 'C' } else { 'A' };
            if let Some(r) = self
                .forms
                .get_mut(form.id)
                .and_then(|d| d.records.get_mut(&id))
            {
                r.status = status;
            }
        } else {
            tracing::warn!(form = form_id, "seed record rejected");
        }
    }

    fn load_seed(&mut self, seed: &Seed, seed_org: bool, now: &str) {
        let org = seed.company.org_number.clone();
        let orgref = json!({ "FNumber": org });
        self.seed_insert(
            "ORG_Organizations",
            json!({"FNumber": org, "FName": seed.company.name}),
            now,
        );
        for (n, name) in [
            ("PRE001", "人民币"),
            ("PRE002", "香港元"),
            ("PRE003", "欧元"),
            ("PRE007", "美元"),
        ] {
            self.seed_insert("BD_Currency", json!({"FNumber": n, "FName": name}), now);
        }
        for (n, name) in [
            ("FYXM01", "差旅费"),
            ("FYXM02", "交通费"),
            ("FYXM03", "业务招待费"),
            ("FYXM04", "办公费"),
            ("FYXM05", "通讯费"),
            ("FYXM06", "住宿费"),
            ("FYXM07", "餐费"),
            ("FYXM08", "培训费"),
        ] {
            self.seed_insert("BD_Expense", json!({"FNumber": n, "FName": name}), now);
        }
        for (n, name) in [
            ("1001", "库存现金"),
            ("1002", "银行存款"),
            ("1122", "应收账款"),
            ("1221", "其他应收款"),
            ("2202", "应付账款"),
            ("2211", "应付职工薪酬"),
            ("2221", "应交税费"),
            ("2241", "其他应付款"),
            ("6001", "主营业务收入"),
            ("6601", "销售费用"),
            ("6602", "管理费用"),
        ] {
            self.seed_insert("BD_Account", json!({"FNumber": n, "FName": name}), now);
        }
        for (n, name) in [("CK001", "总仓"), ("CK002", "杭州仓")] {
            self.seed_insert(
                "BD_STOCK",
                json!({"FNumber": n, "FName": name, "FCreateOrgId": orgref, "FUseOrgId": orgref}),
                now,
            );
        }
        let mut units: Vec<&str> = seed.materials.iter().map(|m| m.unit.as_str()).collect();
        units.sort_unstable();
        units.dedup();
        for u in units {
            self.seed_insert("BD_UNIT", json!({"FNumber": u, "FName": u}), now);
        }
        for (i, m) in seed.materials.iter().enumerate() {
            self.seed_insert(
                "BD_MATERIAL",
                json!({
                    "FCreateOrgId": orgref, "FUseOrgId": orgref,
                    "FNumber": m.number, "FName": m.name, "FSpecification": m.spec,
                    "FBaseUnitId": {"FNumber": m.unit}, "FSafeStock": 10,
                }),
                now,
            );
            self.seed_insert(
                "STK_Inventory",
                json!({
                    "FMaterialId": {"FNumber": m.number}, "FStockId": {"FNumber": "CK001"},
                    "FStockOrgId": orgref, "FLot": "", "FQty": 20 + 5 * i as i64,
                    "FBaseQty": 20 + 5 * i as i64, "FAVBQty": 20 + 5 * i as i64,
                    "FBaseUnitId": {"FNumber": m.unit},
                }),
                now,
            );
        }
        // Users that can log in: the administrator always exists.
        self.seed_insert(
            "SEC_User",
            json!({"FUserAccount": "Administrator", "FName": "系统管理员"}),
            now,
        );
        if !seed_org {
            return;
        }
        // Parents before children, whatever the order in the seed file.
        let depths = seed.depths().unwrap_or_default();
        let mut departments: Vec<&crate::seed::Department> = seed.departments.iter().collect();
        departments.sort_by_key(|d| depths.get(&d.id).copied().unwrap_or(usize::MAX));
        for d in departments {
            if d.parent_id.is_none() {
                continue;
            }
            let parent = d
                .parent_id
                .filter(|p| depths.get(p).is_some_and(|depth| *depth > 1));
            let mut model = json!({
                "FCreateOrgId": orgref, "FUseOrgId": orgref,
                "FNumber": dept_number(d.id), "FName": d.name,
            });
            if let (Some(p), Value::Object(m)) = (parent, &mut model) {
                m.insert("FParentID".into(), json!({"FNumber": dept_number(p)}));
            }
            self.seed_insert("BD_Department", model, now);
        }
        for u in &seed.users {
            let mut model = json!({
                "FCreateOrgId": orgref, "FUseOrgId": orgref,
                "FName": u.name, "FStaffNumber": u.job_number, "FNumber": u.job_number,
                "FMobile": u.mobile, "FEmail": u.email.clone().unwrap_or_default(),
                "FPostName": u.title, "FJoinDate": u.hired_date,
            });
            if let (Some(d), Value::Object(m)) = (u.dept_ids.first(), &mut model)
                && *d != crate::seed::ROOT_DEPT_ID
            {
                m.insert("FDeptId".into(), json!({"FNumber": dept_number(*d)}));
            }
            self.seed_insert("BD_Empinfo", model, now);
            if !u.active {
                if let Some(id) = self.id_by_number("BD_Empinfo", &u.job_number)
                    && let Some(r) = self.record_mut("BD_Empinfo", id)
                {
                    r.forbid = 'B';
                }
                continue;
            }
            self.seed_insert(
                "SEC_User",
                json!({"FUserAccount": u.job_number, "FName": u.name, "FPhone": u.mobile,
                       "FEmail": u.email.clone().unwrap_or_default()}),
                now,
            );
        }
    }

    pub fn data(&self, form: &str) -> Option<&FormData> {
        self.forms.get(form)
    }

    pub fn id_by_number(&self, form: &str, number: &str) -> Option<i64> {
        self.forms.get(form)?.by_number.get(number).copied()
    }

    pub fn record(&self, form: &str, id: i64) -> Option<&Record> {
        self.forms.get(form)?.records.get(&id)
    }

    pub fn record_mut(&mut self, form: &str, id: i64) -> Option<&mut Record> {
        self.forms.get_mut(form)?.records.get_mut(&id)
    }

    pub fn record_by_number(&self, form: &str, number: &str) -> Option<&Record> {
        let id = self.id_by_number(form, number)?;
        self.record(form, id)
    }

    /// The display name of a record (its `FName`, else its number).
    pub fn display_name(&self, form: &FormDef, r: &Record) -> String {
        form.name_field
            .and_then(|k| r.fields.get(k))
            .and_then(scalar_string)
            .unwrap_or_else(|| r.number.clone())
    }

    fn check_value(
        &self,
        def: &FieldDef,
        value: &Value,
        opts: &SaveOpts,
        row: Option<usize>,
        errors: &mut Vec<KdError>,
    ) -> Option<Value> {
        let at = |m: String| match row {
            Some(r) => format!("第{}行{m}", r + 1),
            None => m,
        };
        match def.ty {
            FieldType::Text => Some(match value {
                Value::Null => Value::String(String::new()),
                Value::String(_) => value.clone(),
                other => Value::String(scalar_string(other).unwrap_or_else(|| other.to_string())),
            }),
            FieldType::Decimal | FieldType::Integer => match parse_decimal(value) {
                Some(f) => Some(number_value(if def.ty == FieldType::Integer {
                    f.trunc()
                } else {
                    f
                })),
                None => {
                    errors.push(
                        KdError::new(
                            msg::VALIDATION,
                            at(format!(
                                "字段“{}”的值“{}”不是有效的数值。",
                                def.caption, value
                            )),
                        )
                        .field(def.key),
                    );
                    None
                }
            },
            FieldType::Date => match value {
                Value::Null => Some(Value::Null),
                Value::String(s) if s.trim().is_empty() => Some(Value::Null),
                Value::String(s) if valid_date(s) => {
                    let s = s.trim();
                    let full = if s.len() == 10 {
                        format!("{s}T00:00:00")
                    } else {
                        s.replacen(' ', "T", 1)
                    };
                    Some(Value::String(full))
                }
                _ => {
                    errors.push(
                        KdError::new(
                            msg::VALIDATION,
                            at(format!(
                                "字段“{}”的值{}不是有效的日期。",
                                def.caption, value
                            )),
                        )
                        .field(def.key),
                    );
                    None
                }
            },
            FieldType::Bool => Some(Value::Bool(truthy(value))),
            FieldType::Any => Some(value.clone()),
            FieldType::Ref(target) => {
                let number = match value {
                    Value::Object(o) => ref_number(o),
                    Value::Null => None,
                    other => scalar_string(other),
                };
                let Some(number) = number.filter(|n| !n.is_empty()) else {
                    return Some(Value::Null);
                };
                if self.id_by_number(target, &number).is_some() {
                    Some(json!({ "FNumber": number }))
                } else {
                    let target_caption = forms::form(target).map_or(target, |f| f.caption);
                    let code = if opts.verify_base_data {
                        msg::NOT_FOUND
                    } else {
                        msg::VALIDATION
                    };
                    errors.push(
                        KdError::new(
                            code,
                            at(format!(
                                "字段“{}”({})的值“{}”在{}中不存在，请检查基础资料是否已录入并审核。",
                                def.caption, def.key, number, target_caption
                            )),
                        )
                        .field(def.key),
                    );
                    None
                }
            }
        }
    }

    fn unknown_field(&self, key: &str, errors: &mut Vec<KdError>) {
        if self.strict_fields {
            errors.push(
                KdError::new(msg::NOT_FOUND, format!("元数据中标识为{key}的字段不存在")).field(key),
            );
        }
    }

    /// Parses the header of a Save model into canonical `(key, value)` pairs, in order.
    fn parse_header(
        &self,
        form: &FormDef,
        model: &Map<String, Value>,
        opts: &SaveOpts,
        parsed: &mut ParsedModel,
    ) {
        let ParsedModel {
            errors,
            header: out,
            entries,
            pk,
        } = parsed;
        for (key, value) in model {
            if form.is_pk(key) {
                *pk = scalar_string(value)
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .filter(|id| *id > 0);
            } else if let Some(def) = form.field(key) {
                if let Some(v) = self.check_value(def, value, opts, None, errors) {
                    out.push((def.key.to_owned(), v));
                }
            } else if let Some(entry) = form.entry(key) {
                match value {
                    Value::Array(rows) => entries.push((entry, rows.clone())),
                    Value::Object(_) => entries.push((entry, vec![value.clone()])),
                    _ => {}
                }
            } else if key.starts_with("F_") {
                out.push((key.clone(), value.clone()));
            } else if let Value::Object(sub) = value
                && ref_number(sub).is_none()
            {
                // A sub-header entity (`"SubHeadEntity":{…}`, §2.2): its fields belong to the
                // header.
                let mut inner = ParsedModel::default();
                self.parse_header(form, sub, opts, &mut inner);
                errors.extend(inner.errors);
                out.extend(inner.header);
                entries.extend(inner.entries);
                if inner.pk.is_some() {
                    *pk = inner.pk;
                }
            } else {
                self.unknown_field(key, errors);
            }
        }
    }

    fn parse_entry_row(
        &mut self,
        entry: &EntryDef,
        row: &Value,
        index: usize,
        opts: &SaveOpts,
        errors: &mut Vec<KdError>,
    ) -> (Option<i64>, Map<String, Value>) {
        let mut out = Map::new();
        let mut entry_id = None;
        let Value::Object(row) = row else {
            return (None, out);
        };
        for (key, value) in row {
            if key.eq_ignore_ascii_case("FEntryID") || key.eq_ignore_ascii_case("FEntryId") {
                entry_id = scalar_string(value)
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .filter(|id| *id > 0);
            } else if let Some(def) = entry
                .fields
                .iter()
                .find(|f| f.key.eq_ignore_ascii_case(key))
            {
                if let Some(v) = self.check_value(def, value, opts, Some(index), errors) {
                    out.insert(def.key.to_owned(), v);
                }
            } else if key.starts_with("F_") {
                out.insert(key.clone(), value.clone());
            } else {
                self.unknown_field(key, errors);
            }
        }
        (entry_id, out)
    }

    /// Save / Draft of one model. Returns `(id, number)` or the errors (DIndex 0).
    pub fn save_one(
        &mut self,
        form: &'static FormDef,
        model: &Map<String, Value>,
        opts: &SaveOpts,
        draft: bool,
        now: &str,
    ) -> Result<(i64, String), Vec<KdError>> {
        let mut parsed = ParsedModel::default();
        self.parse_header(form, model, opts, &mut parsed);
        let ParsedModel {
            mut errors,
            header,
            entries,
            pk,
        } = parsed;

        let existing = match pk {
            Some(id) => match self.record(form.id, id) {
                Some(r) => Some(r.clone()),
                None => {
                    return Err(vec![KdError::new(
                        msg::NO_DATA,
                        format!("内码为{id}的{}不存在或已被删除。", form.caption),
                    )]);
                }
            },
            None => None,
        };
        if let Some(r) = &existing {
            let allowed = if draft {
                r.status == 'Z'
            } else {
                matches!(r.status, 'Z' | 'A' | 'D')
            };
            if !allowed {
                return Err(vec![KdError::new(
                    msg::VALIDATION,
                    format!(
                        "{}“{}”当前状态为“{}”，不允许修改。",
                        form.caption,
                        r.number,
                        status_caption(r.status)
                    ),
                )]);
            }
        }
        let limited = existing.is_some() && !opts.need_update_fields.is_empty();
        let wanted = |key: &str| {
            !limited
                || opts
                    .need_update_fields
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key))
        };

        let mut fields = existing
            .as_ref()
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        for (k, v) in header {
            if wanted(&k) {
                fields.insert(k, v);
            }
        }
        for (entry, rows) in entries {
            if !wanted(entry.key) {
                continue;
            }
            let old: Vec<Map<String, Value>> = match fields.get(entry.key) {
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_object().cloned()).collect(),
                _ => Vec::new(),
            };
            let mut new_rows: Vec<Map<String, Value>> = if opts.is_delete_entry {
                Vec::new()
            } else {
                old.clone()
            };
            for (i, row) in rows.iter().enumerate() {
                let (entry_id, values) = self.parse_entry_row(entry, row, i, opts, &mut errors);
                let found = entry_id.and_then(|eid| {
                    old.iter()
                        .find(|r| r.get("FEntryID").and_then(Value::as_i64) == Some(eid))
                        .cloned()
                });
                match found {
                    Some(mut r) => {
                        r.extend(values);
                        let eid = r.get("FEntryID").and_then(Value::as_i64);
                        new_rows.retain(|x| x.get("FEntryID").and_then(Value::as_i64) != eid);
                        new_rows.push(r);
                    }
                    None => {
                        let mut r = Map::new();
                        r.insert("FEntryID".into(), Value::from(self.next_entry_id));
                        self.next_entry_id += 1;
                        r.extend(values);
                        new_rows.push(r);
                    }
                }
            }
            fields.insert(
                entry.key.to_owned(),
                Value::Array(new_rows.into_iter().map(Value::Object).collect()),
            );
        }

        // Derived totals.
        if form.id == "ER_ExpReimbursement" {
            let total: i64 = entry_rows(&fields, "FEntity")
                .iter()
                .map(|r| cents(r.get("FExpenseAmount")))
                .sum();
            fields.insert("FExpAmountSum".into(), number_value(total as f64 / 100.0));
        }

        // Number.
        let mut auto_number = false;
        let number = match fields.get(form.number_field).and_then(scalar_string) {
            Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
            _ if form.kind == FormKind::Bill => {
                auto_number = true;
                let next = self.forms.get(form.id).map_or(1, |d| d.next_bill + 1);
                format!("{}{:06}", form.bill_prefix, next)
            }
            _ if form.kind == FormKind::QueryOnly => String::new(),
            _ => {
                if !draft {
                    let caption = form.field(form.number_field).map_or("编码", |f| f.caption);
                    errors.push(
                        KdError::new(msg::VALIDATION, format!("“{caption}”是必填项。"))
                            .field(form.number_field),
                    );
                }
                String::new()
            }
        };
        if !number.is_empty()
            && let Some(other) = self.id_by_number(form.id, &number)
            && Some(other) != existing.as_ref().map(|r| r.id)
        {
            errors.push(
                KdError::new(
                    msg::VALIDATION,
                    format!(
                        "编码唯一性校验不通过：编码为“{number}”的{}已经存在，不允许重复。",
                        form.caption
                    ),
                )
                .field(form.number_field),
            );
        }

        if !draft {
            for def in form.fields.iter().filter(|d| d.required) {
                if def.key == form.number_field {
                    continue;
                }
                if is_empty_value(fields.get(def.key))
                    && !errors.iter().any(|e| e.field.as_deref() == Some(def.key))
                {
                    errors.push(
                        KdError::new(msg::VALIDATION, format!("“{}”是必填项。", def.caption))
                            .field(def.key),
                    );
                }
            }
            for entry in form.entries {
                let rows = entry_rows(&fields, entry.key);
                if entry.required && rows.is_empty() {
                    errors.push(
                        KdError::new(
                            msg::VALIDATION,
                            format!("“{}”至少需要录入一行分录。", entry.caption),
                        )
                        .field(entry.key),
                    );
                }
                for (i, row) in rows.iter().enumerate() {
                    for def in entry.fields.iter().filter(|d| d.required) {
                        if is_empty_value(row.get(def.key))
                            && !errors.iter().any(|e| e.field.as_deref() == Some(def.key))
                        {
                            errors.push(
                                KdError::new(
                                    msg::VALIDATION,
                                    format!("第{}行“{}”是必填项。", i + 1, def.caption),
                                )
                                .field(def.key),
                            );
                        }
                    }
                }
            }
            if form.balanced && errors.is_empty() {
                let rows = entry_rows(&fields, "FEntity");
                let debit: i64 = rows.iter().map(|r| cents(r.get("FDebit"))).sum();
                let credit: i64 = rows.iter().map(|r| cents(r.get("FCredit"))).sum();
                if debit != credit || debit == 0 {
                    errors.push(
                        KdError::new(
                            msg::VALIDATION,
                            format!(
                                "凭证借贷不平衡：借方合计{:.2}，贷方合计{:.2}。",
                                debit as f64 / 100.0,
                                credit as f64 / 100.0
                            ),
                        )
                        .field("FEntity"),
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        if !number.is_empty() && form.kind != FormKind::QueryOnly {
            fields.insert(form.number_field.to_owned(), Value::String(number.clone()));
        }
        let status = if draft { 'Z' } else { 'A' };
        let id = match &existing {
            Some(r) => r.id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                id
            }
        };
        let data = self.forms.entry(form.id).or_default();
        if auto_number {
            data.next_bill += 1;
        }
        if let Some(old) = &existing {
            data.by_number.remove(&old.number);
        }
        if !number.is_empty() {
            data.by_number.insert(number.clone(), id);
        }
        let created = existing
            .as_ref()
            .map_or_else(|| now.to_owned(), |r| r.created.clone());
        let new_status = match &existing {
            Some(r) if r.status == 'D' && !draft => 'D',
            _ => status,
        };
        data.records.insert(
            id,
            Record {
                id,
                number: number.clone(),
                status: new_status,
                forbid: existing.as_ref().map_or('A', |r| r.forbid),
                fields,
                created,
                modified: now.to_owned(),
            },
        );
        Ok((id, number))
    }

    /// Save (one model) or Draft: the envelope's `Result` extras and the outcome.
    pub fn save(
        &mut self,
        form: &'static FormDef,
        data: &Map<String, Value>,
        draft: bool,
        now: &str,
    ) -> (Outcome, Map<String, Value>) {
        let opts = SaveOpts::from_data(data);
        let Some(Value::Object(model)) = get_ci(data, "Model") else {
            return (
                Outcome::fail(KdError::new(
                    msg::PARAMETER,
                    "参数Model不能为空，且必须是对象。",
                )),
                Map::new(),
            );
        };
        let mut extra = Map::new();
        match self.save_one(form, model, &opts, draft, now) {
            Ok((id, number)) => {
                extra.insert("Id".into(), Value::from(id));
                extra.insert("Number".into(), Value::String(number.clone()));
                extra.insert(
                    "NeedReturnData".into(),
                    json!([self.return_data(form, id, &opts.need_return_fields)]),
                );
                (
                    Outcome {
                        errors: Vec::new(),
                        success: vec![SuccessEntity {
                            id,
                            number,
                            dindex: 0,
                        }],
                    },
                    extra,
                )
            }
            Err(errors) => {
                extra.insert("Id".into(), Value::String(String::new()));
                extra.insert("Number".into(), Value::String(String::new()));
                extra.insert("NeedReturnData".into(), json!([]));
                (
                    Outcome {
                        errors,
                        success: Vec::new(),
                    },
                    extra,
                )
            }
        }
    }

    /// BatchSave: every row on its own; failed rows reported by `DIndex` (the index inside its
    /// batch when `BatchCount` is set, protocol §2.1).
    pub fn batch_save(
        &mut self,
        form: &'static FormDef,
        data: &Map<String, Value>,
        now: &str,
    ) -> (Outcome, Map<String, Value>) {
        let opts = SaveOpts::from_data(data);
        let rows: Vec<Map<String, Value>> = match get_ci(data, "Model") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_object().cloned()).collect(),
            Some(Value::Object(o)) => vec![o.clone()],
            _ => {
                return (
                    Outcome::fail(KdError::new(msg::PARAMETER, "参数Model不能为空。")),
                    Map::new(),
                );
            }
        };
        let batch_count = get_ci(data, "BatchCount")
            .and_then(scalar_string)
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let batch_size = batch_count.map_or(rows.len().max(1), |n| rows.len().div_ceil(n).max(1));
        let mut outcome = Outcome::default();
        let mut returned = Vec::new();
        for (i, model) in rows.iter().enumerate() {
            let dindex = i % batch_size;
            match self.save_one(form, model, &opts, false, now) {
                Ok((id, number)) => {
                    returned.push(self.return_data(form, id, &opts.need_return_fields));
                    outcome.success.push(SuccessEntity { id, number, dindex });
                }
                Err(errors) => outcome
                    .errors
                    .extend(errors.into_iter().map(|e| e.at(dindex))),
            }
        }
        let mut extra = Map::new();
        extra.insert("NeedReturnData".into(), Value::Array(returned));
        (outcome, extra)
    }

    fn return_data(&self, form: &FormDef, id: i64, keys: &[String]) -> Value {
        let mut out = Map::new();
        if let Some(r) = self.record(form.id, id) {
            for k in keys {
                let v = if form.is_pk(k) {
                    Value::from(id)
                } else {
                    get_ci(&r.fields, k).cloned().unwrap_or(Value::Null)
                };
                out.insert(k.clone(), v);
            }
        }
        Value::Object(out)
    }

    fn targets(data: &Map<String, Value>) -> Vec<Target> {
        let mut t: Vec<Target> = parse_numbers(get_ci(data, "Numbers"))
            .into_iter()
            .map(Target::Number)
            .collect();
        t.extend(parse_ids(get_ci(data, "Ids")).into_iter().map(Target::Id));
        t
    }

    fn is_referenced(&self, form: &FormDef, number: &str) -> Option<&'static str> {
        for other in forms::FORMS {
            let Some(data) = self.forms.get(other.id) else {
                continue;
            };
            let ref_keys: Vec<&str> = other
                .fields
                .iter()
                .filter(|f| f.ty == FieldType::Ref(form.id))
                .map(|f| f.key)
                .collect();
            let entry_refs: Vec<(&str, &str)> = other
                .entries
                .iter()
                .flat_map(|e| {
                    e.fields
                        .iter()
                        .filter(|f| f.ty == FieldType::Ref(form.id))
                        .map(|f| (e.key, f.key))
                })
                .collect();
            if ref_keys.is_empty() && entry_refs.is_empty() {
                continue;
            }
            let hit = |v: Option<&Value>| {
                v.and_then(Value::as_object)
                    .and_then(ref_number)
                    .is_some_and(|n| n == number)
            };
            for r in data.records.values() {
                if ref_keys.iter().any(|k| hit(r.fields.get(*k)))
                    || entry_refs.iter().any(|(ek, fk)| {
                        entry_rows(&r.fields, ek)
                            .iter()
                            .any(|row| hit(row.get(*fk)))
                    })
                {
                    return Some(other.caption);
                }
            }
        }
        None
    }

    /// Submit / Audit / UnAudit / Delete / Forbid / Enable / CancelAssign with the real status
    /// transitions: Save→A, Submit (A|D)→B, Audit B→C, UnAudit C→D, Delete only in Z/A/D.
    pub fn status_op(
        &mut self,
        form: &'static FormDef,
        op: StatusOp,
        data: &Map<String, Value>,
        now: &str,
    ) -> Outcome {
        if form.kind == FormKind::QueryOnly {
            return Outcome::fail(KdError::new(
                msg::NOT_ALLOWED,
                format!("{}({})不支持{}操作。", form.caption, form.id, op.caption()),
            ));
        }
        if matches!(op, StatusOp::Forbid | StatusOp::Enable) && form.kind != FormKind::BaseData {
            return Outcome::fail(KdError::new(
                msg::NOT_ALLOWED,
                format!("{}({})不支持{}操作。", form.caption, form.id, op.caption()),
            ));
        }
        let targets = Self::targets(data);
        if targets.is_empty() {
            return Outcome::fail(KdError::new(
                msg::PARAMETER,
                "参数Numbers和Ids不能同时为空。",
            ));
        }
        let mut outcome = Outcome::default();
        for (dindex, t) in targets.into_iter().enumerate() {
            let found = match &t {
                Target::Id(id) => self.record(form.id, *id).cloned(),
                Target::Number(n) => self.record_by_number(form.id, n).cloned(),
            };
            let Some(r) = found else {
                let what = match t {
                    Target::Id(id) => format!("内码为{id}"),
                    Target::Number(n) => format!("编码为“{n}”"),
                };
                outcome.errors.push(
                    KdError::new(
                        msg::NO_DATA,
                        format!("{what}的{}不存在或已被删除。", form.caption),
                    )
                    .at(dindex),
                );
                continue;
            };
            let refuse = |m: String| KdError::new(msg::VALIDATION, m).at(dindex);
            let num = r.number.clone();
            let next = match op {
                StatusOp::Submit => match r.status {
                    'A' | 'D' => Ok(Some('B')),
                    'Z' => Err(refuse(format!("“{num}”：暂存的数据不允许提交，请先保存。"))),
                    s => Err(refuse(format!(
                        "“{num}”：数据状态为“{}”，只有创建或重新审核状态的数据才能提交。",
                        status_caption(s)
                    ))),
                },
                StatusOp::Audit => match r.status {
                    'B' => Ok(Some('C')),
                    s => Err(refuse(format!(
                        "“{num}”：数据状态为“{}”，只有审核中的数据才能审核。",
                        status_caption(s)
                    ))),
                },
                StatusOp::UnAudit => match r.status {
                    'C' => Ok(Some('D')),
                    s => Err(refuse(format!(
                        "“{num}”：数据状态为“{}”，只有已审核的数据才能反审核。",
                        status_caption(s)
                    ))),
                },
                StatusOp::CancelAssign => match r.status {
                    'B' => Ok(Some('D')),
                    s => Err(refuse(format!(
                        "“{num}”：数据状态为“{}”，只有审核中的数据才能撤销。",
                        status_caption(s)
                    ))),
                },
                StatusOp::Delete => match r.status {
                    'Z' | 'A' | 'D' => match self.is_referenced(form, &num) {
                        Some(by) if form.kind == FormKind::BaseData => Err(refuse(format!(
                            "{}“{num}”已被{by}引用，不允许删除。",
                            form.caption
                        ))),
                        _ => Ok(None),
                    },
                    // Protocol §2.3, observed message.
                    _ => Err(refuse("只能删除创建，暂存，重新审核状态的数据!".to_owned())),
                },
                StatusOp::Forbid => match (r.status, r.forbid) {
                    (_, 'B') => Err(refuse(format!("“{num}”已经是禁用状态。"))),
                    ('C', _) => Ok(Some('C')),
                    _ => Err(refuse(format!("“{num}”：只有已审核的数据才能禁用。"))),
                },
                StatusOp::Enable => match r.forbid {
                    'B' => Ok(Some(r.status)),
                    _ => Err(refuse(format!("“{num}”不是禁用状态，不需要反禁用。"))),
                },
            };
            match next {
                Err(e) => outcome.errors.push(e),
                Ok(next) => {
                    let data = self.forms.entry(form.id).or_default();
                    match next {
                        None => {
                            data.records.remove(&r.id);
                            data.by_number.remove(&r.number);
                        }
                        Some(s) => {
                            if let Some(rec) = data.records.get_mut(&r.id) {
                                rec.status = s;
                                rec.modified = now.to_owned();
                                match op {
                                    StatusOp::Forbid => rec.forbid = 'B',
                                    StatusOp::Enable => rec.forbid = 'A',
                                    _ => {}
                                }
                            }
                        }
                    }
                    outcome.success.push(SuccessEntity {
                        id: r.id,
                        number: num,
                        dindex,
                    });
                }
            }
        }
        outcome
    }

    /// View: `{"Number":…}` or `{"Id":…}`; object property names without the `F` prefix,
    /// fields in the order they were first saved (protocol §2.2).
    pub fn view(
        &self,
        form: &'static FormDef,
        data: &Map<String, Value>,
    ) -> Result<Value, KdError> {
        let by_id = get_ci(data, "Id")
            .and_then(scalar_string)
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|id| *id > 0);
        let by_number = get_ci(data, "Number")
            .and_then(scalar_string)
            .filter(|s| !s.is_empty());
        let record = match (by_id, &by_number) {
            (Some(id), _) => self.record(form.id, id),
            (None, Some(n)) => self.record_by_number(form.id, n),
            (None, None) => {
                return Err(KdError::new(msg::PARAMETER, "参数Number和Id不能同时为空。"));
            }
        };
        let Some(r) = record else {
            let what = match (by_id, by_number) {
                (Some(id), _) => format!("内码为{id}"),
                (None, n) => format!("编码为“{}”", n.unwrap_or_default()),
            };
            return Err(KdError::new(
                msg::NO_DATA,
                format!("{what}的{}不存在或已被删除。", form.caption),
            ));
        };
        Ok(self.view_record(form, r))
    }

    pub fn view_record(&self, form: &FormDef, r: &Record) -> Value {
        let mut out = Map::new();
        out.insert("Id".into(), Value::from(r.id));
        for (key, value) in &r.fields {
            if let Some(entry) = form.entry(key) {
                let rows: Vec<Value> = entry_rows(&r.fields, entry.key)
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        let mut o = Map::new();
                        for (k, v) in row {
                            if k == "FEntryID" {
                                o.insert("Id".into(), v.clone());
                                o.insert("Seq".into(), Value::from(i + 1));
                            } else {
                                let def = entry.fields.iter().find(|f| f.key == k);
                                o.insert(forms::view_name(k), self.view_value(def, v));
                            }
                        }
                        Value::Object(o)
                    })
                    .collect();
                out.insert(entry.view_name.to_owned(), Value::Array(rows));
            } else {
                out.insert(
                    forms::view_name(key),
                    self.view_value(form.field(key), value),
                );
            }
        }
        if form.has_status() {
            out.insert("DocumentStatus".into(), Value::String(r.status.to_string()));
        }
        if form.kind == FormKind::BaseData {
            out.insert("ForbidStatus".into(), Value::String(r.forbid.to_string()));
        }
        out.insert("CreateDate".into(), Value::String(r.created.clone()));
        out.insert("ModifyDate".into(), Value::String(r.modified.clone()));
        Value::Object(out)
    }

    fn view_value(&self, def: Option<&FieldDef>, v: &Value) -> Value {
        match def.map(|d| d.ty) {
            Some(FieldType::Ref(target)) => {
                let Some(number) = v.as_object().and_then(ref_number) else {
                    return Value::Null;
                };
                let Some(tform) = forms::form(target) else {
                    return Value::Null;
                };
                match self.record_by_number(target, &number) {
                    Some(r) => json!({
                        "Id": r.id,
                        "Number": r.number,
                        "Name": [{"Key": 2052, "Value": self.display_name(tform, r)}],
                    }),
                    None => Value::Null,
                }
            }
            _ => v.clone(),
        }
    }

    /// Push (下推), minimal: audited `ER_ExpenseRequest` → new `ER_ExpReimbursement` (A).
    pub fn push(
        &mut self,
        form: &'static FormDef,
        data: &Map<String, Value>,
        now: &str,
    ) -> Outcome {
        let target_id = get_ci(data, "TargetFormId")
            .and_then(scalar_string)
            .unwrap_or_else(|| "ER_ExpReimbursement".to_owned());
        let Some(target) = forms::form(&target_id)
            .filter(|t| form.id == "ER_ExpenseRequest" && t.id == "ER_ExpReimbursement")
        else {
            return Outcome::fail(KdError::new(
                msg::NOT_ALLOWED,
                format!("沙箱未配置从{}到{}的转换规则。", form.id, target_id),
            ));
        };
        let targets = Self::targets(data);
        if targets.is_empty() {
            return Outcome::fail(KdError::new(
                msg::PARAMETER,
                "参数Numbers和Ids不能同时为空。",
            ));
        }
        let mut outcome = Outcome::default();
        for (dindex, t) in targets.into_iter().enumerate() {
            let src = match &t {
                Target::Id(id) => self.record(form.id, *id).cloned(),
                Target::Number(n) => self.record_by_number(form.id, n).cloned(),
            };
            let Some(src) = src else {
                outcome.errors.push(
                    KdError::new(msg::NO_DATA, format!("源单{}不存在。", form.caption)).at(dindex),
                );
                continue;
            };
            if src.status != 'C' {
                outcome.errors.push(
                    KdError::new(
                        msg::VALIDATION,
                        format!("源单“{}”未审核，不允许下推。", src.number),
                    )
                    .at(dindex),
                );
                continue;
            }
            let g = |k: &str| src.fields.get(k).cloned().unwrap_or(Value::Null);
            let rows: Vec<Value> = entry_rows(&src.fields, "FEntity")
                .iter()
                .map(|r| {
                    json!({
                        "FExpID": r.get("FExpenseItemID").cloned().unwrap_or(Value::Null),
                        "FExpenseAmount": r.get("FOrgAmount").cloned().unwrap_or(Value::Null),
                        "FExpenseDeptEntryID": r.get("FEntryCostDeptID").cloned().unwrap_or(Value::Null),
                        "FRemark": r.get("FRemark").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect();
            let model = json!({
                "FBillTypeID": {"FNumber": "FYBXD001_SYS"},
                "FDate": now.get(..10).unwrap_or(now),
                "FOrgID": g("FOrgID"),
                "FProposerID": g("FStaffID"),
                "FRequestDeptID": g("FDeptID"),
                "FExpenseDeptID": g("FDeptID"),
                "FCurrencyID": g("FCurrencyID"),
                "FCausa": g("FReason"),
                "FEntity": rows,
            });
            let Value::Object(model) = model else {
                continue;
            };
            match self.save_one(
                target,
                &model,
                &SaveOpts::from_data(&Map::new()),
                false,
                now,
            ) {
                Ok((id, number)) => outcome.success.push(SuccessEntity { id, number, dindex }),
                Err(errs) => outcome
                    .errors
                    .extend(errs.into_iter().map(|e| e.at(dindex))),
            }
        }
        outcome
    }
}

/// Entry rows of a record as maps.
pub fn entry_rows(fields: &Map<String, Value>, key: &str) -> Vec<Map<String, Value>> {
    match fields.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_object().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// The `FNumber` the sandbox gives a seed department: `BM` + five digits of its id.
pub fn dept_number(id: u64) -> String {
    format!("BM{id:05}")
}
