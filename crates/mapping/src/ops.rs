//! The native operations, compiled once from a rule and applied to each value. Every `apply`
//! returns the reason as text; the caller adds the field name.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde_json::{Map, Number, Value};

use crate::rule::{DateRule, DictFallback};

/// A `from` path: the whole text (tried first, so a key with a dot in it still works) and its
/// dot-separated parts.
#[derive(Debug, Clone)]
pub struct Path {
    raw: String,
    parts: Vec<String>,
}

impl Path {
    pub fn parse(raw: &str) -> Result<Path, String> {
        if raw.is_empty() {
            return Err("`from` is empty; name a source field, e.g. from = \"mobile\"".into());
        }
        let parts: Vec<String> = raw.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!(
                "`from` path `{raw}` has an empty part; write e.g. `dept.name` or `dept_id_list.0`"
            ));
        }
        Ok(Path {
            raw: raw.to_owned(),
            parts,
        })
    }

    /// The value at this path, or `None` when any step is missing.
    pub fn lookup<'a>(&self, source: &'a Map<String, Value>) -> Option<&'a Value> {
        if let Some(v) = source.get(&self.raw) {
            return Some(v);
        }
        let (first, rest) = self.parts.split_first()?;
        let mut current = source.get(first)?;
        for part in rest {
            current = match current {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

/// Missing values become null before this; "" counts as empty too (DingTalk sends both).
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A short rendering of a value for messages (long text cut, so one line stays readable).
pub fn show(value: &Value) -> String {
    const MAX: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Text a value stands for, for lookups, patterns and templates: strings as they are, numbers
/// and bools as written in JSON.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct Dict {
    pub entries: Map<String, Value>,
    pub fallback: DictFallback,
}

impl Dict {
    pub fn apply(&self, value: Value) -> Result<Value, String> {
        if let Some(found) = as_text(&value).and_then(|key| self.entries.get(&key)) {
            return Ok(found.clone());
        }
        match self.fallback {
            DictFallback::Keep => Ok(value),
            DictFallback::Null => Ok(Value::Null),
            DictFallback::Error => Err(format!(
                "value {} not in dictionary; add it to `dict` (or set dict_fallback = \"keep\")",
                show(&value)
            )),
        }
    }
}

pub fn check_regex(pattern: &regex::Regex, value: &Value) -> Result<(), String> {
    let Some(text) = as_text(value) else {
        return Err(format!(
            "`regex` `{}` needs text, got {} {}",
            pattern.as_str(),
            kind(value),
            show(value)
        ));
    };
    if pattern.is_match(&text) {
        Ok(())
    } else {
        Err(format!(
            "value {} does not match the pattern `{}`; fix the source data or the `regex`",
            show(value),
            pattern.as_str()
        ))
    }
}

#[derive(Debug, Clone)]
enum DateEnd {
    EpochMs,
    EpochS,
    /// The format as written (for parsing and messages) and pre-parsed (for formatting).
    Format(String, Vec<Item<'static>>),
}

impl DateEnd {
    fn parse(text: &str, key: &str) -> Result<DateEnd, String> {
        match text {
            "epoch_ms" => Ok(DateEnd::EpochMs),
            "epoch_s" => Ok(DateEnd::EpochS),
            "" => Err(format!(
                "`date.{key}` is empty; use \"epoch_ms\", \"epoch_s\" or a chrono format such as \"%Y-%m-%d\""
            )),
            format => match StrftimeItems::new(format).parse_to_owned() {
                Ok(items) => Ok(DateEnd::Format(format.to_owned(), items)),
                Err(_) => Err(format!(
                    "`date.{key}` = \"{format}\" is not a valid chrono format; use \"epoch_ms\", \"epoch_s\" or e.g. \"%Y-%m-%d %H:%M:%S\""
                )),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct DateOp {
    from: DateEnd,
    to: DateEnd,
    offset: FixedOffset,
}

impl DateOp {
    pub fn compile(rule: &DateRule) -> Result<DateOp, String> {
        let hours = rule.tz_offset_hours;
        let offset = if hours.is_finite() && (-24.0..=24.0).contains(&hours) {
            // Offsets are whole minutes (e.g. 5.75 for Nepal); the cast is within range.
            FixedOffset::east_opt((hours * 60.0).round() as i32 * 60)
        } else {
            None
        };
        let offset = offset.ok_or_else(|| {
            format!("`date.tz_offset_hours` = {hours} is out of range; use a number between -23 and 23, e.g. 8 for China")
        })?;
        Ok(DateOp {
            from: DateEnd::parse(&rule.from, "from")?,
            to: DateEnd::parse(&rule.to, "to")?,
            offset,
        })
    }

    pub fn apply(&self, value: &Value) -> Result<Value, String> {
        let instant = self.read(value)?;
        match &self.to {
            DateEnd::EpochMs => Ok(Value::from(instant.timestamp_millis())),
            DateEnd::EpochS => Ok(Value::from(instant.timestamp())),
            DateEnd::Format(format, items) => {
                let mut out = String::new();
                // Writing (not `to_string`) so a format the instant cannot fill is an error,
                // not a panic.
                write!(out, "{}", instant.format_with_items(items.iter())).map_err(|_| {
                    format!("cannot write the date with `date.to` = \"{format}\"; check the format")
                })?;
                Ok(Value::String(out))
            }
        }
    }

    fn read(&self, value: &Value) -> Result<DateTime<FixedOffset>, String> {
        match &self.from {
            DateEnd::EpochMs | DateEnd::EpochS => {
                let Some(n) = as_integer(value) else {
                    return Err(format!(
                        "`date` expects a Unix timestamp here, got {} {}",
                        kind(value),
                        show(value)
                    ));
                };
                let instant = if matches!(self.from, DateEnd::EpochMs) {
                    DateTime::from_timestamp_millis(n)
                } else {
                    DateTime::from_timestamp(n, 0)
                };
                instant
                    .map(|t| t.with_timezone(&self.offset))
                    .ok_or_else(|| format!("timestamp {n} is out of the range of dates"))
            }
            DateEnd::Format(format, _) => {
                let Value::String(text) = value else {
                    return Err(format!(
                        "`date` expects text in the format \"{format}\", got {} {}",
                        kind(value),
                        show(value)
                    ));
                };
                self.parse_text(text, format).ok_or_else(|| {
                    format!(
                        "value {} does not match the date format \"{format}\"; fix `date.from`",
                        show(value)
                    )
                })
            }
        }
    }

    /// Text with its own offset keeps it; without, it is local time at `tz_offset_hours`;
    /// a date alone is midnight.
    fn parse_text(&self, text: &str, format: &str) -> Option<DateTime<FixedOffset>> {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t);
        }
        let naive = NaiveDateTime::parse_from_str(text, format)
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(text, format)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })?;
        naive.and_local_timezone(self.offset).single()
    }
}

/// Whole numbers from JSON numbers or numeric text ("1688140800000").
fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// `multiply` then `divide`.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub multiply: f64,
    pub divide: f64,
}

impl Scale {
    pub fn apply(&self, value: &Value) -> Result<Value, String> {
        let Some(n) = as_number(value) else {
            return Err(format!(
                "`multiply`/`divide` need a number, got {} {}",
                kind(value),
                show(value)
            ));
        };
        let exact = n * self.multiply / self.divide;
        if !exact.is_finite() {
            return Err(format!("{} is too large to scale", show(value)));
        }
        Ok(clean_number(exact))
    }
}

/// A JSON number without binary noise: rounded to 15 significant digits (what an f64 holds
/// reliably), so 1999 × 0.01 is 19.99 and not 19.990000000000002; whole results are integers.
fn clean_number(x: f64) -> Value {
    let rounded = format!("{x:.14e}").parse::<f64>().unwrap_or(x);
    // Below 2^53 every whole f64 is an exact integer.
    if rounded.fract() == 0.0 && rounded.abs() < 9_007_199_254_740_992.0 {
        return Value::from(rounded as i64);
    }
    Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

pub fn fill_template(template: &str, value: &Value) -> Result<Value, String> {
    let Some(text) = as_text(value) else {
        return Err(format!(
            "`template` needs text or a number, got {} {}",
            kind(value),
            show(value)
        ));
    };
    Ok(Value::String(template.replace("{value}", &text)))
}
