//! Contacts, approvals, messages, robot, login and the failed-callback list against wiremock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dingtalk::approvals::{
    ActionType, ApproverStep, Decision, FieldValue, FormField, IdsQuery, NewInstance,
};
use dingtalk::contacts::{DepartmentInput, UserInput};
use dingtalk::login::AuthorizeRequest;
use dingtalk::messages::{Recipients, WorkMessage};
use dingtalk::robot::{RobotAt, RobotClient, RobotMessage};
use dingtalk::{
    Credentials, DeptId, DingTalkClient, DingTalkConfig, Error, MessageTaskId, TaskId, UnionId,
    UserId,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn setup() -> (MockServer, DingTalkClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/accessToken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"accessToken": "tok", "expireIn": 7200})),
        )
        .mount(&server)
        .await;
    let cfg = DingTalkConfig::new(
        "dingcorp000000000001",
        Credentials::new("dingsimappkey0000001", "s3cr3t"),
    )
    .with_agent_id(123456789)
    .with_bases(&server.uri(), &server.uri())
    .unwrap()
    .with_login_base("https://login.example.test")
    .unwrap();
    let client = DingTalkClient::new(cfg).unwrap();
    (server, client)
}

fn ok(result: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": "req"}))
}

async fn oapi(server: &MockServer, p: &str, body: Value, resp: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(p))
        .and(query_param("access_token", "tok"))
        .and(body_partial_json(body))
        .respond_with(resp)
        .expect(1..)
        .mount(server)
        .await;
}

#[tokio::test]
async fn department_tree_walk_from_root() {
    let (server, client) = setup().await;
    let sub = |id: i64, name: &str, parent: i64| json!({"dept_id": id, "name": name, "parent_id": parent, "create_dept_group": true, "auto_add_user": "true"});
    oapi(
        &server,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 1}),
        ok(json!([sub(2, "财务部", 1), sub(3, "研发中心", 1)])),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 2}),
        ok(json!([])),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 3}),
        ok(json!([sub(4, "平台组", 3), {"dept_id": "5", "name": "移动端组", "parent_id": "3"}])),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 4}),
        ok(json!([])),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 5}),
        ok(json!(null)),
    )
    .await;
    let tree = client.department_tree(DeptId::ROOT).await.unwrap();
    let names: Vec<&str> = tree.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["财务部", "研发中心", "平台组", "移动端组"]);
    assert_eq!(tree[3].parent_id, Some(DeptId(3)));
    assert_eq!(tree[0].auto_add_user, Some(true));

    oapi(
        &server,
        "/topapi/v2/department/listsubid",
        json!({"dept_id": 3}),
        ok(json!({"dept_id_list": [4, "5"]})),
    )
    .await;
    assert_eq!(
        client.department_list_sub_ids(DeptId(3)).await.unwrap(),
        [DeptId(4), DeptId(5)]
    );
    oapi(&server, "/topapi/v2/department/get", json!({"dept_id": 3}), ok(json!({"dept_id": 3, "name": "研发中心", "parent_id": 1, "member_count": "42", "dept_manager_userid_list": ["wangwu"], "outer_dept": false}))).await;
    let d = client.department_get(DeptId(3)).await.unwrap();
    assert_eq!(
        (d.member_count, d.dept_manager_userid_list.len()),
        (Some(42), 1)
    );
    assert_eq!(d.extra.get("outer_dept"), Some(&json!(false)));
}

