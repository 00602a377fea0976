//! Custom group robots (自定义机器人, protocol §4.2): `POST /robot/send?access_token=<robot
//! token>[&timestamp=<ms>&sign=<sig>]`.
//!
//! Checks, in order: the robot token (400101), the robot switched off (400102), its security
//! settings — signing (`sign = base64(HMAC-SHA256(secret, timestamp + "\n" + secret))`,
//! timestamp within ±1 h of the sandbox clock), keywords, IP allow-list; all 310000 —, the
//! rate (20 messages per minute per robot, then every send answers 410100 for 10 minutes),
//! then the message (`msgtype` one of text / markdown / link / actionCard / feedCard, else
//! 400105; a missing required field 40035; more than 50 @ 400002). Accepted messages are kept
//! for the admin API; a repeated `msgUuid` is accepted without storing it twice.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::DingTalkSandbox;
use super::gateway::Ctx;
use super::reply::ApiError;

/// One robot of the sandbox (config `robots`, admin `POST robots`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RobotConfig {
    /// The webhook's `access_token`.
    pub access_token: String,
    /// 加签 secret (`SEC…`); `None` = no signing.
    #[serde(default)]
    pub secret: Option<String>,
    /// 自定义关键词 (≤ 10); empty = off.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// IP 地址（段）: addresses or IPv4 `a.b.c.d/n` ranges; empty = off.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub name: String,
}

fn yes() -> bool {
    true
}

pub const DEFAULT_ROBOT_TOKEN: &str =
    "sandboxrobot00000000000000000000000000000000000000000000000000001";
pub const DEFAULT_ROBOT_SECRET: &str =
    "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

impl RobotConfig {
    /// The default robot: signing on with [`DEFAULT_ROBOT_SECRET`].
    pub fn default_robot() -> RobotConfig {
        RobotConfig {
            access_token: DEFAULT_ROBOT_TOKEN.into(),
            secret: Some(DEFAULT_ROBOT_SECRET.into()),
            keywords: Vec::new(),
            ip_allowlist: Vec::new(),
            enabled: true,
            name: "沙箱通知机器人".into(),
        }
    }
}

/// A message a robot accepted.
#[derive(Debug, Clone, Serialize)]
pub struct RobotMessage {
    pub access_token: String,
    pub robot: String,
    pub msgtype: String,
    /// The whole body as sent.
    pub body: Value,
    pub msg_uuid: Option<String>,
    /// Sandbox clock, ms.
    pub time: i64,
}

#[derive(Debug, Default)]
pub struct Robots {
    pub robots: Vec<RobotConfig>,
    pub messages: Vec<RobotMessage>,
    /// token → send instants of the last minute.
    sends: HashMap<String, VecDeque<Instant>>,
    /// token → end of the 410100 throttle.
    throttled: HashMap<String, Instant>,
}

impl Robots {
    pub fn new(robots: Vec<RobotConfig>) -> Robots {
        Robots {
            robots,
            ..Robots::default()
        }
    }

    /// Adds or replaces (same token) a robot.
    pub fn upsert(&mut self, r: RobotConfig) {
        match self
            .robots
            .iter_mut()
            .find(|x| x.access_token == r.access_token)
        {
            Some(x) => *x = r,
            None => self.robots.push(r),
        }
    }
}

