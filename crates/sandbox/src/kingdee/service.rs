//! `POST {base}/<Namespace.Class.Method>.common.kdsvc`: body decoding (the three encodings of
//! protocol §1.2), authentication (§1.3–§1.8), fault injection and dispatch to the store.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::envelope::{self, KdError, Outcome, SESSION_LOST_MESSAGE, msg};
use super::forms::{self, FormDef};
use super::store::{StatusOp, get_ci, scalar_string};
use super::{KingdeeSandbox, LoginMode, Session, query, verify};

/// The request parameters, positional (`{"parameters":[…]}` or the legacy C# envelope whose
/// `parameters` is a JSON string) or named (`{"formid":…,"data":…}`).
#[derive(Debug, Clone)]
pub enum Params {
    Positional(Vec<Value>),
    Named(Map<String, Value>),
}

impl Params {
    /// Decodes a request body; an empty body is an empty named set.
    pub fn parse(body: &[u8]) -> Result<(Params, bool), String> {
        let text = std::str::from_utf8(body).map_err(|_| "请求内容不是UTF-8。".to_owned())?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return Ok((Params::Named(Map::new()), false));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("请求内容不是有效的JSON：{e}"))?;
        match value {
            Value::Array(a) => Ok((Params::Positional(a), false)),
            Value::Object(obj) => {
                let is_async = get_ci(&obj, "beginmethod")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.eq_ignore_ascii_case("BeginQueryImpl"));
                match get_ci(&obj, "parameters") {
                    Some(Value::Array(a)) => Ok((Params::Positional(a.clone()), is_async)),
                    Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                        Ok(Value::Array(a)) => Ok((Params::Positional(a), is_async)),
                        _ => Err("参数parameters必须是JSON数组。".to_owned()),
                    },
                    _ => Ok((Params::Named(obj), is_async)),
                }
            }
            _ => Err("请求内容必须是JSON对象或数组。".to_owned()),
        }
    }

    /// The parameter at `index` (positional) or named `name` (case-insensitive).
    pub fn get(&self, index: usize, name: &str) -> Option<&Value> {
        match self {
            Params::Positional(a) => a.get(index),
            Params::Named(m) => get_ci(m, name),
        }
    }

    pub fn string(&self, index: usize, name: &str) -> String {
        self.get(index, name)
            .and_then(scalar_string)
            .unwrap_or_default()
    }

    /// A `data` parameter: an object, or a JSON string holding one (§1.2).
    pub fn data(&self, index: usize) -> Result<Map<String, Value>, KdError> {
        match self.get(index, "data") {
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(KdError::new(msg::PARAMETER, "参数data不是有效的JSON对象。")),
            },
            None | Some(Value::Null) => Ok(Map::new()),
            Some(_) => Err(KdError::new(msg::PARAMETER, "参数data必须是JSON对象。")),
        }
    }
}

/// The canonical method names (matched case-insensitively, §1.1).
const METHODS: &[&str] = &[
    "ValidateUser",
    "ValidateUser2",
    "ValidateUserByOrgNumber",
    "LoginByAppSecret",
    "LoginBySign",
    "Logout",
    "GetDataCenterList",
    "Save",
    "BatchSave",
    "Draft",
    "Submit",
    "Audit",
    "UnAudit",
    "Delete",
    "View",
    "ExecuteBillQuery",
    "BillQuery",
    "ExcuteOperation",
    "ExecuteOperation",
    "QueryBusinessInfo",
    "Push",
    "WorkflowAudit",
    "CancelAssign",
    "SwitchOrg",
    "QueryAsyncResult",
];

fn canonical(method: &str) -> String {
    METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .map_or_else(|| method.to_owned(), |m| (*m).to_owned())
}

fn is_query(method: &str) -> bool {
    matches!(method, "ExecuteBillQuery" | "BillQuery")
}

