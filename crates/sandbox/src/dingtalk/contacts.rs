//! Contacts (通讯录, protocol §2). Changes emit `user_add_org`, `user_modify_org`,
//! `user_leave_org`, `org_dept_create`, `org_dept_modify`, `org_dept_remove` (§5.1).
//!
//! Error codes (§2 table and global codes): 40035 missing parameter, 400002 bad value,
//! 60003 department not found, 60004 parent not found, 60005 department has members,
//! 60006 department has sub-departments, 60008 name exists under the parent, 60010 cycle,
//! 60018 root cannot be changed, 33012 invalid userid, 60121 user not found, 60102 userid
//! exists, 60103 bad mobile, 60104 mobile exists, 60112 bad name.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::gateway::Ctx;
use super::org::{Dept, Person};
use super::reply::ApiError;
use crate::seed::ROOT_DEPT_ID;

fn dept_not_found() -> ApiError {
    ApiError::oapi(60003, "部门不存在").with_v1(StatusCode::NOT_FOUND, "departmentNotFound")
}

fn user_not_found() -> ApiError {
    ApiError::oapi(33012, "无效的USERID").with_v1(StatusCode::NOT_FOUND, "userNotFound")
}

fn dept_id(c: &Ctx, key: &str) -> Result<u64, ApiError> {
    let v = c.params.i64_req(key)?;
    u64::try_from(v).map_err(|_| ApiError::invalid(key, "必须为正整数"))
}

/// §2 department names: 1–64 characters, none of `-` `,` `，`.
fn check_dept_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 64 || name.contains(['-', ',', '，']) {
        return Err(ApiError::oapi(
            40035,
            "不合法的参数 name：部门名称长度1~64，不能包含“-”“,”“，”",
        ));
    }
    Ok(())
}

pub fn dept_listsub(c: &Ctx) -> Result<Value, ApiError> {
    // §9.7: default of an omitted dept_id unconfirmed; the sandbox uses the root.
    let id = match c.params.i64_opt("dept_id")? {
        None => ROOT_DEPT_ID,
        Some(v) => u64::try_from(v).map_err(|_| ApiError::invalid("dept_id", "必须为正整数"))?,
    };
    let org = c.sb.org();
    if !org.depts.contains_key(&id) {
        return Err(dept_not_found());
    }
    let list: Vec<Value> = org.children(id).into_iter().map(Dept::brief).collect();
    Ok(json!({"result": list}))
}

pub fn dept_listsubid(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    let org = c.sb.org();
    if !org.depts.contains_key(&id) {
        return Err(dept_not_found());
    }
    let ids: Vec<u64> = org.children(id).into_iter().map(|d| d.dept_id).collect();
    Ok(json!({"result": {"dept_id_list": ids}}))
}

pub fn dept_get(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    let org = c.sb.org();
    let d = org.depts.get(&id).ok_or_else(dept_not_found)?;
    let mut v = json!({
        "dept_id": d.dept_id,
        "name": d.name,
        "order": d.order,
        "source_identifier": d.source_identifier,
        "create_dept_group": d.create_dept_group,
        "auto_add_user": d.auto_add_user,
        "group_contain_sub_dept": false,
        "dept_manager_userid_list": d.dept_manager_userid_list,
        "outer_dept": d.outer_dept,
        "outer_permit_depts": [],
        "outer_permit_users": [],
        "hide_dept": d.hide_dept,
        "dept_permits": [],
        "user_permits": [],
        "auto_approve_apply": false,
        "code": d.code,
        "member_count": org.member_count(id),
        "owning_member_count": org.member_count(id),
        "from_union_org": false,
    });
    if d.parent_id != 0 {
        v["parent_id"] = json!(d.parent_id);
    }
    Ok(json!({"result": v}))
}

pub fn dept_create(c: &Ctx) -> Result<Value, ApiError> {
    let name = c.params.str_req("name")?;
    check_dept_name(&name)?;
    let parent = dept_id(c, "parent_id")?;
    let id = {
        let mut org = c.sb.org_mut();
        if !org.depts.contains_key(&parent) {
            return Err(ApiError::oapi(60004, "父部门不存在"));
        }
        if org.children(parent).iter().any(|d| d.name == name) {
            return Err(ApiError::oapi(60008, "父部门下该部门名称已存在"));
        }
        let id = org.next_dept_id;
        org.next_dept_id += 1;
        let mut d = Dept::new(id, parent, name, c.params.i64_opt("order")?.unwrap_or(0));
        apply_dept_fields(c, &mut d);
        org.depts.insert(id, d);
        id
    };
    c.sb.emit("org_dept_create", json!({"deptId": [id]}));
    Ok(json!({"result": {"dept_id": id}}))
}

