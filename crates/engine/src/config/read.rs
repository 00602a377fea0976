//! Walks the spanned TOML tree with precise, one-line errors, expanding `${ENV}` in strings.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrorKind, EnvSyntax, Expected, Format, Location};

pub(super) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// The text being read, for positions and errors.
pub(super) struct Ctx<'t, 'e> {
    pub source: &'t str,
    pub text: &'t str,
    pub env: Env<'e>,
}

impl Ctx<'_, '_> {
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Location { line, column }
    }

    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        kind: ConfigErrorKind,
    ) -> ConfigError {
        ConfigError {
            source_name: self.source.to_owned(),
            location: span.map(|s| self.location(s.start)),
            key: (!key.is_empty()).then(|| key.to_owned()),
            kind: Box::new(kind),
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "float",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "datetime",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "table",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Expands `${NAME}` from the environment; `$${` stands for a literal `${`.
pub(super) fn expand(s: &str, env: Env<'_>) -> std::result::Result<String, ConfigErrorKind> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(ConfigErrorKind::BadEnvSyntax(EnvSyntax::Unterminated));
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigErrorKind::BadEnvSyntax(EnvSyntax::BadName(
                    name.to_owned(),
                )));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(ConfigErrorKind::UnsetEnv {
                        var: name.to_owned(),
                    });
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// A string value with where it came from.
pub(super) struct Str {
    pub value: String,
    pub span: Range<usize>,
    pub path: String,
}

/// A table being read; `path` is its dotted key path ("" for the document).
pub(super) struct Table<'a, 'i, 'c, 't, 'e> {
    pub ctx: &'c Ctx<'t, 'e>,
    pub path: String,
    pub span: Range<usize>,
    pub table: &'a DeTable<'i>,
}

impl<'a, 'i, 'c, 't, 'e> Table<'a, 'i, 'c, 't, 'e> {
    pub fn new(
        ctx: &'c Ctx<'t, 'e>,
        path: String,
        span: Range<usize>,
        table: &'a DeTable<'i>,
    ) -> Self {
        Self {
            ctx,
            path,
            span,
            table,
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn err(&self, span: Option<Range<usize>>, key: &str, kind: ConfigErrorKind) -> ConfigError {
        self.ctx.error(span, &self.key_path(key), kind)
    }

    /// Rejects keys outside `allowed`.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                return Err(self.ctx.error(
                    Some(key.span()),
                    &self.key_path(name),
                    ConfigErrorKind::UnknownKey {
                        key: name.to_owned(),
                        table: self.path.clone(),
                        allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
                        suggestion: suggest(name, allowed.iter().copied()),
                    },
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'_>>, expected: Expected) -> ConfigError {
        self.err(
            Some(v.span()),
            key,
            ConfigErrorKind::WrongType {
                expected,
                found: type_name(v.get_ref()),
            },
        )
    }

    pub fn missing(&self, key: &str, example: &str) -> ConfigError {
        self.err(
            Some(self.span.clone()),
            key,
            ConfigErrorKind::MissingKey {
                key: key.to_owned(),
                table: self.path.clone(),
                example: example.to_owned(),
            },
        )
    }

    /// A string, `${ENV}` expanded.
    pub fn string(&self, key: &str) -> Result<Option<Str>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::String(s) = v.get_ref() else {
            return Err(self.wrong_type(key, v, Expected::String));
        };
        let path = self.key_path(key);
        let value =
            expand(s, self.ctx.env).map_err(|k| self.ctx.error(Some(v.span()), &path, k))?;
        Ok(Some(Str {
            value,
            span: v.span(),
            path,
        }))
    }

    pub fn req_string(&self, key: &str, example: &str) -> Result<Str> {
        self.string(key)?.ok_or_else(|| self.missing(key, example))
    }

    /// An integer within `min..=max`.
    pub fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Integer(i) = v.get_ref() else {
            return Err(self.wrong_type(key, v, Expected::Integer));
        };
        let parsed = int_value(i.as_str(), i.radix());
        let out_of_range = || {
            self.err(
                Some(v.span()),
                key,
                ConfigErrorKind::OutOfRange {
                    value: i.as_str().to_owned(),
                    requirement: if max == i64::MAX {
                        format!(">= {min}")
                    } else {
                        format!("{min}..={max}")
                    },
                },
            )
        };
        match parsed {
            Some(n) if n >= i128::from(min) && n <= i128::from(max) => {
                i64::try_from(n).map(Some).map_err(|_| out_of_range())
            }
            _ => Err(out_of_range()),
        }
    }

    pub fn uint<T: TryFrom<i64>>(&self, key: &str, min: i64, max: i64) -> Result<Option<T>> {
        match self.integer(key, min, max)? {
            None => Ok(None),
            Some(n) => T::try_from(n).map(Some).map_err(|_| {
                self.err(
                    self.get(key).map(|v| v.span()),
                    key,
                    ConfigErrorKind::OutOfRange {
                        value: n.to_string(),
                        requirement: format!("{min}..={max}"),
                    },
                )
            }),
        }
    }

    /// A number (integer or float), finite.
    pub fn number(&self, key: &str) -> Result<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let text = match v.get_ref() {
            DeValue::Integer(_) => {
                return Ok(self.integer(key, i64::MIN, i64::MAX)?.map(|n| n as f64));
            }
            DeValue::Float(f) => f.as_str().replace('_', ""),
            _ => return Err(self.wrong_type(key, v, Expected::Number)),
        };
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(self.err(
                Some(v.span()),
                key,
                ConfigErrorKind::OutOfRange {
                    value: text,
                    requirement: "a finite number".to_owned(),
                },
            )),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            _ => Err(self.wrong_type(key, v, Expected::Boolean)),
        }
    }

    /// One of `allowed` (a string); returns its index.
    pub fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<usize>> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        match allowed.iter().position(|a| *a == s.value) {
            Some(i) => Ok(Some(i)),
            None => Err(self.ctx.error(
                Some(s.span),
                &s.path,
                ConfigErrorKind::BadValue {
                    value: s.value,
                    allowed: allowed.iter().map(|a| (*a).to_owned()).collect(),
                },
            )),
        }
    }

    /// An array of strings, each `${ENV}` expanded; paths are `key[i]`.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<Str>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(key, v, Expected::Array));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key_path(key));
            let DeValue::String(s) = item.get_ref() else {
                return Err(self.ctx.error(
                    Some(item.span()),
                    &path,
                    ConfigErrorKind::WrongType {
                        expected: Expected::String,
                        found: type_name(item.get_ref()),
                    },
                ));
            };
            let value =
                expand(s, self.ctx.env).map_err(|k| self.ctx.error(Some(item.span()), &path, k))?;
            out.push(Str {
                value,
                span: item.span(),
                path,
            });
        }
        Ok(Some(out))
    }

    /// A sub-table.
    pub fn table(&self, key: &str) -> Result<Option<Table<'a, 'i, 'c, 't, 'e>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => Ok(Some(Table::new(self.ctx, self.key_path(key), v.span(), t))),
            _ => Err(self.wrong_type(key, v, Expected::Table)),
        }
    }

    /// Every entry as a sub-table (for `[connections.<name>]`, `[flows.<name>]`, …).
    pub fn tables(&self) -> Result<Vec<(String, Range<usize>, Table<'a, 'i, 'c, 't, 'e>)>> {
        let mut out = Vec::new();
        for (key, value) in self.table.iter() {
            let name: &str = key.get_ref();
            match value.get_ref() {
                DeValue::Table(t) => out.push((
                    name.to_owned(),
                    key.span(),
                    Table::new(self.ctx, self.key_path(name), value.span(), t),
                )),
                _ => return Err(self.wrong_type(name, value, Expected::Table)),
            }
        }
        Ok(out)
    }

    /// A free-form value as JSON (strings `${ENV}` expanded).
    pub fn json(&self, key: &str) -> Result<Option<serde_json::Value>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => to_json(self.ctx, &self.key_path(key), v).map(Some),
        }
    }
}