fn json_response(value: &Value, cookies: Option<&Session>) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response();
    if let Some(s) = cookies {
        // Two Set-Cookie headers without `Expires` (the Python SDK splits them on ',').
        for c in [
            format!("kdservice-sessionid={}; path=/", s.id),
            format!("ASP.NET_SessionId={}; path=/; HttpOnly", s.asp_net_id),
        ] {
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

/// The session id a request carries: cookie `kdservice-sessionid`, header
/// `kdservice-sessionid`, or header `SID` (Java SDK) (§1.7, §1.8).
fn session_id(headers: &HeaderMap) -> Option<String> {
    for name in ["kdservice-sessionid", "sid"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok())
            && !v.trim().is_empty()
        {
            return Some(v.trim().to_owned());
        }
    }
    for cookie in headers.get_all(header::COOKIE) {
        let Ok(text) = cookie.to_str() else { continue };
        for part in text.split(';') {
            if let Some((k, v)) = part.split_once('=')
                && k.trim().eq_ignore_ascii_case("kdservice-sessionid")
                && !v.trim().is_empty()
            {
                return Some(v.trim().to_owned());
            }
        }
    }
    None
}

fn error_for(method: &str, e: KdError) -> Value {
    if is_query(method) {
        envelope::query_error(e)
    } else {
        envelope::error_envelope(e)
    }
}

pub async fn handle(
    State(sb): State<KingdeeSandbox>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Faults first: an outage answers 503 before anything else.
    let faults = sb.faults();
    if faults
        .outage_until
        .is_some_and(|t| t > std::time::Instant::now())
    {
        sb.count(|c| c.http_503 += 1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body><h1>503 Service Unavailable</h1><p>金蝶云星空服务暂不可用（沙箱故障注入）。</p></body></html>",
        )
            .into_response();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }

    let lower = service.to_ascii_lowercase();
    let Some(stem) = lower
        .strip_suffix(".common.kdsvc")
        .map(|s| &service[..s.len()])
    else {
        return (StatusCode::NOT_FOUND, "not a .common.kdsvc service").into_response();
    };
    // Custom services add `,Assembly` after the method (§1.1).
    let stem = stem.split(',').next().unwrap_or(stem);
    let mut parts = stem.rsplitn(3, '.');
    let method = canonical(parts.next().unwrap_or_default());
    let class = parts.next().unwrap_or_default().to_ascii_lowercase();
    sb.count(|c| *c.calls.entry(method.clone()).or_default() += 1);

    let (params, is_async) = match Params::parse(&body) {
        Ok(p) => p,
        Err(m) => {
            let v = error_for(&method, KdError::new(msg::PARAMETER, m));
            return respond(&sb, &method, v, None, false);
        }
    };

    if class == "authservice" && method == "Logout" {
        let ended = session_id(&headers).is_some_and(|id| sb.end_session(&id));
        return respond(&sb, &method, Value::Bool(ended), None, false);
    }
    if class == "authservice" {
        let (value, session) = login(&sb, &method, &params);
        return respond(&sb, &method, value, session.as_ref(), false);
    }
    if class == "accountservice" && method == "GetDataCenterList" {
        let cfg = sb.config();
        let v = json!([{
            "Id": cfg.acct_id, "Number": "DEMO", "Name": cfg.acct_name,
            "Version": "8.2.0.20240101", "GDCID": "",
            "AuthenticationMethods": ["Password", "AppSecret", "Sign"],
        }]);
        return respond(&sb, &method, v, None, false);
    }
    if class != "dynamicformservice" {
        let v = error_for(
            &method,
            KdError::new(msg::EXCEPTION, format!("服务{stem}不存在。")),
        );
        return respond(&sb, &method, v, None, false);
    }

    // Authentication: signature headers on every call (§1.7), or a session.
    let mut new_session = None;
    let session = if verify::has_signature_headers(&headers) {
        let identity =
            match verify::verify_signature_headers(sb.config(), uri.path(), &headers, sb.now()) {
                Ok(i) => i,
                Err(e) => {
                    sb.count(|c| c.failed_logins += 1);
                    return respond(&sb, &method, error_for(&method, e), None, false);
                }
            };
        if !user_can_login(&sb, &identity.user_name) {
            sb.count(|c| c.failed_logins += 1);
            let e = KdError::new(
                msg::NO_PERMISSION,
                format!("用户“{}”不存在或已被禁用。", identity.user_name),
            );
            return respond(&sb, &method, error_for(&method, e), None, false);
        }
        match session_id(&headers)
            .and_then(|id| sb.touch_session(&id))
            .filter(|s| s.user == identity.user_name)
        {
            Some(s) => s,
            None => {
                let s = sb.open_session(
                    &identity.user_name,
                    LoginMode::SignatureHeaders,
                    &identity.lcid,
                );
                new_session = Some(s.clone());
                s
            }
        }
    } else {
        match session_id(&headers).and_then(|id| sb.touch_session(&id)) {
            Some(s) => s,
            None => {
                let e = KdError::new(msg::SESSION_LOST, SESSION_LOST_MESSAGE);
                return respond(&sb, &method, error_for(&method, e), None, false);
            }
        }
    };

    // Call-limit injection (MsgCode 14), after authentication like a real throttle.
    let throttled = {
        let mut hit = false;
        sb.set_faults(|f| {
            if f.msgcode14_next > 0 {
                f.msgcode14_next -= 1;
                hit = true;
            } else if f.msgcode14_rate > 0.0 && rand::random::<f64>() < f.msgcode14_rate {
                hit = true;
            }
        });
        hit
    };
    if throttled {
        let e = KdError::new(msg::CALL_LIMIT, "调用频率超过限制，请稍后再试。");
        return respond(
            &sb,
            &method,
            error_for(&method, e),
            new_session.as_ref(),
            is_async,
        );
    }

    let value = dispatch(&sb, &method, &params, &session);
    respond(&sb, &method, value, new_session.as_ref(), is_async)
}

fn respond(
    sb: &KingdeeSandbox,
    method: &str,
    value: Value,
    session: Option<&Session>,
    is_async: bool,
) -> Response {
    if let Some(code) = msgcode_of(&value) {
        sb.count(|c| *c.errors_by_msgcode.entry(code).or_default() += 1);
    }
    let _ = method;
    let value = if is_async {
        // The SDKs' "query" mode (§2.1): answer Complete at once.
        json!({
            "Status": 2, "TaskId": uuid::Uuid::new_v4().to_string(), "Result": value,
            "Message": null, "Progress": 100, "ProgressDesc": null, "IsFaulted": false,
        })
    } else {
        value
    };
    json_response(&value, session)
}

/// The MsgCode of an error answer, for the counters.
fn msgcode_of(v: &Value) -> Option<u8> {
    let status = v
        .pointer("/Result/ResponseStatus")
        .or_else(|| v.pointer("/0/0/Result/ResponseStatus"))?;
    if status.get("IsSuccess").and_then(Value::as_bool) == Some(false) {
        status
            .get("MsgCode")
            .and_then(Value::as_u64)
            .and_then(|c| u8::try_from(c).ok())
    } else {
        None
    }
}

fn user_can_login(sb: &KingdeeSandbox, user: &str) -> bool {
    let db = sb.db();
    db.record_by_number("SEC_User", user)
        .or_else(|| {
            // Also by display name (Kingdee logs in by account or name).
            db.data("SEC_User").and_then(|d| {
                d.records
                    .values()
                    .find(|r| r.fields.get("FName").and_then(Value::as_str) == Some(user))
            })
        })
        .is_some_and(|r| r.forbid != 'B')
}

fn login_result(sb: &KingdeeSandbox, session: &Session) -> Value {
    let cfg = sb.config();
    let db = sb.db();
    let user_id = db
        .record_by_number("SEC_User", &session.user)
        .map_or(0, |r| r.id);
    let org_name = db
        .data("ORG_Organizations")
        .and_then(|d| d.records.values().next())
        .and_then(|r| r.fields.get("FName").cloned())
        .unwrap_or(Value::Null);
    json!({
        "Message": null,
        "MessageCode": "CheckPasswordPolicy",
        "LoginResultType": 1,
        "Context": {
            "UserLocale": "zh-CN",
            "LogLocale": "zh-CN",
            "DBid": cfg.acct_id,
            "DatabaseType": 3,
            "SessionId": session.id,
            "UseLanguages": [{"LocaleId": 2052, "LocaleName": "中文(简体/中国)", "Alias": "CN"}],
            "UserId": user_id,
            "UserName": session.user,
            "CustomName": org_name,
            "DisplayVersion": "8.2.0.20240101",
            "DataCenterName": cfg.acct_name,
            "UserToken": uuid::Uuid::new_v4().to_string(),
            "CurrentOrganizationInfo": {"ID": 1, "AcctOrgType": "1", "Name": org_name, "FunctionIds": [101, 102, 103, 104]},
            "IsCH_ZH_AutoTrans": false,
            "ClientType": 32,
        },
        "KDSVCSessionId": session.id,
        "FormId": null,
        "RedirectFormParam": null,
        "FormInputObject": null,
        "ErrorStackTrace": null,
        "Lcid": 0,
        "AccessToken": null,
        "CustomParam": {},
        "KdAccessResult": null,
        "IsSuccessByAPI": true,
    })
}

fn login_failure(sb: &KingdeeSandbox, kind: i32, message: &str) -> Value {
    sb.count(|c| c.failed_logins += 1);
    json!({
        "Message": message,
        "MessageCode": null,
        "LoginResultType": kind,
        "Context": null,
        "KDSVCSessionId": null,
        "FormId": null,
        "RedirectFormParam": null,
        "FormInputObject": null,
        "ErrorStackTrace": null,
        "Lcid": 0,
        "AccessToken": null,
        "CustomParam": {},
        "KdAccessResult": null,
        "IsSuccessByAPI": false,
    })
}

/// AuthService: ValidateUser(2/ByOrgNumber), LoginByAppSecret, LoginBySign, Logout.
fn login(sb: &KingdeeSandbox, method: &str, p: &Params) -> (Value, Option<Session>) {
    let cfg = sb.config();
    let acct = p.string(0, "acctid");
    let user = p.string(1, "username");
    let check_common = |sb: &KingdeeSandbox| -> Option<Value> {
        if acct != cfg.acct_id {
            return Some(login_failure(sb, -1, &format!("数据中心“{acct}”不存在。")));
        }
        if !user_can_login(sb, &user) {
            return Some(login_failure(
                sb,
                -1,
                &format!("用户“{user}”不存在或已被禁用。"),
            ));
        }
        None
    };
    match method {
        "ValidateUser" | "ValidateUser2" | "ValidateUserByOrgNumber" => {
            let password = p.string(2, "password");
            let lcid_index = if method == "ValidateUser2" { 4 } else { 3 };
            let lcid = p.string(lcid_index, "lcid");
            if let Some(f) = check_common(sb) {
                return (f, None);
            }
            if password != cfg.password {
                return (login_failure(sb, 0, "用户名或密码错误！"), None);
            }
            let s = sb.open_session(&user, LoginMode::ValidateUser, &lcid);
            (login_result(sb, &s), Some(s))
        }
        "LoginByAppSecret" => {
            let app_id = p.string(2, "appid");
            let secret = p.string(3, "appsecret");
            let lcid = p.string(4, "lcid");
            if let Some(f) = check_common(sb) {
                return (f, None);
            }
            if app_id != cfg.app_id || !super::auth::same(&secret, &cfg.app_secret) {
                return (login_failure(sb, -1, "应用ID或应用密钥错误。"), None);
            }
            let s = sb.open_session(&user, LoginMode::LoginByAppSecret, &lcid);
            (login_result(sb, &s), Some(s))
        }
        "LoginBySign" => {
            let app_id = p.string(2, "appid");
            let timestamp = p.string(3, "timestamp");
            let sign = p.string(4, "sign");
            let lcid = p.string(5, "lcid");
            if let Some(f) = check_common(sb) {
                return (f, None);
            }
            match verify::verify_login_by_sign(
                cfg,
                &acct,
                &user,
                &app_id,
                &timestamp,
                &sign,
                sb.now(),
            ) {
                Ok(_) => {
                    let s = sb.open_session(&user, LoginMode::LoginBySign, &lcid);
                    (login_result(sb, &s), Some(s))
                }
                Err(m) => (login_failure(sb, -1, &m), None),
            }
        }
        _ => (
            envelope::error_envelope(KdError::new(
                msg::EXCEPTION,
                format!("AuthService不支持方法{method}。"),
            )),
            None,
        ),
    }
}

fn form_param(p: &Params, index: usize) -> Result<&'static FormDef, KdError> {
    let id = p.string(index, "formid");
    if id.trim().is_empty() {
        return Err(KdError::new(msg::FORM_KEY_EMPTY, "表单标识formid不能为空。").field("FormId"));
    }
    forms::form(&id).ok_or_else(|| {
        KdError::new(msg::EXCEPTION, format!("业务对象不存在：{id}")).field("FormId")
    })
}

