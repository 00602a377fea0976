//! Field-mapping rules: how one source record (a DingTalk user or department, as a JSON
//! object) becomes one target record (a Kingdee `BD_Empinfo`, an eHR body, a SQL row).
//!
//! This crate owns the rule format ([`FieldRule`]), its compilation ([`Mapping::compile`],
//! which rejects every mistake up front with the rule's index, target field and a fix), and
//! its application ([`Mapping::apply`]), which never panics and fails one record, naming the
//! field, rather than a batch. Common cases are native operations; the rest is a rhai
//! expression run in a sandbox (standard library only, no `eval`/`import`/print, limits on
//! operations, sizes and depth).
//!
//! A rule (one object per target field, applied in rule order):
//!
//! * `to` (required): the target field.
//! * one value source: `from` (a source field; `a.b.0` reaches into objects and arrays),
//!   `constant` (any JSON) or `expr` (rhai; every top-level field whose name is an identifier
//!   is a variable, the whole record is `record`). `from` + `expr`: the expression sees the
//!   `from` value as `value`.
//! * transforms, always in this order: `default` (for missing/null/""), `dict` +
//!   `dict_fallback` (`keep`|`error`|`null`), `regex` (must match), `date`
//!   (`{from, to, tz_offset_hours = 8}`, ends `epoch_ms`|`epoch_s`|chrono format),
//!   `multiply`/`divide`, `template` (`{value}`), `reference` (`{"FNumber": value}`),
//!   `required`. An empty value (null or "") passes `dict` … `reference` unchanged:
//!   `default` fills it and `required` rejects it.
//! * `when_missing = "null"|"omit"`: whether a null result is written or left out.

mod expr;
mod ops;
mod rule;

use std::collections::HashMap;
use std::sync::Arc;

use rhai::{AST, Engine, Scope};
use serde_json::{Map, Value};

pub use expr::MAX_OPERATIONS;
pub use rule::{DateRule, DictFallback, FieldRule, WhenMissing};

use ops::{DateOp, Dict, Path, Scale};

/// A rule set that does not compile. `index` is the rule's 0-based position in the array;
/// the message counts from 1, as a person reading the file does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct CompileError {
    pub index: usize,
    /// The rule's `to` ("" when the rule has none).
    pub field: String,
    pub reason: String,
}

impl CompileError {
    fn render(&self) -> String {
        if self.field.is_empty() {
            format!("rule #{}: {}", self.index + 1, self.reason)
        } else {
            format!(
                "rule #{} (`{}`): {}",
                self.index + 1,
                self.field,
                self.reason
            )
        }
    }
}

/// One record that could not be mapped: the target field whose rule failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct MappingError {
    pub field: String,
    pub reason: String,
}

/// A compiled rule set: regexes, date formats and rhai ASTs are built once here and shared
/// by every record (and every clone: the engine and ASTs are immutable).
#[derive(Debug, Clone)]
pub struct Mapping {
    rules: Vec<CompiledRule>,
    engine: Arc<Engine>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    to: String,
    source: Source,
    default: Option<Value>,
    dict: Option<Dict>,
    regex: Option<regex::Regex>,
    date: Option<DateOp>,
    scale: Option<Scale>,
    template: Option<String>,
    reference: Option<String>,
    required: bool,
    when_missing: WhenMissing,
}

#[derive(Debug, Clone)]
enum Source {
    From(Path),
    Constant(Value),
    /// The expression, and the `from` path whose value it sees as `value`.
    Expr(Box<AST>, Option<Path>),
}

impl Mapping {
    /// Compile a JSON array of rule objects (e.g. a TOML `[[fields]]` array turned into JSON).
    pub fn from_value(rules: &Value) -> Result<Mapping, CompileError> {
        let Value::Array(items) = rules else {
            return Err(CompileError {
                index: 0,
                field: String::new(),
                reason:
                    "the rules must be an array of tables: `[[fields]]` in TOML, `[{…}, …]` in JSON"
                        .into(),
            });
        };
        let parsed = items
            .iter()
            .enumerate()
            .map(|(index, item)| parse_rule(index, item))
            .collect::<Result<Vec<_>, _>>()?;
        Mapping::compile(parsed)
    }

