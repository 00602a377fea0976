//! The failed-callback list (protocol §5.1 "Retries"; DOC
//! https://open.dingtalk.com/document/development/obtain-the-event-list-of-failed-push-messages):
//! after DingTalk's two retries (+10 s, +30 s) fail, events can be pulled 3–5 min later with
//! `GET /call_back/get_call_back_failed_result` (≤200 per call). Pacer group `callback`.

use serde::Deserialize;
use serde_json::Value;

use crate::client::{DingTalkClient, from_value};
use crate::error::Result;

/// Pacer group.
pub const GROUP: &str = "callback";

/// One failed push.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailedCallback {
    /// The event tag, e.g. `user_add_org`; the data sits under a key of that name.
    pub call_back_tag: String,
    /// When it happened (ms).
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub event_time: Option<i64>,
    /// The org.
    #[serde(default)]
    pub corpid: Option<String>,
    /// All fields, including the `<tag>: {…}` data.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

impl FailedCallback {
    /// The event data (`fields[call_back_tag]`).
    pub fn data(&self) -> Option<&Value> {
        self.fields.get(&self.call_back_tag)
    }
}

/// One batch of failed pushes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailedCallbacks {
    /// Whether more remain (call again).
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub has_more: bool,
    /// The events.
    #[serde(default, deserialize_with = "crate::lenient::null_default")]
    pub failed_list: Vec<FailedCallback>,
}

impl DingTalkClient {
    /// Pull one batch of failed pushes.
    pub async fn failed_callbacks(&self) -> Result<FailedCallbacks> {
        let v = self
            .oapi_get_raw(GROUP, "/call_back/get_call_back_failed_result", &[])
            .await?;
        from_value("get_call_back_failed_result", v)
    }
}
