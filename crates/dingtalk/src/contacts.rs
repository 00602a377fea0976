//! Contacts (通讯录), protocol §2 — all oapi `POST …?access_token=` with JSON bodies; DOC pages
//! under https://open.dingtalk.com/document/development/ (named per method); request field
//! names cross-checked with TOP-JAVA `request/OapiV2*Request.java`. Pacer group `contacts`.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{DingTalkClient, from_value};
use crate::error::{Error, Result};
use crate::ids::{DeptId, UnionId, UserId};

/// Pacer group. DingTalk's quota is per app × API (protocol §7), so each path is paced on its
/// own, as `contacts:<path>` (the `contacts` rule applies to every one of them): a walk that
/// lists members while it reads member counts uses both APIs' quotas at once.
pub const GROUP: &str = "contacts";

/// The pacer group of one contacts API.
pub fn group_for(path: &str) -> String {
    format!("{GROUP}:{path}")
}

/// Largest `user/list` page (TOP-JAVA `OapiV2UserListRequest.check()`: size 1..100).
pub const MAX_PAGE_SIZE: u32 = 100;

/// A department as `department/listsub` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Department {
    /// Id.
    pub dept_id: DeptId,
    /// Name.
    pub name: String,
    /// Parent id (absent for the root).
    #[serde(default)]
    pub parent_id: Option<DeptId>,
    /// Whether a department group chat was created.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub create_dept_group: Option<bool>,
    /// Whether new members join the group automatically.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub auto_add_user: Option<bool>,
}

/// `department/get` details (the commonly used fields; all others are in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentDetail {
    /// Id.
    pub dept_id: DeptId,
    /// Name.
    pub name: String,
    /// Parent id.
    #[serde(default)]
    pub parent_id: Option<DeptId>,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub order: Option<i64>,
    /// External source id.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub source_identifier: Option<String>,
    /// Department managers.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub dept_manager_userid_list: Vec<String>,
    /// Owner of the department group.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub org_dept_owner: Option<String>,
    /// Hidden from the contacts UI.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub hide_dept: Option<bool>,
    /// Member count.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub member_count: Option<i64>,
    /// Department code.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub code: Option<String>,
    /// Every other field, verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// A user (`user/get`; `user/list` items are a subset plus `leader`, `dept_order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub userid: UserId,
    /// Union id.
    #[serde(default)]
    pub unionid: Option<UnionId>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Mobile (only with the mobile permission).
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub mobile: Option<String>,
    /// Country code of the mobile.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub state_code: Option<String>,
    /// Employee number.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub job_number: Option<String>,
    /// Job title.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub title: Option<String>,
    /// E-mail.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub email: Option<String>,
    /// Org e-mail.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub org_email: Option<String>,
    /// Office location.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub work_place: Option<String>,
    /// Remark.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub remark: Option<String>,
    /// Manager.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub manager_userid: Option<String>,
    /// Departments.
    #[serde(default, deserialize_with = "crate::lenient::vec_i64")]
    pub dept_id_list: Vec<i64>,
    /// Hire date, ms.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub hired_date: Option<i64>,
    /// Activated.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub active: Option<bool>,
    /// Admin.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub admin: Option<bool>,
    /// Boss.
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub boss: Option<bool>,
    /// Leader of the listed department (`user/list` only).
    #[serde(default, deserialize_with = "crate::lenient::opt_bool")]
    pub leader: Option<bool>,
    /// Custom attributes: a JSON string.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub extension: Option<String>,
    /// Every other field, verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// One page of `user/list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserPage {
    /// Whether more pages follow.
    #[serde(deserialize_with = "crate::lenient::bool", default)]
    pub has_more: bool,
    /// Cursor of the next page (meaningless when `has_more` is false).
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub next_cursor: Option<i64>,
    /// The users.
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub list: Vec<User>,
}

/// Result of `user/getbyunionid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnionIdLookup {
    /// User id in this org.
    pub userid: UserId,
    /// 0 internal, 1 external contact.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub contact_type: Option<i64>,
}

/// Result of `user/create`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreatedUser {
    /// The user id (generated when not given).
    pub userid: UserId,
    /// Union id (camel-case `unionId` in this answer, protocol §2).
    #[serde(default, rename = "unionId", alias = "unionid")]
    pub union_id: Option<UnionId>,
}

