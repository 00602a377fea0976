//! Login (protocol §6): in-app auth code → userid, web OAuth2 (login page redirect,
//! userAccessToken, users/me, refresh), codes minted by the admin API.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use dingtalk_support::*;
use sandbox::dingtalk::{DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandboxConfig};
use serde_json::{Value, json};

fn first_user(s: &Served) -> (String, String, String) {
    let org = s.sandbox.org();
    let p = org.users.values().min_by_key(|p| p.seq).unwrap();
    (p.userid.clone(), p.unionid.clone(), p.name.clone())
}

#[tokio::test]
async fn an_inapp_code_gives_the_userid_once() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let (userid, unionid, name) = first_user(&s);
    let r = s.admin("login/code", json!({"userid": userid})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["expires_in"], 300);
    let code = r["code"].as_str().unwrap().to_owned();
    let tok = s.token().await;
    let v = s
        .oapi(&tok, "/topapi/v2/user/getuserinfo", json!({"code": code}))
        .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["result"]["userid"], userid.as_str());
    assert_eq!(v["result"]["unionid"], unionid.as_str());
    assert_eq!(v["result"]["name"], name.as_str());
    assert!(v["result"]["sys_level"].is_number());
    assert!(v["result"]["sys"].is_boolean());
    // Single use.
    let v = s
        .oapi(&tok, "/topapi/v2/user/getuserinfo", json!({"code": code}))
        .await;
    assert_eq!(v["errcode"], 40078, "{v}");
    // Expired after 5 minutes (sandbox clock).
    let code = s.admin("login/code", json!({"userid": userid})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    s.admin("clock", json!({"advance_secs": 301})).await;
    let tok = s.token().await;
    let v = s
        .oapi(&tok, "/topapi/v2/user/getuserinfo", json!({"code": code}))
        .await;
    assert_eq!(v["errcode"], 40078, "{v}");
    // Missing code, unknown user, an OAuth code at the in-app API.
    let v = s.oapi(&tok, "/topapi/v2/user/getuserinfo", json!({})).await;
    assert_eq!(v["errcode"], 40035, "{v}");
    let r = s.admin("login/code", json!({"userid": "nobody"})).await;
    assert_eq!(r["ok"], false);
    let code = s
        .admin("login/code", json!({"userid": userid, "kind": "oauth"}))
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = s
        .oapi(&tok, "/topapi/v2/user/getuserinfo", json!({"code": code}))
        .await;
    assert_eq!(v["errcode"], 40078, "{v}");
}

async fn user_token(s: &Served, body: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(s.url("/v1.0/oauth2/userAccessToken"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn web_oauth_login_page_code_token_and_me() {
    let s = start(DingTalkSandboxConfig::default()).await;
    // Pick who signs in on the fake login page.
    let someone = {
        let org = s.sandbox.org();
        let mut v: Vec<_> = org.users.values().collect();
        v.sort_by_key(|p| p.seq);
        v[5].clone()
    };
    let r = s.admin("login/as", json!({"userid": someone.userid})).await;
    assert_eq!(r["login_as"], someone.userid.as_str(), "{r}");

    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect
        .get(s.url("/oauth2/auth"))
        .query(&[
            (
                "redirect_uri",
                "http://hub.example.invalid/sso/dingtalk?x=1",
            ),
            ("response_type", "code"),
            ("client_id", DEFAULT_APP_KEY),
            ("scope", "openid"),
            ("state", "st ate"),
            ("prompt", "consent"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with("http://hub.example.invalid/sso/dingtalk?x=1&code="),
        "{loc}"
    );
    assert!(loc.ends_with("&state=st%20ate"), "{loc}");
    let code = loc
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap()
        .to_owned();
    assert!(loc.contains(&format!("authCode={code}")));

    // Bad client on the page.
    let resp = no_redirect
        .get(s.url("/oauth2/auth"))
        .query(&[("redirect_uri", "http://x.invalid/"), ("client_id", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": "wrong", "code": code,
               "grantType": "authorization_code"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "invalidClientIdOrSecret");
    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": DEFAULT_APP_SECRET, "code": code,
               "grantType": "authorization_code"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expireIn"], 7200);
    assert_eq!(v["corpId"], s.sandbox.corp_id());
    let access = v["accessToken"].as_str().unwrap().to_owned();
    let refresh = v["refreshToken"].as_str().unwrap().to_owned();
    // The code is spent.
    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": DEFAULT_APP_SECRET, "code": code,
               "grantType": "authorization_code"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");

    let (st, me) = s.v1_get(&access, "/v1.0/contact/users/me", &[]).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["nick"], someone.name.as_str());
    assert_eq!(me["unionId"], someone.unionid.as_str());
    assert_eq!(me["mobile"], someone.mobile.as_str());
    // unionId → userid with the app token (§6.2 step 4).
    let tok = s.token().await;
    let v = s
        .oapi(
            &tok,
            "/topapi/user/getbyunionid",
            json!({"unionid": me["unionId"]}),
        )
        .await;
    assert_eq!(v["result"]["userid"], someone.userid.as_str(), "{v}");
    // `me` needs a user token.
    let (st, v) = s.v1_get(&tok, "/v1.0/contact/users/me", &[]).await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = s.v1_get("bogus", "/v1.0/contact/users/me", &[]).await;
    assert_eq!(st, 400);

    // Refresh: a new access token for the same user.
    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": DEFAULT_APP_SECRET,
               "refreshToken": refresh, "grantType": "refresh_token"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let access2 = v["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(access2, access);
    // Expiry after 7200 s.
    s.admin("clock", json!({"advance_secs": 7201})).await;
    let (st, v) = s.v1_get(&access2, "/v1.0/contact/users/me", &[]).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "InvalidAuthentication");
    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": DEFAULT_APP_SECRET,
               "grantType": "password"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let c = s.admin_get("counters").await;
    assert_eq!(c["user_tokens_issued"], 2, "{c}");
}

#[tokio::test]
async fn admin_minted_oauth_codes_work_without_the_page() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let (userid, unionid, _) = first_user(&s);
    let code = s
        .admin(
            "login/code",
            json!({"userid": userid, "kind": "oauth", "app_key": DEFAULT_APP_KEY}),
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = user_token(
        &s,
        json!({"clientId": DEFAULT_APP_KEY, "clientSecret": DEFAULT_APP_SECRET, "code": code,
               "grantType": "authorization_code"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, me) = s
        .v1_get(
            v["accessToken"].as_str().unwrap(),
            "/v1.0/contact/users/me",
            &[],
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(me["unionId"], unionid.as_str());
    let state = s.admin_get("login").await;
    assert_eq!(state["login_as"], userid.as_str(), "{state}");
    assert_eq!(state["user_tokens"], 1);
}
