//! Faithful simulators of DingTalk and Kingdee, with fault injection and an admin API.
//! Written from `shared/protocols/`, never from the clients: it must not import `dingtalk` or
//! `kingdee`, so a bug in a client cannot hide behind the same bug in its simulator; the
//! official SDKs keep it honest (interoperability tests under `tests/interop/`).
//!
//! - [`seed`]: the demo company both simulators load (departments, people, base data).
//! - [`kingdee`]: the K3Cloud WebAPI and SSO entry.

pub mod kingdee;
pub mod seed;
