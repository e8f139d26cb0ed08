//! The event: a committed change set. The revision is the stream sequence the
//! event store assigned, so it travels beside the event, not inside it.

use std::time::SystemTime;

use crate::{
    Revision,
    command::Expectation,
    names::{Actor, ContentType, Key, Namespace, Reason, RequestId},
};

/// W3C trace context (`traceparent`, `tracestate`) of the request that made a
/// change; empty strings when there was none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: String,
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
