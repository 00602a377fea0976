//! Plain JSON → DingTalk form values. An in-house system starts an approval with its form as
//! a JSON object (`{"报销事由": "…", "amount": 1200.5, "费用明细": [{…}]}`); [`convert`] checks
//! it against the template's form schema ([`FormTemplate`], built from
//! `DingTalkClient::approval_form_schema`) and turns it into the [`FormField`]s DingTalk
//! accepts, or lists every field that is wrong ([`FieldError`], in English and Chinese) so
//! the REST API can answer 422 once with all of them.
//!
//! A key names a control by its label (`报销事由`), its component id (`TextareaField_BXSY`)
//! or its bizAlias (`reason`); inside a detail table (`TableField`) the same holds for the
//! columns. Values by component:
//!
//! | component | JSON given | sent |
//! |---|---|---|
//! | `TextField`, `TextareaField` | string or number | the text |
//! | `NumberField`, `MoneyField` | number or numeric string (money: ≤ 2 decimals) | the number as written |
//! | `DDSelectField` | one of the options (its value, or its key) | the option's value |
//! | `DDMultiSelectField` | array of options | JSON array |
//! | `DDDateField` | `YYYY-MM-DD` or `YYYY-MM-DD HH:mm` | the text |
//! | `DDDateRangeField` | `[start, end]` or `{"start", "end"}`, start ≤ end | JSON array, named by its label (usually the JSON array of the two sub-labels) |
//! | `TableField` | array of row objects | rows of `{name, value}` |
//! | `DDAttachment` | array of `{fileId, fileName, fileSize, fileType, spaceId}` (or snake_case) | JSON array |
//! | anything else | scalar → text, array/object → JSON | as given |
//!
//! Absent, `null`, `""` and `[]` mean "no value": an error for a required control, omitted
//! otherwise. Errors name the caller's key; a table cell is `key[row].column`, rows counted
//! from 0.

use std::collections::HashMap;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use dingtalk::approvals::{Attachment, FieldValue, FormField, FormSchema, SchemaItem};
use serde::Serialize;
use serde_json::{Map, Value};

/// How many control names an "unknown key" error suggests.
const SUGGESTED_NAMES: usize = 8;
/// A value quoted in an error is cut to this many characters.
const QUOTE_MAX_CHARS: usize = 40;

/// A template's controls, by id, label and bizAlias, built from its form schema.
#[derive(Debug, Clone, Default)]
pub struct FormTemplate {
    controls: Controls,
}

impl FormTemplate {
    /// Reads the controls of `schema.schemaContent.items` (a table's columns from its
    /// `children`). Controls with neither a label nor an id cannot be addressed and are left
    /// out.
    pub fn from_schema(schema: &FormSchema) -> Self {
        FormTemplate {
            controls: Controls::build(&schema.schema_content.items),
        }
    }
}

/// One field of the caller's form that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The caller's key (for a table cell `key[row].column`); for a missing required control,
    /// its label.
    pub field: String,
    /// What is wrong and how to fix it, in English.
    pub reason: String,
    /// The same in Chinese.
    pub reason_zh: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Converts the caller's form `values` into DingTalk form fields in the template's order
/// (each named by its label, with its component id and type), or returns every error.
pub fn convert(
    template: &FormTemplate,
    values: &Map<String, Value>,
) -> Result<Vec<FormField>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let fields = convert_object(&template.controls, values, "", &mut errors);
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(errors)
    }
}

/// A set of controls (a form, or the columns of a table) and the names that find them.
#[derive(Debug, Clone, Default)]
struct Controls {
    list: Vec<Control>,
    by_name: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Control {
    id: Option<String>,
    /// The label as the schema gives it, and the name sent (for a date range usually the JSON
    /// array of its two sub-labels, `["开始时间","结束时间"]`).
    label: String,
    component: String,
    required: bool,
    options: Vec<SelectOption>,
    /// A table's columns.
    children: Controls,
}

#[derive(Debug, Clone)]
struct SelectOption {
    key: Option<String>,
    value: String,
}

impl Controls {
    fn build(items: &[SchemaItem]) -> Controls {
        let mut list = Vec::new();
        let mut aliases = Vec::new();
        for item in items {
            let id = item.id().filter(|s| !s.is_empty()).map(str::to_owned);
            let Some(label) = item
                .label()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .or_else(|| id.clone())
            else {
                continue;
            };
            aliases.push(
                item.props
                    .get("bizAlias")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            list.push(Control {
                id,
                label,
                component: item.component_name.clone(),
                required: item.required(),
                options: options(&item.props),
                children: Controls::build(&item.children),
            });
        }
        // Ids first, then labels, then aliases: a name that could mean two controls means
        // the more specific one.
        let mut by_name = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            if let Some(id) = &c.id {
                by_name.entry(id.clone()).or_insert(i);
            }
        }
        for (i, c) in list.iter().enumerate() {
            by_name.entry(c.label.clone()).or_insert(i);
            // A label that is a JSON array (a date range's sub-labels) also by its compact form,
            // so the caller's spacing does not matter (see `find`).
            if let Some(pair) = sub_labels(&c.label) {
                by_name.entry(compact(&pair)).or_insert(i);
            }
        }
        for (i, alias) in aliases.into_iter().enumerate() {
            if let Some(alias) = alias {
                by_name.entry(alias).or_insert(i);
            }
        }
        Controls { list, by_name }
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.by_name.get(key).copied().or_else(|| {
            // A date range's label written with other spacing: `["开始时间", "结束时间"]`.
            let pair = sub_labels(key.trim())?;
            self.by_name.get(&compact(&pair)).copied()
        })
    }

    /// A few names the caller may use, for an "unknown key" error.
    fn suggestions(&self) -> String {
        let mut names: Vec<String> = self
            .list
            .iter()
            .take(SUGGESTED_NAMES)
            .map(|c| format!("`{}`", c.label))
            .collect();
        if self.list.len() > SUGGESTED_NAMES {
            names.push("…".into());
        }
        names.join(", ")
    }
}

/// The two sub-labels of a date range label written as a JSON array.
fn sub_labels(label: &str) -> Option<[String; 2]> {
    let v: Vec<String> = serde_json::from_str(label).ok()?;
    <[String; 2]>::try_from(v).ok()
}

/// Two sub-labels as a compact JSON array.
fn compact(pair: &[String; 2]) -> String {
    Value::from(pair.to_vec()).to_string()
}

/// `props.options`: strings, `{key, value}` objects, or strings holding such an object.
fn options(props: &Value) -> Vec<SelectOption> {
    let Some(items) = props.get("options").and_then(Value::as_array) else {
        return Vec::new();
    };
    let from_object = |o: &Map<String, Value>| {
        let value = o
            .get("value")
            .or_else(|| o.get("text"))
            .and_then(scalar_text)?;
        Some(SelectOption {
            key: o.get("key").and_then(scalar_text),
            value,
        })
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Object(o) => from_object(o),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => from_object(&o),
                _ => Some(SelectOption {
                    key: None,
                    value: s.clone(),
                }),
            },
            other => scalar_text(other).map(|value| SelectOption { key: None, value }),
        })
        .collect()
}

