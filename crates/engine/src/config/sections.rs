//! Reads each section of `dingbridge.toml` from the spanned tree.

use std::collections::BTreeMap;
use std::ops::Range;

use limits::{ConnectionLimits, DingTalkEdition, LimitRule};
use secrecy::SecretString;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrorKind, CronProblem, Format, Lang};
use super::read::{Ctx, Env, Result, Str, Table, bad_format, parse_duration, suggest};
use super::{
    Config, Connection, ConnectionKind, ConnectionSettings, DingTalkConnection, FlowConfig,
    HttpConnection, KingdeeAuth, KingdeeConnection, LogFormat, RetryConfig, ServerConfig,
    SqlConnection, StoreConfig, WorkersConfig, redact_url,
};

pub(super) fn parse(text: &str, source: &str, env: Env<'_>) -> Result<Config> {
    let ctx = Ctx { source, text, env };
    let doc = DeTable::parse(text).map_err(|e| syntax_error(&ctx, &e))?;
    let root = Table::new(&ctx, String::new(), doc.span(), doc.get_ref());
    root.check_keys(&["server", "store", "workers", "connections", "flows"])?;

    let server = match root.table("server")? {
        Some(t) => server(&t)?,
        None => ServerConfig::default(),
    };
    let store = match root.table("store")? {
        Some(t) => store(&t)?,
        None => StoreConfig::default(),
    };
    let workers = match root.table("workers")? {
        Some(t) => workers(&t)?,
        None => WorkersConfig::default(),
    };
    let mut connections = BTreeMap::new();
    if let Some(t) = root.table("connections")? {
        for (name, key_span, c) in t.tables()? {
            check_name(&ctx, "connections", &name, key_span)?;
            let conn = connection(&c, &name)?;
            connections.insert(name, conn);
        }
    }
    let mut flows = BTreeMap::new();
    if let Some(t) = root.table("flows")? {
        let known: Vec<String> = connections.keys().cloned().collect();
        for (name, key_span, f) in t.tables()? {
            check_name(&ctx, "flows", &name, key_span)?;
            let flow = flow(&f, &name, &known)?;
            flows.insert(name, flow);
        }
    }
    Ok(Config {
        server,
        store,
        workers,
        connections,
        flows,
    })
}

fn syntax_error(ctx: &Ctx<'_, '_>, e: &toml::de::Error) -> ConfigError {
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ctx.error(e.span(), "", ConfigErrorKind::Syntax { message })
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Connection and flow names appear in URLs and on the command line.
fn check_name(ctx: &Ctx<'_, '_>, section: &str, name: &str, span: Range<usize>) -> Result<()> {
    if is_name(name) {
        return Ok(());
    }
    Err(ctx.error(
        Some(span),
        &format!("{section}.{name}"),
        ConfigErrorKind::BadName {
            section: section.to_owned(),
            name: name.to_owned(),
        },
    ))
}

fn non_empty(t: &Table<'_, '_, '_, '_, '_>, s: Str, show: bool) -> Result<Str> {
    if s.value.trim().is_empty() {
        Err(bad_format(t.ctx, &s, Format::NonEmpty, show))
    } else {
        Ok(s)
    }
}

fn req_text(t: &Table<'_, '_, '_, '_, '_>, key: &str, example: &str) -> Result<String> {
    let s = t.req_string(key, &format!("{key} = {example}"))?;
    Ok(non_empty(t, s, true)?.value)
}

fn req_secret(t: &Table<'_, '_, '_, '_, '_>, key: &str, env_example: &str) -> Result<SecretString> {
    let s = t.req_string(key, &format!("{key} = \"${{{env_example}}}\""))?;
    Ok(SecretString::from(non_empty(t, s, false)?.value))
}

fn opt_secret(t: &Table<'_, '_, '_, '_, '_>, key: &str) -> Result<Option<SecretString>> {
    Ok(t.string(key)?.map(|s| SecretString::from(s.value)))
}

fn http_url(t: &Table<'_, '_, '_, '_, '_>, s: Str) -> Result<String> {
    let ok = ["http://", "https://"].iter().any(|p| {
        s.value
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
            && s.value.len() > p.len()
    });
    if ok {
        Ok(s.value)
    } else {
        Err(bad_format(t.ctx, &s, Format::HttpUrl, true))
    }
}

fn url_or(t: &Table<'_, '_, '_, '_, '_>, key: &str, default: &str) -> Result<String> {
    match t.string(key)? {
        Some(s) => http_url(t, s),
        None => Ok(default.to_owned()),
    }
}

fn server(t: &Table<'_, '_, '_, '_, '_>) -> Result<ServerConfig> {
    t.check_keys(&["listen", "log_format", "lang"])?;
    let mut out = ServerConfig::default();
    if let Some(s) = t.string("listen")? {
        let valid = s
            .value
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(bad_format(t.ctx, &s, Format::ListenAddr, true));
        }
        out.listen = s.value;
    }
    if let Some(i) = t.choice("log_format", &["text", "json"])? {
        out.log_format = if i == 0 {
            LogFormat::Text
        } else {
            LogFormat::Json
        };
    }
    if let Some(i) = t.choice("lang", &["zh", "en"])? {
        out.lang = Some(if i == 0 { Lang::Zh } else { Lang::En });
    }
    Ok(out)
}

