//! Contacts (protocol §2): tree walk, cursor paging over > 100 users, lookups, create /
//! update / delete with their errors, Chinese text everywhere.
#![allow(clippy::unwrap_used)]

mod dingtalk_support;

use std::collections::HashSet;

use dingtalk_support::*;
use sandbox::dingtalk::DingTalkSandboxConfig;
use sandbox::seed::Seed;
use serde_json::{Value, json};

fn is_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

#[tokio::test]
async fn tree_walk_reaches_depth_four_and_more() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    // Breadth-first walk with listsub from 1, tracking depth.
    let mut frontier = vec![(1u64, 1usize)];
    let mut seen = 1usize;
    let mut max_depth = 1;
    while let Some((id, depth)) = frontier.pop() {
        let r = s
            .oapi(
                &tok,
                "/topapi/v2/department/listsub",
                json!({"dept_id": id.to_string(), "language": "zh_CN"}),
            )
            .await;
        assert_eq!(r["errcode"], 0, "{r}");
        for d in r["result"].as_array().unwrap() {
            assert_eq!(d["parent_id"], id);
            assert!(is_chinese(d["name"].as_str().unwrap()));
            frontier.push((d["dept_id"].as_u64().unwrap(), depth + 1));
            seen += 1;
            max_depth = max_depth.max(depth + 1);
        }
    }
    assert!(max_depth >= 4, "depth {max_depth}");
    assert_eq!(seen, s.sandbox.org().depts.len());
    let ids = s
        .oapi(
            &tok,
            "/topapi/v2/department/listsubid",
            json!({"dept_id": 1}),
        )
        .await;
    assert!(!ids["result"]["dept_id_list"].as_array().unwrap().is_empty());
    let root = s
        .oapi(&tok, "/topapi/v2/department/get", json!({"dept_id": 1}))
        .await;
    assert_eq!(root["result"]["name"], "杭州示例科技有限公司");
    assert!(root["result"].get("parent_id").is_none());
    let missing = s
        .oapi(
            &tok,
            "/topapi/v2/department/get",
            json!({"dept_id": 999_999}),
        )
        .await;
    assert_eq!(missing["errcode"], 60003);
    let no_id = s.oapi(&tok, "/topapi/v2/department/get", json!({})).await;
    assert_eq!(no_id["errcode"], 40035);
}

#[tokio::test]
async fn user_list_pages_over_more_than_100_users() {
    let seed = Seed::generate(1000, 4);
    let s = start_with_seed(DingTalkSandboxConfig::default(), &seed).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let depts = s
        .oapi(
            &tok,
            "/topapi/v2/department/listsubid",
            json!({"dept_id": 1}),
        )
        .await;
    let mut all = HashSet::new();
    let mut biggest = 0;
    let mut walk = vec![1u64];
    while let Some(d) = walk.pop() {
        let subs = s
            .oapi(
                &tok,
                "/topapi/v2/department/listsubid",
                json!({"dept_id": d}),
            )
            .await;
        walk.extend(
            subs["result"]["dept_id_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap()),
        );
        let mut cursor = 0;
        let mut in_dept = 0;
        let mut pages = 0;
        loop {
            let r = s
                .oapi(
                    &tok,
                    "/topapi/v2/user/list",
                    json!({"dept_id": d, "cursor": cursor, "size": 100}),
                )
                .await;
            assert_eq!(r["errcode"], 0, "{r}");
            pages += 1;
            for u in r["result"]["list"].as_array().unwrap() {
                assert!(is_chinese(u["name"].as_str().unwrap()));
                assert!(
                    u["dept_id_list"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x.as_u64() == Some(d))
                );
                all.insert(u["userid"].as_str().unwrap().to_owned());
                in_dept += 1;
            }
            if r["result"]["has_more"] != true {
                break;
            }
            cursor = r["result"]["next_cursor"].as_u64().unwrap();
        }
        if in_dept > 100 {
            assert!(pages >= 2);
        }
        biggest = biggest.max(in_dept);
    }
    assert!(biggest > 100, "largest department has {biggest}");
    assert_eq!(all.len(), 1000);
    let _ = depts;

    // size > 100 and a string cursor.
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/list",
            json!({"dept_id": "2", "cursor": "0", "size": "101"}),
        )
        .await;
    assert_eq!(r["errcode"], 400002, "{r}");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/list",
            json!({"dept_id": "2", "cursor": "0", "size": "0"}),
        )
        .await;
    assert_eq!(r["errcode"], 400002);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/list",
            json!({"dept_id": 2, "size": 10}),
        )
        .await;
    assert_eq!(r["errcode"], 40035, "cursor is required");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/list",
            json!({"dept_id": "abc", "cursor": 0, "size": 10}),
        )
        .await;
    assert_eq!(r["errcode"], 400002);
}

