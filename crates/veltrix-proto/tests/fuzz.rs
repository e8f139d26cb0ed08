//! Fuzz targets (property-based, stable Rust): request validation and
//! event decoding must never panic, whatever the input. `just test` runs a
//! smoke of each (proptest's default case count); `just fuzz` runs many
//! more (`PROPTEST_CASES`).

use std::time::SystemTime;

use proptest::prelude::*;
use veltrix_domain::{Actor, Key, Limits, Namespace, TraceContext};
use veltrix_proto::{
    convert::{CallContext, EVENT_TYPE, IntoCommand, decode_event, encode_event},
    v1::{ApplyRequest, Change, DeleteKey, DeleteRequest, PutRequest, SetValue, change},
};

fn ctx() -> CallContext {
    CallContext { actor: Actor::anonymous(), trace: TraceContext::default(), time: SystemTime::now() }
}

/// Mostly plausible names, sometimes anything at all.
fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_/.-]{0,40}", "[a-z]{1,8}(/[a-z]{1,8}){0,4}", any::<String>(), "\\PC{0,300}",]
}

fn change_strategy() -> impl Strategy<Value = Change> {
    (name(), proptest::option::of(any::<u64>()), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64), name())
        .prop_map(|(key, expected_revision, delete, value, content_type)| Change {
            key,
            expected_revision,
            op: Some(if delete {
                change::Op::Delete(DeleteKey {})
            } else {
                change::Op::Set(SetValue { value, content_type })
            }),
        })
}

proptest! {
    #[test]
    fn fuzz_put_and_delete_validation(
        namespace in name(), key in name(), value in proptest::collection::vec(any::<u8>(), 0..2048),
        content_type in name(), expected in proptest::option::of(any::<u64>()), request_id in name(), reason in name(),
    ) {
        let limits = Limits { max_value_bytes: 1024, ..Limits::default() };
        let put = PutRequest {
            namespace: namespace.clone(), key: key.clone(), value, content_type,
            expected_revision: expected, request_id: request_id.clone(), reason: reason.clone(),
        };
        if let Ok(cmd) = put.into_command(ctx(), &limits) {
            // Whatever is accepted is valid by the domain's own rules.
            prop_assert!(Namespace::parse(cmd.namespace().as_str()).is_ok());
            prop_assert!(Key::parse(&key).is_ok());
        }
        let delete = DeleteRequest { namespace, key, expected_revision: expected, request_id, reason };
        let _ = delete.into_command(ctx(), &limits);
    }

    #[test]
    fn fuzz_apply_validation(
        namespace in name(), changes in proptest::collection::vec(change_strategy(), 0..12),
        missing_op in any::<bool>(), request_id in name(),
    ) {
        let mut changes = changes;
        if missing_op && let Some(c) = changes.first_mut() {
            c.op = None;
        }
        let apply = ApplyRequest { namespace, changes, request_id, reason: String::new() };
        let _ = apply.into_command(ctx(), &Limits::default());
    }

    #[test]
    fn fuzz_event_decoding(payload in proptest::collection::vec(any::<u8>(), 0..1024), header in proptest::option::of(name())) {
        // Arbitrary bytes from the stream are an error, never a panic.
        let _ = decode_event(header.as_deref(), &payload);
        let _ = decode_event(Some(EVENT_TYPE), &payload);
    }

    #[test]
    fn fuzz_event_mutations(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        // A valid event with bytes changed decodes or fails cleanly.
        let put = PutRequest { namespace: "fuzz/app".into(), key: "k".into(), value: b"v".to_vec(), ..Default::default() };
        let cmd = put.into_command(ctx(), &Limits::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let event = match veltrix_domain::decide(&veltrix_domain::NamespaceState::new(std::time::Duration::from_secs(60)), &cmd) {
            Ok(veltrix_domain::Decision::Append(e)) => e,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let mut bytes = encode_event(&event);
        for (at, byte) in flips {
            let len = bytes.len();
            bytes[at % len] ^= byte;
        }
        let _ = decode_event(Some(EVENT_TYPE), &bytes);
    }

    #[test]
    fn fuzz_event_times_and_sizes(
        seconds in any::<i64>(), nanos in any::<i32>(),
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2048), 1..16),
    ) {
        // Any stored time, extreme ones included, decodes to that time or is
        // an error: never a panic, here or where the time is used.
        let wire = veltrix_proto::v1::ChangeSetCommitted {
            namespace: "fuzz/app".into(),
            changes: values.into_iter().enumerate().map(|(i, value)| veltrix_proto::v1::EventKeyChange {
                key: format!("k{i}"),
                op: Some(veltrix_proto::v1::event_key_change::Op::Set(veltrix_proto::v1::EventSetValue { value, content_type: String::new() })),
                ..Default::default()
            }).collect(),
            actor: "fuzz".into(),
            time: Some(prost_types::Timestamp { seconds, nanos }),
            ..Default::default()
        };
        let decoded = decode_event(Some(EVENT_TYPE), &prost::Message::encode_to_vec(&wire));
        let in_range = seconds >= 0 && (0..1_000_000_000).contains(&nanos)
            && std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(seconds.unsigned_abs(), nanos.unsigned_abs())).is_some();
        prop_assert_eq!(decoded.is_ok(), in_range, "{:?}", decoded.err());
        if let Ok(event) = decoded {
            let _ = veltrix_proto::convert::read::change_record(veltrix_domain::Revision::new(1), &event);
        }
    }
}
