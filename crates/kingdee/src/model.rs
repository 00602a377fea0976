//! The `Model` of Save/BatchSave/Draft: a JSON object that keeps the caller's field order
//! (serde_json `preserve_order`; DESIGN §6 "keep `Model` field order as written"), with helpers
//! for base-data references `{"FNumber":"…"}` and entry rows (protocol §2.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{EntityId, FNumber};

/// A record to save. Header fields are written directly, sub-header entities as objects, entry
/// entities as arrays of rows; references are objects such as `{"FNumber":"100"}`. [MANUAL] (§2.2)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Model(Map<String, Value>);

/// `{"FNumber": number}`: the common base-data reference.
pub fn number_ref(number: &FNumber) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(
        "FNumber".to_owned(),
        Value::String(number.as_str().to_owned()),
    );
    Value::Object(m)
}

/// `{"FSTAFFNUMBER": number}`: the employee reference some forms take instead (§3).
pub fn staff_ref(number: &FNumber) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(
        "FSTAFFNUMBER".to_owned(),
        Value::String(number.as_str().to_owned()),
    );
    Value::Object(m)
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a field. A new key goes last; an existing key keeps its place.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets a field in place (for loops).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets a base-data reference `{"FNumber": number}`.
    pub fn reference(self, key: impl Into<String>, number: impl Into<FNumber>) -> Self {
        let value = number_ref(&number.into());
        self.field(key, value)
    }

    /// Sets the primary key (`FID` or `FEntryID` for rows) so Save updates instead of creating.
    pub fn id(self, key: impl Into<String>, id: &EntityId) -> Self {
        let value = id
            .as_i64()
            .map_or_else(|| Value::String(id.as_str().to_owned()), Value::from);
        self.field(key, value)
    }

    /// Sets an entry entity (`"FEntity":[…]`).
    pub fn entry(self, key: impl Into<String>, rows: impl IntoIterator<Item = Model>) -> Self {
        let rows: Vec<Value> = rows.into_iter().map(Model::into_value).collect();
        self.field(key, Value::Array(rows))
    }

    /// Sets a sub-header entity (`"SubHeadEntity":{…}`).
    pub fn sub_head(self, key: impl Into<String>, model: Model) -> Self {
        self.field(key, model.into_value())
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Field keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The underlying map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl From<Map<String, Value>> for Model {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

impl From<Model> for Value {
    fn from(m: Model) -> Self {
        m.into_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_order_and_chinese_text() {
        let m = Model::new()
            .field("FName", "研发部")
            .reference("FParentID", "BM0001")
            .field("FNumber", "BM0002")
            .field("FDescription", "部门 名称")
            .entry(
                "FEntity",
                [Model::new()
                    .reference("FExpID", "FYXM01")
                    .field("FExpenseAmount", 128.5)],
            );
        let text = serde_json::to_string(&m).expect("serialise");
        assert_eq!(
            text,
            r#"{"FName":"研发部","FParentID":{"FNumber":"BM0001"},"FNumber":"BM0002","FDescription":"部门 名称","FEntity":[{"FExpID":{"FNumber":"FYXM01"},"FExpenseAmount":128.5}]}"#
        );
        let back: Model = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, m);
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            ["FName", "FParentID", "FNumber", "FDescription", "FEntity"]
        );
    }

    #[test]
    fn overwrite_keeps_position_and_ids_are_numeric() {
        let mut m = Model::new().field("FA", 1).field("FB", 2);
        m.set("FA", "张伟");
        let m = m
            .id("FID", &EntityId::new("100123"))
            .id("FX", &EntityId::new("a-1"));
        assert_eq!(
            serde_json::to_string(&m).expect("serialise"),
            r#"{"FA":"张伟","FB":2,"FID":100123,"FX":"a-1"}"#
        );
        assert_eq!(
            staff_ref(&FNumber::new("E001")),
            serde_json::json!({"FSTAFFNUMBER":"E001"})
        );
    }

    proptest! {
        #[test]
        fn any_key_order_survives_a_round_trip(keys in proptest::collection::vec("[A-Za-z_\u{4e00}-\u{4e0f}]{1,8}", 1..20)) {
            let mut m = Model::new();
            let mut expected: Vec<String> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if !expected.contains(k) { expected.push(k.clone()); }
                m.set(k.clone(), i);
            }
            let text = serde_json::to_string(&m).expect("serialise");
            let back: Model = serde_json::from_str(&text).expect("parse");
            prop_assert_eq!(back.keys().map(str::to_owned).collect::<Vec<_>>(), expected);
        }
    }
}
