//! SSO / identity (protocol §6).
//!
//! - §6.1 in-app 免登: an auth code (what `dd.requestAuthCode` gives the front end; minted
//!   here by the admin route `POST login/code`) → `POST /topapi/v2/user/getuserinfo` with the
//!   app token → `result{userid, unionid, …}`. Codes live 5 minutes and are single use; an
//!   unknown, used or expired code answers 40078.
//! - §6.2 web / QR OAuth2: the browser page `GET /oauth2/auth?redirect_uri&client_id&state…`
//!   (the `login.dingtalk.com` path) signs in the sandbox's "login as" user at once and
//!   redirects to `redirect_uri?code=…&authCode=…&state=…`; `POST /v1.0/oauth2/userAccessToken`
//!   exchanges the code (or a refresh token) for a user token; `GET /v1.0/contact/users/me`
//!   with that token answers the user's profile.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::DingTalkSandbox;
use super::gateway::Ctx;
use super::reply::ApiError;

/// Which flow a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeKind {
    /// §6.1 `requestAuthCode` code, for `getuserinfo`.
    Inapp,
    /// §6.2 OAuth2 code, for `userAccessToken`.
    Oauth,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthCode {
    pub userid: String,
    pub kind: CodeKind,
    /// The app it was issued to; `None` = any app of the organisation.
    pub app_key: Option<String>,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserToken {
    pub app_key: String,
    pub userid: String,
    pub expires_ms: i64,
}

#[derive(Debug, Default)]
pub struct Login {
    pub codes: HashMap<String, AuthCode>,
    pub user_tokens: HashMap<String, UserToken>,
    pub refresh_tokens: HashMap<String, UserToken>,
    /// Who the fake login page signs in (`None`: the first person of the organisation).
    pub login_as: Option<String>,
}

impl DingTalkSandbox {
    pub(crate) fn login(&self) -> std::sync::MutexGuard<'_, Login> {
        super::lock(&self.inner.login)
    }

    /// Mints an auth code for `userid` (admin `POST login/code`, and the OAuth page).
    pub fn mint_auth_code(
        &self,
        userid: &str,
        kind: CodeKind,
        app_key: Option<&str>,
    ) -> Result<String, String> {
        if !self.org().users.contains_key(userid) {
            return Err(format!("unknown userid {userid:?}"));
        }
        if let Some(k) = app_key
            && self.app(k).is_none()
        {
            return Err(format!("unknown app {k:?}"));
        }
        let code = uuid::Uuid::new_v4().simple().to_string();
        let expires_ms = self.now_ms() + self.config().auth_code_ttl.as_millis() as i64;
        let now = self.now_ms();
        let mut l = self.login();
        l.codes.retain(|_, c| c.expires_ms > now);
        l.codes.insert(
            code.clone(),
            AuthCode {
                userid: userid.into(),
                kind,
                app_key: app_key.map(str::to_owned),
                expires_ms,
            },
        );
        drop(l);
        self.count(|k| k.auth_codes_issued += 1);
        Ok(code)
    }

    /// Takes (single use) a code of `kind` usable by `app_key`.
    fn take_code(&self, code: &str, kind: CodeKind, app_key: &str) -> Option<String> {
        let now = self.now_ms();
        let mut l = self.login();
        let c = l.codes.get(code)?;
        if c.kind != kind || c.app_key.as_deref().is_some_and(|k| k != app_key) {
            return None;
        }
        let c = l.codes.remove(code)?;
        (c.expires_ms > now).then_some(c.userid)
    }

    /// The userid the fake login page signs in.
    pub fn login_as(&self) -> Option<String> {
        if let Some(u) = self.login().login_as.clone() {
            return Some(u);
        }
        let org = self.org();
        org.users
            .values()
            .min_by_key(|p| p.seq)
            .map(|p| p.userid.clone())
    }

    pub fn set_login_as(&self, userid: Option<String>) -> Result<(), String> {
        if let Some(u) = &userid
            && !self.org().users.contains_key(u)
        {
            return Err(format!("unknown userid {u:?}"));
        }
        self.login().login_as = userid;
        Ok(())
    }

    /// `(app_key, userid)` of a valid user access token.
    pub fn check_user_token(&self, token: &str) -> Option<Result<(String, String), ()>> {
        let l = self.login();
        let t = l.user_tokens.get(token)?;
        if t.expires_ms <= self.now_ms() {
            return Some(Err(()));
        }
        Some(Ok((t.app_key.clone(), t.userid.clone())))
    }
}

