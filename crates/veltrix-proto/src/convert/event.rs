//! The stored event format: `ChangeSetCommitted` (domain) <-> protobuf bytes.

use std::time::{Duration, SystemTime};

use prost::Message;
use veltrix_domain::{
    Actor, ChangeSetCommitted, ContentType, Expectation, Key, KeyChange, KeyOp, KeyPattern, Namespace, Reason,
    RequestId, Revision, SchemaChange, TraceContext, ValidationError,
};

use crate::v1;

/// Value of the `Veltrix-Event` header: payload type and schema version.
/// Readers accept exactly the versions they know.
pub const EVENT_TYPE: &str = "ChangeSetCommitted/1";

/// The version of events that a reader must not read as a plain change set:
/// they change schemas or delete the namespace. A version that ignored
/// those fields would let writes through that the schemas refuse, or list
/// a deleted namespace, so it refuses these events (visibly) instead.
pub const EVENT_TYPE_V2: &str = "ChangeSetCommitted/2";

/// The version of events that carry a rollout's transition. A version
/// that ignored the field would read a rollout's start as an empty change
/// set and never hold its keys, so it refuses these events instead.
pub const EVENT_TYPE_V3: &str = "ChangeSetCommitted/3";

/// The `Veltrix-Event` header of an event: the oldest version that reads it
/// right.
pub fn event_type(event: &ChangeSetCommitted) -> &'static str {
    if event.rollout.is_some() || event.origin == veltrix_domain::Origin::Rollout {
        EVENT_TYPE_V3
    } else if event.schema_changes.is_empty() && event.origin != veltrix_domain::Origin::NamespaceDelete {
        EVENT_TYPE
    } else {
        EVENT_TYPE_V2
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("malformed protobuf")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid field {0}")]
    Invalid(#[from] ValidationError),
    #[error("changes[{0}].op is not set or is an operation this version does not know")]
    UnknownOp(usize),
    #[error("schema_changes[{0}].op is not set or is an operation this version does not know")]
    UnknownSchemaOp(usize),
    #[error("rollout: {0}")]
    Rollout(String),
    #[error("unsupported event type {0:?} (this version reads {EVENT_TYPE:?} to {EVENT_TYPE_V3:?})")]
    UnsupportedType(String),
    #[error("time {seconds}s {nanos}ns is not a time this version can hold")]
    Time { seconds: i64, nanos: i32 },
}

pub fn encode_event(event: &ChangeSetCommitted) -> Vec<u8> {
    let wire = v1::ChangeSetCommitted {
        namespace: event.namespace.to_string(),
        changes: event.changes.iter().map(encode_change).collect(),
        actor: event.actor.to_string(),
        reason: event.reason.to_string(),
        request_id: event.request_id.to_string(),
        request_digest: event.request_digest.clone(),
        time: Some(super::read::timestamp(event.time)),
        traceparent: event.trace.traceparent.clone(),
        tracestate: event.trace.tracestate.clone(),
        origin: Some(super::origin::origin_to_wire(&event.origin, &event.namespace)),
        schema_changes: event.schema_changes.iter().map(encode_schema_change).collect(),
        rollout: event.rollout.as_deref().map(super::rollout_event::encode),
    };
    wire.encode_to_vec()
}

pub(super) fn encode_schema_change(c: &SchemaChange) -> v1::EventSchemaChange {
    let op = match c {
        SchemaChange::Set { schema, .. } => {
            v1::event_schema_change::Op::Set(v1::EventSetSchema { schema: schema.clone() })
        }
        SchemaChange::Delete { .. } => v1::event_schema_change::Op::Delete(v1::EventDeleteSchema {}),
    };
    v1::EventSchemaChange { key_pattern: c.pattern().to_string(), op: Some(op) }
}

pub(super) fn decode_schema_change(i: usize, c: v1::EventSchemaChange) -> Result<SchemaChange, EventDecodeError> {
    let pattern = KeyPattern::parse(&c.key_pattern)?;
    match c.op {
        Some(v1::event_schema_change::Op::Set(s)) => Ok(SchemaChange::Set { pattern, schema: s.schema }),
        Some(v1::event_schema_change::Op::Delete(_)) => Ok(SchemaChange::Delete { pattern }),
        None => Err(EventDecodeError::UnknownSchemaOp(i)),
    }
}

pub(super) fn encode_change(c: &KeyChange) -> v1::EventKeyChange {
    let op = match &c.op {
        KeyOp::Set { value, content_type } => v1::event_key_change::Op::Set(v1::EventSetValue {
            value: value.clone(),
            content_type: content_type.to_string(),
        }),
        KeyOp::Delete => v1::event_key_change::Op::Delete(v1::EventDeleteKey {}),
    };
    v1::EventKeyChange {
        key: c.key.to_string(),
        op: Some(op),
        previous_mod_revision: c.previous_mod_revision.get(),
        expected_revision: c.expected.map(Expectation::to_wire),
        create_revision: c.create_revision.get(),
        version: c.version,
    }
}

/// Decodes a stored event. `event_type` is the `Veltrix-Event` header (absent
/// is read as the first version).
pub fn decode_event(event_type: Option<&str>, payload: &[u8]) -> Result<ChangeSetCommitted, EventDecodeError> {
    if let Some(t) = event_type
        && t != EVENT_TYPE
        && t != EVENT_TYPE_V2
        && t != EVENT_TYPE_V3
    {
        return Err(EventDecodeError::UnsupportedType(t.to_owned()));
    }
    let wire = v1::ChangeSetCommitted::decode(payload)?;
    let changes = wire
        .changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| decode_change(i, c))
        .collect::<Result<Vec<_>, EventDecodeError>>()?;
    let schema_changes = wire
        .schema_changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| decode_schema_change(i, c))
        .collect::<Result<Vec<_>, _>>()?;
    let time = match wire.time {
        None => SystemTime::UNIX_EPOCH,
        Some(t) => time(t.seconds, t.nanos)?,
    };
    Ok(ChangeSetCommitted {
        namespace: Namespace::parse(&wire.namespace)?,
        changes,
        actor: Actor::parse(&wire.actor)?,
        reason: Reason::parse(&wire.reason)?,
        request_id: RequestId::parse(&wire.request_id)?,
        request_digest: wire.request_digest,
        time,
        trace: TraceContext { traceparent: wire.traceparent, tracestate: wire.tracestate },
        origin: super::origin::origin_from_wire(wire.origin),
        schema_changes,
        rollout: wire.rollout.map(super::rollout_event::decode).transpose()?.map(Box::new),
    })
}

