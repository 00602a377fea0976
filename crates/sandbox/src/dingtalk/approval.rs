//! Approvals (OA 审批, protocol §3): built-in templates (费用报销 with a TableField detail
//! table, 请假, 采购), instances whose tasks advance on `execute`, the old oapi create / get /
//! listids (§3.1) and the v1.0 workflow create / get / execute / terminate / instanceIds /
//! schema (§3.2). Changes emit `bpms_instance_change` and `bpms_task_change` (§5.1).
//!
//! Flow: an instance has sequential steps; each step is `NONE` (one approver), `AND` (all
//! must agree) or `OR` (one agreement suffices, the other tasks are CANCELED). A refusal
//! ends the instance (COMPLETED + refuse); the last step's agreement ends it (COMPLETED +
//! agree); terminate ends it (TERMINATED, running tasks CANCELED). A comment (ALI-SDK
//! `AddProcessInstanceComment`) only adds an `ADD_REMARK` operation record.
//!
//! The admin API (`/_sandbox/dingtalk/approvals/{id}/…`) can also approve or refuse every
//! remaining task through the same path as the v1.0 execute API
//! ([`DingTalkSandbox::admin_decide`]) and revoke an approved instance
//! ([`DingTalkSandbox::admin_revoke`]: COMPLETED + agree → TERMINATED, result kept), which the
//! public terminate API refuses.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::DingTalkSandbox;
use super::gateway::Ctx;
use super::params::scalar_text;
use super::reply::ApiError;

/// One form control of a template (schema item, §3.2 `schemaContent.items`).
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub id: &'static str,
    pub label: &'static str,
    pub component_name: &'static str,
    pub required: bool,
    pub biz_alias: &'static str,
    pub options: &'static [&'static str],
    pub children: &'static [Component],
}

const fn comp(
    id: &'static str,
    label: &'static str,
    component_name: &'static str,
    required: bool,
) -> Component {
    Component {
        id,
        label,
        component_name,
        required,
        biz_alias: "",
        options: &[],
        children: &[],
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub process_code: &'static str,
    pub name: &'static str,
    pub icon: &'static str,
    pub items: &'static [Component],
}

const EXPENSE_DETAIL: &[Component] = &[
    Component {
        options: &["差旅费", "交通费", "招待费", "办公费", "其他"],
        ..comp("DDSelectField_FYLX", "费用类型", "DDSelectField", true)
    },
    comp("MoneyField_JE", "金额（元）", "MoneyField", true),
    comp("DDDateField_RQ", "发生日期", "DDDateField", false),
    comp("TextField_SM", "费用说明", "TextField", false),
];

const PURCHASE_DETAIL: &[Component] = &[
    comp("TextField_WPMC", "物品名称", "TextField", true),
    comp("TextField_GGXH", "规格型号", "TextField", false),
    comp("NumberField_SL", "数量", "NumberField", true),
    comp("MoneyField_DJ", "单价（元）", "MoneyField", true),
];

/// The built-in templates.
pub static TEMPLATES: &[Template] = &[
    Template {
        process_code: "PROC-SBX-FYBX-7C1F3A9E-0001",
        name: "费用报销",
        icon: "expense",
        items: &[
            Component {
                biz_alias: "reason",
                ..comp("TextareaField_BXSY", "报销事由", "TextareaField", true)
            },
            Component {
                options: &["差旅报销", "日常报销", "项目报销"],
                ..comp("DDSelectField_BXLB", "报销类别", "DDSelectField", true)
            },
            Component {
                biz_alias: "details",
                children: EXPENSE_DETAIL,
                ..comp("TableField_FYMX", "费用明细", "TableField", true)
            },
            Component {
                biz_alias: "amount",
                ..comp("MoneyField_ZJE", "报销总金额（元）", "MoneyField", true)
            },
            comp("DDAttachment_FJ", "附件", "DDAttachment", false),
        ],
    },
    Template {
        process_code: "PROC-SBX-QJ-2B8D6E41-0002",
        name: "请假",
        icon: "leave",
        items: &[
            Component {
                options: &["年假", "事假", "病假", "调休", "婚假", "产假"],
                ..comp("DDSelectField_QJLX", "请假类型", "DDSelectField", true)
            },
            comp(
                "DDDateRangeField_QJSJ",
                "[\"开始时间\",\"结束时间\"]",
                "DDDateRangeField",
                true,
            ),
            comp("NumberField_SC", "时长（天）", "NumberField", false),
            comp("TextareaField_QJSY", "请假事由", "TextareaField", true),
        ],
    },
    Template {
        process_code: "PROC-SBX-CG-5E0A7C33-0003",
        name: "采购",
        icon: "purchase",
        items: &[
            comp("TextareaField_CGSY", "采购事由", "TextareaField", true),
            Component {
                options: &["办公用品", "IT设备", "生产物料", "服务"],
                ..comp(
                    "DDMultiSelectField_CGLX",
                    "采购类型",
                    "DDMultiSelectField",
                    true,
                )
            },
            comp("DDDateField_QWJF", "期望交付日期", "DDDateField", true),
            Component {
                children: PURCHASE_DETAIL,
                ..comp("TableField_CGMX", "采购明细", "TableField", true)
            },
            comp("MoneyField_ZJ", "总价（元）", "MoneyField", false),
        ],
    },
];

pub fn template(code: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.process_code == code)
}

