//! Approvals (protocol §3): templates and schema, v1.0 create → get → execute → finished,
//! refusal, OR steps, terminate, oapi create / get / listids, and the bpms events.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use dingtalk_support::*;
use sandbox::dingtalk::DingTalkSandboxConfig;
use sandbox::seed::Seed;
use serde_json::{Value, json};

const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
const LEAVE: &str = "PROC-SBX-QJ-2B8D6E41-0002";
const PURCHASE: &str = "PROC-SBX-CG-5E0A7C33-0003";

fn people() -> Vec<String> {
    Seed::builtin()
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.userid.clone())
        .collect()
}

fn expense_form() -> Value {
    let detail = json!([
        [{"name": "费用类型", "value": "差旅费"}, {"name": "金额（元）", "value": "1280.50"}, {"name": "费用说明", "value": "上海出差高铁票"}],
        [{"name": "费用类型", "value": "招待费"}, {"name": "金额（元）", "value": "300"}]
    ]);
    json!([
        {"name": "报销事由", "value": "上海客户拜访（华东区）"},
        {"name": "报销类别", "value": "差旅报销"},
        {"name": "费用明细", "value": detail.to_string()},
        {"name": "报销总金额（元）", "value": "1580.50"}
    ])
}

async fn running_tasks(s: &Served, tok: &str, id: &str) -> Vec<(i64, String)> {
    let (st, v) = s
        .v1_get(
            tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", id)],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "RUNNING")
        .map(|t| {
            (
                t["taskId"].as_i64().unwrap(),
                t["userId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn v1_expense_create_execute_until_finished() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let (st, schema) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/forms/schemas/processCodes",
            &[("processCode", EXPENSE)],
        )
        .await;
    assert_eq!(st, 200);
    let items = schema["result"]["schemaContent"]["items"]
        .as_array()
        .unwrap();
    let table = items
        .iter()
        .find(|i| i["componentName"] == "TableField")
        .unwrap();
    assert_eq!(table["props"]["label"], "费用明细");
    assert_eq!(table["children"].as_array().unwrap().len(), 4);

    let (st, created) = s
        .v1_post(&tok, "/v1.0/workflow/processInstances", json!({
            "processCode": EXPENSE, "originatorUserId": p[5], "deptId": -1,
            "approvers": [{"actionType": "NONE", "userIds": [p[1]]}, {"actionType": "AND", "userIds": [p[2], p[3]]}],
            "ccList": [p[4]],
            "formComponentValues": expense_form(),
        }))
        .await;
    assert_eq!(st, 200, "{created}");
    let id = created["instanceId"].as_str().unwrap().to_owned();

    let (_, got) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", &id)],
        )
        .await;
    assert_eq!(got["success"], "true");
    let r = &got["result"];
    assert_eq!(r["status"], "RUNNING");
    assert!(r["title"].as_str().unwrap().ends_with("提交的费用报销"));
    let table = r["formComponentValues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["componentType"] == "TableField")
        .unwrap();
    let rows: Vec<Vec<Value>> = serde_json::from_str(table["value"].as_str().unwrap()).unwrap();
    assert_eq!(rows[0][2]["value"], "上海出差高铁票");
    assert!(r["createTime"].as_str().unwrap().ends_with('Z'));

    // Step 1: one approver.
    let tasks = running_tasks(&s, &tok, &id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].1, p[1]);
    // Wrong actioner is refused.
    let (st, e) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processInstances/execute",
            json!({
        "processInstanceId": id, "taskId": tasks[0].0, "actionerUserId": p[9], "result": "agree"}),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    let (st, ok) = s.v1_post(&tok, "/v1.0/workflow/processInstances/execute", json!({
        "processInstanceId": id, "taskId": tasks[0].0, "actionerUserId": p[1], "result": "agree", "remark": "同意，请财务审核"})).await;
    assert_eq!((st, ok["success"].as_bool()), (200, Some(true)));

    // Step 2: AND of two; both must agree.
    let tasks = running_tasks(&s, &tok, &id).await;
    assert_eq!(tasks.len(), 2);
    for (task, user) in &tasks {
        let (st, _) = s
            .v1_post(
                &tok,
                "/v1.0/workflow/processInstances/execute",
                json!({
            "processInstanceId": id, "taskId": task, "actionerUserId": user, "result": "agree"}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (_, got) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", &id)],
        )
        .await;
    assert_eq!(got["result"]["status"], "COMPLETED");
    assert_eq!(got["result"]["result"], "agree");
    assert!(got["result"]["finishTime"].is_string());
    let records = got["result"]["operationRecords"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[1]["remark"], "同意，请财务审核");

    // oapi view of the same instance.
    let o = s
        .oapi(
            &tok,
            "/topapi/processinstance/get",
            json!({"process_instance_id": id}),
        )
        .await;
    assert_eq!(o["process_instance"]["status"], "COMPLETED");
    assert_eq!(o["process_instance"]["result"], "agree");
    assert_eq!(o["process_instance"]["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(
        o["process_instance"]["create_time"].as_str().unwrap().len(),
        19
    );

    // Executing a finished instance fails.
    let (st, _) = s.v1_post(&tok, "/v1.0/workflow/processInstances/execute", json!({
        "processInstanceId": id, "taskId": tasks[0].0, "actionerUserId": tasks[0].1, "result": "agree"})).await;
    assert_eq!(st, 400);

    // Events: start, task start/finish…, instance finish.
    let ev = s.admin_get("events").await;
    let kinds: Vec<String> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["event_type"].as_str().unwrap(),
                e["payload"]["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), "bpms_instance_change:start");
    assert_eq!(kinds.last().unwrap(), "bpms_instance_change:finish");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "bpms_task_change:finish")
            .count(),
        3
    );
    assert_eq!(
        ev["events"].as_array().unwrap().last().unwrap()["payload"]["result"],
        "agree"
    );
}

#[tokio::test]
async fn refuse_or_step_terminate_and_errors() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let leave = json!([
        {"name": "请假类型", "value": "年假"},
        {"name": "[\"开始时间\",\"结束时间\"]", "value": "[\"2026-12-01 09:00\",\"2026-12-03 18:00\"]"},
        {"name": "请假事由", "value": "回老家探亲"}
    ]);
    // Default approval chain (no approvers given) and refusal.
    let (st, c) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": LEAVE, "originatorUserId": p[7], "deptId": 1, "formComponentValues": leave})).await;
    assert_eq!(st, 200, "{c}");
    let id = c["instanceId"].as_str().unwrap().to_owned();
    let tasks = running_tasks(&s, &tok, &id).await;
    let (st, _) = s.v1_post(&tok, "/v1.0/workflow/processInstances/execute", json!({"processInstanceId": id, "taskId": tasks[0].0, "actionerUserId": tasks[0].1, "result": "refuse", "remark": "项目上线期间不批假"})).await;
    assert_eq!(st, 200);
    let (_, got) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", &id)],
        )
        .await;
    assert_eq!(
        (
            got["result"]["status"].as_str(),
            got["result"]["result"].as_str()
        ),
        (Some("COMPLETED"), Some("refuse"))
    );

    // OR step: one agreement suffices, the other task is canceled.
    let purchase = json!([
        {"name": "采购事由", "value": "研发部新增显示器"},
        {"name": "采购类型", "value": "[\"IT设备\",\"办公用品\"]"},
        {"name": "期望交付日期", "value": "2026-12-20"},
        {"name": "采购明细", "value": "[[{\"name\":\"物品名称\",\"value\":\"27寸显示器\"},{\"name\":\"数量\",\"value\":\"4\"},{\"name\":\"单价（元）\",\"value\":\"1999\"}]]"}
    ]);
    let (st, c) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": PURCHASE, "originatorUserId": p[8], "approvers": [{"actionType": "OR", "userIds": [p[1], p[2]]}], "formComponentValues": purchase})).await;
    assert_eq!(st, 200, "{c}");
    let id = c["instanceId"].as_str().unwrap().to_owned();
    let tasks = running_tasks(&s, &tok, &id).await;
    assert_eq!(tasks.len(), 2);
    s.v1_post(&tok, "/v1.0/workflow/processInstances/execute", json!({"processInstanceId": id, "taskId": tasks[1].0, "actionerUserId": tasks[1].1, "result": "agree"})).await;
    let (_, got) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", &id)],
        )
        .await;
    assert_eq!(got["result"]["status"], "COMPLETED");
    let statuses: Vec<&str> = got["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["CANCELED", "COMPLETED"]);

    // Terminate: only the originator (or isSystem).
    let (_, c) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": EXPENSE, "originatorUserId": p[5], "deptId": -1, "formComponentValues": expense_form()})).await;
    let id = c["instanceId"].as_str().unwrap().to_owned();
    let (st, _) = s.v1_post(&tok, "/v1.0/workflow/processInstances/terminate", json!({"processInstanceId": id, "isSystem": false, "operatingUserId": p[6], "remark": "撤销"})).await;
    assert_eq!(st, 400);
    let (st, t) = s.v1_post(&tok, "/v1.0/workflow/processInstances/terminate", json!({"processInstanceId": id, "isSystem": false, "operatingUserId": p[5], "remark": "填错了，撤销"})).await;
    assert_eq!((st, t["result"].as_bool()), (200, Some(true)));
    let (_, got) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", &id)],
        )
        .await;
    assert_eq!(got["result"]["status"], "TERMINATED");
    assert!(got["result"].get("result").is_none());

    // Errors.
    let (st, e) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": "PROC-NOPE", "originatorUserId": p[5], "deptId": 1, "formComponentValues": expense_form()})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("processCodeError")));
    let mut missing = expense_form();
    missing.as_array_mut().unwrap().remove(2);
    let (st, e) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": EXPENSE, "originatorUserId": p[5], "deptId": 1, "formComponentValues": missing})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("illegalComponent")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("费用明细"));
    let bad_table = json!([{"name": "报销事由", "value": "x"}, {"name": "报销类别", "value": "日常报销"}, {"name": "费用明细", "value": "不是JSON"}, {"name": "报销总金额（元）", "value": "1"}]);
    let (st, e) = s.v1_post(&tok, "/v1.0/workflow/processInstances", json!({"processCode": EXPENSE, "originatorUserId": p[5], "deptId": 1, "formComponentValues": bad_table})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("illegalComponent")));
    let (st, e) = s
        .v1_get(
            &tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", "nope")],
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("processInstanceNotExist"))
    );
}

