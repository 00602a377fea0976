//! `webhooks list <subject> | redeliver <message-id>`: the outbox of messages to in-house
//! systems. Messages of one subject (an approval) go out in order; a `dead` one holds its
//! successors back until it is redelivered. A redelivery leaves an audit row (actor `cli`).

use engine::approvals::outbox::{self, RedeliverError};
use engine::config::Lang;
use serde_json::json;
use store::{JobFilter, JobStatus, Store, WebhookMessageStatus};

use super::approvals::{message_rows, print_json, print_table};
use super::keys::audit;
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
    let store_err = |e: store::StoreError| runtime_error(lang, &e.to_string());
    let message = store
        .get_webhook_message(message_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| Failure::runtime(Msg::MessageNotFound { id: message_id }.text(lang)))?;
    let subject = message.fields.subject.clone();
    // Delivering it while an earlier message of its subject waits would break their order.
    let earlier = store
        .list_webhook_messages(&subject)
        .await
        .map_err(store_err)?
        .into_iter()
        .find(|m| m.seq < message.seq && m.status != WebhookMessageStatus::Delivered);
    if let Some(earlier) = earlier {
        let msg = if earlier.status == WebhookMessageStatus::Pending {
            Msg::RedeliverWaiting {
                id: message_id,
                earlier: &earlier.fields.message_id,
            }
        } else {
            Msg::RedeliverOutOfOrder {
                id: message_id,
                earlier: &earlier.fields.message_id,
                status: earlier.status.as_str(),
            }
        };
        return Err(Failure::input(msg.text(lang)));
    }
    let flow = store
        .get_approval(&subject)
        .await
        .map_err(store_err)?
        .map(|a| a.fields.flow);
    let now = engine::clock::now_ms();
    let reset = outbox::redeliver(store, message_id, flow.as_deref(), now)
        .await
        .map_err(|e| match e {
            RedeliverError::NotFound(_) => {
                Failure::runtime(Msg::MessageNotFound { id: message_id }.text(lang))
            }
            RedeliverError::Store(e) => store_err(e),
        })?;
    audit(
        store,
        "webhook.redeliver",
        message_id,
        json!({
            "subject": subject,
            "seq": message.seq,
            "endpoint": message.fields.endpoint,
            "previous_status": message.status.as_str(),
            "attempts": message.attempts,
            "flow": flow,
        }),
        now,
        lang,
    )
    .await?;
    println!(
        "{}",
        Msg::Redelivered {
            id: message_id,
            subject: &subject,
            seq: reset.seq,
        }
        .text(lang)
    );
    // `redeliver` does not return its job; find it among the queued deliveries.
    let jobs = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Queued),
            kind: Some(outbox::KIND.to_owned()),
            flow,
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .map_err(store_err)?;
    if let Some(job) = jobs
        .iter()
        .filter(|j| j.payload.get("message_id").and_then(|v| v.as_str()) == Some(message_id))
        .max_by_key(|j| j.id.0)
    {
        println!("{}", Msg::RedeliveryJob { job: job.id.0 }.text(lang));
    }
    Ok(())
}