/// `POST /topapi/v2/user/getuserinfo` `{code}` (§6.1).
pub fn getuserinfo(c: &Ctx) -> Result<Value, ApiError> {
    let code = c.params.str_req("code")?;
    let userid =
        c.sb.take_code(&code, CodeKind::Inapp, &c.app_key)
            .ok_or_else(|| ApiError::oapi(40078, "不存在的临时授权码"))?;
    let org = c.sb.org();
    let p = org
        .users
        .get(&userid)
        .ok_or_else(|| ApiError::oapi(40078, "不存在的临时授权码"))?;
    let sys_level = if p.boss {
        100
    } else if p.admin {
        1
    } else {
        0
    };
    let device: String = format!("{:x}", sha2_8(&p.userid));
    Ok(json!({"result": {
        "userid": p.userid,
        "unionid": p.unionid,
        "associated_unionid": "",
        "name": p.name,
        "device_id": device,
        "sys": p.admin || p.boss,
        "sys_level": sys_level,
    }}))
}

fn sha2_8(s: &str) -> u64 {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

fn v1_bad(code: &str, message: &str) -> ApiError {
    ApiError::v1(StatusCode::BAD_REQUEST, code, message)
}

/// `POST /v1.0/oauth2/userAccessToken` (§6.2 step 2).
pub fn user_access_token(c: &Ctx) -> Result<Value, ApiError> {
    let sb = c.sb;
    let p = &c.params;
    let key = p.str_opt("clientId").unwrap_or_default();
    let secret = p.str_opt("clientSecret").unwrap_or_default();
    if sb.app(&key).is_none_or(|a| a.app_secret != secret) {
        return Err(v1_bad(
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        ));
    }
    let now = sb.now_ms();
    let userid = match p.str_opt("grantType").as_deref() {
        Some("authorization_code") => {
            let code = p.str_opt("code").unwrap_or_default();
            sb.take_code(&code, CodeKind::Oauth, &key)
                .ok_or_else(|| v1_bad("invalidAuthCode", "授权码不存在、已使用或已过期"))?
        }
        Some("refresh_token") => {
            let rt = p.str_opt("refreshToken").unwrap_or_default();
            let l = sb.login();
            let t = l
                .refresh_tokens
                .get(&rt)
                .filter(|t| t.app_key == key && t.expires_ms > now)
                .ok_or_else(|| v1_bad("invalidRefreshToken", "refreshToken无效或已过期"))?;
            let userid = t.userid.clone();
            drop(l);
            let access = issue(sb, &key, &userid);
            return Ok(json!({
                "accessToken": access,
                "refreshToken": rt,
                "expireIn": sb.config().user_token_ttl.as_secs(),
                "corpId": sb.corp_id(),
            }));
        }
        _ => {
            return Err(v1_bad(
                "unsupportedGrantType",
                "grantType 须为 authorization_code 或 refresh_token",
            ));
        }
    };
    let access = issue(sb, &key, &userid);
    let refresh = uuid::Uuid::new_v4().simple().to_string();
    sb.login().refresh_tokens.insert(
        refresh.clone(),
        UserToken {
            app_key: key,
            userid,
            expires_ms: now + sb.config().refresh_token_ttl.as_millis() as i64,
        },
    );
    Ok(json!({
        "accessToken": access,
        "refreshToken": refresh,
        "expireIn": sb.config().user_token_ttl.as_secs(),
        "corpId": sb.corp_id(),
    }))
}

fn issue(sb: &DingTalkSandbox, app_key: &str, userid: &str) -> String {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let expires_ms = sb.now_ms() + sb.config().user_token_ttl.as_millis() as i64;
    sb.login().user_tokens.insert(
        token.clone(),
        UserToken {
            app_key: app_key.into(),
            userid: userid.into(),
            expires_ms,
        },
    );
    sb.count(|k| k.user_tokens_issued += 1);
    token
}

fn page_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>钉钉登录</title></head>\
             <body><h1>登录失败</h1><p>{}</p></body></html>\n",
            message.replace('<', "&lt;")
        ),
    )
        .into_response()
}

/// `GET /oauth2/auth` (§6.2 step 1, the `login.dingtalk.com` page): no page to click, the
/// "login as" user (admin `POST login/as`; default the organisation's first person) consents
/// at once. `userid=` in the query picks someone else (sandbox extension).
pub async fn oauth_page(
    State(sb): State<DingTalkSandbox>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(redirect) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return page_error("缺少 redirect_uri");
    };
    let client = q.get("client_id").cloned().unwrap_or_default();
    if sb.app(&client).is_none() {
        return page_error("无效的 client_id");
    }
    if q.get("response_type").is_some_and(|t| t != "code") {
        return page_error("response_type 须为 code");
    }
    let Some(userid) = q.get("userid").cloned().or_else(|| sb.login_as()) else {
        return page_error("组织内没有可登录的用户");
    };
    let code = match sb.mint_auth_code(&userid, CodeKind::Oauth, Some(&client)) {
        Ok(c) => c,
        Err(e) => return page_error(&e),
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let location = format!(
        "{redirect}{sep}code={code}&authCode={code}&state={}",
        urlencoding::encode(&state)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}
