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
    DemoSandboxes {
        dingtalk: &'a str,
        kingdee: &'a str,
    },
    DemoSyncProgress {
        status: &'a str,
        departments: u64,
        users: u64,
        created: u64,
        failed: u64,
    },
    DemoUserAdded {
        number: &'a str,
    },
    DemoUserSynced {
        number: &'a str,
        row: &'a str,
        millis: u128,
    },
    /// The approvals act begins: what will happen, and the API key the OA system got.
    DemoApprovalsIntro {
        oa: &'a str,
        key_prefix: &'a str,
    },
    /// The OA system started an approval over the REST API (201).
    DemoApprovalStartedApi {
        business_key: &'a str,
        who: &'a str,
        amount: f64,
        approval: &'a str,
        instance: &'a str,
    },
    /// Someone started an expense claim in the DingTalk app.
    DemoApprovalStartedApp {
        who: &'a str,
        amount: f64,
        instance: &'a str,
    },
    /// Starting an approval failed (either way).
    DemoApprovalStartFailed {
        what: &'a str,
        detail: &'a str,
    },
    /// An approver decided (through the simulator's admin API).
    DemoApprovalDecided {
        label: &'a str,
        approved: bool,
        remark: &'a str,
    },
    /// An audited Kingdee bill appeared.
    DemoBill {
        number: &'a str,
        proposer: &'a str,
        amount: f64,
        title: &'a str,
    },
    /// The bill number was commented on the DingTalk approval.
    DemoComment {
        title: &'a str,
        text: &'a str,
    },
    /// The OA receiver accepted a signed webhook message.
    /// `who`: the task's approver (task messages), `result`: `agree` / `refuse` (or empty).
    DemoWebhook {
        kind: &'a str,
        business_key: &'a str,
        title: &'a str,
        who: &'a str,
        result: &'a str,
    },
    /// The OA receiver refused a message whose signature did not verify.
    DemoWebhookRefused {
        reason: &'a str,
    },
    /// The approvals act is over (or its time ran out: `complete` false).
    DemoApprovalsSummary {
        approvals: usize,
        approved: usize,
        refused: usize,
        bills: usize,
        webhooks: usize,
        bad_signatures: usize,
        complete: bool,
    },
    /// Where to go on from here.
    DemoApiUrls {
        base: &'a str,
        key: &'a str,
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
    CannotRead {
        path: &'a str,
        detail: &'a str,
    },
    FileInvalid {
        path: &'a str,
        detail: &'a str,
    },
    NoRulesInFile {
        path: &'a str,
    },
    FlowNotFound {
        flow: &'a str,
        defined: &'a str,
    },
    FlowHasNoRules {
        flow: &'a str,
        entity: &'a str,
    },
    RulesInvalid {
        source: &'a str,
        index: usize,
        field: &'a str,
        reason: &'a str,
    },
    RecordsInvalid {
        path: &'a str,
    },
    RecordMapped {
        index: usize,
    },
    RecordFailed {
        index: Option<usize>,
        field: &'a str,
        reason: &'a str,
    },
    RecordsSummary {
        mapped: usize,
        failed: usize,
    },
    SyncStarting {
        flow: &'a str,
        mode: &'a str,
    },
    SyncProgress {
        pages: u64,
        departments: u64,
        users: u64,
        writes: u64,
        errors: u64,
    },
    SyncFinished {
        flow: &'a str,
        status: &'a str,
        seconds: f64,
        resumed: bool,
    },
    SyncCounts {
        departments: u64,
        users: u64,
        created: u64,
        updated: u64,
        unchanged: u64,
        disabled: u64,
        failed: u64,
        conflicts: u64,
    },
    SyncIncomplete {
        gaps: usize,
        withheld: usize,
    },
    SyncGap {
        scope: &'a str,
        reason: &'a str,
    },
    SyncRejected {
        entity: &'a str,
        id: &'a str,
        reason: &'a str,
    },
    SyncConflict {
        key: &'a str,
        reason: &'a str,
    },
    SyncPlan {
        entity: &'a str,
        create: usize,
        update: usize,
        disable: usize,
        unchanged: usize,
        unmanaged: usize,
    },
    SyncPlanItem {
        action: &'a str,
        detail: &'a str,
    },
    SyncNotAFlow {
        flow: &'a str,
        available: &'a str,
    },
    SyncPartial {
        flow: &'a str,
    },
    NoRuns,
    KeyCreated {
        name: &'a str,
        key: &'a str,
    },
    KeyShownOnce,
    KeyDetails {
        prefix: &'a str,
        scopes: &'a str,
    },
    UnknownScope {
        scope: &'a str,
        known: &'a str,
    },
    NoScope {
        known: &'a str,
    },
    NoKeys,
    KeyNameEmpty,
    KeyRevoked {
        prefix: &'a str,
        name: &'a str,
    },
    KeyNotFound {
        prefix: &'a str,
    },
    KeyAlreadyRevoked {
        prefix: &'a str,
        at: &'a str,
    },
    NoApprovals,
    ApprovalNotFound {
        id: &'a str,
    },
    ApprovalHeading {
        id: &'a str,
    },
    TasksHeading {
        count: usize,
    },
    NoTasks,
    MessagesHeading {
        count: usize,
    },
    NoMessages {
        subject: &'a str,
    },
    SubjectNotFound {
        subject: &'a str,
    },
    MessageNotFound {
        id: &'a str,
    },
    Redelivered {
        id: &'a str,
        subject: &'a str,
        seq: i64,
    },
    RedeliveryJob {
        job: i64,
    },
    RedeliverOutOfOrder {
        id: &'a str,
        earlier: &'a str,
        status: &'a str,
    },
    RedeliverWaiting {
        id: &'a str,
        earlier: &'a str,
    },
}