fn apply_dept_fields(c: &Ctx, d: &mut Dept) {
    let p = &c.params;
    if let Some(s) = p.str_opt("source_identifier") {
        d.source_identifier = s;
    }
    if let Some(b) = p.bool_opt("hide_dept") {
        d.hide_dept = b;
    }
    if let Some(b) = p.bool_opt("create_dept_group") {
        d.create_dept_group = b;
    }
    if let Some(b) = p.bool_opt("auto_add_user") {
        d.auto_add_user = b;
    }
    if let Some(b) = p.bool_opt("outer_dept") {
        d.outer_dept = b;
    }
    if let Some(s) = p.str_opt("code") {
        d.code = s;
    }
    if let Some(l) = p.list_opt("dept_manager_userid_list") {
        d.dept_manager_userid_list = l;
    }
}

pub fn dept_update(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    {
        let mut org = c.sb.org_mut();
        if !org.depts.contains_key(&id) {
            return Err(dept_not_found());
        }
        if id == ROOT_DEPT_ID
            && (c.params.has("parent_id") || c.params.has("name") || c.params.has("order"))
        {
            return Err(ApiError::oapi(60018, "根部门不能修改"));
        }
        let name = c.params.str_opt("name");
        if let Some(n) = &name {
            check_dept_name(n)?;
        }
        let parent = match c.params.i64_opt("parent_id")? {
            None => None,
            Some(v) => {
                let p =
                    u64::try_from(v).map_err(|_| ApiError::invalid("parent_id", "必须为正整数"))?;
                if !org.depts.contains_key(&p) {
                    return Err(ApiError::oapi(60004, "父部门不存在"));
                }
                if org.is_under(p, id) {
                    return Err(ApiError::oapi(60010, "部门不能移动到自己或下级部门之下"));
                }
                Some(p)
            }
        };
        let current_parent = org.depts.get(&id).map_or(0, |d| d.parent_id);
        let target_parent = parent.unwrap_or(current_parent);
        if let Some(n) = &name
            && org
                .children(target_parent)
                .iter()
                .any(|d| &d.name == n && d.dept_id != id)
        {
            return Err(ApiError::oapi(60008, "父部门下该部门名称已存在"));
        }
        let order = c.params.i64_opt("order")?;
        let Some(d) = org.depts.get_mut(&id) else {
            return Err(dept_not_found());
        };
        if let Some(n) = name {
            d.name = n;
        }
        if let Some(p) = parent {
            d.parent_id = p;
        }
        if let Some(o) = order {
            d.order = o;
        }
        let mut copy = d.clone();
        apply_dept_fields(c, &mut copy);
        *d = copy;
    }
    c.sb.emit("org_dept_modify", json!({"deptId": [id]}));
    Ok(json!({}))
}

pub fn dept_delete(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    {
        let mut org = c.sb.org_mut();
        if !org.depts.contains_key(&id) {
            return Err(dept_not_found());
        }
        if id == ROOT_DEPT_ID {
            return Err(ApiError::oapi(60018, "根部门不能删除"));
        }
        if !org.children(id).is_empty() {
            return Err(ApiError::oapi(60006, "该部门下存在子部门，不能删除"));
        }
        if org.member_count(id) > 0 {
            return Err(ApiError::oapi(60005, "该部门下存在员工，不能删除"));
        }
        org.depts.remove(&id);
        org.members.remove(&id);
    }
    c.sb.emit("org_dept_remove", json!({"deptId": [id]}));
    Ok(json!({}))
}

/// §2 user/list: `size` 1..=100 and `cursor` 0..=100000 (TOP-JAVA check), else 400002.
pub fn user_list(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    let cursor = c.params.i64_req("cursor")?;
    let size = c.params.i64_req("size")?;
    if !(1..=100).contains(&size) {
        return Err(ApiError::invalid("size", "取值范围1~100"));
    }
    if !(0..=100_000).contains(&cursor) {
        return Err(ApiError::invalid("cursor", "取值范围0~100000"));
    }
    let order = c
        .params
        .str_opt("order_field")
        .unwrap_or_else(|| "custom".into());
    if ![
        "entry_asc",
        "entry_desc",
        "modify_asc",
        "modify_desc",
        "custom",
    ]
    .contains(&order.as_str())
    {
        return Err(ApiError::invalid(
            "order_field",
            "取值entry_asc/entry_desc/modify_asc/modify_desc/custom",
        ));
    }
    let org = c.sb.org();
    if !org.depts.contains_key(&id) {
        return Err(dept_not_found());
    }
    let members = org.sorted_members(id, &order);
    let start = (cursor as usize).min(members.len());
    let end = (start + size as usize).min(members.len());
    let list: Vec<Value> = members[start..end]
        .iter()
        .map(|p| p.to_json(Some(id)))
        .collect();
    let has_more = end < members.len();
    let mut result = json!({"has_more": has_more, "list": list});
    if has_more {
        result["next_cursor"] = json!(end);
    }
    Ok(json!({"result": result}))
}

