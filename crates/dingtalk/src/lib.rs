//! DingTalk (钉钉) client: tokens, contacts, approvals (oapi + v1.0), messages, robot,
//! callback crypto, the Stream client and OAuth login. Production code for the real platform.
//! It knows nothing about flows or the store.
//!
//! Reference: `shared/protocols/dingtalk.md` (cited as "protocol §n" in comments; the
//! sources it names — DOC pages, official SDKs — are cited next to each rule). Golden bytes:
//! `shared/vectors/dingtalk.json`.
//!
//! # Shape
//! * [`DingTalkConfig`] / [`Credentials`]: one app (CorpId, AgentId, Client ID/Secret, callback
//!   token + EncodingAESKey, base URLs overridable for a sandbox).
//! * [`DingTalkClient`]: one per app, cheap to clone. Every HTTP request passes through an
//!   `Arc<dyn limits::Pacer>` under an API group ([`groups`]); the default is
//!   [`limits::Unpaced`]. Tokens come from the shared [`TokenCache`] (single-flight refresh a
//!   margin before expiry; one refresh-and-retry on an invalid-token answer).
//! * Capabilities are methods on the client, one module each: [`contacts`], [`approvals`],
//!   [`messages`], [`login`], [`callbacks`]; plus [`robot`] (webhook robots, own client),
//!   [`crypto`] (HTTP-callback crypto) and [`stream`] (Stream mode).
//! * [`Error`] classifies every failure; callers decide on retries with
//!   [`Error::is_retryable`] and [`Error::retry_after`].

pub mod approvals;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod contacts;
pub mod crypto;
pub mod error;
pub mod ids;
mod lenient;
pub mod login;
pub mod messages;
pub mod robot;
pub mod stream;
pub mod token;

pub use client::{DingTalkClient, DingTalkClientBuilder};
pub use config::{CallbackSettings, Credentials, DingTalkConfig, TokenEndpoint};
pub use crypto::{CallbackCrypto, CryptoError, EncryptedReply};
pub use error::{Error, Result};
pub use ids::*;
pub use robot::{RobotClient, RobotMessage};
pub use token::{AccessToken, TokenCache};

/// Pacer group names, one per DingTalk API family area.
pub mod groups {
    /// Token endpoints.
    pub const TOKEN: &str = crate::token::GROUP_TOKEN;
    /// Contacts (通讯录).
    pub const CONTACTS: &str = "contacts";
    /// Approvals (OA 审批).
    pub const WORKFLOW: &str = "workflow";
    /// Work notifications.
    pub const MESSAGE: &str = "message";
    /// Custom group robots.
    pub const ROBOT: &str = crate::robot::GROUP_ROBOT;
    /// Login / SSO.
    pub const LOGIN: &str = "login";
    /// Failed-callback list.
    pub const CALLBACK: &str = "callback";
    /// Stream gateway (connection open).
    pub const STREAM: &str = "stream";
}
