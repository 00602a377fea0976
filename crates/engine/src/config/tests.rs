#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

/// A complete, valid configuration touching every section and key.
const SAMPLE: &str = r#"# dingbridge sample
[server]
listen = "0.0.0.0:8080"
log_format = "json"
lang = "zh"

[store]
url = "postgres://bridge:${PG_PASSWORD}@db.internal:5432/dingbridge"
max_connections = 16

[workers]
count = 8
lease_seconds = 60
poll_interval_ms = 500
queues = ["default", "sync", "notify"]
shutdown_grace_seconds = 30

[connections.dingtalk]
kind = "dingtalk"
corp_id = "ding0123456789abcdef"
agent_id = 3_000_000_123
app_key = "dingappkey"
app_secret = "${DT_APP_SECRET}"
callback_token = "${DT_CALLBACK_TOKEN}"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
oapi_base_url = "http://127.0.0.1:9001"
api_base_url = "http://127.0.0.1:9002"
edition = "professional"

[connections.kingdee]
kind = "kingdee"
base_url = "https://erp.example.com/k3cloud"
acct_id = "62f0a1b2c3d4e5"
user_name = "administrator"
app_id = "123456_abcdefg"
app_secret = "${KD_APP_SECRET}"
password = "${KD_PASSWORD}"
lcid = 1033
org_number = "100"
auth = "validate_user"

[connections.kingdee.limits]
concurrency = 2
default_rule = { per_second = 5, burst = 2 }

[connections.kingdee.limits.groups.save]
per_minute = 120

[connections.kingdee.limits.adaptive]
decrease_factor = 0.7
enabled = true

[connections.ehr]
kind = "http"
base_url = "https://ehr.example.com/api/"
auth_header = "Bearer ${EHR_TOKEN}"
hmac_secret = "whsec_literal_$${not_a_var}"
timeout_seconds = 10

[connections.hrdb]
kind = "sql"
url = "${HR_DB_URL}"

[flows.selftest]
recipe = "selftest"

[flows.org_sync]
recipe = "org_sync"
enabled = false
schedule = "0 2 * * *"
queue = "sync"
priority = -5
connections = ["dingtalk", "kingdee", "ehr"]

[flows.org_sync.retry]
schedule = ["1s", "10s", "1m30s", "1h"]
max_attempts = 6

[flows.org_sync.options]
master = "dingtalk"
dry_run = false
batch = 200
ratio = 0.5
fields = ["name", "mobile"]
mapping = { dept = "FDeptID", "员工" = "BD_Empinfo" }

[flows.expense]
recipe = "approval_to_document"
schedule = "*/30 * * * * *"
connections = ["dingtalk", "kingdee"]

[flows.expense.options]
title = "费用报销"
form_id = "ER_ExpReimbursement"
"#;

fn sample_env(name: &str) -> Option<String> {
    let vars: HashMap<&str, &str> = [
        ("PG_PASSWORD", "pg-pass-123"),
        ("DT_APP_SECRET", "dt-secret-456"),
        ("DT_CALLBACK_TOKEN", "cb-token-789"),
        ("KD_APP_SECRET", "kd-secret-abc"),
        ("KD_PASSWORD", "kd-password-def"),
        ("EHR_TOKEN", "ehr-token-ghi"),
        ("HR_DB_URL", "postgres://hr:hr-db-pass@hr/hr"),
    ]
    .into_iter()
    .collect();
    vars.get(name).map(|v| (*v).to_owned())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, "dingbridge.toml", &sample_env)
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the line, that the English line names every `needle`, and that both renderings are
/// one line starting with `file:line:`.
fn assert_err(e: &ConfigError, line: usize, needles: &[&str]) {
    let en = e.to_string();
    assert_eq!(e.line(), Some(line), "wrong line in: {en}");
    assert!(en.starts_with(&format!("dingbridge.toml:{line}:")), "{en}");
    for n in needles {
        assert!(en.contains(n), "`{n}` missing from: {en}");
    }
    let zh = e.render(Lang::Zh);
    if std::env::var_os("DINGBRIDGE_SHOW_CONFIG_ERRORS").is_some() {
        eprintln!("{en}\n{zh}\n");
    }
    assert!(zh.starts_with(&format!("dingbridge.toml:{line}:")), "{zh}");
    for text in [&en, &zh] {
        assert!(!text.contains('\n'), "not one line: {text}");
    }
}