#[tokio::test]
async fn users_and_departments_crud_with_chinese_text() {
    let s = start(DingTalkSandboxConfig::default()).await;
    s.no_qps_limit().await;
    let tok = s.token().await;
    let seed = Seed::builtin();
    let someone = seed.users.iter().find(|u| u.active).unwrap();

    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/get",
            json!({"userid": someone.userid, "language": "zh_CN"}),
        )
        .await;
    assert_eq!(r["result"]["name"], someone.name.as_str());
    assert_eq!(r["result"]["mobile"], someone.mobile.as_str());
    assert_eq!(r["result"]["job_number"], someone.job_number.as_str());
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/getbymobile",
            json!({"mobile": someone.mobile}),
        )
        .await;
    assert_eq!(r["result"]["userid"], someone.userid.as_str());
    let r = s
        .oapi(
            &tok,
            "/topapi/user/getbyunionid",
            json!({"unionid": someone.unionid}),
        )
        .await;
    assert_eq!(r["result"]["userid"], someone.userid.as_str());
    assert_eq!(r["result"]["contact_type"], 0);
    let r = s
        .oapi(&tok, "/topapi/v2/user/get", json!({"userid": "nobody"}))
        .await;
    assert_eq!(r["errcode"], 33012);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/getbymobile",
            json!({"mobile": "19999999999"}),
        )
        .await;
    assert_eq!(r["errcode"], 60121);
    let left = seed.users.iter().find(|u| !u.active).unwrap();
    let r = s
        .oapi(&tok, "/topapi/v2/user/get", json!({"userid": left.userid}))
        .await;
    assert_eq!(
        r["errcode"], 33012,
        "people who left are not in the organisation"
    );

    // Departments: create two levels, errors, update, delete.
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "数字化转型办公室", "parent_id": "1", "order": "5"}),
        )
        .await;
    assert_eq!(r["errcode"], 0, "{r}");
    let office = r["result"]["dept_id"].as_u64().unwrap();
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "数字化转型办公室", "parent_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 60008);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "坏-名字", "parent_id": 1}),
        )
        .await;
    assert_eq!(r["errcode"], 40035);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "孤儿部门", "parent_id": 424242}),
        )
        .await;
    assert_eq!(r["errcode"], 60004);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/create",
            json!({"name": "流程组", "parent_id": office}),
        )
        .await;
    let team = r["result"]["dept_id"].as_u64().unwrap();
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/update",
            json!({"dept_id": office, "parent_id": team}),
        )
        .await;
    assert_eq!(r["errcode"], 60010, "cycle");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/update",
            json!({"dept_id": team, "name": "流程与数据组"}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/update",
            json!({"dept_id": 1, "name": "x"}),
        )
        .await;
    assert_eq!(r["errcode"], 60018);

    // Users: create with Chinese fields, conflicts, update, delete.
    let body = json!({"name": "欧阳娜娜", "mobile": "13900001111", "dept_id_list": format!("{team}"),
        "title": "数据分析师", "job_number": "E9001", "work_place": "杭州市西湖区", "remark": "新入职（试用期）",
        "extension": "{\"爱好\":\"围棋\"}", "userid": "ouyang01"});
    let r = s.oapi(&tok, "/topapi/v2/user/create", body.clone()).await;
    assert_eq!(r["errcode"], 0, "{r}");
    assert_eq!(r["result"]["userid"], "ouyang01");
    assert!(r["result"]["unionId"].is_string());
    let r = s.oapi(&tok, "/topapi/v2/user/create", body.clone()).await;
    assert_eq!(r["errcode"], 60104, "mobile exists");
    let mut other = body.clone();
    other["mobile"] = json!("13900002222");
    let r = s.oapi(&tok, "/topapi/v2/user/create", other).await;
    assert_eq!(r["errcode"], 60102, "userid exists");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/create",
            json!({"name": "张三", "mobile": "abc", "dept_id_list": "1"}),
        )
        .await;
    assert_eq!(r["errcode"], 60103);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/create",
            json!({"name": "张三", "mobile": "13900003333"}),
        )
        .await;
    assert_eq!(r["errcode"], 40035);
    let r = s
        .oapi(&tok, "/topapi/v2/user/get", json!({"userid": "ouyang01"}))
        .await;
    assert_eq!(r["result"]["work_place"], "杭州市西湖区");
    assert_eq!(r["result"]["remark"], "新入职（试用期）");
    let ext: Value = serde_json::from_str(r["result"]["extension"].as_str().unwrap()).unwrap();
    assert_eq!(ext["爱好"], "围棋");

    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/delete",
            json!({"dept_id": office}),
        )
        .await;
    assert_eq!(r["errcode"], 60006, "has a sub-department");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/delete",
            json!({"dept_id": team}),
        )
        .await;
    assert_eq!(r["errcode"], 60005, "has members");
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/update",
            json!({"userid": "ouyang01", "name": "欧阳娜", "dept_id_list": [office]}),
        )
        .await;
    assert_eq!(r["errcode"], 0, "{r}");
    let r = s
        .oapi(&tok, "/topapi/user/listid", json!({"dept_id": office}))
        .await;
    assert_eq!(r["result"]["userid_list"], json!(["ouyang01"]));
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/department/delete",
            json!({"dept_id": team}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/delete",
            json!({"userid": "ouyang01"}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    let r = s
        .oapi(
            &tok,
            "/topapi/v2/user/delete",
            json!({"userid": "ouyang01"}),
        )
        .await;
    assert_eq!(r["errcode"], 33012);

    // Every change was recorded as an event.
    let ev = s.admin_get("events").await;
    let types: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "org_dept_create",
            "org_dept_create",
            "org_dept_modify",
            "user_add_org",
            "user_modify_org",
            "org_dept_remove",
            "user_leave_org"
        ]
    );
    let modify = &ev["events"][4]["payload"];
    assert_eq!(modify["diffInfo"]["prev"]["name"], "欧阳娜娜");
    assert_eq!(modify["diffInfo"]["curr"]["name"], "欧阳娜");
    assert_eq!(modify["userId"], json!(["ouyang01"]));
}
