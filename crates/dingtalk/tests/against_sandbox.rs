//! The client against the independent DingTalk sandbox (`sandbox::dingtalk`, written from the
//! protocol notes only), served in-process on loopback: both token families, the department
//! tree and cursor-paged users, user and department create / update / delete, approvals
//! (v1.0 and oapi) through to the end, work notifications, the failed-callback list, and the
//! platform's limits — QPS pacing by the production limiter, token expiry mid-run, the IP ban
//! page and the monthly quota. Chinese text in every field; outcomes are checked in the
//! sandbox's state and counters, not only in the client's answers.
//!
//! Every test is fast (a few seconds at most) except
//! `slow_60s_paced_client_never_sees_90018`, which runs for 60 s by design (set
//! `DINGTALK_THROTTLE_SECS` to shorten it locally).
#![allow(clippy::unwrap_used)]

mod sandbox_support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use dingtalk::approvals::{
    Decision, FieldValue, FormField, IdsQuery, NewInstance, ProcessInstance,
};
use dingtalk::contacts::{DepartmentInput, UserInput};
use dingtalk::messages::{Recipients, WorkMessage};
use dingtalk::*;
use limits::Pacer;
use sandbox::dingtalk::{CallbackConfig, DingTalkSandboxConfig};
use sandbox::seed::Seed;
use sandbox_support::{Sandbox, has_cjk, standard_limiter};
use serde_json::json;

const EXPENSE: &str = "PROC-SBX-FYBX-7C1F3A9E-0001";
const LEAVE: &str = "PROC-SBX-QJ-2B8D6E41-0002";
const PURCHASE: &str = "PROC-SBX-CG-5E0A7C33-0003";

/// Depth of a department (root = 1) from the walked tree's parent links.
fn depth(parents: &HashMap<i64, i64>, mut id: i64) -> usize {
    let mut d = 1;
    while let Some(p) = parents.get(&id) {
        d += 1;
        id = *p;
        assert!(d < 100, "cycle in the department tree");
    }
    d
}

/// The `n`-th employed person of a seed and their main department.
fn person(seed: &Seed, n: usize) -> (sandbox::seed::User, DeptId) {
    let u = seed
        .users
        .iter()
        .filter(|u| u.active)
        .nth(n)
        .cloned()
        .unwrap();
    let d = DeptId(u.dept_ids[0] as i64);
    (u, d)
}

