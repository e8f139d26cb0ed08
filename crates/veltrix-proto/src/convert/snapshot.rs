//! The command side's namespace snapshots: [`StateSnapshot`] to and from
//! its stored form (`NamespaceSnapshot`).

use prost::Message;
use veltrix_domain::{
    Key, KeyMeta, Namespace, RequestId, Revision,
    aggregate::{RememberedRequest, StateSnapshot},
};

use super::event::{
    EventDecodeError, decode_event, decode_schema_change, encode_event, encode_schema_change, event_type, time,
};
use crate::v1;

pub fn encode_snapshot(s: &StateSnapshot) -> Vec<u8> {
    let wire = v1::NamespaceSnapshot {
        namespace: s.namespace.to_string(),
        revision: s.revision.get(),
        keys: s
            .keys
            .iter()
            .map(|(key, m)| v1::SnapshotKey {
                key: key.to_string(),
                create_revision: m.create_revision.get(),
                mod_revision: m.mod_revision.get(),
                version: m.version,
            })
            .collect(),
        schemas: s.schemas.iter().map(encode_schema_change).collect(),
        requests: s
            .requests
            .iter()
            .map(|r| v1::SnapshotRequest {
                request_id: r.request_id.to_string(),
                revision: r.revision.get(),
                digest: r.digest.clone(),
                time: Some(super::read::timestamp(r.time)),
            })
            .collect(),
        rollout_events: s
            .rollout_events
            .iter()
            .map(|(revision, event)| v1::SnapshotEvent {
                revision: revision.get(),
                event_type: event_type(event).to_owned(),
                payload: encode_event(event),
            })
            .collect(),
    };
    wire.encode_to_vec()
}

/// Decodes a stored snapshot, checking every field as an event's are.
pub fn decode_snapshot(bytes: &[u8]) -> Result<StateSnapshot, EventDecodeError> {
    let wire = v1::NamespaceSnapshot::decode(bytes)?;
    let keys = wire
        .keys
        .into_iter()
        .map(|k| {
            let meta = KeyMeta {
                create_revision: Revision::new(k.create_revision),
                mod_revision: Revision::new(k.mod_revision),
                version: k.version,
            };
            Ok((Key::parse(&k.key)?, meta))
        })
        .collect::<Result<Vec<_>, EventDecodeError>>()?;
    let schemas =
        wire.schemas.into_iter().enumerate().map(|(i, c)| decode_schema_change(i, c)).collect::<Result<Vec<_>, _>>()?;
    let requests = wire
        .requests
        .into_iter()
        .map(|r| {
            let at = r.time.map_or(Ok(std::time::SystemTime::UNIX_EPOCH), |t| time(t.seconds, t.nanos))?;
            Ok(RememberedRequest {
                time: at,
                request_id: RequestId::parse(&r.request_id)?,
                revision: Revision::new(r.revision),
                digest: r.digest,
            })
        })
        .collect::<Result<Vec<_>, EventDecodeError>>()?;
    let rollout_events = wire
        .rollout_events
        .into_iter()
        .map(|e| Ok((Revision::new(e.revision), decode_event(Some(&e.event_type), &e.payload)?)))
        .collect::<Result<Vec<_>, EventDecodeError>>()?;
    Ok(StateSnapshot {
        namespace: Namespace::parse(&wire.namespace)?,
        revision: Revision::new(wire.revision),
        keys,
        schemas,
        requests,
        rollout_events,
    })
}
