//! Work notifications (工作通知, protocol §4.1): `asyncsend_v2` stores the message (admin
//! `GET messages`), `getsendprogress` answers done, `getsendresult` lists unknown userids as
//! invalid and the others as unread. Tasks older than 24 h are not queryable.

use serde::Serialize;
use serde_json::{Value, json};

use super::gateway::Ctx;
use super::reply::ApiError;

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub task_id: i64,
    pub app_key: String,
    pub agent_id: i64,
    pub userid_list: Vec<String>,
    pub dept_id_list: Vec<String>,
    pub to_all_user: bool,
    pub msg: Value,
    /// Sandbox clock, ms.
    pub time: i64,
    pub invalid_user_id_list: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Messages {
    pub list: Vec<Message>,
    pub next_task_id: i64,
}

fn agent(c: &Ctx) -> Result<i64, ApiError> {
    let a = c.params.i64_req("agent_id")?;
    let mine = c.sb.app(&c.app_key).map(|a| a.agent_id as i64);
    if mine != Some(a) {
        return Err(ApiError::oapi(
            400002,
            "agent_id与access_token所属应用不一致",
        ));
    }
    Ok(a)
}

pub fn asyncsend_v2(c: &Ctx) -> Result<Value, ApiError> {
    let agent_id = agent(c)?;
    let p = &c.params;
    let users = p.list_opt("userid_list").unwrap_or_default();
    let depts = p.list_opt("dept_id_list").unwrap_or_default();
    let all = p.bool_opt("to_all_user").unwrap_or(false);
    if !all && users.is_empty() && depts.is_empty() {
        return Err(ApiError::missing("userid_list"));
    }
    if users.len() > 5000 || depts.len() > 500 {
        return Err(ApiError::invalid("userid_list", "接收人过多"));
    }
    let msg = p.json_opt("msg").ok_or_else(|| ApiError::missing("msg"))?;
    let ty = msg
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let known = [
        "text",
        "markdown",
        "oa",
        "action_card",
        "image",
        "voice",
        "file",
        "link",
    ];
    if !known.contains(&ty) || msg.get(ty).is_none() {
        return Err(ApiError::invalid("msg", "msgtype不支持或缺少消息体"));
    }
    if msg.to_string().len() > 2048 {
        return Err(ApiError::invalid("msg", "消息体不能超过2048字节"));
    }
    let invalid: Vec<String> = {
        let org = c.sb.org();
        users
            .iter()
            .filter(|u| !org.users.contains_key(*u))
            .cloned()
            .collect()
    };
    let now = c.sb.now_ms();
    let mut m = c.sb.messages();
    m.next_task_id += 1;
    let task_id = 100_000_000 + m.next_task_id;
    m.list.push(Message {
        task_id,
        app_key: c.app_key.clone(),
        agent_id,
        userid_list: users,
        dept_id_list: depts,
        to_all_user: all,
        msg,
        time: now,
        invalid_user_id_list: invalid,
    });
    Ok(json!({"task_id": task_id}))
}

fn find(c: &Ctx) -> Result<Message, ApiError> {
    agent(c)?;
    let task_id = c.params.i64_req("task_id")?;
    let now = c.sb.now_ms();
    c.sb.messages()
        .list
        .iter()
        .find(|m| m.task_id == task_id && m.app_key == c.app_key && now - m.time < 86_400_000)
        .cloned()
        .ok_or_else(|| ApiError::oapi(40035, "不合法的参数 task_id"))
}

pub fn getsendprogress(c: &Ctx) -> Result<Value, ApiError> {
    find(c)?;
    Ok(json!({"progress": {"progress_in_percent": 100, "status": 2}}))
}

pub fn getsendresult(c: &Ctx) -> Result<Value, ApiError> {
    let m = find(c)?;
    let unread: Vec<&String> = m
        .userid_list
        .iter()
        .filter(|u| !m.invalid_user_id_list.contains(u))
        .collect();
    Ok(json!({"send_result": {
        "invalid_user_id_list": m.invalid_user_id_list,
        "forbidden_user_id_list": [],
        "failed_user_id_list": [],
        "read_user_id_list": [],
        "unread_user_id_list": unread,
        "invalid_dept_id_list": [],
        "forbidden_list": [],
    }}))
}
