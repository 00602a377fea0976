//! Request parameters. Protocol §0: oapi SDKs send scalars as JSON strings (`"dept_id":"1"`)
//! or as numbers, GET calls put them in the query, doc samples form-encode them — so every
//! getter accepts a number or a numeric string, and the body is merged over the query.

use serde_json::{Map, Value};

use super::reply::ApiError;

#[derive(Debug, Clone, Default)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// Query pairs first, then the body (JSON object or form-encoded) on top.
    pub fn parse(query: Option<&str>, body: &[u8]) -> Result<Params, ApiError> {
        let mut map = Map::new();
        if let Some(q) = query {
            for (k, v) in form_pairs(q) {
                if k != "access_token" {
                    map.insert(k, Value::String(v));
                }
            }
        }
        let text = std::str::from_utf8(body).map_err(|_| ApiError::invalid("body", "非UTF-8"))?;
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Object(m)) => map.extend(m),
                _ => return Err(ApiError::invalid("body", "JSON格式错误")),
            }
        } else if !trimmed.is_empty() {
            for (k, v) in form_pairs(trimmed) {
                map.insert(k, Value::String(v));
            }
        }
        Ok(Params(map))
    }

    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// A string (numbers are printed).
    pub fn str_opt(&self, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    pub fn str_req(&self, key: &str) -> Result<String, ApiError> {
        match self.str_opt(key) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::missing(key)),
        }
    }

    pub fn i64_opt(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(key, "不是整数")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid(key, "不是整数")),
            Some(_) => Err(ApiError::invalid(key, "不是整数")),
        }
    }

    pub fn i64_req(&self, key: &str) -> Result<i64, ApiError> {
        self.i64_opt(key)?.ok_or_else(|| ApiError::missing(key))
    }

    pub fn bool_opt(&self, key: &str) -> Option<bool> {
        match self.raw(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => Some(matches!(s.as_str(), "true" | "1" | "TRUE" | "True")),
            Value::Number(n) => Some(n.as_i64() == Some(1)),
            _ => None,
        }
    }

    /// A list given as a JSON array, a JSON array in a string, or a comma string
    /// (`dept_id_list`, `approvers`, `userid_list`).
    pub fn list_opt(&self, key: &str) -> Option<Vec<String>> {
        match self.raw(key)? {
            Value::Array(a) => Some(a.iter().map(scalar_text).collect()),
            Value::String(s) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Vec<Value>>(s) {
                    Ok(a) => Some(a.iter().map(scalar_text).collect()),
                    Err(_) => Some(split_commas(s)),
                }
            }
            Value::String(s) => Some(split_commas(s)),
            Value::Number(n) => Some(vec![n.to_string()]),
            _ => None,
        }
    }

    /// A nested JSON value, possibly sent as a JSON string.
    pub fn json_opt(&self, key: &str) -> Option<Value> {
        match self.raw(key)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            v => Some(v.clone()),
        }
    }
}

pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn split_commas(s: &str) -> Vec<String> {
    s.split([',', '，'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `a=b&c=d` with percent-decoding and `+` as space.
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    urlencoding::decode(&plus)
        .map(|c| c.into_owned())
        .unwrap_or(plus)
}
