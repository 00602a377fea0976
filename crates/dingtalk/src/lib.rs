//! DingTalk (钉钉) client: tokens, contacts, approvals (oapi + v1.0), messages, robot,
//! callback crypto, the Stream client and OAuth login. Production code for the real platform.
//! It knows nothing about flows or the store.