impl Template {
    /// The v1.0 schema (§3.2 `GET /v1.0/workflow/forms/schemas/processCodes`).
    pub fn schema(&self) -> Value {
        fn item(c: &Component) -> Value {
            let mut props = json!({
                "id": c.id, "label": c.label, "required": c.required,
                "bizAlias": c.biz_alias, "placeholder": "请输入",
            });
            if !c.options.is_empty() {
                props["options"] = json!(
                    c.options
                        .iter()
                        .enumerate()
                        .map(|(i, o)| json!({"key": format!("option_{i}"), "value": o}))
                        .collect::<Vec<_>>()
                );
            }
            let mut v = json!({"componentName": c.component_name, "props": props});
            if !c.children.is_empty() {
                v["children"] = json!(c.children.iter().map(item).collect::<Vec<_>>());
            }
            v
        }
        json!({
            "creatorUserId": "",
            "appUuid": "",
            "formCode": self.process_code,
            "formUuid": format!("FORM-{}", self.process_code),
            "name": self.name,
            "memo": "",
            "ownerIdType": "orgId",
            "schemaContent": {
                "title": self.name,
                "icon": self.icon,
                "items": self.items.iter().map(item).collect::<Vec<_>>(),
            },
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FormValue {
    pub id: String,
    pub name: String,
    pub value: String,
    pub ext_value: String,
    pub component_type: String,
    pub biz_alias: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `NONE`, `AND` or `OR`.
    pub action: String,
    pub users: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub task_id: i64,
    pub userid: String,
    /// NEW | RUNNING | PAUSED | CANCELED | COMPLETED | TERMINATED.
    pub status: String,
    /// AGREE | REFUSE | REDIRECTED | NONE.
    pub result: String,
    pub create_ms: i64,
    pub finish_ms: Option<i64>,
    pub step: usize,
    pub activity_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub userid: String,
    pub date_ms: i64,
    pub op_type: String,
    pub op_result: String,
    pub remark: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    pub process_code: String,
    pub title: String,
    pub originator: String,
    pub dept_id: i64,
    pub dept_name: String,
    /// RUNNING | TERMINATED | COMPLETED.
    pub status: String,
    /// "" | agree | refuse.
    pub result: String,
    pub create_ms: i64,
    pub finish_ms: Option<i64>,
    pub business_id: String,
    pub form: Vec<FormValue>,
    pub steps: Vec<Step>,
    pub current: usize,
    pub tasks: Vec<Task>,
    pub records: Vec<Record>,
    pub cc: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Approvals {
    /// In creation order.
    pub instances: Vec<Instance>,
    pub next_task_id: i64,
    pub next_business_id: u64,
}

impl Approvals {
    fn get(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }
    fn get_mut(&mut self, id: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.id == id)
    }
}

/// oapi dates: `yyyy-MM-dd HH:mm:ss`, China Standard Time.
fn oapi_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000)
        .map(|d| d.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// v1.0 dates: UTC `yyyy-MM-ddTHH:mmZ` (§3.2).
fn v1_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc().format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

fn v1_err(code: &str, msg: impl Into<String>) -> ApiError {
    let mut e = ApiError::v1(StatusCode::BAD_REQUEST, code, msg);
    e.errcode = 400002;
    e
}

/// A start request in neutral terms.
struct StartReq {
    process_code: String,
    originator: String,
    dept_id: Option<i64>,
    steps: Vec<Step>,
    cc: Vec<String>,
    values: Vec<(String, String, String)>,
}

/// Validates the form values against the template; returns the stored values.
fn check_form(
    t: &Template,
    values: &[(String, String, String)],
) -> Result<Vec<FormValue>, ApiError> {
    if values.len() > 150 {
        return Err(v1_err("illegalComponent", "表单控件值不能超过150个"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (name, value, ext) in values {
        let Some(c) = t.items.iter().find(|c| {
            c.label == name || c.id == name || (!c.biz_alias.is_empty() && c.biz_alias == name)
        }) else {
            return Err(v1_err(
                "illegalComponent",
                format!("表单控件不存在：{name}"),
            ));
        };
        if value.chars().count() > 65_535 {
            return Err(v1_err("illegalComponent", format!("控件值过长：{name}")));
        }
        match c.component_name {
            "TableField" => {
                let rows: Vec<Vec<Value>> = serde_json::from_str(value).map_err(|_| {
                    v1_err(
                        "illegalComponent",
                        format!("明细控件值必须是[[{{name,value}}]]：{name}"),
                    )
                })?;
                for row in &rows {
                    for cell in row {
                        let cname = cell.get("name").map(scalar_text).unwrap_or_default();
                        if !c
                            .children
                            .iter()
                            .any(|ch| ch.label == cname || ch.id == cname)
                        {
                            return Err(v1_err(
                                "illegalComponent",
                                format!("明细控件不存在：{name}.{cname}"),
                            ));
                        }
                    }
                    for ch in c.children.iter().filter(|ch| ch.required) {
                        if !row.iter().any(|cell| {
                            cell.get("name")
                                .map(scalar_text)
                                .is_some_and(|n| n == ch.label || n == ch.id)
                        }) {
                            return Err(v1_err(
                                "illegalComponent",
                                format!("明细必填项缺失：{name}.{}", ch.label),
                            ));
                        }
                    }
                }
                if c.required && rows.is_empty() {
                    return Err(v1_err("illegalComponent", format!("明细至少一行：{name}")));
                }
            }
            "DDMultiSelectField" | "DDDateRangeField"
                if serde_json::from_str::<Vec<Value>>(value).is_err() =>
            {
                return Err(v1_err(
                    "illegalComponent",
                    format!("控件值必须是JSON数组：{name}"),
                ));
            }
            "DDSelectField" if !c.options.is_empty() && !c.options.contains(&value.as_str()) => {
                return Err(v1_err(
                    "illegalComponent",
                    format!("选项不存在：{name}={value}"),
                ));
            }
            _ => {}
        }
        seen.insert(c.id);
        out.push(FormValue {
            id: c.id.into(),
            name: c.label.into(),
            value: value.clone(),
            ext_value: ext.clone(),
            component_type: c.component_name.into(),
            biz_alias: c.biz_alias.into(),
        });
    }
    if let Some(c) = t.items.iter().find(|c| c.required && !seen.contains(c.id)) {
        return Err(v1_err(
            "illegalComponent",
            format!("必填控件缺失：{}", c.label),
        ));
    }
    Ok(out)
}

fn step_from(action: &str, users: Vec<String>) -> Result<Step, ApiError> {
    let action = action.to_ascii_uppercase();
    if !["AND", "OR", "NONE"].contains(&action.as_str()) {
        return Err(v1_err(
            "invalidParameter",
            format!("actionType只能是AND/OR/NONE：{action}"),
        ));
    }
    if users.is_empty() || (action == "NONE" && users.len() > 1) {
        return Err(v1_err(
            "invalidParameter",
            "NONE审批人只能有一个，AND/OR需要审批人",
        ));
    }
    Ok(Step { action, users })
}

type Emits = Vec<(&'static str, Value)>;

impl DingTalkSandbox {
    /// Default approval chain of a template when the request names no approvers: the first
    /// people of the organisation (by entry order) other than the originator.
    fn default_steps(&self, code: &str, originator: &str) -> Vec<Step> {
        let org = self.org();
        let mut people: Vec<_> = org
            .users
            .values()
            .filter(|p| p.userid != originator)
            .collect();
        people.sort_by_key(|p| p.seq);
        let ids: Vec<String> = people.iter().take(3).map(|p| p.userid.clone()).collect();
        let one = |i: usize| ids.get(i).cloned().into_iter().collect::<Vec<_>>();
        let steps = if code.contains("-FYBX-") {
            vec![
                Step {
                    action: "NONE".into(),
                    users: one(0),
                },
                Step {
                    action: "NONE".into(),
                    users: one(1),
                },
            ]
        } else if code.contains("-CG-") {
            vec![
                Step {
                    action: "OR".into(),
                    users: ids.iter().take(2).cloned().collect(),
                },
                Step {
                    action: "NONE".into(),
                    users: one(2),
                },
            ]
        } else {
            vec![Step {
                action: "NONE".into(),
                users: one(0),
            }]
        };
        steps.into_iter().filter(|s| !s.users.is_empty()).collect()
    }

    fn start_instance(&self, req: StartReq) -> Result<String, ApiError> {
        let t = template(&req.process_code).ok_or_else(|| {
            v1_err(
                "processCodeError",
                format!("模板不存在：{}", req.process_code),
            )
        })?;
        let form = check_form(t, &req.values)?;
        let (originator_name, dept_id, dept_name) = {
            let org = self.org();
            let Some(p) = org.users.get(&req.originator) else {
                return Err(ApiError::oapi(
                    33012,
                    format!("无效的发起人userid：{}", req.originator),
                )
                .with_v1(StatusCode::BAD_REQUEST, "processInstanceStartFailed"));
            };
            let dept = match req.dept_id {
                None | Some(-1) => p.dept_id_list.first().copied().map_or(1, |d| d as i64),
                Some(d) => d,
            };
            let Some(dn) = u64::try_from(dept).ok().and_then(|d| org.depts.get(&d)) else {
                return Err(ApiError::oapi(60003, "部门不存在")
                    .with_v1(StatusCode::BAD_REQUEST, "invalidParameter"));
            };
            for s in &req.steps {
                if let Some(u) = s.users.iter().find(|u| !org.users.contains_key(*u)) {
                    return Err(v1_err("invalidParameter", format!("审批人不存在：{u}")));
                }
            }
            (p.name.clone(), dept, dn.name.clone())
        };
        let steps = if req.steps.is_empty() {
            self.default_steps(t.process_code, &req.originator)
        } else {
            req.steps
        };
        if steps.len() > 20 {
            return Err(v1_err("invalidParameter", "审批人不能超过20个"));
        }
        let now = self.now_ms();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut emits: Emits = Vec::new();
        {
            let mut a = self.approvals();
            a.next_business_id += 1;
            let business_id = format!(
                "{}{:06}",
                chrono::DateTime::from_timestamp_millis(now + 8 * 3_600_000)
                    .map(|d| d.format("%Y%m%d%H%M").to_string())
                    .unwrap_or_default(),
                a.next_business_id
            );
            let mut inst = Instance {
                id: id.clone(),
                process_code: t.process_code.into(),
                title: format!("{originator_name}提交的{}", t.name),
                originator: req.originator.clone(),
                dept_id,
                dept_name,
                status: "RUNNING".into(),
                result: String::new(),
                create_ms: now,
                finish_ms: None,
                business_id,
                form,
                steps,
                current: 0,
                tasks: Vec::new(),
                records: vec![Record {
                    userid: req.originator.clone(),
                    date_ms: now,
                    op_type: "START_PROCESS_INSTANCE".into(),
                    op_result: "NONE".into(),
                    remark: String::new(),
                }],
                cc: req.cc,
            };
            emits.push(("bpms_instance_change", instance_event(&inst, "start")));
            if inst.steps.is_empty() {
                // No approver at all: approved at once.
                finish(&mut inst, "agree", now, &mut emits);
            } else {
                open_step(&mut a.next_task_id, &mut inst, now, &mut emits);
            }
            a.instances.push(inst);
        }
        for (ty, data) in emits {
            self.emit(ty, data);
        }
        Ok(id)
    }

    fn execute_task(
        &self,
        id: &str,
        task_id: i64,
        actioner: &str,
        agree: bool,
        remark: &str,
    ) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut emits: Emits = Vec::new();
        {
            let mut a = self.approvals();
            let mut next_task_id = a.next_task_id;
            let inst = a.get_mut(id).ok_or_else(not_exist)?;
            if inst.status != "RUNNING" {
                return Err(v1_err("invalidParameter", "审批实例已结束"));
            }
            let Some(task) = inst.tasks.iter_mut().find(|t| t.task_id == task_id) else {
                return Err(v1_err("invalidParameter", format!("任务不存在：{task_id}")));
            };
            if task.userid != actioner {
                return Err(v1_err("invalidParameter", "操作人不是该任务的审批人"));
            }
            if task.status != "RUNNING" {
                return Err(v1_err("invalidParameter", "任务已处理"));
            }
            task.status = "COMPLETED".into();
            task.result = if agree { "AGREE" } else { "REFUSE" }.into();
            task.finish_ms = Some(now);
            let step = task.step;
            let done = task.clone();
            inst.records.push(Record {
                userid: actioner.into(),
                date_ms: now,
                op_type: "EXECUTE_TASK_NORMAL".into(),
                op_result: done.result.clone(),
                remark: remark.into(),
            });
            emits.push((
                "bpms_task_change",
                task_event(
                    inst,
                    &done,
                    "finish",
                    Some(if agree { "agree" } else { "refuse" }),
                    remark,
                ),
            ));
            let action = inst
                .steps
                .get(step)
                .map(|s| s.action.clone())
                .unwrap_or_default();
            let step_done = !agree
                || action != "AND"
                || inst
                    .tasks
                    .iter()
                    .filter(|t| t.step == step)
                    .all(|t| t.status != "RUNNING");
            if step_done {
                cancel_running(inst, now, &mut emits);
                if !agree {
                    finish(inst, "refuse", now, &mut emits);
                } else if inst.current + 1 < inst.steps.len() {
                    inst.current += 1;
                    open_step(&mut next_task_id, inst, now, &mut emits);
                } else {
                    finish(inst, "agree", now, &mut emits);
                }
            }
            a.next_task_id = next_task_id;
        }
        for (ty, data) in emits {
            self.emit(ty, data);
        }
        Ok(())
    }

    fn terminate_instance(
        &self,
        id: &str,
        operator: &str,
        is_system: bool,
        remark: &str,
    ) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut emits: Emits = Vec::new();
        {
            let mut a = self.approvals();
            let inst = a.get_mut(id).ok_or_else(not_exist)?;
            if inst.status != "RUNNING" {
                return Err(v1_err("invalidParameter", "审批实例已结束，不能撤销"));
            }
            if !is_system && operator != inst.originator {
                return Err(v1_err("invalidParameter", "只有发起人可以撤销审批实例"));
            }
            cancel_running(inst, now, &mut emits);
            inst.status = "TERMINATED".into();
            inst.finish_ms = Some(now);
            inst.records.push(Record {
                userid: operator.into(),
                date_ms: now,
                op_type: "TERMINATE_PROCESS_INSTANCE".into(),
                op_result: "NONE".into(),
                remark: remark.into(),
            });
            emits.push(("bpms_instance_change", instance_event(inst, "terminate")));
        }
        for (ty, data) in emits {
            self.emit(ty, data);
        }
        Ok(())
    }

    /// A comment (评论, ALI-SDK `AddProcessInstanceComment`): an `ADD_REMARK` record by
    /// `user` with `text` as its remark, on an instance in any status. No event.
    fn comment_instance(&self, id: &str, text: &str, user: &str) -> Result<(), ApiError> {
        let now = self.now_ms();
        if self.approvals().get(id).is_none() {
            return Err(not_exist());
        }
        if text.trim().is_empty() {
            return Err(v1_err("invalidParameter", "text不能为空"));
        }
        if user.is_empty() {
            return Err(v1_err("invalidParameter", "commentUserId不能为空"));
        }
        if !self.org().users.contains_key(user) {
            return Err(v1_err("invalidParameter", format!("评论人不存在：{user}")));
        }
        let mut a = self.approvals();
        let inst = a.get_mut(id).ok_or_else(not_exist)?;
        inst.records.push(Record {
            userid: user.into(),
            date_ms: now,
            op_type: "ADD_REMARK".into(),
            op_result: "NONE".into(),
            remark: text.into(),
        });
        Ok(())
    }

    /// Admin: agree (or refuse) every remaining task in task order, each as its approver,
    /// through the v1.0 execute path (same records and events, task by task), until the
    /// instance is finished. Answers the instance's end state and the executed tasks.
    pub fn admin_decide(&self, id: &str, agree: bool, remark: &str) -> Result<Value, AdminRefusal> {
        let mut executed = Vec::new();
        loop {
            let next = {
                let a = self.approvals();
                let inst = a
                    .get(id)
                    .ok_or_else(|| AdminRefusal::NotFound(format!("no approval instance {id}")))?;
                if inst.status != "RUNNING" {
                    if executed.is_empty() {
                        return Err(AdminRefusal::Conflict(format!(
                            "approval instance {id} is already finished ({} {})",
                            inst.status, inst.result
                        )));
                    }
                    return Ok(json!({
                        "ok": true, "id": id, "status": inst.status, "result": inst.result,
                        "executed": executed,
                    }));
                }
                inst.tasks
                    .iter()
                    .filter(|t| t.status == "RUNNING")
                    .min_by_key(|t| t.task_id)
                    .map(|t| (t.task_id, t.userid.clone()))
            };
            let Some((task_id, userid)) = next else {
                return Err(AdminRefusal::Conflict(format!(
                    "approval instance {id} is running but has no running task"
                )));
            };
            self.execute_task(id, task_id, &userid, agree, remark)
                .map_err(|e| AdminRefusal::Conflict(e.message))?;
            executed.push(json!({"task_id": task_id, "userid": userid}));
        }
    }

    /// Admin: revoke (撤销) an approved instance: COMPLETED + agree becomes TERMINATED with
    /// its result kept (`agree`, so the history shows it was approved), a
    /// `TERMINATE_PROCESS_INSTANCE` record by `operator` (default: the originator), and the
    /// same `bpms_instance_change` `terminate` event as the v1.0 terminate API. Running,
    /// refused or terminated instances are refused (running ones are terminated through the
    /// public API).
    pub fn admin_revoke(
        &self,
        id: &str,
        operator: Option<&str>,
        remark: &str,
    ) -> Result<Value, AdminRefusal> {
        if let Some(op) = operator
            && !self.org().users.contains_key(op)
        {
            return Err(AdminRefusal::BadRequest(format!("no user {op}")));
        }
        let now = self.now_ms();
        let mut emits: Emits = Vec::new();
        let answer = {
            let mut a = self.approvals();
            let inst = a
                .get_mut(id)
                .ok_or_else(|| AdminRefusal::NotFound(format!("no approval instance {id}")))?;
            if inst.status != "COMPLETED" || inst.result != "agree" {
                return Err(AdminRefusal::Conflict(format!(
                    "only an approved instance (COMPLETED agree) can be revoked; {id} is {} {}",
                    inst.status, inst.result
                )));
            }
            let operator = operator.map_or_else(|| inst.originator.clone(), str::to_owned);
            cancel_running(inst, now, &mut emits);
            inst.status = "TERMINATED".into();
            inst.finish_ms = Some(now);
            inst.records.push(Record {
                userid: operator.clone(),
                date_ms: now,
                op_type: "TERMINATE_PROCESS_INSTANCE".into(),
                op_result: "NONE".into(),
                remark: remark.into(),
            });
            emits.push(("bpms_instance_change", instance_event(inst, "terminate")));
            json!({
                "ok": true, "id": id, "status": inst.status, "result": inst.result,
                "operator": operator,
            })
        };
        for (ty, data) in emits {
            self.emit(ty, data);
        }
        Ok(answer)
    }

    /// Instances (admin `GET state`).
    pub fn instances(&self) -> Vec<Instance> {
        self.approvals().instances.clone()
    }
}

/// Why an admin approval action was refused (admin API: 404, 409, 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRefusal {
    NotFound(String),
    Conflict(String),
    BadRequest(String),
}

fn not_exist() -> ApiError {
    ApiError::oapi(400002, "审批实例不存在")
        .with_v1(StatusCode::BAD_REQUEST, "processInstanceNotExist")
}

fn open_step(next_task_id: &mut i64, inst: &mut Instance, now: i64, emits: &mut Emits) {
    let Some(step) = inst.steps.get(inst.current).cloned() else {
        return;
    };
    for u in step.users {
        *next_task_id += 1;
        let task = Task {
            task_id: 60_000_000_000 + *next_task_id,
            userid: u,
            status: "RUNNING".into(),
            result: "NONE".into(),
            create_ms: now,
            finish_ms: None,
            step: inst.current,
            activity_id: format!("act_{}", inst.current + 1),
        };
        emits.push((
            "bpms_task_change",
            task_event(inst, &task, "start", None, ""),
        ));
        inst.tasks.push(task);
    }
}

fn cancel_running(inst: &mut Instance, now: i64, emits: &mut Emits) {
    let mut canceled = Vec::new();
    for t in inst.tasks.iter_mut().filter(|t| t.status == "RUNNING") {
        t.status = "CANCELED".into();
        t.finish_ms = Some(now);
        canceled.push(t.clone());
    }
    for t in canceled {
        emits.push(("bpms_task_change", task_event(inst, &t, "cancel", None, "")));
    }
}

fn finish(inst: &mut Instance, result: &str, now: i64, emits: &mut Emits) {
    inst.status = "COMPLETED".into();
    inst.result = result.into();
    inst.finish_ms = Some(now);
    emits.push(("bpms_instance_change", instance_event(inst, "finish")));
}

/// `bpms_instance_change` data (§5.1).
fn instance_event(inst: &Instance, ty: &str) -> Value {
    let mut v = json!({
        "processInstanceId": inst.id,
        "processCode": inst.process_code,
        "bizCategoryId": "",
        "businessId": inst.business_id,
        "businessType": "",
        "title": inst.title,
        "type": ty,
        "createTime": inst.create_ms,
        "staffId": inst.originator,
        "url": format!("https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?procInstId={}", inst.id),
    });
    if ty == "finish" {
        v["result"] = json!(inst.result);
    }
    if let Some(f) = inst.finish_ms {
        v["finishTime"] = json!(f);
    }
    v
}

/// `bpms_task_change` data (§5.1).
fn task_event(inst: &Instance, t: &Task, ty: &str, result: Option<&str>, remark: &str) -> Value {
    let mut v = json!({
        "processInstanceId": inst.id,
        "processCode": inst.process_code,
        "bizCategoryId": "",
        "businessId": inst.business_id,
        "title": inst.title,
        "type": ty,
        "createTime": t.create_ms,
        "staffId": t.userid,
        "taskId": t.task_id,
    });
    if let Some(r) = result {
        v["result"] = json!(r);
        v["remark"] = json!(remark);
    }
    if let Some(f) = t.finish_ms {
        v["finishTime"] = json!(f);
    }
    v
}

fn oapi_view(inst: &Instance) -> Value {
    let mut v = json!({
        "title": inst.title,
        "create_time": oapi_time(inst.create_ms),
        "originator_userid": inst.originator,
        "originator_dept_id": inst.dept_id.to_string(),
        "originator_dept_name": inst.dept_name,
        "status": inst.status,
        "cc_userids": inst.cc,
        "business_id": inst.business_id,
        "biz_action": "NONE",
        "attached_process_instance_ids": [],
        "form_component_values": inst.form.iter().map(|f| json!({
            "id": f.id, "name": f.name, "value": f.value, "ext_value": f.ext_value,
            "component_type": f.component_type})).collect::<Vec<_>>(),
        "operation_records": inst.records.iter().map(|r| json!({
            "userid": r.userid, "date": oapi_time(r.date_ms), "operation_type": r.op_type,
            "operation_result": r.op_result, "remark": r.remark})).collect::<Vec<_>>(),
        "tasks": inst.tasks.iter().map(|t| {
            let mut tv = json!({
                "userid": t.userid, "task_status": t.status, "task_result": t.result,
                "create_time": oapi_time(t.create_ms), "taskid": t.task_id.to_string(),
                "url": format!("https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?taskId={}", t.task_id),
                "activity_id": t.activity_id});
            if let Some(f) = t.finish_ms { tv["finish_time"] = json!(oapi_time(f)); }
            tv
        }).collect::<Vec<_>>(),
    });
    if !inst.result.is_empty() {
        v["result"] = json!(inst.result);
    }
    if let Some(f) = inst.finish_ms {
        v["finish_time"] = json!(oapi_time(f));
    }
    v
}

fn v1_view(inst: &Instance) -> Value {
    let approvers: Vec<&str> = inst
        .steps
        .iter()
        .flat_map(|s| s.users.iter().map(String::as_str))
        .collect();
    let mut v = json!({
        "title": inst.title,
        "createTime": v1_time(inst.create_ms),
        "originatorUserId": inst.originator,
        "originatorDeptId": inst.dept_id.to_string(),
        "originatorDeptName": inst.dept_name,
        "status": inst.status,
        "approverUserIds": approvers,
        "ccUserIds": inst.cc,
        "businessId": inst.business_id,
        "bizAction": "NONE",
        "attachedProcessInstanceIds": [],
        "mainProcessInstanceId": "",
        "formComponentValues": inst.form.iter().map(|f| json!({
            "id": f.id, "name": f.name, "value": f.value, "extValue": f.ext_value,
            "componentType": f.component_type, "bizAlias": f.biz_alias})).collect::<Vec<_>>(),
        "operationRecords": inst.records.iter().map(|r| json!({
            "userId": r.userid, "date": v1_time(r.date_ms), "type": r.op_type,
            "result": r.op_result, "remark": r.remark})).collect::<Vec<_>>(),
        "tasks": inst.tasks.iter().map(|t| {
            let mut tv = json!({
                "taskId": t.task_id, "userId": t.userid, "status": t.status, "result": t.result,
                "createTime": v1_time(t.create_ms), "processInstanceId": inst.id,
                "activityId": t.activity_id,
                "mobileUrl": format!("https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?taskId={}", t.task_id),
                "pcUrl": format!("https://aflow.dingtalk.com/dingtalk/pc/query/pchomepage.htm?taskId={}", t.task_id)});
            if let Some(f) = t.finish_ms { tv["finishTime"] = json!(v1_time(f)); }
            tv
        }).collect::<Vec<_>>(),
    });
    if !inst.result.is_empty() {
        v["result"] = json!(inst.result);
    }
    if let Some(f) = inst.finish_ms {
        v["finishTime"] = json!(v1_time(f));
    }
    v
}

fn form_values(list: Option<Value>, v1: bool) -> Result<Vec<(String, String, String)>, ApiError> {
    let Some(Value::Array(items)) = list else {
        return Err(ApiError::missing(if v1 {
            "formComponentValues"
        } else {
            "form_component_values"
        }));
    };
    let mut out = Vec::new();
    for it in items {
        let name = it.get("name").map(scalar_text).unwrap_or_default();
        if name.is_empty() {
            return Err(v1_err("illegalComponent", "表单控件缺少name"));
        }
        let mut value = match it.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        // v1.0 detail tables may come as `details` rows instead of a JSON string.
        if v1
            && value.is_empty()
            && let Some(Value::Array(rows)) = it.get("details")
        {
            let table: Vec<Value> = rows
                .iter()
                .map(|r| {
                    r.get("details")
                        .and_then(Value::as_array)
                        .map(|cells| {
                            Value::Array(
                                cells
                                    .iter()
                                    .map(|c| {
                                        json!({
                                "name": c.get("name").map(scalar_text).unwrap_or_default(),
                                "value": c.get("value").map(scalar_text).unwrap_or_default()})
                                    })
                                    .collect(),
                            )
                        })
                        .unwrap_or(Value::Array(Vec::new()))
                })
                .collect();
            value = Value::Array(table).to_string();
        }
        let ext = it
            .get(if v1 { "extValue" } else { "ext_value" })
            .map(scalar_text)
            .unwrap_or_default();
        out.push((name, value, ext));
    }
    Ok(out)
}

// ---- oapi (§3.1) ----

pub fn oapi_create(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let process_code = p.str_req("process_code")?;
    let originator = p.str_req("originator_user_id")?;
    let dept_id = Some(p.i64_req("dept_id")?);
    let mut steps = Vec::new();
    if let Some(Value::Array(v2)) = p.json_opt("approvers_v2") {
        for s in v2 {
            let action = s
                .get("task_action_type")
                .map(scalar_text)
                .unwrap_or_else(|| "NONE".into());
            let users: Vec<String> = s
                .get("user_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(scalar_text).collect())
                .unwrap_or_default();
            if (action == "AND" || action == "OR") && users.len() < 2 {
                return Err(ApiError::invalid("approvers_v2", "AND/OR至少两个审批人"));
            }
            steps.push(step_from(&action, users)?);
        }
    } else if let Some(list) = p.list_opt("approvers") {
        for u in list {
            steps.push(step_from("NONE", vec![u])?);
        }
    }
    if steps.len() > 20 {
        return Err(ApiError::invalid("approvers", "审批人不能超过20个"));
    }
    let cc = p.list_opt("cc_list").unwrap_or_default();
    if cc.len() > 20 {
        return Err(ApiError::invalid("cc_list", "抄送人不能超过20个"));
    }
    let values = form_values(p.json_opt("form_component_values"), false)?;
    let id = c.sb.start_instance(StartReq {
        process_code,
        originator,
        dept_id,
        steps,
        cc,
        values,
    })?;
    Ok(json!({"process_instance_id": id}))
}

pub fn oapi_get(c: &Ctx) -> Result<Value, ApiError> {
    let id = c.params.str_req("process_instance_id")?;
    let a = c.sb.approvals();
    let inst = a.get(&id).ok_or_else(not_exist)?;
    Ok(json!({"process_instance": oapi_view(inst)}))
}

#[allow(clippy::too_many_arguments)]
fn list_ids(
    c: &Ctx,
    code: &str,
    start: i64,
    end: Option<i64>,
    users: &[String],
    statuses: &[String],
    cursor: usize,
    size: usize,
) -> Result<(Vec<String>, Option<usize>), ApiError> {
    if template(code).is_none() {
        return Err(v1_err("invalidProcessCode", format!("模板不存在：{code}")));
    }
    let end = end.unwrap_or(i64::MAX);
    let a = c.sb.approvals();
    let ids: Vec<String> = a
        .instances
        .iter()
        .filter(|i| i.process_code == code && i.create_ms >= start && i.create_ms <= end)
        .filter(|i| users.is_empty() || users.contains(&i.originator))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
        .map(|i| i.id.clone())
        .collect();
    let from = cursor.min(ids.len());
    let to = (from + size).min(ids.len());
    let next = (to < ids.len()).then_some(to);
    Ok((ids[from..to].to_vec(), next))
}

/// §3.1 listids: size ≤ 20, userid_list ≤ 10, window ≤ 120 days.
pub fn oapi_listids(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let code = p.str_req("process_code")?;
    let start = p.i64_req("start_time")?;
    let end = p.i64_opt("end_time")?;
    let size = p.i64_opt("size")?.unwrap_or(20);
    if !(1..=20).contains(&size) {
        return Err(ApiError::invalid("size", "取值范围1~20"));
    }
    let cursor = p.i64_opt("cursor")?.unwrap_or(0).max(0) as usize;
    let users = p.list_opt("userid_list").unwrap_or_default();
    if users.len() > 10 {
        return Err(ApiError::invalid("userid_list", "最多10个"));
    }
    if let Some(e) = end
        && e - start > 120 * 86_400_000
    {
        return Err(ApiError::invalid("end_time", "时间跨度不能超过120天"));
    }
    let (list, next) = list_ids(c, &code, start, end, &users, &[], cursor, size as usize)
        .map_err(|e| ApiError::oapi(400002, e.message))?;
    let mut result = json!({"list": list});
    if let Some(n) = next {
        result["next_cursor"] = json!(n);
    }
    Ok(json!({"result": result}))
}

// ---- v1.0 (§3.2) ----

pub fn v1_create(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let process_code = p
        .str_opt("processCode")
        .ok_or_else(|| v1_err("invalidParameter", "processCode不能为空"))?;
    let originator = p
        .str_opt("originatorUserId")
        .ok_or_else(|| v1_err("invalidParameter", "originatorUserId不能为空"))?;
    let mut steps = Vec::new();
    if let Some(Value::Array(list)) = p.json_opt("approvers") {
        for s in list {
            let action = s
                .get("actionType")
                .map(scalar_text)
                .unwrap_or_else(|| "NONE".into());
            let users: Vec<String> = s
                .get("userIds")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(scalar_text).collect())
                .unwrap_or_default();
            steps.push(step_from(&action, users)?);
        }
    }
    if steps.len() > 20 {
        return Err(v1_err("invalidParameter", "审批人不能超过20个"));
    }
    let dept_id = p
        .i64_opt("deptId")
        .map_err(|_| v1_err("invalidParameter", "deptId不合法"))?;
    if dept_id.is_none() && steps.is_empty() {
        return Err(v1_err("invalidParameter", "deptId不能为空"));
    }
    let cc = p.list_opt("ccList").unwrap_or_default();
    if cc.len() > 50 {
        return Err(v1_err("invalidParameter", "ccList不能超过50个"));
    }
    let values = form_values(p.json_opt("formComponentValues"), true).map_err(|e| {
        if e.code == "MissingParameter" {
            v1_err("invalidParameter", "formComponentValues不能为空")
        } else {
            e
        }
    })?;
    let id = c.sb.start_instance(StartReq {
        process_code,
        originator,
        dept_id,
        steps,
        cc,
        values,
    })?;
    Ok(json!({"instanceId": id}))
}

pub fn v1_get(c: &Ctx) -> Result<Value, ApiError> {
    let id = c
        .params
        .str_opt("processInstanceId")
        .ok_or_else(|| v1_err("processInstanceIdError", "processInstanceId不能为空"))?;
    let a = c.sb.approvals();
    let inst = a.get(&id).ok_or_else(not_exist)?;
    // §3.2: `success` is a string here.
    Ok(json!({"success": "true", "result": v1_view(inst)}))
}

pub fn v1_execute(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let id = p
        .str_opt("processInstanceId")
        .ok_or_else(|| v1_err("invalidParameter", "processInstanceId不能为空"))?;
    let task_id = p
        .i64_opt("taskId")
        .map_err(|_| v1_err("invalidParameter", "taskId不合法"))?
        .ok_or_else(|| v1_err("invalidParameter", "taskId不能为空"))?;
    let actioner = p
        .str_opt("actionerUserId")
        .ok_or_else(|| v1_err("invalidParameter", "actionerUserId不能为空"))?;
    let agree = match p.str_opt("result").as_deref() {
        Some("agree") => true,
        Some("refuse") => false,
        _ => return Err(v1_err("invalidParameter", "result只能是agree或refuse")),
    };
    let remark = p.str_opt("remark").unwrap_or_default();
    c.sb.execute_task(&id, task_id, &actioner, agree, &remark)?;
    Ok(json!({"result": true, "success": true}))
}

pub fn v1_terminate(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let id = p
        .str_opt("processInstanceId")
        .ok_or_else(|| v1_err("invalidParameter", "processInstanceId不能为空"))?;
    let is_system = p.bool_opt("isSystem").unwrap_or(false);
    let operator = p.str_opt("operatingUserId").unwrap_or_default();
    let remark = p.str_opt("remark").unwrap_or_default();
    c.sb.terminate_instance(&id, &operator, is_system, &remark)?;
    Ok(json!({"result": true, "success": true}))
}

/// `POST /v1.0/workflow/processInstances/comments` `{processInstanceId, text, commentUserId,
/// file?}` (ALI-SDK `workflow_1_0` `AddProcessInstanceComment`; not in the protocol notes):
/// `{"result": true, "success": true}`. `file` (photos, attachments) is accepted and ignored.
pub fn v1_comment(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let id = p
        .str_opt("processInstanceId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| v1_err("invalidParameter", "processInstanceId不能为空"))?;
    let text = p.str_opt("text").unwrap_or_default();
    let user = p.str_opt("commentUserId").unwrap_or_default();
    c.sb.comment_instance(&id, &text, &user)?;
    Ok(json!({"result": true, "success": true}))
}

/// §3.2 instanceIds/query: maxResults ≤ 20, userIds ≤ 10, window ≤ 120 days.
pub fn v1_listids(c: &Ctx) -> Result<Value, ApiError> {
    let p = &c.params;
    let code = p
        .str_opt("processCode")
        .ok_or_else(|| v1_err("invalidProcessCode", "processCode不能为空"))?;
    let start = p
        .i64_opt("startTime")
        .ok()
        .flatten()
        .ok_or_else(|| v1_err("invalidInstanceListIdsStartTime", "startTime不合法"))?;
    let end = p
        .i64_opt("endTime")
        .map_err(|_| v1_err("invalidEndTime", "endTime不合法"))?;
    if let Some(e) = end
        && e - start > 120 * 86_400_000
    {
        return Err(v1_err("invalidEndTime", "时间跨度不能超过120天"));
    }
    let next = p
        .i64_opt("nextToken")
        .map_err(|_| v1_err("invalidNextToken", "nextToken不合法"))?
        .ok_or_else(|| v1_err("invalidNextToken", "nextToken不能为空"))?;
    let max = p
        .i64_opt("maxResults")
        .ok()
        .flatten()
        .ok_or_else(|| v1_err("invalidMaxResults", "maxResults不能为空"))?;
    if next < 0 {
        return Err(v1_err("invalidNextToken", "nextToken不合法"));
    }
    if !(1..=20).contains(&max) {
        return Err(v1_err("invalidMaxResults", "maxResults取值1~20"));
    }
    let users = p.list_opt("userIds").unwrap_or_default();
    if users.len() > 10 {
        return Err(v1_err("invalidUserIds", "userIds最多10个"));
    }
    // §3.1 / §3.2 instance statuses; anything else is refused rather than matching nothing.
    let statuses = p.list_opt("statuses").unwrap_or_default();
    if let Some(bad) = statuses
        .iter()
        .find(|s| !["NEW", "RUNNING", "TERMINATED", "COMPLETED", "CANCELED"].contains(&s.as_str()))
    {
        return Err(v1_err(
            "invalidParameter",
            format!("statuses取值RUNNING/TERMINATED/COMPLETED：{bad}"),
        ));
    }
    let (list, next) = list_ids(
        c,
        &code,
        start,
        end,
        &users,
        &statuses,
        next as usize,
        max as usize,
    )?;
    let mut result = json!({"list": list});
    if let Some(n) = next {
        result["nextToken"] = json!(n.to_string());
    }
    Ok(json!({"result": result, "success": true}))
}

pub fn v1_schema(c: &Ctx) -> Result<Value, ApiError> {
    let code = c
        .params
        .str_opt("processCode")
        .ok_or_else(|| v1_err("invalidParameter", "processCode不能为空"))?;
    let t =
        template(&code).ok_or_else(|| v1_err("processCodeError", format!("模板不存在：{code}")))?;
    Ok(json!({"result": t.schema()}))
}
