//! Creates the event stream when it is missing and verifies an existing one.
//! The configuration is always read back from the server: old servers drop
//! fields they do not know instead of refusing them.

use async_nats::jetstream::{
    self,
    context::GetStreamErrorKind,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};

use crate::{Error, StreamSettings};

pub(crate) const STREAM_NOT_FOUND: u64 = 10059;

/// The stream for `settings`, created if missing. Fails with
/// [`Error::IncompatibleStream`] when an existing stream could lose or reject
/// history.
pub async fn ensure_stream(js: &jetstream::Context, settings: &StreamSettings) -> Result<Stream, Error> {
    settings.validate()?;
    let mut stream = match js.get_stream(&settings.name).await {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js) if js.error_code().0 == STREAM_NOT_FOUND) => {
            tracing::info!(stream = %settings.name, "creating the event stream");
            js.create_stream(desired(settings))
                .await
                .map_err(|e| Error::JetStream { context: "creating the event stream", source: Box::new(e) })?
        }
        Err(e) => return Err(Error::JetStream { context: "looking up the event stream", source: Box::new(e) }),
    };
    let info = stream
        .info()
        .await
        .map_err(|e| Error::JetStream { context: "reading the event stream's configuration", source: Box::new(e) })?;
    check(&info.config, settings)?;
    Ok(stream)
}

fn desired(s: &StreamSettings) -> Config {
    Config {
        name: s.name.clone(),
        description: Some("Veltrix Config change sets: the source of truth and the audit trail".into()),
        subjects: vec![s.stream_subject()],
        storage: StorageType::File,
        num_replicas: s.replicas,
        retention: RetentionPolicy::Limits,
        // Refuse writes at the size guard-rail rather than drop history.
        discard: DiscardPolicy::New,
        max_bytes: s.max_bytes,
        max_messages: -1,
        max_messages_per_subject: -1,
        duplicate_window: s.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

fn check(actual: &Config, s: &StreamSettings) -> Result<(), Error> {
    let fail = |reason: String| Err(Error::IncompatibleStream { stream: s.name.clone(), reason });
    if !actual.subjects.iter().any(|subj| *subj == s.stream_subject()) {
        return fail(format!("its subjects {:?} do not include {:?}", actual.subjects, s.stream_subject()));
    }
    if actual.storage != StorageType::File {
        return fail("it does not use file storage".into());
    }
    if actual.retention != RetentionPolicy::Limits {
        return fail(format!("its retention is {:?}, not limits", actual.retention));
    }
    if !actual.max_age.is_zero() || actual.max_messages > 0 || actual.max_messages_per_subject > 0 {
        return fail(
            "it expires or caps messages (max_age, max_msgs or max_msgs_per_subject), which loses history".into(),
        );
    }
    if actual.max_bytes > 0 && actual.discard != DiscardPolicy::New {
        return fail("it discards old messages at max_bytes, which loses history".into());
    }
    if actual.sealed || actual.mirror.is_some() {
        return fail("it is sealed or a mirror and cannot take writes".into());
    }
    if actual.duplicate_window != s.duplicate_window || actual.num_replicas != s.replicas {
        tracing::warn!(
            stream = %s.name,
            duplicate_window = ?actual.duplicate_window,
            replicas = actual.num_replicas,
            "the existing stream differs from the configured duplicate window or replicas; using it as it is"
        );
    }
    if !actual.deny_delete {
        tracing::warn!(stream = %s.name, "the event stream allows deleting messages; the audit trail is not tamper-proof");
    }
    Ok(())
}