    /// Compile rules; the first mistake is the error.
    pub fn compile(rules: Vec<FieldRule>) -> Result<Mapping, CompileError> {
        let engine = expr::sandboxed_engine();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            let fail = |reason: String| CompileError {
                index,
                field: rule.to.clone(),
                reason,
            };
            if rule.to.is_empty() {
                return Err(fail(
                    "`to` is empty; name the target field, e.g. to = \"FName\"".into(),
                ));
            }
            if let Some(first) = seen.insert(rule.to.clone(), index) {
                return Err(fail(format!(
                    "`{}` is already mapped by rule #{}; map each target field once",
                    rule.to,
                    first + 1
                )));
            }
            compiled.push(compile_rule(&engine, &rule).map_err(fail)?);
        }
        Ok(Mapping {
            rules: compiled,
            engine: Arc::new(engine),
        })
    }

    /// Map one record. Fields come out in rule order; the first rule that fails is the error.
    pub fn apply(&self, source: &Map<String, Value>) -> Result<Map<String, Value>, MappingError> {
        let mut out = Map::with_capacity(self.rules.len());
        // Built on the first expression only: most mappings have none.
        let mut scope: Option<Scope<'static>> = None;
        for rule in &self.rules {
            let value = self
                .apply_rule(rule, source, &mut scope)
                .map_err(|reason| MappingError {
                    field: rule.to.clone(),
                    reason,
                })?;
            if value.is_null() && rule.when_missing == WhenMissing::Omit {
                continue;
            }
            out.insert(rule.to.clone(), value);
        }
        Ok(out)
    }

    /// The target field names, in rule order.
    pub fn target_fields(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.to.clone()).collect()
    }

    fn apply_rule(
        &self,
        rule: &CompiledRule,
        source: &Map<String, Value>,
        scope: &mut Option<Scope<'static>>,
    ) -> Result<Value, String> {
        let mut value = match &rule.source {
            Source::From(path) => path.lookup(source).cloned().unwrap_or(Value::Null),
            Source::Constant(v) => v.clone(),
            Source::Expr(ast, from) => {
                let input = from
                    .as_ref()
                    .map(|p| p.lookup(source).cloned().unwrap_or(Value::Null));
                let base = scope.get_or_insert_with(|| expr::record_scope(source));
                expr::eval(&self.engine, ast, base, input.as_ref())?
            }
        };
        if let Some(default) = &rule.default
            && ops::is_empty(&value)
        {
            value = default.clone();
        }
        // An empty value has nothing to look up, check, convert or wrap.
        if let Some(dict) = &rule.dict
            && !ops::is_empty(&value)
        {
            value = dict.apply(value)?;
        }
        if !ops::is_empty(&value) {
            if let Some(pattern) = &rule.regex {
                ops::check_regex(pattern, &value)?;
            }
            if let Some(date) = &rule.date {
                value = date.apply(&value)?;
            }
            if let Some(scale) = &rule.scale {
                value = scale.apply(&value)?;
            }
            if let Some(template) = &rule.template {
                value = ops::fill_template(template, &value)?;
            }
            if let Some(key) = &rule.reference {
                let mut wrapped = Map::with_capacity(1);
                wrapped.insert(key.clone(), value);
                value = Value::Object(wrapped);
            }
        }
        if rule.required && ops::is_empty(&value) {
            return Err(
                "is required but empty; map it from a field that has a value or set `default`"
                    .into(),
            );
        }
        Ok(value)
    }
}

