//! The response envelope (protocol §2.3) and the login result (§1.3), parsed leniently: a server
//! may leave out any key, send numbers as strings, or send `null` for lists.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::KingdeeError;
use crate::ids::{BillNo, EntityId};

/// `ResponseStatus.MsgCode`. [MANUAL §6 常见错误代码] (§2.3)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MsgCode {
    /// 0: default.
    #[default]
    Default,
    /// 1: context lost / 会话信息已丢失 — log in again.
    SessionLost,
    /// 2: no permission.
    NoPermission,
    /// 3: operation key empty.
    OperationKeyEmpty,
    /// 4: exception.
    Exception,
    /// 5: form key empty.
    FormKeyEmpty,
    /// 6: database operation failed.
    DatabaseFailed,
    /// 7: licence error.
    LicenceError,
    /// 8: parameter error.
    ParameterError,
    /// 9: field or value not found (e.g. a base-data reference `{"FNumber":…}` that does not exist).
    NotFound,
    /// 10: no matching data.
    NoMatchingData,
    /// 11: validation failed (duplicates surface here as a message).
    ValidationFailed,
    /// 12: not allowed.
    NotAllowed,
    /// 13: network-control conflict (another user holds the record).
    NetworkControlConflict,
    /// 14: call limit.
    CallLimit,
    /// 15: administrator login forbidden.
    AdminLoginForbidden,
    /// Any other code.
    Other(i64),
}

impl MsgCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            MsgCode::Default => 0,
            MsgCode::SessionLost => 1,
            MsgCode::NoPermission => 2,
            MsgCode::OperationKeyEmpty => 3,
            MsgCode::Exception => 4,
            MsgCode::FormKeyEmpty => 5,
            MsgCode::DatabaseFailed => 6,
            MsgCode::LicenceError => 7,
            MsgCode::ParameterError => 8,
            MsgCode::NotFound => 9,
            MsgCode::NoMatchingData => 10,
            MsgCode::ValidationFailed => 11,
            MsgCode::NotAllowed => 12,
            MsgCode::NetworkControlConflict => 13,
            MsgCode::CallLimit => 14,
            MsgCode::AdminLoginForbidden => 15,
            MsgCode::Other(n) => n,
        }
    }

    /// Maps a numeric code.
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => MsgCode::Default,
            1 => MsgCode::SessionLost,
            2 => MsgCode::NoPermission,
            3 => MsgCode::OperationKeyEmpty,
            4 => MsgCode::Exception,
            5 => MsgCode::FormKeyEmpty,
            6 => MsgCode::DatabaseFailed,
            7 => MsgCode::LicenceError,
            8 => MsgCode::ParameterError,
            9 => MsgCode::NotFound,
            10 => MsgCode::NoMatchingData,
            11 => MsgCode::ValidationFailed,
            12 => MsgCode::NotAllowed,
            13 => MsgCode::NetworkControlConflict,
            14 => MsgCode::CallLimit,
            15 => MsgCode::AdminLoginForbidden,
            n => MsgCode::Other(n),
        }
    }

    /// The manual's meaning, in Chinese, for messages shown to integrators.
    pub fn describe_zh(self) -> &'static str {
        match self {
            MsgCode::Default => "默认",
            MsgCode::SessionLost => "上下文丢失（会话丢失，重新登录）",
            MsgCode::NoPermission => "没有权限",
            MsgCode::OperationKeyEmpty => "操作标识为空",
            MsgCode::Exception => "异常",
            MsgCode::FormKeyEmpty => "单据标识为空",
            MsgCode::DatabaseFailed => "数据库操作失败",
            MsgCode::LicenceError => "许可错误",
            MsgCode::ParameterError => "参数错误",
            MsgCode::NotFound => "指定字段/值不存在",
            MsgCode::NoMatchingData => "未找到对应数据",
            MsgCode::ValidationFailed => "验证失败",
            MsgCode::NotAllowed => "不可操作",
            MsgCode::NetworkControlConflict => "网控冲突",
            MsgCode::CallLimit => "调用限制",
            MsgCode::AdminLoginForbidden => "禁止管理员登录",
            MsgCode::Other(_) => "未知错误代码",
        }
    }

    /// Whether the same call may succeed later without a change to the data: a lost session
    /// (after a new login), a call limit, a server exception, a database failure or a
    /// network-control conflict (the record is locked by someone else for now).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            MsgCode::SessionLost
                | MsgCode::CallLimit
                | MsgCode::Exception
                | MsgCode::DatabaseFailed
                | MsgCode::NetworkControlConflict
        )
    }

    /// A reference to base data that does not exist (9) or a failed validation (11), which is
    /// how an unknown `{"FNumber":…}` usually surfaces.
    pub fn is_data_error(self) -> bool {
        matches!(
            self,
            MsgCode::NotFound | MsgCode::ValidationFailed | MsgCode::ParameterError
        )
    }
}

