//! `serve`: one node of the hub until Ctrl-C or SIGTERM.

use std::sync::Arc;

use engine::config::{Config, Lang};
use engine::jobs::HandlerRegistry;
use engine::node::Node;
use metrics_exporter_prometheus::PrometheusBuilder;
use store::Store;
use tokio_util::sync::CancellationToken;

use super::{input_error, open_store, runtime_error};
use crate::Failure;
use crate::messages::Msg;

/// Called once the node is migrated and listening, with the store and the shutdown token.
pub type OnReady = Box<dyn FnOnce(Arc<dyn Store>, CancellationToken) + Send>;

/// Run a node. `ready` is called with the store once it is migrated and the node is
/// listening (the demo uses it to enqueue its jobs).
pub async fn serve(
    cfg: Config,
    listen: Option<String>,
    lang: Lang,
    ready: Option<OnReady>,
) -> Result<(), Failure> {
    // Metrics are optional: a second recorder in one process (tests) is not an error.
    let metrics = PrometheusBuilder::new().install_recorder().ok();
    let store = open_store(&cfg.store, lang).await?;
    store
        .migrate()
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let listen = listen.unwrap_or_else(|| cfg.server.listen.clone());
    let dingtalk_callbacks = callback_keys(&cfg).map_err(|e| Failure::input(e.to_string()))?;
    let limiters = cfg
        .limiter_registry()
        .map_err(|e| Failure::input(e.to_string()))?;
    let handlers = HandlerRegistry::for_config(&cfg, Arc::clone(&store), &limiters)
        .await
        .map_err(|e| input_error(lang, &e.to_string()))?;
    let streams = stream_clients(&cfg, &limiters).map_err(|e| Failure::input(e.to_string()))?;
    let approvals = handlers.approval_flows().clone();
    let node = Node::new(Arc::clone(&store), cfg, handlers)
        .map_err(|e| input_error(lang, &e.to_string()))?;
    node.register(engine::clock::now_ms())
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let (listener, addr) = server::bind(&listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    println!(
        "{}",
        Msg::Listening {
            url: &format!("http://{addr}")
        }
        .text(lang)
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone(), lang));
    let state = server::AppState {
        store: Arc::clone(&store),
        metrics,
        dingtalk_callbacks,
        approvals,
    };
    let http = tokio::spawn(server::serve(listener, state, shutdown.clone()));
    for (name, client) in streams {
        tokio::spawn(server::stream::consume(
            name,
            client,
            Arc::clone(&store),
            shutdown.clone(),
        ));
    }
    if let Some(ready) = ready {
        ready(Arc::clone(&store), shutdown.clone());
    }
    let result = node.run(shutdown.clone()).await;
    shutdown.cancel();
    match http.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
        Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    result.map_err(|e| runtime_error(lang, &e.to_string()))?;
    println!("{}", Msg::Stopped.text(lang));
    Ok(())
}

/// A Stream client for every DingTalk connection with `stream = true`.
fn stream_clients(
    cfg: &Config,
    limiters: &limits::LimiterRegistry,
) -> Result<Vec<(String, dingtalk::stream::StreamClient)>, engine::connectors::ConnectorError> {
    let mut out = Vec::new();
    for conn in cfg.connections.values() {
        if let engine::config::ConnectionSettings::DingTalk(c) = &conn.settings
            && c.stream
        {
            let dt = engine::connectors::dingtalk_config(&conn.name, c)?;
            let client = dingtalk::stream::StreamClient::new(&dt)
                .map_err(|e| engine::connectors::ConnectorError {
                    connection: conn.name.clone(),
                    message: e.to_string(),
                })?
                .with_pacer(limiters.pacer(&conn.name));
            out.push((conn.name.clone(), client));
        }
    }
    Ok(out)
}

/// Callback crypto for every DingTalk connection with callback keys.
fn callback_keys(
    cfg: &Config,
) -> Result<server::callbacks::DingTalkCallbacks, engine::connectors::ConnectorError> {
    let mut keys = std::collections::HashMap::new();
    for conn in cfg.connections.values() {
        if let engine::config::ConnectionSettings::DingTalk(c) = &conn.settings
            && let Some(crypto) = engine::connectors::dingtalk_callback_crypto(&conn.name, c)?
        {
            keys.insert(conn.name.clone(), crypto);
        }
    }
    Ok(Arc::new(keys))
}

async fn stop_on_signal(shutdown: CancellationToken, lang: Lang) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    () = shutdown.cancelled() => return,
                }
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = shutdown.cancelled() => return,
        }
    }
    eprintln!("{}", Msg::ShuttingDown.text(lang));
    shutdown.cancel();
}
