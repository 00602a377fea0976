//! Limits (protocol §7, §1.6): per app × API QPS by edition, the per-IP ban page, the
//! monthly quota switch and injected faults.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use std::time::Duration;

use dingtalk_support::*;
use sandbox::dingtalk::{AppConfig, DingTalkSandboxConfig, Edition};
use serde_json::{Value, json};

/// Fires `n` concurrent calls and answers their errcodes.
async fn burst(s: &Served, tok: &str, n: usize, path: &str, body: Value) -> Vec<i64> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let http = s.http.clone();
        let url = s.url(path);
        let tok = tok.to_owned();
        let body = body.clone();
        set.spawn(async move {
            let v: Value = http
                .post(url)
                .query(&[("access_token", tok)])
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["errcode"].as_i64().unwrap()
        });
    }
    let mut codes = Vec::new();
    while let Some(c) = set.join_next().await {
        codes.push(c.unwrap());
    }
    codes
}

/// Lets the previous window's calls age out.
async fn align_to_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let _ = now;
    tokio::time::sleep(Duration::from_millis(1050)).await;
}

#[tokio::test]
async fn qps_limit_by_edition_answers_90018_and_403() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let tok = s.token().await;
    // Windows are 1 s long; a burst of 60 within well under a second must see refusals,
    // and at most 20 successes per window (a burst can straddle two windows: ≤ 40).
    align_to_window().await;
    let t0 = std::time::Instant::now();
    let codes = burst(
        &s,
        &tok,
        100,
        "/topapi/v2/department/listsubid",
        json!({"dept_id": 1}),
    )
    .await;
    let windows = t0.elapsed().as_secs() as usize + 2;
    let ok = codes.iter().filter(|c| **c == 0).count();
    let throttled = codes.iter().filter(|c| **c == 90018).count();
    assert_eq!(ok + throttled, 100, "{codes:?}");
    assert!(throttled > 0, "{codes:?}");
    assert!(ok >= 20 && ok <= 20 * windows, "{ok} in {windows} windows");
    // Another API has its own budget.
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 0);
    // After the window the API answers again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/listsubid",
            json!({"dept_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    assert!(s.sandbox.counters().qps_rejections >= 20);

    // v1.0 family: HTTP 403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi.
    let mut statuses = Vec::new();
    let mut codes = Vec::new();
    for _ in 0..80 {
        let (st, b) = s
            .v1_get(
                &tok,
                "/v1.0/workflow/forms/schemas/processCodes",
                &[("processCode", "PROC-SBX-QJ-2B8D6E41-0002")],
            )
            .await;
        statuses.push(st);
        if st == 403 {
            codes.push(b["code"].as_str().unwrap().to_owned());
        }
    }
    assert!(statuses.contains(&403), "{statuses:?}");
    assert!(
        codes
            .iter()
            .all(|c| c == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    );
}

#[tokio::test]
async fn exclusive_edition_allows_60_per_second() {
    let cfg = DingTalkSandboxConfig {
        apps: vec![AppConfig {
            app_key: "dingexclusive".into(),
            app_secret: "s".into(),
            agent_id: 1,
            edition: Edition::Exclusive,
        }],
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let v: Value = s
        .http
        .get(s.url("/gettoken?appkey=dingexclusive&appsecret=s"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = v["access_token"].as_str().unwrap().to_owned();
    align_to_window().await;
    let t0 = std::time::Instant::now();
    let codes = burst(
        &s,
        &tok,
        200,
        "/topapi/v2/department/listsubid",
        json!({"dept_id": 1}),
    )
    .await;
    let windows = t0.elapsed().as_secs() as usize + 2;
    let ok = codes.iter().filter(|c| **c == 0).count();
    assert!(ok >= 60 && ok <= 60 * windows, "{ok} in {windows} windows");
    assert!(codes.contains(&90018));
}

#[tokio::test]
async fn ip_ban_page_after_the_limit() {
    let cfg = DingTalkSandboxConfig {
        ip_limit: 30,
        ip_window: Duration::from_secs(20),
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let mut banned = None;
    for i in 0..40 {
        let resp = s
            .http
            .post(s.url("/topapi/v2/department/get"))
            .query(&[("access_token", tok.as_str())])
            .json(&json!({"dept_id": 1}))
            .send()
            .await
            .unwrap();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if ctype.starts_with("text/html") {
            let page = resp.text().await.unwrap();
            assert!(page.contains("访问被拒绝"), "{page}");
            assert!(page.contains("1111"));
            banned = Some(i);
            break;
        }
    }
    // The token call was request 1, so the 31st request is number 29 here.
    assert_eq!(banned, Some(29));
    // Still banned, whatever the path; JSON-only callers get the status-1111 body.
    let v: Value = s
        .http
        .get(s.url("/gettoken?appkey=a&appsecret=b"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], 1111);
    assert_eq!(v["punish"], "deny");
    assert_eq!(
        v["wait"].as_u64(),
        Some(5),
        "wait is in minutes (protocol §7 example: 5 for the 5-minute ban)"
    );
    // The admin API is never banned; it lists and clears bans.
    let bans = s.admin_get("bans").await;
    assert_eq!(bans["bans"].as_array().unwrap().len(), 1);
    s.admin("bans/clear", json!({})).await;
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 0);
    let c = s.admin_get("counters").await;
    assert_eq!(c["ip_bans"], 1);
}

#[tokio::test]
async fn monthly_quota_switch_storm_outage_and_errors() {
    let s = start(DingTalkSandboxConfig::default()).await;
    let tok = s.token().await;
    s.admin("faults", json!({"quota_exhausted": true})).await;
    let r = s
        .oapi(
            &tok,
            "/topapi/processinstance/listids",
            json!({"process_code": "PROC-SBX-QJ-2B8D6E41-0002", "start_time": 0}),
        )
        .await;
    assert_eq!(r["errcode"], 90020);
    let (st, b) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/forms/schemas/processCodes",
            &[("processCode", "PROC-SBX-QJ-2B8D6E41-0002")],
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("Forbidden.AccessDenied.ApiCountLimitForOrg"))
    );
    // Contacts and tokens are exempt (§7).
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 0);
    s.admin("faults", json!({"quota_exhausted": false})).await;

    s.admin("faults", json!({"storm_seconds": 0.5})).await;
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 90018);
    tokio::time::sleep(Duration::from_millis(600)).await;

    s.admin("faults", json!({"error_next": 1})).await;
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], -1);
    let r = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(r["errcode"], 0);

    s.admin("faults", json!({"outage_seconds": 30})).await;
    let resp = s
        .http
        .get(s.url("/gettoken?appkey=x&appsecret=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    s.admin("faults", json!({"outage_seconds": 0})).await;

    s.admin("faults", json!({"latency_ms": 150})).await;
    let t0 = std::time::Instant::now();
    s.oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let f = s.admin("faults", json!({"clear": true})).await;
    assert_eq!(f["faults"]["latency_ms"], 0);

    // Monthly quota from the configuration.
    let cfg = DingTalkSandboxConfig {
        monthly_quota: Some(2),
        ..DingTalkSandboxConfig::default()
    };
    let s = start(cfg).await;
    let tok = s.token().await;
    let body = json!({"process_code": "PROC-SBX-QJ-2B8D6E41-0002", "start_time": 0});
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            s.oapi(&tok, "/topapi/processinstance/listids", body.clone())
                .await["errcode"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(codes, [0, 0, 90020]);
    let c = s.admin_get("counters").await;
    assert_eq!(c["calls"]["/topapi/processinstance/listids"], 3);
    assert_eq!(c["errors"]["90020"], 1);
}