/// §4.2: `base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret))` (not yet
/// URL-encoded).
pub fn sign(secret: &str, timestamp: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn security_error(msg: &str) -> ApiError {
    ApiError::oapi(310000, msg)
}

fn ip_allowed(list: &[String], ip: IpAddr) -> bool {
    list.iter().any(|entry| {
        let entry = entry.trim();
        match entry.split_once('/') {
            None => entry.parse::<IpAddr>().is_ok_and(|a| a == ip),
            Some((net, bits)) => {
                let (Ok(IpAddr::V4(net)), Ok(bits), IpAddr::V4(ip)) =
                    (net.parse::<IpAddr>(), bits.parse::<u32>(), ip)
                else {
                    return false;
                };
                if bits > 32 {
                    return false;
                }
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
        }
    })
}

fn text_of(v: &Value, path: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn require(v: &Value, path: &str, name: &str) -> Result<(), ApiError> {
    match v.pointer(path) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(()),
        _ => Err(ApiError::missing(name)),
    }
}

/// Validates the body; answers the texts the keyword check looks at.
fn validate(body: &Value) -> Result<(String, String), ApiError> {
    let ty = body
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut texts: Vec<String> = Vec::new();
    match ty.as_str() {
        "text" => {
            require(body, "/text/content", "text.content")?;
            texts.push(text_of(body, "/text/content"));
        }
        "markdown" => {
            require(body, "/markdown/title", "markdown.title")?;
            require(body, "/markdown/text", "markdown.text")?;
            texts.push(text_of(body, "/markdown/title"));
            texts.push(text_of(body, "/markdown/text"));
        }
        "link" => {
            require(body, "/link/title", "link.title")?;
            require(body, "/link/text", "link.text")?;
            require(body, "/link/messageUrl", "link.messageUrl")?;
            texts.push(text_of(body, "/link/title"));
            texts.push(text_of(body, "/link/text"));
        }
        "actionCard" => {
            require(body, "/actionCard/title", "actionCard.title")?;
            require(body, "/actionCard/text", "actionCard.text")?;
            texts.push(text_of(body, "/actionCard/title"));
            texts.push(text_of(body, "/actionCard/text"));
            let single = body.pointer("/actionCard/singleTitle").is_some()
                || body.pointer("/actionCard/singleURL").is_some();
            if single {
                require(body, "/actionCard/singleTitle", "actionCard.singleTitle")?;
                require(body, "/actionCard/singleURL", "actionCard.singleURL")?;
            } else {
                let btns = body
                    .pointer("/actionCard/btns")
                    .and_then(Value::as_array)
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| ApiError::missing("actionCard.btns"))?;
                for b in btns {
                    require(b, "/title", "actionCard.btns.title")?;
                    require(b, "/actionURL", "actionCard.btns.actionURL")?;
                }
            }
        }
        "feedCard" => {
            let links = body
                .pointer("/feedCard/links")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| ApiError::missing("feedCard.links"))?;
            for l in links {
                require(l, "/title", "feedCard.links.title")?;
                require(l, "/messageURL", "feedCard.links.messageURL")?;
                require(l, "/picURL", "feedCard.links.picURL")?;
                texts.push(text_of(l, "/title"));
            }
        }
        "" => return Err(ApiError::missing("msgtype")),
        _ => return Err(ApiError::oapi(400105, "不支持的消息类型")),
    }
    let count = |k: &str| {
        body.pointer(&format!("/at/{k}"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    if count("atMobiles") + count("atUserIds") > 50 {
        return Err(ApiError::invalid("at", "一条消息最多@50人"));
    }
    Ok((ty, texts.join("\n")))
}

/// `POST /robot/send` (§4.2).
pub fn send(c: &Ctx) -> Result<Value, ApiError> {
    let sb = c.sb;
    let token = c
        .access_token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::oapi(400101, "access_token不存在"))?;
    let robot = sb
        .robots()
        .robots
        .iter()
        .find(|r| r.access_token == token)
        .cloned()
        .ok_or_else(|| ApiError::oapi(400101, "access_token不存在"))?;
    if !robot.enabled {
        return Err(ApiError::oapi(400102, "机器人已停用"));
    }
    if let Some(secret) = robot.secret.as_deref() {
        let ts = c.params.str_opt("timestamp").unwrap_or_default();
        let given = c.params.str_opt("sign").unwrap_or_default();
        let Ok(ts_ms) = ts.trim().parse::<i64>() else {
            return Err(security_error("invalid timestamp"));
        };
        let skew = sb.config().robot_timestamp_skew.as_millis() as i64;
        if (sb.now_ms() - ts_ms).abs() > skew {
            return Err(security_error("invalid timestamp"));
        }
        // `form_pairs` already URL-decoded the query value (and turned a raw `+` into a
        // space, which a client that forgot to URL-encode would send).
        let expected = sign(secret, &ts);
        let given = given.replace(' ', "+");
        if !constant_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(security_error(
                "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的url中，签名需要urlEncode",
            ));
        }
    }
    if !robot.ip_allowlist.is_empty() && !ip_allowed(&robot.ip_allowlist, c.ip) {
        return Err(security_error(&format!("ip {} not in whitelist", c.ip)));
    }
    let mut body = Value::Object(c.params.0.clone());
    if let Some(m) = body.as_object_mut() {
        m.remove("timestamp");
        m.remove("sign");
    }
    let (msgtype, texts) = validate(&body)?;
    if !robot.keywords.is_empty() && !robot.keywords.iter().any(|k| texts.contains(k.as_str())) {
        return Err(security_error("keywords not in content"));
    }
    let msg_uuid = body
        .get("msgUuid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let per_minute = sb.config().robot_rate_per_minute;
    let throttle = sb.config().robot_throttle;
    let now = Instant::now();
    let mut r = sb.robots();
    if let Some(u) = msg_uuid.as_deref()
        && r.messages
            .iter()
            .any(|m| m.access_token == token && m.msg_uuid.as_deref() == Some(u))
    {
        return Ok(json!({}));
    }
    if r.throttled.get(&token).is_some_and(|until| *until > now) {
        drop(r);
        sb.count(|k| k.robot_throttled += 1);
        return Err(too_fast(per_minute));
    }
    let q = r.sends.entry(token.clone()).or_default();
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
    {
        q.pop_front();
    }
    if q.len() >= per_minute as usize {
        r.throttled.insert(token.clone(), now + throttle);
        drop(r);
        sb.count(|k| k.robot_throttled += 1);
        return Err(too_fast(per_minute));
    }
    q.push_back(now);
    let time = sb.now_ms();
    r.messages.push(RobotMessage {
        access_token: token,
        robot: robot.name,
        msgtype,
        body,
        msg_uuid,
        time,
    });
    drop(r);
    sb.count(|k| k.robot_messages += 1);
    Ok(json!({}))
}

fn too_fast(per_minute: u32) -> ApiError {
    ApiError::oapi(
        410100,
        format!("send too fast, exceed {per_minute} times per minute"),
    )
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl DingTalkSandbox {
    pub(crate) fn robots(&self) -> std::sync::MutexGuard<'_, Robots> {
        super::lock(&self.inner.robots)
    }

    /// Adds or replaces a robot (admin).
    pub fn upsert_robot(&self, r: RobotConfig) {
        self.robots().upsert(r);
    }

    pub fn robot_messages(&self) -> Vec<RobotMessage> {
        self.robots().messages.clone()
    }
}