pub(super) fn decode_change(i: usize, c: v1::EventKeyChange) -> Result<KeyChange, EventDecodeError> {
    let op = match c.op {
        Some(v1::event_key_change::Op::Set(s)) => {
            KeyOp::Set { value: s.value, content_type: ContentType::parse(&s.content_type)? }
        }
        Some(v1::event_key_change::Op::Delete(_)) => KeyOp::Delete,
        None => return Err(EventDecodeError::UnknownOp(i)),
    };
    Ok(KeyChange {
        key: Key::parse(&c.key)?,
        op,
        previous_mod_revision: Revision::new(c.previous_mod_revision),
        expected: Expectation::from_wire(c.expected_revision),
        create_revision: Revision::new(c.create_revision),
        version: c.version,
    })
}

/// A stored time, checked: seconds since 1970 (not before) and nanoseconds
/// below one second, within what `SystemTime` holds. Never panics.
pub(super) fn time(seconds: i64, nanos: i32) -> Result<SystemTime, EventDecodeError> {
    let bad = || EventDecodeError::Time { seconds, nanos };
    let secs = u64::try_from(seconds).map_err(|_| bad())?;
    let nanos_u32 = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000).ok_or_else(bad)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos_u32)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(values: Vec<(u8, Option<Vec<u8>>, Option<u64>)>, secs: u32, nanos: u32) -> ChangeSetCommitted {
        ChangeSetCommitted {
            namespace: Namespace::parse("payments/prod").unwrap(),
            changes: values
                .into_iter()
                .map(|(k, v, expected)| KeyChange {
                    key: Key::parse(&format!("key{k}")).unwrap(),
                    op: match v {
                        Some(value) => KeyOp::Set { value, content_type: ContentType::parse("").unwrap() },
                        None => KeyOp::Delete,
                    },
                    previous_mod_revision: Revision::new(u64::from(k)),
                    expected: Expectation::from_wire(expected),
                    create_revision: Revision::new(u64::from(k) / 2),
                    version: u64::from(k) % 5,
                })
                .collect(),
            actor: Actor::parse("alice").unwrap(),
            reason: Reason::parse("rotate").unwrap(),
            request_id: RequestId::parse("r-1").unwrap(),
            request_digest: vec![7; 32],
            time: SystemTime::UNIX_EPOCH + Duration::new(u64::from(secs), nanos % 1_000_000_000),
            trace: TraceContext { traceparent: "00-aa-bb-01".into(), tracestate: String::new() },
            origin: match secs % 2 {
                0 => veltrix_domain::Origin::Write,
                _ => veltrix_domain::Origin::Rollback { to_revision: Revision::new(u64::from(secs)) },
            },
            schema_changes: match nanos % 3 {
                0 => Vec::new(),
                1 => vec![SchemaChange::Set {
                    pattern: KeyPattern::parse("limits/**").unwrap(),
                    schema: r#"{"type":"object"}"#.into(),
                }],
                _ => vec![SchemaChange::Delete { pattern: KeyPattern::parse("a/*").unwrap() }],
            },
            rollout: None,
        }
    }

    fn rollout_events() -> Vec<veltrix_domain::rollout::RolloutEvent> {
        use veltrix_domain::{
            fleet::{LabelSelector, RejectionGroup, Step as ReportStep},
            rollout::{GateInputs, RolloutChange, RolloutEvent, RolloutId, Started, Step, Strategy, Trigger},
        };
        let target = event(vec![(1, Some(b"v".to_vec()), Some(3)), (2, None, None)], 1, 0).changes;
        let strategy = Strategy {
            steps: vec![
                Step { percent: 10, bake: Duration::from_secs(300), min_applied_percent: 95, max_rejected_percent: 2 },
                Step { percent: 100, bake: Duration::ZERO, min_applied_percent: 100, max_rejected_percent: 0 },
            ],
            canary: LabelSelector::parse("canary=true,zone=a").unwrap(),
            ack_timeout: Some(Duration::from_millis(600_500)),
        };
        let inputs = Some(GateInputs { cohort: 10, applied: 7, rejected: 2, pending: 1 });
        let id = RolloutId::parse("r-0123abcd").unwrap();
        let rejections = vec![RejectionGroup {
            step: ReportStep::Health,
            error: "probe failed".into(),
            count: 2,
            client_ids: vec!["a".into(), "b".into()],
        }];
        let started = Started { base: Revision::new(41), target, strategy };
        [
            (RolloutChange::Started(Box::new(started)), Trigger::User, None),
            (RolloutChange::Advanced { step: 1 }, Trigger::Gate, inputs),
            (RolloutChange::Paused, Trigger::Timeout, inputs),
            (RolloutChange::Resumed, Trigger::User, None),
            (RolloutChange::Aborted { rejections }, Trigger::Gate, inputs),
            (RolloutChange::Completed, Trigger::Gate, inputs),
        ]
        .into_iter()
        .map(|(change, triggered_by, inputs)| RolloutEvent { id: id.clone(), change, triggered_by, inputs })
        .collect()
    }

    #[test]
    fn rollout_transitions_round_trip_as_version_3() {
        for r in rollout_events() {
            let e = ChangeSetCommitted {
                origin: veltrix_domain::Origin::Rollout,
                schema_changes: Vec::new(),
                rollout: Some(Box::new(r)),
                ..event(vec![], 2, 0)
            };
            assert_eq!(event_type(&e), EVENT_TYPE_V3);
            assert_eq!(decode_event(Some(EVENT_TYPE_V3), &encode_event(&e)).unwrap(), e);
        }
    }

    #[test]
    fn a_rollout_event_with_an_unknown_transition_or_trigger_is_an_error() {
        let e = ChangeSetCommitted { rollout: rollout_events().pop().map(Box::new), ..event(vec![], 2, 0) };
        let mut wire = v1::ChangeSetCommitted::decode(encode_event(&e).as_slice()).unwrap();
        if let Some(r) = wire.rollout.as_mut() {
            r.triggered_by = 9;
        }
        assert!(matches!(decode_event(Some(EVENT_TYPE_V3), &wire.encode_to_vec()), Err(EventDecodeError::Rollout(_))));
        if let Some(r) = wire.rollout.as_mut() {
            r.triggered_by = 1;
            r.transition = None;
        }
        assert!(matches!(decode_event(Some(EVENT_TYPE_V3), &wire.encode_to_vec()), Err(EventDecodeError::Rollout(_))));
    }

    #[test]
    fn stored_times_out_of_range_are_errors() {
        for (seconds, nanos) in [(-1, 0), (0, -1), (0, 1_000_000_000), (i64::MAX, i32::MAX), (1, i32::MAX)] {
            assert!(matches!(time(seconds, nanos), Err(EventDecodeError::Time { .. })), "{seconds} {nanos}");
        }
        assert_eq!(time(1, 5).ok(), SystemTime::UNIX_EPOCH.checked_add(Duration::new(1, 5)));
    }

    proptest! {
        #[test]
        fn events_round_trip(
            changes in proptest::collection::vec((any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), proptest::option::of(any::<u64>())), 1..8),
            secs in any::<u32>(), nanos in any::<u32>(),
        ) {
            let e = event(changes, secs, nanos);
            prop_assert_eq!(decode_event(Some(event_type(&e)), &encode_event(&e)).unwrap(), e.clone());
            // Only events that change schemas (or delete the namespace) need
            // the newer version; the rest stay readable by every version.
            prop_assert_eq!(event_type(&e) == EVENT_TYPE_V2, !e.schema_changes.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_event(None, &bytes);
        }
    }

    #[test]
    fn unknown_versions_and_ops_are_errors_not_skips() {
        let e = event(vec![(1, None, None)], 1, 1);
        assert!(matches!(
            decode_event(Some("ChangeSetCommitted/4"), &encode_event(&e)),
            Err(EventDecodeError::UnsupportedType(_))
        ));
        let mut wire = v1::ChangeSetCommitted::decode(encode_event(&e).as_slice()).unwrap();
        wire.changes[0].op = None;
        assert!(matches!(decode_event(None, &wire.encode_to_vec()), Err(EventDecodeError::UnknownOp(0))));
    }
}
