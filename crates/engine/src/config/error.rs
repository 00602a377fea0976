//! Configuration errors: one line each, `file:line:col: what is wrong; how to fix it`, in English
//! or Chinese. Key names and paths are never translated.

use std::fmt;

/// Language of user-facing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    Zh,
    #[default]
    En,
}

impl Lang {
    /// `Zh` when the locale (`LC_ALL`, else `LC_MESSAGES`, else `LANG`; the first one set and
    /// non-empty) starts with `zh`, else `En`.
    pub fn from_env() -> Self {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// As [`Lang::from_env`], with an injectable environment.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|name| env(name).filter(|v| !v.is_empty()));
        match locale {
            Some(l) if l.to_ascii_lowercase().starts_with("zh") => Self::Zh,
            _ => Self::En,
        }
    }

    /// The config spelling (`zh`, `en`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }
}

/// A position in the config text (1-based; the column counts characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// The type a key wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Table,
}

impl Expected {
    fn text(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Self::String, Lang::En) => "a string",
            (Self::Integer, Lang::En) => "an integer",
            (Self::Number, Lang::En) => "a number",
            (Self::Boolean, Lang::En) => "a boolean (true or false)",
            (Self::Array, Lang::En) => "an array",
            (Self::Table, Lang::En) => "a table",
            (Self::String, Lang::Zh) => "字符串",
            (Self::Integer, Lang::Zh) => "整数",
            (Self::Number, Lang::Zh) => "数字",
            (Self::Boolean, Lang::Zh) => "布尔值（true 或 false）",
            (Self::Array, Lang::Zh) => "数组",
            (Self::Table, Lang::Zh) => "表",
        }
    }
}

/// A value shape that is checked beyond its TOML type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `host:port`
    ListenAddr,
    /// `http://…` or `https://…`
    HttpUrl,
    /// `sqlite://…` or `postgres://…`
    StoreUrl,
    /// 43 characters (DingTalk `encoding_aes_key`)
    AesKey,
    /// a non-empty name of letters, digits, `_`, `-`
    Name,
    /// not empty
    NonEmpty,
}

impl Format {
    fn text(self, lang: Lang) -> (&'static str, &'static str) {
        match (self, lang) {
            (Self::ListenAddr, Lang::En) => ("a listen address host:port", "\"127.0.0.1:8080\""),
            (Self::ListenAddr, Lang::Zh) => ("监听地址 host:port", "\"127.0.0.1:8080\""),
            (Self::HttpUrl, Lang::En) => (
                "an http:// or https:// URL",
                "\"https://erp.example.com/k3cloud/\"",
            ),
            (Self::HttpUrl, Lang::Zh) => (
                "http:// 或 https:// 开头的 URL",
                "\"https://erp.example.com/k3cloud/\"",
            ),
            (Self::StoreUrl, Lang::En) => (
                "a sqlite:// or postgres:// URL",
                "\"sqlite://dingbridge.sqlite\"",
            ),
            (Self::StoreUrl, Lang::Zh) => (
                "sqlite:// 或 postgres:// 开头的 URL",
                "\"sqlite://dingbridge.sqlite\"",
            ),
            (Self::AesKey, Lang::En) => (
                "a 43-character key from the DingTalk developer console",
                "\"${DT_AES_KEY}\"",
            ),
            (Self::AesKey, Lang::Zh) => ("钉钉开发者后台给出的 43 位密钥", "\"${DT_AES_KEY}\""),
            (Self::Name, Lang::En) => ("a name of letters, digits, `_` or `-`", "\"default\""),
            (Self::Name, Lang::Zh) => ("由字母、数字、`_` 或 `-` 组成的名称", "\"default\""),
            (Self::NonEmpty, Lang::En) => ("a non-empty string", "\"…\""),
            (Self::NonEmpty, Lang::Zh) => ("非空字符串", "\"…\""),
        }
    }
}

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronProblem {
    /// Not 5 or 6 fields.
    FieldCount(usize),
    /// The cron parser's message.
    Parser(String),
}