/// What an API key scope allows, in Chinese (the engine's `SCOPES` says it in English).
pub fn scope_zh(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "approvals:write" => "发起与撤销审批",
        "approvals:read" => "查看审批及其投递记录",
        "deliveries:write" => "重新投递 Webhook 消息",
        _ => return None,
    })
}

/// Column headings of the tables the CLI prints.
#[derive(Clone, Copy)]
pub enum Table {
    Keys,
    Approvals,
    Tasks,
    Messages,
}

impl Table {
    pub fn header(self, lang: Lang) -> &'static [&'static str] {
        let zh = lang == Lang::Zh;
        match self {
            Table::Keys if zh => &[
                "前缀",
                "名称",
                "权限范围",
                "创建时间",
                "最近使用",
                "吊销时间",
            ],
            Table::Keys => &[
                "PREFIX",
                "NAME",
                "SCOPES",
                "CREATED",
                "LAST USED",
                "REVOKED",
            ],
            Table::Approvals if zh => &[
                "编号",
                "状态",
                "结果",
                "流程",
                "业务单号",
                "标题",
                "发起人",
                "创建时间",
            ],
            Table::Approvals => &[
                "ID",
                "STATUS",
                "RESULT",
                "FLOW",
                "BUSINESS KEY",
                "TITLE",
                "ORIGINATOR",
                "CREATED",
            ],
            Table::Tasks if zh => &["任务", "审批人", "状态", "结果", "节点", "开始", "结束"],
            Table::Tasks => &[
                "TASK", "APPROVER", "STATUS", "RESULT", "NODE", "STARTED", "FINISHED",
            ],
            Table::Messages if zh => &["序号", "类型", "状态", "尝试", "消息编号", "送达时间"],
            Table::Messages => &[
                "SEQ",
                "TYPE",
                "STATUS",
                "ATTEMPTS",
                "MESSAGE ID",
                "DELIVERED",
            ],
        }
    }
}

