//! The client against wiremock: signature headers on the wire, the shared single-flight
//! session, re-login once on MsgCode 1, MsgCode 14 through the pacer, every operation's shape,
//! per-row BatchSave results, paged queries and SSO logout. Fixtures use Chinese text.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use kingdee::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const DFS: &str = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService";
const LOGIN_BY_SIGN: &str =
    "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign.common.kdsvc";

fn vectors() -> Value {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/kingdee.json"
    ));
    serde_json::from_str(text).unwrap()
}

fn op_path(op: &str) -> String {
    format!("{DFS}.{op}.common.kdsvc")
}

fn config(server: &MockServer, auth: AuthMode) -> KingdeeConfig {
    let mut c = KingdeeConfig::new(
        &format!("{}/k3cloud/", server.uri()),
        "65f0a1b2c3d4e5",
        "webapi",
        "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned().into(),
    )
    .unwrap()
    .with_auth(auth);
    c.throttle_backoff = Duration::from_millis(1);
    c
}

fn client(server: &MockServer, auth: AuthMode) -> KingdeeClient {
    KingdeeClient::builder(config(server, auth))
        .clock(Arc::new(FixedClock(1_700_000_000)))
        .build()
        .unwrap()
}

fn ok_status() -> Value {
    json!({"Result":{"ResponseStatus":{"IsSuccess":true,"Errors":[],"SuccessEntitys":[{"Id":100123,"Number":"BM0001","DIndex":0}],"SuccessMessages":[],"MsgCode":0},"Id":100123,"Number":"BM0001","NeedReturnData":[{}]}})
}

fn lost_status() -> Value {
    json!({"Result":{"ResponseStatus":{"ErrorCode":500,"IsSuccess":false,"Errors":[{"FieldName":null,"Message":"会话信息已丢失，请重新登录","DIndex":0}],"SuccessEntitys":[],"SuccessMessages":[],"MsgCode":1}}})
}

fn login_ok(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .append_header("Set-Cookie", format!("kdservice-sessionid={sid}; path=/").as_str())
        .append_header("Set-Cookie", "ASP.NET_SessionId=aspnet-1; path=/; HttpOnly")
        .set_body_json(json!({"Message":null,"MessageCode":"CheckPasswordPolicy","LoginResultType":1,
            "KDSVCSessionId":sid,"IsSuccessByAPI":true,"Context":{"UserName":"webapi","SessionId":sid}}))
}

fn department() -> Model {
    Model::new()
        .field("FName", "研发部")
        .reference("FParentID", "BM0000")
        .field("FDescription", "部门 名称")
}

/// A pacer that records what the client told it.
#[derive(Default)]
struct RecordingPacer {
    events: Mutex<Vec<String>>,
}

#[async_trait]
impl limits::Pacer for RecordingPacer {
    async fn acquire(&self, group: &str) -> limits::Permit {
        self.events.lock().unwrap().push(format!("acquire:{group}"));
        limits::Permit::free()
    }
    fn throttled(&self, group: &str, _retry_after: Option<Duration>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("throttled:{group}"));
    }
    fn succeeded(&self, group: &str) {
        self.events
            .lock()
            .unwrap()
            .push(format!("succeeded:{group}"));
    }
}

impl RecordingPacer {
    fn count(&self, event: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == event)
            .count()
    }
}