fn store(t: &Table<'_, '_, '_, '_, '_>) -> Result<StoreConfig> {
    t.check_keys(&["url", "max_connections"])?;
    let mut out = StoreConfig::default();
    if let Some(mut s) = t.string("url")? {
        let lower = s.value.to_ascii_lowercase();
        let valid = (lower.starts_with("sqlite:") && s.value.len() > "sqlite:".len())
            || lower.starts_with("postgres://")
            || lower.starts_with("postgresql://");
        if !valid {
            s.value = redact_url(&s.value);
            return Err(bad_format(t.ctx, &s, Format::StoreUrl, true));
        }
        out.url = s.value;
    }
    if let Some(n) = t.uint("max_connections", 1, 1000)? {
        out.max_connections = n;
    }
    Ok(out)
}

fn workers(t: &Table<'_, '_, '_, '_, '_>) -> Result<WorkersConfig> {
    t.check_keys(&[
        "count",
        "lease_seconds",
        "poll_interval_ms",
        "queues",
        "shutdown_grace_seconds",
    ])?;
    let mut out = WorkersConfig::default();
    if let Some(n) = t.uint("count", 1, 1024)? {
        out.count = n;
    }
    if let Some(n) = t.uint("lease_seconds", 1, 86_400)? {
        out.lease_seconds = n;
    }
    if let Some(n) = t.uint("poll_interval_ms", 1, 60_000)? {
        out.poll_interval_ms = n;
    }
    if let Some(n) = t.uint("shutdown_grace_seconds", 0, 3600)? {
        out.shutdown_grace_seconds = n;
    }
    if let Some(queues) = t.strings("queues")? {
        if queues.is_empty() {
            return Err(t.err(
                t.get("queues").map(|v| v.span()),
                "queues",
                ConfigErrorKind::OutOfRange {
                    value: "[]".to_owned(),
                    requirement: "len >= 1, e.g. [\"default\"]".to_owned(),
                },
            ));
        }
        let mut names = Vec::with_capacity(queues.len());
        for q in queues {
            if !is_name(&q.value) {
                return Err(bad_format(t.ctx, &q, Format::Name, true));
            }
            names.push(q.value);
        }
        out.queues = names;
    }
    Ok(out)
}

const KIND_NAMES: [&str; 4] = ["dingtalk", "kingdee", "http", "sql"];