/// The userid of the first employed person of the builtin seed.
fn first_userid() -> UserId {
    UserId::new(person(&Seed::builtin(), 0).0.userid)
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// `/v1.0/oauth2/accessToken` and `/gettoken` both give the app's one token; each works in
/// both families; the cache fetches once for many calls; wrong credentials are permanent.
#[tokio::test]
async fn both_token_families_work_in_both_api_families() {
    let s = Sandbox::start().await;
    let pacer = standard_limiter("tokens");
    let v1 = s.client_with(TokenEndpoint::V1, pacer.clone());
    let oapi = s.client_with(TokenEndpoint::Oapi, pacer);

    let t1 = v1.access_token().await.unwrap();
    let t2 = oapi.access_token().await.unwrap();
    // One token per app while valid (a re-fetch renews it).
    assert_eq!(t1.expose(), t2.expose());
    assert!(t1.expires_at() > Instant::now() + Duration::from_secs(7000));
    assert_eq!(s.counter("tokens_issued").await, 1);
    assert_eq!(s.counter("tokens_renewed").await, 1);

    let ceo = first_userid();
    for c in [&v1, &oapi] {
        // oapi family (token in the query) …
        let u = c.user_get(&ceo).await.unwrap();
        assert!(has_cjk(&u.name), "{u:?}");
        // … and v1.0 family (token in the header).
        let schema = c
            .approval_form_schema(&ProcessCode::new(EXPENSE))
            .await
            .unwrap();
        assert_eq!(schema.name.as_deref(), Some("费用报销"));
        assert!(
            schema
                .schema_content
                .items
                .iter()
                .any(|i| i.label() == Some("费用明细"))
        );
    }
    assert_eq!(v1.tokens().fetch_count(), 1);
    assert_eq!(oapi.tokens().fetch_count(), 1);
    assert_eq!(s.counter("tokens_issued").await, 1);

    // Wrong secret: a permanent error from either endpoint, with the platform's code.
    for ep in [TokenEndpoint::V1, TokenEndpoint::Oapi] {
        let mut cfg = s.config(ep);
        cfg.credentials = Credentials::new(sandbox::dingtalk::DEFAULT_APP_KEY, "错误的密钥");
        let bad = DingTalkClient::new(cfg).unwrap();
        let e = bad.user_get(&ceo).await.unwrap_err();
        assert!(!e.is_retryable(), "{ep:?}: {e:?}");
        let code = e.code().unwrap().to_owned();
        assert!(
            code == "40089" || code == "invalidClientIdOrSecret",
            "{ep:?}: {e:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------------------------

/// The builtin company: `listsub` from 1 finds every department (5 levels with the root),
/// `listsubid` agrees level by level, and `user/list` over every department finds every
/// employed person of the seed with their Chinese names, titles and job numbers.
#[tokio::test]
async fn department_tree_walk_and_users_of_the_builtin_company() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();

    let tree = c.department_tree(DeptId::ROOT).await.unwrap();
    let seed_depts: HashMap<i64, &sandbox::seed::Department> =
        seed.departments.iter().map(|d| (d.id as i64, d)).collect();
    assert_eq!(tree.len(), seed.departments.len() - 1);
    let parents: HashMap<i64, i64> = tree
        .iter()
        .map(|d| (d.dept_id.get(), d.parent_id.unwrap().get()))
        .collect();
    for d in &tree {
        let sd = seed_depts[&d.dept_id.get()];
        assert_eq!(d.name, sd.name);
        assert!(has_cjk(&d.name));
        assert_eq!(d.parent_id.map(DeptId::get), sd.parent_id.map(|p| p as i64));
    }
    let max_depth = tree
        .iter()
        .map(|d| depth(&parents, d.dept_id.get()))
        .max()
        .unwrap();
    assert!(max_depth >= 5, "depth {max_depth} (root = 1)");

    // listsubid gives the same children as listsub.
    for parent in [1, 3, 20, 21, 22] {
        let ids: BTreeSet<i64> = c
            .department_list_sub_ids(DeptId(parent))
            .await
            .unwrap()
            .into_iter()
            .map(DeptId::get)
            .collect();
        let walked: BTreeSet<i64> = tree
            .iter()
            .filter(|d| d.parent_id == Some(DeptId(parent)))
            .map(|d| d.dept_id.get())
            .collect();
        assert_eq!(ids, walked, "children of {parent}");
    }

    // The deepest department in detail.
    let deepest = tree
        .iter()
        .max_by_key(|d| depth(&parents, d.dept_id.get()))
        .unwrap();
    let detail = c.department_get(deepest.dept_id).await.unwrap();
    assert_eq!(detail.name, deepest.name);
    assert_eq!(detail.parent_id, deepest.parent_id);

    // Every department's members (root included), de-duplicated (people may sit in several).
    let mut seen: HashMap<String, dingtalk::contacts::User> = HashMap::new();
    for dept in std::iter::once(DeptId::ROOT).chain(tree.iter().map(|d| d.dept_id)) {
        for u in c.users_by_department(dept).await.unwrap() {
            assert!(
                u.dept_id_list.contains(&dept.get()),
                "{u:?} listed in {dept}"
            );
            seen.insert(u.userid.to_string(), u);
        }
    }
    let employed: Vec<&sandbox::seed::User> = seed.users.iter().filter(|u| u.active).collect();
    assert!(employed.len() >= 200);
    assert_eq!(seen.len(), employed.len());
    for p in employed {
        let u = &seen[&p.userid];
        assert_eq!(u.name, p.name);
        assert!(has_cjk(&u.name));
        assert_eq!(u.title.as_deref(), Some(p.title.as_str()));
        assert_eq!(u.job_number.as_deref(), Some(p.job_number.as_str()));
    }
    assert_eq!(s.errors("90018").await, 0);
}

/// A generated company with 150 people in each of 8 departments (5 levels): `user/list`
/// needs two pages of ≤ 100 per department; the cursor is followed and nobody is lost or
/// repeated.
#[tokio::test]
async fn users_by_department_follow_the_cursor_past_100() {
    let seed = Seed::generate(1200, 8);
    let s = Sandbox::with(DingTalkSandboxConfig::default(), &seed).await;
    let c = s.client();

    let tree = c.department_tree(DeptId::ROOT).await.unwrap();
    assert_eq!(tree.len(), 8);
    let parents: HashMap<i64, i64> = tree
        .iter()
        .map(|d| (d.dept_id.get(), d.parent_id.unwrap().get()))
        .collect();
    assert!(
        tree.iter()
            .map(|d| depth(&parents, d.dept_id.get()))
            .max()
            .unwrap()
            >= 4
    );
    assert!(tree.iter().all(|d| has_cjk(&d.name)));

    // One page by hand: 100, more to come, and a cursor.
    let first = c.user_list_page(tree[0].dept_id, 0, 100).await.unwrap();
    assert_eq!(first.list.len(), 100);
    assert!(first.has_more);
    let next = first.next_cursor.unwrap();
    let second = c.user_list_page(tree[0].dept_id, next, 100).await.unwrap();
    assert_eq!(second.list.len(), 50);
    assert!(!second.has_more);

    let pages_before = s.calls("/topapi/v2/user/list").await;
    let mut all: Vec<String> = Vec::new();
    for d in &tree {
        let users = c.users_by_department(d.dept_id).await.unwrap();
        assert_eq!(users.len(), 150, "{}", d.name);
        assert!(users.iter().all(|u| has_cjk(&u.name)));
        all.extend(users.into_iter().map(|u| u.userid.to_string()));
    }
    assert_eq!(s.calls("/topapi/v2/user/list").await - pages_before, 16);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 1200);
    let expected: HashSet<&String> = seed.users.iter().map(|u| &u.userid).collect();
    assert_eq!(unique, expected);
    assert_eq!(s.counter("qps_rejections").await, 0);
}

/// get / by mobile / by unionid of a seed person; create, update and delete a person with
/// Chinese fields; the sandbox's state and events follow; unknown ids are business errors.
#[tokio::test]
async fn user_get_lookup_create_update_delete() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();

    let (p, p_dept) = person(&seed, 10);
    let u = c.user_get(&UserId::new(&p.userid)).await.unwrap();
    assert_eq!(u.name, p.name);
    assert_eq!(u.mobile.as_deref(), Some(p.mobile.as_str()));
    assert_eq!(
        u.unionid.as_ref().map(UnionId::as_str),
        Some(p.unionid.as_str())
    );
    assert!(u.dept_id_list.contains(&p_dept.get()));
    assert_eq!(u.title.as_deref(), Some(p.title.as_str()));
    assert_eq!(
        c.user_by_mobile(&p.mobile).await.unwrap().as_str(),
        p.userid
    );
    let by_union = c.user_by_unionid(&UnionId::new(&p.unionid)).await.unwrap();
    assert_eq!(by_union.userid.as_str(), p.userid);
    assert_eq!(by_union.contact_type, Some(0));

    // Create.
    let input = UserInput {
        name: Some("欧阳·娜娜".into()),
        mobile: Some("13712345678".into()),
        dept_id_list: Some(vec![DeptId(23), DeptId(12)]),
        job_number: Some("工号-二〇二四-001".into()),
        title: Some("首席数据科学家（兼）".into()),
        email: Some("nana.ouyang@example.cn".into()),
        work_place: Some("杭州市西湖区文三路 90 号".into()),
        remark: Some("由钉桥同步创建；备注含“引号”与《书名号》".into()),
        ..UserInput::default()
    };
    let created = c.user_create(&input).await.unwrap();
    let uid = created.userid.clone();
    assert!(created.union_id.is_some());
    let got = c.user_get(&uid).await.unwrap();
    assert_eq!(got.name, "欧阳·娜娜");
    assert_eq!(got.title.as_deref(), Some("首席数据科学家（兼）"));
    assert_eq!(got.job_number.as_deref(), Some("工号-二〇二四-001"));
    assert_eq!(got.work_place.as_deref(), Some("杭州市西湖区文三路 90 号"));
    assert_eq!(
        got.remark.as_deref(),
        Some("由钉桥同步创建；备注含“引号”与《书名号》")
    );
    let mut depts = got.dept_id_list.clone();
    depts.sort_unstable();
    assert_eq!(depts, vec![12, 23]);
    assert_eq!(
        c.user_by_mobile("13712345678").await.unwrap().as_str(),
        uid.as_str()
    );
    // Shown in the department listing.
    assert!(
        c.users_by_department(DeptId(12))
            .await
            .unwrap()
            .iter()
            .any(|u| u.userid == uid)
    );
    // The same mobile again: 60104.
    let dup = c.user_create(&input).await.unwrap_err();
    assert_eq!(dup.code(), Some("60104"), "{dup:?}");
    assert!(matches!(dup, Error::Business { .. }));

    // Update.
    c.user_update(&UserInput {
        userid: Some(uid.clone()),
        name: Some("欧阳娜娜".into()),
        title: Some("数据平台负责人".into()),
        dept_id_list: Some(vec![DeptId(11)]),
        ..UserInput::default()
    })
    .await
    .unwrap();
    let got = c.user_get(&uid).await.unwrap();
    assert_eq!(got.name, "欧阳娜娜");
    assert_eq!(got.title.as_deref(), Some("数据平台负责人"));
    assert_eq!(got.dept_id_list, vec![11]);
    assert_eq!(got.remark.as_deref(), input.remark.as_deref());

    // Delete.
    c.user_delete(&uid).await.unwrap();
    let e = c.user_get(&uid).await.unwrap_err();
    assert_eq!(e.code(), Some("33012"), "{e:?}");
    assert!(matches!(e, Error::Business { .. }) && !e.is_retryable());
    let e = c.user_by_mobile("13712345678").await.unwrap_err();
    assert_eq!(e.code(), Some("60121"), "{e:?}");
    let e = c.user_delete(&uid).await.unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");

    // The sandbox emitted the three contact events for this user.
    let events = s.admin_get("events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"].to_string().contains(uid.as_str()))
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user_add_org", "user_modify_org", "user_leave_org"]);
}

