//! The command line: every command, flag and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dingbridge",
    version,
    about = "Self-hosted integration hub: DingTalk ⇄ Kingdee K3Cloud, eHR and in-house systems\n钉钉 ⇄ 金蝶云星空 / eHR / 自有系统 集成中枢",
    long_about = None,
    after_help = "Start with `dingbridge demo` (no external service needed). Docs: README.md, docs/ARCHITECTURE.md.\n先运行 `dingbridge demo`（无需任何外部服务）。"
)]
pub struct Cli {
    /// Language of messages: zh or en (default: from LANG / LC_ALL).
    #[arg(long, global = true, value_enum)]
    pub lang: Option<LangArg>,

    /// Log format: text or json (default: the config's server.log_format, else text).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// The configuration file (all commands but `demo`).
    #[arg(
        long,
        short,
        global = true,
        default_value = "dingbridge.toml",
        env = "DINGBRIDGE_CONFIG"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    Zh,
    En,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: workers, scheduler and HTTP server (运行节点).
    Serve {
        /// Address to listen on (overrides server.listen; default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run the demo on an embedded SQLite store with the example configuration (演示).
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the demo keeps its SQLite file.
        #[arg(long, default_value = "dingbridge-demo")]
        data_dir: PathBuf,
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Validate the configuration and probe the store (检查配置).
    Check {},
    /// Apply the store's migrations (迁移数据库).
    Migrate {},
    /// Run the platform simulators alone, for tests and trials (模拟器).
    ///
    /// The DingTalk (oapi + api on one address) and Kingdee K3Cloud simulators, loaded with
    /// the same demo company. Prints their base URLs and credentials as ready-to-paste
    /// `[connections.…]` blocks for dingbridge.toml.
    ///
    /// Fault flags apply from the start (change them later through the admin API,
    /// `POST /_sandbox/{dingtalk,kingdee}/faults`, docs/sandbox.md): `--latency-ms`,
    /// `--error-rate` and `--outage-seconds` act on both simulators; `--token-ttl-seconds` and
    /// `--edition` on DingTalk. Example:
    /// `dingbridge sandbox --latency-ms 200 --error-rate 0.05 --edition professional`.
    Sandbox {
        /// Where the DingTalk simulator listens (oapi.dingtalk.com and api.dingtalk.com paths).
        #[arg(long, default_value = "127.0.0.1:8089")]
        dingtalk_listen: String,
        /// Where the Kingdee K3Cloud simulator listens.
        #[arg(long, default_value = "127.0.0.1:8090")]
        kingdee_listen: String,
        /// The company to load (JSON; default: the built-in 杭州示例科技有限公司).
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Generate a company of this size instead, e.g. `users=100000,depts=5000`.
        #[arg(long, conflicts_with = "seed")]
        scale: Option<String>,
        /// Also write the `[connections.…]` block to this file.
        #[arg(long)]
        config_out: Option<PathBuf>,
        /// Fault: delay every simulated API call by N milliseconds (0–60000).
        #[arg(long, value_name = "N")]
        latency_ms: Option<String>,
        /// Fault: fraction F (0–1) of calls that fail: DingTalk answers a system error
        /// (`-1` 系统繁忙 / HTTP 500 `systemError`), Kingdee MsgCode 14 (调用限制).
        #[arg(long, value_name = "F")]
        error_rate: Option<String>,
        /// Fault: an outage starting now: every API call answers HTTP 503 for N seconds
        /// (0–86400).
        #[arg(long, value_name = "N")]
        outage_seconds: Option<String>,
        /// DingTalk access-token lifetime in seconds (1–86400; default 7200), for
        /// token-expiry trials.
        #[arg(long, value_name = "N")]
        token_ttl_seconds: Option<String>,
        /// DingTalk edition of the app, which sets its QPS per API: standard (20),
        /// professional (40) or exclusive (60). Also written to the printed block.
        #[arg(long, value_name = "EDITION")]
        edition: Option<String>,
    },
    /// Inspect jobs (作业).
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Mapping rules: try them on sample records (映射规则).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Dead letters: list, show, replay, discard (死信).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Org sync: run a flow now with a progress bar, or list stored runs (通讯录同步).
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// API keys of in-house systems for the REST API: create, list, revoke (接口密钥).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Approvals started through the approval bridge: list, show (审批).
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// The webhook outbox to in-house systems: list messages, redeliver one (Webhook 消息).
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    ///
    /// Example: `dingbridge keys create 报销系统 --scope approvals:write --scope approvals:read`.
    /// Scopes: approvals:write, approvals:read, deliveries:write.
    Create {
        /// A name that tells the key's holder, e.g. the in-house system.
        name: String,
        /// What the key may do (repeat the flag or separate with commas).
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            required = true,
            value_delimiter = ','
        )]
        scopes: Vec<String>,
        /// Print JSON (with the key) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys: prefix, name, scopes, created, last used, revoked (never the key or its hash).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its prefix; requests with it are refused from then on.
    Revoke {
        /// The key's prefix (the 8 characters after `dbk_`).
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals, newest first.
    List {
        /// Only this status: pending, running, completed, terminated, failed.
        #[arg(long, value_enum)]
        status: Option<ApprovalStatusArg>,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only this business key (the caller's own reference).
        #[arg(long)]
        business_key: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one approval: status, result, DingTalk instance, tasks and webhook messages.
    Show {
        /// The hub's approval id (`apv_…`).
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ApprovalStatusArg {
    Pending,
    Running,
    Completed,
    Terminated,
    Failed,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The messages of an approval (or any outbox subject) in delivery order.
    List {
        /// The approval id (`apv_…`) or another subject of the outbox.
        subject: String,
        #[arg(long)]
        json: bool,
    },
    /// Deliver a message again: it becomes pending and gets a new delivery job.
    Redeliver {
        /// The message id (the `webhook-id` header, as `webhooks list` shows it).
        message_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run an org_sync flow now and print a summary; the run is stored like scheduled ones.
    Run {
        /// The flow (a `[flows.<name>]` with recipe = "org_sync").
        flow: String,
        /// Print the reconciliation plan (create / update / disable / conflicts); write nothing.
        #[arg(long)]
        dry_run: bool,
        /// full: write what changed since the last run; reconcile: compare with the target's
        /// records and apply the difference.
        #[arg(long, value_enum, default_value = "full")]
        mode: SyncModeArg,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stored runs, newest first.
    Runs {
        /// Only this flow.
        flow: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SyncModeArg {
    Full,
    Reconcile,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this status: queued, running, retry, done, dead, discarded.
        #[arg(long)]
        status: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its payload and last error.
    Show { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its payload and reason.
    Show { id: i64 },
    /// Put dead letters back on the queue with fresh attempts.
    Replay {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Set dead letters aside for good (kept as `discarded`).
    Discard {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Map sample records with a rule set and print the result (试运行映射规则).
    ///
    /// The rules come from a file, `--rules FILE` (TOML with `[[fields]]` tables, or JSON:
    /// an array or `{"fields": [...]}`), or from the configuration, `-c dingbridge.toml
    /// --flow NAME --entity users|departments` (the `fields` of
    /// `[flows.NAME.options.ENTITY]`). `--record` holds one JSON object or an array of them.
    /// Exit 2 when the rules do not compile or a record fails.
    Test {
        /// A rules file (.toml or .json).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["flow", "entity"], required_unless_present = "flow")]
        rules: Option<PathBuf>,
        /// Take the rules from this flow in the configuration.
        #[arg(long, value_name = "NAME", requires = "entity")]
        flow: Option<String>,
        /// Which of the flow's mappings: users or departments.
        #[arg(long, value_enum, requires = "flow")]
        entity: Option<RulesEntity>,
        /// A sample record (JSON object) or an array of them.
        #[arg(long, value_name = "SAMPLE.json")]
        record: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RulesEntity {
    Users,
    Departments,
}