/// One rule object → [`FieldRule`], with messages that name the key at fault.
fn parse_rule(index: usize, item: &Value) -> Result<FieldRule, CompileError> {
    let Value::Object(object) = item else {
        return Err(CompileError {
            index,
            field: String::new(),
            reason: format!(
                "a rule must be a table with `to` and one of `from`, `constant`, `expr`, not {}",
                ops::show(item)
            ),
        });
    };
    let to = object
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fail = |reason: String| CompileError {
        index,
        field: to.clone(),
        reason,
    };
    if !object.contains_key("to") {
        return Err(fail(
            "`to` is missing; every rule names its target field, e.g. to = \"FName\"".into(),
        ));
    }
    for key in object.keys() {
        if !rule::RULE_KEYS.contains(&key.as_str()) {
            let hint = closest_key(key)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            return Err(fail(format!(
                "unknown key `{key}`; {hint}allowed: {}",
                rule::RULE_KEYS.join(", ")
            )));
        }
    }
    serde_json::from_value::<FieldRule>(item.clone()).map_err(|whole| {
        // serde's message does not say which key; try each alone (every key but `to` is
        // optional) to find it.
        let culprit = object.iter().find_map(|(key, value)| {
            let mut alone = Map::new();
            alone.insert("to".into(), Value::String(to.clone()));
            alone.insert(key.clone(), value.clone());
            serde_json::from_value::<FieldRule>(Value::Object(alone))
                .err()
                .map(|e| (key.clone(), e))
        });
        match culprit {
            Some((key, e)) => fail(format!("`{key}`: {e}")),
            None => fail(whole.to_string()),
        }
    })
}

/// The allowed key a typo most likely meant (edit distance ≤ 2).
fn closest_key(key: &str) -> Option<&'static str> {
    rule::RULE_KEYS
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

fn compile_rule(engine: &Engine, rule: &FieldRule) -> Result<CompiledRule, String> {
    let from = rule.from.as_deref().map(Path::parse).transpose()?;
    let source = match (from, &rule.constant, &rule.expr) {
        (_, Some(_), Some(_)) => {
            return Err("`constant` and `expr` are both set; keep one".into());
        }
        (Some(_), Some(_), None) => {
            return Err("`from` and `constant` are both set; keep one".into());
        }
        (from, None, Some(source)) => {
            let ast = expr::compile(engine, source)
                .map_err(|e| format!("`expr` does not compile: {e}; check the rhai syntax"))?;
            Source::Expr(Box::new(ast), from)
        }
        (Some(path), None, None) => Source::From(path),
        (None, Some(value), None) => Source::Constant(value.clone()),
        (None, None, None) => {
            return Err(
                "no value source; set one of `from` (a source field), `constant` or `expr`".into(),
            );
        }
    };
    let dict = match (&rule.dict, rule.dict_fallback) {
        (Some(entries), fallback) => Some(Dict {
            entries: entries.clone(),
            fallback: fallback.unwrap_or_default(),
        }),
        (None, Some(_)) => {
            return Err("`dict_fallback` is set without `dict`; add `dict` or remove it".into());
        }
        (None, None) => None,
    };
    let regex = rule
        .regex
        .as_deref()
        .map(|pattern| {
            regex::Regex::new(pattern).map_err(|e| {
                // regex's message draws the pattern over several lines; its last line says what is wrong.
                let full = e.to_string();
                let what = full
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix("error:"))
                    .map_or_else(|| expr::one_line(&full), |l| l.trim().to_owned());
                format!(
                    "`regex` `{pattern}` is not a valid pattern ({what}); in TOML write patterns in 'single quotes' so backslashes stay as they are"
                )
            })
        })
        .transpose()?;
    let date = rule.date.as_ref().map(DateOp::compile).transpose()?;
    let scale = match (rule.multiply, rule.divide) {
        (None, None) => None,
        (multiply, divide) => {
            let multiply = multiply.unwrap_or(1.0);
            let divide = divide.unwrap_or(1.0);
            if divide == 0.0 || !divide.is_finite() || !multiply.is_finite() {
                return Err(
                    "`divide` must be a number other than 0 and `multiply` a finite number; e.g. divide = 100 turns fen into yuan".into(),
                );
            }
            Some(Scale { multiply, divide })
        }
    };
    if let Some(template) = &rule.template
        && !template.contains("{value}")
    {
        return Err(format!(
            "`template` \"{template}\" has no `{{value}}`; write e.g. \"DT{{value}}\", or use `constant` for fixed text"
        ));
    }
    if rule.reference.as_deref() == Some("") {
        return Err(
            "`reference` is empty; name the key of the base-data reference, e.g. reference = \"FNumber\"".into(),
        );
    }
    Ok(CompiledRule {
        to: rule.to.clone(),
        source,
        default: rule.default.clone(),
        dict,
        regex,
        date,
        scale,
        template: rule.template.clone(),
        reference: rule.reference.clone(),
        required: rule.required,
        when_missing: rule.when_missing,
    })
}