/// Create a department and a child below it, rename and re-order, read back, refuse to
/// delete a parent with children, delete both.
#[tokio::test]
async fn department_create_update_delete() {
    let s = Sandbox::start().await;
    let c = s.client();

    let parent = c
        .department_create(&DepartmentInput {
            name: Some("智能制造事业部（华东）".into()),
            parent_id: Some(DeptId(20)),
            order: Some(7),
            source_identifier: Some("金蝶部门BM00099".into()),
            ..DepartmentInput::default()
        })
        .await
        .unwrap();
    let child = c
        .department_create(&DepartmentInput {
            name: Some("工业互联网平台组".into()),
            parent_id: Some(parent),
            ..DepartmentInput::default()
        })
        .await
        .unwrap();
    let d = c.department_get(parent).await.unwrap();
    assert_eq!(d.name, "智能制造事业部（华东）");
    assert_eq!(d.parent_id, Some(DeptId(20)));
    assert_eq!(d.source_identifier.as_deref(), Some("金蝶部门BM00099"));
    let subs = c.department_list_sub(parent).await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].name, "工业互联网平台组");
    assert_eq!(subs[0].dept_id, child);

    // Same name under the same parent: 60008. A name with `-`: refused.
    let e = c
        .department_create(&DepartmentInput {
            name: Some("工业互联网平台组".into()),
            parent_id: Some(parent),
            ..DepartmentInput::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("60008"), "{e:?}");
    let e = c
        .department_create(&DepartmentInput {
            name: Some("华东-制造".into()),
            parent_id: Some(parent),
            ..DepartmentInput::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");

    c.department_update(&DepartmentInput {
        dept_id: Some(child),
        name: Some("工业互联网与数字孪生组".into()),
        order: Some(3),
        ..DepartmentInput::default()
    })
    .await
    .unwrap();
    let d = c.department_get(child).await.unwrap();
    assert_eq!(d.name, "工业互联网与数字孪生组");
    assert_eq!(d.order, Some(3));
    assert_eq!(d.parent_id, Some(parent));

    let e = c.department_delete(parent).await.unwrap_err();
    assert_eq!(e.code(), Some("60006"), "{e:?}");
    c.department_delete(child).await.unwrap();
    c.department_delete(parent).await.unwrap();
    let e = c.department_get(parent).await.unwrap_err();
    assert_eq!(e.code(), Some("60003"), "{e:?}");
    assert!(
        !c.department_tree(DeptId(20))
            .await
            .unwrap()
            .iter()
            .any(|d| d.dept_id == parent || d.dept_id == child)
    );

    let events = s.admin_get("events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "org_dept_create",
            "org_dept_create",
            "org_dept_modify",
            "org_dept_remove",
            "org_dept_remove"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

fn expense_form() -> Vec<FormField> {
    vec![
        FormField::text("报销事由", "赴北京拜访客户（中石化）差旅费用"),
        FormField::text("报销类别", "差旅报销"),
        FormField::table(
            "费用明细",
            vec![
                vec![
                    FormField::text("费用类型", "差旅费"),
                    FormField::text("金额（元）", "1200.50"),
                    FormField::text("发生日期", "2024-05-20"),
                    FormField::text("费用说明", "杭州→北京 高铁二等座"),
                ],
                vec![
                    FormField::text("费用类型", "招待费"),
                    FormField::text("金额（元）", "86"),
                    FormField::text("费用说明", "客户午餐（含发票）"),
                ],
            ],
        ),
        FormField::text("报销总金额（元）", "1286.50"),
    ]
}

fn running_tasks(inst: &ProcessInstance) -> Vec<(TaskId, UserId)> {
    inst.tasks
        .iter()
        .filter(|t| t.task_status.as_deref() == Some("RUNNING"))
        .map(|t| (t.task_id.unwrap(), t.userid.clone().unwrap()))
        .collect()
}

fn table_rows(inst: &ProcessInstance, label: &str) -> Vec<Vec<(String, String)>> {
    match inst.field(label).unwrap().typed() {
        FieldValue::Table(rows) => rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|f| match f.value {
                        FieldValue::Text(t) => (f.name, t),
                        other => (f.name, format!("{other:?}")),
                    })
                    .collect()
            })
            .collect(),
        other => panic!("{label} is not a table: {other:?}"),
    }
}

/// 费用报销 with a two-row detail table through v1.0: create, read back (the table's cells in
/// Chinese), agree every running task until the instance is finished, listed by instanceIds.
#[tokio::test]
async fn v1_expense_claim_runs_to_completion() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();
    let (p, dept) = person(&seed, 20);
    let originator = UserId::new(p.userid);

    let started_ms = s.sb.now_ms() - 1000;
    let req = NewInstance::new(EXPENSE, originator.clone(), Some(dept), expense_form());
    let id = c.approval_create(&req).await.unwrap();
    let inst = c.approval_get(&id).await.unwrap();
    assert_eq!(inst.status, "RUNNING");
    assert!(inst.title.contains("费用报销"), "{}", inst.title);
    assert_eq!(inst.originator_userid.as_ref(), Some(&originator));
    assert_eq!(
        inst.field("报销事由").unwrap().value.as_deref(),
        Some("赴北京拜访客户（中石化）差旅费用")
    );
    assert_eq!(
        inst.field("报销类别").unwrap().value.as_deref(),
        Some("差旅报销")
    );
    let rows = table_rows(&inst, "费用明细");
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains(&("费用说明".into(), "杭州→北京 高铁二等座".into())));
    assert!(rows[1].contains(&("费用类型".into(), "招待费".into())));
    assert!(rows[1].contains(&("金额（元）".into(), "86".into())));

    // Agree until finished (the template's default chain has two steps).
    let mut steps = 0;
    let mut inst = inst;
    while !inst.is_finished() {
        let tasks = running_tasks(&inst);
        assert_eq!(tasks.len(), 1, "{inst:?}");
        let (task, user) = tasks[0].clone();
        c.approval_execute(&id, task, &user, Decision::Agree, "同意，票据齐全。")
            .await
            .unwrap();
        // A finished task cannot be executed twice.
        let e = c
            .approval_execute(&id, task, &user, Decision::Agree, "重复同意")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Business { .. }), "{e:?}");
        steps += 1;
        assert!(steps <= 5);
        inst = c.approval_get(&id).await.unwrap();
    }
    assert_eq!(steps, 2);
    assert!(inst.is_approved(), "{inst:?}");
    assert!(inst.finish_time.is_some());
    assert!(
        inst.operation_records
            .iter()
            .any(|r| r["remark"] == "同意，票据齐全。")
    );

    let q = IdsQuery {
        statuses: Vec::new(),
        process_code: ProcessCode::new(EXPENSE),
        start_time: started_ms,
        end_time: None,
        user_ids: vec![originator],
        size: 20,
    };
    let page = c.approval_list_ids(&q, 0).await.unwrap();
    assert_eq!(page.ids, vec![id]);
    assert_eq!(page.next, None);
}