impl fmt::Display for MsgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MsgCode {} {}", self.code(), self.describe_zh())
    }
}

impl<'de> Deserialize<'de> for MsgCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(lenient_i64(Value::deserialize(d)?).map_or(MsgCode::Default, MsgCode::from_code))
    }
}

impl Serialize for MsgCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.code())
    }
}

fn lenient_i64(v: Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(b)),
        _ => None,
    }
}

fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(lenient_i64(Value::deserialize(d)?))
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    })
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

fn de_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EntityId>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(EntityId::new(s)),
        Value::Number(n) if n.as_i64() == Some(0) => None,
        Value::Number(n) => Some(EntityId::new(n.to_string())),
        _ => None,
    })
}

fn de_opt_billno<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BillNo>, D::Error> {
    Ok(de_opt_string(d)?.filter(|s| !s.is_empty()).map(BillNo::new))
}

/// One entry of `Errors` or `SuccessMessages`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RowMessage {
    /// The field key the message is about, if any.
    #[serde(deserialize_with = "de_opt_string")]
    pub field_name: Option<String>,
    /// The text (Chinese on a zh-CN server).
    #[serde(deserialize_with = "de_opt_string")]
    pub message: Option<String>,
    /// Index of the row in the submitted data (within its batch when `BatchCount` is set).
    #[serde(rename = "DIndex", deserialize_with = "de_opt_i64")]
    pub d_index: Option<i64>,
}

impl fmt::Display for RowMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(field) = self.field_name.as_deref().filter(|s| !s.is_empty()) {
            write!(f, "{field}: ")?;
        }
        f.write_str(self.message.as_deref().unwrap_or(""))?;
        if let Some(i) = self.d_index {
            write!(f, " (row {i})")?;
        }
        Ok(())
    }
}

/// One entry of `SuccessEntitys`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SuccessEntity {
    /// Primary key of the saved record.
    #[serde(deserialize_with = "de_opt_id")]
    pub id: Option<EntityId>,
    /// Bill number / base-data number.
    #[serde(deserialize_with = "de_opt_billno")]
    pub number: Option<BillNo>,
    /// Row index in the submitted data.
    #[serde(rename = "DIndex", deserialize_with = "de_opt_i64")]
    pub d_index: Option<i64>,
}

/// `Result.ResponseStatus`. [MANUAL] [SDK-JAVA `RepoStatus/RepoError/SuccessEntity`] (§2.3)
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResponseStatus {
    /// `IsSuccess`.
    #[serde(deserialize_with = "de_bool")]
    pub is_success: bool,
    /// `ErrorCode` (500 on failure).
    #[serde(deserialize_with = "de_opt_i64")]
    pub error_code: Option<i64>,
    /// `Errors`.
    #[serde(deserialize_with = "de_vec")]
    pub errors: Vec<RowMessage>,
    /// `SuccessEntitys` (sic).
    #[serde(deserialize_with = "de_vec")]
    pub success_entitys: Vec<SuccessEntity>,
    /// `SuccessMessages`.
    #[serde(deserialize_with = "de_vec")]
    pub success_messages: Vec<RowMessage>,
    /// `MsgCode`.
    pub msg_code: MsgCode,
}

/// The message community fixtures show for a lost session. [MCP tests] [SKILL common-errors.md]
pub const SESSION_LOST_TEXT: &str = "会话信息已丢失";

impl ResponseStatus {
    /// A lost session: MsgCode 1, or the `会话信息已丢失` message with another code (§1.8).
    pub fn is_session_lost(&self) -> bool {
        self.msg_code == MsgCode::SessionLost
            || (!self.is_success
                && self.errors.iter().any(|e| {
                    e.message
                        .as_deref()
                        .is_some_and(|m| m.contains(SESSION_LOST_TEXT))
                }))
    }

    /// The call limit was hit (MsgCode 14).
    pub fn is_call_limit(&self) -> bool {
        self.msg_code == MsgCode::CallLimit
    }