#[test]
fn sample_parses() {
    let c = parse(SAMPLE).expect("sample is valid");
    assert_eq!(c.server.listen, "0.0.0.0:8080");
    assert_eq!(c.server.log_format, LogFormat::Json);
    assert_eq!(c.server.lang, Some(Lang::Zh));
    assert_eq!(c.lang(), Lang::Zh);
    assert_eq!(
        c.store.url,
        "postgres://bridge:pg-pass-123@db.internal:5432/dingbridge"
    );
    assert_eq!(c.store.backend(), StoreBackend::Postgres);
    assert_eq!(c.store.max_connections, 16);
    assert_eq!(c.workers.count, 8);
    assert_eq!(c.workers.queues, ["default", "sync", "notify"]);
    assert_eq!(c.workers.lease(), Duration::from_secs(60));

    let dt = &c.connections["dingtalk"];
    assert_eq!(dt.kind(), ConnectionKind::DingTalk);
    let ConnectionSettings::DingTalk(d) = &dt.settings else {
        panic!("not dingtalk")
    };
    assert_eq!(d.agent_id, 3_000_000_123);
    assert_eq!(d.app_secret.expose_secret(), "dt-secret-456");
    assert_eq!(
        d.callback_token.as_ref().unwrap().expose_secret(),
        "cb-token-789"
    );
    assert_eq!(d.oapi_base_url, "http://127.0.0.1:9001");
    assert_eq!(d.edition, limits::DingTalkEdition::Professional);
    // No limits table: the edition's preset.
    assert_eq!(
        dt.limits,
        limits::ConnectionLimits::dingtalk(limits::DingTalkEdition::Professional)
    );

    let kd = &c.connections["kingdee"];
    let ConnectionSettings::Kingdee(k) = &kd.settings else {
        panic!("not kingdee")
    };
    assert_eq!(k.base_url, "https://erp.example.com/k3cloud/");
    assert_eq!(k.auth, KingdeeAuth::ValidateUser);
    assert_eq!(
        k.password.as_ref().unwrap().expose_secret(),
        "kd-password-def"
    );
    assert_eq!(k.lcid, 1033);
    assert_eq!(k.org_number.as_deref(), Some("100"));
    assert_eq!(kd.limits.concurrency, 2);
    assert_eq!(
        kd.limits.default_rule,
        Some(limits::LimitRule::per_second(5.0, 2))
    );
    assert!((kd.limits.groups["save"].per_second - 2.0).abs() < 1e-12);
    assert!((kd.limits.adaptive.decrease_factor - 0.7).abs() < 1e-12);
    // Keys left out keep the preset / default values.
    assert_eq!(
        kd.limits.adaptive.min_fraction,
        limits::AdaptiveSettings::default().min_fraction
    );

    let ConnectionSettings::Http(h) = &c.connections["ehr"].settings else {
        panic!("not http")
    };
    assert_eq!(
        h.auth_header.as_ref().unwrap().expose_secret(),
        "Bearer ehr-token-ghi"
    );
    assert_eq!(
        h.hmac_secret.as_ref().unwrap().expose_secret(),
        "whsec_literal_${not_a_var}"
    );
    assert_eq!(h.timeout(), Duration::from_secs(10));
    let ConnectionSettings::Sql(s) = &c.connections["hrdb"].settings else {
        panic!("not sql")
    };
    assert_eq!(s.url.expose_secret(), "postgres://hr:hr-db-pass@hr/hr");

    let selftest = &c.flows["selftest"];
    assert!(selftest.enabled);
    assert_eq!(selftest.queue, "default");
    assert_eq!(selftest.retry, RetryConfig::default());
    assert_eq!(selftest.retry.attempts(), 9);
    assert_eq!(selftest.options, serde_json::json!({}));

    let org = &c.flows["org_sync"];
    assert!(!org.enabled);
    assert_eq!(org.schedule.as_deref(), Some("0 2 * * *"));
    assert_eq!(org.priority, -5);
    assert_eq!(org.connections, ["dingtalk", "kingdee", "ehr"]);
    assert_eq!(
        org.retry.schedule,
        [1, 10, 90, 3600].map(Duration::from_secs).to_vec()
    );
    assert_eq!(org.retry.attempts(), 6);
    assert_eq!(
        org.options,
        serde_json::json!({
            "master": "dingtalk", "dry_run": false, "batch": 200, "ratio": 0.5,
            "fields": ["name", "mobile"], "mapping": {"dept": "FDeptID", "员工": "BD_Empinfo"}
        })
    );
    let expense = &c.flows["expense"];
    assert_eq!(expense.schedule.as_deref(), Some("*/30 * * * * *"));
    assert_eq!(expense.options["title"], "费用报销");

    let registry = c.limiter_registry().expect("valid limits");
    assert_eq!(registry.len(), 4);
}

