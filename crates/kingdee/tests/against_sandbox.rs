//! The client against the independent Kingdee sandbox (`sandbox::kingdee`, written from the
//! protocol notes only), served in-process on loopback: every operation on `BD_Department`,
//! `BD_Empinfo` and `ER_ExpReimbursement` with Chinese text, every auth mode, a lost session
//! mid-run, a call-limit storm, a partial BatchSave, field order, and bad input mapped to the
//! client's typed errors with the Kingdee message intact. Outcomes are checked in the sandbox's
//! store and counters, not only in the client's answers.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use futures::TryStreamExt;
use kingdee::*;
use limits::{AdaptiveSettings, ConnectionLimiter, ConnectionLimits};
use sandbox::kingdee::KingdeeSandboxConfig;
use sandbox::seed::Seed;
use serde_json::{Value, json};
use support::Sandbox;

const DEPT: &str = "BD_Department";
const EMP: &str = "BD_Empinfo";
const REIMB: &str = "ER_ExpReimbursement";

fn form(id: &str) -> FormId {
    FormId::new(id)
}

fn nums(n: &[&str]) -> Selection {
    Selection::numbers(n.iter().map(|s| BillNo::new(*s)))
}

fn department(number: &str, name: &str, parent: &str) -> Model {
    Model::new()
        .reference("FCreateOrgId", "100")
        .reference("FUseOrgId", "100")
        .field("FNumber", number)
        .field("FName", name)
        .reference("FParentID", parent)
        .field("FDescription", "负责智能制造产品线（含“工业互联网”平台）")
}

fn employee(number: &str, name: &str, dept: &str) -> Model {
    Model::new()
        .reference("FCreateOrgId", "100")
        .reference("FUseOrgId", "100")
        .field("FName", name)
        .field("FStaffNumber", number)
        .field("FNumber", number)
        .field("FMobile", "13900001111")
        .reference("FDeptId", dept)
        .field("FPostName", "高级工程师")
        .field("FJoinDate", "2024-03-01")
}

fn reimbursement(proposer: &str, dept: &str, causa: &str) -> Model {
    Model::new()
        .field("FDate", "2024-05-20")
        .reference("FOrgID", "100")
        .reference("FProposerID", proposer)
        .reference("FRequestDeptID", dept)
        .reference("FCurrencyID", "PRE001")
        .field("FCausa", causa)
        .entry(
            "FEntity",
            [
                Model::new()
                    .reference("FExpID", "FYXM01")
                    .field("FExpenseAmount", 1200.5)
                    .field("FRemark", "杭州→北京 高铁二等座"),
                Model::new()
                    .reference("FExpID", "FYXM07")
                    .field("FExpenseAmount", 86)
                    .field("FRemark", "客户午餐"),
            ],
        )
}

/// Every value of one column of a query.
async fn column(c: &KingdeeClient, req: QueryRequest) -> Vec<Value> {
    c.query_rows(req)
        .map_ok(|row| row.into_iter().next().unwrap_or(Value::Null))
        .try_collect()
        .await
        .unwrap()
}

/// Rows matching a filter, counted through the streaming ExecuteBillQuery.
async fn count(c: &KingdeeClient, form_id: &str, key: &str, filter: &str) -> usize {
    column(c, QueryRequest::new(form_id, [key]).filter(filter))
        .await
        .len()
}

fn api_status(err: &KingdeeError) -> &ResponseStatus {
    err.response_status()
        .unwrap_or_else(|| panic!("expected KingdeeError::Api, got {err:?}"))
}

fn first_message(err: &KingdeeError) -> String {
    api_status(err).errors[0]
        .message
        .clone()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Every operation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn department_save_view_query_submit_audit_forbid_enable_unaudit_delete() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let f = form(DEPT);

    let saved = c
        .save(
            &f,
            &department("BM90001", "智能制造事业部", "BM00003"),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(saved.first_number().unwrap().as_str(), "BM90001");
    let id = saved.first_id().unwrap().clone();
    assert_eq!(s.status_of(DEPT, "BM90001"), Some(('A', 'A')));

    let view = c
        .view(&f, &ViewRequest::by_number("BM90001"))
        .await
        .unwrap();
    assert_eq!(view["Id"].to_string(), id.as_str());
    assert_eq!(view["Name"], "智能制造事业部");
    assert_eq!(view["ParentID"]["Number"], "BM00003");
    assert_eq!(view["ParentID"]["Name"][0]["Value"], "研发中心");
    assert_eq!(view["DocumentStatus"], "A");
    let by_id = c.view(&f, &ViewRequest::by_id(id.clone())).await.unwrap();
    assert_eq!(by_id["Name"], "智能制造事业部");

    // ExecuteBillQuery: columns in FieldKeys order, a reference's sub-field, Chinese filter.
    let rows: Vec<Vec<Value>> = c
        .query_rows(
            QueryRequest::new(
                DEPT,
                ["FNumber", "FName", "FParentID.FName", "FDocumentStatus"],
            )
            .filter("FName like '%智能制造%'"),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            json!("BM90001"),
            json!("智能制造事业部"),
            json!("研发中心"),
            json!("A")
        ]]
    );
    // BillQuery: objects keyed by the requested field keys.
    let objs = c
        .bill_query(&QueryRequest::new(DEPT, ["FName", "FNumber"]).filter("FNumber = 'BM90001'"))
        .await
        .unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(
        objs[0].keys().collect::<Vec<_>>(),
        ["FName", "FNumber"],
        "BillQuery keys in FieldKeys order"
    );
    assert_eq!(objs[0]["FName"], "智能制造事业部");

    // Status transitions: Submit A→B, Audit B→C, Forbid/Enable on audited base data,
    // UnAudit C→D, Delete in D.
    let sub = c.submit(&f, &nums(&["BM90001"])).await.unwrap();
    assert_eq!(
        sub.status.success_entitys[0]
            .number
            .as_ref()
            .unwrap()
            .as_str(),
        "BM90001"
    );
    assert_eq!(s.status_of(DEPT, "BM90001"), Some(('B', 'A')));
    c.audit(&f, &Selection::ids([id.clone()])).await.unwrap();
    assert_eq!(s.status_of(DEPT, "BM90001"), Some(('C', 'A')));
    c.execute_operation(&f, "Forbid", &nums(&["BM90001"]))
        .await
        .unwrap();
    assert_eq!(s.status_of(DEPT, "BM90001"), Some(('C', 'B')));
    let q = QueryRequest::new(DEPT, ["FForbidStatus"]).filter("FNumber = 'BM90001'");
    assert_eq!(column(&c, q.clone()).await, [json!("B")]);
    c.execute_operation(&f, "Enable", &nums(&["BM90001"]))
        .await
        .unwrap();
    assert_eq!(column(&c, q).await, [json!("A")]);
    // Delete is refused while audited, with the observed Kingdee message.
    let err = c.delete(&f, &nums(&["BM90001"])).await.unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert_eq!(
        first_message(&err),
        "只能删除创建，暂存，重新审核状态的数据!"
    );
    assert!(!err.is_retryable());
    c.unaudit(&f, &nums(&["BM90001"])).await.unwrap();
    assert_eq!(s.status_of(DEPT, "BM90001"), Some(('D', 'A')));
    c.delete(&f, &nums(&["BM90001"])).await.unwrap();
    assert_eq!(s.status_of(DEPT, "BM90001"), None);
    let err = c
        .view(&f, &ViewRequest::by_number("BM90001"))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NoMatchingData));
    assert!(first_message(&err).contains("BM90001"));

    // QueryBusinessInfo: the form's metadata.
    let info = c.query_business_info(&f).await.unwrap();
    let meta = &info["Result"]["NeedReturnData"];
    assert_eq!(meta["Id"], DEPT);
    assert_eq!(meta["NumberFieldKey"], "FNumber");
    let head_fields: Vec<&str> = meta["Entrys"][0]["Fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["Key"].as_str())
        .collect();
    assert!(head_fields.contains(&"FParentID"), "{head_fields:?}");
}