    /// All error messages on one line.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        if parts.is_empty() {
            "no error message".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// A parsed `{"Result":{…}}` envelope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationResult {
    /// `Result.ResponseStatus`.
    pub status: ResponseStatus,
    /// `Result.Id` (Save).
    pub id: Option<EntityId>,
    /// `Result.Number` (Save).
    pub number: Option<BillNo>,
    /// `Result.NeedReturnData`.
    pub need_return_data: Vec<Value>,
    /// `Result.Result` (View returns the record here).
    pub result: Option<Value>,
}

impl OperationResult {
    /// The saved record's id: `Result.Id`, else the first success entity's.
    pub fn first_id(&self) -> Option<&EntityId> {
        self.id.as_ref().or_else(|| {
            self.status
                .success_entitys
                .iter()
                .find_map(|e| e.id.as_ref())
        })
    }

    /// The saved record's number: `Result.Number`, else the first success entity's.
    pub fn first_number(&self) -> Option<&BillNo> {
        self.number.as_ref().or_else(|| {
            self.status
                .success_entitys
                .iter()
                .find_map(|e| e.number.as_ref())
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawResult {
    response_status: Option<ResponseStatus>,
    #[serde(deserialize_with = "de_opt_id")]
    id: Option<EntityId>,
    #[serde(deserialize_with = "de_opt_billno")]
    number: Option<BillNo>,
    #[serde(deserialize_with = "de_vec")]
    need_return_data: Vec<Value>,
    result: Option<Value>,
}

/// Where a `ResponseStatus` sits in a body: `{"Result":{…}}`, or wrapped as `[[{"Result":…}]]`
/// (ExecuteBillQuery errors) or `[{"Result":…}]` (BillQuery). [SDK-JAVA K3CloudApi] [GO-KD] (§2.3)
pub fn find_status(body: &Value) -> Option<ResponseStatus> {
    let candidates = [
        body.pointer("/Result/ResponseStatus"),
        body.pointer("/0/0/Result/ResponseStatus"),
        body.pointer("/0/Result/ResponseStatus"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|v| ResponseStatus::deserialize(v).ok())
}

/// The prefix both official SDKs treat as a thrown server error. [SDK-PY `ValidResult`]
/// [SDK-JAVA `KDException.parse`] (§1.1)
pub const RESPONSE_ERROR_PREFIX: &str = "response_error:";

/// Parses a body as JSON, turning `response_error:` bodies into [`KingdeeError::ServerException`].
pub fn parse_body(service: &str, text: &str) -> Result<Value, KingdeeError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if let Some(rest) = trimmed.strip_prefix(RESPONSE_ERROR_PREFIX) {
        return Err(server_exception(service, rest));
    }
    serde_json::from_str(trimmed).map_err(|e| KingdeeError::Decode {
        service: service.to_owned(),
        reason: e.to_string(),
        snippet: snippet(trimmed),
    })
}

fn server_exception(service: &str, rest: &str) -> KingdeeError {
    // The Java SDK parses the JSON from the first `{` as KDException{Message, InnerExWrapper}.
    let parsed = rest
        .find('{')
        .and_then(|i| serde_json::from_str::<Value>(&rest[i..]).ok());
    let (message, inner) = match parsed {
        Some(v) => (
            v.get("Message")
                .and_then(Value::as_str)
                .map_or_else(|| v.to_string(), str::to_owned),
            v.get("InnerExWrapper")
                .or_else(|| v.get("InnerException"))
                .filter(|i| !i.is_null())
                .map(|i| {
                    i.get("Message")
                        .and_then(Value::as_str)
                        .map_or_else(|| i.to_string(), str::to_owned)
                }),
        ),
        None => (rest.trim().to_owned(), None),
    };
    KingdeeError::ServerException {
        service: service.to_owned(),
        message,
        inner,
    }
}

/// The first 300 characters of a body, for error messages.
pub fn snippet(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Parses an envelope body into an [`OperationResult`] without judging `IsSuccess`.
pub fn parse_operation(service: &str, body: &Value) -> Result<OperationResult, KingdeeError> {
    let raw = body
        .get("Result")
        .filter(|r| r.is_object())
        .ok_or_else(|| KingdeeError::Decode {
            service: service.to_owned(),
            reason: "no Result object in the response".into(),
            snippet: snippet(&body.to_string()),
        })?;
    let raw = RawResult::deserialize(raw).map_err(|e| KingdeeError::Decode {
        service: service.to_owned(),
        reason: e.to_string(),
        snippet: snippet(&body.to_string()),
    })?;
    Ok(OperationResult {
        status: raw.response_status.unwrap_or_default(),
        id: raw.id,
        number: raw.number,
        need_return_data: raw.need_return_data,
        result: raw.result,
    })
}

/// Parses an envelope and fails with [`KingdeeError::Api`] unless `IsSuccess` is true.
pub fn expect_success(service: &str, body: &Value) -> Result<OperationResult, KingdeeError> {
    let op = parse_operation(service, body)?;
    if op.status.is_success {
        Ok(op)
    } else {
        Err(KingdeeError::Api {
            service: service.to_owned(),
            status: Box::new(op.status),
        })
    }
}

/// `LoginResultType`. [MANUAL 5.1.1] (§1.3)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginResultType {
    /// −7.
    Activation,
    /// −6.
    EntryCloudUnBind,
    /// −5: the manual says an integration may treat it as accepted (administrator login).
    DealWithForm,
    /// −4.
    Warning,
    /// −3: password must be changed.
    PwInvalidRequired,
    /// −2: password should be changed.
    PwInvalidOptional,
    /// −1.
    Failure,
    /// 0: wrong password.
    PwError,
    /// 1.
    Success,
    /// Anything else (or missing).
    Other(i64),
}

impl LoginResultType {
    /// Maps the numeric value.
    pub fn from_code(code: i64) -> Self {
        match code {
            -7 => Self::Activation,
            -6 => Self::EntryCloudUnBind,
            -5 => Self::DealWithForm,
            -4 => Self::Warning,
            -3 => Self::PwInvalidRequired,
            -2 => Self::PwInvalidOptional,
            -1 => Self::Failure,
            0 => Self::PwError,
            1 => Self::Success,
            n => Self::Other(n),
        }
    }

    /// Whether the login gives a usable session: `Success`, and `DealWithForm` as the manual
    /// allows for integrations.
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Success | Self::DealWithForm)
    }
}

/// The login response (`LoginResult`). [SDK-JAVA `LoginResult`, `Context`] [YIKD screenshots]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoginResult {
    /// `LoginResultType` as a number (see [`LoginResult::result_type`]).
    #[serde(deserialize_with = "de_opt_i64")]
    pub login_result_type: Option<i64>,
    /// `Message`.
    #[serde(deserialize_with = "de_opt_string")]
    pub message: Option<String>,
    /// `MessageCode` (e.g. `CheckPasswordPolicy` on success).
    #[serde(deserialize_with = "de_opt_string")]
    pub message_code: Option<String>,
    /// `KDSVCSessionId`.
    #[serde(rename = "KDSVCSessionId", deserialize_with = "de_opt_string")]
    pub kdsvc_session_id: Option<String>,
    /// `IsSuccessByAPI`.
    #[serde(rename = "IsSuccessByAPI", deserialize_with = "de_bool")]
    pub is_success_by_api: bool,
    /// `Context` (user, data centre, session id, …) as sent.
    pub context: Option<Value>,
}

impl LoginResult {
    /// The typed `LoginResultType` (missing counts as `Other(i64::MIN)`).
    pub fn result_type(&self) -> LoginResultType {
        self.login_result_type
            .map_or(LoginResultType::Other(i64::MIN), LoginResultType::from_code)
    }

