//! Faithful simulators of DingTalk and Kingdee, with fault injection and an admin API.
//! Written from `shared/protocols/`, never from the clients: it must not import `dingtalk` or
//! `kingdee`, so a bug in a client cannot hide behind the same bug in its simulator; the
//! official SDKs keep it honest (interoperability tests under `tests/interop/`).
//!
//! - [`seed`]: the demo company both simulators load (departments, people, base data).
//! - [`dingtalk`]: the DingTalk oapi and v1.0 APIs, HTTP-callback events and limits.
//! - [`kingdee`]: the K3Cloud WebAPI and SSO entry.

pub mod admin_client;
pub mod dingtalk;
pub mod ehr;
pub mod kingdee;
pub mod seed;
