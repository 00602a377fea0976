//! `webhooks list <subject> | redeliver <message-id>`: the outbox of messages to in-house
//! systems. Messages of one subject (an approval) go out in order; a `dead` one holds its
//! successors back until it is redelivered. A redelivery leaves an audit row (actor `cli`).

use engine::approvals::outbox::{self, RedeliverError};
use engine::config::Lang;
use store::{Store, WebhookMessageStatus};

use super::approvals::{message_rows, print_json, print_table};
use super::runtime_error;
use crate::Failure;
use crate::cli::WebhooksCommand;
use crate::messages::{Msg, Table};

pub async fn webhooks(store: &dyn Store, cmd: WebhooksCommand, lang: Lang) -> Result<(), Failure> {
    match cmd {
        WebhooksCommand::List { subject, json } => list(store, &subject, json, lang).await,
        WebhooksCommand::Redeliver { message_id } => redeliver(store, &message_id, lang).await,
    }
}

async fn list(store: &dyn Store, subject: &str, json: bool, lang: Lang) -> Result<(), Failure> {
    let messages = store
        .list_webhook_messages(subject)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if messages.is_empty() {
        // An approval without messages yet is fine; an unknown id is most likely a typo.
        let known = store
            .get_approval(subject)
            .await
            .map_err(|e| runtime_error(lang, &e.to_string()))?
            .is_some();
        if !known {
            return Err(Failure::runtime(
                Msg::SubjectNotFound { subject }.text(lang),
            ));
        }
    }
    if json {
        return print_json(serde_json::to_string_pretty(&messages), lang);
    }
    if messages.is_empty() {
        println!("{}", Msg::NoMessages { subject }.text(lang));
        return Ok(());
    }
    print_table(Table::Messages.header(lang), &message_rows(&messages));
    Ok(())
}

async fn redeliver(store: &dyn Store, message_id: &str, lang: Lang) -> Result<(), Failure> {
    let now = engine::clock::now_ms();
    let done = outbox::redeliver(store, message_id, "cli", now)
        .await
        .map_err(|e| match e {
            RedeliverError::NotFound(_) => {
                Failure::runtime(Msg::MessageNotFound { id: message_id }.text(lang))
            }
            // Delivering it while an earlier message of its subject waits would break their order.
            RedeliverError::Behind { earlier, status } => {
                let msg = if status == WebhookMessageStatus::Pending {
                    Msg::RedeliverWaiting {
                        id: message_id,
                        earlier: &earlier,
                    }
                } else {
                    Msg::RedeliverOutOfOrder {
                        id: message_id,
                        earlier: &earlier,
                        status: status.as_str(),
                    }
                };
                Failure::input(msg.text(lang))
            }
            RedeliverError::Store(e) => runtime_error(lang, &e.to_string()),
        })?;
    println!(
        "{}",
        Msg::Redelivered {
            id: message_id,
            subject: &done.message.fields.subject,
            seq: done.message.seq,
        }
        .text(lang)
    );
    println!("{}", Msg::RedeliveryJob { job: done.job.id.0 }.text(lang));
    Ok(())
}
