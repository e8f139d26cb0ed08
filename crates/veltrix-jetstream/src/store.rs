//! [`EventStore`] on JetStream: one subject per namespace in one stream.

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{AckPolicy, DeliverPolicy, pull},
        message::PublishMessage,
        stream::{LastRawMessageErrorKind, Stream},
    },
};
use futures::StreamExt;
use tracing::Instrument;
use veltrix_domain::{
    Appended, ChangeSetCommitted, EventStore, Namespace, Revision, StoreError, StoredEvent, aggregate::StateSnapshot,
};
use veltrix_proto::convert::{decode_event, encode_event, event_type};

use crate::{EVENT_TYPE_HEADER, Error, StreamSettings, classify::publish_error, ensure_stream};

/// Reads with per-message leader gets up to this many events, then switches
/// to a consumer (a long catch-up or a first load).
const SHORT_READ: usize = 8;
const FETCH_BATCH: usize = 1000;
/// Bytes one fetch of a long read may bring at once (the bound on a load's
/// memory besides the state itself).
const FETCH_BYTES: usize = 4 * 1024 * 1024;

/// The stream's size against its limit (`max_bytes` is -1 when unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamUsage {
    pub bytes: u64,
    pub max_bytes: i64,
    pub messages: u64,
}

#[derive(Clone)]
pub struct JetStreamEventStore {
    js: jetstream::Context,
    stream: Stream,
    settings: StreamSettings,
    /// The snapshot stream (`None` for a store attached to write
    /// transitions only, which neither reads nor writes snapshots).
    snapshots: Option<Stream>,
}

impl JetStreamEventStore {
    /// Opens the store, creating or verifying the stream. `request_timeout`
    /// bounds every JetStream request (including the wait for a publish ack).
    pub async fn open(
        client: async_nats::Client,
        settings: StreamSettings,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let js = jetstream::ContextBuilder::new().timeout(request_timeout).build(client);
        let stream = ensure_stream(&js, &settings).await?;
        let snapshots = Some(crate::snapshots::ensure(&js, &settings).await?);
        Ok(Self { js, stream, settings, snapshots })
    }

    /// The store on a stream that exists (created by the command service):
    /// for a process that appends but does not own the stream's setup (the
    /// query service's rollout controller).
    pub async fn attach(
        client: async_nats::Client,
        settings: StreamSettings,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let js = jetstream::ContextBuilder::new().timeout(request_timeout).build(client);
        let stream = js
            .get_stream(&settings.name)
            .await
            .map_err(|e| Error::JetStream { context: "looking up the event stream", source: Box::new(e) })?;
        Ok(Self { js, stream, settings, snapshots: None })
    }

    /// The largest message the connected server takes (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.js.client().server_info().max_payload
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// How much of the stream's byte limit is used, from a fresh stream info.
    pub async fn usage(&self) -> Result<StreamUsage, StoreError> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(|e| StoreError::unavailable("reading the stream's state", e))?;
        Ok(StreamUsage { bytes: info.state.bytes, max_bytes: info.config.max_bytes, messages: info.state.messages })
    }

    async fn last_revision(&self, subject: &str) -> Result<Option<Revision>, StoreError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(Some(Revision::new(m.sequence))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(StoreError::unavailable("reading a namespace's last event", e)),
        }
    }

    /// Reads events of `subject` from `from` until `last` with a short-lived
    /// consumer, appending to `out`.
    async fn read_with_consumer(
        &self,
        subject: &str,
        from: Revision,
        last: Revision,
        visit: &mut (impl FnMut(StoredEvent) + Send),
    ) -> Result<(), StoreError> {
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                filter_subject: subject.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.get() },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError::unavailable("creating a reader for a namespace", e))?;
        let name = consumer.cached_info().name.clone();
        let result = async {
            let mut empty_fetches = 0;
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(FETCH_BATCH)
                    .max_bytes(FETCH_BYTES.max(self.max_payload().saturating_add(64 * 1024)))
                    .messages()
                    .await
                    .map_err(|e| StoreError::unavailable("fetching a namespace's events", e))?;
                let mut got = 0;
                while let Some(msg) = batch.next().await {
                    let msg = msg.map_err(|e| StoreError::unavailable("fetching a namespace's events", e))?;
                    let seq = msg
                        .info()
                        .map_err(|e| StoreError::unavailable("reading an event's metadata", e))?
                        .stream_sequence;
                    let seq = Revision::new(seq);
                    visit(decode_message(seq, msg.headers.as_ref(), &msg.payload)?);
                    got += 1;
                    if seq >= last {
                        return Ok(());
                    }
                }
                empty_fetches = if got == 0 { empty_fetches + 1 } else { 0 };
                if empty_fetches > 3 {
                    return Err(StoreError::Unavailable {
                        message: format!("the reader stopped before revision {last}"),
                        source: None,
                    });
                }
            }
        }
        .await;
        // The inactivity threshold removes it anyway; deleting now leaves no
        // garbage behind a busy service.
        if let Err(e) = self.stream.delete_consumer(&name).await {
            tracing::debug!(consumer = %name, error = %e, "could not delete a reader consumer");
        }
        result
    }
}

