//! Checks of the three signed inputs against the sandbox configuration: the v8 signature
//! headers (protocol §1.7), LoginBySign (§1.5) and the SSO `ud` (§4.3–4.6). Pure functions of
//! the configuration, the request and the sandbox clock, so tests can call them directly with
//! the golden vectors.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::KingdeeSandboxConfig;
use super::auth::{self, SignAlgorithm};
use super::envelope::{KdError, msg};
use super::store::scalar_string;

/// Who a verified request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIdentity {
    pub acct_id: String,
    pub user_name: String,
    pub lcid: String,
    pub org_num: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn denied(message: impl Into<String>) -> KdError {
    KdError::new(msg::NO_PERMISSION, message)
}

/// `true` when the request carries the v8 signature headers.
pub fn has_signature_headers(headers: &HeaderMap) -> bool {
    headers.contains_key("x-kd-signature") || headers.contains_key("x-api-signature")
}

pub fn within(now: i64, ts: i64, skew_secs: i64) -> bool {
    (now - ts).abs() <= skew_secs
}

/// Verifies `X-Kd-Appkey`, `X-Kd-Appdata`, `X-Kd-Signature`, `X-Api-ClientID`,
/// `X-Api-Signature`, `x-api-timestamp` and `x-api-nonce` exactly as §1.7 describes them.
/// `path` is the request path as the client saw it (`/k3cloud/Kingdee.BOS…Save.common.kdsvc`).
/// Both the Python (`quote`) and the Java (`URLEncoder`) path encodings are accepted;
/// timestamps may be seconds or milliseconds; the nonce is any string (Python and Java send
/// the timestamp, C# a GUID) and is not checked for replay, because the Python SDK sends the
/// same nonce and timestamp for every call within one second.
pub fn verify_signature_headers(
    cfg: &KingdeeSandboxConfig,
    path: &str,
    headers: &HeaderMap,
    now: i64,
) -> Result<SignedIdentity, KdError> {
    let app_key = header(headers, "x-kd-appkey").unwrap_or_default();
    if app_key.is_empty() {
        return Err(denied("缺少请求头X-Kd-Appkey。"));
    }
    if app_key != cfg.app_id {
        return Err(denied(format!(
            "应用ID“{app_key}”未在第三方系统登录授权中注册。"
        )));
    }
    let app_data_raw = header(headers, "x-kd-appdata").unwrap_or_default();
    let Some(app_data) = auth::parse_app_data(app_data_raw) else {
        return Err(denied("请求头X-Kd-Appdata格式错误。"));
    };
    let kd_sig = header(headers, "x-kd-signature").unwrap_or_default();
    let expected = auth::kd_hmac(
        &format!("{}{}", cfg.app_id, app_data.plain),
        &cfg.app_secret,
    );
    if !auth::same(kd_sig, &expected) {
        return Err(denied("签名验证失败：X-Kd-Signature不正确。"));
    }
    let Some((client_id, suffix)) = auth::split_app_id(&cfg.app_id) else {
        return Err(denied("应用ID格式错误。"));
    };
    if let Some(cid) = header(headers, "x-api-clientid")
        && cid != client_id
    {
        return Err(denied("请求头X-Api-ClientID与应用ID不一致。"));
    }
    let Some(client_secret) = auth::client_secret(suffix) else {
        return Err(denied("应用ID格式错误。"));
    };
    let ts_raw = header(headers, "x-api-timestamp").unwrap_or_default();
    let nonce = header(headers, "x-api-nonce").unwrap_or_default();
    let api_sig = header(headers, "x-api-signature").unwrap_or_default();
    let ok = [auth::enc_path_python(path), auth::enc_path_java(path)]
        .iter()
        .any(|enc| {
            let expected = auth::kd_hmac(&auth::string_to_sign(enc, nonce, ts_raw), &client_secret);
            auth::same(api_sig, &expected)
        });
    if !ok {
        return Err(denied("签名验证失败：X-Api-Signature不正确。"));
    }
    let Some(ts) = auth::timestamp_seconds(ts_raw) else {
        return Err(denied("请求头x-api-timestamp格式错误。"));
    };
    if !within(now, ts, cfg.clock_skew.as_secs() as i64) {
        return Err(denied(format!(
            "请求时间戳{ts_raw}已过期或超出允许的时间偏差（{}秒），请检查客户端时间。",
            cfg.clock_skew.as_secs()
        )));
    }
    if app_data.acct_id != cfg.acct_id {
        return Err(denied(format!("数据中心“{}”不存在。", app_data.acct_id)));
    }
    Ok(SignedIdentity {
        acct_id: app_data.acct_id,
        user_name: app_data.user_name,
        lcid: app_data.lcid,
        org_num: app_data.org_num,
    })
}