#[tokio::test]
async fn signature_mode_sends_the_vector_headers_and_never_logs_in() {
    let server = MockServer::start().await;
    let v = vectors();
    let expected = &v["sdk_signature_headers"][0]["headers"];
    let mut mock = Mock::given(method("POST")).and(path(op_path("Save")));
    for name in [
        "X-Api-ClientID",
        "X-Api-Auth-Version",
        "x-api-timestamp",
        "x-api-nonce",
        "x-api-signheaders",
        "X-Api-Signature",
        "X-Kd-Appkey",
        "X-Kd-Appdata",
        "X-Kd-Signature",
        "Content-Type",
        "Accept-Charset",
    ] {
        // Compared as raw text: wiremock's `header` matcher splits values at commas.
        let want = expected[name].as_str().unwrap().to_owned();
        mock = mock.and(move |req: &Request| {
            req.headers.get(name).and_then(|v| v.to_str().ok()) == Some(want.as_str())
        });
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(ok_status()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LOGIN_BY_SIGN))
        .respond_with(login_ok("x"))
        .expect(0)
        .mount(&server)
        .await;

    let c = client(&server, AuthMode::SignatureHeaders);
    let r = c
        .save(
            &FormId::new("BD_Department"),
            &department(),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.first_id(), Some(&EntityId::new("100123")));
    assert_eq!(r.first_number(), Some(&BillNo::new("BM0001")));
    assert_eq!(c.session().login_count(), 0);
}

#[tokio::test]
async fn twenty_concurrent_calls_share_one_login() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(LOGIN_BY_SIGN))
        .and(body_string_contains("\"1700000000\""))
        .respond_with(login_ok("S1").set_delay(Duration::from_millis(150)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(op_path("Audit")))
        .and(header("kdservice-sessionid", "S1"))
        .respond_with(|req: &Request| {
            let cookie = req
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if cookie.contains("kdservice-sessionid=S1")
                && cookie.contains("ASP.NET_SessionId=aspnet-1")
            {
                ResponseTemplate::new(200).set_body_json(ok_status())
            } else {
                ResponseTemplate::new(400)
            }
        })
        .expect(20)
        .mount(&server)
        .await;

    let c = client(&server, AuthMode::LoginBySign);
    let form = FormId::new("ER_ExpReimbursement");
    let calls = (0..20).map(|i| {
        let c = c.clone();
        let form = form.clone();
        tokio::spawn(async move {
            c.audit(
                &form,
                &Selection::numbers([BillNo::new(format!("FYBXD{i:03}"))]),
            )
            .await
        })
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(c.session().login_count(), 1);
    assert_eq!(c.session().session_id().await.as_deref(), Some("S1"));
}

#[tokio::test]
async fn session_lost_mid_run_logs_in_once_and_retries_once() {
    let server = MockServer::start().await;
    let logins = Arc::new(AtomicUsize::new(0));
    let l = logins.clone();
    Mock::given(path(LOGIN_BY_SIGN))
        .respond_with(move |_: &Request| {
            let n = l.fetch_add(1, Ordering::SeqCst) + 1;
            login_ok(&format!("S{n}"))
        })
        .expect(2)
        .mount(&server)
        .await;
    // S1 works until the server "restarts"; after that only S2 works.
    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = restarted.clone();
    Mock::given(path(op_path("Save")))
        .respond_with(move |req: &Request| {
            let sid = req
                .headers
                .get("kdservice-sessionid")
                .and_then(|v| v.to_str().ok());
            let live = match sid {
                Some("S1") => !r.load(Ordering::SeqCst),
                Some("S2") => true,
                _ => false,
            };
            let body = if live { ok_status() } else { lost_status() };
            ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&server)
        .await;

    let c = client(&server, AuthMode::LoginBySign);
    let form = FormId::new("BD_Department");
    for _ in 0..5 {
        c.save(&form, &department(), &SaveOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(c.session().login_count(), 1);
    restarted.store(true, Ordering::SeqCst);
    // Ten callers hit the lost session together: one re-login serves them all.
    let calls = (0..10).map(|_| {
        let c = c.clone();
        let form = form.clone();
        tokio::spawn(async move { c.save(&form, &department(), &SaveOptions::default()).await })
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(logins.load(Ordering::SeqCst), 2);
    assert_eq!(c.session().login_count(), 2);
    assert_eq!(c.session().session_id().await.as_deref(), Some("S2"));
    let requests = server.received_requests().await.unwrap();
    let saves = requests
        .iter()
        .filter(|r| r.url.path() == op_path("Save"))
        .count();
    assert_eq!(
        saves,
        5 + 20,
        "after the restart each caller: one lost attempt, one retry"
    );
}

#[tokio::test]
async fn session_lost_twice_is_an_error_after_one_retry() {
    let server = MockServer::start().await;
    Mock::given(path(LOGIN_BY_SIGN))
        .respond_with(login_ok("S1"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(op_path("ExecuteBillQuery")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([[lost_status()]])))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::LoginBySign);
    let err = c
        .execute_bill_query(&QueryRequest::new("BD_Empinfo", ["FName"]))
        .await
        .unwrap_err();
    assert!(err.is_session_lost(), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.msg_code(), Some(MsgCode::SessionLost));
}

#[tokio::test]
async fn call_limit_goes_through_the_pacer_then_succeeds() {
    let server = MockServer::start().await;
    let limited = json!({"Result":{"ResponseStatus":{"IsSuccess":false,"MsgCode":14,"ErrorCode":500,
        "Errors":[{"Message":"调用限制"}]}}});
    Mock::given(path(op_path("Submit")))
        .respond_with(ResponseTemplate::new(200).set_body_json(limited))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path(op_path("Submit")))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_status()))
        .mount(&server)
        .await;
    let pacer = Arc::new(RecordingPacer::default());
    let c = KingdeeClient::builder(config(&server, AuthMode::SignatureHeaders))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    c.submit(
        &FormId::new("ER_ExpReimbursement"),
        &Selection::numbers([BillNo::new("FYBXD1")]),
    )
    .await
    .unwrap();
    assert_eq!(pacer.count("acquire:operate"), 2);
    assert_eq!(pacer.count("throttled:operate"), 1);
    assert_eq!(pacer.count("succeeded:operate"), 1);
}

#[tokio::test]
async fn call_limit_that_persists_is_a_retryable_error() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("Save")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"Result":{"ResponseStatus":{"IsSuccess":false,"MsgCode":14}}}),
            ),
        )
        .expect(3)
        .mount(&server)
        .await;
    let pacer = Arc::new(RecordingPacer::default());
    let c = KingdeeClient::builder(config(&server, AuthMode::SignatureHeaders))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    let err = c
        .save(
            &FormId::new("BD_Department"),
            &department(),
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_throttled() && err.is_retryable());
    assert_eq!(pacer.count("throttled:save"), 3);
}