#[test]
fn defaults() {
    let c = parse("").expect("empty config is valid");
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.server.log_format, LogFormat::Text);
    assert_eq!(c.server.lang, None);
    assert_eq!(c.store.url, "sqlite://dingbridge.sqlite");
    assert_eq!(c.store.backend(), StoreBackend::Sqlite);
    assert_eq!(c.store.max_connections, 8);
    assert_eq!(c.workers.count, 4);
    assert_eq!(c.workers.lease_seconds, 30);
    assert_eq!(c.workers.poll_interval(), Duration::from_millis(250));
    assert_eq!(c.workers.queues, ["default"]);
    assert_eq!(c.workers.shutdown_grace_seconds, 20);
    assert!(c.connections.is_empty() && c.flows.is_empty());

    let c = parse(
        "[connections.dt]\nkind = \"dingtalk\"\ncorp_id = \"c\"\nagent_id = 1\napp_key = \"k\"\napp_secret = \"s\"\n\
         [connections.dt.limits]\nconcurrency = 3\n\
         [connections.kd]\nkind = \"kingdee\"\nbase_url = \"http://kd/k3cloud/\"\nacct_id = \"a\"\nuser_name = \"u\"\napp_id = \"i\"\napp_secret = \"s\"\n",
    )
    .expect("valid");
    let ConnectionSettings::DingTalk(d) = &c.connections["dt"].settings else {
        panic!("not dingtalk")
    };
    assert_eq!(d.oapi_base_url, "https://oapi.dingtalk.com");
    assert_eq!(d.api_base_url, "https://api.dingtalk.com");
    assert_eq!(d.edition, limits::DingTalkEdition::Standard);
    // A partial limits table keeps the preset's rules.
    let dt_limits = &c.connections["dt"].limits;
    let preset = limits::ConnectionLimits::dingtalk(limits::DingTalkEdition::Standard);
    assert_eq!(dt_limits.concurrency, 3);
    assert_eq!(dt_limits.default_rule, preset.default_rule);
    assert_eq!(dt_limits.groups, preset.groups);
    let ConnectionSettings::Kingdee(k) = &c.connections["kd"].settings else {
        panic!("not kingdee")
    };
    assert_eq!(k.lcid, 2052);
    assert_eq!(k.auth, KingdeeAuth::Signature);
    assert_eq!(
        c.connections["kd"].limits,
        limits::ConnectionLimits::kingdee()
    );
}

#[test]
fn debug_never_shows_secrets() {
    let c = parse(SAMPLE).expect("valid");
    let debug = format!("{c:?}");
    for secret in [
        "pg-pass-123",
        "dt-secret-456",
        "cb-token-789",
        "kd-secret-abc",
        "kd-password-def",
        "ehr-token-ghi",
        "hr-db-pass",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "whsec_literal",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in Debug: {debug}");
    }
    assert!(debug.contains("bridge:***@db.internal"), "{debug}");
    assert!(
        debug.contains("dingappkey"),
        "non-secrets are shown: {debug}"
    );
}

