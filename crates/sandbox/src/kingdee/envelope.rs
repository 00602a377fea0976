//! The response envelope of protocol §2.3:
//! `{"Result":{"ResponseStatus":{ErrorCode, IsSuccess, Errors[{FieldName,Message,DIndex}],
//! SuccessEntitys[{Id,Number,DIndex}], SuccessMessages, MsgCode}, …}}`, and the
//! `[[{"Result":…}]]` wrapping of query errors.

use serde_json::{Map, Value, json};

/// MsgCode values of protocol §2.3 (manual §6 常见错误代码).
pub mod msg {
    pub const DEFAULT: u8 = 0;
    pub const SESSION_LOST: u8 = 1;
    pub const NO_PERMISSION: u8 = 2;
    pub const OP_KEY_EMPTY: u8 = 3;
    pub const EXCEPTION: u8 = 4;
    pub const FORM_KEY_EMPTY: u8 = 5;
    pub const PARAMETER: u8 = 8;
    pub const NOT_FOUND: u8 = 9;
    pub const NO_DATA: u8 = 10;
    pub const VALIDATION: u8 = 11;
    pub const NOT_ALLOWED: u8 = 12;
    pub const CALL_LIMIT: u8 = 14;
}

/// The lost-session message seen in community fixtures (protocol §1.8).
pub const SESSION_LOST_MESSAGE: &str = "会话信息已丢失，请重新登录";

#[derive(Debug, Clone, PartialEq)]
pub struct KdError {
    pub field: Option<String>,
    pub message: String,
    pub dindex: usize,
    pub code: u8,
}

impl KdError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        KdError {
            field: None,
            message: message.into(),
            dindex: 0,
            code,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn at(mut self, dindex: usize) -> Self {
        self.dindex = dindex;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SuccessEntity {
    pub id: i64,
    pub number: String,
    pub dindex: usize,
}

/// The outcome of one operation, turned into `ResponseStatus`.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub errors: Vec<KdError>,
    pub success: Vec<SuccessEntity>,
}

impl Outcome {
    pub fn fail(error: KdError) -> Self {
        Outcome {
            errors: vec![error],
            success: Vec::new(),
        }
    }

    pub fn is_success(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn msg_code(&self) -> u8 {
        self.errors.first().map_or(msg::DEFAULT, |e| e.code)
    }

    pub fn response_status(&self) -> Value {
        let ok = self.is_success();
        json!({
            "ErrorCode": if ok { 0 } else { 500 },
            "IsSuccess": ok,
            "Errors": self.errors.iter().map(|e| json!({
                "FieldName": e.field,
                "Message": e.message,
                "DIndex": e.dindex,
            })).collect::<Vec<_>>(),
            "SuccessEntitys": self.success.iter().map(|s| json!({
                "Id": s.id,
                "Number": s.number,
                "DIndex": s.dindex,
            })).collect::<Vec<_>>(),
            "SuccessMessages": [],
            "MsgCode": self.msg_code(),
        })
    }

    /// `{"Result":{"ResponseStatus":…, <extra>}}`.
    pub fn envelope(&self, extra: Map<String, Value>) -> Value {
        let mut result = Map::new();
        result.insert("ResponseStatus".into(), self.response_status());
        result.extend(extra);
        json!({ "Result": result })
    }
}

pub fn error_envelope(error: KdError) -> Value {
    Outcome::fail(error).envelope(Map::new())
}

/// ExecuteBillQuery / BillQuery errors: `[[{"Result":{"ResponseStatus":{…}}}]]` (§2.3).
pub fn query_error(error: KdError) -> Value {
    json!([[error_envelope(error)]])
}
