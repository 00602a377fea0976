//! Typed identifiers. DingTalk returns many ids either as JSON numbers or as numeric strings
//! (protocol §0 "Types"), so every id deserializes from both; numeric ids serialize as JSON
//! numbers, string ids as strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a raw id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The raw id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::lenient::string(d).map(Self)
            }
        }
    };
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw number.
            pub fn get(self) -> i64 {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        impl From<i64> for $name {
            fn from(n: i64) -> Self {
                Self(n)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::lenient::i64(d).map(Self)
            }
        }
    };
}

string_id!(
    /// Organisation id (`ding…`), protocol §1.1.
    CorpId
);
string_id!(
    /// Per-organisation immutable user id (`userid`), protocol §1.1.
    UserId
);
string_id!(
    /// User id unique across one developer account's apps (`unionid` / `unionId`), §1.1.
    UnionId
);
string_id!(
    /// Approval template code (`process_code` / `processCode`), §3.
    ProcessCode
);
string_id!(
    /// Approval instance id (`process_instance_id` / `instanceId`), §3.
    ProcessInstanceId
);
string_id!(
    /// Client ID = AppKey (internal apps) = SuiteKey (ISV), §1.1.
    ClientId
);
string_id!(
    /// An event id from a callback or a Stream frame (dedupe key, §5).
    EventId
);

int_id!(
    /// Department id; the root department is [`DeptId::ROOT`] (1), protocol §2.
    DeptId
);
int_id!(
    /// An app's capability id, needed by work notifications (§1.1, §4.1).
    AgentId
);
int_id!(
    /// Approval task id (oapi `taskid`, v1.0 `taskId` Long), §3.
    TaskId
);
int_id!(
    /// Asynchronous work-notification task id (`task_id`), §4.1.
    MessageTaskId
);

impl DeptId {
    /// The root department of every organisation.
    pub const ROOT: DeptId = DeptId(1);
}