#[tokio::test]
async fn gateway_503_tells_the_pacer_and_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("View")))
        .respond_with(
            ResponseTemplate::new(503)
                .append_header("Retry-After", "3")
                .set_body_string("busy"),
        )
        .mount(&server)
        .await;
    let pacer = Arc::new(RecordingPacer::default());
    let c = KingdeeClient::builder(config(&server, AuthMode::SignatureHeaders))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    let err = c
        .view(&FormId::new("BD_Empinfo"), &ViewRequest::by_number("E001"))
        .await
        .unwrap_err();
    assert!(matches!(err, KingdeeError::Http { status: 503, .. }));
    assert!(err.is_retryable());
    assert_eq!(pacer.count("throttled:query"), 1);
}

#[tokio::test]
async fn batch_save_reports_rows_and_keeps_chinese_model_order() {
    let server = MockServer::start().await;
    let expected_body = r#"{"parameters":["BD_Empinfo",{"BatchCount":1,"Model":[{"FName":"张伟","FStaffNumber":"E001","FDeptId":{"FNumber":"BM0001"}},{"FName":"李娜","FStaffNumber":"E002","FDeptId":{"FNumber":"不存在"}},{"FName":"王芳","FStaffNumber":"E003","FDeptId":{"FNumber":"BM0001"}}]}]}"#;
    Mock::given(path(op_path("BatchSave")))
        .and(wiremock::matchers::body_string(expected_body))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Result":{"ResponseStatus":{
            "ErrorCode":500,"IsSuccess":false,"MsgCode":9,
            "Errors":[{"FieldName":"FDeptId","Message":"字段“部门”的值“不存在”在基础资料中不存在","DIndex":1}],
            "SuccessEntitys":[{"Id":201,"Number":"E001","DIndex":0},{"Id":203,"Number":"E003","DIndex":2}],
            "SuccessMessages":[]}}})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let emp = |name: &str, no: &str, dept: &str| {
        Model::new()
            .field("FName", name)
            .field("FStaffNumber", no)
            .reference("FDeptId", dept)
    };
    let report = c
        .batch_save(
            &FormId::new("BD_Empinfo"),
            &[
                emp("张伟", "E001", "BM0001"),
                emp("李娜", "E002", "不存在"),
                emp("王芳", "E003", "BM0001"),
            ],
            Some(1),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    assert!(!report.all_succeeded());
    assert!(!report.batch_relative);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].d_index, 1);
    assert_eq!(
        report.failed[0].errors[0].message.as_deref(),
        Some("字段“部门”的值“不存在”在基础资料中不存在")
    );
    let saved: Vec<_> = report
        .succeeded
        .iter()
        .map(|s| (s.d_index, s.number.clone()))
        .collect();
    assert_eq!(
        saved,
        [
            (Some(0), Some(BillNo::new("E001"))),
            (Some(2), Some(BillNo::new("E003")))
        ]
    );
    assert_eq!(report.status.msg_code, MsgCode::NotFound);
}

