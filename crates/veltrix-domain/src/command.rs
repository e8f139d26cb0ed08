//! Commands: what a client asks the aggregate to do, already validated.

use std::{collections::HashSet, time::SystemTime};

use crate::{
    Revision,
    digest::request_digest,
    event::{Origin, TraceContext},
    names::{Actor, ContentType, Key, Namespace, Reason, RequestId},
    schema::SchemaChange,
    validation::ValidationError,
};

/// Limits that validation enforces; configurable per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Most changes in one change set.
    pub max_changes: usize,
    /// Largest event the store takes in one message (NATS: the server's
    /// `max_payload`); a change set whose event may be larger is refused
    /// before anything is sent.
    pub max_event_bytes: usize,
}

/// Room in an event for everything besides its values and keys: names,
/// reason, request id, trace, times, protobuf framing, NATS headers. A
/// value of `max_value_bytes` fits in an event of `max_event_bytes` when
/// the two differ by at least this.
pub const EVENT_OVERHEAD: usize = 64 * 1024;

/// Bytes an event spends on each change besides its key and value.
const PER_CHANGE_OVERHEAD: usize = 64;
/// Bytes of an event besides its changes and its free text: namespace,
/// origin, digest, time, framing, and the NATS headers (message id,
/// expected sequence, type, trace). The free text (reason, request id,
/// actor, trace) is counted as it is, so one change of the largest key and
/// value, with the longest free text, stays well inside [`EVENT_OVERHEAD`].
const FIXED_EVENT_BYTES: usize = 4 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self { max_value_bytes: 1024 * 1024, max_changes: 1000, max_event_bytes: 1024 * 1024 + EVENT_OVERHEAD }
    }
}

/// An upper bound of the bytes of the event a change set becomes.
fn event_bytes(changes: &[KeyCommand], meta: &CommandMeta) -> usize {
    let per_change = changes.iter().fold(0usize, |sum, c| {
        let value = match &c.op {
            Operation::Set { value, content_type } => value.len().saturating_add(content_type.as_str().len()),
            Operation::Delete => 0,
        };
        sum.saturating_add(c.key.as_str().len()).saturating_add(value).saturating_add(PER_CHANGE_OVERHEAD)
    });
    let meta_bytes = meta.reason.as_str().len()
        + meta.request_id.as_str().len()
        + meta.actor.as_str().len()
        + meta.trace.traceparent.len()
        + meta.trace.tracestate.len();
    per_change.saturating_add(meta_bytes).saturating_add(FIXED_EVENT_BYTES)
}

/// Most keys one DeleteNamespace deletes in its one change set: deletes
/// carry no values, so it may hold more changes than a write.
pub const MAX_NAMESPACE_DELETE: usize = 10_000;

/// The most changes a change set of this origin may hold.
pub fn max_changes(origin: &Origin, limits: &Limits) -> usize {
    match origin {
        Origin::NamespaceDelete => limits.max_changes.max(MAX_NAMESPACE_DELETE),
        _ => limits.max_changes,
    }
}

/// A compare-and-set condition on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expectation {
    /// The key must not exist (`expected_revision = 0`).
    Absent,
    /// The key's current mod_revision must be this (`expected_revision = N`).
    At(Revision),
}

impl Expectation {
    /// `None` is unconditional; `Some(0)` is absent; `Some(n)` is at `n`.
    pub fn from_wire(expected_revision: Option<u64>) -> Option<Self> {
        expected_revision.map(|r| if r == 0 { Self::Absent } else { Self::At(Revision::new(r)) })
    }

    pub fn to_wire(self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::At(r) => r.get(),
        }
    }

    pub fn holds(self, current_mod_revision: Revision) -> bool {
        match self {
            Self::Absent => current_mod_revision == 0,
            Self::At(r) => current_mod_revision == r,
        }
    }
}

/// What to do to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Set { value: Vec<u8>, content_type: ContentType },
    Delete,
}

impl Operation {
    /// A validated set: the value fits the limit and a JSON value parses.
    /// Errors name the fields `value` and `content_type`.
    pub fn set(value: Vec<u8>, content_type: &str, limits: &Limits) -> Result<Self, ValidationError> {
        let content_type = ContentType::parse(content_type)?;
        if value.len() > limits.max_value_bytes {
            return Err(ValidationError::new(
                "value",
                format!("must be at most {} bytes (got {})", limits.max_value_bytes, value.len()),
            ));
        }
        if content_type.is_json()
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&value)
        {
            return Err(ValidationError::new(
                "value",
                format!("must be valid JSON for content type {content_type}: {e}"),
            ));
        }
        Ok(Self::Set { value, content_type })
    }
}