fn outcome_value(outcome: &Outcome, extra: Map<String, Value>) -> Value {
    outcome.envelope(extra)
}

fn dispatch(sb: &KingdeeSandbox, method: &str, p: &Params, _session: &Session) -> Value {
    let now = sb.now_text();
    let result: Result<Value, KdError> = (|| match method {
        "Save" | "Draft" | "BatchSave" => {
            let form = form_param(p, 0)?;
            let data = p.data(1)?;
            if form.kind == forms::FormKind::QueryOnly {
                return Err(KdError::new(
                    msg::NOT_ALLOWED,
                    format!("{}({})是只读查询对象，不支持保存。", form.caption, form.id),
                ));
            }
            let mut db = sb.db_mut();
            let (outcome, extra) = match method {
                "BatchSave" => db.batch_save(form, &data, &now),
                "Draft" => db.save(form, &data, true, &now),
                _ => db.save(form, &data, false, &now),
            };
            Ok(outcome_value(&outcome, extra))
        }
        "Submit" | "Audit" | "UnAudit" | "Delete" | "CancelAssign" => {
            let form = form_param(p, 0)?;
            let data = p.data(1)?;
            let op = match method {
                "Submit" => StatusOp::Submit,
                "Audit" => StatusOp::Audit,
                "UnAudit" => StatusOp::UnAudit,
                "CancelAssign" => StatusOp::CancelAssign,
                _ => StatusOp::Delete,
            };
            let outcome = sb.db_mut().status_op(form, op, &data, &now);
            Ok(outcome_value(&outcome, Map::new()))
        }
        "ExcuteOperation" | "ExecuteOperation" => {
            let form = form_param(p, 0)?;
            let op_number = p.string(1, "opNumber");
            let data = p.data(2)?;
            let op = match op_number.to_ascii_lowercase().as_str() {
                "" => {
                    return Err(KdError::new(
                        msg::OP_KEY_EMPTY,
                        "操作标识opNumber不能为空。",
                    ));
                }
                "forbid" => StatusOp::Forbid,
                "enable" => StatusOp::Enable,
                "submit" => StatusOp::Submit,
                "audit" => StatusOp::Audit,
                "unaudit" => StatusOp::UnAudit,
                "delete" => StatusOp::Delete,
                "cancelassign" | "cancel" => StatusOp::CancelAssign,
                other => {
                    return Err(KdError::new(
                        msg::NOT_ALLOWED,
                        format!(
                            "沙箱不支持操作“{other}”（支持Forbid、Enable、Submit、Audit、UnAudit、Delete、CancelAssign）。"
                        ),
                    ));
                }
            };
            let outcome = sb.db_mut().status_op(form, op, &data, &now);
            Ok(outcome_value(&outcome, Map::new()))
        }
        "View" => {
            let form = form_param(p, 0)?;
            let data = p.data(1)?;
            let view = sb.db().view(form, &data)?;
            let mut extra = Map::new();
            extra.insert("Result".into(), view);
            Ok(
                json!({"Result": {"ResponseStatus": {"IsSuccess": true}, "Result": extra.remove("Result")}}),
            )
        }
        "ExecuteBillQuery" | "BillQuery" => {
            let data = p.data(0)?;
            let db = sb.db();
            let result = query::run(&db, &data, sb.config().query_limit_cap)?;
            if method == "ExecuteBillQuery" {
                Ok(Value::Array(
                    result.rows.into_iter().map(Value::Array).collect(),
                ))
            } else {
                Ok(Value::Array(
                    result
                        .rows
                        .into_iter()
                        .map(|row| Value::Object(result.keys.iter().cloned().zip(row).collect()))
                        .collect(),
                ))
            }
        }
        "QueryBusinessInfo" => {
            let data = p.data(0)?;
            let id = get_ci(&data, "FormId")
                .and_then(scalar_string)
                .unwrap_or_default();
            let form = forms::form(&id).ok_or_else(|| {
                KdError::new(msg::EXCEPTION, format!("业务对象不存在：{id}")).field("FormId")
            })?;
            let mut extra = Map::new();
            extra.insert("NeedReturnData".into(), business_info(form));
            Ok(Outcome::default().envelope(extra))
        }
        "Push" => {
            let form = form_param(p, 0)?;
            let data = p.data(1)?;
            let outcome = sb.db_mut().push(form, &data, &now);
            Ok(outcome_value(&outcome, Map::new()))
        }
        "WorkflowAudit" => {
            let data = p.data(0)?;
            let id = get_ci(&data, "FormId")
                .and_then(scalar_string)
                .unwrap_or_default();
            let form = forms::form(&id).ok_or_else(|| {
                KdError::new(msg::EXCEPTION, format!("业务对象不存在：{id}")).field("FormId")
            })?;
            let op = match get_ci(&data, "ApprovalType")
                .and_then(scalar_string)
                .as_deref()
            {
                Some("2") | Some("3") => StatusOp::CancelAssign,
                _ => StatusOp::Audit,
            };
            let outcome = sb.db_mut().status_op(form, op, &data, &now);
            Ok(outcome_value(&outcome, Map::new()))
        }
        "SwitchOrg" => {
            let data = p.data(0)?;
            let number = get_ci(&data, "OrgNumber")
                .and_then(scalar_string)
                .unwrap_or_default();
            let db = sb.db();
            match db.record_by_number("ORG_Organizations", &number) {
                Some(r) => Ok(Outcome {
                    errors: Vec::new(),
                    success: vec![envelope::SuccessEntity {
                        id: r.id,
                        number: r.number.clone(),
                        dindex: 0,
                    }],
                }
                .envelope(Map::new())),
                None => Err(KdError::new(
                    msg::NO_DATA,
                    format!("组织“{number}”不存在。"),
                )),
            }
        }
        other => Err(KdError::new(
            msg::EXCEPTION,
            format!("沙箱未实现方法{other}。"),
        )),
    })();
    match result {
        Ok(v) => v,
        Err(e) => error_for(method, e),
    }
}