/// Decodes a stored message into an event, refusing unknown types.
pub fn decode_message(
    revision: Revision,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<StoredEvent, StoreError> {
    let event_type = headers.and_then(|h| h.get(EVENT_TYPE_HEADER)).map(|v| v.as_str());
    decode_event(event_type, payload)
        .map(|event| StoredEvent { revision, event })
        .map_err(|e| StoreError::Undecodable { revision, message: e.to_string() })
}

impl EventStore for JetStreamEventStore {
    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %namespace))]
    async fn read(&self, namespace: &Namespace, after: Revision) -> Result<Vec<StoredEvent>, StoreError> {
        let subject = self.settings.subject(namespace);
        let Some(last) = self.last_revision(&subject).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut next = after + 1;
        while next <= last {
            if out.len() >= SHORT_READ {
                self.read_with_consumer(&subject, next, last, &mut |e| out.push(e)).await?;
                break;
            }
            // A leader read: sees every acknowledged write.
            let msg = self
                .stream
                .raw_message_builder()
                .sequence(next.get())
                .next_by_subject(subject.clone())
                .send()
                .await
                .map_err(|e| StoreError::unavailable("reading a namespace's events", e))?;
            let revision = Revision::new(msg.sequence);
            out.push(decode_message(revision, Some(&msg.headers), &msg.payload)?);
            next = revision.next();
        }
        Ok(out)
    }

    /// A consumer from the start: a fetch holds at most [`FETCH_BYTES`]
    /// (or one message of the largest size the server takes).
    async fn read_each(
        &self,
        namespace: &Namespace,
        after: Revision,
        mut visit: impl FnMut(StoredEvent) + Send,
    ) -> Result<(), StoreError> {
        let subject = self.settings.subject(namespace);
        match self.last_revision(&subject).await? {
            Some(last) if last > after => self.read_with_consumer(&subject, after + 1, last, &mut visit).await,
            _ => Ok(()),
        }
    }

    async fn snapshot(&self, namespace: &Namespace) -> Result<Option<StateSnapshot>, StoreError> {
        let Some(snapshots) = &self.snapshots else { return Ok(None) };
        crate::snapshots::latest(snapshots, &self.stream, &self.settings, namespace).await
    }

    async fn save_snapshot(&self, snapshot: &StateSnapshot) -> Result<(), StoreError> {
        if self.snapshots.is_none() {
            return Ok(());
        }
        crate::snapshots::save(&self.js, &self.stream, &self.settings, self.max_payload(), snapshot).await
    }

    async fn append(&self, expected_last: Revision, event: &ChangeSetCommitted) -> Result<Appended, StoreError> {
        let subject = self.settings.subject(&event.namespace);
        // A producer span per append, only when traces are exported.
        let span = if veltrix_telemetry::traces_enabled() {
            tracing::info_span!(
                "jetstream.append",
                otel.name = format!("{subject} publish"),
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.destination.name = subject.as_str(),
                messaging.message.id = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        self.publish(subject, expected_last, event).instrument(span).await
    }
}

impl JetStreamEventStore {
    async fn publish(
        &self,
        subject: String,
        expected_last: Revision,
        event: &ChangeSetCommitted,
    ) -> Result<Appended, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_TYPE_HEADER, event_type(event));
        if !event.trace.traceparent.is_empty() {
            headers.insert("traceparent", event.trace.traceparent.as_str());
            if !event.trace.tracestate.is_empty() {
                headers.insert("tracestate", event.trace.tracestate.as_str());
            }
        }
        // The header map first: `.headers()` replaces what was set before.
        let mut publish = PublishMessage::build()
            .headers(headers)
            .payload(encode_event(event).into())
            .expected_last_subject_sequence(expected_last.get());
        if !event.request_id.is_empty() {
            publish = publish.message_id(format!("{}:{}", event.namespace, event.request_id));
        }
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| publish_error(e, expected_last))?
            .await
            .map_err(|e| publish_error(e, expected_last))?;
        tracing::Span::current().record("messaging.message.id", ack.sequence);
        let revision = Revision::new(ack.sequence);
        Ok(if ack.duplicate { Appended::Duplicate(revision) } else { Appended::Committed(revision) })
    }
}