fn to_json(ctx: &Ctx<'_, '_>, path: &str, v: &Spanned<DeValue<'_>>) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match v.get_ref() {
        DeValue::String(s) => {
            J::String(expand(s, ctx.env).map_err(|k| ctx.error(Some(v.span()), path, k))?)
        }
        DeValue::Integer(i) => {
            match int_value(i.as_str(), i.radix()).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => J::from(n),
                None => {
                    return Err(ctx.error(
                        Some(v.span()),
                        path,
                        ConfigErrorKind::OutOfRange {
                            value: i.as_str().to_owned(),
                            requirement: format!("{}..={}", i64::MIN, i64::MAX),
                        },
                    ));
                }
            }
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            match text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => J::Number(n),
                None => {
                    return Err(ctx.error(
                        Some(v.span()),
                        path,
                        ConfigErrorKind::OutOfRange {
                            value: text,
                            requirement: "a finite number".to_owned(),
                        },
                    ));
                }
            }
        }
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(ctx, &format!("{path}[{i}]"), item))
                .collect::<Result<_>>()?,
        ),
        DeValue::Table(t) => {
            let mut map = serde_json::Map::new();
            for (k, item) in t.iter() {
                let name: &str = k.get_ref();
                map.insert(name.to_owned(), to_json(ctx, &join(path, name), item)?);
            }
            J::Object(map)
        }
    })
}

/// Parses `1s`, `250ms`, `2m`, `1h30m`, `1d`.
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

pub(super) fn bad_format(
    ctx: &Ctx<'_, '_>,
    s: &Str,
    format: Format,
    show_value: bool,
) -> ConfigError {
    ctx.error(
        Some(s.span.clone()),
        &s.path,
        ConfigErrorKind::BadFormat {
            value: if show_value {
                s.value.clone()
            } else {
                "…".to_owned()
            },
            format,
        },
    )
}

/// The value of a TOML integer literal (`1_000`, `-5`, `0x1F`, `0o17`, `0b101`).
fn int_value(text: &str, radix: u32) -> Option<i128> {
    let digits = text.replace('_', "");
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits.strip_prefix('+').unwrap_or(&digits)),
    };
    let digits = if radix == 10 {
        digits
    } else {
        ["0x", "0o", "0b", "0X", "0O", "0B"]
            .iter()
            .find_map(|p| digits.strip_prefix(p))
            .unwrap_or(digits)
    };
    let n = i128::from_str_radix(digits, radix).ok()?;
    Some(if neg { -n } else { n })
}