#[tokio::test]
async fn users_by_department_pages_until_has_more_false() {
    let (server, client) = setup().await;
    let user = |i: usize| json!({"userid": format!("user{i:03}"), "name": format!("员工{i}"), "dept_id_list": [2], "leader": i == 0, "active": "true"});
    let page = |range: std::ops::Range<usize>, has_more: bool, next: Option<i64>| {
        let mut r = json!({"has_more": has_more, "list": range.map(user).collect::<Vec<_>>()});
        if let Some(n) = next {
            r["next_cursor"] = json!(n);
        }
        ok(r)
    };
    oapi(
        &server,
        "/topapi/v2/user/list",
        json!({"dept_id": 2, "cursor": 0, "size": 100}),
        page(0..100, true, Some(100)),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/user/list",
        json!({"dept_id": 2, "cursor": 100, "size": 100}),
        page(100..200, true, Some(200)),
    )
    .await;
    oapi(
        &server,
        "/topapi/v2/user/list",
        json!({"dept_id": 2, "cursor": 200, "size": 100}),
        page(200..230, false, None),
    )
    .await;
    let users = client.users_by_department(DeptId(2)).await.unwrap();
    assert_eq!(users.len(), 230);
    assert_eq!(users[229].name, "员工229");
    assert_eq!(users[0].leader, Some(true));
    assert_eq!(users[5].active, Some(true));
}

#[tokio::test]
async fn user_lookups_and_mutations() {
    let (server, client) = setup().await;
    oapi(&server, "/topapi/v2/user/get", json!({"userid": "zhangsan"}), ok(json!({
        "userid": "zhangsan", "unionid": "union-zs", "name": "张三", "mobile": "13800000000",
        "dept_id_list": "2,3", "hired_date": "1700000000000", "admin": 0, "title": "会计", "extension": "{\"工号\":\"A001\"}"
    }))).await;
    let u = client.user_get(&UserId::from("zhangsan")).await.unwrap();
    assert_eq!(
        (
            u.name.as_str(),
            u.dept_id_list.as_slice(),
            u.hired_date,
            u.admin
        ),
        ("张三", &[2, 3][..], Some(1_700_000_000_000), Some(false))
    );
    oapi(
        &server,
        "/topapi/v2/user/getbymobile",
        json!({"mobile": "13800000000"}),
        ok(json!({"userid": "zhangsan"})),
    )
    .await;
    assert_eq!(
        client.user_by_mobile("13800000000").await.unwrap().as_str(),
        "zhangsan"
    );
    oapi(
        &server,
        "/topapi/user/getbyunionid",
        json!({"unionid": "union-zs"}),
        ok(json!({"contact_type": 0, "userid": "zhangsan"})),
    )
    .await;
    assert_eq!(
        client
            .user_by_unionid(&UnionId::from("union-zs"))
            .await
            .unwrap()
            .userid
            .as_str(),
        "zhangsan"
    );
    oapi(
        &server,
        "/topapi/user/listid",
        json!({"dept_id": 2}),
        ok(json!({"userid_list": ["zhangsan", "lisi"]})),
    )
    .await;
    assert_eq!(
        client
            .user_ids_by_department(DeptId(2))
            .await
            .unwrap()
            .len(),
        2
    );

    oapi(
        &server,
        "/topapi/v2/user/create",
        json!({"name": "李四", "mobile": "13900000000", "dept_id_list": "2,3", "title": "出纳"}),
        ok(json!({"userid": "lisi", "unionId": "union-ls"})),
    )
    .await;
    let created = client
        .user_create(&UserInput {
            name: Some("李四".into()),
            mobile: Some("13900000000".into()),
            dept_id_list: Some(vec![DeptId(2), DeptId(3)]),
            title: Some("出纳".into()),
            ..UserInput::default()
        })
        .await
        .unwrap();
    assert_eq!(created.union_id, Some(UnionId::from("union-ls")));
    assert!(matches!(
        client.user_create(&UserInput::default()).await,
        Err(Error::Invalid(_))
    ));
    oapi(
        &server,
        "/topapi/v2/user/update",
        json!({"userid": "lisi", "title": "财务主管"}),
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
    )
    .await;
    client
        .user_update(&UserInput {
            userid: Some("lisi".into()),
            title: Some("财务主管".into()),
            ..UserInput::default()
        })
        .await
        .unwrap();
    oapi(
        &server,
        "/topapi/v2/user/delete",
        json!({"userid": "lisi"}),
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
    )
    .await;
    client.user_delete(&UserId::from("lisi")).await.unwrap();

    oapi(
        &server,
        "/topapi/v2/department/create",
        json!({"name": "审计部", "parent_id": 1}),
        ok(json!({"dept_id": 6})),
    )
    .await;
    let id = client
        .department_create(&DepartmentInput {
            name: Some("审计部".into()),
            parent_id: Some(DeptId::ROOT),
            ..DepartmentInput::default()
        })
        .await
        .unwrap();
    assert_eq!(id, DeptId(6));
    oapi(
        &server,
        "/topapi/v2/department/update",
        json!({"dept_id": 6, "name": "内审部", "dept_manager_userid_list": "zhangsan,lisi"}),
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0})),
    )
    .await;
    client
        .department_update(&DepartmentInput {
            dept_id: Some(DeptId(6)),
            name: Some("内审部".into()),
            dept_manager_userid_list: Some(vec!["zhangsan".into(), "lisi".into()]),
            ..DepartmentInput::default()
        })
        .await
        .unwrap();
    oapi(
        &server,
        "/topapi/v2/department/delete",
        json!({"dept_id": 6}),
        ResponseTemplate::new(200)
            .set_body_json(json!({"errcode": 60005, "errmsg": "部门中存在员工"})),
    )
    .await;
    let err = client.department_delete(DeptId(6)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Business { code, .. } if code == "60005"),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn throttling_quota_and_ip_ban_are_typed() {
    let (server, client) = setup().await;
    oapi(
        &server,
        "/topapi/v2/user/get",
        json!({"userid": "a"}),
        ResponseTemplate::new(200)
            .set_body_json(json!({"errcode": 90020, "errmsg": "本月调用量已用完"})),
    )
    .await;
    let e = client.user_get(&UserId::from("a")).await.unwrap_err();
    assert!(matches!(e, Error::QuotaExhausted { .. }) && !e.is_retryable());
    oapi(
        &server,
        "/topapi/v2/user/get",
        json!({"userid": "b"}),
        ResponseTemplate::new(200)
            .set_body_raw("<html><body>访问被拒绝</body></html>", "text/html"),
    )
    .await;
    let e = client.user_get(&UserId::from("b")).await.unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }) && e.retry_after().is_some());
    oapi(
        &server,
        "/topapi/v2/user/get",
        json!({"userid": "c"}),
        ResponseTemplate::new(200)
            .set_body_json(json!({"errcode": 60011, "errmsg": "没有调用该接口的权限"})),
    )
    .await;
    assert!(matches!(
        client.user_get(&UserId::from("c")).await.unwrap_err(),
        Error::PermissionDenied { .. }
    ));
    Mock::given(method("GET"))
        .and(path("/v1.0/workflow/processInstances"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "qps"}),
        ))
        .mount(&server)
        .await;
    let e = client.approval_get(&"x".into()).await.unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }) && e.is_retryable());
}

