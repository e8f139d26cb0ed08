//! Namespace snapshots in a stream of their own beside the event stream
//! (`{stream}_SNAPSHOTS`, subjects `{prefix}-snapshots.>`, one message per
//! subject kept). A snapshot larger than one message is split into chunks,
//! chunk `i` on `{prefix}-snapshots.{i}.{namespace segments}`; chunk 0 is
//! written last and names the revision, the number of chunks and the
//! SHA-256 of the event at that revision; every chunk carries the SHA-256
//! of the whole snapshot. A reader trusts a snapshot only when every chunk
//! is of the same snapshot, the bytes match their hash, and the event
//! stream still holds that very event on the namespace's subject.

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        context::GetStreamErrorKind,
        message::PublishMessage,
        stream::{Config, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType, Stream},
    },
};
use sha2::{Digest, Sha256};
use veltrix_domain::{Namespace, Revision, StoreError, aggregate::StateSnapshot};
use veltrix_proto::convert::{decode_snapshot, encode_snapshot};

use crate::{Error, StreamSettings};

const FORMAT_HEADER: &str = "Veltrix-Snapshot";
const FORMAT: &str = "NamespaceSnapshot/1";
const REVISION_HEADER: &str = "Veltrix-Snapshot-Revision";
const CHUNKS_HEADER: &str = "Veltrix-Snapshot-Chunks";
const EVENT_HASH_HEADER: &str = "Veltrix-Snapshot-Event-Sha256";
/// The SHA-256 of the whole encoded snapshot, on every chunk: chunks of two
/// writers at the same revision never mix.
const HASH_HEADER: &str = "Veltrix-Snapshot-Sha256";
/// Room left in a message for its headers.
const HEADROOM: usize = 16 * 1024;

/// Counted, by reason, for every snapshot a load does not trust.
pub const SNAPSHOTS_IGNORED: &str = "veltrix_command_snapshots_ignored_total";
/// Reasons of [`SNAPSHOTS_IGNORED`].
pub const IGNORED_REASONS: [&str; 3] = ["unreadable", "incomplete", "stream_mismatch"];

pub(crate) fn stream_name(settings: &StreamSettings) -> String {
    format!("{}_SNAPSHOTS", settings.name)
}

fn subject(settings: &StreamSettings, chunk: usize, namespace: &Namespace) -> String {
    let mut s = format!("{}-snapshots.{chunk}", settings.subject_prefix);
    for seg in namespace.segments() {
        s.push('.');
        s.push_str(seg);
    }
    s
}

