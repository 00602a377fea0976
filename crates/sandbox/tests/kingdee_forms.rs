//! Forms and operations: status transitions, validation errors, View field order, queries,
//! BatchSave, vouchers, Chinese text, fault injection and the admin API.
#![allow(clippy::unwrap_used)]

mod kingdee_support;

use kingdee_support::*;
use sandbox::kingdee::KingdeeSandboxConfig;
use serde_json::{Value, json};

async fn logged_in(cfg: KingdeeSandboxConfig) -> Served {
    let mut sb = start(cfg).await;
    sb.login().await;
    sb
}

fn reimbursement(cause: &str, amounts: &[f64]) -> Value {
    let rows: Vec<Value> = amounts
        .iter()
        .map(|a| json!({"FExpID": {"FNumber": "FYXM01"}, "FExpenseAmount": a, "FRemark": "差旅"}))
        .collect();
    json!({"Model": {
        "FBillTypeID": {"FNumber": "FYBXD001_SYS"},
        "FDate": "2026-03-02",
        "FOrgID": org(),
        "FProposerID": {"FSTAFFNUMBER": "E0001"},
        "FRequestDeptID": {"FNumber": "BM00005"},
        "FCurrencyID": {"FNumber": "PRE001"},
        "FCausa": cause,
        "FEntity": rows,
    }})
}