#[tokio::test]
async fn batch_save_without_row_detail_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("BatchSave")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Result":{"ResponseStatus":{
            "IsSuccess":false,"MsgCode":2,"Errors":[{"Message":"没有 员工 的新增权限"}]}}})),
        )
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let err = c
        .batch_save(
            &FormId::new("BD_Empinfo"),
            &[department()],
            None,
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NoPermission));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("没有 员工 的新增权限"));
}

#[tokio::test]
async fn query_rows_pages_by_start_row_and_limit() {
    let server = MockServer::start().await;
    let names = ["部门一", "部门二", "部门三", "部门四", "部门五"];
    Mock::given(path(op_path("ExecuteBillQuery")))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let data = &body["parameters"][0];
            assert_eq!(data["FormId"], "BD_Department");
            assert_eq!(data["TopRowCount"], 0);
            let start = usize::try_from(data["StartRow"].as_u64().unwrap()).unwrap();
            let limit = usize::try_from(data["Limit"].as_u64().unwrap()).unwrap();
            let rows: Vec<Value> = names
                .iter()
                .enumerate()
                .skip(start)
                .take(limit)
                .map(|(i, n)| json!([format!("BM{i:04}"), n]))
                .collect();
            ResponseTemplate::new(200).set_body_json(rows)
        })
        .mount(&server)
        .await;
    let mut cfg = config(&server, AuthMode::SignatureHeaders);
    cfg.query_page_limit = 2;
    let c = KingdeeClient::new(cfg).unwrap();
    let q = QueryRequest::new("BD_Department", ["FNumber", "FName"]).filter("FForbidStatus = 'A'");
    let rows: Vec<Vec<Value>> = c.query_rows(q.clone()).try_collect().await.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4], vec![json!("BM0004"), json!("部门五")]);
    let calls = server.received_requests().await.unwrap().len();
    assert_eq!(calls, 3, "pages of 2, 2 and 1");

    let top: Vec<Vec<Value>> = c.query_rows(q.top(3)).try_collect().await.unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[2][1], json!("部门三"));
}

#[tokio::test]
async fn query_errors_in_the_wrapped_form() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("ExecuteBillQuery")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([[{"Result":{"ResponseStatus":{
            "ErrorCode":500,"IsSuccess":false,"MsgCode":4,
            "Errors":[{"FieldName":"","Message":"元数据中标识为FMobile的字段不存在","DIndex":0}]}}}]])))
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let err: KingdeeError = c
        .query_rows(QueryRequest::new("BD_Empinfo", ["FMobile"]))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::Exception));
    assert!(
        err.to_string()
            .contains("元数据中标识为FMobile的字段不存在")
    );
}