/// Creates the snapshot stream when it is missing (the command service
/// owns it, as it owns the event stream).
pub(crate) async fn ensure(js: &jetstream::Context, settings: &StreamSettings) -> Result<Stream, Error> {
    let name = stream_name(settings);
    match js.get_stream(&name).await {
        Ok(stream) => Ok(stream),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code().0 == crate::stream::STREAM_NOT_FOUND) =>
        {
            tracing::info!(stream = %name, "creating the snapshot stream");
            js.create_stream(Config {
                name,
                description: Some(
                    "Veltrix Config command-side snapshots of namespace state (derived, disposable)".into(),
                ),
                subjects: vec![format!("{}-snapshots.>", settings.subject_prefix)],
                storage: StorageType::File,
                num_replicas: settings.replicas,
                retention: RetentionPolicy::Limits,
                discard: DiscardPolicy::Old,
                max_messages_per_subject: 1,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::JetStream { context: "creating the snapshot stream", source: Box::new(e) })
        }
        Err(e) => Err(Error::JetStream { context: "looking up the snapshot stream", source: Box::new(e) }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored event a snapshot was taken at: its subject and payload hash.
async fn event_at(events: &Stream, revision: Revision) -> Result<Option<(String, String)>, StoreError> {
    match events.get_raw_message(revision.get()).await {
        Ok(m) => Ok(Some((m.subject.to_string(), hex(&Sha256::digest(&m.payload))))),
        Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(StoreError::unavailable("reading the event a snapshot was taken at", e)),
    }
}

pub(crate) async fn save(
    js: &jetstream::Context,
    events: &Stream,
    settings: &StreamSettings,
    max_payload: usize,
    snapshot: &StateSnapshot,
) -> Result<(), StoreError> {
    let Some((event_subject, hash)) = event_at(events, snapshot.revision).await? else {
        return Err(StoreError::Refused { message: format!("no event at revision {}", snapshot.revision) });
    };
    if event_subject != settings.subject(&snapshot.namespace) {
        return Err(StoreError::Refused {
            message: format!("revision {} is not an event of {}", snapshot.revision, snapshot.namespace),
        });
    }
    let bytes = encode_snapshot(snapshot);
    let whole = hex(&Sha256::digest(&bytes));
    let size = max_payload.saturating_sub(HEADROOM).max(4096);
    let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(size).collect() };
    // Chunk 0 last: a reader that finds it finds the others written.
    for (i, chunk) in chunks.iter().enumerate().rev() {
        let mut headers = HeaderMap::new();
        headers.insert(FORMAT_HEADER, FORMAT);
        headers.insert(REVISION_HEADER, snapshot.revision.to_string().as_str());
        headers.insert(CHUNKS_HEADER, chunks.len().to_string().as_str());
        headers.insert(HASH_HEADER, whole.as_str());
        if i == 0 {
            headers.insert(EVENT_HASH_HEADER, hash.as_str());
        }
        let message = PublishMessage::build().headers(headers).payload(chunk.to_vec().into());
        js.send_publish(subject(settings, i, &snapshot.namespace), message)
            .await
            .map_err(|e| StoreError::unavailable("writing a snapshot", e))?
            .await
            .map_err(|e| StoreError::unavailable("writing a snapshot", e))?;
    }
    Ok(())
}

/// Why a stored snapshot is not trusted.
struct Ignored(&'static str, String);

pub(crate) async fn latest(
    snapshots: &Stream,
    events: &Stream,
    settings: &StreamSettings,
    namespace: &Namespace,
) -> Result<Option<StateSnapshot>, StoreError> {
    match read(snapshots, events, settings, namespace).await {
        Ok(found) => Ok(found),
        Err(Ok(Ignored(reason, why))) => {
            metrics::counter!(SNAPSHOTS_IGNORED, "reason" => reason).increment(1);
            tracing::warn!(%namespace, reason, "ignoring the namespace's snapshot ({why}); folding its history instead");
            Ok(None)
        }
        Err(Err(e)) => Err(e),
    }
}

async fn read(
    snapshots: &Stream,
    events: &Stream,
    settings: &StreamSettings,
    namespace: &Namespace,
) -> Result<Option<StateSnapshot>, Result<Ignored, StoreError>> {
    let unavailable = |e: async_nats::jetstream::stream::LastRawMessageError| {
        Err(Err(StoreError::unavailable("reading a snapshot", e)))
    };
    let first = match snapshots.get_last_raw_message_by_subject(&subject(settings, 0, namespace)).await {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => return unavailable(e),
    };
    let header = |h: &HeaderMap, name: &str| h.get(name).map(|v| v.as_str().to_owned());
    let bad = |why: &str| Err(Ok(Ignored("unreadable", why.to_owned())));
    if header(&first.headers, FORMAT_HEADER).as_deref() != Some(FORMAT) {
        return bad("a format this version does not know");
    }
    let (Some(revision), Some(chunks), Some(hash), Some(whole)) = (
        header(&first.headers, REVISION_HEADER).and_then(|r| r.parse::<u64>().ok()),
        header(&first.headers, CHUNKS_HEADER).and_then(|c| c.parse::<usize>().ok()),
        header(&first.headers, EVENT_HASH_HEADER),
        header(&first.headers, HASH_HEADER),
    ) else {
        return bad("missing headers");
    };
    if chunks == 0 || chunks > 4096 {
        return bad("an implausible number of chunks");
    }
    let mut bytes = first.payload.to_vec();
    for i in 1..chunks {
        let chunk = match snapshots.get_last_raw_message_by_subject(&subject(settings, i, namespace)).await {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Err(Ok(Ignored("incomplete", format!("chunk {i} of {chunks} is missing"))));
            }
            Err(e) => return unavailable(e),
        };
        if header(&chunk.headers, HASH_HEADER).as_deref() != Some(whole.as_str()) {
            return Err(Ok(Ignored("incomplete", format!("chunk {i} is of another snapshot"))));
        }
        bytes.extend_from_slice(&chunk.payload);
    }
    if hex(&Sha256::digest(&bytes)) != whole {
        return Err(Ok(Ignored("unreadable", "its bytes do not match their hash".into())));
    }
    let snapshot = decode_snapshot(&bytes).map_err(|e| Ok(Ignored("unreadable", e.to_string())))?;
    if snapshot.namespace != *namespace || snapshot.revision != Revision::new(revision) {
        return bad("it names another namespace or revision");
    }
    match event_at(events, snapshot.revision).await.map_err(Err)? {
        Some((subject, h)) if subject == settings.subject(namespace) && h == hash => Ok(Some(snapshot)),
        Some(_) => Err(Ok(Ignored("stream_mismatch", format!("the event at revision {revision} is another one")))),
        None => Err(Ok(Ignored("stream_mismatch", format!("the stream holds no event at revision {revision}")))),
    }
}
