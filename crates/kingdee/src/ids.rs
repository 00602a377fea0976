//! Typed identifiers, so a Kingdee form id, bill number, base-data number or primary key can never
//! be passed where another (or a DingTalk id) belongs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value as given.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Unwraps the value.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A business-object (form) id such as `BD_Department`, `BD_Empinfo`, `ER_ExpReimbursement`,
    /// `GL_VOUCHER` (protocol §3).
    FormId
);
string_id!(
    /// A bill number (`FBillNo`, returned as `Number` in `SuccessEntitys`), e.g. `FYBXD000123`.
    BillNo
);
string_id!(
    /// A base-data number (`FNumber`) used in references such as `{"FNumber":"BM0001"}`.
    FNumber
);

/// A record's internal primary key (`FID`, `Id` in `SuccessEntitys`). The server sends it as a
/// number for most forms and as a string for some (protocol §2.3), so it is kept as text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    /// Wraps a value as given.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The id as a number, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({:?})", self.0)
    }
}

impl From<i64> for EntityId {
    fn from(value: i64) -> Self {
        Self(value.to_string())
    }
}

impl From<&str> for EntityId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for EntityId {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or number id, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_id_accepts_numbers_and_strings() {
        let n: EntityId = serde_json::from_str("100123").expect("number");
        let s: EntityId = serde_json::from_str("\"abc-1\"").expect("string");
        assert_eq!(n.as_i64(), Some(100123));
        assert_eq!(s.as_str(), "abc-1");
        assert!(serde_json::from_str::<EntityId>("null").is_err());
    }

    #[test]
    fn ids_are_transparent_and_keep_chinese() {
        let f = FNumber::new("部门001");
        let text = serde_json::to_string(&f).expect("serialise");
        assert_eq!(text, "\"部门001\"");
        let back: FNumber = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, f);
        assert_eq!(FormId::from("BD_Department").to_string(), "BD_Department");
        assert_eq!(format!("{:?}", BillNo::new("FYBXD1")), "BillNo(\"FYBXD1\")");
    }
}
