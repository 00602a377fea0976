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
