//! The approval integration: the approval bridge through which in-house systems start DingTalk
//! approvals (their plain JSON form values converted to DingTalk's shapes by the template's form
//! schema, see [`form`]) and follow them to their end, and through which finished approvals
//! become Kingdee documents.

pub mod bridge;
pub mod document;
pub mod form;
pub mod keys;
pub mod options;
pub mod outbox;
pub mod recipe;
