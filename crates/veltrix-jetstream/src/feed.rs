//! [`EventFeed`] on JetStream: every namespace's events in stream order from
//! a position, through an ephemeral pull consumer that NATS removes when the
//! reader's process is gone.

use std::time::Duration;

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::{AckPolicy, DeliverPolicy, pull},
    context::GetStreamErrorKind,
};
use futures::StreamExt;
use veltrix_domain::{EventFeed, FeedError, FeedItem, FeedReader, Revision, StoreError};

use crate::{StreamSettings, decode_message};

/// Idle heartbeat of the consumer; two missed ones end the reader.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Most messages one pull asks for.
const PULL_BATCH: usize = 1000;

fn unavailable<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> FeedError {
    move |e| FeedError::Unavailable(format!("{context}: {e}"))
}

/// Opens [`JetStreamReader`]s on the event stream.
#[derive(Clone)]
pub struct JetStreamFeed {
    js: jetstream::Context,
    settings: StreamSettings,
}

impl JetStreamFeed {
    pub fn new(client: async_nats::Client, settings: StreamSettings) -> Self {
        Self { js: jetstream::new(client), settings }
    }
}

/// An in-order reader of every namespace's events after a position.
pub struct JetStreamReader {
    stream: jetstream::stream::Stream,
    consumer: String,
    messages: pull::Stream,
    position: Revision,
    head: Revision,
    /// An undecodable event ends the reader for good: it is answered again.
    halted: Option<FeedError>,
}

impl EventFeed for JetStreamFeed {
    type Reader = JetStreamReader;

    /// Its consumer is ephemeral: NATS removes it 30 s after this process
    /// stops pulling.
    async fn open(&self, after: Revision) -> Result<JetStreamReader, FeedError> {
        let name = &self.settings.name;
        let mut stream = self.js.get_stream(name).await.map_err(|e| match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                FeedError::NoStream(name.clone())
            }
            _ => unavailable("looking up the event stream")(e),
        })?;
        let head = stream.info().await.map_err(unavailable("reading the event stream's state"))?.state.last_sequence;
        let head = Revision::new(head);
        let start_sequence =
            after.get().checked_add(1).ok_or_else(|| FeedError::Unavailable("position overflow".into()))?;
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: self.settings.stream_subject(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(unavailable("creating a consumer"))?;
        let consumer_name = consumer.cached_info().name.clone();
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(unavailable("pulling events"))?;
        Ok(JetStreamReader { stream, consumer: consumer_name, messages, position: after, head, halted: None })
    }
}

impl FeedReader for JetStreamReader {
    fn head(&self) -> Revision {
        self.head
    }

    /// Cancel-safe: nothing changes before an event is returned.
    async fn next(&mut self) -> Result<FeedItem, FeedError> {
        if let Some(e) = &self.halted {
            return Err(e.clone());
        }
        loop {
            let msg = match self.messages.next().await {
                None => return Err(FeedError::Unavailable("the consumer ended".into())),
                // A consumer that lost its server (a restart drops memory
                // consumers) only shows as missing heartbeats: start over
                // from our position rather than wait forever.
                Some(Err(e)) => return Err(FeedError::Unavailable(format!("pulling events: {e}"))),
                Some(Ok(m)) => m,
            };
            let info = msg.info().map_err(unavailable("reading event metadata"))?;
            let (revision, pending) = (Revision::new(info.stream_sequence), info.pending);
            if revision <= self.position {
                continue; // a redelivery
            }
            let expected = self.position.next();
            if revision != expected {
                // The stream allows no deletes, so a jump is a lost delivery
                // or a message outside the namespaces' subjects.
                return Err(FeedError::Gap { expected, got: revision });
            }
            let stored = match decode_message(revision, msg.headers.as_ref(), &msg.payload) {
                Ok(stored) => stored,
                Err(StoreError::Undecodable { revision, message }) => {
                    let e = FeedError::Undecodable { revision, message };
                    self.halted = Some(e.clone());
                    return Err(e);
                }
                Err(other) => return Err(FeedError::Unavailable(other.to_string())),
            };
            self.position = revision;
            return Ok(FeedItem { stored, pending });
        }
    }

    /// Deletes the consumer (best effort: its inactivity threshold removes
    /// it anyway).
    async fn close(self) {
        if let Err(e) = self.stream.delete_consumer(&self.consumer).await {
            tracing::debug!(consumer = %self.consumer, error = %e, "could not delete the consumer");
        }
    }
}
