//! The event: a committed change set. The revision is the stream sequence the
//! event store assigned, so it travels beside the event, not inside it.

use std::time::SystemTime;

use crate::{
    Revision,
    command::Expectation,
    names::{Actor, ContentType, Key, Namespace, Reason, RequestId},
    rollout::RolloutEvent,
    schema::SchemaChange,
};

/// W3C trace context (`traceparent`, `tracestate`) of the request that made a
/// change; empty strings when there was none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: String,
}

/// Why a change set was made: a write, or an operation that derived it
/// from other state (the audit trail says "rolled back to 41").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Put, Delete or Apply (and every event written before origins existed).
    #[default]
    Write,
    /// Every key under `prefix` made as it was right after `to_revision`.
    Rollback { to_revision: Revision },
    /// Keys under a prefix made equal to another namespace's as of
    /// `source_revision` (boxed: events stay small).
    Promotion { source_namespace: Box<Namespace>, source_revision: Revision },
    /// SetSchema or DeleteSchema.
    Schema,
    /// DeleteNamespace: every key and schema deleted; the namespace leaves
    /// the listings until it is written again.
    NamespaceDelete,
    /// A rollout's transition (see `ChangeSetCommitted::rollout`); at the
    /// completion, its target committed.
    Rollout,
    /// A kind this version does not know (written by a newer one), kept as
    /// it was stored.
    Other(Box<UnknownOrigin>),
}

/// An origin of a kind this version does not know, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOrigin {
    pub kind: i32,
    pub source_namespace: String,
    pub source_revision: Revision,
}

/// A change set that has been committed to a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetCommitted {
    pub namespace: Namespace,
    pub changes: Vec<KeyChange>,
    pub actor: Actor,
    pub reason: Reason,
    pub request_id: RequestId,
    pub request_digest: Vec<u8>,
    pub time: SystemTime,
    pub trace: TraceContext,
    pub origin: Origin,
    /// Changes to the namespace's schemas, in force for this change set's own
    /// key changes (empty for most change sets).
    pub schema_changes: Vec<SchemaChange>,
    /// Set when the change set is a rollout's transition (boxed: most
    /// change sets are not).
    pub rollout: Option<Box<RolloutEvent>>,
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub key: Key,
    pub op: KeyOp,
    /// The key's mod_revision before the change; 0 when it did not exist.
    pub previous_mod_revision: Revision,
    /// The condition the writer asserted, kept for the audit trail.
    pub expected: Option<Expectation>,
    /// For a set: the key's create_revision, 0 when this change creates it
    /// (the event's own revision is not known when it is decided). 0 for a
    /// delete.
    pub create_revision: Revision,
    /// For a set: the key's version after the change (1 when it creates the
    /// key). 0 for a delete. Carried so that a projection needs no earlier
    /// state and can apply events in any order.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    Set { value: Vec<u8>, content_type: ContentType },
    Delete,
}
