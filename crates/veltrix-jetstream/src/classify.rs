//! Maps async-nats errors to the store's error kinds by the JetStream error
//! code found in the error's source chain (never by parsing descriptions).

use std::error::Error as StdError;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use veltrix_domain::{Revision, StoreError};

/// JetStream API error codes this adapter reacts to.
const WRONG_LAST_SEQUENCE: u64 = 10071;
const WRONG_LAST_SEQUENCE_CLUSTERED: u64 = 10164;
const STREAM_STORE_FAILED: u64 = 10077;
const MAX_BYTES_EXCEEDED: u64 = 10054;
const MESSAGE_SIZE_EXCEEDED: u64 = 10039;
const TEMPORARY: [u64; 3] = [503, 10158, 10163];

/// The JetStream API error code somewhere in `err`'s source chain.
pub fn jetstream_code(err: &(dyn StdError + 'static)) -> Option<u64> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(js) = e.downcast_ref::<async_nats::jetstream::Error>() {
            return Some(js.error_code().0);
        }
        current = e.source();
    }
    None
}

pub fn publish_error(err: PublishError, expected: Revision) -> StoreError {
    let code = jetstream_code(&err);
    match (err.kind(), code) {
        (PublishErrorKind::WrongLastSequence, _) => StoreError::WrongLastRevision { expected },
        (_, Some(WRONG_LAST_SEQUENCE | WRONG_LAST_SEQUENCE_CLUSTERED)) => StoreError::WrongLastRevision { expected },
        // The messages are ours (clients read them); NATS's words go to the log.
        (PublishErrorKind::MaxPayloadExceeded, _) | (_, Some(MESSAGE_SIZE_EXCEEDED)) => {
            tracing::warn!(error = %err, "JetStream refused an event as too large");
            StoreError::Refused { message: "the event is too large for the event stream".into() }
        }
        (_, Some(MAX_BYTES_EXCEEDED | STREAM_STORE_FAILED)) => {
            tracing::warn!(error = %err, "JetStream refused to store an event");
            StoreError::Refused { message: "the event stream is full or cannot store the event".into() }
        }
        (_, Some(c)) if TEMPORARY.contains(&c) => StoreError::unavailable("JetStream is temporarily unavailable", err),
        (PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe, _) => {
            StoreError::unavailable("no acknowledgement from JetStream", err)
        }
        (PublishErrorKind::StreamNotFound, _) => StoreError::unavailable("no JetStream stream answers", err),
        _ => StoreError::unavailable("publishing to JetStream failed", err),
    }
}
