//! Work notifications (工作通知), protocol §4.1: `asyncsend_v2`, `getsendprogress`,
//! `getsendresult` (DOC asynchronous-sending-of-enterprise-session-messages,
//! obtain-the-sending-progress-of-asynchronous-sending-of-enterprise-session,
//! gets-the-result-of-sending-messages-asynchronously-to-the-enterprise; field names in
//! TOP-JAVA `OapiMessageCorpconversationAsyncsendV2Request`). Pacer group `message`.
//! Sending is asynchronous: success means "task accepted" — throttled recipients only show up
//! in the send result.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{DingTalkClient, from_value};
use crate::error::{Error, Result};
use crate::ids::{AgentId, DeptId, MessageTaskId, UserId};

/// Pacer group.
pub const GROUP: &str = "message";

/// A work-notification body (`msg`, ≤2048 bytes), by `msgtype`
/// (DOC message-types-and-data-format).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkMessage {
    /// `{"msgtype":"text","text":{"content"}}`.
    Text(String),
    /// `{"msgtype":"markdown","markdown":{"title","text"}}`.
    Markdown {
        /// Title (shown in the conversation list).
        title: String,
        /// Markdown text (≤5000 chars).
        text: String,
    },
    /// `{"msgtype":"action_card","action_card":{"title","markdown","single_title","single_url"}}`.
    ActionCard {
        /// Title.
        title: String,
        /// Markdown body.
        markdown: String,
        /// Button label.
        single_title: String,
        /// Button URL.
        single_url: String,
    },
    /// `{"msgtype":"link","link":{"messageUrl","picUrl","title","text"}}`.
    Link {
        /// Title.
        title: String,
        /// Text.
        text: String,
        /// Target URL.
        message_url: String,
        /// Picture media id or URL.
        pic_url: String,
    },
    /// Any other shape (`oa`, `image`, `file`, …) as its full JSON.
    Raw(Value),
}

impl WorkMessage {
    /// The `msg` JSON.
    pub fn to_json(&self) -> Value {
        match self {
            WorkMessage::Text(c) => json!({"msgtype": "text", "text": {"content": c}}),
            WorkMessage::Markdown { title, text } => {
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
            WorkMessage::ActionCard {
                title,
                markdown,
                single_title,
                single_url,
            } => json!({
                "msgtype": "action_card",
                "action_card": {"title": title, "markdown": markdown, "single_title": single_title, "single_url": single_url}
            }),
            WorkMessage::Link {
                title,
                text,
                message_url,
                pic_url,
            } => json!({
                "msgtype": "link",
                "link": {"title": title, "text": text, "messageUrl": message_url, "picUrl": pic_url}
            }),
            WorkMessage::Raw(v) => v.clone(),
        }
    }
}

/// Who receives a work notification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipients {
    /// Users.
    pub users: Vec<UserId>,
    /// Departments (including sub-departments).
    pub depts: Vec<DeptId>,
    /// Everyone.
    pub all: bool,
}

impl Recipients {
    /// These users.
    pub fn users<I: IntoIterator<Item = U>, U: Into<UserId>>(users: I) -> Self {
        Self {
            users: users.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// `getsendprogress` → `progress`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SendProgress {
    /// 0..100.
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub progress_in_percent: i64,
    /// 0 not started, 1 running, 2 done.
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub status: i64,
}

/// One forbidden entry of a send result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forbidden {
    /// 143103/143104 QPM, 143105 daily cap, 143106 duplicate content, …
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub code: String,
    /// How many.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub count: Option<i64>,
    /// Whom.
    #[serde(default, deserialize_with = "crate::lenient::opt_string")]
    pub userid: Option<String>,
}

/// `getsendresult` → `send_result`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SendResult {
    /// Unknown users.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub invalid_user_id_list: Vec<String>,
    /// Users dropped by limits.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub forbidden_user_id_list: Vec<String>,
    /// Failed.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub failed_user_id_list: Vec<String>,
    /// Read.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub read_user_id_list: Vec<String>,
    /// Unread.
    #[serde(default, deserialize_with = "crate::lenient::vec_string")]
    pub unread_user_id_list: Vec<String>,
    /// Unknown departments.
    #[serde(default, deserialize_with = "crate::lenient::vec_i64")]
    pub invalid_dept_id_list: Vec<i64>,
    /// Why users were dropped.
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub forbidden_list: Vec<Forbidden>,
}

impl DingTalkClient {
    fn agent(&self) -> Result<AgentId> {
        self.config()
            .agent_id
            .ok_or_else(|| Error::Invalid("work notifications need agent_id in the config".into()))
    }

    /// Send a work notification: `/topapi/message/corpconversation/asyncsend_v2` → task id.
    pub async fn send_work_notification(
        &self,
        to: &Recipients,
        msg: &WorkMessage,
    ) -> Result<MessageTaskId> {
        if to.users.is_empty() && to.depts.is_empty() && !to.all {
            return Err(Error::Invalid("no recipients".into()));
        }
        let mut body = json!({ "agent_id": self.agent()?, "msg": msg.to_json() });
        if let Some(obj) = body.as_object_mut() {
            if !to.users.is_empty() {
                let u: Vec<&str> = to.users.iter().map(UserId::as_str).collect();
                obj.insert("userid_list".into(), u.join(",").into());
            }
            if !to.depts.is_empty() {
                let d: Vec<String> = to.depts.iter().map(ToString::to_string).collect();
                obj.insert("dept_id_list".into(), d.join(",").into());
            }
            if to.all {
                obj.insert("to_all_user".into(), true.into());
            }
        }
        let v = self
            .oapi_post_raw(
                GROUP,
                "/topapi/message/corpconversation/asyncsend_v2",
                &body,
            )
            .await?;
        let id = v
            .get("task_id")
            .cloned()
            .ok_or_else(|| Error::decode("asyncsend_v2: no task_id"))?;
        from_value("asyncsend_v2 task_id", id)
    }

    /// Progress of a send task (< 24 h old): `/topapi/message/corpconversation/getsendprogress`.
    pub async fn work_notification_progress(&self, task: MessageTaskId) -> Result<SendProgress> {
        let v = self
            .oapi_post_raw(
                GROUP,
                "/topapi/message/corpconversation/getsendprogress",
                &json!({ "agent_id": self.agent()?, "task_id": task }),
            )
            .await?;
        let p = v
            .get("progress")
            .cloned()
            .ok_or_else(|| Error::decode("getsendprogress: no progress"))?;
        from_value("getsendprogress", p)
    }

    /// Result of a send task: `/topapi/message/corpconversation/getsendresult`.
    pub async fn work_notification_result(&self, task: MessageTaskId) -> Result<SendResult> {
        let v = self
            .oapi_post_raw(
                GROUP,
                "/topapi/message/corpconversation/getsendresult",
                &json!({ "agent_id": self.agent()?, "task_id": task }),
            )
            .await?;
        let r = v.get("send_result").cloned().unwrap_or(Value::Null);
        if r.is_null() {
            return Ok(SendResult::default());
        }
        from_value("getsendresult", r)
    }
}
