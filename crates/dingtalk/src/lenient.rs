//! Tolerant deserializers: oapi docs print numbers and booleans as strings in many examples
//! while the models say Number/Boolean (protocol §0 "Types"); accept either.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn value_to_i64<E: serde::de::Error>(v: &Value) -> Result<i64, E> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| E::custom(format!("not an integer: {n}"))),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| E::custom(format!("not an integer: {s:?}"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(E::custom(format!("expected an integer, got {other}"))),
    }
}

fn value_to_bool<E: serde::de::Error>(v: &Value) -> Result<bool, E> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_i64().unwrap_or(0) != 0),
        Value::String(s) => match s.trim() {
            "true" | "TRUE" | "True" | "1" => Ok(true),
            "false" | "FALSE" | "False" | "0" | "" => Ok(false),
            other => Err(E::custom(format!("not a boolean: {other:?}"))),
        },
        Value::Null => Ok(false),
        other => Err(E::custom(format!("expected a boolean, got {other}"))),
    }
}

fn value_to_string<E: serde::de::Error>(v: Value) -> Result<String, E> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(E::custom(format!("expected a string, got {other}"))),
    }
}

/// An integer from a number or a numeric string.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_i64(&v)
}

/// An optional integer; `null` and `""` are `None`.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        _ => value_to_i64(&v).map(Some),
    }
}

/// A boolean from `true`/`"true"`/`1`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_bool(&v)
}

/// An optional boolean.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        _ => value_to_bool(&v).map(Some),
    }
}

/// A string from a string or a number.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    value_to_string(Value::deserialize(d)?)
}

/// An optional string (from a string or a number); `null` is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => value_to_string(v).map(Some),
    }
}

/// A list of integers whose items may be numbers or numeric strings; `null` is empty.
pub fn vec_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(value_to_i64).collect(),
        // Some endpoints send comma-separated strings.
        Value::String(s) => s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse::<i64>()
                    .map_err(|_| D::Error::custom(format!("not an integer: {p:?}")))
            })
            .collect(),
        other => Err(D::Error::custom(format!("expected a list, got {other}"))),
    }
}

/// A list of strings; `null` is empty, a comma-separated string is split.
pub fn vec_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.into_iter().map(value_to_string).collect(),
        Value::String(s) => Ok(s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().to_owned())
            .collect()),
        other => Err(D::Error::custom(format!("expected a list, got {other}"))),
    }
}

/// Any value that is `null` becomes `T::default()`.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Read an integer out of a JSON value (number or numeric string).
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    value_to_i64::<serde_json::Error>(v).ok()
}

/// Read a string out of a JSON value (string or number).
pub(crate) fn as_string(v: &Value) -> Option<String> {
    value_to_string::<serde_json::Error>(v.clone()).ok()
}