/// 请假 (date range) and 采购 (multi-select + table) through v1.0; the leave is terminated by
/// its originator; a refusal ends the purchase as COMPLETED + refuse.
#[tokio::test]
async fn v1_terminate_and_refuse() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();
    let (p, dept) = person(&seed, 30);
    let originator = UserId::new(p.userid);

    let leave = NewInstance::new(
        LEAVE,
        originator.clone(),
        Some(dept),
        vec![
            FormField::text("请假类型", "年假"),
            FormField::date_range(["开始时间", "结束时间"], "2024-10-01", "2024-10-07"),
            FormField::text("时长（天）", "5"),
            FormField::text("请假事由", "国庆回老家（四川·成都）探亲"),
        ],
    );
    let id = c.approval_create(&leave).await.unwrap();
    let inst = c.approval_get(&id).await.unwrap();
    let range = inst
        .form_component_values
        .iter()
        .find(|f| f.component_type.as_deref() == Some("DDDateRangeField"))
        .unwrap();
    assert_eq!(
        range.typed(),
        FieldValue::DateRange(["2024-10-01".into(), "2024-10-07".into()])
    );
    // Someone else than the originator may not terminate it.
    let other = UserId::new(person(&seed, 31).0.userid);
    let e = c
        .approval_terminate(&id, Some(&other), "越权撤销")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
    c.approval_terminate(&id, Some(&originator), "行程取消，撤回申请")
        .await
        .unwrap();
    let inst = c.approval_get(&id).await.unwrap();
    assert_eq!(inst.status, "TERMINATED");
    assert!(inst.is_finished() && !inst.is_approved());
    assert!(running_tasks(&inst).is_empty());

    let purchase = NewInstance::new(
        PURCHASE,
        originator.clone(),
        Some(dept),
        vec![
            FormField::text("采购事由", "算法组训练服务器扩容"),
            FormField::multi_select("采购类型", ["IT设备", "服务"]),
            FormField::text("期望交付日期", "2024-11-11"),
            FormField::table(
                "采购明细",
                vec![vec![
                    FormField::text("物品名称", "图形处理服务器"),
                    FormField::text("规格型号", "八卡·液冷"),
                    FormField::text("数量", "2"),
                    FormField::text("单价（元）", "350000"),
                ]],
            ),
            FormField::text("总价（元）", "700000"),
        ],
    );
    let id = c.approval_create(&purchase).await.unwrap();
    let inst = c.approval_get(&id).await.unwrap();
    assert_eq!(
        inst.field("采购类型").unwrap().typed(),
        FieldValue::MultiSelect(vec!["IT设备".into(), "服务".into()])
    );
    let (task, user) = running_tasks(&inst)[0].clone();
    c.approval_execute(
        &id,
        task,
        &user,
        Decision::Refuse,
        "预算不足，请下季度再申请",
    )
    .await
    .unwrap();
    let inst = c.approval_get(&id).await.unwrap();
    assert_eq!(inst.status, "COMPLETED");
    assert_eq!(inst.result.as_deref(), Some("refuse"));
    assert!(!inst.is_approved());

    // An unknown option is refused by the template.
    let bad = NewInstance::new(
        EXPENSE,
        originator,
        None,
        vec![
            FormField::text("报销事由", "测试"),
            FormField::text("报销类别", "不存在的类别"),
            FormField::text("报销总金额（元）", "1"),
        ],
    );
    let e = c.approval_create(&bad).await.unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
}

