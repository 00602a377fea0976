//! `keys create | list | revoke`: the API keys in-house systems call the REST API with. A key is
//! printed once, when it is created; the store keeps its hash only, and listings show its
//! prefix. Creating and revoking a key leave an audit row (actor `cli`).

use engine::approvals::keys::{KeyError, SCOPES, create_key};
use engine::config::Lang;
use serde_json::json;
use store::{NewAudit, Store};

use super::approvals::{dash, local_time, print_json, print_table};
use super::runtime_error;
use crate::Failure;
use crate::cli::KeysCommand;
use crate::messages::{Msg, Table, scope_zh};

pub async fn keys(store: &dyn Store, cmd: KeysCommand, lang: Lang) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Create { name, scopes, json } => {
            create(store, &name, scopes, json, lang).await
        }
        KeysCommand::List { json } => list(store, json, lang).await,
        KeysCommand::Revoke { prefix } => revoke(store, &prefix, lang).await,
    }
}

/// The known scopes and what each allows, for error messages.
fn known_scopes(lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    SCOPES
        .iter()
        .map(|(scope, what)| match scope_zh(scope) {
            Some(what) if zh => format!("{scope}（{what}）"),
            _ => format!("{scope} ({what})"),
        })
        .collect::<Vec<_>>()
        .join(if zh { "，" } else { ", " })
}

async fn create(
    store: &dyn Store,
    name: &str,
    scopes: Vec<String>,
    json: bool,
    lang: Lang,
) -> Result<(), Failure> {
    let mut unique: Vec<String> = Vec::new();
    for s in scopes.into_iter().map(|s| s.trim().to_owned()) {
        if !s.is_empty() && !unique.contains(&s) {
            unique.push(s);
        }
    }
    let known = known_scopes(lang);
    if name.trim().is_empty() {
        return Err(Failure::input(Msg::KeyNameEmpty.text(lang)));
    }
    let now = engine::clock::now_ms();
    let created = create_key(store, name, &unique, now)
        .await
        .map_err(|e| match e {
            KeyError::UnknownScope(scope) => Failure::input(
                Msg::UnknownScope {
                    scope: &scope,
                    known: &known,
                }
                .text(lang),
            ),
            KeyError::NoScope => Failure::input(Msg::NoScope { known: &known }.text(lang)),
            KeyError::Store(e) => runtime_error(lang, &e.to_string()),
        })?;
    let record = &created.record;
    audit(
        store,
        "api_key.create",
        &record.prefix,
        json!({ "id": record.id, "name": record.name, "scopes": record.scopes }),
        now,
        lang,
    )
    .await?;
    if json {
        let mut value =
            serde_json::to_value(record).map_err(|e| runtime_error(lang, &e.to_string()))?;
        value["key"] = json!(created.key);
        value["warning"] = json!(Msg::KeyShownOnce.text(lang));
        return print_json(serde_json::to_string_pretty(&value), lang);
    }
    println!(
        "{}",
        Msg::KeyCreated {
            name: &record.name,
            key: &created.key
        }
        .text(lang)
    );
    println!("{}", Msg::KeyShownOnce.text(lang));
    println!();
    println!(
        "{}",
        Msg::KeyDetails {
            prefix: &record.prefix,
            scopes: &record.scopes.join(", ")
        }
        .text(lang)
    );
    Ok(())
}

async fn list(store: &dyn Store, json: bool, lang: Lang) -> Result<(), Failure> {
    let keys = store
        .list_api_keys()
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if json {
        // `ApiKey` never serializes its hash.
        return print_json(serde_json::to_string_pretty(&keys), lang);
    }
    if keys.is_empty() {
        println!("{}", Msg::NoKeys.text(lang));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.prefix.clone(),
                k.name.clone(),
                k.scopes.join(","),
                local_time(k.created_at),
                dash(k.last_used_at.map(local_time).as_deref()),
                dash(k.revoked_at.map(local_time).as_deref()),
            ]
        })
        .collect();
    print_table(Table::Keys.header(lang), &rows);
    Ok(())
}

async fn revoke(store: &dyn Store, prefix: &str, lang: Lang) -> Result<(), Failure> {
    // The prefix, or a whole key pasted by mistake.
    let prefix = engine::approvals::keys::prefix_of(prefix)
        .unwrap_or_else(|| prefix.strip_prefix("dbk_").unwrap_or(prefix));
    let key = store
        .find_api_key(prefix)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?
        .ok_or_else(|| Failure::runtime(Msg::KeyNotFound { prefix }.text(lang)))?;
    let already = |at: i64| {
        Failure::runtime(
            Msg::KeyAlreadyRevoked {
                prefix,
                at: &local_time(at),
            }
            .text(lang),
        )
    };
    if let Some(at) = key.revoked_at {
        return Err(already(at));
    }
    let now = engine::clock::now_ms();
    let revoked = store
        .revoke_api_key(prefix, now)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if !revoked {
        // Revoked by someone else between the two reads.
        let at = store
            .find_api_key(prefix)
            .await
            .ok()
            .flatten()
            .and_then(|k| k.revoked_at)
            .unwrap_or(now);
        return Err(already(at));
    }
    audit(
        store,
        "api_key.revoke",
        prefix,
        json!({ "id": key.id, "name": key.name }),
        now,
        lang,
    )
    .await?;
    println!(
        "{}",
        Msg::KeyRevoked {
            prefix,
            name: &key.name
        }
        .text(lang)
    );
    Ok(())
}

/// One audit row by the CLI, in a transaction of its own.
pub(super) async fn audit(
    store: &dyn Store,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    now: i64,
    lang: Lang,
) -> Result<(), Failure> {
    let write = async {
        let mut tx = store.begin().await?;
        tx.append_audit(&NewAudit {
            actor: "cli".into(),
            action: action.into(),
            target: target.into(),
            detail,
            at: now,
        })
        .await?;
        tx.commit().await
    };
    write
        .await
        .map_err(|e: store::StoreError| runtime_error(lang, &e.to_string()))
}