/// LoginBySign: `sign` = SHA-256 (or SHA-1, for servers before 8.0.0.202205) over the
/// ordinally sorted `[acctID, username, appId, appSecret, timestamp]` (§1.5).
pub fn verify_login_by_sign(
    cfg: &KingdeeSandboxConfig,
    acct_id: &str,
    user: &str,
    app_id: &str,
    timestamp: &str,
    sign: &str,
    now: i64,
) -> Result<SignAlgorithm, String> {
    if app_id != cfg.app_id {
        return Err(format!("应用ID“{app_id}”未在第三方系统登录授权中注册。"));
    }
    let sign = sign.trim().to_ascii_lowercase();
    let algorithm = match SignAlgorithm::from_hex_len(sign.len()) {
        Some(SignAlgorithm::Sha1) if !cfg.login_sign_allow_sha1 => {
            return Err("签名算法SHA1已停用，请使用SHA256。".to_owned());
        }
        Some(a) => a,
        None => return Err("签名信息格式错误。".to_owned()),
    };
    let expected = auth::sorted_sign(
        &[acct_id, user, app_id, &cfg.app_secret, timestamp],
        algorithm,
    );
    if !auth::same(&sign, &expected) {
        return Err("签名信息验证失败。".to_owned());
    }
    let Some(ts) = auth::timestamp_seconds(timestamp) else {
        return Err("时间戳格式错误。".to_owned());
    };
    if !within(now, ts, cfg.clock_skew.as_secs() as i64) {
        return Err("时间戳已过期，请检查客户端与服务器时间是否一致。".to_owned());
    }
    Ok(algorithm)
}

/// A verified SSO `ud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoClaims {
    pub dbid: String,
    pub username: String,
    pub appid: String,
    pub timestamp: String,
    pub signeddata: String,
    pub algorithm: SignAlgorithm,
    pub lcid: String,
    pub formid: String,
    pub formtype: String,
    pub pkid: String,
    pub openmode: String,
    /// `Some(n)` from `otherargs` `|{'permitcount':'n'}`.
    pub permit_count: Option<u32>,
}

/// Why an SSO link was refused (machine-readable `code`, Chinese `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRefusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> SsoRefusal {
    SsoRefusal {
        code,
        message: message.into(),
    }
}

/// Decodes the `ud` query value: raw or percent-encoded base64, a space read as `+`
/// (§4.5), then UTF-8 JSON.
pub fn decode_ud(raw: &str) -> Result<Map<String, Value>, SsoRefusal> {
    use base64::Engine as _;
    let decoded = urlencoding::decode(raw)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| raw.to_owned());
    let b64: String = decoded.trim().replace([' ', '-'], "+").replace('_', "/");
    let unpadded = b64.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .map_err(|_| refuse("bad_ud", "登录参数ud不是有效的Base64。"))?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("bad_ud", "登录参数ud不是UTF-8。"))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(refuse("bad_ud", "登录参数ud不是有效的JSON对象。")),
    }
}

/// Checks the `ud` fields: app, data centre, signature (V4 SHA-256 by 64 hex characters,
/// V2/V3 SHA-1 by 40), timestamp window. One-time use and allowed users are checked by the
/// caller, which holds the state.
pub fn verify_sso_claims(
    cfg: &KingdeeSandboxConfig,
    ud: &Map<String, Value>,
    now: i64,
) -> Result<SsoClaims, SsoRefusal> {
    let g = |k: &str| {
        super::store::get_ci(ud, k)
            .and_then(scalar_string)
            .unwrap_or_default()
    };
    let claims = SsoClaims {
        dbid: g("dbid"),
        username: g("username"),
        appid: g("appid"),
        timestamp: g("timestamp"),
        signeddata: g("signeddata").to_ascii_lowercase(),
        algorithm: SignAlgorithm::Sha256,
        lcid: {
            let l = g("lcid");
            if l.is_empty() { "2052".to_owned() } else { l }
        },
        formid: g("formid"),
        formtype: g("formtype"),
        pkid: g("pkid"),
        openmode: g("openmode"),
        permit_count: parse_permit_count(&g("otherargs")),
    };
    if claims.username.is_empty() || claims.appid.is_empty() || claims.signeddata.is_empty() {
        return Err(refuse(
            "bad_ud",
            "登录参数不完整：username、appid、signeddata不能为空。",
        ));
    }
    if claims.appid != cfg.sso_app_id {
        return Err(refuse(
            "unknown_app",
            format!("应用ID“{}”未在第三方系统登录授权中注册。", claims.appid),
        ));
    }
    if claims.dbid != cfg.acct_id {
        return Err(refuse(
            "unknown_dbid",
            format!("数据中心“{}”不存在。", claims.dbid),
        ));
    }
    let algorithm = match SignAlgorithm::from_hex_len(claims.signeddata.len()) {
        Some(SignAlgorithm::Sha1) if !cfg.sso_allow_sha1 => {
            return Err(refuse(
                "sha1_disabled",
                "SHA1签名已停用，请使用V4协议（SHA256）。",
            ));
        }
        Some(a) => a,
        None => return Err(refuse("bad_signature", "签名信息格式错误。")),
    };
    let expected = auth::sorted_sign(
        &[
            &claims.dbid,
            &claims.username,
            &claims.appid,
            &cfg.sso_app_secret,
            &claims.timestamp,
        ],
        algorithm,
    );
    if !auth::same(&claims.signeddata, &expected) {
        return Err(refuse(
            "bad_signature",
            "签名信息验证失败，请检查应用密钥。",
        ));
    }
    let Some(ts) = auth::timestamp_seconds(&claims.timestamp) else {
        return Err(refuse("bad_timestamp", "时间戳格式错误。"));
    };
    if !within(now, ts, cfg.sso_link_validity.as_secs() as i64) {
        return Err(refuse(
            "expired",
            format!(
                "登录链接已过期（有效期{}秒），请重新生成。",
                cfg.sso_link_validity.as_secs()
            ),
        ));
    }
    Ok(SsoClaims {
        algorithm,
        ..claims
    })
}

/// `|{'permitcount':'1'}` → `Some(1)`.
pub fn parse_permit_count(other: &str) -> Option<u32> {
    let lower = other.to_ascii_lowercase();
    let at = lower.find("permitcount")?;
    lower[at + "permitcount".len()..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}
