//! The one entry of every API path: family detection (§0), per-IP limit and ban page (§7),
//! injected faults, token check (§1.5), per app × API QPS (§1.6/§7), monthly quota, then the
//! handler.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde_json::Value;

use super::limits::{IpVerdict, quota_exempt};
use super::params::Params;
use super::reply::{self, ApiError, Family};
use super::{DingTalkSandbox, approval, contacts, events, login, messages, robot, stream, tokens};

/// What a handler sees.
pub struct Ctx<'a> {
    pub sb: &'a DingTalkSandbox,
    /// The calling app (empty for the anonymous token endpoints).
    pub app_key: String,
    pub params: Params,
    /// Path segment captured by a `{…}` route (`/v1.0/oauth2/{corpId}/token`).
    pub path_arg: String,
    /// The `Host` header (Stream endpoint, §5.2).
    pub host: String,
    /// `?access_token=` of the query (robot webhooks carry the robot token there, §4.2).
    pub access_token: Option<String>,
    /// The caller's address (robot IP allow-list).
    pub ip: IpAddr,
    /// The signed-in user of a user access token (§6.2), on routes that accept one.
    pub user: Option<String>,
}

type Handler = fn(&Ctx) -> Result<Value, ApiError>;

struct Route {
    get: bool,
    post: bool,
    path: &'static str,
    anonymous: bool,
    handler: Handler,
}

const fn r(methods: &str, path: &'static str, anonymous: bool, handler: Handler) -> Route {
    let m = methods.as_bytes();
    // "G", "P" or "GP".
    let get = m[0] == b'G';
    let post = m[m.len() - 1] == b'P';
    Route {
        get,
        post,
        path,
        anonymous,
        handler,
    }
}

fn h_gettoken(c: &Ctx) -> Result<Value, ApiError> {
    tokens::gettoken(c.sb, &c.params)
}
fn h_token_v1(c: &Ctx) -> Result<Value, ApiError> {
    tokens::access_token_v1(c.sb, &c.params)
}
fn h_corp_token(c: &Ctx) -> Result<Value, ApiError> {
    tokens::corp_token_v1(c.sb, &c.path_arg, &c.params)
}

static ROUTES: &[Route] = &[
    // §1 tokens
    r("G", "/gettoken", true, h_gettoken),
    r("P", "/v1.0/oauth2/accessToken", true, h_token_v1),
    r("P", "/v1.0/oauth2/{}/token", true, h_corp_token),
    // §2 contacts (oapi: POST, GET tolerated)
    r(
        "GP",
        "/topapi/v2/department/listsub",
        false,
        contacts::dept_listsub,
    ),
    r(
        "GP",
        "/topapi/v2/department/listsubid",
        false,
        contacts::dept_listsubid,
    ),
    r("GP", "/topapi/v2/department/get", false, contacts::dept_get),
    r(
        "P",
        "/topapi/v2/department/create",
        false,
        contacts::dept_create,
    ),
    r(
        "P",
        "/topapi/v2/department/update",
        false,
        contacts::dept_update,
    ),
    r(
        "P",
        "/topapi/v2/department/delete",
        false,
        contacts::dept_delete,
    ),
    r("GP", "/topapi/v2/user/list", false, contacts::user_list),
    r("GP", "/topapi/user/listid", false, contacts::user_listid),
    r("GP", "/topapi/v2/user/get", false, contacts::user_get),
    r(
        "GP",
        "/topapi/v2/user/getbymobile",
        false,
        contacts::user_getbymobile,
    ),
    r(
        "GP",
        "/topapi/user/getbyunionid",
        false,
        contacts::user_getbyunionid,
    ),
    r("P", "/topapi/v2/user/create", false, contacts::user_create),
    r("P", "/topapi/v2/user/update", false, contacts::user_update),
    r("P", "/topapi/v2/user/delete", false, contacts::user_delete),
    r("G", "/v1.0/contact/users/{}", false, contacts::user_v1_get),
    // §6 login
    r(
        "P",
        "/topapi/v2/user/getuserinfo",
        false,
        login::getuserinfo,
    ),
    r(
        "P",
        "/v1.0/oauth2/userAccessToken",
        true,
        login::user_access_token,
    ),
    // §3 approvals
    r(
        "P",
        "/topapi/processinstance/create",
        false,
        approval::oapi_create,
    ),
    r(
        "P",
        "/topapi/processinstance/get",
        false,
        approval::oapi_get,
    ),
    r(
        "P",
        "/topapi/processinstance/listids",
        false,
        approval::oapi_listids,
    ),
    r(
        "P",
        "/v1.0/workflow/processInstances",
        false,
        approval::v1_create,
    ),
    r(
        "G",
        "/v1.0/workflow/processInstances",
        false,
        approval::v1_get,
    ),
    r(
        "P",
        "/v1.0/workflow/processInstances/execute",
        false,
        approval::v1_execute,
    ),
    r(
        "P",
        "/v1.0/workflow/processInstances/terminate",
        false,
        approval::v1_terminate,
    ),
    r(
        "P",
        "/v1.0/workflow/processInstances/comments",
        false,
        approval::v1_comment,
    ),
    r(
        "P",
        "/v1.0/workflow/processes/instanceIds/query",
        false,
        approval::v1_listids,
    ),
    r(
        "G",
        "/v1.0/workflow/forms/schemas/processCodes",
        false,
        approval::v1_schema,
    ),
    // §4.1 work notifications
    r(
        "P",
        "/topapi/message/corpconversation/asyncsend_v2",
        false,
        messages::asyncsend_v2,
    ),
    r(
        "P",
        "/topapi/message/corpconversation/getsendprogress",
        false,
        messages::getsendprogress,
    ),
    r(
        "P",
        "/topapi/message/corpconversation/getsendresult",
        false,
        messages::getsendresult,
    ),
    // §4.2 group robots (robot token checked by the handler)
    r("P", "/robot/send", true, robot::send),
    // §5.2 Stream mode
    r(
        "P",
        "/v1.0/gateway/connections/open",
        true,
        stream::open_connection,
    ),
    // §5.1 failed pushes
    r(
        "G",
        "/call_back/get_call_back_failed_result",
        false,
        events::failed_result,
    ),
];