/// A string or a number as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// A JSON number as written by a person: integers as such, fractions in their shortest exact
/// decimal form without exponent (`1200.5`, not `1200.50000001` or `1.2005e3`).
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
    }
}

fn error(field: &str, reason: String, reason_zh: String) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason,
        reason_zh,
    }
}

/// What is wrong with one value (the path is added by the caller).
struct Fault {
    en: String,
    zh: String,
}

fn fault(en: impl Into<String>, zh: impl Into<String>) -> Fault {
    Fault {
        en: en.into(),
        zh: zh.into(),
    }
}

/// Converts one object (the form, or a table row) against its controls; `prefix` is put
/// before every key in errors (`""`, or `费用明细[0].`).
fn convert_object(
    controls: &Controls,
    values: &Map<String, Value>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<FormField> {
    let mut given: Vec<Option<(&str, &Value)>> = vec![None; controls.list.len()];
    for (key, value) in values {
        let path = format!("{prefix}{key}");
        match controls.find(key) {
            None => errors.push(error(
                &path,
                format!(
                    "no control of this form is called `{key}`; name a control by its label, \
                     component id or bizAlias, e.g. {}",
                    controls.suggestions()
                ),
                format!(
                    "表单中没有名为「{key}」的控件；请用控件名称、组件 ID 或 bizAlias，例如 {}",
                    controls.suggestions()
                ),
            )),
            Some(i) => match given[i] {
                Some((first, _)) => errors.push(error(
                    &path,
                    format!(
                        "names the same control as `{first}` ({}); give it once",
                        controls.list[i].label
                    ),
                    format!(
                        "与「{first}」是同一个控件（{}），只能填写一次",
                        controls.list[i].label
                    ),
                )),
                None => given[i] = Some((key.as_str(), value)),
            },
        }
    }

    let mut fields = Vec::new();
    for (control, given) in controls.list.iter().zip(given) {
        let value = given.map(|(_, v)| v).filter(|v| !is_blank(v));
        let Some(value) = value else {
            if control.required {
                let key = given.map_or(control.label.as_str(), |(k, _)| k);
                errors.push(required(&format!("{prefix}{key}"), control));
            }
            continue;
        };
        let path = format!("{prefix}{}", given.map_or("", |(k, _)| k));
        if let Some(value) = convert_value(control, value, &path, errors) {
            fields.push(FormField {
                name: control.label.clone(),
                value,
                ext_value: None,
                id: control.id.clone(),
                biz_alias: None,
                component_type: Some(control.component.clone()),
            });
        }
    }
    fields
}

/// Absent, `null`, blank text and empty arrays are "no value".
fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn required(path: &str, control: &Control) -> FieldError {
    match control.component.as_str() {
        "TableField" => error(
            path,
            "is required: give at least one row".into(),
            "必填：至少填写一行明细".into(),
        ),
        "DDMultiSelectField" | "DDAttachment" => error(
            path,
            "is required: give at least one item".into(),
            "必填：至少填写一项".into(),
        ),
        _ => error(
            path,
            "is required: give a value".into(),
            "必填：请填写".into(),
        ),
    }
}

fn convert_value(
    control: &Control,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<FieldValue> {
    let result = match control.component.as_str() {
        "TextField" | "TextareaField" => text(value).map(FieldValue::Text),
        "NumberField" => number(value, None).map(FieldValue::Text),
        "MoneyField" => number(value, Some(2)).map(FieldValue::Text),
        "DDSelectField" => select(control, value).map(FieldValue::Text),
        "DDMultiSelectField" => multi_select(control, value).map(FieldValue::MultiSelect),
        "DDDateField" => date(value).map(FieldValue::Text),
        "DDDateRangeField" => date_range(value).map(FieldValue::DateRange),
        "TableField" => return table(control, value, path, errors),
        "DDAttachment" => return attachments(value, path, errors),
        _ => Ok(match value {
            Value::Bool(b) => FieldValue::Text(b.to_string()),
            other => {
                scalar_text(other).map_or_else(|| FieldValue::Json(other.clone()), FieldValue::Text)
            }
        }),
    };
    match result {
        Ok(v) => Some(v),
        Err(f) => {
            errors.push(error(path, f.en, f.zh));
            None
        }
    }
}

/// The kind of a JSON value, for "expected …, got …" (English, Chinese).
fn kind(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", "null"),
        Value::Bool(_) => ("true/false", "布尔值"),
        Value::Number(_) => ("a number", "数字"),
        Value::String(_) => ("text", "文本"),
        Value::Array(_) => ("an array", "数组"),
        Value::Object(_) => ("an object", "对象"),
    }
}

/// A value quoted in an error, cut short.
fn quote(v: &Value) -> String {
    let s = scalar_text(v).unwrap_or_else(|| v.to_string());
    if s.chars().count() > QUOTE_MAX_CHARS {
        let cut: String = s.chars().take(QUOTE_MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        s
    }
}

fn text(v: &Value) -> Result<String, Fault> {
    scalar_text(v).ok_or_else(|| {
        let (en, zh) = kind(v);
        fault(
            format!("expected text (a string or a number), got {en}"),
            format!("应为文本（字符串或数字），实际是{zh}"),
        )
    })
}

/// A number or numeric string, written as given; `max_decimals` for money.
fn number(v: &Value, max_decimals: Option<usize>) -> Result<String, Fault> {
    let text = match v {
        Value::Number(n) => number_text(n),
        Value::String(s) if is_decimal(s.trim()) => s.trim().to_owned(),
        other => {
            return Err(fault(
                format!(
                    "expected a number, e.g. 1200.5 or \"1200.50\", got `{}`",
                    quote(other)
                ),
                format!(
                    "应为数字，如 1200.5 或 \"1200.50\"，实际是「{}」",
                    quote(other)
                ),
            ));
        }
    };
    let decimals = text.split_once('.').map_or(0, |(_, frac)| frac.len());
    match max_decimals {
        Some(max) if decimals > max => Err(fault(
            format!("`{text}` has {decimals} decimals; an amount has at most {max}: round it"),
            format!("「{text}」有 {decimals} 位小数，金额最多 {max} 位，请四舍五入"),
        )),
        _ => Ok(text),
    }
}

/// `-?digits(.digits)?`.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// One option of `control`: its value as given, or its key (sent as its value).
fn option_of(control: &Control, v: &Value) -> Option<String> {
    let given = scalar_text(v)?;
    let given = given.trim();
    if control.options.is_empty() {
        return Some(given.to_owned());
    }
    control
        .options
        .iter()
        .find(|o| o.value == given)
        .or_else(|| {
            control
                .options
                .iter()
                .find(|o| o.key.as_deref() == Some(given))
        })
        .map(|o| o.value.clone())
}

fn allowed(control: &Control) -> String {
    control
        .options
        .iter()
        .map(|o| format!("`{}`", o.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn select(control: &Control, v: &Value) -> Result<String, Fault> {
    option_of(control, v).ok_or_else(|| {
        fault(
            format!(
                "`{}` is not an option; use one of {}",
                quote(v),
                allowed(control)
            ),
            format!("「{}」不是可选项，可选：{}", quote(v), allowed(control)),
        )
    })
}

fn multi_select(control: &Control, v: &Value) -> Result<Vec<String>, Fault> {
    let Value::Array(items) = v else {
        let example = control.options.first().map_or("…", |o| o.value.as_str());
        return Err(fault(
            format!("expected an array of options, e.g. [\"{example}\"]"),
            format!("应为选项数组，如 [\"{example}\"]"),
        ));
    };
    let mut chosen = Vec::with_capacity(items.len());
    let mut wrong = Vec::new();
    for item in items {
        match option_of(control, item) {
            Some(o) => chosen.push(o),
            None => wrong.push(format!("`{}`", quote(item))),
        }
    }
    if wrong.is_empty() {
        Ok(chosen)
    } else {
        let wrong = wrong.join(", ");
        Err(fault(
            format!(
                "{wrong} not among the options; use some of {}",
                allowed(control)
            ),
            format!("{wrong} 不是可选项，可选：{}", allowed(control)),
        ))
    }
}

/// `YYYY-MM-DD` (→ midnight, `false`) or `YYYY-MM-DD HH:mm` (`true`).
fn parse_when(s: &str) -> Option<(NaiveDateTime, bool)> {
    let shape_ok = |pattern: &[u8]| {
        s.len() == pattern.len()
            && s.bytes().zip(pattern).all(|(b, p)| match p {
                b'd' => b.is_ascii_digit(),
                sep => b == *sep,
            })
    };
    if shape_ok(b"dddd-dd-dd") {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        Some((d.and_hms_opt(0, 0, 0)?, false))
    } else if shape_ok(b"dddd-dd-dd dd:dd") {
        Some((
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").ok()?,
            true,
        ))
    } else {
        None
    }
}

fn date_fault(v: &Value) -> Fault {
    fault(
        format!(
            "expected a date `YYYY-MM-DD` or `YYYY-MM-DD HH:mm`, e.g. \"2024-05-01\", got `{}`",
            quote(v)
        ),
        format!(
            "应为日期 YYYY-MM-DD 或 YYYY-MM-DD HH:mm，如 \"2024-05-01\"，实际是「{}」",
            quote(v)
        ),
    )
}

fn date(v: &Value) -> Result<String, Fault> {
    match v {
        Value::String(s) if parse_when(s.trim()).is_some() => Ok(s.trim().to_owned()),
        other => Err(date_fault(other)),
    }
}

fn date_range(v: &Value) -> Result<[String; 2], Fault> {
    let (start, end) = match v {
        Value::Array(a) if a.len() == 2 => (&a[0], &a[1]),
        Value::Object(o) if o.contains_key("start") && o.contains_key("end") => {
            (&o["start"], &o["end"])
        }
        _ => {
            return Err(fault(
                "expected [start, end] or {\"start\": …, \"end\": …}, e.g. \
                 [\"2024-05-01 09:00\", \"2024-05-03 18:00\"]",
                "应为 [开始, 结束] 或 {\"start\": …, \"end\": …}，\
                 如 [\"2024-05-01 09:00\", \"2024-05-03 18:00\"]",
            ));
        }
    };
    let parse = |v: &Value| {
        let s = v.as_str().map(str::trim).unwrap_or_default();
        parse_when(s)
            .map(|w| (s.to_owned(), w))
            .ok_or_else(|| date_fault(v))
    };
    let (start, (from, start_has_time)) = parse(start)?;
    let (end, (to, end_has_time)) = parse(end)?;
    if start_has_time != end_has_time {
        return Err(fault(
            format!(
                "`{start}` and `{end}` must both be dates or both be dates with a time (HH:mm)"
            ),
            format!("「{start}」和「{end}」须同为日期或同为带时间（HH:mm）的日期"),
        ));
    }
    if from > to {
        return Err(fault(
            format!("starts (`{start}`) after it ends (`{end}`); swap them"),
            format!("开始（{start}）晚于结束（{end}），请对调"),
        ));
    }
    Ok([start, end])
}

fn table(
    control: &Control,
    v: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<FieldValue> {
    let Value::Array(rows) = v else {
        errors.push(error(
            path,
            format!(
                "expected an array of rows, each an object of column → value (columns: {})",
                control.children.suggestions()
            ),
            format!(
                "应为明细行数组，每行是「列 → 值」的对象（列：{}）",
                control.children.suggestions()
            ),
        ));
        return None;
    };
    let before = errors.len();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(row) = row else {
            errors.push(error(
                &format!("{path}[{i}]"),
                format!("expected an object of column → value, got {}", kind(row).0),
                format!("每行应为「列 → 值」的对象，实际是{}", kind(row).1),
            ));
            continue;
        };
        out.push(convert_object(
            &control.children,
            row,
            &format!("{path}[{i}]."),
            errors,
        ));
    }
    (errors.len() == before).then_some(FieldValue::Table(out))
}

fn attachments(v: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<FieldValue> {
    let Value::Array(items) = v else {
        errors.push(error(
            path,
            "expected an array of files {fileId, fileName, fileSize, fileType, spaceId}".into(),
            "应为附件数组，每项为 {fileId, fileName, fileSize, fileType, spaceId}".into(),
        ));
        return None;
    };
    let before = errors.len();
    let mut files = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Value::Object(o) = item else {
            errors.push(error(
                &item_path,
                format!(
                    "expected a file object {{fileId, fileName, …}}, got {}",
                    kind(item).0
                ),
                format!(
                    "应为附件对象 {{fileId, fileName, …}}，实际是{}",
                    kind(item).1
                ),
            ));
            continue;
        };
        let get = |camel: &str, snake: &str| {
            o.get(camel)
                .or_else(|| o.get(snake))
                .and_then(scalar_text)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let (file_id, file_name) = (get("fileId", "file_id"), get("fileName", "file_name"));
        let (Some(file_id), Some(file_name)) = (file_id.clone(), file_name.clone()) else {
            let missing: Vec<&str> = [("fileId", &file_id), ("fileName", &file_name)]
                .into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n)
                .collect();
            let missing = missing.join(", ");
            errors.push(error(
                &item_path,
                format!("missing {missing}: give the file's id and name as uploaded to DingTalk"),
                format!("缺少 {missing}：请填写上传到钉钉后的文件 ID 和文件名"),
            ));
            continue;
        };
        // The extension when the type is not given: DingTalk shows the file by its type.
        let file_type = get("fileType", "file_type").or_else(|| {
            file_name
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .filter(|ext| !ext.is_empty())
        });
        files.push(Attachment {
            space_id: get("spaceId", "space_id"),
            file_name,
            file_size: get("fileSize", "file_size"),
            file_type,
            file_id,
        });
    }
    (errors.len() == before).then_some(FieldValue::Attachments(files))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    /// 费用报销 as `approval_form_schema` returns it: options as `{key, value}` objects.
    fn expense() -> FormTemplate {
        template(json!({
            "name": "费用报销",
            "formCode": "PROC-FYBX",
            "schemaContent": {"title": "费用报销", "items": [
                {"componentName": "TextareaField",
                 "props": {"id": "TextareaField_BXSY", "label": "报销事由", "bizAlias": "reason", "required": true}},
                {"componentName": "DDSelectField",
                 "props": {"id": "DDSelectField_BXLB", "label": "报销类别", "bizAlias": "", "required": true,
                           "options": [{"key": "option_0", "value": "差旅报销"},
                                       {"key": "option_1", "value": "日常报销"},
                                       {"key": "option_2", "value": "项目报销"}]}},
                {"componentName": "TableField",
                 "props": {"id": "TableField_FYMX", "label": "费用明细", "bizAlias": "details", "required": true},
                 "children": [
                    {"componentName": "DDSelectField",
                     "props": {"id": "DDSelectField_FYLX", "label": "费用类型", "required": true,
                               "options": [{"key": "option_0", "value": "差旅费"},
                                           {"key": "option_1", "value": "交通费"},
                                           {"key": "option_2", "value": "招待费"}]}},
                    {"componentName": "MoneyField",
                     "props": {"id": "MoneyField_JE", "label": "金额（元）", "bizAlias": "amount", "required": true}},
                    {"componentName": "DDDateField",
                     "props": {"id": "DDDateField_RQ", "label": "发生日期", "required": false}},
                    {"componentName": "TextField",
                     "props": {"id": "TextField_SM", "label": "费用说明", "required": false}}
                 ]},
                {"componentName": "MoneyField",
                 "props": {"id": "MoneyField_ZJE", "label": "报销总金额（元）", "bizAlias": "amount", "required": true}},
                {"componentName": "DDAttachment",
                 "props": {"id": "DDAttachment_FJ", "label": "附件", "required": false}}
            ]}
        }))
    }

    /// 请假: options as plain strings, a date range labelled by its two sub-labels.
    fn leave() -> FormTemplate {
        template(json!({
            "name": "请假",
            "schemaContent": {"items": [
                {"componentName": "DDSelectField",
                 "props": {"id": "DDSelectField_QJLX", "label": "请假类型", "required": true,
                           "options": ["年假", "事假", "病假", "调休"]}},
                {"componentName": "DDDateRangeField",
                 "props": {"id": "DDDateRangeField_QJSJ", "label": "[\"开始时间\",\"结束时间\"]",
                           "bizAlias": "period", "required": true}},
                {"componentName": "NumberField",
                 "props": {"id": "NumberField_SC", "label": "时长（天）", "required": false}},
                {"componentName": "TextareaField",
                 "props": {"id": "TextareaField_QJSY", "label": "请假事由", "required": true}}
            ]}
        }))
    }

    /// 采购: a multi-select, a date, another table, and controls of other types.
    fn purchase() -> FormTemplate {
        template(json!({
            "name": "采购",
            "schemaContent": {"items": [
                {"componentName": "TextareaField",
                 "props": {"id": "TextareaField_CGSY", "label": "采购事由", "required": true}},
                {"componentName": "DDMultiSelectField",
                 "props": {"id": "DDMultiSelectField_CGLX", "label": "采购类型", "required": true,
                           "options": [{"key": "option_0", "value": "办公用品"},
                                       {"key": "option_1", "value": "IT设备"},
                                       {"key": "option_2", "value": "生产物料"}]}},
                {"componentName": "DDDateField",
                 "props": {"id": "DDDateField_QWJF", "label": "期望交付日期", "required": true}},
                {"componentName": "TableField",
                 "props": {"id": "TableField_CGMX", "label": "采购明细", "required": false},
                 "children": [
                    {"componentName": "TextField",
                     "props": {"id": "TextField_WPMC", "label": "物品名称", "required": true}},
                    {"componentName": "NumberField",
                     "props": {"id": "NumberField_SL", "label": "数量", "required": true}}
                 ]},
                {"componentName": "InnerContactField",
                 "props": {"id": "InnerContactField_SHR", "label": "收货人", "required": false}},
                {"componentName": "PhoneField",
                 "props": {"id": "PhoneField_LXDH", "label": "联系电话", "required": false}}
            ]}
        }))
    }

    fn template(schema: Value) -> FormTemplate {
        FormTemplate::from_schema(&serde_json::from_value::<FormSchema>(schema).unwrap())
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn ok(t: &FormTemplate, v: Value) -> Vec<FormField> {
        convert(t, &obj(v)).unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
    }

    fn errs(t: &FormTemplate, v: Value) -> Vec<FieldError> {
        match convert(t, &obj(v)) {
            Ok(f) => panic!("expected errors, converted to {f:?}"),
            Err(e) => e,
        }
    }

    /// The only error, which must be about `field`.
    fn only_error(t: &FormTemplate, v: Value, field: &str) -> FieldError {
        let e = errs(t, v);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, field, "{e:?}");
        assert!(!e[0].reason.is_empty() && !e[0].reason_zh.is_empty());
        e.into_iter().next().unwrap()
    }

    fn field<'a>(fields: &'a [FormField], name: &str) -> &'a FormField {
        fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
    }

    /// A valid 请假 request to vary.
    fn leave_request() -> Value {
        json!({
            "请假类型": "年假",
            "[\"开始时间\",\"结束时间\"]": ["2024-05-01 09:00", "2024-05-03 18:00"],
            "请假事由": "回老家"
        })
    }

    /// A valid 采购 request to vary.
    fn purchase_request() -> Value {
        json!({"采购事由": "新员工入职", "采购类型": ["IT设备"], "期望交付日期": "2024-06-01"})
    }

    /// A valid 费用报销 request with only the required controls.
    fn expense_request() -> Value {
        json!({
            "报销事由": "出差",
            "报销类别": "差旅报销",
            "费用明细": [{"费用类型": "交通费", "金额（元）": 120}],
            "报销总金额（元）": 120
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        base.as_object_mut().unwrap().remove(key);
        base
    }

    #[test]
    fn keys_may_be_labels_ids_or_biz_aliases() {
        let by_label = ok(&expense(), expense_request());
        let by_other_names = ok(
            &expense(),
            json!({
                "reason": "出差",
                "DDSelectField_BXLB": "差旅报销",
                "details": [{"DDSelectField_FYLX": "交通费", "amount": 120}],
                "amount": 120
            }),
        );
        assert_eq!(by_label, by_other_names);
        let reason = field(&by_label, "报销事由");
        assert_eq!(reason.id.as_deref(), Some("TextareaField_BXSY"));
        assert_eq!(reason.component_type.as_deref(), Some("TextareaField"));
        assert_eq!(reason.value, FieldValue::Text("出差".into()));
        // `amount` is 报销总金额 at the top and 金额 inside a row: names are per table.
        assert_eq!(
            field(&by_other_names, "报销总金额（元）").value,
            FieldValue::Text("120".into())
        );
        // Ids win over labels and labels over aliases when names collide.
        let t = template(json!({"schemaContent": {"items": [
            {"componentName": "TextField", "props": {"id": "A", "label": "B", "bizAlias": "C"}},
            {"componentName": "TextField", "props": {"id": "B", "label": "C", "bizAlias": "A"}}
        ]}}));
        let f = ok(&t, json!({"A": "1", "B": "2"}));
        assert_eq!(
            (f[0].name.as_str(), &f[0].value),
            ("B", &FieldValue::Text("1".into()))
        );
        assert_eq!(
            (f[1].name.as_str(), &f[1].value),
            ("C", &FieldValue::Text("2".into()))
        );
        let f = ok(&t, json!({"C": "3"}));
        assert_eq!(f[0].name, "C");
    }

    #[test]
    fn an_unknown_key_lists_the_accepted_names() {
        let e = only_error(
            &expense(),
            with(expense_request(), "报销事项", json!("x")),
            "报销事项",
        );
        assert!(e.reason.contains("`报销事由`"), "{}", e.reason);
        assert!(e.reason.contains("`费用明细`"), "{}", e.reason);
        assert!(e.reason_zh.contains("报销事项"), "{}", e.reason_zh);
        // In a row, the row's columns are listed.
        let e = only_error(
            &expense(),
            with(
                expense_request(),
                "费用明细",
                json!([{"费用类型": "交通费", "金额（元）": 1, "备注": "x"}]),
            ),
            "费用明细[0].备注",
        );
        assert!(e.reason.contains("`费用说明`"), "{}", e.reason);
        assert!(!e.reason.contains("`报销事由`"), "{}", e.reason);
    }

    #[test]
    fn one_control_given_twice_is_an_error() {
        let e = only_error(
            &expense(),
            with(expense_request(), "reason", json!("出差")),
            "reason",
        );
        assert!(e.reason.contains("`报销事由`"), "{}", e.reason);
    }

    #[test]
    fn fields_come_in_the_templates_order() {
        let fields = ok(
            &expense(),
            json!({
                "附件": [{"fileId": "f1", "fileName": "发票.pdf"}],
                "报销总金额（元）": "120.00",
                "费用明细": [{"金额（元）": 120, "费用类型": "交通费"}],
                "报销类别": "差旅报销",
                "报销事由": "出差"
            }),
        );
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "报销事由",
                "报销类别",
                "费用明细",
                "报销总金额（元）",
                "附件"
            ]
        );
        let FieldValue::Table(rows) = &fields[2].value else {
            panic!("not a table: {:?}", fields[2]);
        };
        let cells: Vec<&str> = rows[0].iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cells, ["费用类型", "金额（元）"]);
    }

    #[test]
    fn text_takes_strings_and_numbers() {
        let f = ok(&leave(), with(leave_request(), "请假事由", json!(12.5)));
        assert_eq!(field(&f, "请假事由").value, FieldValue::Text("12.5".into()));
        let f = ok(
            &leave(),
            with(leave_request(), "请假事由", json!("家中有事")),
        );
        assert_eq!(
            field(&f, "请假事由").value,
            FieldValue::Text("家中有事".into())
        );
        for bad in [json!(true), json!({"a": 1}), json!(["回老家"])] {
            let e = only_error(&leave(), with(leave_request(), "请假事由", bad), "请假事由");
            assert!(e.reason.contains("expected text"), "{}", e.reason);
        }
    }

    #[test]
    fn numbers_and_money_are_written_as_given() {
        let money = |v: Value| {
            let f = ok(&expense(), with(expense_request(), "报销总金额（元）", v));
            field(&f, "报销总金额（元）").value.clone()
        };
        assert_eq!(money(json!(1200.5)), FieldValue::Text("1200.5".into()));
        assert_eq!(money(json!(0.1)), FieldValue::Text("0.1".into()));
        assert_eq!(money(json!(1200)), FieldValue::Text("1200".into()));
        assert_eq!(money(json!(1200.0)), FieldValue::Text("1200".into()));
        assert_eq!(
            money(json!(1e21)),
            FieldValue::Text("1000000000000000000000".into())
        );
        assert_eq!(money(json!("1200.50")), FieldValue::Text("1200.50".into()));
        assert_eq!(money(json!(" -35 ")), FieldValue::Text("-35".into()));

        let number = |v: Value| {
            let f = ok(&leave(), with(leave_request(), "时长（天）", v));
            field(&f, "时长（天）").value.clone()
        };
        assert_eq!(number(json!(2.5)), FieldValue::Text("2.5".into()));
        assert_eq!(number(json!("0.125")), FieldValue::Text("0.125".into()));
        assert_eq!(number(json!(3)), FieldValue::Text("3".into()));
    }

    #[test]
    fn non_numbers_and_fractions_of_cents_are_refused() {
        for bad in [
            json!("一千"),
            json!("1,200"),
            json!("1e3"),
            json!(true),
            json!([1]),
        ] {
            let e = only_error(
                &expense(),
                with(expense_request(), "报销总金额（元）", bad.clone()),
                "报销总金额（元）",
            );
            assert!(
                e.reason.contains("expected a number"),
                "{bad}: {}",
                e.reason
            );
        }
        let e = only_error(
            &leave(),
            with(leave_request(), "时长（天）", json!("两天")),
            "时长（天）",
        );
        assert!(e.reason_zh.contains("两天"), "{}", e.reason_zh);
        for bad in [json!(12.345), json!("12.345")] {
            let e = only_error(
                &expense(),
                with(expense_request(), "报销总金额（元）", bad),
                "报销总金额（元）",
            );
            assert!(e.reason.contains("at most 2"), "{}", e.reason);
        }
    }

    #[test]
    fn a_select_takes_one_of_its_options() {
        // Options given as {key, value} objects: the value, or the key (sent as the value).
        let f = ok(
            &expense(),
            with(expense_request(), "报销类别", json!("日常报销")),
        );
        assert_eq!(
            field(&f, "报销类别").value,
            FieldValue::Text("日常报销".into())
        );
        let f = ok(
            &expense(),
            with(expense_request(), "报销类别", json!("option_2")),
        );
        assert_eq!(
            field(&f, "报销类别").value,
            FieldValue::Text("项目报销".into())
        );
        let e = only_error(
            &expense(),
            with(expense_request(), "报销类别", json!("出差报销")),
            "报销类别",
        );
        assert!(
            e.reason
                .contains("use one of `差旅报销`, `日常报销`, `项目报销`"),
            "{}",
            e.reason
        );
        assert!(e.reason_zh.contains("出差报销"), "{}", e.reason_zh);
        // Options given as plain strings.
        let f = ok(&leave(), with(leave_request(), "请假类型", json!("病假")));
        assert_eq!(field(&f, "请假类型").value, FieldValue::Text("病假".into()));
        let e = only_error(
            &leave(),
            with(leave_request(), "请假类型", json!("丧假")),
            "请假类型",
        );
        assert!(
            e.reason.contains("`年假`, `事假`, `病假`, `调休`"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn options_may_be_json_text() {
        let t = template(json!({"schemaContent": {"items": [
            {"componentName": "DDSelectField",
             "props": {"id": "S", "label": "紧急程度",
                       "options": ["{\"key\":\"k1\",\"value\":\"普通\"}", "{\"key\":\"k2\",\"value\":\"紧急\"}"]}}
        ]}}));
        let f = ok(&t, json!({"紧急程度": "紧急"}));
        assert_eq!(f[0].value, FieldValue::Text("紧急".into()));
        only_error(&t, json!({"紧急程度": "k3"}), "紧急程度");
    }

    #[test]
    fn a_multi_select_takes_an_array_of_options() {
        let f = ok(
            &purchase(),
            with(
                purchase_request(),
                "采购类型",
                json!(["办公用品", "option_1"]),
            ),
        );
        assert_eq!(
            field(&f, "采购类型").value,
            FieldValue::MultiSelect(vec!["办公用品".into(), "IT设备".into()])
        );
        assert_eq!(
            field(&f, "采购类型").to_v1()["value"],
            json!(r#"["办公用品","IT设备"]"#)
        );
        let e = only_error(
            &purchase(),
            with(purchase_request(), "采购类型", json!(["办公用品", "家具"])),
            "采购类型",
        );
        assert!(e.reason.contains("`家具`"), "{}", e.reason);
        assert!(!e.reason.starts_with("`办公用品`"), "{}", e.reason);
        assert!(e.reason.contains("`生产物料`"), "{}", e.reason);
        let e = only_error(
            &purchase(),
            with(purchase_request(), "采购类型", json!("办公用品")),
            "采购类型",
        );
        assert!(e.reason.contains("expected an array"), "{}", e.reason);
    }

    #[test]
    fn dates_are_checked() {
        for good in ["2024-06-01", "2024-06-01 14:30", "2024-02-29"] {
            let f = ok(
                &purchase(),
                with(purchase_request(), "期望交付日期", json!(good)),
            );
            assert_eq!(
                field(&f, "期望交付日期").value,
                FieldValue::Text(good.into())
            );
        }
        for bad in [
            json!("2024/06/01"),
            json!("2024-6-1"),
            // chrono alone would read these: the shape is checked first.
            json!("2024-06- 1"),
            json!("+2024-06-1"),
            json!("2024-6-01 09:05"),
            json!("2024-06-01 09: 5"),
            json!("2023-02-29"),
            json!("2024-06-01 25:00"),
            json!("2024-06-01T14:30"),
            json!("2024-06-01 14:30:00"),
            json!(20240601),
        ] {
            let e = only_error(
                &purchase(),
                with(purchase_request(), "期望交付日期", bad.clone()),
                "期望交付日期",
            );
            assert!(e.reason.contains("YYYY-MM-DD"), "{bad}: {}", e.reason);
        }
    }

    #[test]
    fn a_date_range_is_named_by_its_sub_labels() {
        let expected =
            FieldValue::DateRange(["2024-05-01 09:00".into(), "2024-05-03 18:00".into()]);
        for (key, value) in [
            (
                "[\"开始时间\",\"结束时间\"]",
                json!(["2024-05-01 09:00", "2024-05-03 18:00"]),
            ),
            (
                "[\"开始时间\", \"结束时间\"]",
                json!(["2024-05-01 09:00", "2024-05-03 18:00"]),
            ),
            (
                "DDDateRangeField_QJSJ",
                json!({"start": "2024-05-01 09:00", "end": "2024-05-03 18:00"}),
            ),
            ("period", json!(["2024-05-01 09:00", "2024-05-03 18:00"])),
        ] {
            let request = without(leave_request(), "[\"开始时间\",\"结束时间\"]");
            let f = ok(&leave(), with(request, key, value));
            assert_eq!(f[1].name, r#"["开始时间","结束时间"]"#, "{key}");
            assert_eq!(f[1].value, expected, "{key}");
            assert_eq!(
                f[1].to_v1()["value"],
                json!(r#"["2024-05-01 09:00","2024-05-03 18:00"]"#)
            );
        }
        // The name is the schema's label exactly; a key may space it differently.
        let t = template(json!({"schemaContent": {"items": [
            {"componentName": "DDDateRangeField",
             "props": {"id": "R", "label": "[\"出发\", \"返回\"]", "required": true}}
        ]}}));
        let f = ok(
            &t,
            json!({"[\"出发\",\"返回\"]": ["2024-05-01", "2024-05-02"]}),
        );
        assert_eq!(f[0].name, r#"["出发", "返回"]"#);
        // A date range labelled plainly keeps its label.
        let t = template(json!({"schemaContent": {"items": [
            {"componentName": "DDDateRangeField", "props": {"id": "R", "label": "出差时间", "required": true}}
        ]}}));
        let f = ok(&t, json!({"出差时间": ["2024-05-01", "2024-05-01"]}));
        assert_eq!(f[0].name, "出差时间");
        assert_eq!(
            f[0].value,
            FieldValue::DateRange(["2024-05-01".into(), "2024-05-01".into()])
        );
    }

    #[test]
    fn a_date_range_must_be_two_dates_in_order() {
        let key = "[\"开始时间\",\"结束时间\"]";
        let e = only_error(
            &leave(),
            with(leave_request(), key, json!(["2024-05-03", "2024-05-01"])),
            key,
        );
        assert!(e.reason.contains("after it ends"), "{}", e.reason);
        let e = only_error(
            &leave(),
            with(
                leave_request(),
                key,
                json!({"start": "2024-05-01 18:00", "end": "2024-05-01 09:00"}),
            ),
            key,
        );
        assert!(e.reason.contains("after it ends"), "{}", e.reason);
        for bad in [
            json!(["2024-05-01"]),
            json!("2024-05-01"),
            json!({"from": "2024-05-01", "to": "2024-05-02"}),
        ] {
            let e = only_error(&leave(), with(leave_request(), key, bad.clone()), key);
            assert!(e.reason.contains("[start, end]"), "{bad}: {}", e.reason);
        }
        let e = only_error(
            &leave(),
            with(leave_request(), key, json!(["2024-05-01", "明天"])),
            key,
        );
        assert!(e.reason.contains("`明天`"), "{}", e.reason);
        let e = only_error(
            &leave(),
            with(
                leave_request(),
                key,
                json!(["2024-05-01", "2024-05-02 18:00"]),
            ),
            key,
        );
        assert!(e.reason.contains("both be dates"), "{}", e.reason);
    }

    #[test]
    fn a_table_converts_each_row_by_its_columns() {
        let f = ok(
            &expense(),
            with(
                expense_request(),
                "费用明细",
                json!([
                    {"费用类型": "交通费", "金额（元）": 120.5, "发生日期": "2024-05-01"},
                    {"DDSelectField_FYLX": "option_2", "amount": "300", "费用说明": "客户晚餐"}
                ]),
            ),
        );
        let table = field(&f, "费用明细");
        assert_eq!(table.id.as_deref(), Some("TableField_FYMX"));
        let cell = |name: &str, value: &str, id: &str, ty: &str| FormField {
            name: name.into(),
            value: FieldValue::Text(value.into()),
            ext_value: None,
            id: Some(id.into()),
            biz_alias: None,
            component_type: Some(ty.into()),
        };
        assert_eq!(
            table.value,
            FieldValue::Table(vec![
                vec![
                    cell("费用类型", "交通费", "DDSelectField_FYLX", "DDSelectField"),
                    cell("金额（元）", "120.5", "MoneyField_JE", "MoneyField"),
                    cell("发生日期", "2024-05-01", "DDDateField_RQ", "DDDateField"),
                ],
                vec![
                    cell("费用类型", "招待费", "DDSelectField_FYLX", "DDSelectField"),
                    cell("金额（元）", "300", "MoneyField_JE", "MoneyField"),
                    cell("费用说明", "客户晚餐", "TextField_SM", "TextField"),
                ],
            ])
        );
    }

    #[test]
    fn table_errors_name_the_row_and_column() {
        let e = errs(
            &expense(),
            with(
                expense_request(),
                "费用明细",
                json!([
                    {"费用类型": "交通费", "金额（元）": 120},
                    {"费用类型": "交通费", "金额（元）": "一百"},
                    {"费用类型": "机票", "amount": 1, "发生日期": "昨天"},
                    {"费用说明": "无金额"},
                    "交通费 120"
                ]),
            ),
        );
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "费用明细[1].金额（元）",
                "费用明细[2].费用类型",
                "费用明细[2].发生日期",
                "费用明细[3].费用类型",
                "费用明细[3].金额（元）",
                "费用明细[4]",
            ],
            "{e:?}"
        );
        assert!(e[0].reason.contains("expected a number"), "{}", e[0].reason);
        assert!(e[1].reason.contains("`差旅费`"), "{}", e[1].reason);
        assert!(e[3].reason.contains("required"), "{}", e[3].reason);
        assert!(e[4].reason.contains("required"), "{}", e[4].reason);
        assert!(
            e[5].reason.contains("expected an object"),
            "{}",
            e[5].reason
        );
        // A column named by id keeps the caller's key in the error.
        only_error(
            &expense(),
            with(
                without(expense_request(), "费用明细"),
                "details",
                json!([{"费用类型": "交通费", "MoneyField_JE": "x"}]),
            ),
            "details[0].MoneyField_JE",
        );
    }

    #[test]
    fn a_required_table_needs_a_row_and_an_optional_one_may_be_empty() {
        let e = only_error(
            &expense(),
            with(expense_request(), "费用明细", json!([])),
            "费用明细",
        );
        assert!(e.reason.contains("at least one row"), "{}", e.reason);
        only_error(
            &expense(),
            with(expense_request(), "费用明细", json!({"费用类型": "交通费"})),
            "费用明细",
        );
        let f = ok(&purchase(), with(purchase_request(), "采购明细", json!([])));
        assert!(f.iter().all(|f| f.name != "采购明细"), "{f:?}");
        let f = ok(
            &purchase(),
            with(
                purchase_request(),
                "采购明细",
                json!([{"物品名称": "笔记本电脑", "数量": "2"}]),
            ),
        );
        assert_eq!(
            field(&f, "采购明细").to_v1()["value"],
            json!(r#"[[{"name":"物品名称","value":"笔记本电脑"},{"name":"数量","value":"2"}]]"#)
        );
    }

    #[test]
    fn attachments_take_camel_or_snake_case_files() {
        let f = ok(
            &expense(),
            with(
                expense_request(),
                "附件",
                json!([
                    {"fileId": "f1", "fileName": "发票.PDF", "fileSize": 2048, "spaceId": 123},
                    {"file_id": "f2", "file_name": "行程单", "file_size": "10", "file_type": "jpg", "space_id": "9"}
                ]),
            ),
        );
        assert_eq!(
            field(&f, "附件").value,
            FieldValue::Attachments(vec![
                Attachment {
                    space_id: Some("123".into()),
                    file_name: "发票.PDF".into(),
                    file_size: Some("2048".into()),
                    file_type: Some("pdf".into()),
                    file_id: "f1".into(),
                },
                Attachment {
                    space_id: Some("9".into()),
                    file_name: "行程单".into(),
                    file_size: Some("10".into()),
                    file_type: Some("jpg".into()),
                    file_id: "f2".into(),
                },
            ])
        );
    }

    #[test]
    fn attachments_need_a_file_id_and_name() {
        let e = errs(
            &expense(),
            with(
                expense_request(),
                "附件",
                json!([
                    {"fileName": "发票.pdf"},
                    {"fileId": "f2", "fileName": ""},
                    {"fileId": "f3", "fileName": "好的.pdf"},
                    {},
                    "f4"
                ]),
            ),
        );
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.field.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 4, "{e:?}");
        assert_eq!(got[0].0, "附件[0]");
        assert!(got[0].1.starts_with("missing fileId:"), "{}", got[0].1);
        assert_eq!(got[1].0, "附件[1]");
        assert!(got[1].1.starts_with("missing fileName:"), "{}", got[1].1);
        assert_eq!(got[2].0, "附件[3]");
        assert!(
            got[2].1.starts_with("missing fileId, fileName:"),
            "{}",
            got[2].1
        );
        assert_eq!(got[3].0, "附件[4]");
        only_error(
            &expense(),
            with(
                expense_request(),
                "附件",
                json!({"fileId": "f1", "fileName": "a.pdf"}),
            ),
            "附件",
        );
    }

    #[test]
    fn other_controls_pass_through() {
        let f = ok(
            &purchase(),
            with(
                with(purchase_request(), "收货人", json!(["manager4220"])),
                "联系电话",
                json!(13800138000u64),
            ),
        );
        let contact = field(&f, "收货人");
        assert_eq!(contact.value, FieldValue::Json(json!(["manager4220"])));
        assert_eq!(contact.component_type.as_deref(), Some("InnerContactField"));
        assert_eq!(
            field(&f, "联系电话").value,
            FieldValue::Text("13800138000".into())
        );
        let f = ok(
            &purchase(),
            with(purchase_request(), "联系电话", json!("010-1234")),
        );
        assert_eq!(
            field(&f, "联系电话").value,
            FieldValue::Text("010-1234".into())
        );
    }

    #[test]
    fn required_controls_must_have_a_value() {
        for blank in [json!(null), json!(""), json!("  ")] {
            let e = only_error(
                &leave(),
                with(leave_request(), "请假事由", blank),
                "请假事由",
            );
            assert!(e.reason.contains("required"), "{}", e.reason);
            assert!(e.reason_zh.contains("必填"), "{}", e.reason_zh);
        }
        let e = only_error(&leave(), without(leave_request(), "请假事由"), "请假事由");
        assert!(e.reason.contains("required"), "{}", e.reason);
        let e = only_error(
            &purchase(),
            with(purchase_request(), "采购类型", json!([])),
            "采购类型",
        );
        assert!(e.reason.contains("at least one"), "{}", e.reason);
        // Blank optional controls are left out.
        let f = ok(
            &leave(),
            with(
                with(leave_request(), "时长（天）", json!(null)),
                "请假事由",
                json!("x"),
            ),
        );
        assert!(f.iter().all(|f| f.name != "时长（天）"), "{f:?}");
        let f = ok(&leave(), with(leave_request(), "时长（天）", json!("")));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let e = errs(
            &expense(),
            json!({
                "报销类别": "出差报销",
                "费用明细": [{"费用类型": "交通费", "金额（元）": 1.001}],
                "报销总金额（元）": "abc",
                "备注": "x"
            }),
        );
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "备注",
                "报销事由",
                "报销类别",
                "费用明细[0].金额（元）",
                "报销总金额（元）"
            ],
            "{e:?}"
        );
        let shown = e[1].to_string();
        assert_eq!(shown, "报销事由: is required: give a value");
    }

    #[test]
    fn a_complete_expense_claim_converts_exactly() {
        let fields = ok(
            &expense(),
            json!({
                "reason": "5月上海出差：拜访客户",
                "报销类别": "差旅报销",
                "details": [
                    {"费用类型": "差旅费", "金额（元）": 1080, "发生日期": "2024-05-06", "费用说明": "往返高铁"},
                    {"费用类型": "招待费", "金额（元）": "120.50", "发生日期": "2024-05-07 19:30"}
                ],
                "报销总金额（元）": 1200.5,
                "附件": [{"fileId": "60401", "fileName": "发票.pdf", "fileSize": 2048, "fileType": "pdf", "spaceId": "2001"}]
            }),
        );
        let v1: Vec<Value> = fields.iter().map(FormField::to_v1).collect();
        assert_eq!(
            v1,
            vec![
                json!({"id": "TextareaField_BXSY", "name": "报销事由",
                       "value": "5月上海出差：拜访客户", "componentType": "TextareaField"}),
                json!({"id": "DDSelectField_BXLB", "name": "报销类别",
                       "value": "差旅报销", "componentType": "DDSelectField"}),
                json!({"id": "TableField_FYMX", "name": "费用明细",
                       "value": concat!(
                           r#"[[{"name":"费用类型","value":"差旅费"},{"name":"金额（元）","value":"1080"},"#,
                           r#"{"name":"发生日期","value":"2024-05-06"},{"name":"费用说明","value":"往返高铁"}],"#,
                           r#"[{"name":"费用类型","value":"招待费"},{"name":"金额（元）","value":"120.50"},"#,
                           r#"{"name":"发生日期","value":"2024-05-07 19:30"}]]"#),
                       "componentType": "TableField"}),
                json!({"id": "MoneyField_ZJE", "name": "报销总金额（元）",
                       "value": "1200.5", "componentType": "MoneyField"}),
                json!({"id": "DDAttachment_FJ", "name": "附件",
                       "value": r#"[{"spaceId":"2001","fileName":"发票.pdf","fileSize":"2048","fileType":"pdf","fileId":"60401"}]"#,
                       "componentType": "DDAttachment"}),
            ]
        );
    }
}
