//! Fuzz target: whatever a message in the stream holds (payload bytes, the
//! event-type header), decoding it is a value or an `Undecodable` error,
//! never a panic, so the projector halts visibly instead of crashing.

use async_nats::HeaderMap;
use proptest::prelude::*;
use veltrix_domain::StoreError;
use veltrix_jetstream::{EVENT_TYPE_HEADER, decode_message};

proptest! {
    #[test]
    fn fuzz_stream_message_decoding(
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        event_type in proptest::option::of("[ -~]{0,60}"),
        revision in any::<u64>(),
    ) {
        let headers = event_type.map(|t| {
            let mut h = HeaderMap::new();
            h.insert(EVENT_TYPE_HEADER, t.as_str());
            h
        });
        let decoded = decode_message(veltrix_domain::Revision::new(revision), headers.as_ref(), &payload);
        let clean = matches!(decoded, Ok(_) | Err(StoreError::Undecodable { .. }));
        prop_assert!(clean, "{decoded:?}");
    }
}