/// A comment (评论) on a running instance: both get APIs show it as an `ADD_REMARK` record by
/// the commenter with the text; an unknown instance, an unknown user and an empty text are
/// business errors; commenting emits no event.
#[tokio::test]
async fn v1_comment_shows_as_add_remark() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();
    let (p, dept) = person(&seed, 40);
    let originator = UserId::new(p.userid);
    let commenter = UserId::new(person(&seed, 41).0.userid);
    let leave = NewInstance::new(
        LEAVE,
        originator.clone(),
        Some(dept),
        vec![
            FormField::text("请假类型", "调休"),
            FormField::date_range(["开始时间", "结束时间"], "2024-12-02", "2024-12-02"),
            FormField::text("请假事由", "周末加班调休"),
        ],
    );
    let id = c.approval_create(&leave).await.unwrap();
    let events_before = s.admin_get("events").await["events"]
        .as_array()
        .unwrap()
        .len();
    let text = "已同步至金蝶：凭证 记-0042（钉桥自动评论）";
    c.approval_add_comment(&id, text, &commenter).await.unwrap();

    let inst = c.approval_get(&id).await.unwrap();
    assert_eq!(inst.status, "RUNNING");
    let last = inst.operation_records.last().unwrap();
    assert_eq!(last["type"], "ADD_REMARK", "{last}");
    assert_eq!(last["result"], "NONE");
    assert_eq!(last["remark"], text);
    assert_eq!(last["userId"], commenter.as_str());
    let o = c.approval_get_oapi(&id).await.unwrap();
    let last = o.operation_records.last().unwrap();
    assert_eq!(last["operation_type"], "ADD_REMARK", "{last}");
    assert_eq!(last["operation_result"], "NONE");
    assert_eq!(last["remark"], text);
    assert_eq!(last["userid"], commenter.as_str());
    let events_after = s.admin_get("events").await["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(events_before, events_after, "a comment emits no event");

    for (inst_id, text, user) in [
        (
            ProcessInstanceId::from("no-such-instance"),
            "评论",
            &commenter,
        ),
        (id.clone(), "", &commenter),
        (id.clone(), "评论", &UserId::from("no-such-user")),
    ] {
        let e = c
            .approval_add_comment(&inst_id, text, user)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Business { .. }), "{e:?}");
    }
    let e = c
        .approval_add_comment(&"no-such-instance".into(), "评论", &commenter)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("processInstanceNotExist"), "{e:?}");
}

/// The old oapi family: create 费用报销 with its table, get it (oapi spelling), list ids.
#[tokio::test]
async fn oapi_expense_claim_create_get_listids() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();
    let (p, dept) = person(&seed, 40);
    let originator = UserId::new(p.userid);
    let started_ms = s.sb.now_ms() - 1000;

    let mut ids = Vec::new();
    for _ in 0..3 {
        let req = NewInstance::new(EXPENSE, originator.clone(), Some(dept), expense_form());
        ids.push(c.approval_create_oapi(&req).await.unwrap());
    }
    let inst = c.approval_get_oapi(&ids[0]).await.unwrap();
    assert_eq!(inst.status, "RUNNING");
    assert!(inst.title.contains("费用报销"));
    assert_eq!(inst.originator_userid.as_ref(), Some(&originator));
    assert_eq!(
        inst.originator_dept_name.as_deref(),
        Some(seed.department(dept.get() as u64).unwrap().name.as_str()),
        "{inst:?}"
    );
    let rows = table_rows(&inst, "费用明细");
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains(&("费用类型".into(), "差旅费".into())));
    assert!(
        inst.tasks
            .iter()
            .any(|t| t.task_status.as_deref() == Some("RUNNING"))
    );
    // Also readable through v1.0, same content.
    let v1 = c.approval_get(&ids[0]).await.unwrap();
    assert_eq!(v1.title, inst.title);
    assert_eq!(table_rows(&v1, "费用明细"), rows);

    // listids with pages of 2.
    let q = IdsQuery {
        statuses: Vec::new(),
        process_code: ProcessCode::new(EXPENSE),
        start_time: started_ms,
        end_time: Some(s.sb.now_ms() + 60_000),
        user_ids: vec![originator],
        size: 2,
    };
    let p1 = c.approval_list_ids_oapi(&q, 0).await.unwrap();
    assert_eq!(p1.ids.len(), 2);
    let cursor: i64 = p1.next.as_deref().unwrap().parse().unwrap();
    let p2 = c.approval_list_ids_oapi(&q, cursor).await.unwrap();
    assert_eq!(p2.next, None);
    let listed: HashSet<ProcessInstanceId> = p1.ids.into_iter().chain(p2.ids).collect();
    assert_eq!(listed, ids.into_iter().collect());
}

