//! Golden vectors through the sandbox's own verifier, every login mode, signature failures,
//! sessions and the SSO entry.
#![allow(clippy::unwrap_used)]

mod kingdee_support;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use kingdee_support::*;
use sandbox::kingdee::auth::{self, SignAlgorithm};
use sandbox::kingdee::{KingdeeSandboxConfig, verify};
use serde_json::{Value, json};

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn config_for(inputs: &Value) -> KingdeeSandboxConfig {
    KingdeeSandboxConfig {
        acct_id: s(&inputs["acct_id"]).into(),
        app_id: s(&inputs["app_id"]).into(),
        app_secret: s(&inputs["app_secret"]).into(),
        user_name: s(&inputs["user_name"]).into(),
        ..KingdeeSandboxConfig::default()
    }
}

fn header_map(headers: &Value) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers.as_object().unwrap() {
        map.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(s(v)).unwrap(),
        );
    }
    map
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

#[test]
fn signature_header_vectors_recomputed() {
    let v = vectors();
    assert_eq!(v["app_secret_xor_key"], auth::APP_SECRET_XOR_KEY);
    let cases = v["sdk_signature_headers"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = s(&case["name"]);
        let inputs = &case["inputs"];
        let mid = &case["intermediate"];
        let headers = &case["headers"];
        let (client_id, suffix) = auth::split_app_id(s(&inputs["app_id"])).unwrap();
        assert_eq!(client_id, s(&mid["client_id"]), "{name}");
        assert_eq!(suffix, s(&mid["app_id_suffix"]), "{name}");
        let secret = auth::client_secret(suffix).unwrap();
        assert_eq!(secret, s(&mid["client_secret_decoded"]), "{name}");
        let path = path_of(s(&case["full_url"]));
        let enc = auth::enc_path_python(&path);
        assert_eq!(enc, s(&mid["path_for_signing"]), "{name}");
        let ts = inputs["timestamp"].to_string();
        let sts = auth::string_to_sign(&enc, &ts, &ts);
        assert_eq!(sts, s(&mid["string_to_sign"]), "{name}");
        assert_eq!(
            auth::kd_hmac(&sts, &secret),
            s(&headers["X-Api-Signature"]),
            "{name}"
        );
        let plain = auth::app_data_plain(
            s(&inputs["acct_id"]),
            s(&inputs["user_name"]),
            &inputs["lcid"].to_string(),
            &inputs["org_num"].to_string(),
        );
        assert_eq!(plain, s(&mid["x_kd_appdata_plain"]), "{name}");
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(&plain),
            s(&headers["X-Kd-Appdata"]),
            "{name}"
        );
        let kd = auth::kd_hmac(
            &format!("{}{plain}", s(&inputs["app_id"])),
            s(&inputs["app_secret"]),
        );
        assert_eq!(kd, s(&headers["X-Kd-Signature"]), "{name}");
        assert_eq!(kd.len(), 88);

        // The whole header set through the verifier, at the vector's own time.
        let cfg = config_for(inputs);
        let ts_i = inputs["timestamp"].as_i64().unwrap();
        let id = verify::verify_signature_headers(&cfg, &path, &header_map(headers), ts_i).unwrap();
        assert_eq!(id.user_name, s(&inputs["user_name"]), "{name}");
        assert_eq!(id.org_num, inputs["org_num"].to_string(), "{name}");
        // An hour later the same headers are stale.
        let err = verify::verify_signature_headers(&cfg, &path, &header_map(headers), ts_i + 3600)
            .unwrap_err();
        assert!(err.message.contains("时间戳"), "{name}: {}", err.message);
        // Another path (the headers replayed on another operation) fails X-Api-Signature.
        let err = verify::verify_signature_headers(
            &cfg,
            &path
                .replace(".Save.", ".Delete.")
                .replace(".View.", ".Delete.")
                .replace(".Audit.", ".Delete.")
                .replace(".ExecuteBillQuery.", ".Delete."),
            &header_map(headers),
            ts_i,
        )
        .unwrap_err();
        assert!(
            err.message.contains("X-Api-Signature"),
            "{name}: {}",
            err.message
        );
        // Another secret fails X-Kd-Signature.
        let wrong = KingdeeSandboxConfig {
            app_secret: "00000000000000000000000000000000".into(),
            ..cfg.clone()
        };
        let err = verify::verify_signature_headers(&wrong, &path, &header_map(headers), ts_i)
            .unwrap_err();
        assert!(
            err.message.contains("X-Kd-Signature"),
            "{name}: {}",
            err.message
        );
    }
}

