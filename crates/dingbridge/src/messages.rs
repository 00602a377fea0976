//! What the CLI says, in Chinese and English. Keys, paths and identifiers stay untranslated.

use engine::config::Lang;

/// One message, rendered with [`Msg::text`].
pub enum Msg<'a> {
    ConfigOk {
        connections: usize,
        flows: usize,
    },
    StoreOk {
        backend: &'a str,
        migrations: &'a str,
    },
    StoreNotMigrated,
    Migrated {
        backend: &'a str,
    },
    Listening {
        url: &'a str,
    },
    DemoIntro {
        dir: &'a str,
    },
    DemoEnqueued {
        count: usize,
    },
    Progress {
        queued: i64,
        retry: i64,
        done: i64,
        dead: i64,
    },
    SandboxReady {
        dingtalk: &'a str,
        kingdee: &'a str,
        users: usize,
        depts: usize,
    },
    ProbeOk {
        name: &'a str,
        detail: &'a str,
        millis: u128,
    },
    ProbeFailed {
        name: &'a str,
        detail: &'a str,
    },
    NotProbed {
        name: &'a str,
        reason: &'a str,
    },
    ProbesFailed {
        count: usize,
    },
    ShuttingDown,
    Stopped,
    NoJobs,
    Replayed {
        id: i64,
    },
    Discarded {
        id: i64,
    },
    NotFound {
        id: i64,
    },
    Error {
        detail: &'a str,
    },
}

impl Msg<'_> {
    pub fn text(&self, lang: Lang) -> String {
        use Msg::*;
        let zh = lang == Lang::Zh;
        match self {
            ConfigOk { connections, flows } if zh => {
                format!("配置有效：{connections} 个连接，{flows} 个流程")
            }
            ConfigOk { connections, flows } => {
                format!("configuration is valid: {connections} connections, {flows} flows")
            }
            StoreOk {
                backend,
                migrations,
            } if zh => {
                format!("存储可用（{backend}），迁移：{migrations}")
            }
            StoreOk {
                backend,
                migrations,
            } => {
                format!("store reachable ({backend}), migrations: {migrations}")
            }
            StoreNotMigrated if zh => "存储尚未迁移到最新：请运行 `dingbridge migrate`".into(),
            StoreNotMigrated => "the store is not migrated: run `dingbridge migrate`".into(),
            Migrated { backend } if zh => format!("迁移完成（{backend}）"),
            Migrated { backend } => format!("migrations applied ({backend})"),
            Listening { url } if zh => format!("节点已启动：{url}  （/healthz /readyz /metrics）"),
            Listening { url } => format!("node listening on {url}  (/healthz /readyz /metrics)"),
            DemoIntro { dir } if zh => format!(
                "dingbridge 演示：嵌入式 SQLite 存储位于 {dir}，配置 {dir}/dingbridge.toml（来自 examples/dingbridge.toml）\n\
                 另开终端查看：dingbridge jobs list -c {dir}/dingbridge.toml ；dingbridge dlq list -c {dir}/dingbridge.toml"
            ),
            DemoIntro { dir } => format!(
                "dingbridge demo: embedded SQLite store in {dir}, config {dir}/dingbridge.toml (from examples/dingbridge.toml)\n\
                 in another terminal: dingbridge jobs list -c {dir}/dingbridge.toml ; dingbridge dlq list -c {dir}/dingbridge.toml"
            ),
            DemoEnqueued { count } if zh => {
                format!("已加入 {count} 个演示作业（含一次重试与一个死信）；按 Ctrl-C 停止")
            }
            DemoEnqueued { count } => format!(
                "enqueued {count} demo jobs (one retries, one becomes a dead letter); Ctrl-C to stop"
            ),
            Progress {
                queued,
                retry,
                done,
                dead,
            } if zh => {
                format!("队列：待处理 {queued}，等待重试 {retry}，已完成 {done}，死信 {dead}")
            }
            Progress {
                queued,
                retry,
                done,
                dead,
            } => {
                format!(
                    "queue: pending {queued}, waiting to retry {retry}, done {done}, dead letters {dead}"
                )
            }
            SandboxReady {
                dingtalk,
                kingdee,
                users,
                depts,
            } if zh => format!(
                "钉钉模拟器：{dingtalk}（管理接口 {dingtalk}/_sandbox/dingtalk/）\n\
                 金蝶云星空模拟器：{kingdee}/k3cloud/（管理接口 {kingdee}/_sandbox/kingdee/）\n\
                 示例公司：{users} 名员工，{depts} 个部门。把下面的连接配置粘贴到 dingbridge.toml："
            ),
            SandboxReady {
                dingtalk,
                kingdee,
                users,
                depts,
            } => format!(
                "DingTalk simulator: {dingtalk} (admin API {dingtalk}/_sandbox/dingtalk/)\n\
                 Kingdee K3Cloud simulator: {kingdee}/k3cloud/ (admin API {kingdee}/_sandbox/kingdee/)\n\
                 Demo company: {users} people in {depts} departments. Paste these connections into dingbridge.toml:"
            ),
            ProbeOk {
                name,
                detail,
                millis,
            } if zh => format!("连接 `{name}`：正常（{detail}，{millis} ms）"),
            ProbeOk {
                name,
                detail,
                millis,
            } => format!("connection `{name}`: ok ({detail}, {millis} ms)"),
            ProbeFailed { name, detail } if zh => format!(
                "连接 `{name}`：失败：{detail}；请检查 [connections.{name}] 的地址与凭据，以及本机时钟"
            ),
            ProbeFailed { name, detail } => format!(
                "connection `{name}`: FAILED: {detail}; check the URL and credentials in [connections.{name}], and this machine's clock"
            ),
            NotProbed { name, reason } if zh => format!("连接 `{name}`：未探测（{reason}）"),
            NotProbed { name, reason } => format!("connection `{name}`: not probed ({reason})"),
            ProbesFailed { count } if zh => format!("{count} 个连接无法使用"),
            ProbesFailed { count } => format!("{count} connection(s) could not be used"),
            ShuttingDown if zh => "正在停止：完成或释放已领取的作业…".into(),
            ShuttingDown => "shutting down: finishing or releasing claimed jobs…".into(),
            Stopped if zh => "已停止".into(),
            Stopped => "stopped".into(),
            NoJobs if zh => "没有作业".into(),
            NoJobs => "no jobs".into(),
            Replayed { id } if zh => format!("作业 {id} 已重新入队"),
            Replayed { id } => format!("job {id} queued again"),
            Discarded { id } if zh => format!("作业 {id} 已丢弃"),
            Discarded { id } => format!("job {id} discarded"),
            NotFound { id } if zh => format!("找不到作业 {id}"),
            NotFound { id } => format!("no job {id}"),
            Error { detail } if zh => format!("错误：{detail}"),
            Error { detail } => format!("error: {detail}"),
        }
    }
}