#[tokio::test]
async fn bill_query_view_and_business_info() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("BillQuery")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"FNumber":"E001","FName":"张伟"}])),
        )
        .mount(&server)
        .await;
    Mock::given(path(op_path("View")))
        .and(body_string_contains(r#"{"CreateOrgId":0,"Number":"FYBXD001"}"#))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Result":{
            "ResponseStatus":{"IsSuccess":true},"Result":{"Id":100123,"BillNo":"FYBXD001","DocumentStatus":"C","FCausa":"费用报销 差旅"}}})))
        .mount(&server)
        .await;
    Mock::given(path(op_path("QueryBusinessInfo")))
        .and(body_string_contains(r#"{"parameters":[{"FormId":"SAL_SaleOrder"}]}"#))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Result":{"ResponseStatus":{"IsSuccess":true},"NeedReturnData":{"Name":"销售订单"}}})))
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let rows = c
        .bill_query(&QueryRequest::new("BD_Empinfo", ["FNumber", "FName"]))
        .await
        .unwrap();
    assert_eq!(rows[0]["FName"], "张伟");
    let rec = c
        .view(
            &FormId::new("ER_ExpReimbursement"),
            &ViewRequest::by_number("FYBXD001"),
        )
        .await
        .unwrap();
    assert_eq!(rec["FCausa"], "费用报销 差旅");
    let info = c
        .query_business_info(&FormId::new("SAL_SaleOrder"))
        .await
        .unwrap();
    assert_eq!(info["Result"]["NeedReturnData"]["Name"], "销售订单");
}

#[tokio::test]
async fn operations_send_positional_parameters() {
    let server = MockServer::start().await;
    let cases: [(&str, &str); 7] = [
        (
            "Draft",
            r#"{"parameters":["ER_ExpReimbursement",{"Model":{"FName":"研发部","FParentID":{"FNumber":"BM0000"},"FDescription":"部门 名称"}}]}"#,
        ),
        (
            "UnAudit",
            r#"{"parameters":["ER_ExpReimbursement",{"CreateOrgId":0,"Numbers":["FYBXD001"],"Ids":""}]}"#,
        ),
        (
            "Delete",
            r#"{"parameters":["ER_ExpReimbursement",{"CreateOrgId":0,"Numbers":[],"Ids":"11,12"}]}"#,
        ),
        (
            "ExcuteOperation",
            r#"{"parameters":["BD_Empinfo","Forbid",{"CreateOrgId":0,"Numbers":["E001"],"Ids":""}]}"#,
        ),
        (
            "Push",
            r#"{"parameters":["ER_ExpenseRequest",{"Ids":"","Numbers":["FYSQ001"],"EntryIds":"","TargetFormId":"ER_ExpReimbursement"}]}"#,
        ),
        (
            "WorkflowAudit",
            r#"{"parameters":[{"FormId":"ER_ExpReimbursement","Ids":"","Numbers":["FYBXD001"],"UserName":"张伟","ApprovalType":1}]}"#,
        ),
        (
            "Save",
            r#"{"parameters":["BD_Department",{"NeedReturnFields":["FNumber"],"Model":{"FName":"研发部","FParentID":{"FNumber":"BM0000"},"FDescription":"部门 名称"}}]}"#,
        ),
    ];
    for (op, body) in cases {
        Mock::given(path(op_path(op)))
            .and(wiremock::matchers::body_string(body))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_status()))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server, AuthMode::SignatureHeaders);
    let er = FormId::new("ER_ExpReimbursement");
    let no = Selection::numbers([BillNo::new("FYBXD001")]);
    c.draft(&er, &department(), &SaveOptions::default())
        .await
        .unwrap();
    c.unaudit(&er, &no).await.unwrap();
    c.delete(
        &er,
        &Selection::ids([EntityId::from(11), EntityId::from(12)]),
    )
    .await
    .unwrap();
    c.execute_operation(
        &FormId::new("BD_Empinfo"),
        "Forbid",
        &Selection::numbers([BillNo::new("E001")]),
    )
    .await
    .unwrap();
    c.push(
        &FormId::new("ER_ExpenseRequest"),
        &PushRequest {
            numbers: vec![BillNo::new("FYSQ001")],
            target_form_id: Some(er.clone()),
            ..PushRequest::default()
        },
    )
    .await
    .unwrap();
    c.workflow_audit(&WorkflowAuditRequest {
        form_id: er.clone(),
        selection: no,
        user_id: None,
        user_name: Some("张伟".into()),
        approval_type: ApprovalType::Approve,
        action_result_id: None,
        post_id: None,
        post_number: None,
        disposition: None,
    })
    .await
    .unwrap();
    let opts = SaveOptions {
        need_return_fields: vec!["FNumber".into()],
        ..SaveOptions::default()
    };
    c.save(&FormId::new("BD_Department"), &department(), &opts)
        .await
        .unwrap();
}

