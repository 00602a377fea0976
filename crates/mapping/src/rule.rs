//! The rule as written in the configuration: one object per target field.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One field-mapping rule, as written in `[[fields]]` (TOML) or a JSON array.
///
/// Exactly one value source (`from`, `constant` or `expr`; `from` + `expr` is allowed), then
/// the transforms in a fixed order: `default`, `dict`, `regex`, `date`, `multiply`/`divide`,
/// `template`, `reference`, `required`. See the crate docs for each.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The target field.
    pub to: String,
    /// A source field; a dotted path (`dept.name`, `dept_id_list.0`) reaches into objects and
    /// arrays.
    #[serde(default)]
    pub from: Option<String>,
    /// A fixed value (any JSON, `null` included).
    #[serde(default, deserialize_with = "present")]
    pub constant: Option<Value>,
    /// A rhai expression (or script: its last expression is the value).
    #[serde(default)]
    pub expr: Option<String>,
    /// Used when the value is missing, null or "".
    #[serde(default, deserialize_with = "present")]
    pub default: Option<Value>,
    /// Lookup table: the value (as text) → the value to write.
    #[serde(default)]
    pub dict: Option<Map<String, Value>>,
    /// What to do with a value the dictionary does not have (default `keep`).
    #[serde(default)]
    pub dict_fallback: Option<DictFallback>,
    /// A pattern the value must match (unanchored: write `^…$` to match the whole value).
    #[serde(default)]
    pub regex: Option<String>,
    /// A date/time conversion.
    #[serde(default)]
    pub date: Option<DateRule>,
    /// Divide the (numeric) value by this, e.g. fen → yuan is `divide = 100`.
    #[serde(default)]
    pub divide: Option<f64>,
    /// Multiply the (numeric) value by this.
    #[serde(default)]
    pub multiply: Option<f64>,
    /// Text with `{value}` placeholders, e.g. `"DT{value}"`.
    #[serde(default)]
    pub template: Option<String>,
    /// Wrap the value as a Kingdee base-data reference `{"<reference>": value}`.
    #[serde(default)]
    pub reference: Option<String>,
    /// An empty result (null or "") fails the record.
    #[serde(default)]
    pub required: bool,
    /// Whether a null result is written as null or left out.
    #[serde(default)]
    pub when_missing: WhenMissing,
}

/// `dict_fallback`: a value the dictionary does not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DictFallback {
    /// Write the value unchanged.
    #[default]
    Keep,
    /// Fail the record.
    Error,
    /// Write null.
    Null,
}

/// `when_missing`: what a null result becomes in the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenMissing {
    /// The field is written as null.
    #[default]
    Null,
    /// The field is left out.
    Omit,
}

/// `date = { from = …, to = …, tz_offset_hours = 8 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRule {
    /// `epoch_ms`, `epoch_s` or a chrono format such as `%Y-%m-%d %H:%M:%S`.
    pub from: String,
    /// `epoch_ms`, `epoch_s` or a chrono format.
    pub to: String,
    /// The zone dates are read and written in when the text carries none (default 8, China).
    #[serde(default = "china_offset")]
    pub tz_offset_hours: f64,
}

fn china_offset() -> f64 {
    8.0
}

/// Every key a rule may have, for the "did you mean" hint.
pub(crate) const RULE_KEYS: &[&str] = &[
    "to",
    "from",
    "constant",
    "expr",
    "default",
    "dict",
    "dict_fallback",
    "regex",
    "date",
    "divide",
    "multiply",
    "template",
    "reference",
    "required",
    "when_missing",
];

/// `Option<Value>` that keeps an explicit `null` as `Some(Null)`: `constant = null` is a
/// value, not an absent key.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