// ---------------------------------------------------------------------------------------------
// Messages and events
// ---------------------------------------------------------------------------------------------

/// A markdown work notification to two people and one unknown id: task id, progress done,
/// the unknown id reported invalid, the message stored by the sandbox with its Chinese text.
#[tokio::test]
async fn work_notification_send_progress_result() {
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let c = s.client();
    let a = person(&seed, 50).0.userid;
    let b = person(&seed, 51).0.userid;

    let msg = WorkMessage::Markdown {
        title: "报销单已入账".into(),
        text: "### 金蝶凭证 PZ000123 已生成\n- 金额：**¥1,286.50**\n- 摘要：差旅费（北京）".into(),
    };
    let to = Recipients::users([a.as_str(), b.as_str(), "不存在的用户"]);
    let task = c.send_work_notification(&to, &msg).await.unwrap();
    let progress = c.work_notification_progress(task).await.unwrap();
    assert_eq!((progress.status, progress.progress_in_percent), (2, 100));
    let result = c.work_notification_result(task).await.unwrap();
    assert_eq!(result.invalid_user_id_list, vec!["不存在的用户".to_owned()]);
    assert!(result.failed_user_id_list.is_empty());

    let stored = s.admin_get("messages").await;
    let text = stored.to_string();
    assert!(text.contains("报销单已入账"), "{stored}");
    assert!(text.contains("差旅费（北京）"));
    assert!(text.contains(&a) && text.contains(&b));

    // A second text message, then an unknown task id.
    let t2 = c
        .send_work_notification(
            &Recipients::users([a.as_str()]),
            &WorkMessage::Text("您有一条待审批的费用报销单（张三，¥86.00）".into()),
        )
        .await
        .unwrap();
    assert_ne!(t2, task);
    let e = c
        .work_notification_progress(MessageTaskId(9_999_999_999))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Business { .. }), "{e:?}");
}

/// With a subscriber that is down, an event is retried and then kept for
/// `get_call_back_failed_result`; the client reads it (tag, data) and it is gone afterwards.
#[tokio::test]
async fn failed_callbacks_are_listed_once() {
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = DingTalkSandboxConfig {
        callback: Some(CallbackConfig {
            url: format!("http://{dead}/dingtalk/callback"),
            token: sandbox::dingtalk::DEFAULT_CALLBACK_TOKEN.into(),
            aes_key: sandbox::dingtalk::DEFAULT_CALLBACK_AES_KEY.into(),
            owner_key: None,
        }),
        callback_retry_delays: vec![Duration::from_millis(20), Duration::from_millis(20)],
        callback_timeout: Duration::from_millis(500),
        ..DingTalkSandboxConfig::default()
    };
    let s = Sandbox::with(cfg, &Seed::builtin()).await;
    let c = s.client();
    let created = c
        .user_create(&UserInput {
            name: Some("司马·光".into()),
            mobile: Some("13811112222".into()),
            dept_id_list: Some(vec![DeptId(33)]),
            title: Some("法务经理（外聘）".into()),
            ..UserInput::default()
        })
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let batch = loop {
        let b = c.failed_callbacks().await.unwrap();
        if !b.failed_list.is_empty() {
            break b;
        }
        assert!(Instant::now() < deadline, "no failed callback listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!batch.has_more);
    assert_eq!(batch.failed_list.len(), 1);
    let f = &batch.failed_list[0];
    assert_eq!(f.call_back_tag, "user_add_org");
    assert_eq!(f.corpid.as_deref(), Some(s.sb.corp_id()));
    assert!(f.event_time.is_some());
    let data = f.data().unwrap();
    assert_eq!(data["userId"], json!([created.userid.as_str()]), "{data}");
    assert_eq!(s.counter("callback_attempts").await, 3);
    assert_eq!(s.counter("callbacks_failed").await, 1);
    // Deleted once returned.
    let again = c.failed_callbacks().await.unwrap();
    assert!(again.failed_list.is_empty() && !again.has_more);
}

// ---------------------------------------------------------------------------------------------
// Limits: QPS, token expiry, IP ban, monthly quota
// ---------------------------------------------------------------------------------------------

/// **Slow: 60 seconds by design.** One client paced by the production limiter
/// (`ConnectionLimits::dingtalk(Standard)`) drives 12 concurrent workers over contacts and
/// workflow APIs against the sandbox's 20 QPS per app × API for 60 s: not a single 90018 /
/// `QpsLimitForAppkeyAndApi`, and the calls actually went at ≈ the allowed rate.
#[tokio::test]
async fn slow_60s_paced_client_never_sees_90018() {
    let secs: u64 = std::env::var("DINGTALK_THROTTLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = Seed::builtin();
    let s = Sandbox::start().await;
    let limiter = standard_limiter("dingtalk-60s");
    let c = s.client_with(TokenEndpoint::V1, limiter.clone());
    let (p, dept) = person(&seed, 60);
    let originator = UserId::new(p.userid);
    let inst = c
        .approval_create(&NewInstance::new(
            EXPENSE,
            originator,
            Some(dept),
            expense_form(),
        ))
        .await
        .unwrap();
    s.admin_post("counters/reset", json!({})).await;

    let people: Vec<String> = seed
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.userid.clone())
        .collect();
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..12usize {
        let c = c.clone();
        let people = people.clone();
        let inst = inst.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut errors = Vec::new();
            while Instant::now() < stop {
                let i = w * 1000 + n;
                let r = match (w % 4, i % 3) {
                    // contacts group: three different paths mixed
                    (0 | 1, 0) => c
                        .user_get(&UserId::new(&people[i % people.len()]))
                        .await
                        .map(drop),
                    (0 | 1, 1) => c.user_list_page(DeptId(3), 0, 10).await.map(drop),
                    (0 | 1, _) => c.department_list_sub(DeptId(20)).await.map(drop),
                    (2, _) => c
                        .department_get(DeptId(1 + (i % 33) as i64))
                        .await
                        .map(drop),
                    // workflow group (v1.0)
                    _ => c.approval_get(&inst).await.map(drop),
                };
                if let Err(e) = r {
                    errors.push(e.to_string());
                }
                n += 1;
            }
            (n, errors)
        }));
    }
    let mut calls = 0usize;
    for w in workers {
        let (n, errors) = w.await.unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        calls += n;
    }

    let counters = s.counters().await;
    assert_eq!(counters["qps_rejections"], 0, "{counters}");
    assert_eq!(counters["errors"].get("90018"), None, "{counters}");
    assert_eq!(
        counters["errors"].get("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
        None
    );
    let per_path = |p: &str| counters["calls"][p].as_u64().unwrap_or(0);
    let contacts = per_path("/topapi/v2/user/get")
        + per_path("/topapi/v2/user/list")
        + per_path("/topapi/v2/department/listsub")
        + per_path("/topapi/v2/department/get");
    let workflow = per_path("/v1.0/workflow/processInstances");
    assert_eq!(contacts + workflow, calls as u64, "{counters}");
    // The limiter paces each group at 0.97 × 20/s. Under no load the run reaches ≈ 19.4/s per
    // group; the floor is half of that so a busy CI machine does not make the test flaky,
    // while still showing the workers pushed well past what a 1-call-at-a-time loop would.
    let floor = (0.5 * 19.4 * secs as f64) as u64;
    assert!(
        contacts >= floor,
        "contacts {contacts} < {floor} in {secs}s"
    );
    assert!(
        workflow >= floor,
        "workflow {workflow} < {floor} in {secs}s"
    );
    // Each contacts API is paced on its own quota (per app × API).
    for path in ["/topapi/v2/user/get", "/topapi/v2/department/get"] {
        assert!(
            per_path(path) <= 20 * (secs + 1),
            "{path} {}",
            per_path(path)
        );
        assert_eq!(
            limiter.effective_rate(&dingtalk::contacts::group_for(path)),
            Some(20.0 * 0.97)
        );
    }
    eprintln!(
        "{secs}s paced run: {contacts} contacts calls ({:.1}/s), {workflow} workflow calls ({:.1}/s), 0 × 90018",
        contacts as f64 / secs as f64,
        workflow as f64 / secs as f64
    );
}