/// Fields of `user/create` / `user/update`. `None` fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserInput {
    /// User id (create: optional, generated when absent; update: required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<UserId>,
    /// Name (create: required, ≤80).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Mobile (create: required; not updatable per the doc table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Departments; sent as a comma-separated string (doc).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_comma_opt"
    )]
    pub dept_id_list: Option<Vec<DeptId>>,
    /// Employee number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_number: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Office.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    /// Remark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Telephone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// Manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_userid: Option<UserId>,
    /// Hire date, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hired_date: Option<i64>,
    /// Custom attributes (a JSON object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<Value>,
    /// Any other documented field.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Fields of `department/create` / `department/update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DepartmentInput {
    /// Id (update only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dept_id: Option<DeptId>,
    /// Name (create: required, 1–64 chars, no `-` `,` `，`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parent (create: required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<DeptId>,
    /// Sort order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    /// External source id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_identifier: Option<String>,
    /// Hide from contacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_dept: Option<bool>,
    /// Create a department group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_dept_group: Option<bool>,
    /// Managers (update only; comma string per the doc).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_comma_opt"
    )]
    pub dept_manager_userid_list: Option<Vec<UserId>>,
    /// Any other documented field.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

fn ser_comma_opt<S: serde::Serializer, T: std::fmt::Display>(
    v: &Option<Vec<T>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let joined = v
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    s.serialize_str(&joined)
}

fn result_of(v: Value, what: &str) -> Result<Value> {
    match v {
        Value::Object(mut m) => m
            .remove("result")
            .ok_or_else(|| Error::decode(format!("{what}: no `result`"))),
        _ => Err(Error::decode(format!("{what}: not an object"))),
    }
}