fn matches(pattern: &str, path: &str) -> Option<String> {
    match pattern.split_once("{}") {
        None => (pattern == path).then(String::new),
        Some((pre, post)) => {
            let rest = path.strip_prefix(pre)?;
            let arg = rest.strip_suffix(post)?;
            (!arg.is_empty() && !arg.contains('/')).then(|| arg.to_owned())
        }
    }
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip())
}

/// The fallback handler: every non-admin request lands here.
pub async fn dispatch(State(sb): State<DingTalkSandbox>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let family = if path.starts_with("/v1.0/") {
        Family::V1
    } else {
        Family::Oapi
    };
    let ip = client_ip(&req);
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();

    // §7 per source IP, before anything else.
    let cfg = sb.config();
    let verdict = sb
        .limits()
        .check_ip(ip, cfg.ip_limit, cfg.ip_window, cfg.ip_ban);
    match verdict {
        IpVerdict::Ok => {}
        IpVerdict::Banned(wait) | IpVerdict::NewBan(wait) => {
            sb.count(|c| {
                c.banned_requests += 1;
                if matches!(verdict, IpVerdict::NewBan(_)) {
                    c.ip_bans += 1;
                }
            });
            let json_only = accept.contains("application/json")
                && !accept.contains("html")
                && !accept.contains("*/*");
            return reply::ban_page(wait, json_only);
        }
    }

    let method = req.method().clone();
    let Some((route, arg)) = ROUTES.iter().find_map(|r| {
        let ok = (method == Method::GET && r.get) || (method == Method::POST && r.post);
        if !ok {
            return None;
        }
        matches(r.path, &path).map(|a| (r, a))
    }) else {
        let known = ROUTES.iter().any(|r| matches(r.path, &path).is_some());
        let status = if known {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        return (
            status,
            axum::Json(serde_json::json!({"code": "NotFound", "errcode": 404,
                "message": format!("sandbox: no API {method} {path}"), "errmsg": "请求的URI地址不存在"})),
        )
            .into_response();
    };
    let api = route.path.replace("{}", "*");
    sb.count(|c| *c.calls.entry(api.clone()).or_default() += 1);

    // Injected faults.
    let faults = sb.faults();
    if faults.outage_until.is_some_and(|u| u > Instant::now()) {
        sb.count(|c| c.http_503 += 1);
        return reply::outage();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let query = req.uri().query().map(str::to_owned);
    let query_token = query.as_deref().and_then(|q| {
        super::params::form_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    });
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let header_token = req
        .headers()
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match to_bytes(req.into_body(), 8 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return finish(
                &sb,
                family,
                Err(ApiError::invalid("body", "请求体过大或读取失败")),
            );
        }
    };

    let result = gate_and_call(
        &sb,
        family,
        route,
        Call {
            arg,
            api: &api,
            query: query.as_deref(),
            body: &body,
            query_token,
            header_token,
            host,
            ip,
        },
        &faults,
    );
    finish(&sb, family, result)
}

/// What the gateway read from the request.
struct Call<'a> {
    arg: String,
    api: &'a str,
    query: Option<&'a str>,
    body: &'a [u8],
    query_token: Option<String>,
    header_token: Option<String>,
    host: String,
    ip: IpAddr,
}