pub fn user_listid(c: &Ctx) -> Result<Value, ApiError> {
    let id = dept_id(c, "dept_id")?;
    let org = c.sb.org();
    if !org.depts.contains_key(&id) {
        return Err(dept_not_found());
    }
    let ids: Vec<&str> = org
        .sorted_members(id, "custom")
        .into_iter()
        .map(|p| p.userid.as_str())
        .collect();
    Ok(json!({"result": {"userid_list": ids}}))
}

pub fn user_get(c: &Ctx) -> Result<Value, ApiError> {
    let uid = c.params.str_req("userid")?;
    let org = c.sb.org();
    let p = org.users.get(&uid).ok_or_else(user_not_found)?;
    Ok(json!({"result": p.to_json(None)}))
}

pub fn user_getbymobile(c: &Ctx) -> Result<Value, ApiError> {
    let mobile = c.params.str_req("mobile")?;
    let org = c.sb.org();
    let uid = org
        .by_mobile
        .get(&mobile)
        .ok_or_else(|| ApiError::oapi(60121, "找不到该用户"))?;
    Ok(json!({"result": {"userid": uid}}))
}

pub fn user_getbyunionid(c: &Ctx) -> Result<Value, ApiError> {
    let union = c.params.str_req("unionid")?;
    let org = c.sb.org();
    let uid = org
        .by_unionid
        .get(&union)
        .ok_or_else(|| ApiError::oapi(60121, "找不到该用户"))?;
    Ok(json!({"result": {"contact_type": 0, "userid": uid}}))
}

/// `GET /v1.0/contact/users/{unionId}` (§6.2 step 3) with an app token: the user's card.
/// `GET /v1.0/contact/users/{unionId}`; `me` (with a user access token, §6.2) is the
/// signed-in user.
pub fn user_v1_get(c: &Ctx) -> Result<Value, ApiError> {
    let org = c.sb.org();
    let found = if c.path_arg == "me" {
        let Some(userid) = c.user.as_deref() else {
            return Err(ApiError::v1(
                StatusCode::BAD_REQUEST,
                "InvalidAuthentication",
                "users/me 需要用户的 accessToken（/v1.0/oauth2/userAccessToken）",
            ));
        };
        org.users.get(userid)
    } else {
        org.by_unionid
            .get(&c.path_arg)
            .and_then(|u| org.users.get(u))
    };
    let p = found.ok_or_else(|| {
        ApiError::v1(
            StatusCode::NOT_FOUND,
            "invalidParameter.user.notFound",
            "用户不存在",
        )
    })?;
    Ok(json!({
        "nick": p.name, "avatarUrl": "", "mobile": p.mobile, "openId": p.unionid,
        "unionId": p.unionid, "email": p.email, "stateCode": "86",
    }))
}