#[test]
fn login_by_sign_vectors_recomputed() {
    let v = vectors();
    for case in v["login_by_sign"].as_array().unwrap() {
        let i = &case["inputs"];
        let parts = [
            s(&i["acct_id"]),
            s(&i["user_name"]),
            s(&i["app_id"]),
            s(&i["app_secret"]),
            s(&i["timestamp"]),
        ];
        assert_eq!(auth::sorted_concat(&parts), s(&case["sorted_concat"]));
        let alg = match s(&case["algorithm"]) {
            "sha1" => SignAlgorithm::Sha1,
            _ => SignAlgorithm::Sha256,
        };
        assert_eq!(auth::sorted_sign(&parts, alg), s(&case["sign"]));
        let cfg = KingdeeSandboxConfig {
            acct_id: parts[0].into(),
            app_id: parts[2].into(),
            app_secret: parts[3].into(),
            ..KingdeeSandboxConfig::default()
        };
        let now: i64 = parts[4].parse().unwrap();
        let got = verify::verify_login_by_sign(
            &cfg,
            parts[0],
            parts[1],
            parts[2],
            parts[4],
            s(&case["sign"]),
            now,
        );
        assert_eq!(got, Ok(alg));
        assert!(
            verify::verify_login_by_sign(
                &cfg,
                parts[0],
                "other",
                parts[2],
                parts[4],
                s(&case["sign"]),
                now
            )
            .is_err()
        );
        let stale = verify::verify_login_by_sign(
            &cfg,
            parts[0],
            parts[1],
            parts[2],
            parts[4],
            s(&case["sign"]),
            now + 3600,
        );
        assert!(stale.unwrap_err().contains("时间戳"));
    }
}

#[test]
fn sso_signeddata_vectors_recomputed() {
    let v = vectors();
    for case in v["sso_signeddata"].as_array().unwrap() {
        let i = &case["inputs"];
        let parts = [
            s(&i["dbid"]),
            s(&i["username"]),
            s(&i["appid"]),
            s(&i["appsecret"]),
            s(&i["timestamp"]),
        ];
        assert_eq!(auth::sorted_concat(&parts), s(&case["sorted_concat"]));
        let alg = match s(&case["algorithm"]) {
            "sha1" => SignAlgorithm::Sha1,
            _ => SignAlgorithm::Sha256,
        };
        assert_eq!(auth::sorted_sign(&parts, alg), s(&case["signeddata"]));
        // `ud` decodes from the raw and the percent-encoded URL alike.
        let want: Value = serde_json::from_str(s(&case["ud_json"])).unwrap();
        for url in [
            s(&case["html5_url_raw"]),
            s(&case["html5_url_percent_encoded"]),
        ] {
            let raw = url.split_once("ud=").unwrap().1;
            assert_eq!(Value::Object(verify::decode_ud(raw).unwrap()), want);
        }
        let cfg = KingdeeSandboxConfig {
            acct_id: parts[0].into(),
            sso_app_id: parts[2].into(),
            sso_app_secret: parts[3].into(),
            ..KingdeeSandboxConfig::default()
        };
        let ud = verify::decode_ud(s(&case["ud_base64"])).unwrap();
        let now: i64 = parts[4].parse().unwrap();
        let claims = verify::verify_sso_claims(&cfg, &ud, now).unwrap();
        assert_eq!(claims.algorithm, alg);
        assert_eq!(claims.username, parts[1]);
        assert_eq!(
            verify::verify_sso_claims(&cfg, &ud, now + 3600)
                .unwrap_err()
                .code,
            "expired"
        );
    }
}

