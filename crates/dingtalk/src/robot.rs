//! Custom group robot (自定义机器人) webhook with "加签" signing (protocol §4.2; DOC
//! https://open.dingtalk.com/document/development/custom-robots-send-group-messages ,
//! https://open.dingtalk.com/document/dingstart/customize-robot-security-settings).
//!
//! `sign = urlencode(base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret)))`;
//! `timestamp` (ms, within ±1 h of server time) and `sign` go in the URL. Checked against the
//! `robot_sign` vectors.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;

use crate::client::{Family, Http};
use crate::config::{DEFAULT_OAPI_BASE, join, parse_base};
use crate::error::{Error, Result};

/// Pacer group of robot webhooks.
pub const GROUP_ROBOT: &str = "robot";

/// `base64(HMAC-SHA256(secret, timestamp + "\n" + secret))` (not yet URL-encoded).
pub fn robot_sign(secret: &str, timestamp_ms: i64) -> String {
    let string_to_sign = format!("{timestamp_ms}\n{secret}");
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The webhook URL: `{base}/robot/send?access_token=…[&timestamp=…&sign=…]`.
pub fn robot_url(
    base: &Url,
    access_token: &str,
    secret: Option<&str>,
    timestamp_ms: i64,
) -> String {
    let mut url = format!(
        "{}?access_token={}",
        join(base, "/robot/send"),
        urlencoding::encode(access_token)
    );
    if let Some(secret) = secret {
        let sign = robot_sign(secret, timestamp_ms);
        url.push_str(&format!(
            "&timestamp={timestamp_ms}&sign={}",
            urlencoding::encode(&sign)
        ));
    }
    url
}

/// `at` of a robot message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotAt {
    /// @ everyone.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub is_at_all: bool,
    /// Mobiles to @ (≤50 in total).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub at_mobiles: Vec<String>,
    /// User ids to @.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub at_user_ids: Vec<String>,
}

/// A button of an action card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotButton {
    /// Label.
    pub title: String,
    /// Target URL.
    #[serde(rename = "actionURL")]
    pub action_url: String,
}

/// A link of a feed card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotFeedLink {
    /// Title.
    pub title: String,
    /// Target URL.
    #[serde(rename = "messageURL")]
    pub message_url: String,
    /// Picture URL.
    #[serde(rename = "picURL")]
    pub pic_url: String,
}

/// The body of a robot message, by `msgtype` (protocol §4.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "msgtype")]
pub enum RobotBody {
    /// Plain text.
    #[serde(rename = "text")]
    Text {
        /// `{content}`.
        text: serde_json::Value,
    },
    /// Markdown.
    #[serde(rename = "markdown")]
    Markdown {
        /// `{title, text}`.
        markdown: serde_json::Value,
    },
    /// A link card.
    #[serde(rename = "link")]
    Link {
        /// `{messageUrl, title, picUrl, text}`.
        link: serde_json::Value,
    },
    /// An action card.
    #[serde(rename = "actionCard")]
    ActionCard {
        /// `{title, text, btnOrientation, singleTitle, singleURL, btns}`.
        #[serde(rename = "actionCard")]
        action_card: serde_json::Value,
    },
    /// A feed card.
    #[serde(rename = "feedCard")]
    FeedCard {
        /// `{links:[{title, messageURL, picURL}]}`.
        #[serde(rename = "feedCard")]
        feed_card: serde_json::Value,
    },
}

/// A robot message: body, optional `at` and optional `msgUuid` (idempotency key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RobotMessage {
    /// The typed body.
    #[serde(flatten)]
    pub body: RobotBody,
    /// Who to @.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<RobotAt>,
    /// Idempotency key.
    #[serde(rename = "msgUuid", skip_serializing_if = "Option::is_none")]
    pub msg_uuid: Option<String>,
}