impl CronProblem {
    fn text(&self, lang: Lang) -> String {
        match (self, lang) {
            (Self::FieldCount(n), Lang::En) => format!("it has {n} fields"),
            (Self::FieldCount(n), Lang::Zh) => format!("它有 {n} 个字段"),
            (Self::Parser(m), _) => m.clone(),
        }
    }
}

/// How a table is named in messages: `[workers]`, or the top level.
fn table_name(path: &str, lang: Lang) -> String {
    match (path.is_empty(), lang) {
        (true, Lang::En) => "the top level".to_owned(),
        (true, Lang::Zh) => "顶层".to_owned(),
        (false, _) => format!("[{path}]"),
    }
}

/// Problems in a `${…}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSyntax {
    Unterminated,
    BadName(String),
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io { message: String },
    /// Not valid TOML.
    Syntax { message: String },
    /// A key the table does not know; `table` is the table's path ("" = top level).
    UnknownKey {
        key: String,
        table: String,
        allowed: Vec<String>,
        suggestion: Option<String>,
    },
    /// A value of the wrong TOML type.
    WrongType {
        expected: Expected,
        found: &'static str,
    },
    /// A required key is absent; `table` is the table's path, `example` a line to add.
    MissingKey {
        key: String,
        table: String,
        example: String,
    },
    /// A value outside a fixed set.
    BadValue { value: String, allowed: Vec<String> },
    /// An invalid cron expression.
    BadCron {
        flow: String,
        expr: String,
        reason: CronProblem,
    },
    /// A connection or flow name that cannot be used in URLs and commands.
    BadName { section: String, name: String },
    /// A flow names a connection that is not defined.
    UnknownConnection {
        flow: String,
        name: String,
        known: Vec<String>,
    },
    /// A duration that does not parse.
    BadDuration { value: String },
    /// `${VAR}` with `VAR` unset.
    UnsetEnv { var: String },
    /// A malformed `${…}`.
    BadEnvSyntax(EnvSyntax),
    /// A number outside its range; `requirement` is notation such as `>= 1`.
    OutOfRange { value: String, requirement: String },
    /// A string of the wrong shape.
    BadFormat { value: String, format: Format },
    /// A key that another key's value makes required.
    RequiredWhen { condition: String },
    /// Two keys that exclude each other; `other` is the full path of the one to keep.
    Conflict { other: String },
}

/// An error in `dingbridge.toml`. `Display` is the English line; [`ConfigError::render`] gives
/// either language.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render(Lang::En))]
pub struct ConfigError {
    /// File name (or another name for the text) as given to the loader.
    pub source_name: String,
    /// Where; `None` for errors about the whole file.
    pub location: Option<Location>,
    /// Dotted key path, e.g. `workers.queues` or `flows.nightly.retry.schedule[2]`.
    pub key: Option<String>,
    /// What is wrong (boxed: errors travel through every reader function).
    pub kind: Box<ConfigErrorKind>,
}

fn list(items: &[String], lang: Lang) -> String {
    if items.is_empty() {
        match lang {
            Lang::En => "(none)".to_owned(),
            Lang::Zh => "（无）".to_owned(),
        }
    } else {
        items.join(", ")
    }
}

impl ConfigError {
    /// The line number, if known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    /// One line in `lang`: `file:line:col: message`.
    pub fn render(&self, lang: Lang) -> String {
        let mut out = String::new();
        out.push_str(&self.source_name);
        if let Some(loc) = self.location {
            out.push_str(&format!(":{}:{}", loc.line, loc.column));
        }
        out.push_str(": ");
        out.push_str(&self.message(lang));
        // One line, whatever a wrapped message contained.
        out.replace(['\n', '\r'], " ")
    }