#[test]
fn syntax_error() {
    let e = err("[server]\nlisten = \"127.0.0.1:8080\"\nlog_format = \"text\n");
    assert_err(&e, 3, &["TOML syntax error", "fix the syntax"]);
    assert!(matches!(*e.kind, ConfigErrorKind::Syntax { .. }));
    let e = err("[workers]\ncount = 4\n[workers\n");
    assert_err(&e, 3, &["TOML syntax error"]);
}

#[test]
fn unknown_key_lists_allowed_keys() {
    let text =
        "[server]\nlisten = \"127.0.0.1:8080\"\n\n[workers]\ncount = 2\nqueus = [\"default\"]\n";
    let e = err(text);
    assert_err(
        &e,
        6,
        &[
            "unknown key `queus` in [workers]",
            "did you mean `queues`?",
            "allowed: count, lease_seconds, poll_interval_ms, queues, shutdown_grace_seconds",
        ],
    );
    assert_eq!(e.key.as_deref(), Some("workers.queus"));
    assert_eq!(e.location.map(|l| l.column), Some(1));
    let zh = e.render(Lang::Zh);
    assert!(zh.contains("[workers] 中有未知的键 `queus`"), "{zh}");
    assert!(zh.contains("允许的键：count, lease_seconds"), "{zh}");

    let e = err("[servr]\nlisten = \"0.0.0.0:1\"\n");
    assert_err(
        &e,
        1,
        &[
            "unknown key `servr` in the top level",
            "did you mean `server`?",
        ],
    );
    assert!(
        e.render(Lang::Zh).contains("顶层中有未知的键")
            || e.render(Lang::Zh).contains("顶层 中有未知的键")
    );

    // Kind-specific keys: an http connection does not take `corp_id`.
    let e = err("[connections.e]\nkind = \"http\"\nbase_url = \"https://e\"\ncorp_id = \"x\"\n");
    assert_err(
        &e,
        4,
        &["unknown key `corp_id` in [connections.e]", "auth_header"],
    );

    let e = err(
        "[connections.e]\nkind = \"http\"\nbase_url = \"https://e\"\n[connections.e.limits]\nconcurency = 2\n",
    );
    assert_err(
        &e,
        5,
        &[
            "`concurency` in [connections.e.limits]",
            "did you mean `concurrency`?",
        ],
    );
}

#[test]
fn wrong_type() {
    let e = err("[workers]\ncount = \"four\"\n");
    assert_err(
        &e,
        2,
        &["`workers.count` must be an integer, found a string"],
    );
    assert!(
        e.render(Lang::Zh)
            .contains("`workers.count` 应为整数，实际是字符串")
    );
    let e = err("[flows.f]\nrecipe = \"selftest\"\nenabled = \"yes\"\n");
    assert_err(&e, 3, &["`flows.f.enabled` must be a boolean"]);
    let e = err("[workers]\nqueues = [\"a\", 3]\n");
    assert_err(
        &e,
        2,
        &["`workers.queues[1]` must be a string, found an integer"],
    );
    let e = err("[flows.f]\nrecipe = \"selftest\"\noptions = \"x\"\n");
    assert_err(&e, 3, &["`flows.f.options` must be a table"]);
    let e = err("server = 1\n");
    assert_err(&e, 1, &["`server` must be a table"]);
}

#[test]
fn out_of_range() {
    let e = err("[workers]\ncount = 0\n");
    assert_err(&e, 2, &["`workers.count` = 0 is out of range", "1..=1024"]);
    let e = err(
        "[connections.e]\nkind = \"http\"\nbase_url = \"https://e\"\n\n[connections.e.limits.adaptive]\ndecrease_factor = 1.5\n",
    );
    assert_err(
        &e,
        6,
        &[
            "`connections.e.limits.adaptive.decrease_factor` = 1.5 is out of range",
            "0 < x < 1",
        ],
    );
    let e = err(
        "[connections.e]\nkind = \"http\"\nbase_url = \"https://e\"\n[connections.e.limits.groups.x]\nper_second = 0\n",
    );
    assert_err(
        &e,
        5,
        &["`connections.e.limits.groups.x.per_second` = 0", "> 0"],
    );
    let e = err(
        "[connections.e]\nkind = \"http\"\nbase_url = \"https://e\"\n[connections.e.limits.total]\nper_second = 1\nper_minute = 60\n",
    );
    assert_err(
        &e,
        6,
        &[
            "`connections.e.limits.total.per_minute` cannot be combined with `connections.e.limits.total.per_second`",
        ],
    );
}