impl RobotMessage {
    fn of(body: RobotBody) -> Self {
        Self {
            body,
            at: None,
            msg_uuid: None,
        }
    }
    /// A text message.
    pub fn text(content: impl Into<String>) -> Self {
        Self::of(RobotBody::Text {
            text: serde_json::json!({ "content": content.into() }),
        })
    }
    /// A markdown message.
    pub fn markdown(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self::of(RobotBody::Markdown {
            markdown: serde_json::json!({ "title": title.into(), "text": text.into() }),
        })
    }
    /// A link message.
    pub fn link(
        title: impl Into<String>,
        text: impl Into<String>,
        message_url: impl Into<String>,
        pic_url: impl Into<String>,
    ) -> Self {
        Self::of(RobotBody::Link {
            link: serde_json::json!({
                "title": title.into(), "text": text.into(),
                "messageUrl": message_url.into(), "picUrl": pic_url.into()
            }),
        })
    }
    /// An action card with one button.
    pub fn action_card(
        title: impl Into<String>,
        text: impl Into<String>,
        single_title: impl Into<String>,
        single_url: impl Into<String>,
    ) -> Self {
        Self::of(RobotBody::ActionCard {
            action_card: serde_json::json!({
                "title": title.into(), "text": text.into(),
                "singleTitle": single_title.into(), "singleURL": single_url.into()
            }),
        })
    }
    /// An action card with several buttons.
    pub fn action_card_buttons(
        title: impl Into<String>,
        text: impl Into<String>,
        vertical: bool,
        btns: Vec<RobotButton>,
    ) -> Self {
        Self::of(RobotBody::ActionCard {
            action_card: serde_json::json!({
                "title": title.into(), "text": text.into(),
                "btnOrientation": if vertical { "0" } else { "1" }, "btns": btns
            }),
        })
    }
    /// A feed card.
    pub fn feed_card(links: Vec<RobotFeedLink>) -> Self {
        Self::of(RobotBody::FeedCard {
            feed_card: serde_json::json!({ "links": links }),
        })
    }
    /// Set who to @.
    pub fn with_at(mut self, at: RobotAt) -> Self {
        self.at = Some(at);
        self
    }
    /// Set the idempotency key.
    pub fn with_msg_uuid(mut self, id: impl Into<String>) -> Self {
        self.msg_uuid = Some(id.into());
        self
    }
}

/// One custom robot: its webhook `access_token` and optional `SEC…` signing secret.
#[derive(Clone)]
pub struct RobotClient {
    http: Http,
    base: Url,
    access_token: SecretString,
    secret: Option<SecretString>,
}

impl std::fmt::Debug for RobotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotClient")
            .field("base", &self.base.as_str())
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl RobotClient {
    /// A robot on the production oapi host, unpaced.
    pub fn new(access_token: impl Into<String>, secret: Option<String>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(Error::transport)?;
        Ok(Self {
            http: Http::new(client, Arc::new(limits::Unpaced)),
            base: parse_base(DEFAULT_OAPI_BASE)?,
            access_token: SecretString::from(access_token.into()),
            secret: secret.map(SecretString::from),
        })
    }

    /// Use another oapi base (a sandbox).
    pub fn with_base(mut self, base: &str) -> Result<Self> {
        self.base = parse_base(base)?;
        Ok(self)
    }

    /// Pace sends through this pacer (group `robot`).
    pub fn with_pacer(mut self, pacer: Arc<dyn limits::Pacer>) -> Self {
        self.http.pacer = pacer;
        self
    }

    /// Use this reqwest client.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http.client = client;
        self
    }

    /// Send with the current time as the signing timestamp.
    pub async fn send(&self, msg: &RobotMessage) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        self.send_at(msg, now).await
    }

    /// Send signing with the given timestamp (ms).
    pub async fn send_at(&self, msg: &RobotMessage, timestamp_ms: i64) -> Result<()> {
        let url = robot_url(
            &self.base,
            self.access_token.expose_secret(),
            self.secret.as_ref().map(|s| s.expose_secret()),
            timestamp_ms,
        );
        let req = self
            .http
            .client
            .post(url)
            .header("content-type", "application/json;charset=UTF-8")
            .json(msg);
        self.http.call(GROUP_ROBOT, Family::Oapi, req).await?;
        Ok(())
    }
}