/// The control for the test above: without a pacer, a burst of 60 concurrent calls on one
/// API meets the sandbox's 20 QPS: typed `Throttled` (90018) with the documented 1 s wait.
#[tokio::test]
async fn unpaced_burst_is_answered_90018_as_throttled() {
    let s = Sandbox::start().await;
    let c = s.unpaced_client();
    c.access_token().await.unwrap();
    let calls = (0..60).map(|_| {
        let c = c.clone();
        async move { c.department_get(DeptId(3)).await }
    });
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!throttled.is_empty());
    for e in &throttled {
        assert!(
            matches!(e, Error::Throttled { code, retry_after: Some(d), .. }
                if code == "90018" && *d == Duration::from_secs(1)),
            "{e:?}"
        );
        assert!(e.is_retryable());
    }
    assert_eq!(s.errors("90018").await, throttled.len() as u64);
    // v1.0 spelling: 403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi.
    let calls = (0..60).map(|_| {
        let c = c.clone();
        async move {
            c.approval_form_schema(&ProcessCode::new(LEAVE))
                .await
                .map(drop)
        }
    });
    let results = futures::future::join_all(calls).await;
    let e = results.into_iter().find_map(Result::err).unwrap();
    assert!(
        matches!(&e, Error::Throttled { code, .. } if code == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
        "{e:?}"
    );
}

/// The sandbox expires the token mid-run (admin forced expiry, then a clock jump past its
/// lifetime): the next call is answered 42001 / `InvalidAuthentication`, the client refreshes
/// exactly once and the call succeeds — also when several calls hold the stale token.
#[tokio::test]
async fn token_expiry_mid_run_refreshes_once() {
    let s = Sandbox::start().await;
    let c = s.client();
    let ceo = first_userid();
    c.user_get(&ceo).await.unwrap();
    let first = c.access_token().await.unwrap();
    assert_eq!(c.tokens().fetch_count(), 1);

    // 1. Forced expiry, oapi call.
    let expired = s.admin_post("tokens/expire", json!({})).await;
    assert!(expired.to_string().contains('1'), "{expired}");
    let u = c.user_get(&ceo).await.unwrap();
    assert!(has_cjk(&u.name));
    assert_eq!(c.tokens().fetch_count(), 2);
    assert_eq!(s.errors("42001").await, 1);
    let second = c.access_token().await.unwrap();
    assert_ne!(first.expose(), second.expose());

    // 2. Forced expiry, v1.0 call.
    s.admin_post(
        "tokens/expire",
        json!({"app_key": sandbox::dingtalk::DEFAULT_APP_KEY}),
    )
    .await;
    c.approval_form_schema(&ProcessCode::new(EXPENSE))
        .await
        .unwrap();
    assert_eq!(c.tokens().fetch_count(), 3);
    assert_eq!(s.errors("InvalidAuthentication").await, 1);

    // 3. The sandbox clock jumps past the 7200 s lifetime while 8 calls are under way.
    s.admin_post("clock", json!({"advance_secs": 7201})).await;
    let calls = (0..8i64).map(|i| {
        let c = c.clone();
        async move { c.department_get(DeptId(2 + i)).await }
    });
    for r in futures::future::join_all(calls).await {
        let d = r.unwrap();
        assert!(has_cjk(&d.name));
    }
    assert_eq!(c.tokens().fetch_count(), 4, "one refresh for all 8 calls");
    assert_eq!(s.counter("tokens_issued").await, 4);
    assert!(s.errors("42001").await >= 2);
    assert_eq!(s.counter("qps_rejections").await, 0);
}

