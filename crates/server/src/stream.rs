//! The hub's DingTalk Stream consumer (protocol §5.2): events arrive over an outbound
//! WebSocket, so no public IP is needed. Each EVENT frame is stored in the inbox with its job
//! ([`engine::jobs::inbox::store_event`], the same path as the HTTP callback) before the
//! handler returns, and the client sends the ACK only after that: nothing is acknowledged
//! before it is durable. A frame that cannot be stored is answered LATER so DingTalk
//! redelivers it.

use std::sync::Arc;

use async_trait::async_trait;
use dingtalk::stream::{DownstreamFrame, FrameType, HandlerOutcome, StreamClient, StreamHandler};
use sha2::{Digest, Sha256};
use store::{Store, now_ms};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Stores a connection's Stream events in the inbox.
pub struct InboxStreamHandler {
    pub connection: String,
    pub store: Arc<dyn Store>,
}

#[async_trait]
impl StreamHandler for InboxStreamHandler {
    async fn handle(&self, frame: DownstreamFrame) -> HandlerOutcome {
        if frame.frame_type != FrameType::Event {
            return HandlerOutcome::NotImplemented;
        }
        let payload = match frame.data_json() {
            Ok(v) => v,
            Err(e) => {
                // Not JSON: it will never be, so storing it raw keeps it rather than looping.
                warn!(connection = %self.connection, error = %e, "stream event data is not JSON; stored as text");
                serde_json::Value::String(frame.data.clone())
            }
        };
        let h = &frame.headers;
        let event_type = h.event_type.clone().unwrap_or_else(|| h.topic.clone());
        // The eventId is the dedupe key (a redelivery carries the same one); without it, the
        // content is.
        let event_id = h.event_id.clone().unwrap_or_else(|| {
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(frame.data.as_bytes()))
            )
        });
        match engine::jobs::inbox::store_event(
            self.store.as_ref(),
            &self.connection,
            &event_id,
            &event_type,
            payload,
            now_ms(),
        )
        .await
        {
            Ok(new) => {
                metrics::counter!("dingbridge_stream_events_total", "connection" => self.connection.clone(), "new" => if new { "true" } else { "false" })
                    .increment(1);
                info!(connection = %self.connection, event_id, event_type, new, "DingTalk stream event stored");
                HandlerOutcome::Success
            }
            Err(e) => {
                warn!(connection = %self.connection, error = %e, "stream event not stored; asking DingTalk to redeliver");
                HandlerOutcome::Later(format!("not stored: {e}"))
            }
        }
    }
}

/// Consume `client`'s events into the inbox until `shutdown`.
pub async fn consume(
    connection: String,
    client: StreamClient,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) {
    let handler = Arc::new(InboxStreamHandler {
        connection: connection.clone(),
        store,
    });
    info!(connection, "DingTalk stream consumer starting");
    if let Err(e) = client.run(handler, shutdown.cancelled_owned()).await {
        warn!(connection, error = %e, "DingTalk stream consumer stopped");
    }
}