fn connection(t: &Table<'_, '_, '_, '_, '_>, name: &str) -> Result<Connection> {
    let kind_index = t.choice("kind", &KIND_NAMES)?.ok_or_else(|| {
        t.missing(
            "kind",
            "kind = \"dingtalk\" | \"kingdee\" | \"http\" | \"sql\"",
        )
    })?;
    let kind = ConnectionKind::ALL
        .get(kind_index)
        .copied()
        .unwrap_or(ConnectionKind::Http);
    let (settings, preset) = match kind {
        ConnectionKind::DingTalk => {
            t.check_keys(&[
                "kind",
                "corp_id",
                "agent_id",
                "app_key",
                "app_secret",
                "callback_token",
                "encoding_aes_key",
                "oapi_base_url",
                "api_base_url",
                "edition",
                "stream",
                "limits",
            ])?;
            let d = dingtalk(t)?;
            let preset = ConnectionLimits::dingtalk(d.edition);
            (ConnectionSettings::DingTalk(d), preset)
        }
        ConnectionKind::Kingdee => {
            t.check_keys(&[
                "kind",
                "base_url",
                "acct_id",
                "user_name",
                "app_id",
                "app_secret",
                "password",
                "lcid",
                "org_number",
                "auth",
                "limits",
            ])?;
            (
                ConnectionSettings::Kingdee(kingdee(t)?),
                ConnectionLimits::kingdee(),
            )
        }
        ConnectionKind::Http => {
            t.check_keys(&[
                "kind",
                "base_url",
                "auth_header",
                "hmac_secret",
                "timeout_seconds",
                "limits",
            ])?;
            let base_url =
                t.req_string("base_url", "base_url = \"https://ehr.example.com/api/\"")?;
            let http = HttpConnection {
                base_url: http_url(t, base_url)?,
                auth_header: opt_secret(t, "auth_header")?,
                hmac_secret: opt_secret(t, "hmac_secret")?,
                timeout_seconds: t.uint("timeout_seconds", 1, 3600)?.unwrap_or(30),
            };
            (ConnectionSettings::Http(http), ConnectionLimits::default())
        }
        ConnectionKind::Sql => {
            t.check_keys(&["kind", "url", "limits"])?;
            let sql = SqlConnection {
                url: req_secret(t, "url", "HR_DATABASE_URL")?,
            };
            (ConnectionSettings::Sql(sql), ConnectionLimits::default())
        }
    };
    let limits = match t.table("limits")? {
        Some(l) => limits(&l, preset)?,
        None => preset,
    };
    Ok(Connection {
        name: name.to_owned(),
        settings,
        limits,
    })
}

fn dingtalk(t: &Table<'_, '_, '_, '_, '_>) -> Result<DingTalkConnection> {
    let corp_id = req_text(t, "corp_id", "\"ding0123456789abcdef\"")?;
    let agent_id = t
        .integer("agent_id", 1, i64::MAX)?
        .ok_or_else(|| t.missing("agent_id", "agent_id = 123456789"))?;
    let app_key = req_text(t, "app_key", "\"dingxxxxxxxxxxxxxxxx\"")?;
    let app_secret = req_secret(t, "app_secret", "DT_APP_SECRET")?;
    let callback_token = opt_secret(t, "callback_token")?;
    let encoding_aes_key = match t.string("encoding_aes_key")? {
        Some(s) if s.value.chars().count() != 43 => {
            return Err(bad_format(t.ctx, &s, Format::AesKey, false));
        }
        Some(s) => Some(SecretString::from(s.value)),
        None => None,
    };
    let names: Vec<&str> = DingTalkEdition::ALL.iter().map(|e| e.as_str()).collect();
    let edition = t
        .choice("edition", &names)?
        .and_then(|i| DingTalkEdition::ALL.get(i).copied())
        .unwrap_or_default();
    Ok(DingTalkConnection {
        corp_id,
        agent_id,
        app_key,
        app_secret,
        callback_token,
        encoding_aes_key,
        oapi_base_url: url_or(t, "oapi_base_url", "https://oapi.dingtalk.com")?,
        api_base_url: url_or(t, "api_base_url", "https://api.dingtalk.com")?,
        edition,
        stream: t.boolean("stream")?.unwrap_or(false),
    })
}