#[tokio::test]
async fn audit_refusal_is_a_permanent_api_error() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("Audit")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Result":{"ResponseStatus":{
            "ErrorCode":500,"IsSuccess":false,"MsgCode":11,
            "Errors":[{"FieldName":"","Message":"已关联工作流实例，不支持通过 WebAPI 接口进行传统审批","DIndex":0}]}}})))
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let err = c
        .audit(
            &FormId::new("ER_ExpReimbursement"),
            &Selection::numbers([BillNo::new("FYBXD001")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert!(!err.is_retryable());
    let status = err.response_status().unwrap();
    assert_eq!(status.errors[0].d_index, Some(0));
}

#[tokio::test]
async fn response_error_body_is_a_server_exception() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("Save")))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"response_error:{"Message":"对象引用未设置到对象的实例。","InnerExWrapper":null}"#,
        ))
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let err = c
        .save(
            &FormId::new("BD_Department"),
            &department(),
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    match &err {
        KingdeeError::ServerException { message, inner, .. } => {
            assert_eq!(message, "对象引用未设置到对象的实例。");
            assert!(inner.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn refused_login_is_permanent_and_other_modes_use_their_service() {
    let server = MockServer::start().await;
    Mock::given(path(
        "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc",
    ))
    .and(wiremock::matchers::body_string(
        r#"{"parameters":["65f0a1b2c3d4e5","webapi","错误密码",2052]}"#,
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(
        json!({"LoginResultType":0,"Message":"用户名或密码错误！","IsSuccessByAPI":false}),
    ))
    .expect(1)
    .mount(&server)
    .await;
    Mock::given(path(
        "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc",
    ))
    .respond_with(login_ok("A1"))
    .expect(1)
    .mount(&server)
    .await;
    let cfg = config(&server, AuthMode::ValidateUser).with_password("错误密码".to_owned().into());
    let c = KingdeeClient::new(cfg).unwrap();
    let err = c.login().await.unwrap_err();
    assert!(matches!(
        err,
        KingdeeError::Login {
            result_type: LoginResultType::PwError,
            ..
        }
    ));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("用户名或密码错误"));

    let c = client(&server, AuthMode::LoginByAppSecret);
    c.login().await.unwrap();
    c.login().await.unwrap();
    assert_eq!(c.session().session_id().await.as_deref(), Some("A1"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = MockServer::start().await;
    Mock::given(path(LOGIN_BY_SIGN))
        .respond_with(login_ok("S1"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(
        "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.Logout.common.kdsvc",
    ))
    .and(header("kdservice-sessionid", "S1"))
    .respond_with(ResponseTemplate::new(200).set_body_string("true"))
    .expect(1)
    .mount(&server)
    .await;
    let c = client(&server, AuthMode::LoginBySign);
    assert!(!c.logout().await.unwrap(), "no session yet: no call");
    c.login().await.unwrap();
    assert!(c.logout().await.unwrap());
    assert_eq!(c.session().session_id().await, None);
    c.login().await.unwrap();
    assert_eq!(c.session().login_count(), 2);
}

#[tokio::test]
async fn sso_logout_posts_ap0() {
    let server = MockServer::start().await;
    let c = client(&server, AuthMode::SignatureHeaders);
    let signer = SsoSigner::from_config(c.config());
    let ap0 = signer.logout_ap0("张三", 1_700_000_000);
    let form = format!("ap0={}", urlencoding::encode(&ap0));
    Mock::given(method("POST"))
        .and(path("/k3cloud/Kingdee.BOS.ServiceFacade.ServicesStub.User.UserService.LogoutByOtherSystem.common.kdsvc"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(wiremock::matchers::body_string(form))
        .respond_with(ResponseTemplate::new(200).set_body_string("true"))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(c.sso_logout(&signer, "张三").await.unwrap(), json!(true));
}

/// A pacer that caps concurrency with a semaphore, as `limits` does.
struct CapPacer(Arc<tokio::sync::Semaphore>);

#[async_trait]
impl limits::Pacer for CapPacer {
    async fn acquire(&self, _group: &str) -> limits::Permit {
        limits::Permit::with_slot(self.0.clone().acquire_owned().await.unwrap())
    }
    fn throttled(&self, _group: &str, _retry_after: Option<Duration>) {}
    fn succeeded(&self, _group: &str) {}
}

#[tokio::test]
async fn the_pacer_permit_is_held_for_the_whole_exchange() {
    let server = MockServer::start().await;
    Mock::given(path(op_path("View")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Result":{"ResponseStatus":{"IsSuccess":true},"Result":{"FName":"张伟"}}}))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(6)
        .mount(&server)
        .await;
    let c = KingdeeClient::builder(config(&server, AuthMode::SignatureHeaders))
        .pacer(Arc::new(CapPacer(Arc::new(tokio::sync::Semaphore::new(2)))))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let calls = (0..6).map(|i| {
        let c = c.clone();
        tokio::spawn(async move {
            c.view(
                &FormId::new("BD_Empinfo"),
                &ViewRequest::by_number(format!("E{i}")),
            )
            .await
        })
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().unwrap()["FName"], "张伟");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "6 calls, 2 at a time, 100 ms each"
    );
}

#[test]
fn sso_link_from_the_connection_config() {
    let cfg = KingdeeConfig::new(
        "http://k3.example.local/k3cloud",
        "65f0a1b2c3d4e5",
        "webapi",
        "HRApprovalApp",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned().into(),
    )
    .unwrap();
    let v = vectors();
    let case = &v["sso_signeddata"][0];
    let link = SsoSigner::from_config(&cfg).link(&SsoRequest::new("zhangsan", 1_700_000_000));
    assert_eq!(
        link.url,
        case["html5_url_percent_encoded"].as_str().unwrap()
    );
    assert!(SsoRequest::now("张伟").timestamp > 1_700_000_000);
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_login() {
    let server = MockServer::start().await;
    Mock::given(path(LOGIN_BY_SIGN))
        .respond_with(ResponseTemplate::new(502).set_delay(Duration::from_millis(100)))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, AuthMode::LoginBySign);
    let calls = (0..8).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            c.view(&FormId::new("BD_Empinfo"), &ViewRequest::by_number("E001"))
                .await
        })
    });
    let errors: Vec<KingdeeError> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap_err())
        .collect();
    assert!(errors.iter().all(KingdeeError::is_retryable));
    assert_eq!(
        errors
            .iter()
            .filter(|e| matches!(e, KingdeeError::Http { status: 502, .. }))
            .count(),
        1
    );
    assert_eq!(c.session().login_count(), 1);
}
