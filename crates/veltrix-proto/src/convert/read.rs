//! Committed events to the read model's records: what the projection stores
//! in Redis, already in the form the query API answers with.

use std::time::SystemTime;

use veltrix_domain::{ChangeSetCommitted, KeyChange, KeyOp, Revision, SchemaChange};

use crate::v1::{ChangeRecord, KeyChange as WireKeyChange, KeyHistoryEntry, KeyValue, key_change::Op};

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    }
}

pub fn wire_change(c: &KeyChange) -> WireKeyChange {
    let (op, value, content_type) = match &c.op {
        KeyOp::Set { value, content_type } => (Op::Set, value.clone(), content_type.to_string()),
        KeyOp::Delete => (Op::Delete, Vec::new(), String::new()),
    };
    WireKeyChange {
        key: c.key.to_string(),
        op: op as i32,
        value: value.into(),
        content_type,
        previous_mod_revision: c.previous_mod_revision.get(),
    }
}

/// The change set as History shows it, with every change.
pub fn change_record(revision: Revision, event: &ChangeSetCommitted) -> ChangeRecord {
    ChangeRecord {
        changes: event.changes.iter().map(wire_change).collect(),
        schema_changes: event.schema_changes.iter().map(schema_change).collect(),
        ..change_record_meta(revision, event)
    }
}

/// A schema change as the read model stores it.
pub fn schema_history_entry(revision: Revision, c: &SchemaChange) -> crate::v1::SchemaHistoryEntry {
    crate::v1::SchemaHistoryEntry { revision: revision.get(), change: Some(schema_change(c)) }
}

/// A schema change on the wire.
pub fn schema_change(c: &SchemaChange) -> crate::v1::SchemaChange {
    use crate::v1::schema_change::Op;
    match c {
        SchemaChange::Set { pattern, schema } => {
            crate::v1::SchemaChange { key_pattern: pattern.to_string(), op: Op::Set as i32, schema: schema.clone() }
        }
        SchemaChange::Delete { pattern } => {
            crate::v1::SchemaChange { key_pattern: pattern.to_string(), op: Op::Delete as i32, schema: String::new() }
        }
    }
}

/// The key's state right after a set; `None` for a delete.
pub fn key_value_after(revision: Revision, event: &ChangeSetCommitted, c: &KeyChange) -> Option<KeyValue> {
    key_value_set(revision, c, event.time, event.actor.as_str())
}

/// The key's state right after change `c` at `revision`, made at `time` by
/// `actor`; `None` for a delete.
pub fn key_value_set(revision: Revision, c: &KeyChange, time: SystemTime, actor: &str) -> Option<KeyValue> {
    let KeyOp::Set { value, content_type } = &c.op else { return None };
    Some(KeyValue {
        key: c.key.to_string(),
        value: value.clone().into(),
        content_type: content_type.to_string(),
        create_revision: if c.create_revision == 0 { revision } else { c.create_revision }.get(),
        mod_revision: revision.get(),
        version: c.version.max(1),
        updated_at: Some(timestamp(time)),
        updated_by: actor.to_owned(),
    })
}

/// One key's entry in its history: the record restricted to that key, and
/// the state after it.
pub fn key_history_entry(revision: Revision, event: &ChangeSetCommitted, c: &KeyChange) -> KeyHistoryEntry {
    let record = ChangeRecord { changes: vec![wire_change(c)], ..change_record_meta(revision, event) };
    KeyHistoryEntry { revision: revision.get(), record: Some(record), kv: key_value_after(revision, event, c) }
}

fn change_record_meta(revision: Revision, event: &ChangeSetCommitted) -> ChangeRecord {
    ChangeRecord {
        revision: revision.get(),
        namespace: event.namespace.to_string(),
        time: Some(timestamp(event.time)),
        actor: event.actor.to_string(),
        reason: event.reason.to_string(),
        request_id: event.request_id.to_string(),
        changes: Vec::new(),
        traceparent: event.trace.traceparent.clone(),
        origin: Some(super::origin::origin_to_wire(&event.origin, &event.namespace)),
        schema_changes: Vec::new(),
        rollout: event.rollout.as_deref().map(super::rollout::change_rollout),
    }
}

/// A key as reads show it, from the reference fold.
pub fn projected_key_value(key: &veltrix_domain::Key, k: &veltrix_domain::projection::ProjectedKey) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: k.value.clone().into(),
        content_type: k.content_type.clone(),
        create_revision: k.create_revision.get(),
        mod_revision: k.mod_revision.get(),
        version: k.version,
        updated_at: Some(timestamp(k.updated_at)),
        updated_by: k.updated_by.clone(),
    }
}

/// One key's difference on the wire.
pub fn diff_entry(e: &veltrix_domain::plan::DiffEntry) -> crate::v1::DiffEntry {
    use veltrix_domain::plan::DiffKind;
    let kind = match e.kind {
        DiffKind::Added => crate::v1::diff_entry::Kind::Added,
        DiffKind::Removed => crate::v1::diff_entry::Kind::Removed,
        DiffKind::Changed => crate::v1::diff_entry::Kind::Changed,
    };
    crate::v1::DiffEntry {
        key: e.key.to_string(),
        kind: kind as i32,
        before: e.before.as_ref().map(|k| projected_key_value(&e.key, k)),
        after: e.after.as_ref().map(|k| projected_key_value(&e.key, k)),
    }
}