fn kingdee(t: &Table<'_, '_, '_, '_, '_>) -> Result<KingdeeConnection> {
    let base = t.req_string(
        "base_url",
        "base_url = \"https://erp.example.com/k3cloud/\"",
    )?;
    let mut base_url = http_url(t, base)?;
    if !base_url.ends_with('/') {
        base_url.push('/');
    }
    let acct_id = req_text(t, "acct_id", "\"62f0a1b2c3d4e5\"")?;
    let user_name = req_text(t, "user_name", "\"administrator\"")?;
    let app_id = req_text(t, "app_id", "\"123456_abcdefg\"")?;
    let app_secret = req_secret(t, "app_secret", "KD_APP_SECRET")?;
    let password = opt_secret(t, "password")?;
    let lcid = t.uint("lcid", 1, i64::from(u32::MAX))?.unwrap_or(2052);
    let org_number = t.string("org_number")?.map(|s| s.value);
    let names: Vec<&str> = KingdeeAuth::ALL.iter().map(|a| a.as_str()).collect();
    let auth = t
        .choice("auth", &names)?
        .and_then(|i| KingdeeAuth::ALL.get(i).copied())
        .unwrap_or_default();
    if auth == KingdeeAuth::ValidateUser && password.is_none() {
        return Err(t.err(
            Some(t.get("auth").map_or(t.span.clone(), |v| v.span())),
            "password",
            ConfigErrorKind::RequiredWhen {
                condition: "auth = \"validate_user\"".to_owned(),
            },
        ));
    }
    Ok(KingdeeConnection {
        base_url,
        acct_id,
        user_name,
        app_id,
        app_secret,
        password,
        lcid,
        org_number,
        auth,
    })
}

fn rule(t: &Table<'_, '_, '_, '_, '_>) -> Result<LimitRule> {
    t.check_keys(&["per_second", "per_minute", "burst"])?;
    let burst = t.uint("burst", 1, 1_000_000)?.unwrap_or(1);
    match (t.number("per_second")?, t.number("per_minute")?) {
        (Some(s), None) => Ok(LimitRule::per_second(s, burst)),
        (None, Some(m)) => Ok(LimitRule::per_minute(m, burst)),
        (Some(_), Some(_)) => Err(t.err(
            t.get("per_minute").map(|v| v.span()),
            "per_minute",
            ConfigErrorKind::Conflict {
                other: t.key_path("per_second"),
            },
        )),
        (None, None) => Err(t.missing("per_second", "per_second = 20 (or per_minute = 20)")),
    }
}

fn limits(t: &Table<'_, '_, '_, '_, '_>, mut out: ConnectionLimits) -> Result<ConnectionLimits> {
    t.check_keys(&["concurrency", "default_rule", "groups", "total", "adaptive"])?;
    if let Some(n) = t.uint("concurrency", 1, 100_000)? {
        out.concurrency = n;
    }
    if let Some(r) = t.table("default_rule")? {
        out.default_rule = Some(rule(&r)?);
    }
    if let Some(r) = t.table("total")? {
        out.total = Some(rule(&r)?);
    }
    if let Some(groups) = t.table("groups")? {
        for (name, _, g) in groups.tables()? {
            out.groups.insert(name, rule(&g)?);
        }
    }
    if let Some(a) = t.table("adaptive")? {
        a.check_keys(&[
            "enabled",
            "decrease_factor",
            "min_fraction",
            "increase_fraction",
            "increase_interval_seconds",
            "decrease_cooldown_seconds",
            "pause_seconds",
        ])?;
        let s = &mut out.adaptive;
        if let Some(b) = a.boolean("enabled")? {
            s.enabled = b;
        }
        for (key, field) in [
            ("decrease_factor", &mut s.decrease_factor),
            ("min_fraction", &mut s.min_fraction),
            ("increase_fraction", &mut s.increase_fraction),
            (
                "increase_interval_seconds",
                &mut s.increase_interval_seconds,
            ),
            (
                "decrease_cooldown_seconds",
                &mut s.decrease_cooldown_seconds,
            ),
            ("pause_seconds", &mut s.pause_seconds),
        ] {
            if let Some(v) = a.number(key)? {
                *field = v;
            }
        }
    }
    out.validate().map_err(|e| {
        let span = span_of(t.table, &e.path).unwrap_or_else(|| t.span.clone());
        t.err(
            Some(span),
            &e.path,
            ConfigErrorKind::OutOfRange {
                value: e.value.to_string(),
                requirement: e.requirement.to_string(),
            },
        )
    })?;
    Ok(out)
}