/// Labels of the fields `approvals show` prints.
#[derive(Clone, Copy)]
pub enum Label {
    Status,
    Result,
    Flow,
    Template,
    Originator,
    BusinessKey,
    Title,
    Instance,
    ApiKey,
    Created,
    Updated,
    Error,
}

impl Label {
    pub fn text(self, lang: Lang) -> &'static str {
        let zh = lang == Lang::Zh;
        match self {
            Label::Status if zh => "状态",
            Label::Status => "status",
            Label::Result if zh => "结果",
            Label::Result => "result",
            Label::Flow if zh => "流程",
            Label::Flow => "flow",
            Label::Template if zh => "审批模板",
            Label::Template => "template",
            Label::Originator if zh => "发起人",
            Label::Originator => "originator",
            Label::BusinessKey if zh => "业务单号",
            Label::BusinessKey => "business key",
            Label::Title if zh => "标题",
            Label::Title => "title",
            Label::Instance if zh => "钉钉实例",
            Label::Instance => "DingTalk instance",
            Label::ApiKey if zh => "接口密钥",
            Label::ApiKey => "API key",
            Label::Created if zh => "创建时间",
            Label::Created => "created",
            Label::Updated if zh => "更新时间",
            Label::Updated => "updated",
            Label::Error if zh => "错误",
            Label::Error => "error",
        }
    }
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
            DemoSandboxes { dingtalk, kingdee } if zh => format!(
                "模拟器已启动：钉钉 {dingtalk} ，金蝶云星空 {kingdee}/k3cloud/ （金蝶中尚无部门与员工）"
            ),
            DemoSandboxes { dingtalk, kingdee } => format!(
                "simulators up: DingTalk {dingtalk}, Kingdee K3Cloud {kingdee}/k3cloud/ (Kingdee has no departments or employees yet)"
            ),
            DemoSyncProgress {
                status,
                departments,
                users,
                created,
                failed,
            } if zh => format!(
                "通讯录同步 → 金蝶：{}；部门 {departments}，人员 {users}，新建 {created}，死信 {failed}",
                match *status {
                    "running" => "进行中",
                    "success" => "完成",
                    "partial" => "部分完成",
                    other => other,
                }
            ),
            DemoSyncProgress {
                status,
                departments,
                users,
                created,
                failed,
            } => format!(
                "org sync → Kingdee: {status}; departments {departments}, users {users}, created {created}, dead letters {failed}"
            ),
            DemoUserAdded { number } if zh => format!(
                "在钉钉新增员工 周新（工号 {number}，平台研发部）；等待事件经 Stream 到达并写入金蝶……"
            ),
            DemoUserAdded { number } => format!(
                "added 周新 (job number {number}) in DingTalk; waiting for the event to arrive over Stream and reach Kingdee…"
            ),
            DemoUserSynced {
                number,
                row,
                millis,
            } if zh => {
                format!("金蝶 BD_Empinfo 已有员工 {number}：{row}（钉钉新增后 {millis} 毫秒）")
            }
            DemoUserSynced {
                number,
                row,
                millis,
            } => format!(
                "Kingdee BD_Empinfo now has employee {number}: {row} ({millis} ms after the DingTalk change)"
            ),
            DemoApprovalsIntro { oa, key_prefix } if zh => format!(
                "—— 审批：OA 系统（webhook 接收端 {oa} ，校验签名）用 API 密钥 dbk_{key_prefix}_… 经 REST API 发起 3 个费用报销，\
                 另有 2 个在钉钉 App 里发起；4 个通过、1 个拒绝，通过的自动生成金蝶费用报销单 ——"
            ),
            DemoApprovalsIntro { oa, key_prefix } => format!(
                "── approvals: the OA system (webhook receiver {oa}, checks signatures) starts 3 expense claims over the REST API \
                 with API key dbk_{key_prefix}_…, 2 more are started in the DingTalk app; 4 are approved, 1 refused, and each \
                 approved one becomes a Kingdee expense bill ──"
            ),
            DemoApprovalStartedApi {
                business_key,
                who,
                amount,
                approval,
                instance,
            } if zh => format!(
                "OA → POST /api/v1/approvals → 201：{business_key} {who} 报销 {amount:.2} 元（审批 {approval}，钉钉实例 {instance}）"
            ),
            DemoApprovalStartedApi {
                business_key,
                who,
                amount,
                approval,
                instance,
            } => format!(
                "OA → POST /api/v1/approvals → 201: {business_key} {who} claims {amount:.2} yuan (approval {approval}, DingTalk instance {instance})"
            ),
            DemoApprovalStartedApp {
                who,
                amount,
                instance,
            } if zh => format!("钉钉 App：{who} 发起费用报销 {amount:.2} 元（实例 {instance}）"),
            DemoApprovalStartedApp {
                who,
                amount,
                instance,
            } => format!(
                "DingTalk app: {who} starts an expense claim of {amount:.2} yuan (instance {instance})"
            ),
            DemoApprovalStartFailed { what, detail } if zh => {
                format!("发起审批失败（{what}）：{detail}")
            }
            DemoApprovalStartFailed { what, detail } => {
                format!("could not start an approval ({what}): {detail}")
            }
            DemoApprovalDecided {
                label,
                approved: true,
                ..
            } if zh => format!("审批人同意：{label}"),
            DemoApprovalDecided {
                label,
                approved: false,
                remark,
            } if zh => format!("审批人拒绝：{label}（{remark}）"),
            DemoApprovalDecided {
                label,
                approved: true,
                ..
            } => format!("approver agrees: {label}"),
            DemoApprovalDecided {
                label,
                approved: false,
                remark,
            } => format!("approver refuses: {label} ({remark})"),
            DemoBill {
                number,
                proposer,
                amount,
                title,
            } if zh => format!(
                "金蝶费用报销单 {number} 已审核：申请人 {proposer}，金额 {amount:.2} 元，来自钉钉审批「{title}」"
            ),
            DemoBill {
                number,
                proposer,
                amount,
                title,
            } => format!(
                "Kingdee expense bill {number} audited: proposer {proposer}, {amount:.2} yuan, from the DingTalk approval 「{title}」"
            ),
            DemoComment { title, text } if zh => {
                format!("钉钉审批「{title}」收到评论：{text}")
            }
            DemoComment { title, text } => {
                format!("comment written back on the DingTalk approval 「{title}」: {text}")
            }
            DemoWebhook {
                kind,
                business_key,
                title,
                who,
                result,
            } if zh => {
                let result = match *result {
                    "agree" => "同意",
                    "refuse" => "拒绝",
                    "canceled" => "已取消",
                    other => other,
                };
                let detail = match (who.is_empty(), result.is_empty()) {
                    (false, true) => format!(" · 待 {who} 审批"),
                    (false, false) => format!(" · {who} {result}"),
                    (true, false) => format!(" · 结果：{result}"),
                    (true, true) => String::new(),
                };
                format!("OA 收到 {kind} · {business_key} · {title}{detail}（签名有效）")
            }
            DemoWebhook {
                kind,
                business_key,
                title,
                who,
                result,
            } => {
                let result = match *result {
                    "agree" => "agreed",
                    "refuse" => "refused",
                    other => other,
                };
                let detail = match (who.is_empty(), result.is_empty()) {
                    (false, true) => format!(" · waiting for {who}"),
                    (false, false) => format!(" · {who} {result}"),
                    (true, false) => format!(" · result: {result}"),
                    (true, true) => String::new(),
                };
                format!("OA received {kind} · {business_key} · {title}{detail} (signature valid)")
            }
            DemoWebhookRefused { reason } if zh => format!("OA 拒收一条 webhook：签名无效（{reason}）"),
            DemoWebhookRefused { reason } => {
                format!("OA refused a webhook message: bad signature ({reason})")
            }
            DemoApprovalsSummary {
                approvals,
                approved,
                refused,
                bills,
                webhooks,
                bad_signatures,
                complete,
            } if zh => format!(
                "审批小结：{approvals} 个审批（通过 {approved}，拒绝 {refused}）→ 金蝶新建 {bills} 张费用报销单；\
                 OA 收到 {webhooks} 条 webhook，签名无效 {bad_signatures} 条{}",
                if *complete { "" } else { "（时限已到，尚未全部完成：见 dingbridge jobs list / dlq list）" }
            ),
            DemoApprovalsSummary {
                approvals,
                approved,
                refused,
                bills,
                webhooks,
                bad_signatures,
                complete,
            } => format!(
                "approvals summary: {approvals} approvals ({approved} approved, {refused} refused) → {bills} Kingdee expense bills created; \
                 {webhooks} webhooks delivered to OA, {bad_signatures} with a bad signature{}",
                if *complete { "" } else { " (time ran out before everything finished: see dingbridge jobs list / dlq list)" }
            ),
            DemoApiUrls { base, key } if zh => format!(
                "接着试试：REST API {base}/api/v1/approvals （OpenAPI 文档 {base}/api/v1/openapi.json），例如\n  \
                 curl -H 'Authorization: Bearer {key}' {base}/api/v1/approvals\n  \
                 节点 {base} （/healthz /readyz /metrics）"
            ),
            DemoApiUrls { base, key } => format!(
                "try it: the REST API {base}/api/v1/approvals (OpenAPI document {base}/api/v1/openapi.json), e.g.\n  \
                 curl -H 'Authorization: Bearer {key}' {base}/api/v1/approvals\n  \
                 node {base} (/healthz /readyz /metrics)"
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
            SyncStarting { flow, mode } if zh => format!(
                "开始同步流程 `{flow}`（{}）",
                match *mode {
                    "full" => "全量",
                    "reconcile" => "对账",
                    _ => "试运行：只出计划，不写入",
                }
            ),
            SyncStarting { flow, mode } => format!(
                "syncing flow `{flow}` ({})",
                match *mode {
                    "full" => "full",
                    "reconcile" => "reconcile",
                    _ => "dry run: plan only, nothing written",
                }
            ),
            SyncProgress {
                pages,
                departments,
                users,
                writes,
                errors,
            } if zh => format!(
                "页 {pages} · 部门 {departments} · 人员 {users} · 写入 {writes} · 错误 {errors}"
            ),
            SyncProgress {
                pages,
                departments,
                users,
                writes,
                errors,
            } => format!(
                "pages {pages} · departments {departments} · users {users} · writes {writes} · errors {errors}"
            ),
            SyncFinished {
                flow,
                status,
                seconds,
                resumed,
            } if zh => format!(
                "流程 `{flow}` 同步结束：{}，用时 {seconds:.1} 秒{}",
                match *status {
                    "success" => "成功",
                    "partial" => "部分完成",
                    "failed" => "失败",
                    other => other,
                },
                if *resumed {
                    "（续跑了中断的运行）"
                } else {
                    ""
                }
            ),
            SyncFinished {
                flow,
                status,
                seconds,
                resumed,
            } => format!(
                "flow `{flow}` finished: {status} in {seconds:.1} s{}",
                if *resumed {
                    " (resumed an interrupted run)"
                } else {
                    ""
                }
            ),
            SyncCounts {
                departments,
                users,
                created,
                updated,
                unchanged,
                disabled,
                failed,
                conflicts,
            } if zh => format!(
                "  部门 {departments}，人员 {users}；新建 {created}，更新 {updated}，未变 {unchanged}，停用 {disabled}，失败（进死信）{failed}，冲突 {conflicts}"
            ),
            SyncCounts {
                departments,
                users,
                created,
                updated,
                unchanged,
                disabled,
                failed,
                conflicts,
            } => format!(
                "  departments {departments}, users {users}; created {created}, updated {updated}, unchanged {unchanged}, disabled {disabled}, failed (dead letters) {failed}, conflicts {conflicts}"
            ),
            SyncIncomplete { gaps, withheld } if zh => format!(
                "  快照不完整（{gaps} 处缺口）：未执行任何删除或停用（本应停用 {withheld} 条）"
            ),
            SyncIncomplete { gaps, withheld } => format!(
                "  snapshot incomplete ({gaps} gaps): no delete or disable was done ({withheld} withheld)"
            ),
            SyncGap { scope, reason } if zh => format!("  缺口 {scope}：{reason}"),
            SyncGap { scope, reason } => format!("  gap {scope}: {reason}"),
            SyncRejected { entity, id, reason } if zh => format!("  死信 {entity} {id}：{reason}"),
            SyncRejected { entity, id, reason } => format!("  dead letter {entity} {id}: {reason}"),
            SyncConflict { key, reason } if zh => format!("  冲突 {key}：{reason}（待人工处理）"),
            SyncConflict { key, reason } => {
                format!("  conflict {key}: {reason} (waits for a person)")
            }
            SyncPlan {
                entity,
                create,
                update,
                disable,
                unchanged,
                unmanaged,
            } if zh => format!(
                "计划（{}）：新建 {create}，更新 {update}，停用 {disable}，未变 {unchanged}，非本系统管理 {unmanaged}",
                if *entity == "department" {
                    "部门"
                } else {
                    "人员"
                }
            ),
            SyncPlan {
                entity,
                create,
                update,
                disable,
                unchanged,
                unmanaged,
            } => format!(
                "plan ({entity}s): create {create}, update {update}, disable {disable}, unchanged {unchanged}, unmanaged {unmanaged}"
            ),
            SyncPlanItem { action, detail } if zh => format!(
                "  {} {detail}",
                match *action {
                    "create" => "新建",
                    "update" => "更新",
                    _ => "停用",
                }
            ),
            SyncPlanItem { action, detail } => format!("  {action} {detail}"),
            SyncNotAFlow { flow, available } if zh => format!(
                "没有名为 `{flow}` 的 org_sync 流程；可用：{available}（在 dingbridge.toml 中定义 [flows.{flow}]，recipe = \"org_sync\"）"
            ),
            SyncNotAFlow { flow, available } => format!(
                "no org_sync flow `{flow}`; available: {available} (define [flows.{flow}] with recipe = \"org_sync\" in dingbridge.toml)"
            ),
            SyncPartial { flow } if zh => {
                format!("流程 `{flow}` 部分完成：见上方缺口与死信（dingbridge dlq list）")
            }
            SyncPartial { flow } => format!(
                "flow `{flow}` partial: see the gaps and dead letters above (dingbridge dlq list)"
            ),
            NoRuns if zh => "没有同步运行记录".to_owned(),
            NoRuns => "no sync runs".to_owned(),
            KeyCreated { name, key } if zh => format!("已为 `{name}` 创建接口密钥：\n\n    {key}\n"),
            KeyCreated { name, key } => format!("API key created for `{name}`:\n\n    {key}\n"),
            KeyShownOnce if zh => {
                "注意：密钥只显示这一次，请立即妥善保存；系统只保存其哈希，无法再次查看。".into()
            }
            KeyShownOnce => "Note: the key is shown this once only; store it now. Only its hash is kept and it cannot be shown again.".into(),
            KeyDetails { prefix, scopes } if zh => format!("前缀：{prefix}\n权限范围：{scopes}"),
            KeyDetails { prefix, scopes } => format!("prefix: {prefix}\nscopes: {scopes}"),
            UnknownScope { scope, known } if zh => {
                format!("未知的权限范围 `{scope}`；可用：{known}")
            }
            UnknownScope { scope, known } => format!("unknown scope `{scope}`; known scopes: {known}"),
            NoScope { known } if zh => {
                format!("密钥至少需要一个权限范围（--scope），可用：{known}")
            }
            NoScope { known } => format!("a key needs at least one scope (--scope); known scopes: {known}"),
            KeyNameEmpty if zh => "密钥名称不能为空：dingbridge keys create <名称> --scope …".into(),
            KeyNameEmpty => "the key needs a name: dingbridge keys create <name> --scope …".into(),
            NoKeys if zh => "没有接口密钥（用 dingbridge keys create 创建）".into(),
            NoKeys => "no API keys (create one with dingbridge keys create)".into(),
            KeyRevoked { prefix, name } if zh => {
                format!("接口密钥 {prefix}（{name}）已吊销：此后使用它的请求将被拒绝")
            }
            KeyRevoked { prefix, name } => {
                format!("API key {prefix} ({name}) revoked: requests with it are refused from now on")
            }
            KeyNotFound { prefix } if zh => {
                format!("没有前缀为 `{prefix}` 的接口密钥（dingbridge keys list 列出全部）")
            }
            KeyNotFound { prefix } => {
                format!("no API key with prefix `{prefix}` (dingbridge keys list shows them all)")
            }
            KeyAlreadyRevoked { prefix, at } if zh => {
                format!("接口密钥 {prefix} 已于 {at} 吊销，无需再次吊销")
            }
            KeyAlreadyRevoked { prefix, at } => format!("API key {prefix} was revoked already, at {at}"),
            NoApprovals if zh => "没有审批".into(),
            NoApprovals => "no approvals".into(),
            ApprovalNotFound { id } if zh => {
                format!("找不到审批 `{id}`（dingbridge approvals list 列出审批）")
            }
            ApprovalNotFound { id } => format!("no approval `{id}` (dingbridge approvals list shows them)"),
            ApprovalHeading { id } if zh => format!("审批 {id}"),
            ApprovalHeading { id } => format!("approval {id}"),
            TasksHeading { count } if zh => format!("审批任务（{count}）："),
            TasksHeading { count } => format!("tasks ({count}):"),
            NoTasks if zh => "  （尚未从钉钉读取任务）".into(),
            NoTasks => "  (no tasks read from DingTalk yet)".into(),
            MessagesHeading { count } if zh => format!("Webhook 消息（{count}）："),
            MessagesHeading { count } => format!("webhook messages ({count}):"),
            NoMessages { subject } if zh => format!("`{subject}` 没有 Webhook 消息"),
            NoMessages { subject } => format!("no webhook messages for `{subject}`"),
            SubjectNotFound { subject } if zh => format!(
                "找不到审批或 Webhook 消息主题 `{subject}`（dingbridge approvals list 列出审批）"
            ),
            SubjectNotFound { subject } => format!(
                "no approval or webhook subject `{subject}` (dingbridge approvals list shows approvals)"
            ),
            MessageNotFound { id } if zh => format!(
                "找不到 Webhook 消息 `{id}`（dingbridge webhooks list <审批编号> 列出消息编号）"
            ),
            MessageNotFound { id } => format!(
                "no webhook message `{id}` (dingbridge webhooks list <approval id> shows message ids)"
            ),
            Redelivered { id, subject, seq } if zh => {
                format!("Webhook 消息 {id}（{subject} 第 {seq} 条）已重新进入待投递")
            }
            Redelivered { id, subject, seq } => {
                format!("webhook message {id} (#{seq} of {subject}) is pending again")
            }
            RedeliveryJob { job } if zh => format!("投递作业 {job} 已入队"),
            RedeliveryJob { job } => format!("delivery job {job} queued"),
            RedeliverWaiting { id, earlier } if zh => format!(
                "不能先重投 {id}：同一审批中更早的消息 {earlier} 正等待投递（pending），本条会在它送达后依次投递。若 {earlier} 的投递作业已成死信（dingbridge dlq list），请重投 {earlier}"
            ),
            RedeliverWaiting { id, earlier } => format!(
                "cannot redeliver {id} yet: the earlier message {earlier} of its subject is waiting for delivery (pending); this one follows once it is delivered. If the delivery job of {earlier} is dead (dingbridge dlq list), redeliver {earlier}"
            ),
            RedeliverOutOfOrder { id, earlier, status } if zh => format!(
                "不能先重投 {id}：同一审批中更早的消息 {earlier} 尚未送达（{status}）。消息按顺序投递：请先重投 {earlier}，其后的消息会随之依次投递"
            ),
            RedeliverOutOfOrder { id, earlier, status } => format!(
                "cannot redeliver {id} yet: the earlier message {earlier} of its subject is not delivered ({status}). Messages go out in order: redeliver {earlier}; the later ones follow it"
            ),
            CannotRead { path, detail } if zh => format!("无法读取 {path}：{detail}"),
            CannotRead { path, detail } => format!("cannot read {path}: {detail}"),
            FileInvalid { path, detail } if zh => format!("{path} 格式有误：{detail}"),
            FileInvalid { path, detail } => format!("{path} is not valid: {detail}"),
            NoRulesInFile { path } if zh => format!(
                "{path} 中没有 `fields` 数组：TOML 写成 [[fields]] 表，JSON 写成数组或 {{\"fields\": [...]}}"
            ),
            NoRulesInFile { path } => format!(
                "{path} has no `fields` array: write [[fields]] tables in TOML, an array or {{\"fields\": [...]}} in JSON"
            ),
            FlowNotFound { flow, defined } if zh => {
                format!("配置中没有流程 `{flow}`（已定义：{defined}）；请检查 --flow")
            }
            FlowNotFound { flow, defined } => {
                format!("no flow `{flow}` in the configuration (defined: {defined}); check --flow")
            }
            FlowHasNoRules { flow, entity } if zh => format!(
                "流程 `{flow}` 没有 {entity} 的映射规则：在 [flows.{flow}.options.{entity}] 中写 fields（[[flows.{flow}.options.{entity}.fields]] 表）"
            ),
            FlowHasNoRules { flow, entity } => format!(
                "flow `{flow}` has no mapping rules for {entity}: add `fields` under [flows.{flow}.options.{entity}] ([[flows.{flow}.options.{entity}.fields]] tables)"
            ),
            RulesInvalid {
                source,
                index,
                field,
                reason,
            } if zh => {
                let named = if field.is_empty() {
                    String::new()
                } else {
                    format!("（`{field}`）")
                };
                format!("{source}：映射规则第 {} 条{named}有误：{reason}", index + 1)
            }
            RulesInvalid {
                source,
                index,
                field,
                reason,
            } => {
                let named = if field.is_empty() {
                    String::new()
                } else {
                    format!(" (`{field}`)")
                };
                format!("{source}: rule #{}{named}: {reason}", index + 1)
            }
            RecordsInvalid { path } if zh => {
                format!("--record {path} 应为一个 JSON 对象，或由对象组成的数组")
            }
            RecordsInvalid { path } => {
                format!("--record {path} must hold a JSON object or an array of objects")
            }
            RecordMapped { index } if zh => format!("记录 {index}："),
            RecordMapped { index } => format!("record {index}:"),
            RecordFailed {
                index: Some(index),
                field,
                reason,
            } if zh => format!("记录 {index}：字段 `{field}` 映射失败：{reason}"),
            RecordFailed {
                index: Some(index),
                field,
                reason,
            } => format!("record {index}: field `{field}`: {reason}"),
            RecordFailed {
                index: None,
                field,
                reason,
            } if zh => format!("字段 `{field}` 映射失败：{reason}"),
            RecordFailed {
                index: None,
                field,
                reason,
            } => format!("field `{field}`: {reason}"),
            RecordsSummary { mapped, failed } if zh => {
                format!("映射成功 {mapped} 条，失败 {failed} 条")
            }
            RecordsSummary { mapped, failed } => format!("{mapped} mapped, {failed} failed"),
            Error { detail } if zh => format!("错误：{detail}"),
            Error { detail } => format!("error: {detail}"),
        }
    }
}