/// Routes that also take a user access token (§6.2 `users/me`).
const USER_TOKEN_ROUTES: &[&str] = &["/v1.0/contact/users/{}"];

fn gate_and_call(
    sb: &DingTalkSandbox,
    family: Family,
    route: &Route,
    call: Call<'_>,
    faults: &super::Faults,
) -> Result<Value, ApiError> {
    let Call {
        arg,
        api,
        query,
        body,
        query_token,
        header_token,
        host,
        ip,
    } = call;
    let mut user = None;
    let app_key = if route.anonymous {
        String::new()
    } else {
        // §0: oapi token in the query, v1.0 token in the header.
        let token = match family {
            Family::Oapi => query_token.clone(),
            Family::V1 => header_token,
        };
        match sb.check_token(token.as_deref()) {
            Ok(app) => app,
            Err(p) => {
                let as_user = USER_TOKEN_ROUTES
                    .contains(&route.path)
                    .then(|| token.as_deref().and_then(|t| sb.check_user_token(t)))
                    .flatten();
                match as_user {
                    Some(Ok((app, userid))) => {
                        user = Some(userid);
                        app
                    }
                    Some(Err(())) => return Err(tokens::TokenProblem::Expired.error()),
                    None => return Err(p.error()),
                }
            }
        }
    };

    let mut rng = rand::rng();
    if faults.storm_until.is_some_and(|u| u > Instant::now())
        && (faults.storm_rate >= 1.0 || rng.random_bool(faults.storm_rate.clamp(0.0, 1.0)))
    {
        sb.count(|c| c.qps_rejections += 1);
        return Err(ApiError::qps());
    }
    if faults.error_next > 0 {
        sb.set_faults(|f| f.error_next = f.error_next.saturating_sub(1));
        return Err(ApiError::system());
    }
    if faults.error_rate > 0.0 && rng.random_bool(faults.error_rate.clamp(0.0, 1.0)) {
        return Err(ApiError::system());
    }

    if !route.anonymous {
        let qps = faults
            .qps_override
            .or_else(|| sb.app(&app_key).map(|a| a.edition.qps()))
            .unwrap_or(20);
        if !sb.limits().take_qps(&app_key, api, qps) {
            sb.count(|c| c.qps_rejections += 1);
            return Err(ApiError::qps());
        }
        if !quota_exempt(api) {
            let mut l = sb.limits();
            let over = faults.quota_exhausted
                || sb.config().monthly_quota.is_some_and(|q| l.quota_used >= q);
            if over {
                drop(l);
                sb.count(|c| c.quota_rejections += 1);
                return Err(ApiError::quota());
            }
            l.quota_used += 1;
            let used = l.quota_used;
            drop(l);
            sb.count(|c| c.quota_used = used);
        }
    }

    let params = Params::parse(query, body)?;
    let ctx = Ctx {
        sb,
        app_key,
        params,
        path_arg: arg,
        host,
        access_token: query_token,
        ip,
        user,
    };
    (route.handler)(&ctx)
}

fn finish(sb: &DingTalkSandbox, family: Family, result: Result<Value, ApiError>) -> Response {
    if let Err(e) = &result {
        let key = match family {
            Family::Oapi => e.errcode.to_string(),
            Family::V1 => e.code.clone(),
        };
        sb.count(|c| *c.errors.entry(key).or_default() += 1);
    }
    reply::render(family, result)
}
