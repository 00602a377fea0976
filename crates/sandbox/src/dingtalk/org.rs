//! The simulated organisation (通讯录, protocol §2): departments under root 1 and users, with
//! the indexes the API needs (by mobile, by unionid, members per department in entry order).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use crate::seed::{ROOT_DEPT_ID, Seed};

#[derive(Debug, Clone, Serialize)]
pub struct Dept {
    pub dept_id: u64,
    /// 0 for the root.
    pub parent_id: u64,
    pub name: String,
    pub order: i64,
    pub source_identifier: String,
    pub hide_dept: bool,
    pub create_dept_group: bool,
    pub auto_add_user: bool,
    pub dept_manager_userid_list: Vec<String>,
    pub outer_dept: bool,
    pub code: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub userid: String,
    pub unionid: String,
    pub name: String,
    pub mobile: String,
    pub hide_mobile: bool,
    pub telephone: String,
    pub job_number: String,
    pub title: String,
    pub email: String,
    pub org_email: String,
    pub work_place: String,
    pub remark: String,
    pub manager_userid: String,
    pub dept_id_list: Vec<u64>,
    pub dept_order: HashMap<u64, i64>,
    /// JSON object text.
    pub extension: String,
    /// ms; 0 = not set.
    pub hired_date: i64,
    pub senior: bool,
    pub admin: bool,
    pub boss: bool,
    /// Entry sequence (order of joining the organisation).
    pub seq: u64,
    /// Sandbox clock, ms.
    pub modified: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Org {
    pub depts: BTreeMap<u64, Dept>,
    pub users: HashMap<String, Person>,
    pub by_mobile: HashMap<String, String>,
    pub by_unionid: HashMap<String, String>,
    /// Direct members of each department, in entry order.
    pub members: HashMap<u64, Vec<String>>,
    pub next_dept_id: u64,
    pub next_seq: u64,
}

fn date_ms(ymd: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(ymd, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |d| d.and_utc().timestamp_millis() - 8 * 3_600_000)
}

impl Org {
    /// Loads the seed: every department, and every person still employed (`active`); people
    /// who left are not members of a DingTalk organisation.
    pub fn from_seed(seed: &Seed, company: &str, now_ms: i64) -> Org {
        let mut org = Org {
            next_dept_id: 1,
            ..Org::default()
        };
        org.depts.insert(
            ROOT_DEPT_ID,
            Dept::new(ROOT_DEPT_ID, 0, company.to_owned(), 0),
        );
        for d in &seed.departments {
            if d.id == ROOT_DEPT_ID {
                continue;
            }
            let parent = d.parent_id.unwrap_or(ROOT_DEPT_ID);
            org.depts.insert(
                d.id,
                Dept::new(d.id, parent, d.name.clone(), i64::from(d.order)),
            );
        }
        org.next_dept_id = org.depts.keys().max().copied().unwrap_or(1).max(100) + 1;
        for u in seed.users.iter().filter(|u| u.active) {
            let p = Person {
                userid: u.userid.clone(),
                unionid: u.unionid.clone(),
                name: u.name.clone(),
                mobile: u.mobile.clone(),
                hide_mobile: false,
                telephone: String::new(),
                job_number: u.job_number.clone(),
                title: u.title.clone(),
                email: u.email.clone().unwrap_or_default(),
                org_email: String::new(),
                work_place: String::new(),
                remark: String::new(),
                manager_userid: String::new(),
                dept_id_list: u.dept_ids.clone(),
                dept_order: HashMap::new(),
                extension: String::new(),
                hired_date: date_ms(&u.hired_date),
                senior: false,
                admin: false,
                boss: false,
                seq: 0,
                modified: now_ms,
            };
            org.insert_person(p);
        }
        org
    }

    /// Adds a person and indexes it (assigns the entry sequence).
    pub fn insert_person(&mut self, mut p: Person) {
        self.next_seq += 1;
        p.seq = self.next_seq;
        for d in &p.dept_id_list {
            self.members.entry(*d).or_default().push(p.userid.clone());
        }
        self.by_mobile.insert(p.mobile.clone(), p.userid.clone());
        self.by_unionid.insert(p.unionid.clone(), p.userid.clone());
        self.users.insert(p.userid.clone(), p);
    }

    pub fn remove_person(&mut self, userid: &str) -> Option<Person> {
        let p = self.users.remove(userid)?;
        for d in &p.dept_id_list {
            if let Some(m) = self.members.get_mut(d) {
                m.retain(|u| u != userid);
            }
        }
        self.by_mobile.remove(&p.mobile);
        self.by_unionid.remove(&p.unionid);
        Some(p)
    }

    /// Moves a person to other departments (keeps the member index right).
    pub fn set_depts(&mut self, userid: &str, depts: Vec<u64>) {
        let Some(p) = self.users.get_mut(userid) else {
            return;
        };
        let old = std::mem::replace(&mut p.dept_id_list, depts.clone());
        for d in &old {
            if !depts.contains(d)
                && let Some(m) = self.members.get_mut(d)
            {
                m.retain(|u| u != userid);
            }
        }
        for d in depts {
            if !old.contains(&d) {
                self.members.entry(d).or_default().push(userid.to_owned());
            }
        }
    }