    /// The session id: `KDSVCSessionId`, else `Context.SessionId`.
    pub fn session_id(&self) -> Option<String> {
        self.kdsvc_session_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                self.context
                    .as_ref()
                    .and_then(|c| c.get("SessionId"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_status_with_rows_and_chinese_messages() {
        let body = json!({"Result":{"ResponseStatus":{
            "ErrorCode":500,"IsSuccess":false,
            "Errors":[{"FieldName":"FDeptId","Message":"部门 名称 研发部 不存在","DIndex":1}],
            "SuccessEntitys":[{"Id":100123,"Number":"BM0001","DIndex":0}],
            "SuccessMessages":[],"MsgCode":11},"Id":"","Number":null,"NeedReturnData":[{}]}});
        let op = parse_operation("Save", &body).expect("parse");
        assert!(!op.status.is_success);
        assert_eq!(op.status.msg_code, MsgCode::ValidationFailed);
        assert_eq!(op.status.error_code, Some(500));
        assert_eq!(op.status.errors[0].d_index, Some(1));
        assert_eq!(
            op.status.errors[0].message.as_deref(),
            Some("部门 名称 研发部 不存在")
        );
        assert_eq!(
            op.status.success_entitys[0].id,
            Some(EntityId::new("100123"))
        );
        assert_eq!(op.first_number(), Some(&BillNo::new("BM0001")));
        assert_eq!(op.id, None);
        assert!(
            op.status
                .summary()
                .contains("FDeptId: 部门 名称 研发部 不存在 (row 1)")
        );
        let err = expect_success("Save", &body).expect_err("fails");
        assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    }

    #[test]
    fn minimal_status_and_odd_types() {
        let body = json!({"Result":{"ResponseStatus":{"IsSuccess":true},"Result":{"Id":1}}});
        let op = expect_success("View", &body).expect("ok");
        assert_eq!(op.status.msg_code, MsgCode::Default);
        assert!(op.status.errors.is_empty());
        assert_eq!(op.result, Some(json!({"Id":1})));
        let odd = json!({"Result":{"ResponseStatus":{"IsSuccess":"false","MsgCode":"14","Errors":null,"ErrorCode":"500"}}});
        let op = parse_operation("Save", &odd).expect("parse");
        assert!(!op.status.is_success);
        assert!(op.status.is_call_limit());
        assert_eq!(op.status.error_code, Some(500));
        assert_eq!(MsgCode::from_code(99), MsgCode::Other(99));
        assert_eq!(MsgCode::Other(99).code(), 99);
        for c in 0..=15 {
            assert_eq!(MsgCode::from_code(c).code(), c);
        }
    }

    #[test]
    fn session_lost_by_code_or_message() {
        let by_code: ResponseStatus =
            serde_json::from_value(json!({"IsSuccess":false,"MsgCode":1})).expect("status");
        assert!(by_code.is_session_lost());
        let by_text: ResponseStatus =
            serde_json::from_value(json!({"IsSuccess":false,"ErrorCode":500,
            "Errors":[{"Message":"会话信息已丢失，请重新登录"}]}))
            .expect("status");
        assert!(by_text.is_session_lost());
    }

    #[test]
    fn wrapped_statuses_are_found() {
        let q = json!([[{"Result":{"ResponseStatus":{"IsSuccess":false,"MsgCode":1,"ErrorCode":500}}}]]);
        assert!(find_status(&q).expect("status").is_session_lost());
        let b = json!([{"Result":{"ResponseStatus":{"IsSuccess":false,"MsgCode":14}}}]);
        assert!(find_status(&b).expect("status").is_call_limit());
        assert!(find_status(&json!([["张伟", 1]])).is_none());
        assert!(find_status(&json!([{"FName":"张伟"}])).is_none());
    }

    #[test]
    fn response_error_bodies() {
        let err = parse_body(
            "Save",
            r#"response_error:{"Message":"对象引用未设置到对象的实例。","InnerExWrapper":{"Message":"内部"}}"#,
        )
        .expect_err("error");
        match err {
            KingdeeError::ServerException { message, inner, .. } => {
                assert_eq!(message, "对象引用未设置到对象的实例。");
                assert_eq!(inner.as_deref(), Some("内部"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse_body("Save", "response_error: plain text").expect_err("error");
        assert!(err.to_string().contains("plain text"));
        assert!(matches!(
            parse_body("Save", "<html>"),
            Err(KingdeeError::Decode { .. })
        ));
    }

    #[test]
    fn login_result_types() {
        let ok: LoginResult =
            serde_json::from_value(json!({"Message":null,"MessageCode":"CheckPasswordPolicy",
            "LoginResultType":1,"KDSVCSessionId":"sid-1","IsSuccessByAPI":true,
            "Context":{"UserName":"张伟","SessionId":"ctx"}}))
            .expect("login");
        assert_eq!(ok.result_type(), LoginResultType::Success);
        assert!(ok.result_type().is_accepted());
        assert_eq!(ok.session_id().as_deref(), Some("sid-1"));
        let bad: LoginResult = serde_json::from_value(
            json!({"LoginResultType":0,"Message":"用户名或密码错误！","Context":{"SessionId":"c"}}),
        )
        .expect("login");
        assert_eq!(bad.result_type(), LoginResultType::PwError);
        assert!(!bad.result_type().is_accepted());
        assert_eq!(bad.session_id().as_deref(), Some("c"));
        assert!(LoginResultType::from_code(-5).is_accepted());
        assert_eq!(LoginResultType::from_code(-7), LoginResultType::Activation);
    }
}