#[tokio::test]
async fn oapi_create_get_listids() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let mut ids = Vec::new();
    for i in 0..25 {
        let r = s
            .oapi(
                &tok,
                "/topapi/processinstance/create",
                json!({
                    "process_code": EXPENSE, "originator_user_id": p[10 + (i % 2)], "dept_id": "-1",
                    "approvers": format!("{},{}", p[1], p[2]),
                    "form_component_values": expense_form(),
                }),
            )
            .await;
        assert_eq!(r["errcode"], 0, "{r}");
        ids.push(r["process_instance_id"].as_str().unwrap().to_owned());
    }
    let r = s
        .oapi(
            &tok,
            "/topapi/processinstance/get",
            json!({"process_instance_id": ids[0]}),
        )
        .await;
    let pi = &r["process_instance"];
    assert_eq!(pi["status"], "RUNNING");
    assert_eq!(pi["tasks"][0]["task_status"], "RUNNING");
    assert_eq!(
        pi["operation_records"][0]["operation_type"],
        "START_PROCESS_INSTANCE"
    );
    assert_eq!(
        pi["form_component_values"][0]["value"],
        "上海客户拜访（华东区）"
    );

    let mut listed = Vec::new();
    let mut cursor = 0;
    loop {
        let r = s
            .oapi(
                &tok,
                "/topapi/processinstance/listids",
                json!({"process_code": EXPENSE, "start_time": "0", "size": 20, "cursor": cursor}),
            )
            .await;
        assert_eq!(r["errcode"], 0, "{r}");
        listed.extend(
            r["result"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
        match r["result"]["next_cursor"].as_u64() {
            Some(n) => cursor = n,
            None => break,
        }
    }
    assert_eq!(listed, ids);
    let r = s
        .oapi(
            &tok,
            "/topapi/processinstance/listids",
            json!({"process_code": EXPENSE, "start_time": 0, "size": 21}),
        )
        .await;
    assert_eq!(r["errcode"], 400002);
    let r = s
        .oapi(
            &tok,
            "/topapi/processinstance/listids",
            json!({"process_code": EXPENSE, "start_time": 0, "userid_list": p[10]}),
        )
        .await;
    assert_eq!(r["result"]["list"].as_array().unwrap().len(), 13);

    let (st, v) = s.v1_post(&tok, "/v1.0/workflow/processes/instanceIds/query", json!({"processCode": EXPENSE, "startTime": 0, "nextToken": 0, "maxResults": 20, "statuses": ["RUNNING"]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["result"]["list"].as_array().unwrap().len(), 20);
    assert_eq!(v["result"]["nextToken"], "20");
    let (st, v) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processes/instanceIds/query",
            json!({"processCode": EXPENSE, "startTime": 0, "nextToken": 0, "maxResults": 50}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalidMaxResults")));
}

async fn create_expense(s: &Served, tok: &str, originator: &str, approvers: Value) -> String {
    let (st, c) = s
        .v1_post(
            tok,
            "/v1.0/workflow/processInstances",
            json!({"processCode": EXPENSE, "originatorUserId": originator, "deptId": -1,
                   "approvers": approvers, "formComponentValues": expense_form()}),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    c["instanceId"].as_str().unwrap().to_owned()
}

async fn v1_instance(s: &Served, tok: &str, id: &str) -> Value {
    let (st, v) = s
        .v1_get(
            tok,
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", id)],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["result"].clone()
}

/// Admin POST answering (status, body).
async fn admin_call(s: &Served, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.http.post(s.url(&format!("/_sandbox/dingtalk/{path}")));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// Every event of one instance as `event_type:type[:staffId][:result]`.
async fn instance_events(s: &Served, id: &str) -> Vec<String> {
    let ev = s.admin_get("events").await;
    ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"]["processInstanceId"] == id)
        .map(|e| {
            let p = &e["payload"];
            let mut k = format!(
                "{}:{}",
                e["event_type"].as_str().unwrap(),
                p["type"].as_str().unwrap()
            );
            if e["event_type"] == "bpms_task_change" {
                k.push_str(&format!(":{}", p["staffId"].as_str().unwrap()));
            }
            if let Some(r) = p["result"].as_str() {
                k.push_str(&format!(":{r}"));
            }
            k
        })
        .collect()
}

/// §3.2 comments (ALI-SDK `AddProcessInstanceComment`): an `ADD_REMARK` record with result
/// NONE and the text as remark, in both get APIs, also on a finished instance; no event; the
/// refusals (unknown instance, missing or empty text, missing or unknown commenter).
#[tokio::test]
async fn v1_comment_adds_remark_record() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let id = create_expense(
        &s,
        &tok,
        &p[5],
        json!([{"actionType": "NONE", "userIds": [p[1]]}]),
    )
    .await;
    let events_before = s.admin_get("events").await["events"]
        .as_array()
        .unwrap()
        .len();
    let text = "财务：请补充高铁票原件（已通知钉桥）";
    let (st, r) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processInstances/comments",
            json!({"processInstanceId": id, "text": text, "commentUserId": p[9]}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r, json!({"result": true, "success": true}));
    let inst = v1_instance(&s, &tok, &id).await;
    assert_eq!(inst["status"], "RUNNING");
    let last = inst["operationRecords"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "ADD_REMARK");
    assert_eq!(last["result"], "NONE");
    assert_eq!(last["remark"], text);
    assert_eq!(last["userId"], p[9].as_str());
    assert!(last["date"].as_str().unwrap().ends_with('Z'));
    let o = s
        .oapi(
            &tok,
            "/topapi/processinstance/get",
            json!({"process_instance_id": id}),
        )
        .await;
    let last = o["process_instance"]["operation_records"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["operation_type"], "ADD_REMARK");
    assert_eq!(last["operation_result"], "NONE");
    assert_eq!(last["remark"], text);
    assert_eq!(last["userid"], p[9].as_str());
    assert_eq!(
        s.admin_get("events").await["events"]
            .as_array()
            .unwrap()
            .len(),
        events_before,
        "a comment emits no event"
    );

    // Refusals.
    let comment = |body: Value| s.v1_post(&tok, "/v1.0/workflow/processInstances/comments", body);
    let (st, e) =
        comment(json!({"processInstanceId": "nope", "text": "x", "commentUserId": p[9]})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("processInstanceNotExist")),
        "{e}"
    );
    for body in [
        json!({"processInstanceId": id, "text": "", "commentUserId": p[9]}),
        json!({"processInstanceId": id, "text": "   ", "commentUserId": p[9]}),
        json!({"processInstanceId": id, "commentUserId": p[9]}),
        json!({"processInstanceId": id, "text": "x"}),
        json!({"processInstanceId": id, "text": "x", "commentUserId": "no-such-user"}),
        json!({"text": "x", "commentUserId": p[9]}),
    ] {
        let (st, e) = comment(body.clone()).await;
        assert_eq!(
            (st, e["code"].as_str()),
            (400, Some("invalidParameter")),
            "{body} → {e}"
        );
    }
    let records = v1_instance(&s, &tok, &id).await["operationRecords"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(records, 2, "refused comments add nothing");

    // A finished instance still takes comments.
    let (st, _) = admin_call(&s, &format!("approvals/{id}/approve"), None).await;
    assert_eq!(st, 200);
    let (st, _) =
        comment(json!({"processInstanceId": id, "text": "已入账", "commentUserId": p[5]})).await;
    assert_eq!(st, 200);
    let inst = v1_instance(&s, &tok, &id).await;
    assert_eq!(
        (inst["status"].as_str(), inst["result"].as_str()),
        (Some("COMPLETED"), Some("agree"))
    );
    assert_eq!(
        inst["operationRecords"].as_array().unwrap().last().unwrap()["type"],
        "ADD_REMARK"
    );
}

/// Admin approve: every remaining task agreed in order as its approver (NONE, AND, OR),
/// through the execute path: the same records and events as doing it with the v1.0 API, task
/// by task. Admin refuse ends at the first task. 404 / 409 refusals.
#[tokio::test]
async fn admin_approve_and_refuse_follow_the_execute_path() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let chain = json!([
        {"actionType": "NONE", "userIds": [p[1]]},
        {"actionType": "AND", "userIds": [p[2], p[3]]},
        {"actionType": "OR", "userIds": [p[4], p[6]]},
    ]);
    // By hand through the v1.0 API: always the first running task.
    let manual = create_expense(&s, &tok, &p[5], chain.clone()).await;
    loop {
        let tasks = running_tasks(&s, &tok, &manual).await;
        let Some((task, user)) = tasks.first() else {
            break;
        };
        let (st, _) = s
            .v1_post(
                &tok,
                "/v1.0/workflow/processInstances/execute",
                json!({"processInstanceId": manual, "taskId": task, "actionerUserId": user,
                       "result": "agree", "remark": "同意"}),
            )
            .await;
        assert_eq!(st, 200);
    }
    // Through the admin API.
    let auto = create_expense(&s, &tok, &p[5], chain).await;
    let (st, r) = admin_call(
        &s,
        &format!("approvals/{auto}/approve"),
        Some(json!({"remark": "同意"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["result"].as_str()),
        (Some("COMPLETED"), Some("agree"))
    );
    let who: Vec<&str> = r["executed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["userid"].as_str().unwrap())
        .collect();
    assert_eq!(who, [&p[1], &p[2], &p[3], &p[4]]);

    assert_eq!(
        instance_events(&s, &manual).await,
        instance_events(&s, &auto).await
    );
    let events = instance_events(&s, &auto).await;
    assert_eq!(events.first().unwrap(), "bpms_instance_change:start");
    assert_eq!(events.last().unwrap(), "bpms_instance_change:finish:agree");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("bpms_task_change:finish"))
            .count(),
        4
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("bpms_task_change:cancel"))
            .count(),
        1
    );
    let shape = |inst: &Value| -> Vec<(String, String, String, String)> {
        inst["operationRecords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let f = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                (f("userId"), f("type"), f("result"), f("remark"))
            })
            .collect()
    };
    let (m, a) = (
        v1_instance(&s, &tok, &manual).await,
        v1_instance(&s, &tok, &auto).await,
    );
    assert_eq!(shape(&m), shape(&a));
    let task_shape = |inst: &Value| -> Vec<(String, String, String)> {
        inst["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let f = |k: &str| t[k].as_str().unwrap_or("").to_owned();
                (f("userId"), f("status"), f("result"))
            })
            .collect()
    };
    assert_eq!(task_shape(&m), task_shape(&a));
    assert_eq!(
        shape(&a)[1],
        (
            p[1].clone(),
            "EXECUTE_TASK_NORMAL".into(),
            "AGREE".into(),
            "同意".into()
        )
    );

    // Refuse: the first remaining task refuses, the instance ends COMPLETED + refuse.
    let id = create_expense(&s, &tok, &p[7], json!([{"actionType": "NONE", "userIds": [p[1]]}, {"actionType": "NONE", "userIds": [p[2]]}])).await;
    let (st, r) = admin_call(
        &s,
        &format!("approvals/{id}/refuse"),
        Some(json!({"remark": "预算不足"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["result"].as_str()),
        (Some("COMPLETED"), Some("refuse"))
    );
    assert_eq!(r["executed"].as_array().unwrap().len(), 1);
    let inst = v1_instance(&s, &tok, &id).await;
    assert_eq!(
        inst["tasks"].as_array().unwrap().len(),
        1,
        "the second step never opened"
    );
    assert_eq!(
        instance_events(&s, &id).await.last().unwrap(),
        "bpms_instance_change:finish:refuse"
    );

    // Refusals: finished → 409, unknown → 404, both JSON; a bad body → 4xx.
    for path in [
        format!("approvals/{id}/approve"),
        format!("approvals/{id}/refuse"),
        format!("approvals/{auto}/approve"),
    ] {
        let (st, e) = admin_call(&s, &path, None).await;
        assert_eq!(st, 409, "{path}: {e}");
        assert_eq!(e["ok"], false);
        assert!(e["error"].as_str().unwrap().contains("finished"), "{e}");
    }
    for action in ["approve", "refuse", "revoke"] {
        let (st, e) = admin_call(&s, &format!("approvals/nope/{action}"), Some(json!({}))).await;
        assert_eq!(st, 404, "{action}: {e}");
        assert_eq!(e["ok"], false);
    }
    let running = create_expense(
        &s,
        &tok,
        &p[7],
        json!([{"actionType": "NONE", "userIds": [p[1]]}]),
    )
    .await;
    let (st, _) = admin_call(
        &s,
        &format!("approvals/{running}/approve"),
        Some(json!({"remarks": "typo"})),
    )
    .await;
    assert!((400..500).contains(&st), "{st}");
    assert_eq!(v1_instance(&s, &tok, &running).await["status"], "RUNNING");

    // Many instances without knowing a task id (what benchmarks need).
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(create_expense(&s, &tok, &p[10 + i % 5], json!([{"actionType": "NONE", "userIds": [p[1]]}, {"actionType": "AND", "userIds": [p[2], p[3]]}])).await);
    }
    for id in &ids {
        let (st, r) = admin_call(&s, &format!("approvals/{id}/approve"), None).await;
        assert_eq!((st, r["result"].as_str()), (200, Some("agree")), "{r}");
    }
    let (st, v) = s.v1_post(&tok, "/v1.0/workflow/processes/instanceIds/query", json!({
        "processCode": EXPENSE, "startTime": 0, "nextToken": 0, "maxResults": 20, "statuses": ["RUNNING"]})).await;
    assert_eq!(st, 200);
    assert_eq!(v["result"]["list"], json!([running]));
}

/// Revocation of an approved instance (admin): COMPLETED + agree → TERMINATED with the result
/// kept, a TERMINATE_PROCESS_INSTANCE record, and the same `terminate` event as the v1.0
/// terminate API; the public API keeps refusing finished instances; running, refused or
/// already terminated instances and unknown operators are refused.
#[tokio::test]
async fn admin_revoke_of_an_approved_instance() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let p = people();
    let one = json!([{"actionType": "NONE", "userIds": [p[1]]}]);
    let id = create_expense(&s, &tok, &p[5], one.clone()).await;
    let (st, _) = admin_call(&s, &format!("approvals/{id}/approve"), None).await;
    assert_eq!(st, 200);

    // The public terminate API refuses a finished instance, even with isSystem.
    let (st, e) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processInstances/terminate",
            json!({"processInstanceId": id, "isSystem": true, "remark": "撤销"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalidParameter")),
        "{e}"
    );

    let (st, e) = admin_call(
        &s,
        &format!("approvals/{id}/revoke"),
        Some(json!({"operator": "no-such-user"})),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    let (st, r) = admin_call(
        &s,
        &format!("approvals/{id}/revoke"),
        Some(json!({"operator": p[9], "remark": "发票作废，撤销报销"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (
            r["status"].as_str(),
            r["result"].as_str(),
            r["operator"].as_str()
        ),
        (Some("TERMINATED"), Some("agree"), Some(p[9].as_str()))
    );

    let inst = v1_instance(&s, &tok, &id).await;
    assert_eq!(
        (inst["status"].as_str(), inst["result"].as_str()),
        (Some("TERMINATED"), Some("agree"))
    );
    assert!(inst["finishTime"].is_string());
    let records = inst["operationRecords"].as_array().unwrap();
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "START_PROCESS_INSTANCE",
            "EXECUTE_TASK_NORMAL",
            "TERMINATE_PROCESS_INSTANCE"
        ]
    );
    assert_eq!(
        records[1]["result"], "AGREE",
        "the history still shows the approval"
    );
    assert_eq!(records[2]["userId"], p[9].as_str());
    assert_eq!(records[2]["remark"], "发票作废，撤销报销");
    let o = s
        .oapi(
            &tok,
            "/topapi/processinstance/get",
            json!({"process_instance_id": id}),
        )
        .await;
    assert_eq!(o["process_instance"]["status"], "TERMINATED");
    assert_eq!(o["process_instance"]["result"], "agree");
    assert_eq!(
        o["process_instance"]["operation_records"][2]["operation_type"],
        "TERMINATE_PROCESS_INSTANCE"
    );
    assert_eq!(
        instance_events(&s, &id).await,
        [
            "bpms_instance_change:start".to_owned(),
            format!("bpms_task_change:start:{}", p[1]),
            format!("bpms_task_change:finish:{}:agree", p[1]),
            "bpms_instance_change:finish:agree".to_owned(),
            "bpms_instance_change:terminate".to_owned(),
        ]
    );

    // The revoke event has the shape of a terminate through the v1.0 API.
    let other = create_expense(&s, &tok, &p[5], one.clone()).await;
    let (st, _) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processInstances/terminate",
            json!({"processInstanceId": other, "isSystem": false, "operatingUserId": p[5], "remark": "撤回"}),
        )
        .await;
    assert_eq!(st, 200);
    let ev = s.admin_get("events").await;
    let terminate_of = |which: &str| -> Value {
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["payload"]["processInstanceId"] == which && e["payload"]["type"] == "terminate"
            })
            .unwrap()
            .clone()
    };
    let (revoked, terminated) = (terminate_of(&id), terminate_of(&other));
    assert_eq!(revoked["event_type"], terminated["event_type"]);
    let keys =
        |e: &Value| -> Vec<String> { e["payload"].as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&revoked), keys(&terminated));
    assert!(revoked["payload"].get("result").is_none());

    // Default operator: the originator. Refusals: already revoked, running, refused, terminated.
    let (st, e) = admin_call(&s, &format!("approvals/{id}/revoke"), None).await;
    assert_eq!(st, 409, "{e}");
    let running = create_expense(&s, &tok, &p[5], one.clone()).await;
    let (st, e) = admin_call(&s, &format!("approvals/{running}/revoke"), None).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(v1_instance(&s, &tok, &running).await["status"], "RUNNING");
    let (st, _) = admin_call(&s, &format!("approvals/{running}/refuse"), None).await;
    assert_eq!(st, 200);
    let (st, _) = admin_call(&s, &format!("approvals/{running}/revoke"), None).await;
    assert_eq!(st, 409);
    let (st, _) = admin_call(&s, &format!("approvals/{other}/revoke"), None).await;
    assert_eq!(st, 409);
    let approved = create_expense(&s, &tok, &p[8], one).await;
    admin_call(&s, &format!("approvals/{approved}/approve"), None).await;
    let (st, r) = admin_call(&s, &format!("approvals/{approved}/revoke"), None).await;
    assert_eq!((st, r["operator"].as_str()), (200, Some(p[8].as_str())));

    // listids sees revoked instances as TERMINATED.
    let (st, v) = s.v1_post(&tok, "/v1.0/workflow/processes/instanceIds/query", json!({
        "processCode": EXPENSE, "startTime": 0, "nextToken": 0, "maxResults": 20, "statuses": ["TERMINATED"]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["result"]["list"], json!([id, other, approved]));
}

/// listids (§3.1 oapi, §3.2 v1.0): `statuses` (RUNNING / TERMINATED / COMPLETED, any mix)
/// and the time window against each instance's create time (both ends inclusive).
#[tokio::test]
async fn listids_statuses_and_create_time_window() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let p = people();
    let day = 86_400_000i64;
    let t0_secs = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let t0 = t0_secs * 1000;
    let one = json!([{"actionType": "NONE", "userIds": [p[1]]}]);
    let mut ids = Vec::new();
    for d in 0..3 {
        s.admin("clock", json!({"pin": t0_secs + d * 86_400})).await;
        let tok = s.token().await;
        ids.push(create_expense(&s, &tok, &p[5], one.clone()).await);
    }
    let tok = s.token().await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    admin_call(&s, &format!("approvals/{a}/approve"), None).await;
    let (st, _) = s
        .v1_post(
            &tok,
            "/v1.0/workflow/processInstances/terminate",
            json!({"processInstanceId": b, "isSystem": true, "remark": "x"}),
        )
        .await;
    assert_eq!(st, 200);
    let v1 = |body: Value| s.v1_post(&tok, "/v1.0/workflow/processes/instanceIds/query", body);
    let list = |statuses: Value, start: i64, end: Option<i64>| {
        let mut body = json!({"processCode": EXPENSE, "startTime": start, "nextToken": 0, "maxResults": 20, "statuses": statuses});
        if let Some(e) = end {
            body["endTime"] = json!(e);
        }
        let fut = v1(body);
        async move {
            let (st, v) = fut.await;
            assert_eq!(st, 200, "{v}");
            v["result"]["list"].clone()
        }
    };
    assert_eq!(list(json!(["RUNNING"]), 0, None).await, json!([c]));
    assert_eq!(list(json!(["COMPLETED"]), 0, None).await, json!([a]));
    assert_eq!(list(json!(["TERMINATED"]), 0, None).await, json!([b]));
    assert_eq!(
        list(json!(["RUNNING", "COMPLETED"]), 0, None).await,
        json!([a, c])
    );
    assert_eq!(list(json!([]), 0, None).await, json!([a, b, c]));
    // The window: create time within [startTime, endTime].
    assert_eq!(list(json!([]), t0 + day, None).await, json!([b, c]));
    assert_eq!(list(json!([]), t0 + day + 1, None).await, json!([c]));
    assert_eq!(list(json!([]), t0, Some(t0 + day)).await, json!([a, b]));
    assert_eq!(
        list(json!(["TERMINATED", "RUNNING"]), t0 + day, Some(t0 + day)).await,
        json!([b])
    );
    assert_eq!(list(json!([]), t0 + 3 * day, None).await, json!([]));
    // Refusals.
    let (st, e) = v1(json!({"processCode": EXPENSE, "startTime": 0, "nextToken": 0, "maxResults": 20, "statuses": ["DONE"]})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalidParameter")),
        "{e}"
    );
    let (st, e) =
        v1(json!({"processCode": EXPENSE, "startTime": 0, "nextToken": -1, "maxResults": 20}))
            .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalidNextToken")),
        "{e}"
    );
    let (st, e) = v1(json!({"processCode": EXPENSE, "nextToken": 0, "maxResults": 20})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalidInstanceListIdsStartTime")),
        "{e}"
    );
    let (st, e) = v1(json!({"processCode": EXPENSE, "startTime": t0, "endTime": t0 + 121 * day, "nextToken": 0, "maxResults": 20})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalidEndTime")),
        "{e}"
    );

    // oapi: the same window on start_time / end_time.
    let oapi = |body: Value| s.oapi(&tok, "/topapi/processinstance/listids", body);
    let r = oapi(json!({"process_code": EXPENSE, "start_time": t0 + day, "size": 20, "cursor": 0}))
        .await;
    assert_eq!(r["result"]["list"], json!([b, c]), "{r}");
    let r = oapi(json!({"process_code": EXPENSE, "start_time": (t0 + day).to_string(), "end_time": (t0 + day).to_string()})).await;
    assert_eq!(r["result"]["list"], json!([b]), "{r}");
    let r =
        oapi(json!({"process_code": EXPENSE, "start_time": t0, "end_time": t0 + 121 * day})).await;
    assert_eq!(r["errcode"], 400002, "{r}");
    let r = oapi(json!({"process_code": EXPENSE})).await;
    assert_eq!(r["errcode"], 40035, "{r}");
}