#[test]
fn missing_required_key() {
    let text = "[connections.dt]\nkind = \"dingtalk\"\nagent_id = 1\napp_key = \"k\"\napp_secret = \"s\"\n";
    let e = err(text);
    assert_err(
        &e,
        1,
        &[
            "missing required key `corp_id` in [connections.dt]",
            "add it, e.g. corp_id = \"",
        ],
    );
    assert_eq!(e.key.as_deref(), Some("connections.dt.corp_id"));
    assert!(
        e.render(Lang::Zh)
            .contains("[connections.dt] 缺少必填的键 `corp_id`")
    );

    let e = err("[flows.a]\nrecipe = \"selftest\"\n\n[flows.b]\nenabled = true\n");
    assert_err(
        &e,
        4,
        &[
            "missing required key `recipe` in [flows.b]",
            "recipe = \"org_sync\"",
        ],
    );

    let e = err("[connections.x]\nbase_url = \"https://e\"\n");
    assert_err(
        &e,
        1,
        &[
            "missing required key `kind` in [connections.x]",
            "kind = \"dingtalk\"",
        ],
    );

    let e = err(
        "[connections.kd]\nkind = \"kingdee\"\nbase_url = \"http://kd/\"\nacct_id = \"a\"\nuser_name = \"u\"\napp_id = \"i\"\napp_secret = \"s\"\nauth = \"validate_user\"\n",
    );
    assert_err(
        &e,
        8,
        &["`connections.kd.password` is required when auth = \"validate_user\""],
    );
}

#[test]
fn bad_enum_value_lists_choices() {
    let e = err("[server]\nlisten = \"127.0.0.1:8080\"\nlog_format = \"xml\"\n");
    assert_err(
        &e,
        3,
        &[
            "`server.log_format` = \"xml\" is not allowed",
            "use one of: text, json",
        ],
    );
    assert!(e.render(Lang::Zh).contains("可选值：text, json"));
    let e = err("[connections.c]\nkind = \"ftp\"\n");
    assert_err(
        &e,
        2,
        &[
            "`connections.c.kind` = \"ftp\"",
            "dingtalk, kingdee, http, sql",
        ],
    );
    let e = err(
        "[connections.dt]\nkind = \"dingtalk\"\ncorp_id = \"c\"\nagent_id = 1\napp_key = \"k\"\napp_secret = \"s\"\nedition = \"gold\"\n",
    );
    assert_err(
        &e,
        7,
        &[
            "`connections.dt.edition`",
            "standard, professional, exclusive",
        ],
    );
    let e = err(
        "[connections.kd]\nkind = \"kingdee\"\nbase_url = \"http://kd/\"\nacct_id = \"a\"\nuser_name = \"u\"\napp_id = \"i\"\napp_secret = \"s\"\nauth = \"oauth\"\n",
    );
    assert_err(
        &e,
        8,
        &["signature, login_by_sign, login_by_sign_sha1, login_by_app_secret, validate_user"],
    );
}

#[test]
fn bad_cron_names_flow_and_expression() {
    let text = "[flows.ok]\nrecipe = \"selftest\"\nschedule = \"@daily\"\n\n[flows.nightly]\nrecipe = \"org_sync\"\nschedule = \"0 25 * * *\"\n";
    let e = err(text);
    assert_err(
        &e,
        7,
        &[
            "flow `nightly`",
            "`flows.nightly.schedule` = \"0 25 * * *\" is not a valid cron expression",
            "e.g. \"0 2 * * *\"",
        ],
    );
    assert!(e.render(Lang::Zh).contains("不是有效的 cron 表达式"));
    let e = err("[flows.f]\nrecipe = \"x\"\nschedule = \"every day\"\n");
    assert_err(&e, 3, &["\"every day\"", "it has 2 fields"]);
    assert!(e.render(Lang::Zh).contains("它有 2 个字段"));
    let e = err("[flows.f]\nrecipe = \"x\"\nschedule = \"0 0 2 * * * 2030\"\n");
    assert_err(&e, 3, &["it has 7 fields"]);
}