#[tokio::test]
async fn employee_draft_save_batch_save_submit_audit_forbid_enable() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let f = form(EMP);

    // Draft (暂存) accepts a record without its required organisation fields: status Z.
    let draft = c
        .draft(
            &f,
            &Model::new()
                .field("FName", "欧阳娜娜")
                .field("FStaffNumber", "E9001"),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    let draft_id = draft.first_id().unwrap().clone();
    assert_eq!(s.status_of(EMP, "E9001"), Some(('Z', 'A')));
    // Save of the same record by primary key completes it: Z → A.
    let completed = employee("E9001", "欧阳娜娜", "BM00005").id("FID", &draft_id);
    let saved = c
        .save(&f, &completed, &SaveOptions::default())
        .await
        .unwrap();
    assert_eq!(saved.first_id(), Some(&draft_id));
    assert_eq!(s.status_of(EMP, "E9001"), Some(('A', 'A')));
    // Save without the required fields is refused, naming the field in Chinese.
    let err = c
        .save(
            &f,
            &Model::new().field("FStaffNumber", "E9002"),
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert!(
        api_status(&err)
            .errors
            .iter()
            .any(|e| e.field_name.as_deref() == Some("FName")
                && e.message.as_deref() == Some("“员工姓名”是必填项。")),
        "{err}"
    );

    // BatchSave of three employees.
    let models = [
        employee("E9101", "司马相如", "BM00005"),
        employee("E9102", "诸葛亮", "BM00003"),
        employee("E9103", "上官婉儿", "BM00005"),
    ];
    let report = c
        .batch_save(&f, &models, None, &SaveOptions::default())
        .await
        .unwrap();
    assert!(report.all_succeeded(), "{report:?}");
    let numbers: Vec<&str> = report
        .succeeded
        .iter()
        .map(|e| e.number.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(numbers, ["E9101", "E9102", "E9103"]);
    assert_eq!(
        report
            .succeeded
            .iter()
            .map(|e| e.d_index)
            .collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2)]
    );
    assert_eq!(
        column(
            &c,
            QueryRequest::new(EMP, ["FName"])
                .filter("FStaffNumber in ('E9101','E9102','E9103')")
                .order("FStaffNumber")
        )
        .await,
        [json!("司马相如"), json!("诸葛亮"), json!("上官婉儿")]
    );

    // Submit and Audit several at once; Forbid and Enable through ExcuteOperation.
    let all = nums(&["E9001", "E9101", "E9102", "E9103"]);
    let r = c.submit(&f, &all).await.unwrap();
    assert_eq!(r.status.success_entitys.len(), 4);
    c.audit(&f, &all).await.unwrap();
    for n in ["E9001", "E9101", "E9102", "E9103"] {
        assert_eq!(s.status_of(EMP, n), Some(('C', 'A')), "{n}");
    }
    let id = report.succeeded[1].id.clone().unwrap();
    c.execute_operation(&f, "Forbid", &Selection::ids([id.clone()]))
        .await
        .unwrap();
    assert_eq!(s.status_of(EMP, "E9102"), Some(('C', 'B')));
    let view = c.view(&f, &ViewRequest::by_id(id.clone())).await.unwrap();
    assert_eq!(view["ForbidStatus"], "B");
    assert_eq!(view["DeptId"]["Name"][0]["Value"], "研发中心");
    // Forbidding twice is a validation error with the sandbox's Chinese reason.
    let err = c
        .execute_operation(&f, "Forbid", &Selection::ids([id.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert!(first_message(&err).contains("已经是禁用状态"), "{err}");
    c.execute_operation(&f, "Enable", &Selection::ids([id]))
        .await
        .unwrap();
    assert_eq!(s.status_of(EMP, "E9102"), Some(('C', 'A')));

    let info = c.query_business_info(&f).await.unwrap();
    assert_eq!(
        info["Result"]["NeedReturnData"]["NumberFieldKey"],
        "FStaffNumber"
    );
}

#[tokio::test]
async fn expense_reimbursement_entries_workflow_audit_push_and_delete() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let f = form(REIMB);

    // Draft first (status Z), then Save by primary key (A).
    let draft = c
        .draft(
            &f,
            &reimbursement("E0001", "BM00005", "北京客户拜访差旅"),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    let bill = draft.first_number().unwrap().clone();
    assert!(bill.as_str().starts_with("FYBX"), "{bill}");
    assert_eq!(s.status_of(REIMB, bill.as_str()), Some(('Z', 'A')));
    let id = draft.first_id().unwrap().clone();
    let saved = c
        .save(
            &f,
            &reimbursement("E0001", "BM00005", "北京客户拜访差旅（已补票）").id("FID", &id),
            &SaveOptions {
                need_return_fields: vec!["FBillNo".into(), "FExpAmountSum".into()],
                ..SaveOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(saved.first_number(), Some(&bill));
    assert_eq!(saved.need_return_data[0]["FExpAmountSum"], json!(1286.5));
    assert_eq!(s.status_of(REIMB, bill.as_str()), Some(('A', 'A')));

    // View: header, computed total, entry rows under the entity name.
    let view = c
        .view(&f, &ViewRequest::by_number(bill.as_str()))
        .await
        .unwrap();
    assert_eq!(view["Causa"], "北京客户拜访差旅（已补票）");
    assert!(view["ProposerID"]["Name"][0]["Value"].is_string());
    let rows = view["ER_ExpenseReimbEntry"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Remark"], "杭州→北京 高铁二等座");
    assert_eq!(rows[1]["ExpID"]["Name"][0]["Value"], "餐费");
    assert_eq!(view["ExpAmountSum"], json!(1286.5));

    // ExecuteBillQuery with entry fields: one row per entry row.
    let rows: Vec<Vec<Value>> = c
        .query_rows(
            QueryRequest::new(
                REIMB,
                ["FBillNo", "FExpID.FName", "FExpenseAmount", "FRemark"],
            )
            .filter(format!("FBillNo = '{bill}'")),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            vec![
                json!(bill.as_str()),
                json!("差旅费"),
                json!(1200.5),
                json!("杭州→北京 高铁二等座")
            ],
            vec![
                json!(bill.as_str()),
                json!("餐费"),
                json!(86),
                json!("客户午餐")
            ],
        ]
    );

    // Workflow: Submit, reject (back to D), Submit again, approve (C).
    let sel = nums(&[bill.as_str()]);
    let wf = |approval_type| WorkflowAuditRequest {
        form_id: f.clone(),
        selection: sel.clone(),
        user_id: None,
        user_name: Some("系统管理员".into()),
        approval_type,
        action_result_id: None,
        post_id: None,
        post_number: None,
        disposition: Some("发票抬头不符，请补充".into()),
    };
    c.submit(&f, &sel).await.unwrap();
    assert_eq!(s.status_of(REIMB, bill.as_str()), Some(('B', 'A')));
    c.workflow_audit(&wf(ApprovalType::Reject)).await.unwrap();
    assert_eq!(s.status_of(REIMB, bill.as_str()), Some(('D', 'A')));
    c.submit(&f, &sel).await.unwrap();
    c.workflow_audit(&wf(ApprovalType::Approve)).await.unwrap();
    assert_eq!(s.status_of(REIMB, bill.as_str()), Some(('C', 'A')));
    // Audit of an audited bill is refused with the reason.
    let err = c.audit(&f, &sel).await.unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert!(
        first_message(&err).contains("只有审核中的数据才能审核"),
        "{err}"
    );
    c.unaudit(&f, &sel).await.unwrap();
    c.delete(&f, &sel).await.unwrap();
    assert_eq!(s.status_of(REIMB, bill.as_str()), None);
    assert_eq!(
        count(&c, REIMB, "FBillNo", &format!("FBillNo = '{bill}'")).await,
        0
    );

    // Push (下推): an audited expense request becomes a new reimbursement.
    let req_form = form("ER_ExpenseRequest");
    let request = Model::new()
        .field("FDate", "2024-05-18")
        .reference("FOrgID", "100")
        .reference("FStaffID", "E0002")
        .reference("FDeptID", "BM00005")
        .field("FReason", "上海 技术大会 差旅申请")
        .entry(
            "FEntity",
            [Model::new()
                .reference("FExpenseItemID", "FYXM01")
                .field("FOrgAmount", 3000)],
        );
    let r = c
        .save(&req_form, &request, &SaveOptions::default())
        .await
        .unwrap();
    let req_no = r.first_number().unwrap().as_str().to_owned();
    let req_sel = nums(&[&req_no]);
    // Pushing before audit is refused.
    let push = PushRequest {
        numbers: vec![BillNo::new(req_no.clone())],
        target_form_id: Some(f.clone()),
        ..PushRequest::default()
    };
    let err = c.push(&req_form, &push).await.unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    assert_eq!(
        first_message(&err),
        format!("源单“{req_no}”未审核，不允许下推。")
    );
    c.submit(&req_form, &req_sel).await.unwrap();
    c.audit(&req_form, &req_sel).await.unwrap();
    let pushed = c.push(&req_form, &push).await.unwrap();
    let target = pushed.first_number().unwrap().as_str().to_owned();
    assert!(target.starts_with("FYBX"), "{target}");
    assert_ne!(target, bill.as_str());
    assert_eq!(s.status_of(REIMB, &target), Some(('A', 'A')));
    assert_eq!(
        column(
            &c,
            QueryRequest::new(REIMB, ["FCausa"]).filter(format!("FBillNo = '{target}'"))
        )
        .await
        .len(),
        1
    );

    let info = c.query_business_info(&f).await.unwrap();
    assert_eq!(
        info["Result"]["NeedReturnData"]["Entrys"][1]["ViewName"],
        "ER_ExpenseReimbEntry"
    );
}

#[tokio::test]
async fn query_rows_streams_every_page_up_to_top_row_count() {
    let s = Sandbox::start().await;
    let mut cfg = s.config(AuthMode::SignatureHeaders);
    cfg.query_page_limit = 50;
    let c = KingdeeClient::new(cfg).unwrap();
    let total = s.sb.db().data(EMP).unwrap().records.len();
    assert_eq!(total, 240, "the builtin seed");

    let before = s.counter("calls.ExecuteBillQuery").await;
    let numbers = column(
        &c,
        QueryRequest::new(EMP, ["FStaffNumber", "FName"]).order("FStaffNumber"),
    )
    .await;
    let calls = s.counter("calls.ExecuteBillQuery").await - before;
    assert_eq!(numbers.len(), 240);
    assert_eq!(calls, 5, "240 rows in pages of 50: 50,50,50,50,40");
    let texts: Vec<&str> = numbers.iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        texts.windows(2).all(|w| w[0] < w[1]),
        "ordered, no row twice"
    );

    // TopRowCount caps the stream; StartRow skips.
    let top = column(
        &c,
        QueryRequest::new(EMP, ["FStaffNumber"])
            .order("FStaffNumber")
            .top(120),
    )
    .await;
    assert_eq!(top.len(), 120);
    assert_eq!(top[..], numbers[..120]);
    let tail = column(
        &c,
        QueryRequest::new(EMP, ["FStaffNumber"])
            .order("FStaffNumber")
            .page(200, 0),
    )
    .await;
    assert_eq!(tail[..], numbers[200..]);
}

/// The client asks for more rows per page than a default server returns (2000, protocol §5):
/// every row must still arrive.
#[tokio::test]
async fn query_rows_past_the_server_limit_cap_loses_nothing() {
    let seed = Seed::generate(4500, 30);
    let s = Sandbox::with(KingdeeSandboxConfig::default(), &seed).await;
    let mut cfg = s.config(AuthMode::SignatureHeaders);
    cfg.query_page_limit = 10_000;
    let c = KingdeeClient::new(cfg).unwrap();
    let rows = column(
        &c,
        QueryRequest::new(EMP, ["FStaffNumber"]).order("FStaffNumber"),
    )
    .await;
    assert_eq!(rows.len(), 4500, "pages capped at 2000 by the server");
    let mut distinct: Vec<&str> = rows.iter().map(|v| v.as_str().unwrap()).collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 4500);
}

// ---------------------------------------------------------------------------------------------
// Auth modes and sessions
// ---------------------------------------------------------------------------------------------

/// Three calls through one client; returns the sandbox's login count for the mode.
async fn three_calls(s: &Sandbox, c: &KingdeeClient, number: &str) {
    c.save(
        &form(DEPT),
        &department(number, "客户成功部", "BM00003"),
        &SaveOptions::default(),
    )
    .await
    .unwrap();
    let v = c
        .view(&form(DEPT), &ViewRequest::by_number(number))
        .await
        .unwrap();
    assert_eq!(v["Name"], "客户成功部");
    assert_eq!(
        count(c, DEPT, "FNumber", &format!("FNumber = '{number}'")).await,
        1
    );
    assert_eq!(s.status_of(DEPT, number).map(|x| x.0), Some('A'));
}

#[tokio::test]
async fn every_auth_mode_logs_in_once_and_reuses_the_session() {
    let s = Sandbox::start().await;
    let modes = [
        (AuthMode::SignatureHeaders, "SignatureHeaders", 0),
        (AuthMode::LoginBySign, "LoginBySign", 1),
        (AuthMode::LoginBySignSha1, "LoginBySign", 1),
        (AuthMode::LoginByAppSecret, "LoginByAppSecret", 1),
        (AuthMode::ValidateUser, "ValidateUser", 1),
    ];
    for (i, (mode, sandbox_mode, client_logins)) in modes.into_iter().enumerate() {
        s.admin_post("counters/reset", json!({})).await;
        let c = s.client(mode);
        three_calls(&s, &c, &format!("BM8000{i}")).await;
        assert_eq!(c.session().login_count(), client_logins, "{mode:?}");
        // One session on the sandbox's side for the whole run, in every mode (signature
        // headers: opened by the first signed call, then carried by the cookie).
        assert_eq!(s.counter("logins").await, 1, "{mode:?}");
        assert_eq!(
            s.counter(&format!("logins_by_mode.{sandbox_mode}")).await,
            1,
            "{mode:?}"
        );
        assert_eq!(s.counter("failed_logins").await, 0, "{mode:?}");
        if mode.uses_login() {
            let sid = c.session().session_id().await.unwrap();
            assert!(s.sb.sessions().iter().any(|x| x.id == sid), "{mode:?}");
            assert!(c.logout().await.unwrap(), "{mode:?}");
            assert!(!s.sb.sessions().iter().any(|x| x.id == sid), "{mode:?}");
        }
    }
}

#[tokio::test]
async fn login_by_sign_sha1_is_refused_when_the_server_disabled_it() {
    let cfg = KingdeeSandboxConfig {
        login_sign_allow_sha1: false,
        ..KingdeeSandboxConfig::default()
    };
    let s = Sandbox::with(cfg, &Seed::builtin()).await;
    let err = s
        .client(AuthMode::LoginBySignSha1)
        .login()
        .await
        .unwrap_err();
    match &err {
        KingdeeError::Login {
            result_type,
            message,
        } => {
            assert_eq!(*result_type, LoginResultType::Failure);
            assert_eq!(message, "签名算法SHA1已停用，请使用SHA256。");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    // SHA-256 works on the same server.
    s.client(AuthMode::LoginBySign).login().await.unwrap();
}

async fn run_with_drop(s: &Sandbox, c: &KingdeeClient, prefix: &str) {
    for i in 0..10 {
        if i == 5 {
            let dropped = s.admin_post("sessions/drop", json!({})).await;
            assert_eq!(dropped["dropped"], 1);
        }
        c.save(
            &form(EMP),
            &employee(&format!("{prefix}{i:02}"), "慕容复", "BM00005"),
            &SaveOptions::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        count(
            c,
            EMP,
            "FStaffNumber",
            &format!("FStaffNumber like '{prefix}%'")
        )
        .await,
        10
    );
}

#[tokio::test]
async fn dropped_sessions_mid_run_cost_exactly_one_relogin() {
    for mode in [
        AuthMode::LoginBySign,
        AuthMode::LoginByAppSecret,
        AuthMode::ValidateUser,
    ] {
        let s = Sandbox::start().await;
        let c = s.client(mode);
        run_with_drop(&s, &c, "LS").await;
        assert_eq!(c.session().login_count(), 2, "{mode:?}");
        assert_eq!(s.counter("logins").await, 2, "{mode:?}");
        assert_eq!(s.counter("errors_by_msgcode.1").await, 1, "{mode:?}");
        assert_eq!(s.counter("calls.Save").await, 11, "one Save was repeated");
    }
    // Signature headers: no login call at all; the sandbox opens a new session for the next
    // signed call without a MsgCode 1.
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    run_with_drop(&s, &c, "SH").await;
    assert_eq!(c.session().login_count(), 0);
    assert_eq!(s.counter("logins_by_mode.SignatureHeaders").await, 2);
    assert_eq!(s.counter("errors_by_msgcode.1").await, 0);
    assert_eq!(s.counter("calls.Save").await, 10);
}

#[tokio::test]
async fn concurrent_callers_after_a_dropped_session_share_one_relogin() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::LoginBySign);
    c.login().await.unwrap();
    s.admin_post("faults", json!({"drop_sessions": true})).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let c = c.clone();
        tasks.spawn(async move {
            c.save(
                &form(EMP),
                &employee(&format!("CC{i:02}"), "东方不败", "BM00003"),
                &SaveOptions::default(),
            )
            .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(c.session().login_count(), 2);
    assert_eq!(s.counter("logins").await, 2);
    assert_eq!(
        count(&c, EMP, "FStaffNumber", "FStaffNumber like 'CC%'").await,
        12
    );
}

#[tokio::test]
async fn idle_session_expiry_on_the_sandbox_clock_relogs_in_once() {
    for mode in [AuthMode::LoginBySign, AuthMode::LoginByAppSecret] {
        let s = Sandbox::start().await;
        // The client signs with the sandbox clock, so LoginBySign's timestamp follows it.
        let c = s.client_on_sandbox_clock(mode);
        three_calls(&s, &c, "BM81001").await;
        // 19 idle minutes: the sliding session survives (and slides).
        s.admin_post("clock", json!({"advance_secs": 19 * 60}))
            .await;
        let v = c
            .view(&form(DEPT), &ViewRequest::by_number("BM81001"))
            .await
            .unwrap();
        assert_eq!(v["Name"], "客户成功部");
        assert_eq!(c.session().login_count(), 1, "{mode:?}");
        // 21 more idle minutes: expired → MsgCode 1 → one re-login → the call succeeds.
        s.admin_post("clock", json!({"advance_secs": 21 * 60}))
            .await;
        let v = c
            .view(&form(DEPT), &ViewRequest::by_number("BM81001"))
            .await
            .unwrap();
        assert_eq!(v["Name"], "客户成功部");
        assert_eq!(c.session().login_count(), 2, "{mode:?}");
        assert_eq!(s.counter("sessions_expired").await, 1, "{mode:?}");
        assert_eq!(s.counter("logins").await, 2, "{mode:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Call limit (MsgCode 14), outage
// ---------------------------------------------------------------------------------------------

fn kingdee_limiter() -> Arc<ConnectionLimiter> {
    let limits = ConnectionLimits {
        adaptive: AdaptiveSettings {
            pause_seconds: 0.02,
            ..AdaptiveSettings::default()
        },
        ..ConnectionLimits::kingdee()
    };
    Arc::new(ConnectionLimiter::new("kingdee-sandbox", limits).unwrap())
}

#[tokio::test]
async fn call_limit_storm_is_paced_and_retried_and_nothing_is_lost_or_doubled() {
    let s = Sandbox::start().await;
    let limiter = kingdee_limiter();
    let mut cfg = s.config(AuthMode::LoginBySign);
    cfg.throttle_retries = 20;
    let c = KingdeeClient::builder(cfg)
        .pacer(limiter.clone())
        .build()
        .unwrap();
    c.login().await.unwrap();
    let f = s.admin_post("faults", json!({"msgcode14_rate": 0.4})).await;
    assert_eq!(f["msgcode14_rate"], 0.4);

    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let c = c.clone();
        tasks.spawn(async move {
            let f = form(EMP);
            for i in 0..5 {
                c.save(
                    &f,
                    &employee(&format!("ST{t}S{i}"), "风暴测试员", "BM00005"),
                    &SaveOptions::default(),
                )
                .await?;
            }
            let batch: Vec<Model> = (0..10)
                .map(|i| employee(&format!("ST{t}B{i}"), "批量风暴", "BM00003"))
                .collect();
            let report = c
                .batch_save(&f, &batch, None, &SaveOptions::default())
                .await?;
            assert!(report.all_succeeded(), "{report:?}");
            Ok::<_, KingdeeError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let throttled = s.counter("errors_by_msgcode.14").await;
    assert!(throttled > 0, "the storm hit");
    s.admin_post("faults", json!({"msgcode14_rate": 0.0})).await;
    assert_eq!(
        count(&c, EMP, "FStaffNumber", "FStaffNumber like 'ST%'").await,
        8 * 15,
        "every employee saved exactly once"
    );
    // Every throttled call was answered before the store was touched, so the successful
    // writes are exactly the 40 Saves and 8 BatchSaves.
    assert_eq!(
        s.counter("calls.Save").await + s.counter("calls.BatchSave").await,
        48 + throttled
    );
    assert_eq!(
        c.session().login_count(),
        1,
        "a throttle is not a lost session"
    );
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test]
async fn call_limit_next_n_then_success_and_persistent_limit_is_a_retryable_error() {
    let s = Sandbox::start().await;
    let mut cfg = s.config(AuthMode::SignatureHeaders);
    cfg.throttle_retries = 3;
    let c = KingdeeClient::new(cfg).unwrap();
    s.admin_post("faults", json!({"msgcode14_next": 3})).await;
    c.save(
        &form(DEPT),
        &department("BM82001", "法务部", "BM00003"),
        &SaveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.counter("calls.Save").await,
        4,
        "three throttled, one saved"
    );
    assert_eq!(s.status_of(DEPT, "BM82001").map(|x| x.0), Some('A'));

    s.admin_post("faults", json!({"msgcode14_rate": 1.0})).await;
    let err = c
        .save(
            &form(DEPT),
            &department("BM82002", "审计部", "BM00003"),
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::CallLimit));
    assert!(err.is_throttled() && err.is_retryable());
    assert_eq!(first_message(&err), "调用频率超过限制，请稍后再试。");
    assert_eq!(s.status_of(DEPT, "BM82002"), None);
    // Queries see the wrapped form of the same error.
    let err = c
        .execute_bill_query(&QueryRequest::new(DEPT, ["FNumber"]))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::CallLimit));
}

#[tokio::test]
async fn outage_is_a_retryable_http_error_and_service_resumes() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    s.admin_post("faults", json!({"outage_seconds": 30})).await;
    let err = c
        .view(&form(DEPT), &ViewRequest::by_number("BM00003"))
        .await
        .unwrap_err();
    match &err {
        KingdeeError::Http { status, .. } => assert_eq!(*status, 503),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable() && err.is_throttled());
    s.admin_post("faults", json!({"outage_seconds": 0})).await;
    let v = c
        .view(&form(DEPT), &ViewRequest::by_number("BM00003"))
        .await
        .unwrap();
    assert_eq!(v["Name"], "研发中心");
}

// ---------------------------------------------------------------------------------------------
// Partial BatchSave, field order
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn partial_batch_save_names_the_failed_rows_and_saves_the_good_ones() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let f = form(EMP);
    let original_e0001 =
        c.view(&f, &ViewRequest::by_number("E0001")).await.unwrap()["Name"].clone();
    let rows = vec![
        employee("PB001", "独孤求败", "BM00005"),
        employee("PB002", "令狐冲", "BM99999"), // broken department reference
        employee("PB003", "任盈盈", "BM00003"),
        employee("E0001", "冒名顶替", "BM00003"), // duplicate staff number
        Model::new()
            .reference("FCreateOrgId", "100")
            .reference("FUseOrgId", "100")
            .field("FStaffNumber", "PB005"), // no name
        employee("PB006", "岳灵珊", "BM00005"),
    ];
    let report = c
        .batch_save(&f, &rows, None, &SaveOptions::default())
        .await
        .unwrap();
    assert!(!report.all_succeeded());
    assert!(!report.batch_relative);
    assert_eq!(
        report
            .succeeded
            .iter()
            .map(|e| (e.d_index.unwrap(), e.number.as_ref().unwrap().as_str()))
            .collect::<Vec<_>>(),
        [(0, "PB001"), (2, "PB003"), (5, "PB006")]
    );
    assert_eq!(
        report.failed.iter().map(|r| r.d_index).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    let reason = |i: usize| -> (String, String) {
        let e = &report.failed[i].errors[0];
        (
            e.field_name.clone().unwrap_or_default(),
            e.message.clone().unwrap_or_default(),
        )
    };
    let (field, message) = reason(0);
    assert_eq!(field, "FDeptId");
    assert!(
        message.contains("BM99999") && message.contains("不存在"),
        "{message}"
    );
    let (field, message) = reason(1);
    assert_eq!(field, "FStaffNumber");
    assert!(
        message.contains("E0001") && message.contains("已经存在"),
        "{message}"
    );
    let (field, message) = reason(2);
    assert_eq!(field, "FName");
    assert_eq!(message, "“员工姓名”是必填项。");
    assert!(report.general_errors.is_empty());
    assert_eq!(report.status.msg_code, MsgCode::ValidationFailed);

    // What the sandbox holds: the three good rows, not the bad ones; E0001 untouched.
    assert_eq!(
        column(
            &c,
            QueryRequest::new(EMP, ["FStaffNumber"])
                .filter("FStaffNumber like 'PB%'")
                .order("FStaffNumber")
        )
        .await,
        [json!("PB001"), json!("PB003"), json!("PB006")]
    );
    let e0001 = c.view(&f, &ViewRequest::by_number("E0001")).await.unwrap();
    assert_eq!(e0001["Name"], original_e0001);

    // With BatchCount the server reports DIndex inside each batch (protocol §2.1): 6 rows in
    // 2 batches of 3 → the failures at rows 1 and 4 both come back as DIndex 1.
    let rows: Vec<Model> = (0..6)
        .map(|i| {
            let dept = if i == 1 || i == 4 {
                "BM99999"
            } else {
                "BM00005"
            };
            employee(&format!("PC{i:03}"), "批次员工", dept)
        })
        .collect();
    let report = c
        .batch_save(&f, &rows, Some(2), &SaveOptions::default())
        .await
        .unwrap();
    assert!(report.batch_relative);
    assert_eq!(report.succeeded.len(), 4);
    assert_eq!(
        report
            .succeeded
            .iter()
            .map(|e| e.d_index.unwrap())
            .collect::<Vec<_>>(),
        [0, 2, 0, 2]
    );
    assert_eq!(report.failed.len(), 1, "both failures share DIndex 1");
    assert_eq!(report.failed[0].d_index, 1);
    assert_eq!(report.failed[0].errors.len(), 2);
    assert_eq!(
        count(&c, EMP, "FStaffNumber", "FStaffNumber like 'PC%'").await,
        4
    );
}

#[tokio::test]
async fn view_returns_fields_in_the_order_the_model_gave_them() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let f = form(EMP);
    // Two employees with the same fields in opposite orders.
    let forward = [
        ("FDescription", json!("喜欢“围棋”与书法")),
        ("FJoinDate", json!("2023-11-06")),
        ("FPostName", json!("产品经理")),
        ("FName", json!("黄药师")),
        ("FStaffNumber", json!("FO001")),
        ("FMobile", json!("13700002222")),
        ("FDeptId", json!({"FNumber": "BM00005"})),
        ("FCreateOrgId", json!({"FNumber": "100"})),
        ("FUseOrgId", json!({"FNumber": "100"})),
        ("FEmail", json!("huang@example.com")),
    ];
    let build = |pairs: &mut dyn Iterator<Item = &(&str, Value)>, number: &str| {
        let mut m = Model::new();
        for (k, v) in pairs {
            let v = if *k == "FStaffNumber" {
                json!(number)
            } else {
                v.clone()
            };
            m.set(*k, v);
        }
        m
    };
    let expected = |pairs: &mut dyn Iterator<Item = &(&str, Value)>| -> Vec<String> {
        let mut keys = vec!["Id".to_owned()];
        keys.extend(pairs.map(|(k, _)| k[1..].to_owned()));
        keys.extend(
            ["DocumentStatus", "ForbidStatus", "CreateDate", "ModifyDate"].map(str::to_owned),
        );
        keys
    };
    for (number, reversed) in [("FO001", false), ("FO002", true)] {
        let model = if reversed {
            build(&mut forward.iter().rev(), number)
        } else {
            build(&mut forward.iter(), number)
        };
        c.save(&f, &model, &SaveOptions::default()).await.unwrap();
        let view = c.view(&f, &ViewRequest::by_number(number)).await.unwrap();
        let keys: Vec<&str> = view
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let want = if reversed {
            expected(&mut forward.iter().rev())
        } else {
            expected(&mut forward.iter())
        };
        assert_eq!(keys, want, "{number}");
        assert_eq!(view["Description"], "喜欢“围棋”与书法");
    }

    // Entry rows keep their field order too.
    let model = Model::new()
        .field("FCausa", "深圳 展会")
        .reference("FRequestDeptID", "BM00005")
        .reference("FProposerID", "E0003")
        .reference("FOrgID", "100")
        .field("FDate", "2024-06-01")
        .entry(
            "FEntity",
            [Model::new()
                .field("FRemark", "展位费")
                .field("FExpenseAmount", 5000)
                .reference("FExpID", "FYXM04")],
        );
    let r = c
        .save(&form(REIMB), &model, &SaveOptions::default())
        .await
        .unwrap();
    let view = c
        .view(
            &form(REIMB),
            &ViewRequest::by_number(r.first_number().unwrap().as_str()),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys[..6],
        [
            "Id",
            "Causa",
            "RequestDeptID",
            "ProposerID",
            "OrgID",
            "Date"
        ]
    );
    let row_keys: Vec<&str> = view["ER_ExpenseReimbEntry"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(row_keys, ["Id", "Seq", "Remark", "ExpenseAmount", "ExpID"]);
}

// ---------------------------------------------------------------------------------------------
// Bad input → typed errors with the Kingdee message intact
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_app_secret_is_refused_in_every_mode_with_the_message() {
    let s = Sandbox::start().await;
    let wrong = |auth| {
        let mut cfg = s.config(auth);
        cfg.app_secret = "00000000000000000000000000000000".to_owned().into();
        cfg.password = Some("错误的密码".to_owned().into());
        KingdeeClient::new(cfg).unwrap()
    };
    // Signature headers: the business call itself is refused (MsgCode 2).
    let err = wrong(AuthMode::SignatureHeaders)
        .view(&form(DEPT), &ViewRequest::by_number("BM00003"))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NoPermission));
    assert_eq!(first_message(&err), "签名验证失败：X-Kd-Signature不正确。");
    assert!(err.to_string().contains("X-Kd-Signature不正确"), "{err}");
    assert!(!err.is_retryable());

    let expect_login = |err: KingdeeError, kind: LoginResultType, text: &str| match err {
        KingdeeError::Login {
            result_type,
            message,
        } => {
            assert_eq!(result_type, kind);
            assert_eq!(message, text);
        }
        other => panic!("{other:?}"),
    };
    for (mode, kind, text) in [
        (
            AuthMode::LoginBySign,
            LoginResultType::Failure,
            "签名信息验证失败。",
        ),
        (
            AuthMode::LoginBySignSha1,
            LoginResultType::Failure,
            "签名信息验证失败。",
        ),
        (
            AuthMode::LoginByAppSecret,
            LoginResultType::Failure,
            "应用ID或应用密钥错误。",
        ),
        (
            AuthMode::ValidateUser,
            LoginResultType::PwError,
            "用户名或密码错误！",
        ),
    ] {
        let c = wrong(mode);
        let err = c
            .save(
                &form(DEPT),
                &department("BM83001", "不该存在", "BM00003"),
                &SaveOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{mode:?}");
        expect_login(err, kind, text);
        assert_eq!(c.session().login_count(), 1, "{mode:?}: no login loop");
    }
    assert_eq!(s.status_of(DEPT, "BM83001"), None);
    assert_eq!(s.counter("failed_logins").await, 5);
}

#[tokio::test]
async fn expired_timestamp_on_a_shifted_sandbox_clock() {
    let s = Sandbox::start().await;
    // The sandbox's clock runs 10 minutes ahead; the client's (system) clock is now outside the
    // 5-minute window.
    s.admin_post("clock", json!({"advance_secs": 600})).await;
    let err = s
        .client(AuthMode::SignatureHeaders)
        .view(&form(DEPT), &ViewRequest::by_number("BM00003"))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NoPermission));
    let message = first_message(&err);
    assert!(
        message.starts_with("请求时间戳") && message.contains("已过期"),
        "{message}"
    );
    assert!(err.to_string().contains(&message));
    assert!(!err.is_retryable());

    let err = s.client(AuthMode::LoginBySign).login().await.unwrap_err();
    match &err {
        KingdeeError::Login { message, .. } => {
            assert_eq!(message, "时间戳已过期，请检查客户端与服务器时间是否一致。");
        }
        other => panic!("{other:?}"),
    }

    // Clocks back in step: both work.
    s.admin_post("clock", json!({"reset": true})).await;
    s.client(AuthMode::SignatureHeaders)
        .view(&form(DEPT), &ViewRequest::by_number("BM00003"))
        .await
        .unwrap();
    s.client(AuthMode::LoginBySign).login().await.unwrap();
}

#[tokio::test]
async fn unknown_form_id_is_an_api_error_naming_the_form() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let bad = form("BD_EmpInfoX");
    let check = |err: &KingdeeError| {
        assert_eq!(err.msg_code(), Some(MsgCode::Exception), "{err}");
        let e = &api_status(err).errors[0];
        assert_eq!(e.message.as_deref(), Some("业务对象不存在：BD_EmpInfoX"));
        assert_eq!(e.field_name.as_deref(), Some("FormId"));
    };
    let err = c
        .save(
            &bad,
            &employee("UF001", "无名氏", "BM00005"),
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    check(&err);
    check(&c.submit(&bad, &nums(&["UF001"])).await.unwrap_err());
    check(
        &c.view(&bad, &ViewRequest::by_number("UF001"))
            .await
            .unwrap_err(),
    );
    check(
        &c.execute_bill_query(&QueryRequest::new("BD_EmpInfoX", ["FNumber"]))
            .await
            .unwrap_err(),
    );
    check(&c.query_business_info(&bad).await.unwrap_err());
    // A BatchSave to an unknown form fails as a whole: no row is blamed for it.
    let err = c
        .batch_save(
            &bad,
            &[employee("UF002", "无名氏", "BM00005")],
            None,
            &SaveOptions::default(),
        )
        .await
        .unwrap_err();
    check(&err);
}

#[tokio::test]
async fn unknown_field_is_rejected_by_a_strict_server_and_ignored_by_default() {
    let strict = Sandbox::with(
        KingdeeSandboxConfig {
            strict_fields: true,
            ..KingdeeSandboxConfig::default()
        },
        &Seed::builtin(),
    )
    .await;
    let c = strict.client(AuthMode::SignatureHeaders);
    let model = employee("UK001", "花满楼", "BM00005").field("FShoeSize", 42);
    let err = c
        .save(&form(EMP), &model, &SaveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NotFound));
    let e = &api_status(&err).errors[0];
    assert_eq!(e.field_name.as_deref(), Some("FShoeSize"));
    assert_eq!(
        e.message.as_deref(),
        Some("元数据中标识为FShoeSize的字段不存在")
    );
    assert!(!err.is_retryable());
    assert_eq!(strict.status_of(EMP, "UK001"), None);

    // An unknown query field key, on any server.
    let err = c
        .execute_bill_query(&QueryRequest::new(EMP, ["FStaffNumber", "FShoeSize"]))
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NotFound));
    assert_eq!(first_message(&err), "元数据中标识为FShoeSize的字段不存在");

    // Real servers ignore unknown Save keys (protocol §2.2): so does the default sandbox.
    let lenient = Sandbox::start().await;
    lenient
        .client(AuthMode::SignatureHeaders)
        .save(&form(EMP), &model, &SaveOptions::default())
        .await
        .unwrap();
    assert_eq!(lenient.status_of(EMP, "UK001").map(|x| x.0), Some('A'));
}

#[tokio::test]
async fn broken_base_data_reference_is_a_data_error_naming_the_number() {
    let s = Sandbox::start().await;
    let c = s.client(AuthMode::SignatureHeaders);
    let model = employee("BR001", "陆小凤", "BM77777");
    let err = c
        .save(&form(EMP), &model, &SaveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    let e = &api_status(&err).errors[0];
    assert_eq!(e.field_name.as_deref(), Some("FDeptId"));
    assert_eq!(
        e.message.as_deref(),
        Some(
            "字段“所属部门”(FDeptId)的值“BM77777”在部门中不存在，请检查基础资料是否已录入并审核。"
        )
    );
    assert!(err.msg_code().unwrap().is_data_error() && !err.is_retryable());
    // With IsVerifyBaseDataField the server answers MsgCode 9.
    let err = c
        .save(
            &form(EMP),
            &model,
            &SaveOptions {
                is_verify_base_data_field: Some(true),
                ..SaveOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::NotFound));
    assert!(first_message(&err).contains("BM77777"));
    // In an entry row, the message names the row.
    let bill = Model::new()
        .field("FDate", "2024-05-20")
        .reference("FOrgID", "100")
        .reference("FProposerID", "E0001")
        .reference("FRequestDeptID", "BM00005")
        .entry(
            "FEntity",
            [Model::new()
                .reference("FExpID", "FYXM99")
                .field("FExpenseAmount", 10)],
        );
    let err = c
        .save(&form(REIMB), &bill, &SaveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.msg_code(), Some(MsgCode::ValidationFailed));
    let message = first_message(&err);
    assert!(
        message.starts_with("第1行") && message.contains("FYXM99"),
        "{message}"
    );
    assert_eq!(s.status_of(EMP, "BR001"), None);
    assert_eq!(count(&c, REIMB, "FBillNo", "").await, 0);
}
