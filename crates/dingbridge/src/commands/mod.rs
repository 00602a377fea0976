//! One module per command; shared steps (config, store, logging) live here.

mod approvals;
mod demo;
mod jobs;
mod keys;
mod rules;
mod sandbox;
mod serve;
mod sync;
mod webhooks;

use std::path::Path;
use std::sync::Arc;

use engine::config::{Config, Lang, LogFormat, StoreBackend, StoreConfig};
use store::Store;
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;

use crate::Failure;
use crate::cli::{Cli, Command, LogFormatArg};
use crate::messages::Msg;

pub async fn run(cli: Cli, lang: Lang) -> Result<(), Failure> {
    let log_format = cli.log_format;
    let config = cli.config;
    match cli.command {
        Command::Serve { listen } => {
            let cfg = load_config(&config, lang)?;
            init_logging(log_format, cfg.server.log_format);
            serve::serve(cfg, listen, lang, None).await
        }
        Command::Demo {
            listen,
            data_dir,
            seconds,
        } => {
            init_logging(log_format, LogFormat::Text);
            demo::demo(&listen, &data_dir, seconds, lang).await
        }
        Command::Sandbox {
            dingtalk_listen,
            kingdee_listen,
            seed,
            scale,
            config_out,
            latency_ms,
            error_rate,
            outage_seconds,
            token_ttl_seconds,
            edition,
        } => {
            init_logging(log_format, LogFormat::Text);
            let faults = sandbox::FaultFlags::parse(
                latency_ms.as_deref(),
                error_rate.as_deref(),
                outage_seconds.as_deref(),
                token_ttl_seconds.as_deref(),
                edition.as_deref(),
            )
            .map_err(Failure::input)?;
            sandbox::sandbox(
                &dingtalk_listen,
                &kingdee_listen,
                seed.as_deref(),
                scale.as_deref(),
                config_out.as_deref(),
                &faults,
                lang,
            )
            .await
        }
        Command::Check {} => {
            let cfg = load_config(&config, lang)?;
            println!(
                "{}",
                Msg::ConfigOk {
                    connections: cfg.connections.len(),
                    flows: cfg.flows.len()
                }
                .text(lang)
            );
            let store = open_store(&cfg.store, lang).await?;
            let status = store
                .migration_status()
                .await
                .map_err(|e| runtime_error(lang, &e.to_string()))?;
            let applied = format!("{}/{}", status.applied.len(), status.embedded.len());
            println!(
                "{}",
                Msg::StoreOk {
                    backend: &store.backend().to_string(),
                    migrations: &applied
                }
                .text(lang)
            );
            if !status.is_current() {
                return Err(Failure::runtime(Msg::StoreNotMigrated.text(lang)));
            }
            probe_connections(&cfg, lang).await
        }
        Command::Migrate {} => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            store
                .migrate()
                .await
                .map_err(|e| runtime_error(lang, &e.to_string()))?;
            println!(
                "{}",
                Msg::Migrated {
                    backend: &store.backend().to_string()
                }
                .text(lang)
            );
            Ok(())
        }
        Command::Sync { command } => {
            let cfg = load_config(&config, lang)?;
            init_logging(log_format, cfg.server.log_format);
            let store = open_store(&cfg.store, lang).await?;
            sync::sync(&cfg, store, command, lang).await
        }
        Command::Rules { command } => rules::rules(&config, command, lang),
        Command::Jobs { command } => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            jobs::jobs(store.as_ref(), command, lang).await
        }
        Command::Dlq { command } => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            jobs::dlq(store.as_ref(), command, lang).await
        }
        Command::Keys { command } => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            keys::keys(store.as_ref(), command, lang).await
        }
        Command::Approvals { command } => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            approvals::approvals(store.as_ref(), command, lang).await
        }
        Command::Webhooks { command } => {
            let cfg = load_config(&config, lang)?;
            let store = open_store(&cfg.store, lang).await?;
            webhooks::webhooks(store.as_ref(), command, lang).await
        }
    }
}

/// Probe every connection; print one line each; fail if any could not be reached.
async fn probe_connections(cfg: &Config, lang: Lang) -> Result<(), Failure> {
    use engine::connectors::{ProbeOutcome, probe};
    let registry = cfg
        .limiter_registry()
        .map_err(|e| Failure::input(e.to_string()))?;
    let mut failed = 0;
    for conn in cfg.connections.values() {
        let outcome = probe(
            conn,
            registry.pacer(&conn.name),
            std::time::Duration::from_secs(15),
        )
        .await;
        let line = match &outcome {
            ProbeOutcome::Ok { detail, millis } => Msg::ProbeOk {
                name: &conn.name,
                detail,
                millis: *millis,
            },
            ProbeOutcome::Failed { detail } => {
                failed += 1;
                Msg::ProbeFailed {
                    name: &conn.name,
                    detail,
                }
            }
            ProbeOutcome::NotProbed { reason } => Msg::NotProbed {
                name: &conn.name,
                reason,
            },
        };
        println!("{}", line.text(lang));
    }
    if failed > 0 {
        return Err(Failure::runtime(
            Msg::ProbesFailed { count: failed }.text(lang),
        ));
    }
    Ok(())
}

/// Load and validate the config; its error is already one line with file:line and the fix.
pub fn load_config(path: &Path, lang: Lang) -> Result<Config, Failure> {
    let cfg = Config::load(path).map_err(|e| Failure::input(e.render(lang)))?;
    // Limits are checked as a whole (e.g. a group's rule against the connection's total).
    cfg.limiter_registry()
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

/// Bad input (a flow that cannot be set up, a refused option): exit code 2.
pub fn input_error(lang: Lang, detail: &str) -> Failure {
    Failure::input(Msg::Error { detail }.text(lang))
}

pub fn runtime_error(lang: Lang, detail: &str) -> Failure {
    Failure::runtime(Msg::Error { detail }.text(lang))
}

/// Open the configured store (SQLite or PostgreSQL by the URL's scheme).
pub async fn open_store(cfg: &StoreConfig, lang: Lang) -> Result<Arc<dyn Store>, Failure> {
    let opened: Result<Arc<dyn Store>, store::StoreError> = match cfg.backend() {
        StoreBackend::Sqlite => SqliteStore::open(&cfg.url, cfg.max_connections)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        StoreBackend::Postgres => PostgresStore::open(&cfg.url, cfg.max_connections)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
    };
    let store = opened.map_err(|e| runtime_error(lang, &format!("[store] url: {e}")))?;
    store
        .ping()
        .await
        .map_err(|e| runtime_error(lang, &format!("[store] url: {e}")))?;
    Ok(store)
}

/// Logs go to stderr; `RUST_LOG` refines the level.
fn init_logging(flag: Option<LogFormatArg>, configured: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let json = match flag {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        None => configured == LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