/// `QueryBusinessInfo` answer (the real shape was not captured, §2.1 ❌): form id, name and
/// its entities with their fields.
fn business_info(form: &FormDef) -> Value {
    let field = |f: &forms::FieldDef| {
        let (ty, lookup) = match f.ty {
            forms::FieldType::Text => ("TextField", None),
            forms::FieldType::Decimal => ("DecimalField", None),
            forms::FieldType::Integer => ("IntegerField", None),
            forms::FieldType::Date => ("DateTimeField", None),
            forms::FieldType::Bool => ("CheckBoxField", None),
            forms::FieldType::Ref(t) => ("BaseDataField", Some(t)),
            forms::FieldType::Any => ("BaseDataField", None),
        };
        json!({
            "Key": f.key, "Name": [{"Key": 2052, "Value": f.caption}], "ElementType": ty,
            "MustInput": f.required, "LookUpObjectFormId": lookup,
        })
    };
    let mut entrys = vec![json!({
        "Key": "FBillHead", "EntityType": "HeadEntity", "Name": [{"Key": 2052, "Value": "单据头"}],
        "Fields": form.fields.iter().map(field).collect::<Vec<_>>(),
    })];
    for e in form.entries {
        entrys.push(json!({
            "Key": e.key, "EntityType": "EntryEntity", "ViewName": e.view_name,
            "Name": [{"Key": 2052, "Value": e.caption}],
            "Fields": e.fields.iter().map(field).collect::<Vec<_>>(),
        }));
    }
    json!({
        "Id": form.id, "Name": [{"Key": 2052, "Value": form.caption}],
        "PkFieldName": form.pk, "NumberFieldKey": form.number_field,
        "Entrys": entrys,
    })
}