/// The per-IP ban: the HTML page (oapi caller) and the `{"status":1111}` JSON (v1.0 caller
/// accepting only JSON) are typed `Throttled` with a wait; the limiter pauses the group for
/// it; lifting the ban makes calls work again.
#[tokio::test]
async fn ip_ban_page_is_throttled_with_a_wait() {
    let s = Sandbox::start().await;
    let limiter = standard_limiter("ban");
    let c = s.client_with(TokenEndpoint::V1, limiter.clone());
    c.access_token().await.unwrap();

    s.admin_post("faults", json!({"ban_ip": "127.0.0.1"})).await;
    let e = c.user_get(&first_userid()).await.unwrap_err();
    match &e {
        Error::Throttled {
            code, retry_after, ..
        } => {
            assert_eq!(code, "ip-ban");
            assert_eq!(*retry_after, Some(Duration::from_secs(300)));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());
    // The production limiter honours the wait: the API's group is paused.
    assert!(
        limiter
            .paused_until(&dingtalk::contacts::group_for("/topapi/v2/user/get"))
            .is_some()
    );

    // v1.0 call (Accept: application/json) → the JSON form of the ban.
    let e = c
        .approval_form_schema(&ProcessCode::new(EXPENSE))
        .await
        .unwrap_err();
    match &e {
        Error::Throttled {
            code, retry_after, ..
        } => {
            assert_eq!(code, "ip-ban");
            // The sandbox's `wait` is the seconds left (≤ 300); the client reads it as minutes
            // (protocol §1.6 example: `wait: 5` for a 5-minute block) — either way ≥ 5 min.
            assert!(retry_after.unwrap() >= Duration::from_secs(300), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        limiter
            .paused_until(&dingtalk::approvals::group_for(
                "GET /v1.0/workflow/forms/schemas/processCodes"
            ))
            .is_some()
    );
    assert!(s.counter("banned_requests").await >= 2);
    assert!(s.admin_get("bans").await.to_string().contains("127.0.0.1"));

    // Lifted: a client with a fresh limiter works again (the token is still valid).
    s.admin_post("bans/clear", json!({})).await;
    let c2 = s.client();
    assert!(has_cjk(&c2.user_get(&first_userid()).await.unwrap().name));
}

/// The monthly quota: oapi 90020 and v1.0 `ApiCountLimitForOrg` are `QuotaExhausted`, not
/// retryable, and the client sends each call exactly once; contacts stay exempt.
#[tokio::test]
async fn monthly_quota_is_quota_exhausted_and_never_retried() {
    let seed = Seed::builtin();
    // A quota of 2 calls for the non-exempt APIs.
    let cfg = DingTalkSandboxConfig {
        monthly_quota: Some(2),
        ..DingTalkSandboxConfig::default()
    };
    let s = Sandbox::with(cfg, &seed).await;
    let c = s.client();
    let a = person(&seed, 70).0.userid;
    let to = Recipients::users([a.as_str()]);
    for i in 0..2 {
        c.send_work_notification(
            &to,
            &WorkMessage::Text(format!("第{i}条通知：月度对账完成")),
        )
        .await
        .unwrap();
    }
    let e = c
        .send_work_notification(&to, &WorkMessage::Text("第3条通知：超出额度".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::QuotaExhausted { code, message } if code == "90020" && has_cjk(message)),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(e.retry_after(), None);
    assert_eq!(
        s.calls("/topapi/message/corpconversation/asyncsend_v2")
            .await,
        3
    );
    // Contacts are exempt from the monthly quota.
    c.user_get(&UserId::new(&a)).await.unwrap();

    // The admin switch, v1.0 family: one call, one answer, no retry.
    s.admin_post("faults", json!({"quota_exhausted": true}))
        .await;
    let e = c
        .approval_form_schema(&ProcessCode::new(EXPENSE))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::QuotaExhausted { code, .. } if code == "Forbidden.AccessDenied.ApiCountLimitForOrg"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(
        s.calls("/v1.0/workflow/forms/schemas/processCodes").await,
        1
    );
    assert_eq!(s.counter("quota_rejections").await, 2);
    assert_eq!(c.tokens().fetch_count(), 1);
}

/// A throttling storm injected by the admin API surfaces as `Throttled` and tells the pacer,
/// which steps the group's rate down (the adaptive reaction of the production limiter).
#[tokio::test]
async fn throttling_storm_steps_the_limiter_down() {
    let s = Sandbox::start().await;
    let limiter = standard_limiter("storm");
    let c = s.client_with(TokenEndpoint::V1, limiter.clone());
    c.access_token().await.unwrap();
    s.admin_post("faults", json!({"storm_seconds": 5, "storm_rate": 1.0}))
        .await;
    let e = c.department_get(DeptId(3)).await.unwrap_err();
    assert!(
        matches!(&e, Error::Throttled { code, .. } if code == "90018"),
        "{e:?}"
    );
    let group = dingtalk::contacts::group_for("/topapi/v2/department/get");
    let rate = limiter.effective_rate(&group).unwrap();
    assert!(rate < 19.4, "rate {rate}");
    s.admin_post("faults", json!({"clear": true})).await;
    // After the hinted 1 s pause the next call goes through.
    assert!(has_cjk(&c.department_get(DeptId(3)).await.unwrap().name));
    let _ = limiter.acquire(&group).await;
}
