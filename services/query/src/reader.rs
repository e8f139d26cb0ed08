//! Reading the event stream in order from a position, with the checks both
//! the projector and the rebuild need: no gap, no duplicate, and a decode
//! failure reported, never skipped.

use std::time::Duration;

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::{AckPolicy, DeliverPolicy, pull},
    context::GetStreamErrorKind,
};
use futures::StreamExt;

/// Idle heartbeat of the consumer; two missed ones end the reader.
const HEARTBEAT: Duration = Duration::from_secs(1);
use veltrix_domain::{Revision, StoreError, StoredEvent};
use veltrix_jetstream::{StreamSettings, decode_message};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("event at revision {revision} cannot be applied: {message}")]
    Undecodable { revision: Revision, message: String },
    /// The stream does not exist yet: the command service creates it when
    /// it starts, so this is a wait, not a failure.
    #[error("the event stream {0} does not exist yet")]
    NoStream(String),
}

fn nats<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> ReadError {
    move |e| ReadError::Nats(format!("{context}: {e}"))
}

/// An in-order reader of every namespace's events after a position.
pub struct EventReader {
    stream: jetstream::stream::Stream,
    consumer: String,
    messages: pull::Stream,
    position: Revision,
    /// The stream's last sequence when the reader was opened.
    pub head: Revision,
}

/// One event and how many are left after it (0: caught up).
pub struct Next {
    pub stored: StoredEvent,
    pub pending: u64,
}

impl EventReader {
    /// Opens a reader of the events after `position`. Its consumer is
    /// ephemeral: NATS removes it 30 s after this process stops pulling.
    pub async fn open(
        js: &jetstream::Context,
        settings: &StreamSettings,
        position: Revision,
    ) -> Result<Self, ReadError> {
        let mut stream = js.get_stream(&settings.name).await.map_err(|e| match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                ReadError::NoStream(settings.name.clone())
            }
            _ => nats("looking up the event stream")(e),
        })?;
        let head = stream.info().await.map_err(nats("reading the event stream's state"))?.state.last_sequence;
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: settings.stream_subject(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: position + 1 },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(nats("creating a consumer"))?;
        let name = consumer.cached_info().name.clone();
        let messages = consumer
            .stream()
            .max_messages_per_batch(1000)
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(nats("pulling events"))?;
        Ok(Self { stream, consumer: name, messages, position, head })
    }

    /// Deletes the consumer (best effort: its inactivity threshold removes
    /// it anyway).
    pub async fn close(&self) {
        if let Err(e) = self.stream.delete_consumer(&self.consumer).await {
            tracing::debug!(consumer = %self.consumer, error = %e, "could not delete the consumer");
        }
    }

    /// The next event if one is already here, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Next, ReadError>> {
        use futures::FutureExt;
        // Cancel-safe: `next` changes nothing before it returns an event.
        self.next().now_or_never()
    }

    /// The next event after the position; waits for one to arrive.
    pub async fn next(&mut self) -> Result<Next, ReadError> {
        loop {
            let msg = match self.messages.next().await {
                None => return Err(ReadError::Nats("the consumer ended".into())),
                // A consumer that lost its server (a restart drops memory
                // consumers) only shows as missing heartbeats: start over
                // from our position rather than wait forever.
                Some(Err(e)) => return Err(ReadError::Nats(format!("pulling events: {e}"))),
                Some(Ok(m)) => m,
            };
            let info = msg.info().map_err(nats("reading event metadata"))?;
            let (revision, pending) = (info.stream_sequence, info.pending);
            if revision <= self.position {
                continue;
            }
            if revision != self.position + 1 {
                // The stream allows no deletes, so a jump is a lost delivery.
                return Err(ReadError::Nats(format!("gap in delivery: expected {} got {revision}", self.position + 1)));
            }
            let stored = decode_message(revision, msg.headers.as_ref(), &msg.payload).map_err(|e| match e {
                StoreError::Undecodable { revision, message } => ReadError::Undecodable { revision, message },
                other => ReadError::Nats(other.to_string()),
            })?;
            self.position = revision;
            return Ok(Next { stored, pending });
        }
    }
}