#[tokio::test]
async fn bill_status_transitions() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let r = sb
        .op(
            "Save",
            json!(["ER_ExpReimbursement", reimbursement("出差", &[100.0, 20.5])]),
        )
        .await;
    assert_ok(&r);
    let no = r["Result"]["Number"].as_str().unwrap().to_owned();
    assert_eq!(no, "FYBX000001");
    let id = r["Result"]["Id"].as_i64().unwrap();
    let numbers = json!({"Numbers": [no]});
    let doc_status = |v: Value| {
        v["Result"]["Result"]["DocumentStatus"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let view = || sb.op("View", json!(["ER_ExpReimbursement", {"Number": no}]));
    assert_eq!(doc_status(view().await), "A");
    assert_eq!(view().await["Result"]["Result"]["ExpAmountSum"], 120.5);

    // Audit needs B; UnAudit needs C.
    assert!(
        assert_err(
            &sb.op("Audit", json!(["ER_ExpReimbursement", numbers]))
                .await,
            11
        )
        .contains("审核中")
    );
    assert_err(
        &sb.op("UnAudit", json!(["ER_ExpReimbursement", numbers]))
            .await,
        11,
    );
    let r = sb
        .op("Submit", json!(["ER_ExpReimbursement", numbers]))
        .await;
    assert_ok(&r);
    assert_eq!(doc_status(view().await), "B");
    // Not modifiable nor deletable in B.
    let mut edit = reimbursement("改", &[1.0]);
    edit["Model"]["FID"] = json!(id);
    assert!(
        assert_err(
            &sb.op("Save", json!(["ER_ExpReimbursement", edit])).await,
            11
        )
        .contains("不允许修改")
    );
    assert_eq!(
        assert_err(
            &sb.op(
                "Delete",
                json!(["ER_ExpReimbursement", {"Ids": id.to_string()}])
            )
            .await,
            11
        ),
        "只能删除创建，暂存，重新审核状态的数据!"
    );
    assert_ok(
        &sb.op(
            "Audit",
            json!(["ER_ExpReimbursement", {"Ids": format!("{id}")}]),
        )
        .await,
    );
    assert_eq!(doc_status(view().await), "C");
    assert_ok(
        &sb.op("UnAudit", json!(["ER_ExpReimbursement", numbers]))
            .await,
    );
    assert_eq!(doc_status(view().await), "D");
    // Modifiable again in D (stays D), then deletable.
    assert_ok(&sb.op("Save", json!(["ER_ExpReimbursement", edit])).await);
    let v = view().await;
    assert_eq!(doc_status(v.clone()), "D");
    assert_eq!(v["Result"]["Result"]["Causa"], "改");
    assert_eq!(
        v["Result"]["Result"]["ER_ExpenseReimbEntry"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_ok(
        &sb.op("Delete", json!(["ER_ExpReimbursement", numbers]))
            .await,
    );
    assert!(assert_err(&view().await, 10).contains("不存在"));

    // Draft → Z; Submit refuses Z; Save turns it into A; numbers keep counting.
    let r = sb
        .op(
            "Draft",
            json!(["ER_ExpReimbursement", {"Model": {"FCausa": "草稿"}}]),
        )
        .await;
    assert_ok(&r);
    let draft_no = r["Result"]["Number"].as_str().unwrap().to_owned();
    assert_eq!(draft_no, "FYBX000002");
    let dv = sb
        .op("View", json!(["ER_ExpReimbursement", {"Number": draft_no}]))
        .await;
    assert_eq!(doc_status(dv), "Z");
    assert!(
        assert_err(
            &sb.op(
                "Submit",
                json!(["ER_ExpReimbursement", {"Numbers": [draft_no]}])
            )
            .await,
            11
        )
        .contains("暂存")
    );
    assert_ok(
        &sb.op(
            "Delete",
            json!(["ER_ExpReimbursement", {"Numbers": [draft_no]}]),
        )
        .await,
    );
    // Unknown numbers are reported per DIndex.
    let r = sb
        .op(
            "Submit",
            json!(["ER_ExpReimbursement", {"Numbers": ["NOPE1", "NOPE2"]}]),
        )
        .await;
    assert_err(&r, 10);
    assert_eq!(status(&r)["Errors"][1]["DIndex"], 1);
}

#[tokio::test]
async fn validation_errors_are_kingdee_shaped() {
    let cfg = KingdeeSandboxConfig::default();
    let sb = logged_in(cfg).await;
    // Unknown form id.
    let m = assert_err(
        &sb.op("Save", json!(["BD_Nothing", {"Model": {}}])).await,
        4,
    );
    assert!(m.contains("业务对象不存在"), "{m}");
    let m = assert_query_err(
        &sb.op(
            "ExecuteBillQuery",
            json!([{"FormId": "BD_Nothing", "FieldKeys": "FNumber"}]),
        )
        .await,
        4,
    );
    assert!(m.contains("业务对象不存在"), "{m}");
    // Unknown field in a query (FieldKeys and FilterString).
    let r = sb
        .op(
            "ExecuteBillQuery",
            json!([{"FormId": "BD_Empinfo", "FieldKeys": "FName,FNoSuch"}]),
        )
        .await;
    assert_eq!(assert_query_err(&r, 9), "元数据中标识为FNoSuch的字段不存在");
    assert_eq!(
        r[0][0]["Result"]["ResponseStatus"]["Errors"][0]["FieldName"],
        "FNoSuch"
    );
    let r = sb
        .op(
            "ExecuteBillQuery",
            json!([{"FormId": "BD_Empinfo", "FieldKeys": "FName", "FilterString": "FBad = '1'"}]),
        )
        .await;
    assert_eq!(assert_query_err(&r, 9), "元数据中标识为FBad的字段不存在");
    let r = sb
        .op(
            "BillQuery",
            json!([{"FormId": "BD_Empinfo", "FieldKeys": "FDeptId.FNoSuch"}]),
        )
        .await;
    assert_query_err(&r, 9);
    // Unknown Save keys are ignored (protocol §2.2)…
    let ok = json!({"Model": {"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "U1", "FName": "未知字段", "FWhatever": 1}});
    assert_ok(&sb.op("Save", json!(["BD_Department", ok])).await);
    // Broken reference: MsgCode 11, or 9 with IsVerifyBaseDataField.
    let bad = json!({"Model": {"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "U2", "FName": "x", "FParentID": {"FNumber": "NOPE"}}});
    let m = assert_err(&sb.op("Save", json!(["BD_Department", bad])).await, 11);
    assert!(m.contains("NOPE") && m.contains("上级部门"), "{m}");
    let mut bad9 = bad.clone();
    bad9["IsVerifyBaseDataField"] = json!(true);
    let r = sb.op("Save", json!(["BD_Department", bad9])).await;
    assert_err(&r, 9);
    assert_eq!(status(&r)["Errors"][0]["FieldName"], "FParentID");
    // Required fields.
    let r = sb
        .op(
            "Save",
            json!(["BD_Department", {"Model": {"FNumber": "U3"}}]),
        )
        .await;
    let m = assert_err(&r, 11);
    assert!(m.contains("是必填项"), "{m}");
    let fields: Vec<&str> = status(&r)["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["FieldName"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["FName", "FCreateOrgId", "FUseOrgId"]);
    let r = sb
        .op(
            "Save",
            json!(["ER_ExpReimbursement", reimbursement("无分录", &[])]),
        )
        .await;
    assert!(assert_err(&r, 11).contains("至少需要录入一行分录"));
    // Duplicate number on base data.
    let dup = json!({"Model": {"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "BM00002", "FName": "重复"}});
    let m = assert_err(&sb.op("Save", json!(["BD_Department", dup])).await, 11);
    assert!(m.contains("已经存在"), "{m}");
    // Bad values.
    let r = sb
        .op(
            "Save",
            json!(["ER_ExpReimbursement", {"Model": {"FDate": "2026-13-45"}}]),
        )
        .await;
    assert!(assert_err(&r, 11).contains("日期"));
    // Empty / non-object Model, empty formid, bad data JSON string.
    assert_err(&sb.op("Save", json!(["BD_Department", {}])).await, 8);
    assert_err(&sb.op("Save", json!(["", {"Model": {}}])).await, 5);
    assert_err(
        &sb.op("Save", json!(["BD_Department", "{not json"])).await,
        8,
    );
    // Query-only form.
    assert_err(
        &sb.op("Save", json!(["STK_Inventory", {"Model": {}}])).await,
        12,
    );
    // Referenced base data cannot be deleted once un-audited.
    assert_ok(
        &sb.op(
            "UnAudit",
            json!(["BD_Department", {"Numbers": ["BM00005"]}]),
        )
        .await,
    );
    let m = assert_err(
        &sb.op("Delete", json!(["BD_Department", {"Numbers": ["BM00005"]}]))
            .await,
        11,
    );
    assert!(m.contains("引用"), "{m}");

    // Strict mode rejects unknown Save keys.
    let strict = logged_in(KingdeeSandboxConfig {
        strict_fields: true,
        ..KingdeeSandboxConfig::default()
    })
    .await;
    let r = strict.op("Save", json!(["BD_Department", ok])).await;
    assert_eq!(assert_err(&r, 9), "元数据中标识为FWhatever的字段不存在");
}

#[tokio::test]
async fn view_keeps_field_order_and_chinese_text() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    // A deliberately unusual order, Chinese, a supplementary-plane character and an emoji.
    let name = "𠀀测试·欧阳娜娜🙂";
    let model = json!({"Model": {
        "FPostName": "高级工程师（平台）",
        "FStaffNumber": "Z9001",
        "FDeptId": {"FNumber": "BM00005"},
        "FName": name,
        "F_ABC_Remark": "自定义字段",
        "FUseOrgId": org(),
        "FCreateOrgId": org(),
        "FMobile": "13900009999",
    }});
    let r = sb.op("Save", json!(["BD_Empinfo", model])).await;
    assert_ok(&r);
    assert_eq!(r["Result"]["Number"], "Z9001");
    // Raw text check: field order on the wire, Chinese intact.
    let raw = sb
        .post_raw(
            &format!("{STUB}.DynamicFormService.View"),
            json!({"formid": "BD_Empinfo", "data": json!({"Number": "Z9001"}).to_string()})
                .to_string(),
        )
        .await
        .text()
        .await
        .unwrap();
    let order = [
        "\"Id\"",
        "\"PostName\"",
        "\"StaffNumber\"",
        "\"DeptId\"",
        "\"Name\"",
        "\"F_ABC_Remark\"",
        "\"UseOrgId\"",
        "\"CreateOrgId\"",
        "\"Mobile\"",
        "\"DocumentStatus\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} in {raw}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert!(raw.contains(name));
    let v: Value = serde_json::from_str(&raw).unwrap();
    let view = &v["Result"]["Result"];
    assert_eq!(view["Name"], name);
    assert_eq!(view["DeptId"]["Number"], "BM00005");
    assert_eq!(view["DeptId"]["Name"][0]["Value"], "后端组");
    // Updating keeps the positions; NeedUpDateFields limits what changes.
    let id = view["Id"].as_i64().unwrap();
    let upd = json!({"NeedUpDateFields": ["FPostName"], "Model": {"FID": id, "FPostName": "架构师", "FName": "不应修改"}});
    assert_ok(&sb.op("Save", json!(["BD_Empinfo", upd])).await);
    let v = sb.op("View", json!(["BD_Empinfo", {"Id": id}])).await;
    let keys: Vec<&String> = v["Result"]["Result"].as_object().unwrap().keys().collect();
    assert_eq!(keys[1], "PostName");
    assert_eq!(v["Result"]["Result"]["PostName"], "架构师");
    assert_eq!(v["Result"]["Result"]["Name"], name);
    // Query returns the same text, \u-escaped input included.
    let escaped = r#"{"data":"{\"FormId\":\"BD_Empinfo\",\"FieldKeys\":\"FName\",\"FilterString\":\"FName like '%\u6b27\u9633%'\"}"}"#;
    let rows: Value = sb
        .post_raw(
            &format!("{STUB}.DynamicFormService.ExecuteBillQuery"),
            escaped.to_owned(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        rows.as_array().unwrap().iter().any(|r| r[0] == name),
        "{rows}"
    );
}

#[tokio::test]
async fn queries_filter_order_and_page() {
    let cfg = KingdeeSandboxConfig {
        query_limit_cap: 50,
        ..KingdeeSandboxConfig::default()
    };
    let sb = logged_in(cfg).await;
    let q = |data: Value| sb.op("ExecuteBillQuery", json!([data]));
    let all = q(json!({"FormId": "BD_Empinfo", "FieldKeys": "FStaffNumber", "Limit": 1000})).await;
    assert_eq!(all.as_array().unwrap().len(), 50, "capped");
    let page = q(json!({"FormId": "BD_Empinfo", "FieldKeys": "FStaffNumber", "OrderString": "FStaffNumber DESC", "StartRow": 2, "Limit": 3})).await;
    assert_eq!(page, json!([["E0238"], ["E0237"], ["E0236"]]));
    let top = q(json!({"FormId": "BD_Empinfo", "FieldKeys": "FStaffNumber", "TopRowCount": 4, "StartRow": 2, "Limit": 10})).await;
    assert_eq!(top, json!([["E0003"], ["E0004"]]));
    let r = q(
        json!({"FormId": "BD_Empinfo", "FieldKeys": "FStaffNumber,FForbidStatus",
        "FilterString": "FStaffNumber in ('E0001','E0037','E0100') and FForbidStatus <> 'B'"}),
    )
    .await;
    assert_eq!(r, json!([["E0001", "A"], ["E0100", "A"]]));
    let r = q(json!({"FormId": "BD_Department", "FieldKeys": "FNumber,FName,FParentID.FName,FParentID",
        "FilterString": "FParentID.FNumber = 'BM00004' or FName like '%办事处'", "OrderString": "FNumber"})).await;
    let names: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[1].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "后端组",
            "前端组",
            "测试组",
            "杭州办事处",
            "上海办事处",
            "南京办事处",
            "深圳办事处",
            "广州办事处",
            "北京办事处"
        ]
    );
    assert!(
        r[0][3].as_i64().unwrap() > 0,
        "a reference alone is its internal id"
    );
    // BillQuery: objects keyed as requested.
    let r = sb.op("BillQuery", json!([{"FormId": "BD_MATERIAL", "FieldKeys": "FNumber,FName,FBaseUnitId.FName", "FilterString": "FNumber = 'WL0001'"}])).await;
    assert_eq!(
        r,
        json!([{"FNumber": "WL0001", "FName": "笔记本电脑", "FBaseUnitId.FName": "台"}])
    );
    // Filter syntax error.
    let r =
        q(json!({"FormId": "BD_MATERIAL", "FieldKeys": "FNumber", "FilterString": "FNumber = "}))
            .await;
    assert_query_err(&r, 8);
    // Condition-array filter (recent versions).
    let r = q(json!({"FormId": "BD_MATERIAL", "FieldKeys": "FNumber", "FilterString": [
        {"Left": "", "FieldName": "FNumber", "Compare": "67", "Value": "WL0002", "Right": "", "Logic": 0}]})).await;
    assert_eq!(r, json!([["WL0002"]]));
}

#[tokio::test]
async fn batch_save_reports_bad_rows_by_dindex() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let dept = |n: &str, parent: &str| json!({"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": n, "FName": format!("批量{n}"), "FParentID": {"FNumber": parent}});
    let rows = json!([
        dept("B1", "BM00003"),
        dept("B2", "NOPE"),
        dept("B3", "BM00003"),
        dept("B1", "BM00003")
    ]);
    let r = sb
        .op("BatchSave", json!(["BD_Department", {"Model": rows}]))
        .await;
    let s = status(&r);
    assert_eq!(s["IsSuccess"], false);
    let ok: Vec<(String, u64)> = s["SuccessEntitys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Number"].as_str().unwrap().to_owned(),
                e["DIndex"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ok, [("B1".to_owned(), 0), ("B3".to_owned(), 2)]);
    let bad: Vec<u64> = s["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["DIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [1, 3]);
    assert!(s["Errors"][0]["Message"].as_str().unwrap().contains("NOPE"));
    assert!(
        s["Errors"][1]["Message"]
            .as_str()
            .unwrap()
            .contains("已经存在")
    );
    // With BatchCount, DIndex is the index inside each batch.
    let rows = json!([
        dept("C1", "BM00003"),
        dept("C2", "BM00003"),
        dept("C3", "X"),
        dept("C4", "X")
    ]);
    let r = sb
        .op(
            "BatchSave",
            json!(["BD_Department", {"BatchCount": 2, "Model": rows}]),
        )
        .await;
    let bad: Vec<u64> = status(&r)["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["DIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [0, 1]);
    // All good → IsSuccess.
    let rows = json!([dept("D1", "BM00003"), dept("D2", "BM00003")]);
    let r = sb
        .op(
            "BatchSave",
            json!(["BD_Department", {"Model": rows, "NeedReturnFields": ["FNumber", "FName"]}]),
        )
        .await;
    assert_ok(&r);
    assert_eq!(
        r["Result"]["NeedReturnData"][1],
        json!({"FNumber": "D2", "FName": "批量D2"})
    );
}

#[tokio::test]
async fn voucher_must_balance() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let voucher = |d: f64, c: f64| {
        json!({"Model": {
        "FDate": "2026-03-31", "FYear": 2026, "FPeriod": 3, "FVoucherGroupID": {"FNumber": "PRE001"},
        "FEntity": [
            {"FExplanation": "报销差旅费", "FAccountID": {"FNumber": "6602"}, "FDebit": d, "FCurrencyID": {"FNumber": "PRE001"}},
            {"FExplanation": "报销差旅费", "FAccountID": {"FNumber": "1002"}, "FCredit": c},
        ]}})
    };
    let m = assert_err(
        &sb.op("Save", json!(["GL_VOUCHER", voucher(100.0, 99.99)]))
            .await,
        11,
    );
    assert!(m.contains("借贷不平衡"), "{m}");
    let r = sb
        .op("Save", json!(["GL_VOUCHER", voucher(100.1, 100.1)]))
        .await;
    assert_ok(&r);
    assert_eq!(r["Result"]["Number"], "PZ000001");
    let rows = sb.op("ExecuteBillQuery", json!([{"FormId": "GL_VOUCHER", "FieldKeys": "FBillNo,FAccountID.FName,FDebit,FCredit"}])).await;
    assert_eq!(
        rows,
        json!([
            ["PZ000001", "管理费用", 100.1, null],
            ["PZ000001", "银行存款", null, 100.1]
        ])
    );
}

#[tokio::test]
async fn operations_forbid_push_workflow_and_metadata() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    // Forbid / Enable through both spellings, lower-case method names too.
    let r = sb
        .op(
            "ExcuteOperation",
            json!(["BD_Empinfo", "Forbid", {"Numbers": ["E0001"]}]),
        )
        .await;
    assert_ok(&r);
    let st = sb.op("ExecuteBillQuery", json!([{"FormId": "BD_Empinfo", "FieldKeys": "FForbidStatus", "FilterString": "FStaffNumber = 'E0001'"}])).await;
    assert_eq!(st, json!([["B"]]));
    assert_err(
        &sb.op(
            "excuteoperation",
            json!(["BD_Empinfo", "Forbid", {"Numbers": ["E0001"]}]),
        )
        .await,
        11,
    );
    assert_ok(
        &sb.op(
            "ExecuteOperation",
            json!(["BD_Empinfo", "Enable", {"Numbers": ["E0001"]}]),
        )
        .await,
    );
    assert_err(
        &sb.op(
            "ExcuteOperation",
            json!(["ER_ExpReimbursement", "Forbid", {"Numbers": ["x"]}]),
        )
        .await,
        12,
    );
    assert_err(
        &sb.op(
            "ExcuteOperation",
            json!(["BD_Empinfo", "", {"Numbers": ["E0001"]}]),
        )
        .await,
        3,
    );
    // Named keys with `data` as a JSON string and `opNumber`.
    let named = json!({"formid": "BD_Empinfo", "opNumber": "Forbid", "data": json!({"Ids": ""}).to_string()});
    assert_err(
        &sb.post(&format!("{STUB}.DynamicFormService.ExcuteOperation"), named)
            .await,
        8,
    );

    // Push: audited expense request → reimbursement.
    let req = json!({"Model": {"FDate": "2026-03-01", "FOrgID": org(), "FStaffID": {"FNumber": "E0002"},
        "FDeptID": {"FNumber": "BM00005"}, "FReason": "参加技术大会",
        "FEntity": [{"FExpenseItemID": {"FNumber": "FYXM08"}, "FOrgAmount": 3000}]}});
    let r = sb.op("Save", json!(["ER_ExpenseRequest", req])).await;
    assert_ok(&r);
    let no = r["Result"]["Number"].as_str().unwrap().to_owned();
    assert!(no.starts_with("FYSQ"));
    assert_err(
        &sb.op(
            "Push",
            json!(["ER_ExpenseRequest", {"Numbers": [no], "TargetFormId": "ER_ExpReimbursement"}]),
        )
        .await,
        11,
    );
    assert_ok(
        &sb.op("Submit", json!(["ER_ExpenseRequest", {"Numbers": [no]}]))
            .await,
    );
    // WorkflowAudit approve (B → C).
    assert_ok(
        &sb.op(
            "WorkflowAudit",
            json!([{"FormId": "ER_ExpenseRequest", "Numbers": [no], "ApprovalType": 1}]),
        )
        .await,
    );
    let r = sb
        .op(
            "Push",
            json!(["ER_ExpenseRequest", {"Numbers": [no], "TargetFormId": "ER_ExpReimbursement"}]),
        )
        .await;
    assert_ok(&r);
    let target = status(&r)["SuccessEntitys"][0]["Number"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = sb
        .op("View", json!(["ER_ExpReimbursement", {"Number": target}]))
        .await;
    assert_eq!(v["Result"]["Result"]["Causa"], "参加技术大会");
    assert_eq!(v["Result"]["Result"]["ExpAmountSum"], 3000);

    // QueryBusinessInfo.
    let r = sb
        .op(
            "QueryBusinessInfo",
            json!([{"FormId": "ER_ExpReimbursement"}]),
        )
        .await;
    assert_ok(&r);
    let info = &r["Result"]["NeedReturnData"];
    assert_eq!(info["Id"], "ER_ExpReimbursement");
    assert_eq!(info["Entrys"][1]["ViewName"], "ER_ExpenseReimbEntry");
    // Async "query" mode of the SDKs answers Complete at once.
    let body = json!({"formid": "BD_Department", "data": {"Number": "BM00002"}, "beginmethod": "BeginQueryImpl", "querymethod": "QueryAsyncResult"});
    let r = sb
        .post(&format!("{STUB}.DynamicFormService.View"), body)
        .await;
    assert_eq!(r["Status"], 2);
    assert_eq!(r["Result"]["Result"]["Result"]["Name"], "总经办");
}

#[tokio::test]
async fn faults_counters_inventory_and_reset() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let view = json!(["BD_Department", {"Number": "BM00002"}]);
    // MsgCode 14 for the next two calls.
    sb.admin_post("faults", json!({"msgcode14_next": 2})).await;
    assert!(assert_err(&sb.op("View", view.clone()).await, 14).contains("调用频率"));
    assert_query_err(
        &sb.op(
            "ExecuteBillQuery",
            json!([{"FormId": "BD_Department", "FieldKeys": "FNumber"}]),
        )
        .await,
        14,
    );
    assert_ok(&sb.op("View", view.clone()).await);
    sb.admin_post("faults", json!({"msgcode14_rate": 1.0}))
        .await;
    assert_err(&sb.op("View", view.clone()).await, 14);
    sb.admin_post("faults", json!({"msgcode14_rate": 0.0, "latency_ms": 150}))
        .await;
    let t = std::time::Instant::now();
    assert_ok(&sb.op("View", view.clone()).await);
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    // Outage → HTTP 503.
    sb.admin_post("faults", json!({"latency_ms": 0, "outage_seconds": 30}))
        .await;
    let resp = sb
        .post_raw(
            &format!("{STUB}.DynamicFormService.View"),
            json!({"parameters": view}).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 503);
    sb.admin_post("faults", json!({"outage_seconds": 0})).await;
    assert_ok(&sb.op("View", view.clone()).await);
    let c = sb.admin_get("counters").await;
    assert_eq!(c["calls"]["View"], 5, "{c}"); // the 503 answer comes before any counting
    assert_eq!(c["errors_by_msgcode"]["14"], 3, "{c}");
    assert_eq!(c["http_503"], 1);
    assert_eq!(c["logins"], 1);

    // Inventory below the safety level, found by a query.
    let r = sb
        .admin_post(
            "inventory",
            json!({"material": "WL0003", "qty": 2, "safety_stock": 15}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let rows = sb.op("ExecuteBillQuery", json!([{"FormId": "STK_Inventory",
        "FieldKeys": "FMaterialId.FNumber,FMaterialId.FName,FStockId.FName,FBaseQty,FMaterialId.FSafeStock",
        "FilterString": "FMaterialId.FNumber = 'WL0003'"}])).await;
    assert_eq!(rows, json!([["WL0003", "无线鼠标", "总仓", 2.0, 15.0]]));
    let r = sb
        .admin_post("inventory", json!({"material": "NOPE", "qty": 1}))
        .await;
    assert_eq!(r["ok"], false);

    // State dump and reset.
    assert_ok(&sb.op("Save", json!(["BD_Department", {"Model": {"FCreateOrgId": org(), "FUseOrgId": org(), "FNumber": "R1", "FName": "重置前"}}])).await);
    let st = sb.admin_get("state").await;
    assert_eq!(st["forms"]["BD_Department"], 33);
    let dump = sb.admin_get("state/BD_Department").await;
    assert_eq!(dump["count"], 33);
    assert_eq!(dump["records"][32]["View"]["Name"], "重置前");
    sb.admin_post("reset", json!({})).await;
    assert_eq!(sb.admin_get("state").await["forms"]["BD_Department"], 32);
    assert_eq!(sb.admin_get("counters").await["logins"], 0);
    assert_err(&sb.op("View", view).await, 1);
    // The admin SSO signer produces links the entry accepts.
    let link = sb.admin_get("sso-link?user=E0001").await;
    let html = sb
        .http
        .get(format!("{}{}", sb.origin, link["path"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("content=\"ok\""), "{html}");
}

#[tokio::test]
async fn seed_without_org_and_generated_seed() {
    let cfg = KingdeeSandboxConfig {
        seed_org: false,
        ..KingdeeSandboxConfig::default()
    };
    let sb = logged_in(cfg).await;
    let st = sb.admin_get("state").await;
    assert_eq!(st["forms"]["BD_Department"], 0);
    assert_eq!(st["forms"]["BD_Empinfo"], 0);
    assert_eq!(
        st["forms"]["SEC_User"], 2,
        "Administrator and the integration user"
    );
    let seed = sandbox::seed::Seed::generate(2_000, 100);
    let mut big = start_with_seed(KingdeeSandboxConfig::default(), &seed).await;
    big.login().await;
    let st = big.admin_get("state").await;
    assert_eq!(st["forms"]["BD_Department"], 100);
    assert_eq!(st["forms"]["BD_Empinfo"], 2_000);
}

/// An expense claim with two entry rows (FYXM01): Save → Submit → Audit takes
/// `FDocumentStatus` A → B → C (View and ExecuteBillQuery agree); an audited bill cannot be
/// deleted; UnAudit returns it to D (重新审核, protocol §2.3), where Delete works; an
/// unaudited (A) bill is deleted at once.
#[tokio::test]
async fn expense_claim_two_rows_submit_audit_unaudit_delete() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let model = json!({"Model": {
        "FBillTypeID": {"FNumber": "FYBXD001_SYS"},
        "FDate": "2026-04-01",
        "FOrgID": org(),
        "FProposerID": {"FSTAFFNUMBER": "E0002"},
        "FRequestDeptID": {"FNumber": "BM00005"},
        "FCurrencyID": {"FNumber": "PRE001"},
        "FCausa": "北京出差（客户验收）",
        "FEntity": [
            {"FExpID": {"FNumber": "FYXM01"}, "FExpenseAmount": 1280.5},
            {"FExpID": {"FNumber": "FYXM01"}, "FExpenseAmount": "399.50"},
        ],
    }});
    let r = sb
        .op("Save", json!(["ER_ExpReimbursement", model.clone()]))
        .await;
    assert_ok(&r);
    let no = r["Result"]["Number"].as_str().unwrap().to_owned();
    let numbers = json!({"Numbers": [no]});
    let view = || sb.op("View", json!(["ER_ExpReimbursement", {"Number": no}]));
    let query_status = || {
        sb.op(
            "ExecuteBillQuery",
            json!([{"FormId": "ER_ExpReimbursement", "FieldKeys": "FBillNo,FDocumentStatus",
                    "FilterString": format!("FBillNo = '{no}'")}]),
        )
    };
    let v = view().await;
    let bill = &v["Result"]["Result"];
    assert_eq!(bill["DocumentStatus"], "A");
    assert_eq!(bill["ExpAmountSum"], 1680);
    let rows = bill["ER_ExpenseReimbEntry"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ExpID"]["Number"], "FYXM01");
    assert_eq!(rows[0]["ExpID"]["Name"][0]["Value"], "差旅费");
    assert_eq!(
        (rows[0]["Seq"].as_i64(), rows[1]["Seq"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(query_status().await, json!([[no, "A"]]));

    for (op, after) in [("Submit", "B"), ("Audit", "C")] {
        let r = sb.op(op, json!(["ER_ExpReimbursement", numbers])).await;
        assert_ok(&r);
        assert_eq!(status(&r)["SuccessEntitys"][0]["Number"], no.as_str());
        assert_eq!(view().await["Result"]["Result"]["DocumentStatus"], after);
        assert_eq!(query_status().await, json!([[no, after]]));
    }
    // Audited: Delete is refused with the observed message (§2.3), the bill stays.
    assert_eq!(
        assert_err(
            &sb.op("Delete", json!(["ER_ExpReimbursement", numbers]))
                .await,
            11
        ),
        "只能删除创建，暂存，重新审核状态的数据!"
    );
    assert_eq!(query_status().await, json!([[no, "C"]]));
    // UnAudit: C → D (重新审核), not back to A.
    assert_ok(
        &sb.op("UnAudit", json!(["ER_ExpReimbursement", numbers]))
            .await,
    );
    assert_eq!(query_status().await, json!([[no, "D"]]));
    // A second UnAudit is refused (only audited data can be un-audited).
    assert_err(
        &sb.op("UnAudit", json!(["ER_ExpReimbursement", numbers]))
            .await,
        11,
    );
    // D can be submitted and audited again, un-audited, then deleted.
    for op in ["Submit", "Audit", "UnAudit"] {
        assert_ok(&sb.op(op, json!(["ER_ExpReimbursement", numbers])).await);
    }
    assert_ok(
        &sb.op("Delete", json!(["ER_ExpReimbursement", numbers]))
            .await,
    );
    assert_eq!(query_status().await, json!([]));
    assert_err(&view().await, 10);

    // An unaudited (A) bill is deleted at once.
    let r = sb.op("Save", json!(["ER_ExpReimbursement", model])).await;
    assert_ok(&r);
    let id = r["Result"]["Id"].as_i64().unwrap();
    assert_ok(
        &sb.op(
            "Delete",
            json!(["ER_ExpReimbursement", {"Ids": id.to_string()}]),
        )
        .await,
    );
    assert_err(
        &sb.op("View", json!(["ER_ExpReimbursement", {"Id": id}]))
            .await,
        10,
    );
}

/// The extension field `F_DDInstanceId` (钉钉审批实例) on ER_ExpReimbursement and GL_VOUCHER:
/// saved, shown by View under its own key, returned by ExecuteBillQuery and BillQuery in
/// `FieldKeys`, usable in `FilterString` (`=`, `in`, `is null`, condition array), and listed
/// by QueryBusinessInfo with its caption.
#[tokio::test]
async fn extension_field_dd_instance_id() {
    let sb = logged_in(KingdeeSandboxConfig::default()).await;
    let mut saved = Vec::new();
    for inst in ["abc", "proc-inst-0002", ""] {
        let mut m = reimbursement("钉钉审批同步", &[88.0, 12.0]);
        if !inst.is_empty() {
            m["Model"]["F_DDInstanceId"] = json!(inst);
        }
        let r = sb.op("Save", json!(["ER_ExpReimbursement", m])).await;
        assert_ok(&r);
        saved.push(r["Result"]["Number"].as_str().unwrap().to_owned());
    }
    let q = |filter: Value| {
        sb.op(
            "ExecuteBillQuery",
            json!([{"FormId": "ER_ExpReimbursement",
                    "FieldKeys": "FBillNo,F_DDInstanceId,FDocumentStatus,FExpAmountSum",
                    "FilterString": filter, "OrderString": "FBillNo"}]),
        )
    };
    assert_eq!(
        q(json!("F_DDInstanceId = 'abc'")).await,
        json!([[saved[0], "abc", "A", 100]])
    );
    assert_eq!(
        q(json!(
            "F_DDInstanceId in ('abc','proc-inst-0002') and FDocumentStatus = 'A'"
        ))
        .await
        .as_array()
        .unwrap()
        .len(),
        2
    );
    assert_eq!(
        q(json!("F_DDInstanceId is null")).await,
        json!([[saved[2], null, "A", 100]])
    );
    assert_eq!(q(json!("F_DDInstanceId = 'nope'")).await, json!([]));
    // Keys bind without case, like every field key.
    assert_eq!(
        q(json!("f_ddinstanceid = 'proc-inst-0002'")).await[0][0],
        saved[1].as_str()
    );
    assert_eq!(
        q(
            json!([{"Left": "", "FieldName": "F_DDInstanceId", "Compare": "67", "Value": "abc",
                  "Right": "", "Logic": 0}])
        )
        .await[0][1],
        "abc"
    );
    // Entry fields next to it: one row per entry row, the header value on each.
    let rows = sb
        .op(
            "ExecuteBillQuery",
            json!([{"FormId": "ER_ExpReimbursement", "FieldKeys": "F_DDInstanceId,FExpID.FNumber,FExpenseAmount",
                    "FilterString": "F_DDInstanceId = 'abc'"}]),
        )
        .await;
    assert_eq!(rows, json!([["abc", "FYXM01", 88], ["abc", "FYXM01", 12]]));
    let r = sb
        .op(
            "BillQuery",
            json!([{"FormId": "ER_ExpReimbursement", "FieldKeys": "FBillNo,F_DDInstanceId",
                    "FilterString": "F_DDInstanceId = 'abc'"}]),
        )
        .await;
    assert_eq!(r, json!([{"FBillNo": saved[0], "F_DDInstanceId": "abc"}]));
    let v = sb
        .op("View", json!(["ER_ExpReimbursement", {"Number": saved[0]}]))
        .await;
    assert_eq!(v["Result"]["Result"]["F_DDInstanceId"], "abc");
    // It survives Submit/Audit and an update that does not name it.
    for op in ["Submit", "Audit"] {
        assert_ok(
            &sb.op(op, json!(["ER_ExpReimbursement", {"Numbers": [saved[0]]}]))
                .await,
        );
    }
    assert_eq!(
        q(json!("F_DDInstanceId = 'abc'")).await,
        json!([[saved[0], "abc", "C", 100]])
    );

    // GL_VOUCHER.
    let voucher = json!({"Model": {
    "FDate": "2026-04-30", "FYear": 2026, "FPeriod": 4, "FVoucherGroupID": {"FNumber": "PRE001"},
    "F_DDInstanceId": "abc",
    "FEntity": [
        {"FExplanation": "钉钉审批报销", "FAccountID": {"FNumber": "6602"}, "FDebit": 100},
        {"FExplanation": "钉钉审批报销", "FAccountID": {"FNumber": "1002"}, "FCredit": 100},
    ]}});
    let r = sb.op("Save", json!(["GL_VOUCHER", voucher])).await;
    assert_ok(&r);
    let vno = r["Result"]["Number"].as_str().unwrap().to_owned();
    let rows = sb
        .op(
            "ExecuteBillQuery",
            json!([{"FormId": "GL_VOUCHER", "FieldKeys": "FBillNo,F_DDInstanceId",
                    "FilterString": "F_DDInstanceId = 'abc'"}]),
        )
        .await;
    assert_eq!(rows, json!([[vno, "abc"]]));
    let v = sb.op("View", json!(["GL_VOUCHER", {"Number": vno}])).await;
    assert_eq!(v["Result"]["Result"]["F_DDInstanceId"], "abc");

    // Metadata: a header text field with its caption, on both forms.
    for form in ["ER_ExpReimbursement", "GL_VOUCHER"] {
        let r = sb.op("QueryBusinessInfo", json!([{"FormId": form}])).await;
        assert_ok(&r);
        let head = &r["Result"]["NeedReturnData"]["Entrys"][0];
        assert_eq!(head["EntityType"], "HeadEntity");
        let field = head["Fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Key"] == "F_DDInstanceId")
            .unwrap_or_else(|| panic!("{form}: {head}"));
        assert_eq!(field["Name"][0]["Value"], "钉钉审批实例");
        assert_eq!(field["MustInput"], false);
    }
}