fn valid_mobile(m: &str) -> bool {
    let digits = m.strip_prefix('+').map_or(m, |r| r);
    let digits: String = digits.chars().filter(|c| *c != '-').collect();
    (5..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

fn depts_param(c: &Ctx, required: bool) -> Result<Option<Vec<u64>>, ApiError> {
    let Some(list) = c.params.list_opt("dept_id_list") else {
        return if required {
            Err(ApiError::missing("dept_id_list"))
        } else {
            Ok(None)
        };
    };
    if list.is_empty() || list.len() > 100 {
        return Err(ApiError::invalid("dept_id_list", "1~100个部门"));
    }
    let ids = list
        .iter()
        .map(|s| s.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::invalid("dept_id_list", "部门id必须为整数"))?;
    Ok(Some(ids))
}

fn apply_user_fields(c: &Ctx, p: &mut Person) -> Result<(), ApiError> {
    let prm = &c.params;
    let text = |k: &str, f: &mut String| {
        if let Some(v) = prm.str_opt(k) {
            *f = v;
        }
    };
    text("telephone", &mut p.telephone);
    text("job_number", &mut p.job_number);
    text("title", &mut p.title);
    text("email", &mut p.email);
    text("org_email", &mut p.org_email);
    text("work_place", &mut p.work_place);
    text("remark", &mut p.remark);
    text("manager_userid", &mut p.manager_userid);
    if let Some(b) = prm.bool_opt("hide_mobile") {
        p.hide_mobile = b;
    }
    if let Some(b) = prm.bool_opt("senior_mode") {
        p.senior = b;
    }
    if let Some(h) = prm.i64_opt("hired_date")? {
        p.hired_date = h;
    }
    if let Some(ext) = prm.json_opt("extension") {
        if !ext.is_object() {
            return Err(ApiError::invalid("extension", "必须为JSON对象"));
        }
        p.extension = ext.to_string();
    }
    if let Some(Value::Array(orders)) = prm.json_opt("dept_order_list") {
        for o in orders {
            let d = o.get("dept_id").map(super::params::scalar_text);
            let ord = o.get("order").map(super::params::scalar_text);
            if let (Some(d), Some(ord)) = (d, ord)
                && let (Ok(d), Ok(ord)) = (d.parse::<u64>(), ord.parse::<i64>())
            {
                p.dept_order.insert(d, ord);
            }
        }
    }
    Ok(())
}

fn check_user_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 80 {
        return Err(ApiError::oapi(60112, "用户姓名不合法，长度1~80"));
    }
    Ok(())
}

pub fn user_create(c: &Ctx) -> Result<Value, ApiError> {
    let name = c.params.str_req("name")?;
    check_user_name(&name)?;
    let mobile = c.params.str_req("mobile")?;
    if !valid_mobile(&mobile) {
        return Err(ApiError::oapi(60103, "手机号码不合法"));
    }
    let depts = depts_param(c, true)?.unwrap_or_default();
    let userid = c.params.str_opt("userid").filter(|u| !u.is_empty());
    if let Some(u) = &userid
        && (u.chars().count() > 64)
    {
        return Err(ApiError::invalid("userid", "长度1~64"));
    }
    let (userid, unionid) = {
        let mut org = c.sb.org_mut();
        if let Some(d) = depts.iter().find(|d| !org.depts.contains_key(d)) {
            return Err(ApiError::oapi(60003, format!("部门不存在: {d}")));
        }
        if org.by_mobile.contains_key(&mobile) {
            return Err(ApiError::oapi(60104, "手机号码在公司中已存在"));
        }
        let userid = match userid {
            Some(u) => {
                if org.users.contains_key(&u) {
                    return Err(ApiError::oapi(60102, "在当前企业中userid已存在"));
                }
                u
            }
            None => format!("{}", 100_000_000 + org.next_seq + 1),
        };
        let unionid = format!("{}iE", uuid::Uuid::new_v4().simple());
        let mut p = Person {
            userid: userid.clone(),
            unionid: unionid.clone(),
            name,
            mobile,
            hide_mobile: false,
            telephone: String::new(),
            job_number: String::new(),
            title: String::new(),
            email: String::new(),
            org_email: String::new(),
            work_place: String::new(),
            remark: String::new(),
            manager_userid: String::new(),
            dept_id_list: depts,
            dept_order: HashMap::new(),
            extension: String::new(),
            hired_date: 0,
            senior: false,
            admin: false,
            boss: false,
            seq: 0,
            modified: c.sb.now_ms(),
        };
        apply_user_fields(c, &mut p)?;
        org.insert_person(p);
        (userid, unionid)
    };
    c.sb.emit(
        "user_add_org",
        json!({"timeStamp": c.sb.now_ms().to_string(), "userId": [userid]}),
    );
    Ok(json!({"result": {"userid": userid, "unionId": unionid}}))
}

pub fn user_update(c: &Ctx) -> Result<Value, ApiError> {
    let uid = c.params.str_req("userid")?;
    let depts = depts_param(c, false)?;
    let name = c.params.str_opt("name");
    if let Some(n) = &name {
        check_user_name(n)?;
    }
    let now = c.sb.now_ms();
    let (prev, curr) = {
        let mut org = c.sb.org_mut();
        if let Some(ds) = &depts
            && let Some(d) = ds.iter().find(|d| !org.depts.contains_key(d))
        {
            return Err(ApiError::oapi(60003, format!("部门不存在: {d}")));
        }
        let Some(p) = org.users.get(&uid) else {
            return Err(user_not_found());
        };
        let prev = p.diff_view();
        let mut copy = p.clone();
        if let Some(n) = name {
            copy.name = n;
        }
        apply_user_fields(c, &mut copy)?;
        copy.modified = now;
        let curr = copy.diff_view();
        if let Some(p) = org.users.get_mut(&uid) {
            *p = copy;
        }
        if let Some(ds) = depts {
            org.set_depts(&uid, ds);
        }
        let curr_full = org.users.get(&uid).map_or(curr, Person::diff_view);
        (prev, curr_full)
    };
    c.sb.emit(
        "user_modify_org",
        json!({"timeStamp": now.to_string(), "userId": [uid],
               "diffInfo": {"prev": prev, "curr": curr, "userid": uid}}),
    );
    Ok(json!({}))
}

pub fn user_delete(c: &Ctx) -> Result<Value, ApiError> {
    let uid = c.params.str_req("userid")?;
    if c.sb.org_mut().remove_person(&uid).is_none() {
        return Err(user_not_found());
    }
    c.sb.emit(
        "user_leave_org",
        json!({"timeStamp": c.sb.now_ms().to_string(), "userId": [uid]}),
    );
    Ok(json!({}))
}
