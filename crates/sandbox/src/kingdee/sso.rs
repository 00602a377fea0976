//! The SSO entry `GET {base}/html5/index.aspx?ud=…` (and `lightstartapp.aspx`, `openmode=Single`)
//! of protocol §4: verifies the `ud` (signature V2/V3 SHA-1 or V4 SHA-256, timestamp window,
//! one-time links, allowed users) and answers a Chinese HTML page saying who is logged in, or
//! why not. The page carries `<meta name="kd-sso-result" content="ok|<refusal code>">` for
//! tests and scripts.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::verify::{self, SsoClaims, SsoRefusal};
use super::{KingdeeSandbox, LoginMode};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, code: &str, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"kd-sso-result\" content=\"{}\"><title>{}</title></head>\
         <body><h1>{}</h1>{}<p><small>金蝶云星空沙箱（dingbridge sandbox）</small></p></body></html>\n",
        escape(code),
        escape(title),
        escape(title),
        body
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn refused(sb: &KingdeeSandbox, r: SsoRefusal) -> Response {
    sb.count(|c| c.sso_refused += 1);
    page(
        StatusCode::FORBIDDEN,
        r.code,
        "单点登录失败",
        &format!("<p>原因：{}</p>", escape(&r.message)),
    )
}

/// The raw `ud` value from the query string (not form-decoded, so a `+` stays a `+`).
fn raw_ud(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case("ud").then(|| v.to_owned())
    })
}

pub async fn handle(State(sb): State<KingdeeSandbox>, uri: Uri) -> Response {
    if sb
        .faults()
        .outage_until
        .is_some_and(|t| t > std::time::Instant::now())
    {
        sb.count(|c| c.http_503 += 1);
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "outage",
            "服务暂不可用",
            "<p>金蝶云星空服务暂不可用（沙箱故障注入）。</p>",
        );
    }
    let Some(raw) = raw_ud(&uri) else {
        return refused(
            &sb,
            SsoRefusal {
                code: "bad_ud",
                message: "缺少登录参数ud。".into(),
            },
        );
    };
    let claims = match verify::decode_ud(&raw)
        .and_then(|ud| verify::verify_sso_claims(sb.config(), &ud, sb.now()))
    {
        Ok(c) => c,
        Err(r) => return refused(&sb, r),
    };
    match admit(&sb, &claims) {
        Ok(name) => {
            let session = sb.open_session(&claims.username, LoginMode::Sso, &claims.lcid);
            sb.count(|c| c.sso_logins += 1);
            let version = match claims.algorithm {
                super::auth::SignAlgorithm::Sha256 => "V4（SHA256）",
                super::auth::SignAlgorithm::Sha1 => "V2/V3（SHA1）",
            };
            let target = if claims.formid.is_empty() {
                "主控台".to_owned()
            } else {
                format!(
                    "表单 {}（{}）{}",
                    claims.formid,
                    if claims.formtype.is_empty() {
                        "bill"
                    } else {
                        &claims.formtype
                    },
                    if claims.pkid.is_empty() {
                        String::new()
                    } else {
                        format!("，内码 {}", claims.pkid)
                    }
                )
            };
            let body = format!(
                "<p>当前用户：<b>{}</b>（{}）已登录数据中心“{}”。</p>\
                 <p>协议版本：{}；打开：{}{}。</p>",
                escape(&name),
                escape(&claims.username),
                escape(&sb.config().acct_name),
                version,
                escape(&target),
                if claims.openmode.eq_ignore_ascii_case("single") {
                    "（单据模式）"
                } else {
                    ""
                }
            );
            let mut resp = page(StatusCode::OK, "ok", "登录成功", &body);
            for c in [
                format!("kdservice-sessionid={}; path=/", session.id),
                format!("ASP.NET_SessionId={}; path=/; HttpOnly", session.asp_net_id),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(r) => refused(&sb, r),
    }
}

/// User checks and one-time use (§4.1 steps 4–5, §4.6). Returns the user's display name.
fn admit(sb: &KingdeeSandbox, claims: &SsoClaims) -> Result<String, SsoRefusal> {
    let cfg = sb.config();
    let name = {
        let db = sb.db();
        let user = db
            .record_by_number("SEC_User", &claims.username)
            .or_else(|| {
                db.data("SEC_User").and_then(|d| {
                    d.records.values().find(|r| {
                        r.fields.get("FName").and_then(Value::as_str)
                            == Some(claims.username.as_str())
                    })
                })
            });
        match user {
            None => {
                return Err(SsoRefusal {
                    code: "unknown_user",
                    message: format!("用户“{}”在数据中心中不存在。", claims.username),
                });
            }
            Some(r) if r.forbid == 'B' => {
                return Err(SsoRefusal {
                    code: "user_forbidden",
                    message: format!("用户“{}”已被禁用。", claims.username),
                });
            }
            Some(r) => r
                .fields
                .get("FName")
                .and_then(Value::as_str)
                .unwrap_or(&claims.username)
                .to_owned(),
        }
    };
    if let Some(allowed) = &cfg.sso_allowed_users
        && !allowed.iter().any(|u| u == &claims.username)
    {
        return Err(SsoRefusal {
            code: "user_not_allowed",
            message: format!("用户“{}”不在该应用的指定登录用户列表中。", claims.username),
        });
    }
    let one_time = cfg.sso_one_time || claims.permit_count == Some(1);
    if one_time {
        let key = format!(
            "{}|{}|{}|{}",
            claims.appid, claims.username, claims.timestamp, claims.signeddata
        );
        if !sb.use_sso_link(key) {
            return Err(SsoRefusal {
                code: "link_used",
                message: "该登录链接仅供使用一次，已被使用。".into(),
            });
        }
    }
    Ok(name)
}