#[test]
fn unknown_connection_in_flow() {
    let text = "[connections.dingtalk]\nkind = \"sql\"\nurl = \"sqlite://x\"\n\n[flows.f]\nrecipe = \"org_sync\"\nconnections = [\n  \"dingtalk\",\n  \"kingde\",\n]\n";
    let e = err(text);
    assert_err(
        &e,
        9,
        &[
            "flow `f` refers to unknown connection `kingde` in `flows.f.connections[1]`",
            "defined connections: dingtalk",
            "define [connections.kingde]",
        ],
    );
    assert!(e.render(Lang::Zh).contains("引用了未定义的连接 `kingde`"));
}

#[test]
fn bad_duration() {
    let e = err("[flows.f]\nrecipe = \"x\"\n[flows.f.retry]\nschedule = [\"1s\", \"5x\"]\n");
    assert_err(
        &e,
        4,
        &[
            "`flows.f.retry.schedule[1]` = \"5x\" is not a valid duration",
            "\"30s\"",
        ],
    );
    assert_eq!(
        read::parse_duration("1h30m"),
        Some(Duration::from_secs(5400))
    );
    assert_eq!(
        read::parse_duration("250ms"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        read::parse_duration("2d"),
        Some(Duration::from_secs(172_800))
    );
    for bad in ["", "5", "s", "1.5s", "-1s", "1 s", "1sm"] {
        assert_eq!(read::parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn bad_formats() {
    let e = err("[server]\nlisten = \"8080\"\n");
    assert_err(
        &e,
        2,
        &[
            "`server.listen` = \"8080\" is not a listen address",
            "127.0.0.1:8080",
        ],
    );
    let e = err("[store]\nurl = \"mysql://root:hunter2@db/x\"\n");
    assert_err(&e, 2, &["`store.url`", "sqlite://"]);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = err(
        "[connections.dt]\nkind = \"dingtalk\"\ncorp_id = \"c\"\nagent_id = 1\napp_key = \"k\"\napp_secret = \"s\"\nencoding_aes_key = \"short-secret\"\n",
    );
    assert_err(
        &e,
        7,
        &["`connections.dt.encoding_aes_key`", "43-character"],
    );
    assert!(!e.to_string().contains("short-secret"), "{e}");
    let e = err("[connections.\"bad name\"]\nkind = \"sql\"\nurl = \"x\"\n");
    assert_err(
        &e,
        1,
        &["[connections.\"bad name\"]", "letters, digits", "rename it"],
    );
    let e = err("[connections.e]\nkind = \"http\"\nbase_url = \"ehr.example.com\"\n");
    assert_err(&e, 3, &["`connections.e.base_url`", "http:// or https://"]);
}

#[test]
fn env_expansion() {
    let env = |name: &str| match name {
        "A" => Some("alpha".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let expand = |s: &str| read::expand(s, &env);
    assert_eq!(expand("x${A}y${A}").unwrap(), "xalphayalpha");
    assert_eq!(expand("$${A}").unwrap(), "${A}");
    // Read left to right: a lone `$`, then the escape.
    assert_eq!(expand("$$${A}").unwrap(), "$${A}");
    assert_eq!(expand("cost $5 ${EMPTY}.").unwrap(), "cost $5 .");
    assert_eq!(expand("中文${A}").unwrap(), "中文alpha");
    assert_eq!(
        expand("${NOPE}"),
        Err(ConfigErrorKind::UnsetEnv { var: "NOPE".into() })
    );
    assert_eq!(
        expand("${A"),
        Err(ConfigErrorKind::BadEnvSyntax(EnvSyntax::Unterminated))
    );
    assert!(matches!(
        expand("${A-B}"),
        Err(ConfigErrorKind::BadEnvSyntax(EnvSyntax::BadName(_)))
    ));

    // Any string value is expanded, also in arrays and free-form options.
    let c = Config::from_str_with_env(
        "[workers]\nqueues = [\"${A}\"]\n[flows.f]\nrecipe = \"r-${A}\"\n[flows.f.options]\nlist = [{ k = \"${A}\" }]\n",
        "dingbridge.toml",
        &env,
    )
    .expect("valid");
    assert_eq!(c.workers.queues, ["alpha"]);
    assert_eq!(c.flows["f"].recipe, "r-alpha");
    assert_eq!(
        c.flows["f"].options,
        serde_json::json!({"list": [{"k": "alpha"}]})
    );
}

#[test]
fn unset_env_names_key_and_variable() {
    let text = "[connections.dt]\nkind = \"dingtalk\"\ncorp_id = \"c\"\nagent_id = 1\napp_key = \"k\"\napp_secret = \"${DT_SECRET_MISSING}\"\n";
    let e = err(text);
    assert_err(
        &e,
        6,
        &[
            "`connections.dt.app_secret` refers to environment variable `DT_SECRET_MISSING`, which is not set",
            "`$${` for a literal",
        ],
    );
    assert!(
        e.render(Lang::Zh)
            .contains("引用的环境变量 `DT_SECRET_MISSING` 未设置")
    );
    let e = err(
        "[flows.f]\nrecipe = \"x\"\n[flows.f.options]\nnested = { deep = [\"ok\", \"${NOPE}\"] }\n",
    );
    assert_err(&e, 4, &["`flows.f.options.nested.deep[1]`", "`NOPE`"]);
    let e = err("[server]\nlisten = \"${HOST\"\n");
    assert_err(&e, 2, &["`server.listen` has a `${` without a closing `}`"]);
}

#[test]
fn chinese_text_survives() {
    let c = parse("[flows.\"报销\"]\nrecipe = \"x\"\n").expect_err("names must be ascii");
    assert_err(&c, 1, &["报销"]);
    let c = parse(
        "[flows.expense]\nrecipe = \"approval_to_document\"\n[flows.expense.options]\ntitle = \"费用报销\"\n\"审批\" = { \"标题\" = \"差旅费\" }\n",
    )
    .expect("valid");
    let o = &c.flows["expense"].options;
    assert_eq!(o["title"], "费用报销");
    assert_eq!(o["审批"]["标题"], "差旅费");
    // Columns count characters, not bytes.
    let e = err(
        "[flows.f]\nrecipe = \"x\"\n[flows.f.options]\ntitle = \"费用\"\n[flows.f.retry]\nschedule = [\"费用\", \"bad\"]\n",
    );
    assert_eq!(
        e.location,
        Some(Location {
            line: 6,
            column: 13
        })
    );
}

#[test]
fn lang_from_env_and_rendering() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        Lang::from_lookup(&env(&[("LANG", "zh_CN.UTF-8")])),
        Lang::Zh
    );
    assert_eq!(
        Lang::from_lookup(&env(&[("LANG", "en_US.UTF-8")])),
        Lang::En
    );
    assert_eq!(
        Lang::from_lookup(&env(&[("LC_ALL", "zh_TW.UTF-8"), ("LANG", "en_US.UTF-8")])),
        Lang::Zh
    );
    assert_eq!(
        Lang::from_lookup(&env(&[("LC_ALL", ""), ("LANG", "zh_CN")])),
        Lang::Zh
    );
    assert_eq!(Lang::from_lookup(&env(&[])), Lang::En);
    let e = err("[workers]\ncount = true\n");
    assert_eq!(e.to_string(), e.render(Lang::En));
    assert_ne!(e.render(Lang::Zh), e.render(Lang::En));
}

#[test]
fn load_reads_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dingbridge.toml");
    std::fs::write(&path, "[workers]\ncount = 2\n").expect("write");
    assert_eq!(Config::load(&path).expect("valid").workers.count, 2);
    std::fs::write(&path, "[workers]\ncont = 2\n").expect("write");
    let e = Config::load(&path).expect_err("invalid");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:1: unknown key `cont`", path.display()))
    );
    let e = Config::load(dir.path().join("missing.toml")).expect_err("missing file");
    assert!(matches!(*e.kind, ConfigErrorKind::Io { .. }));
    assert!(e.to_string().contains("cannot read the config file"));
}