impl DingTalkClient {
    async fn contacts_call<R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Value,
    ) -> Result<R> {
        let v = self.oapi_post_raw(&group_for(path), path, &body).await?;
        from_value(path, result_of(v, path)?)
    }

    /// Direct sub-departments of `parent` (one level, no paging):
    /// `/topapi/v2/department/listsub` (DOC user-management-acquires-the-list-departments).
    pub async fn department_list_sub(&self, parent: DeptId) -> Result<Vec<Department>> {
        // A leaf may come back as `null`.
        let list: Option<Vec<Department>> = self
            .contacts_call(
                "/topapi/v2/department/listsub",
                json!({ "dept_id": parent, "language": "zh_CN" }),
            )
            .await?;
        Ok(list.unwrap_or_default())
    }

    /// Ids of the direct sub-departments: `/topapi/v2/department/listsubid`
    /// (DOC obtain-the-list-of-sub-department-ids).
    pub async fn department_list_sub_ids(&self, parent: DeptId) -> Result<Vec<DeptId>> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "crate::lenient::vec_i64")]
            dept_id_list: Vec<i64>,
        }
        let r: R = self
            .contacts_call(
                "/topapi/v2/department/listsubid",
                json!({ "dept_id": parent }),
            )
            .await?;
        Ok(r.dept_id_list.into_iter().map(DeptId).collect())
    }

    /// Every department below `root` (breadth-first, `listsub` per department; the root
    /// itself is not included). Cycles and repeats are ignored.
    pub async fn department_tree(&self, root: DeptId) -> Result<Vec<Department>> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([root]);
        let mut queue = VecDeque::from([root]);
        while let Some(parent) = queue.pop_front() {
            for d in self.department_list_sub(parent).await? {
                if seen.insert(d.dept_id) {
                    queue.push_back(d.dept_id);
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Department details: `/topapi/v2/department/get` (DOC query-department-details0-v2).
    pub async fn department_get(&self, dept: DeptId) -> Result<DepartmentDetail> {
        self.contacts_call(
            "/topapi/v2/department/get",
            json!({ "dept_id": dept, "language": "zh_CN" }),
        )
        .await
    }

    /// Create a department: `/topapi/v2/department/create`
    /// (DOC address-book-creation-department-established-department).
    pub async fn department_create(&self, input: &DepartmentInput) -> Result<DeptId> {
        #[derive(Deserialize)]
        struct R {
            dept_id: DeptId,
        }
        let body = to_body(input)?;
        let r: R = self
            .contacts_call("/topapi/v2/department/create", body)
            .await?;
        Ok(r.dept_id)
    }

    /// Update a department: `/topapi/v2/department/update` (DOC address-book-update-department).
    pub async fn department_update(&self, input: &DepartmentInput) -> Result<()> {
        if input.dept_id.is_none() {
            return Err(Error::Invalid("department update needs dept_id".into()));
        }
        let path = "/topapi/v2/department/update";
        self.oapi_post_raw(&group_for(path), path, &to_body(input)?)
            .await?;
        Ok(())
    }

    /// Delete a department: `/topapi/v2/department/delete` (DOC address-book-deletion-department).
    pub async fn department_delete(&self, dept: DeptId) -> Result<()> {
        self.oapi_post_raw(
            &group_for("/topapi/v2/department/delete"),
            "/topapi/v2/department/delete",
            &json!({ "dept_id": dept }),
        )
        .await?;
        Ok(())
    }

    /// One page of a department's direct members: `/topapi/v2/user/list`
    /// (DOC queries-the-complete-information-of-a-department-user). `size` is clamped to 1..=100.
    pub async fn user_list_page(&self, dept: DeptId, cursor: i64, size: u32) -> Result<UserPage> {
        let size = size.clamp(1, MAX_PAGE_SIZE);
        self.contacts_call(
            "/topapi/v2/user/list",
            json!({ "dept_id": dept, "cursor": cursor, "size": size, "language": "zh_CN" }),
        )
        .await
    }

    /// All direct members of a department: pages of 100 until `has_more` is false.
    pub async fn users_by_department(&self, dept: DeptId) -> Result<Vec<User>> {
        let mut out = Vec::new();
        let mut cursor = 0i64;
        loop {
            let page = self.user_list_page(dept, cursor, MAX_PAGE_SIZE).await?;
            out.extend(page.list);
            if !page.has_more {
                return Ok(out);
            }
            match page.next_cursor {
                Some(next) if next > cursor => cursor = next,
                other => {
                    return Err(Error::decode(format!(
                        "user/list: has_more with next_cursor {other:?} after cursor {cursor}"
                    )));
                }
            }
        }
    }

    /// User ids of a department's direct members: `/topapi/user/listid`
    /// (DOC query-the-list-of-department-userids).
    pub async fn user_ids_by_department(&self, dept: DeptId) -> Result<Vec<UserId>> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "crate::lenient::vec_string")]
            userid_list: Vec<String>,
        }
        let r: R = self
            .contacts_call("/topapi/user/listid", json!({ "dept_id": dept }))
            .await?;
        Ok(r.userid_list.into_iter().map(UserId).collect())
    }

    /// User details: `/topapi/v2/user/get` (DOC query-user-details).
    pub async fn user_get(&self, userid: &UserId) -> Result<User> {
        self.contacts_call(
            "/topapi/v2/user/get",
            json!({ "userid": userid, "language": "zh_CN" }),
        )
        .await
    }

    /// User id by mobile (active employees only): `/topapi/v2/user/getbymobile`
    /// (DOC query-users-by-phone-number).
    pub async fn user_by_mobile(&self, mobile: &str) -> Result<UserId> {
        #[derive(Deserialize)]
        struct R {
            userid: UserId,
        }
        let r: R = self
            .contacts_call("/topapi/v2/user/getbymobile", json!({ "mobile": mobile }))
            .await?;
        Ok(r.userid)
    }

    /// User id by union id: `/topapi/user/getbyunionid` (DOC query-a-user-by-the-union-id).
    pub async fn user_by_unionid(&self, unionid: &UnionId) -> Result<UnionIdLookup> {
        self.contacts_call("/topapi/user/getbyunionid", json!({ "unionid": unionid }))
            .await
    }

    /// Create a user: `/topapi/v2/user/create` (DOC user-information-creation).
    pub async fn user_create(&self, input: &UserInput) -> Result<CreatedUser> {
        if input.name.is_none() || input.mobile.is_none() || input.dept_id_list.is_none() {
            return Err(Error::Invalid(
                "user create needs name, mobile and dept_id_list".into(),
            ));
        }
        self.contacts_call("/topapi/v2/user/create", to_body(input)?)
            .await
    }

    /// Update a user: `/topapi/v2/user/update` (DOC user-information-update).
    pub async fn user_update(&self, input: &UserInput) -> Result<()> {
        if input.userid.is_none() {
            return Err(Error::Invalid("user update needs userid".into()));
        }
        let path = "/topapi/v2/user/update";
        self.oapi_post_raw(&group_for(path), path, &to_body(input)?)
            .await?;
        Ok(())
    }

    /// Delete a user: `/topapi/v2/user/delete` (DOC delete-a-user).
    pub async fn user_delete(&self, userid: &UserId) -> Result<()> {
        self.oapi_post_raw(
            &group_for("/topapi/v2/user/delete"),
            "/topapi/v2/user/delete",
            &json!({ "userid": userid }),
        )
        .await?;
        Ok(())
    }
}

pub(crate) fn to_body<T: Serialize>(input: &T) -> Result<Value> {
    serde_json::to_value(input).map_err(|e| Error::Invalid(format!("request body: {e}")))
}