    /// Direct sub-departments, by `order` then id (§2 listsub: one level only).
    pub fn children(&self, id: u64) -> Vec<&Dept> {
        let mut v: Vec<&Dept> = self
            .depts
            .values()
            .filter(|d| d.parent_id == id && d.dept_id != id)
            .collect();
        v.sort_by_key(|d| (d.order, d.dept_id));
        v
    }

    /// Is `anc` an ancestor of (or equal to) `id`?
    pub fn is_under(&self, id: u64, anc: u64) -> bool {
        let mut cur = id;
        for _ in 0..10_000 {
            if cur == anc {
                return true;
            }
            match self.depts.get(&cur) {
                Some(d) if d.parent_id != 0 => cur = d.parent_id,
                _ => return false,
            }
        }
        false
    }

    /// Members of a department in the requested `order_field` (§2 user/list).
    pub fn sorted_members(&self, dept: u64, order_field: &str) -> Vec<&Person> {
        let mut v: Vec<&Person> = self
            .members
            .get(&dept)
            .map(|m| m.iter().filter_map(|u| self.users.get(u)).collect())
            .unwrap_or_default();
        match order_field {
            "entry_asc" => v.sort_by_key(|p| (p.hired_date, p.seq)),
            "entry_desc" => {
                v.sort_by_key(|p| (std::cmp::Reverse(p.hired_date), std::cmp::Reverse(p.seq)))
            }
            "modify_asc" => v.sort_by_key(|p| (p.modified, p.seq)),
            "modify_desc" => {
                v.sort_by_key(|p| (std::cmp::Reverse(p.modified), std::cmp::Reverse(p.seq)))
            }
            _ => v.sort_by_key(|p| (p.dept_order.get(&dept).copied().unwrap_or(0), p.seq)),
        }
        v
    }

    pub fn member_count(&self, dept: u64) -> usize {
        self.members.get(&dept).map_or(0, Vec::len)
    }
}

impl Dept {
    pub fn new(dept_id: u64, parent_id: u64, name: String, order: i64) -> Dept {
        Dept {
            dept_id,
            parent_id,
            name,
            order,
            source_identifier: String::new(),
            hide_dept: false,
            create_dept_group: false,
            auto_add_user: false,
            dept_manager_userid_list: Vec::new(),
            outer_dept: false,
            code: String::new(),
        }
    }

    /// `listsub` item (§2).
    pub fn brief(&self) -> Value {
        let mut v = json!({
            "dept_id": self.dept_id,
            "name": self.name,
            "create_dept_group": self.create_dept_group,
            "auto_add_user": self.auto_add_user,
        });
        if self.parent_id != 0 {
            v["parent_id"] = json!(self.parent_id);
        }
        v
    }
}

impl Person {
    /// The user object of §2 (`user/get`); `list_dept` adds the `user/list` extras.
    pub fn to_json(&self, list_dept: Option<u64>) -> Value {
        let mut v = json!({
            "userid": self.userid,
            "unionid": self.unionid,
            "name": self.name,
            "avatar": "",
            "state_code": "86",
            "mobile": self.mobile,
            "hide_mobile": self.hide_mobile,
            "telephone": self.telephone,
            "job_number": self.job_number,
            "title": self.title,
            "work_place": self.work_place,
            "remark": self.remark,
            "dept_id_list": self.dept_id_list,
            "dept_order_list": self.dept_id_list.iter().map(|d| json!({
                "dept_id": d, "order": self.dept_order.get(d).copied().unwrap_or(0)})).collect::<Vec<_>>(),
            "active": true,
            "real_authed": true,
            "senior": self.senior,
            "admin": self.admin,
            "boss": self.boss,
            "exclusive_account": false,
            "leader_in_dept": self.dept_id_list.iter().map(|d| json!({"dept_id": d, "leader": false})).collect::<Vec<_>>(),
            "role_list": [],
        });
        if !self.email.is_empty() {
            v["email"] = json!(self.email);
        }
        if !self.org_email.is_empty() {
            v["org_email"] = json!(self.org_email);
        }
        if !self.manager_userid.is_empty() {
            v["manager_userid"] = json!(self.manager_userid);
        }
        if !self.extension.is_empty() {
            v["extension"] = json!(self.extension);
        }
        if self.hired_date != 0 {
            v["hired_date"] = json!(self.hired_date);
        }
        if let Some(d) = list_dept {
            v["leader"] = json!(false);
            v["dept_order"] = json!(self.dept_order.get(&d).copied().unwrap_or(0));
        }
        v
    }

    /// Fields named in `user_modify_org`'s `diffInfo` (§5.1).
    pub fn diff_view(&self) -> Value {
        json!({
            "name": self.name,
            "managerUserid": self.manager_userid,
            "hiredDate": self.hired_date,
            "telephone": self.telephone,
            "email": self.email,
            "jobNumber": self.job_number,
            "workPlace": self.work_place,
            "title": self.title,
            "remark": self.remark,
            "deptIdList": self.dept_id_list,
        })
    }
}
