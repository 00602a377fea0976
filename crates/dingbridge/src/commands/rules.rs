//! `rules test`: run a mapping against sample records, so rules can be tried before a sync
//! writes anything with them.

use std::path::Path;

use engine::config::Lang;
use mapping::Mapping;
use serde_json::{Map, Value};

use super::load_config;
use crate::Failure;
use crate::cli::{RulesCommand, RulesEntity};
use crate::messages::Msg;

pub fn rules(config: &Path, cmd: RulesCommand, lang: Lang) -> Result<(), Failure> {
    match cmd {
        RulesCommand::Test {
            rules,
            flow,
            entity,
            record,
        } => {
            let (source, fields) = match (rules, flow, entity) {
                (Some(file), _, _) => (file.display().to_string(), rules_from_file(&file, lang)?),
                (None, Some(flow), Some(entity)) => rules_from_config(config, &flow, entity, lang)?,
                // clap requires `--rules` or `--flow` with `--entity`.
                _ => {
                    return Err(Failure::input(
                        Msg::Error {
                            detail: "give --rules FILE, or --flow NAME --entity users|departments",
                        }
                        .text(lang),
                    ));
                }
            };
            let mapping = Mapping::from_value(&fields).map_err(|e| {
                Failure::input(
                    Msg::RulesInvalid {
                        source: &source,
                        index: e.index,
                        field: &e.field,
                        reason: &e.reason,
                    }
                    .text(lang),
                )
            })?;
            test(&mapping, &record, lang)
        }
    }
}

/// Map the record(s) and print the results; any failure is exit 2.
fn test(mapping: &Mapping, record_path: &Path, lang: Lang) -> Result<(), Failure> {
    let path = record_path.display().to_string();
    let text = read(record_path, lang)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| json_error(&path, &e, lang))?;
    let invalid = || Failure::input(Msg::RecordsInvalid { path: &path }.text(lang));
    match value {
        Value::Object(record) => match mapping.apply(&record) {
            Ok(out) => {
                println!("{}", pretty(out));
                Ok(())
            }
            Err(e) => Err(Failure::input(
                Msg::RecordFailed {
                    index: None,
                    field: &e.field,
                    reason: &e.reason,
                }
                .text(lang),
            )),
        },
        Value::Array(items) => {
            let records = items
                .into_iter()
                .map(|item| match item {
                    Value::Object(record) => Ok(record),
                    _ => Err(invalid()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut failed = 0;
            for (i, record) in records.iter().enumerate() {
                let index = i + 1;
                match mapping.apply(record) {
                    Ok(out) => {
                        println!("{}", Msg::RecordMapped { index }.text(lang));
                        println!("{}", pretty(out));
                    }
                    Err(e) => {
                        failed += 1;
                        let line = Msg::RecordFailed {
                            index: Some(index),
                            field: &e.field,
                            reason: &e.reason,
                        };
                        println!("{}", line.text(lang));
                    }
                }
            }
            let summary = Msg::RecordsSummary {
                mapped: records.len() - failed,
                failed,
            }
            .text(lang);
            if failed > 0 {
                return Err(Failure::input(summary));
            }
            println!("{summary}");
            Ok(())
        }
        _ => Err(invalid()),
    }
}

fn pretty(out: Map<String, Value>) -> String {
    // Serializing a map of JSON values cannot fail; the fallback keeps this free of unwrap.
    let value = Value::Object(out);
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
}

/// A rules file: TOML with `[[fields]]`, or JSON (an array, or an object with `fields`).
fn rules_from_file(file: &Path, lang: Lang) -> Result<Value, Failure> {
    let path = file.display().to_string();
    let text = read(file, lang)?;
    let is_json = file
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let document = if is_json {
        serde_json::from_str::<Value>(&text).map_err(|e| json_error(&path, &e, lang))?
    } else {
        let table = toml::from_str::<toml::Table>(&text).map_err(|e| {
            let at = match e.span() {
                Some(span) => {
                    let (line, col) = line_col(&text, span.start);
                    format!("{path}:{line}:{col}")
                }
                None => path.clone(),
            };
            let detail = e.message().trim().replace('\n', "; ");
            Failure::input(
                Msg::FileInvalid {
                    path: &at,
                    detail: &detail,
                }
                .text(lang),
            )
        })?;
        toml_to_json(toml::Value::Table(table))
    };
    match document {
        Value::Array(_) => Ok(document),
        Value::Object(mut object) => match object.remove("fields") {
            Some(fields @ Value::Array(_)) => Ok(fields),
            _ => Err(Failure::input(
                Msg::NoRulesInFile { path: &path }.text(lang),
            )),
        },
        _ => Err(Failure::input(
            Msg::NoRulesInFile { path: &path }.text(lang),
        )),
    }
}

/// The `fields` of `[flows.<flow>.options.<entity>]`; returns (where they came from, rules).
fn rules_from_config(
    config: &Path,
    flow: &str,
    entity: RulesEntity,
    lang: Lang,
) -> Result<(String, Value), Failure> {
    let cfg = load_config(config, lang)?;
    let entity = match entity {
        RulesEntity::Users => "users",
        RulesEntity::Departments => "departments",
    };
    let Some(flow_cfg) = cfg.flows.get(flow) else {
        let defined = cfg.flows.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(Failure::input(
            Msg::FlowNotFound {
                flow,
                defined: if defined.is_empty() { "-" } else { &defined },
            }
            .text(lang),
        ));
    };
    let fields = flow_cfg
        .options
        .get(entity)
        .and_then(|options| options.get("fields"))
        .cloned()
        .ok_or_else(|| Failure::input(Msg::FlowHasNoRules { flow, entity }.text(lang)))?;
    let source = format!("{} [flows.{flow}.options.{entity}]", config.display());
    Ok((source, fields))
}

/// A JSON syntax error as `file:line:col` and what is wrong.
fn json_error(path: &str, e: &serde_json::Error, lang: Lang) -> Failure {
    let at = format!("{path}:{}:{}", e.line(), e.column());
    let full = e.to_string();
    // serde_json appends " at line L column C", already in `at`.
    let detail = full.split(" at line ").next().unwrap_or(&full);
    Failure::input(Msg::FileInvalid { path: &at, detail }.text(lang))
}

fn read(path: &Path, lang: Lang) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::input(
            Msg::CannotRead {
                path: &path.display().to_string(),
                detail: &e.to_string(),
            }
            .text(lang),
        )
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// TOML → JSON; dates and times become their text (JSON has no date type).
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}