fn expense_form() -> Vec<FormField> {
    vec![
        FormField::text("报销事由", "北京出差"),
        FormField::multi_select("报销类别", ["差旅", "餐费"]),
        FormField::date_range(
            ["开始时间", "结束时间"],
            "2024-05-01 09:00",
            "2024-05-03 18:00",
        ),
        FormField::table(
            "费用明细",
            vec![vec![
                FormField::text("费用类型", "交通费"),
                FormField::text("金额（元）", "120.50"),
            ]],
        ),
    ]
}

#[tokio::test]
async fn approvals_oapi() {
    let (server, client) = setup().await;
    let mut req = NewInstance::new("PROC-FF6Y4BE1N2-EXPENSE", "zhangsan", None, expense_form());
    req.approvers = vec![ApproverStep {
        action_type: ActionType::Or,
        user_ids: vec!["lisi".into(), "wangwu".into()],
    }];
    req.cc_list = vec!["zhaoliu".into()];
    Mock::given(method("POST"))
        .and(path("/topapi/processinstance/create"))
        .and(body_json(json!({
            "process_code": "PROC-FF6Y4BE1N2-EXPENSE", "originator_user_id": "zhangsan", "dept_id": -1,
            "approvers_v2": [{"task_action_type": "OR", "user_ids": ["lisi", "wangwu"]}],
            "cc_list": "zhaoliu", "cc_position": "FINISH",
            "form_component_values": [
                {"name": "报销事由", "value": "北京出差"},
                {"name": "报销类别", "value": "[\"差旅\",\"餐费\"]"},
                {"name": "[\"开始时间\",\"结束时间\"]", "value": "[\"2024-05-01 09:00\",\"2024-05-03 18:00\"]"},
                {"name": "费用明细", "value": "[[{\"name\":\"费用类型\",\"value\":\"交通费\"},{\"name\":\"金额（元）\",\"value\":\"120.50\"}]]"}
            ]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok", "process_instance_id": "inst-001", "request_id": "r"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client.approval_create_oapi(&req).await.unwrap().as_str(),
        "inst-001"
    );

    oapi(&server, "/topapi/processinstance/get", json!({"process_instance_id": "inst-001"}), ResponseTemplate::new(200).set_body_json(json!({
        "errcode": 0, "process_instance": {
            "title": "张三提交的费用报销", "status": "COMPLETED", "result": "agree", "business_id": "202405010001",
            "originator_userid": "zhangsan", "originator_dept_id": "-1", "create_time": "2024-05-01 10:00:00",
            "form_component_values": [{"name": "费用明细", "value": "[[{\"name\":\"费用类型\",\"value\":\"交通费\"}]]", "component_type": "TableField", "id": "TableField-1"}],
            "tasks": [{"userid": "lisi", "task_status": "COMPLETED", "task_result": "AGREE", "taskid": "61234", "activity_id": "a1"}],
            "operation_records": [{"userid": "lisi", "operation_type": "EXECUTE_TASK_NORMAL", "operation_result": "AGREE", "remark": "同意"}]
        }
    }))).await;
    let p = client.approval_get_oapi(&"inst-001".into()).await.unwrap();
    assert!(p.is_approved());
    match p.field("费用明细").unwrap().typed() {
        FieldValue::Table(rows) => assert_eq!(rows[0][0].value, FieldValue::Text("交通费".into())),
        other => panic!("{other:?}"),
    }
    oapi(&server, "/topapi/processinstance/listids", json!({"process_code": "PROC-FF6Y4BE1N2-EXPENSE", "cursor": 0, "size": 20, "userid_list": "zhangsan"}),
        ok(json!({"list": ["inst-001", "inst-002"], "next_cursor": 20}))).await;
    let q = IdsQuery {
        statuses: Vec::new(),
        process_code: "PROC-FF6Y4BE1N2-EXPENSE".into(),
        start_time: 1_714_500_000_000,
        end_time: None,
        user_ids: vec!["zhangsan".into()],
        size: 50,
    };
    let page = client.approval_list_ids_oapi(&q, 0).await.unwrap();
    assert_eq!((page.ids.len(), page.next.as_deref()), (2, Some("20")));
}

#[tokio::test]
async fn approvals_v1() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances"))
        .and(header("x-acs-dingtalk-access-token", "tok"))
        .and(body_partial_json(json!({"processCode": "PROC-LEAVE", "originatorUserId": "lisi", "deptId": 3,
            "formComponentValues": [{"name": "请假类型", "value": "年假"}, {"name": "[\"开始时间\",\"结束时间\"]", "value": "[\"2024-06-01\",\"2024-06-03\"]"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"instanceId": "inst-v1"})))
        .expect(1)
        .mount(&server)
        .await;
    let req = NewInstance::new(
        "PROC-LEAVE",
        "lisi",
        Some(DeptId(3)),
        vec![
            FormField::text("请假类型", "年假"),
            FormField::date_range(["开始时间", "结束时间"], "2024-06-01", "2024-06-03"),
        ],
    );
    assert_eq!(
        client.approval_create(&req).await.unwrap().as_str(),
        "inst-v1"
    );

    Mock::given(method("GET"))
        .and(path("/v1.0/workflow/processInstances"))
        .and(query_param("processInstanceId", "inst-v1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": "true", "result": {
            "title": "李四提交的请假", "status": "RUNNING", "originatorUserId": "lisi", "createTime": "2024-05-31T02:00Z",
            "formComponentValues": [{"name": "请假类型", "value": "年假", "componentType": "DDSelectField"}],
            "tasks": [{"taskId": 88001, "userId": "wangwu", "status": "RUNNING", "result": "NONE"}]
        }})))
        .mount(&server)
        .await;
    let p = client.approval_get(&"inst-v1".into()).await.unwrap();
    assert_eq!(
        (p.title.as_str(), p.tasks[0].task_id),
        ("李四提交的请假", Some(TaskId(88001)))
    );

    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances/execute"))
        .and(body_json(json!({"processInstanceId": "inst-v1", "taskId": 88001, "actionerUserId": "wangwu", "result": "agree", "remark": "同意，注意休息"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": true, "success": true})))
        .expect(1)
        .mount(&server)
        .await;
    client
        .approval_execute(
            &"inst-v1".into(),
            TaskId(88001),
            &"wangwu".into(),
            Decision::Agree,
            "同意，注意休息",
        )
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances/terminate"))
        .and(body_partial_json(
            json!({"processInstanceId": "inst-v1", "isSystem": false, "operatingUserId": "lisi"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": true, "success": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    client
        .approval_terminate(&"inst-v1".into(), Some(&"lisi".into()), "撤销")
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processes/instanceIds/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"result": {"list": ["inst-v1"], "nextToken": ""}, "success": true}),
        ))
        .mount(&server)
        .await;
    let q = IdsQuery {
        statuses: Vec::new(),
        process_code: "PROC-LEAVE".into(),
        start_time: 1,
        end_time: Some(2),
        user_ids: vec![],
        size: 20,
    };
    let page = client.approval_list_ids(&q, 0).await.unwrap();
    assert_eq!((page.ids.len(), page.next), (1, None));
    Mock::given(method("GET"))
        .and(path("/v1.0/workflow/forms/schemas/processCodes"))
        .and(query_param("processCode", "PROC-LEAVE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {"name": "请假", "formCode": "PROC-LEAVE", "schemaContent": {"title": "请假", "items": [
            {"componentName": "DDSelectField", "props": {"id": "DDSelectField-1", "label": "请假类型", "required": true, "options": ["年假", "事假"]}},
            {"componentName": "TableField", "props": {"id": "TableField-1", "label": "明细"}, "children": [{"componentName": "MoneyField", "props": {"label": "金额"}}]}
        ]}}})))
        .mount(&server)
        .await;
    let schema = client
        .approval_form_schema(&"PROC-LEAVE".into())
        .await
        .unwrap();
    assert_eq!(schema.schema_content.items[0].label(), Some("请假类型"));
    assert!(schema.schema_content.items[0].required());
    assert_eq!(
        schema.schema_content.items[1].children[0].label(),
        Some("金额")
    );
}

/// `approval_add_comment` sends exactly `{processInstanceId, text, commentUserId}` (ALI-SDK
/// `AddProcessInstanceComment`); a body that differs is not served by the mock and fails; an
/// answer with `result: false` is a business error; a v1.0 400 keeps its code.
#[tokio::test]
async fn approval_comment_v1() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances/comments"))
        .and(header("x-acs-dingtalk-access-token", "tok"))
        .and(body_json(json!({
            "processInstanceId": "inst-v1", "text": "已同步至金蝶：FYBX000001", "commentUserId": "lisi",
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": true, "success": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    client
        .approval_add_comment(
            &"inst-v1".into(),
            "已同步至金蝶：FYBX000001",
            &"lisi".into(),
        )
        .await
        .unwrap();
    // A wrong body (another text, another user) does not match the mock: it must fail.
    let e = client
        .approval_add_comment(&"inst-v1".into(), "别的内容", &"lisi".into())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
    let e = client
        .approval_add_comment(
            &"inst-v1".into(),
            "已同步至金蝶：FYBX000001",
            &"wangwu".into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");

    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances/comments"))
        .and(body_partial_json(
            json!({"processInstanceId": "inst-false"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": false, "success": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = client
        .approval_add_comment(&"inst-false".into(), "评论", &"lisi".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Business { code, .. } if code == "success=false"),
        "{e:?}"
    );

    Mock::given(method("POST"))
        .and(path("/v1.0/workflow/processInstances/comments"))
        .and(body_partial_json(json!({"processInstanceId": "inst-gone"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "processInstanceNotExist", "message": "审批实例不存在", "requestid": "r"})))
        .expect(1)
        .mount(&server)
        .await;
    let e = client
        .approval_add_comment(&"inst-gone".into(), "评论", &"lisi".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Business { code, .. } if code == "processInstanceNotExist"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn work_notifications() {
    let (server, client) = setup().await;
    oapi(&server, "/topapi/message/corpconversation/asyncsend_v2",
        json!({"agent_id": 123456789, "userid_list": "zhangsan,lisi", "msg": {"msgtype": "markdown", "markdown": {"title": "库存预警", "text": "### 物料 A001 低于安全库存"}}}),
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "task_id": 256271667526u64, "request_id": "r"}))).await;
    let task = client
        .send_work_notification(
            &Recipients::users(["zhangsan", "lisi"]),
            &WorkMessage::Markdown {
                title: "库存预警".into(),
                text: "### 物料 A001 低于安全库存".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(task, MessageTaskId(256_271_667_526));
    oapi(
        &server,
        "/topapi/message/corpconversation/getsendprogress",
        json!({"task_id": 256271667526u64}),
        ResponseTemplate::new(200).set_body_json(
            json!({"errcode": 0, "progress": {"progress_in_percent": "100", "status": 2}}),
        ),
    )
    .await;
    let p = client.work_notification_progress(task).await.unwrap();
    assert_eq!((p.progress_in_percent, p.status), (100, 2));
    oapi(&server, "/topapi/message/corpconversation/getsendresult", json!({"task_id": 256271667526u64}),
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "send_result": {"read_user_id_list": ["zhangsan"], "forbidden_list": [{"code": "143106", "count": 1, "userid": "lisi"}]}}))).await;
    let r = client.work_notification_result(task).await.unwrap();
    assert_eq!(r.read_user_id_list, ["zhangsan"]);
    assert_eq!(r.forbidden_list[0].code, "143106");
    assert!(matches!(
        client
            .send_work_notification(&Recipients::default(), &WorkMessage::Text("x".into()))
            .await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn robot_send_is_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/robot/send"))
        .and(query_param("access_token", "dummytoken0001"))
        .and(query_param("timestamp", "1700000000000"))
        .and(query_param("sign", "+8WOOUUcTkFRyfCevQaISh9EUbkxaatnd6MLtL7dAY8="))
        .and(body_json(json!({"msgtype": "text", "text": {"content": "库存预警：物料 A001"}, "at": {"atUserIds": ["zhangsan"]}, "msgUuid": "m-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})))
        .expect(1)
        .mount(&server)
        .await;
    let robot = RobotClient::new(
        "dummytoken0001",
        Some("SEC0000000000000000000000000000000000000000000000000000000000000000".into()),
    )
    .unwrap()
    .with_base(&server.uri())
    .unwrap();
    let msg = RobotMessage::text("库存预警：物料 A001")
        .with_at(RobotAt {
            at_user_ids: vec!["zhangsan".into()],
            ..RobotAt::default()
        })
        .with_msg_uuid("m-1");
    robot.send_at(&msg, 1_700_000_000_000).await.unwrap();

    let throttled = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 410100, "errmsg": "send too fast"})),
        )
        .mount(&throttled)
        .await;
    let robot = RobotClient::new("t", None)
        .unwrap()
        .with_base(&throttled.uri())
        .unwrap();
    let e = robot
        .send(&RobotMessage::markdown("标题", "内容"))
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(600)));
}

#[tokio::test]
async fn login_flows() {
    let (server, client) = setup().await;
    oapi(&server, "/topapi/v2/user/getuserinfo", json!({"code": "authcode-1"}), ok(json!({"userid": "zhangsan", "unionid": "union-zs", "name": "张三", "sys": false, "sys_level": 0}))).await;
    let u = client.user_by_auth_code("authcode-1").await.unwrap();
    assert_eq!((u.userid.as_str(), u.sys_level), ("zhangsan", Some(0)));
    oapi(
        &server,
        "/topapi/v2/user/getuserinfo",
        json!({"code": "used"}),
        ResponseTemplate::new(200)
            .set_body_json(json!({"errcode": 40078, "errmsg": "不存在的临时授权码"})),
    )
    .await;
    assert!(matches!(
        client.user_by_auth_code("used").await,
        Err(Error::Business { .. })
    ));

    let url = client.authorize_url(&AuthorizeRequest::new(
        "https://hub.example.com/sso/callback?x=1",
        "st 1",
    ));
    assert_eq!(
        url,
        "https://login.example.test/oauth2/auth?redirect_uri=https%3A%2F%2Fhub.example.com%2Fsso%2Fcallback%3Fx%3D1&response_type=code&client_id=dingsimappkey0000001&scope=openid&state=st%201&prompt=consent"
    );

    Mock::given(method("POST"))
        .and(path("/v1.0/oauth2/userAccessToken"))
        .and(body_json(json!({"clientId": "dingsimappkey0000001", "clientSecret": "s3cr3t", "code": "web-code", "grantType": "authorization_code"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accessToken": "user-tok", "refreshToken": "ref", "expireIn": 7200, "corpId": "dingcorp000000000001"})))
        .mount(&server)
        .await;
    let ut = client.user_access_token("web-code").await.unwrap();
    assert_eq!(ut.expire_in, 7200);
    Mock::given(method("GET"))
        .and(path("/v1.0/contact/users/me"))
        .and(header("x-acs-dingtalk-access-token", "user-tok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"nick": "张三", "unionId": "union-zs", "openId": "o1", "mobile": "13800000000", "stateCode": "86"})))
        .mount(&server)
        .await;
    let me = client.user_me(&ut).await.unwrap();
    assert_eq!(
        (me.nick.as_deref(), me.union_id.as_str()),
        (Some("张三"), "union-zs")
    );
}

#[tokio::test]
async fn failed_callback_list() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/call_back/get_call_back_failed_result"))
        .and(query_param("access_token", "tok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok", "has_more": false, "failed_list": [
            {"call_back_tag": "user_add_org", "event_time": 1700000000000u64, "corpid": "dingcorp000000000001", "user_add_org": {"userid": ["wangwu"]}},
            {"call_back_tag": "bpms_instance_change", "event_time": "1700000000001", "bpms_instance_change": {"processInstanceId": "inst-001", "title": "张三提交的费用报销", "result": "agree"}}
        ]})))
        .mount(&server)
        .await;
    let r = client.failed_callbacks().await.unwrap();
    assert!(!r.has_more);
    assert_eq!(r.failed_list.len(), 2);
    assert_eq!(r.failed_list[0].data().unwrap()["userid"][0], "wangwu");
    assert_eq!(r.failed_list[1].event_time, Some(1_700_000_000_001));
    assert_eq!(
        r.failed_list[1].data().unwrap()["title"],
        "张三提交的费用报销"
    );
}