/// The span of the value at a dotted path under `table`.
fn span_of(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut value = table.get(first)?;
    for part in parts {
        match value.get_ref() {
            DeValue::Table(t) => value = t.get(part)?,
            _ => return None,
        }
    }
    Some(value.span())
}

fn flow(t: &Table<'_, '_, '_, '_, '_>, name: &str, known: &[String]) -> Result<FlowConfig> {
    t.check_keys(&[
        "recipe",
        "enabled",
        "schedule",
        "queue",
        "priority",
        "connections",
        "retry",
        "options",
    ])?;
    let recipe = req_text(t, "recipe", "\"org_sync\"")?;
    let enabled = t.boolean("enabled")?.unwrap_or(true);
    let schedule = match t.string("schedule")? {
        Some(s) => Some(cron(t, name, s)?),
        None => None,
    };
    let queue = match t.string("queue")? {
        Some(q) if !is_name(&q.value) => return Err(bad_format(t.ctx, &q, Format::Name, true)),
        Some(q) => q.value,
        None => "default".to_owned(),
    };
    let priority = t
        .integer("priority", i64::from(i32::MIN), i64::from(i32::MAX))?
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0);
    let mut connections = Vec::new();
    for c in t.strings("connections")?.unwrap_or_default() {
        if !known.contains(&c.value) {
            let mut known = known.to_vec();
            if let Some(s) = suggest(&c.value, known.iter().map(String::as_str)) {
                // The likeliest name first.
                known.retain(|k| *k != s);
                known.insert(0, s);
            }
            return Err(t.ctx.error(
                Some(c.span),
                &c.path,
                ConfigErrorKind::UnknownConnection {
                    flow: name.to_owned(),
                    name: c.value,
                    known,
                },
            ));
        }
        connections.push(c.value);
    }
    let retry = match t.table("retry")? {
        Some(r) => retry(&r)?,
        None => RetryConfig::default(),
    };
    // `table` rejects a non-table value with a type error first.
    let options = match t.table("options")? {
        None => serde_json::Value::Object(serde_json::Map::new()),
        Some(_) => t.json("options")?.unwrap_or_default(),
    };
    Ok(FlowConfig {
        name: name.to_owned(),
        recipe,
        enabled,
        schedule,
        queue,
        priority,
        connections,
        retry,
        options,
    })
}

fn cron(t: &Table<'_, '_, '_, '_, '_>, flow: &str, s: Str) -> Result<String> {
    let expr = s.value.trim().to_owned();
    let fields = expr.split_whitespace().count();
    let reason = if !expr.starts_with('@') && !(5..=6).contains(&fields) {
        Some(CronProblem::FieldCount(fields))
    } else {
        crate::scheduler::parse_cron(&expr)
            .err()
            .map(|e| CronProblem::Parser(e.to_string().trim_end_matches('.').to_owned()))
    };
    match reason {
        None => Ok(expr),
        Some(reason) => Err(t.ctx.error(
            Some(s.span),
            &s.path,
            ConfigErrorKind::BadCron {
                flow: flow.to_owned(),
                expr: s.value,
                reason,
            },
        )),
    }
}

fn retry(t: &Table<'_, '_, '_, '_, '_>) -> Result<RetryConfig> {
    t.check_keys(&["schedule", "max_attempts"])?;
    let mut out = RetryConfig::default();
    if let Some(steps) = t.strings("schedule")? {
        let mut schedule = Vec::with_capacity(steps.len());
        for step in steps {
            match parse_duration(&step.value) {
                Some(d) => schedule.push(d),
                None => {
                    return Err(t.ctx.error(
                        Some(step.span),
                        &step.path,
                        ConfigErrorKind::BadDuration { value: step.value },
                    ));
                }
            }
        }
        out.schedule = schedule;
    }
    out.max_attempts = t.uint("max_attempts", 1, 1000)?;
    Ok(out)
}