    fn message(&self, lang: Lang) -> String {
        let path = self.key.as_deref().unwrap_or("");
        use ConfigErrorKind as K;
        match (self.kind.as_ref(), lang) {
            (K::Io { message }, Lang::En) => format!("cannot read the config file: {message}"),
            (K::Io { message }, Lang::Zh) => format!("无法读取配置文件：{message}"),
            (K::Syntax { message }, Lang::En) => {
                format!("TOML syntax error: {message}; fix the syntax at this position")
            }
            (K::Syntax { message }, Lang::Zh) => {
                format!("TOML 语法错误：{message}；请修正此处的语法")
            }
            (
                K::UnknownKey {
                    key,
                    table,
                    allowed,
                    suggestion,
                },
                Lang::En,
            ) => {
                let hint = suggestion
                    .as_ref()
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                format!(
                    "unknown key `{key}` in {}{hint}; allowed: {}",
                    table_name(table, lang),
                    list(allowed, lang)
                )
            }
            (
                K::UnknownKey {
                    key,
                    table,
                    allowed,
                    suggestion,
                },
                Lang::Zh,
            ) => {
                let hint = suggestion
                    .as_ref()
                    .map(|s| format!("（是否想写 `{s}`？）"))
                    .unwrap_or_default();
                format!(
                    "{} 中有未知的键 `{key}`{hint}；允许的键：{}",
                    table_name(table, lang),
                    list(allowed, lang)
                )
            }
            (K::WrongType { expected, found }, Lang::En) => format!(
                "`{path}` must be {}, found {}",
                expected.text(lang),
                found_text(found, lang)
            ),
            (K::WrongType { expected, found }, Lang::Zh) => format!(
                "`{path}` 应为{}，实际是{}",
                expected.text(lang),
                found_text(found, lang)
            ),
            (
                K::MissingKey {
                    key,
                    table,
                    example,
                },
                Lang::En,
            ) => format!(
                "missing required key `{key}` in {}; add it, e.g. {example}",
                table_name(table, lang)
            ),
            (
                K::MissingKey {
                    key,
                    table,
                    example,
                },
                Lang::Zh,
            ) => format!(
                "{} 缺少必填的键 `{key}`；请添加，例如 {example}",
                table_name(table, lang)
            ),
            (K::BadValue { value, allowed }, Lang::En) => format!(
                "`{path}` = \"{value}\" is not allowed; use one of: {}",
                list(allowed, lang)
            ),
            (K::BadValue { value, allowed }, Lang::Zh) => format!(
                "`{path}` 的值 \"{value}\" 无效；可选值：{}",
                list(allowed, lang)
            ),
            (K::BadCron { flow, expr, reason }, Lang::En) => format!(
                "flow `{flow}`: `{path}` = \"{expr}\" is not a valid cron expression ({}); \
                 use 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds \
                 first, e.g. \"0 2 * * *\" for 02:00 every day",
                reason.text(lang)
            ),
            (K::BadCron { flow, expr, reason }, Lang::Zh) => format!(
                "流程 `{flow}`：`{path}` = \"{expr}\" 不是有效的 cron 表达式（{}）；\
                 请使用 5 个字段（分 时 日 月 周）或以秒开头的 6 个字段，\
                 例如 \"0 2 * * *\" 表示每天 02:00",
                reason.text(lang)
            ),
            (K::BadName { section, name }, Lang::En) => format!(
                "[{section}.\"{name}\"]: names may only use letters, digits, `_` and `-` (they \
                 appear in URLs and commands); rename it, e.g. [{section}.my_{}]",
                section.trim_end_matches('s')
            ),
            (K::BadName { section, name }, Lang::Zh) => format!(
                "[{section}.\"{name}\"]：名称只能包含字母、数字、`_` 和 `-`（它会出现在 URL 和命令中）；\
                 请改名，例如 [{section}.my_{}]",
                section.trim_end_matches('s')
            ),
            (K::UnknownConnection { flow, name, known }, Lang::En) => format!(
                "flow `{flow}` refers to unknown connection `{name}` in `{path}`; defined \
                 connections: {}; define [connections.{name}] or fix the name",
                list(known, lang)
            ),
            (K::UnknownConnection { flow, name, known }, Lang::Zh) => format!(
                "流程 `{flow}` 在 `{path}` 中引用了未定义的连接 `{name}`；已定义的连接：{}；\
                 请添加 [connections.{name}] 或改正名称",
                list(known, lang)
            ),
            (K::BadDuration { value }, Lang::En) => format!(
                "`{path}` = \"{value}\" is not a valid duration; write a number with a unit \
                 (ms, s, m, h, d), e.g. \"30s\", \"2m\", \"1h30m\""
            ),
            (K::BadDuration { value }, Lang::Zh) => format!(
                "`{path}` = \"{value}\" 不是有效的时长；请写数字加单位（ms、s、m、h、d），\
                 例如 \"30s\"、\"2m\"、\"1h30m\""
            ),
            (K::UnsetEnv { var }, Lang::En) => format!(
                "`{path}` refers to environment variable `{var}`, which is not set; set it \
                 before starting dingbridge, or write `$${{` for a literal `${{`"
            ),
            (K::UnsetEnv { var }, Lang::Zh) => format!(
                "`{path}` 引用的环境变量 `{var}` 未设置；请在启动 dingbridge 前设置它，\
                 或用 `$${{` 表示字面量 `${{`"
            ),
            (K::BadEnvSyntax(EnvSyntax::Unterminated), Lang::En) => format!(
                "`{path}` has a `${{` without a closing `}}`; write `${{NAME}}`, or `$${{` for a \
                 literal `${{`"
            ),
            (K::BadEnvSyntax(EnvSyntax::Unterminated), Lang::Zh) => format!(
                "`{path}` 中的 `${{` 没有对应的 `}}`；请写 `${{NAME}}`，或用 `$${{` 表示字面量 `${{`"
            ),
            (K::BadEnvSyntax(EnvSyntax::BadName(name)), Lang::En) => format!(
                "`{path}` refers to `${{{name}}}`, which is not a valid environment variable \
                 name; use letters, digits and `_`, e.g. `${{DT_APP_SECRET}}`"
            ),
            (K::BadEnvSyntax(EnvSyntax::BadName(name)), Lang::Zh) => format!(
                "`{path}` 中的 `${{{name}}}` 不是有效的环境变量名；请只用字母、数字和 `_`，\
                 例如 `${{DT_APP_SECRET}}`"
            ),
            (K::OutOfRange { value, requirement }, Lang::En) => {
                format!("`{path}` = {value} is out of range; it must be {requirement}")
            }
            (K::OutOfRange { value, requirement }, Lang::Zh) => {
                format!("`{path}` = {value} 超出范围；必须满足 {requirement}")
            }
            (K::BadFormat { value, format }, Lang::En) => {
                let (what, example) = format.text(lang);
                format!("`{path}` = \"{value}\" is not {what}; e.g. `{path}` = {example}")
            }
            (K::BadFormat { value, format }, Lang::Zh) => {
                let (what, example) = format.text(lang);
                format!("`{path}` = \"{value}\" 不是{what}；例如 `{path}` = {example}")
            }
            (K::RequiredWhen { condition }, Lang::En) => {
                format!("`{path}` is required when {condition}; add it")
            }
            (K::RequiredWhen { condition }, Lang::Zh) => {
                format!("当 {condition} 时必须设置 `{path}`；请添加它")
            }
            (K::Conflict { other }, Lang::En) => {
                format!("`{path}` cannot be combined with `{other}`; keep only one of them")
            }
            (K::Conflict { other }, Lang::Zh) => {
                format!("`{path}` 不能与 `{other}` 同时设置；请只保留其中一个")
            }
        }
    }
}

fn found_text(found: &str, lang: Lang) -> &'static str {
    match (found, lang) {
        ("string", Lang::En) => "a string",
        ("integer", Lang::En) => "an integer",
        ("float", Lang::En) => "a float",
        ("boolean", Lang::En) => "a boolean",
        ("datetime", Lang::En) => "a date-time",
        ("array", Lang::En) => "an array",
        ("table", Lang::En) => "a table",
        ("string", Lang::Zh) => "字符串",
        ("integer", Lang::Zh) => "整数",
        ("float", Lang::Zh) => "浮点数",
        ("boolean", Lang::Zh) => "布尔值",
        ("datetime", Lang::Zh) => "日期时间",
        ("array", Lang::Zh) => "数组",
        ("table", Lang::Zh) => "表",
        (_, Lang::En) => "another type",
        (_, Lang::Zh) => "其他类型",
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