/// One key's part of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCommand {
    pub key: Key,
    pub expected: Option<Expectation>,
    pub op: Operation,
}

/// Who asks, why, and in which trace; part of every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    pub actor: Actor,
    pub reason: Reason,
    pub request_id: RequestId,
    pub trace: TraceContext,
    pub time: SystemTime,
}

/// What a change set derived from other state must find: its origin, the
/// namespace revision it was computed at (else it is refused: recompute),
/// and the request it answers (its digest, so that a retry is recognised
/// even when the computed changes differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub origin: Origin,
    pub computed_at: Revision,
    pub request: Vec<u8>,
}

/// A validated change set for one namespace: 1..=max_changes changes, each
/// to a different key. Put and Delete are change sets of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetCommand {
    namespace: Namespace,
    changes: Vec<KeyCommand>,
    meta: CommandMeta,
    digest: [u8; 32],
    origin: Origin,
    computed_at: Option<Revision>,
    schema_changes: Vec<SchemaChange>,
}

impl ChangeSetCommand {
    pub fn new(
        namespace: Namespace,
        changes: Vec<KeyCommand>,
        meta: CommandMeta,
        limits: &Limits,
    ) -> Result<Self, ValidationError> {
        if changes.is_empty() {
            return Err(ValidationError::new("changes", "must hold at least one change"));
        }
        Self::checked(namespace, changes, meta, limits.max_changes, limits.max_event_bytes)
    }

    fn checked(
        namespace: Namespace,
        changes: Vec<KeyCommand>,
        meta: CommandMeta,
        max_changes: usize,
        max_event_bytes: usize,
    ) -> Result<Self, ValidationError> {
        if changes.len() > max_changes {
            return Err(ValidationError::new(
                "changes",
                format!("must hold at most {max_changes} changes (got {})", changes.len()),
            ));
        }
        let bytes = event_bytes(&changes, &meta);
        if bytes > max_event_bytes {
            return Err(ValidationError::new(
                "changes",
                format!(
                    "must fit in one event of at most {max_event_bytes} bytes (the event store's message limit, NATS max_payload); these changes need up to {bytes}: split them into smaller change sets"
                ),
            ));
        }
        let mut seen = HashSet::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            if !seen.insert(&c.key) {
                return Err(ValidationError::new(
                    format!("changes[{i}].key"),
                    format!("must not repeat a key of the same change set ('{}')", c.key),
                ));
            }
        }
        let digest = request_digest(&namespace, &changes, &meta.reason);
        Ok(Self {
            namespace,
            changes,
            meta,
            digest,
            origin: Origin::Write,
            computed_at: None,
            schema_changes: Vec::new(),
        })
    }

    /// A change set derived from the namespace's state (a rollback, a
    /// schema change, a namespace deletion): its digest is the request's,
    /// not the changes'. It may change only schemas, or (deleting an empty
    /// namespace) nothing at all.
    pub fn derived(
        namespace: Namespace,
        changes: Vec<KeyCommand>,
        schema_changes: Vec<SchemaChange>,
        meta: CommandMeta,
        derived: Derived,
        limits: &Limits,
    ) -> Result<Self, ValidationError> {
        let schema_bytes = schema_changes.iter().fold(0usize, |sum, c| {
            let schema = match c {
                SchemaChange::Set { schema, .. } => schema.len(),
                SchemaChange::Delete { .. } => 0,
            };
            sum.saturating_add(c.pattern().as_str().len()).saturating_add(schema).saturating_add(PER_CHANGE_OVERHEAD)
        });
        let room = limits.max_event_bytes.saturating_sub(schema_bytes);
        let mut cmd = Self::checked(namespace, changes, meta, max_changes(&derived.origin, limits), room)?;
        cmd.digest = crate::digest::derived_digest(&cmd.namespace, &derived.request, &cmd.meta.reason);
        cmd.origin = derived.origin;
        cmd.computed_at = Some(derived.computed_at);
        cmd.schema_changes = schema_changes;
        Ok(cmd)
    }

    /// Changes to the namespace's schemas, made before the key changes are
    /// checked against them.
    pub fn schema_changes(&self) -> &[SchemaChange] {
        &self.schema_changes
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The namespace revision a derived change set was computed at.
    pub fn computed_at(&self) -> Option<Revision> {
        self.computed_at
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    pub fn changes(&self) -> &[KeyCommand] {
        &self.changes
    }

    pub fn meta(&self) -> &CommandMeta {
        &self.meta
    }

    /// SHA-256 of the canonical request (see [`crate::digest`]).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}