/// Replays golden header sets over HTTP with the sandbox clock pinned to their timestamps.
#[tokio::test]
async fn golden_headers_accepted_over_http() {
    let v = vectors();
    let mut sb = start(KingdeeSandboxConfig::default()).await;
    // The vectors' second case signs as 张三: create that user first.
    sb.login().await;
    let r = sb
        .op(
            "Save",
            json!(["SEC_User", {"Model": {"FUserAccount": "张三", "FName": "张三"}}]),
        )
        .await;
    assert_ok(&r);
    let gva = json!({"Model": {"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "GVA", "FName": "待审核部门"}});
    assert_ok(&sb.op("Save", json!(["BD_Department", gva])).await);
    assert_ok(
        &sb.op("Submit", json!(["BD_Department", {"Numbers": ["GVA"]}]))
            .await,
    );
    sb.sid = None;
    for case in v["sdk_signature_headers"].as_array().unwrap() {
        let inputs = &case["inputs"];
        if s(&inputs["app_id"]) != sb.sandbox.config().app_id {
            continue; // the SDK-sample credentials belong to another data centre
        }
        sb.sandbox.pin_clock(inputs["timestamp"].as_i64());
        let service = s(&inputs["service"]);
        let path = path_of(s(&case["full_url"]));
        let body = match service.rsplit('.').next().unwrap() {
            "Save" => json!({"formid": "BD_Department", "data": {"Model": {
                "FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "GV01", "FName": "金标部门"}}}),
            "Audit" => json!({"formid": "BD_Department", "data": {"Numbers": ["GVA"]}}),
            _ => {
                json!({"data": {"FormId": "BD_Department", "FieldKeys": "FNumber,FName", "FilterString": "FNumber = 'BM00002'"}})
            }
        };
        let mut req = sb
            .http
            .post(format!("{}{path}", sb.origin))
            .body(body.to_string());
        for (k, val) in case["headers"].as_object().unwrap() {
            if k != "Cookie" && k != "kdservice-sessionid" {
                req = req.header(k.as_str(), s(val));
            }
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        let text = resp.to_string();
        assert!(
            !text.contains("\"IsSuccess\":false"),
            "{}: {text}",
            s(&case["name"])
        );
        if service.ends_with("ExecuteBillQuery") {
            assert_eq!(resp, json!([["BM00002", "总经办"]]));
        }
    }
    sb.sandbox.pin_clock(None);
    // Each signed call without a session cookie opened its own session.
    let c = sb.admin_get("counters").await;
    assert_eq!(c["logins_by_mode"]["SignatureHeaders"], 3, "{c}");
}

fn sign_headers(
    cfg: &KingdeeSandboxConfig,
    path: &str,
    ts: i64,
    user: &str,
) -> Vec<(String, String)> {
    let (client, suffix) = auth::split_app_id(&cfg.app_id).unwrap();
    let secret = auth::client_secret(suffix).unwrap();
    let ts = ts.to_string();
    let sts = auth::string_to_sign(&auth::enc_path_python(path), &ts, &ts);
    let plain = auth::app_data_plain(&cfg.acct_id, user, "2052", "0");
    vec![
        ("X-Api-ClientID".into(), client.into()),
        ("X-Api-Auth-Version".into(), "2.0".into()),
        ("x-api-timestamp".into(), ts.clone()),
        ("x-api-nonce".into(), ts.clone()),
        (
            "x-api-signheaders".into(),
            "x-api-timestamp,x-api-nonce".into(),
        ),
        ("X-Api-Signature".into(), auth::kd_hmac(&sts, &secret)),
        ("X-Kd-Appkey".into(), cfg.app_id.clone()),
        (
            "X-Kd-Appdata".into(),
            base64::engine::general_purpose::STANDARD.encode(&plain),
        ),
        (
            "X-Kd-Signature".into(),
            auth::kd_hmac(&format!("{}{plain}", cfg.app_id), &cfg.app_secret),
        ),
    ]
}

#[tokio::test]
async fn bad_signature_and_expired_timestamp_are_kingdee_errors() {
    let sb = start(KingdeeSandboxConfig::default()).await;
    let cfg = sb.sandbox.config().clone();
    let service = format!("{STUB}.DynamicFormService.View");
    let path = format!("/k3cloud/{service}.common.kdsvc");
    let body = json!({"formid": "BD_Department", "data": {"Number": "BM00002"}}).to_string();
    let send = |headers: Vec<(String, String)>, svc: String| {
        let mut req = sb.http.post(sb.url(&svc)).body(body.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let now = sb.sandbox.now();
    // Good.
    let r = send(sign_headers(&cfg, &path, now, "webapi"), service.clone()).await;
    assert_ok(&r);
    assert_eq!(r["Result"]["Result"]["Name"], "总经办");
    // Millisecond timestamps (Java SDK) are accepted too.
    let r = send(
        sign_headers(&cfg, &path, now * 1000, "webapi"),
        service.clone(),
    )
    .await;
    assert_ok(&r);
    // Tampered X-Kd-Signature.
    let mut h = sign_headers(&cfg, &path, now, "webapi");
    h.iter_mut().find(|(k, _)| k == "X-Kd-Signature").unwrap().1 = "AAAA".into();
    let m = assert_err(&send(h, service.clone()).await, 2);
    assert!(m.contains("X-Kd-Signature"), "{m}");
    // Wrong secret for the API signature (signed for another path).
    let h = sign_headers(&cfg, "/k3cloud/other", now, "webapi");
    let m = assert_err(&send(h, service.clone()).await, 2);
    assert!(m.contains("X-Api-Signature"), "{m}");
    // Expired timestamp: outside the 5-minute skew.
    let m = assert_err(
        &send(
            sign_headers(&cfg, &path, now - 301, "webapi"),
            service.clone(),
        )
        .await,
        2,
    );
    assert!(m.contains("时间戳"), "{m}");
    // Within the skew: fine.
    assert_ok(
        &send(
            sign_headers(&cfg, &path, now - 200, "webapi"),
            service.clone(),
        )
        .await,
    );
    // Unknown user.
    let m = assert_err(
        &send(sign_headers(&cfg, &path, now, "nobody"), service.clone()).await,
        2,
    );
    assert!(m.contains("nobody"), "{m}");
    // Query errors come wrapped.
    let qsvc = format!("{STUB}.DynamicFormService.ExecuteBillQuery");
    let qpath = format!("/k3cloud/{qsvc}.common.kdsvc");
    let mut req = sb
        .http
        .post(sb.url(&qsvc))
        .body(json!({"data": {"FormId": "BD_Department", "FieldKeys": "FNumber"}}).to_string());
    for (k, v) in sign_headers(&cfg, &qpath, now - 3600, "webapi") {
        req = req.header(k, v);
    }
    let r: Value = req.send().await.unwrap().json().await.unwrap();
    assert!(r.to_string().contains(",\"IsSuccess\":false,"), "{r}");
    assert_query_err(&r, 2);
    assert_eq!(sb.sandbox.counters().failed_logins, 5);
}

#[tokio::test]
async fn login_modes_and_body_encodings() {
    let sb = start(KingdeeSandboxConfig::default()).await;
    let cfg = sb.sandbox.config().clone();
    let auth_svc = |m: &str| format!("{STUB}.AuthService.{m}");
    // ValidateUser: positional, legacy C# envelope (parameters as a JSON string), named keys,
    // lower-case method name.
    let bodies = [
        json!({"parameters": [cfg.acct_id, "webapi", "888888", 2052]}),
        json!({"format": 1, "useragent": "ApiClient", "rid": "123", "v": "1.0", "timestamp": "2024-01-01",
               "parameters": json!([cfg.acct_id, "webapi", "888888", 2052]).to_string()}),
        json!({"acctid": cfg.acct_id, "username": "webapi", "password": "888888", "lcid": 2052}),
    ];
    for b in bodies {
        let r = sb.post(&auth_svc("validateuser"), b).await;
        assert_eq!(r["LoginResultType"], 1, "{r}");
        assert_eq!(r["IsSuccessByAPI"], true);
        assert_eq!(r["Context"]["UserName"], "webapi");
        assert_eq!(r["KDSVCSessionId"], r["Context"]["SessionId"]);
    }
    let r = sb
        .post(
            &auth_svc("ValidateUser"),
            json!({"parameters": [cfg.acct_id, "webapi", "wrong", 2052]}),
        )
        .await;
    assert_eq!(r["LoginResultType"], 0);
    assert_eq!(r["Message"], "用户名或密码错误！");
    let r = sb
        .post(
            &auth_svc("ValidateUser"),
            json!({"parameters": ["nope", "webapi", "888888", 2052]}),
        )
        .await;
    assert_eq!(r["LoginResultType"], -1);

    // LoginByAppSecret.
    let r = sb
        .post(
            &auth_svc("LoginByAppSecret"),
            json!({"parameters": [cfg.acct_id, "webapi", cfg.app_id, cfg.app_secret, 2052]}),
        )
        .await;
    assert_eq!(r["LoginResultType"], 1, "{r}");
    let r = sb
        .post(&auth_svc("LoginByAppSecret"), json!({"acctid": cfg.acct_id, "username": "webapi", "appid": cfg.app_id, "appsecret": "x", "lcid": 2052}))
        .await;
    assert_eq!(r["LoginResultType"], -1);

    // LoginBySign, SHA-256 and SHA-1, timestamps as strings (the manual's named form too).
    let now = sb.sandbox.now().to_string();
    for alg in [SignAlgorithm::Sha256, SignAlgorithm::Sha1] {
        let sign = auth::sorted_sign(
            &[&cfg.acct_id, "webapi", &cfg.app_id, &cfg.app_secret, &now],
            alg,
        );
        let r = sb
            .post(&auth_svc("LoginBySign"), json!({"parameters": json!([cfg.acct_id, "webapi", cfg.app_id, now, sign, "2052"]).to_string()}))
            .await;
        assert_eq!(r["LoginResultType"], 1, "{r}");
        let r = sb
            .post(&auth_svc("LoginBySign"), json!({"acctID": cfg.acct_id, "username": "webapi", "appId": cfg.app_id, "timestamp": now, "sign": sign, "lcid": 2052}))
            .await;
        assert_eq!(r["LoginResultType"], 1, "{r}");
    }
    let old = (sb.sandbox.now() - 600).to_string();
    let sign = auth::sorted_sign(
        &[&cfg.acct_id, "webapi", &cfg.app_id, &cfg.app_secret, &old],
        SignAlgorithm::Sha256,
    );
    let r = sb
        .post(
            &auth_svc("LoginBySign"),
            json!({"parameters": [cfg.acct_id, "webapi", cfg.app_id, old, sign, 2052]}),
        )
        .await;
    assert_eq!(r["LoginResultType"], -1);
    assert!(s(&r["Message"]).contains("时间戳"), "{r}");
    let r = sb
        .post(
            &auth_svc("LoginBySign"),
            json!({"parameters": [cfg.acct_id, "webapi", cfg.app_id, now, "0".repeat(64), 2052]}),
        )
        .await;
    assert_eq!(r["Message"], "签名信息验证失败。");

    let c = sb.sandbox.counters();
    assert_eq!(c.logins, 3 + 1 + 4);
    assert_eq!(c.logins_by_mode["LoginBySign"], 4);
    assert_eq!(c.failed_logins, 5);

    // GetDataCenterList needs no login.
    let r = sb
        .post(
            "Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList",
            json!({}),
        )
        .await;
    assert_eq!(r[0]["Id"], cfg.acct_id);
}

#[tokio::test]
async fn sessions_cookie_header_expiry_and_logout() {
    let cfg = KingdeeSandboxConfig {
        session_idle: Duration::from_secs(20 * 60),
        ..KingdeeSandboxConfig::default()
    };
    let mut sb = start(cfg.clone()).await;
    let view = json!(["BD_Department", {"Number": "BM00002"}]);
    // No session at all.
    let m = assert_err(&sb.op("View", view.clone()).await, 1);
    assert_eq!(m, "会话信息已丢失，请重新登录");
    let q = json!([{"FormId": "BD_Department", "FieldKeys": "FNumber"}]);
    assert_eq!(
        assert_query_err(&sb.op("ExecuteBillQuery", q.clone()).await, 1),
        "会话信息已丢失，请重新登录"
    );

    // Cookies from the login response work as they are (Python SDK style).
    let resp = sb
        .http
        .post(sb.url(&format!("{STUB}.AuthService.ValidateUser")))
        .body(json!({"parameters": [cfg.acct_id, "webapi", "888888", 2052]}).to_string())
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[0].starts_with("kdservice-sessionid="));
    assert!(cookies[1].starts_with("ASP.NET_SessionId="));
    let sid = cookies[0]
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    let cookie = format!("Theme=standard;kdservice-sessionid={sid}; ASP.NET_SessionId=x");
    let r: Value = sb
        .http
        .post(sb.url(&format!("{STUB}.DynamicFormService.View")))
        .header("Cookie", cookie)
        .body(json!({"parameters": view}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ok(&r);
    // The Java SDK's `SID` header.
    let r: Value = sb
        .http
        .post(sb.url(&format!("{STUB}.DynamicFormService.View")))
        .header("SID", &sid)
        .body(json!({"parameters": view}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ok(&r);

    // Sliding expiry: 15 + 15 minutes with a call in between is fine, 21 idle minutes is not.
    sb.login().await;
    sb.sandbox.advance_clock(15 * 60);
    assert_ok(&sb.op("View", view.clone()).await);
    sb.sandbox.advance_clock(15 * 60);
    assert_ok(&sb.op("View", view.clone()).await);
    sb.sandbox.advance_clock(21 * 60);
    assert_eq!(
        assert_err(&sb.op("View", view.clone()).await, 1),
        "会话信息已丢失，请重新登录"
    );
    assert_eq!(sb.sandbox.counters().sessions_expired, 1);

    // Dropped sessions (admin fault) and Logout.
    sb.login().await;
    assert_ok(&sb.op("View", view.clone()).await);
    let r = sb.admin_post("sessions/drop", json!({})).await;
    assert!(r["dropped"].as_u64().unwrap() >= 1);
    assert_err(&sb.op("View", view.clone()).await, 1);
    sb.login().await;
    let r = sb
        .post(&format!("{STUB}.AuthService.Logout"), json!({}))
        .await;
    assert_eq!(r, Value::Bool(true));
    assert_err(&sb.op("View", view).await, 1);
}

fn ud_for(
    cfg: &KingdeeSandboxConfig,
    user: &str,
    ts: i64,
    alg: SignAlgorithm,
    other: &str,
) -> String {
    let ts = ts.to_string();
    let signed = auth::sorted_sign(
        &[
            &cfg.acct_id,
            user,
            &cfg.sso_app_id,
            &cfg.sso_app_secret,
            &ts,
        ],
        alg,
    );
    let ud = json!({"dbid": cfg.acct_id, "username": user, "appid": cfg.sso_app_id, "signeddata": signed,
        "timestamp": ts, "lcid": "2052", "origintype": "SimPas", "entryrole": "", "formid": "", "formtype": "",
        "pkid": "", "otherargs": other, "openmode": null});
    base64::engine::general_purpose::STANDARD.encode(ud.to_string())
}

async fn sso_page(sb: &Served, ud: &str) -> (u16, String, String) {
    let resp = sb
        .http
        .get(format!("{}/k3cloud/html5/index.aspx?ud={ud}", sb.origin))
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let html = resp.text().await.unwrap();
    let result = html
        .split("name=\"kd-sso-result\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (code, result, html)
}

#[tokio::test]
async fn sso_entry_verifies_links() {
    let cfg = KingdeeSandboxConfig {
        sso_allowed_users: Some(vec!["E0001".into(), "E0002".into(), "zhangsan".into()]),
        ..KingdeeSandboxConfig::default()
    };
    let mut sb = start(cfg.clone()).await;
    let seed = sandbox::seed::Seed::builtin();
    let now = sb.sandbox.now();

    // V4 (SHA-256), raw base64 in the URL.
    let ud = ud_for(&cfg, "E0001", now, SignAlgorithm::Sha256, "");
    let (code, result, html) = sso_page(&sb, &ud).await;
    assert_eq!((code, result.as_str()), (200, "ok"), "{html}");
    assert!(html.contains(&seed.users[0].name), "{html}");
    assert!(html.contains("已登录"));
    assert!(html.contains("V4"));
    // Reusable by default.
    assert_eq!(sso_page(&sb, &ud).await.1, "ok");
    // V2/V3 (SHA-1), percent-encoded.
    let ud1 = ud_for(&cfg, "E0002", now, SignAlgorithm::Sha1, "");
    let (code, result, _) = sso_page(&sb, &urlencoding::encode(&ud1)).await;
    assert_eq!((code, result.as_str()), (200, "ok"));
    // permitcount 1: one use only.
    let once = ud_for(
        &cfg,
        "E0001",
        now + 1,
        SignAlgorithm::Sha256,
        "|{'permitcount':'1'}",
    );
    assert_eq!(sso_page(&sb, &once).await.1, "ok");
    let (code, result, html) = sso_page(&sb, &once).await;
    assert_eq!((code, result.as_str()), (403, "link_used"));
    assert!(html.contains("仅供使用一次"));
    // Failures.
    let expired = ud_for(&cfg, "E0001", now - 3600, SignAlgorithm::Sha256, "");
    assert_eq!(sso_page(&sb, &expired).await.1, "expired");
    let not_allowed = ud_for(&cfg, "E0003", now, SignAlgorithm::Sha256, "");
    let (_, result, html) = sso_page(&sb, &not_allowed).await;
    assert_eq!(result, "user_not_allowed");
    assert!(html.contains("不在该应用的指定登录用户列表中"));
    let wrong = KingdeeSandboxConfig {
        sso_app_secret: "ffffffffffffffffffffffffffffffff".into(),
        ..cfg.clone()
    };
    assert_eq!(
        sso_page(
            &sb,
            &ud_for(&wrong, "E0001", now, SignAlgorithm::Sha256, "")
        )
        .await
        .1,
        "bad_signature"
    );
    assert_eq!(
        sso_page(
            &sb,
            &ud_for(&cfg, "zhangsan", now, SignAlgorithm::Sha256, "")
        )
        .await
        .1,
        "unknown_user"
    );
    assert_eq!(sso_page(&sb, "!!!").await.1, "bad_ud");

    // The golden V4 link, with the clock pinned to its timestamp and the user created.
    sb.login().await;
    assert_ok(
        &sb.op(
            "Save",
            json!(["SEC_User", {"Model": {"FUserAccount": "zhangsan", "FName": "张三"}}]),
        )
        .await,
    );
    let v = vectors();
    let case = &v["sso_signeddata"][0];
    let golden = KingdeeSandboxConfig {
        sso_app_id: s(&case["inputs"]["appid"]).into(),
        sso_app_secret: s(&case["inputs"]["appsecret"]).into(),
        ..cfg
    };
    assert_eq!(golden.sso_app_id, sb.sandbox.config().sso_app_id);
    sb.sandbox.pin_clock(Some(1_700_000_000));
    let raw = s(&case["html5_url_raw"])
        .split_once("ud=")
        .unwrap()
        .1
        .to_owned();
    let (code, result, html) = sso_page(&sb, &raw).await;
    assert_eq!((code, result.as_str()), (200, "ok"), "{html}");
    assert!(html.contains("张三"));
    let c = sb.sandbox.counters();
    assert_eq!(c.sso_logins, 5);
    assert_eq!(c.sso_refused, 6);
}
