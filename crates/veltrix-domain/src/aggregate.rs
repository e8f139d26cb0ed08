//! The namespace aggregate: `decide` turns a command into an event or a
//! rejection against the current state, `evolve` folds a committed event into
//! the state. Both are pure; the command service runs them under the
//! event store's expected-sequence check, which makes the decision safe
//! against every other writer.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, SystemTime},
};

use crate::{
    Revision,
    command::{ChangeSetCommand, Expectation, Operation},
    event::{ChangeSetCommitted, KeyChange, KeyOp},
    names::{Key, Namespace, RequestId},
    rollout::{Rollout, RolloutError, RolloutId},
    schema::{MAX_VIOLATIONS, Schemas, Violation},
};

/// What the command side knows of one live key (no values: they are not
/// needed to decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMeta {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// Number of sets since the key was last created.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestRecord {
    revision: Revision,
    digest: Vec<u8>,
}

/// The state of one namespace as of `revision`.
#[derive(Debug, Clone)]
pub struct NamespaceState {
    revision: Revision,
    keys: HashMap<Key, KeyMeta>,
    schemas: Schemas,
    requests: HashMap<RequestId, RequestRecord>,
    /// Request ids in commit order with their commit time, for pruning.
    request_order: VecDeque<(SystemTime, RequestId)>,
    idempotency_window: Duration,
    /// The latest rollout (running, paused or over).
    rollout: Option<Rollout>,
    /// The rollout events since the latest start, to fold it again from a
    /// snapshot.
    rollout_events: Vec<(Revision, ChangeSetCommitted)>,
}

impl NamespaceState {
    /// An empty namespace that remembers request ids for `idempotency_window`
    /// (measured between event times, so folding is deterministic).
    pub fn new(idempotency_window: Duration) -> Self {
        Self {
            revision: Revision::ZERO,
            keys: HashMap::new(),
            schemas: Schemas::default(),
            requests: HashMap::new(),
            request_order: VecDeque::new(),
            idempotency_window,
            rollout: None,
            rollout_events: Vec::new(),
        }
    }

    /// Revision of the last event folded in; 0 for a namespace without events.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn key(&self, key: &Key) -> Option<&KeyMeta> {
        self.keys.get(key)
    }

    /// The latest rollout (running, paused or over).
    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// The running (or paused) rollout.
    pub fn live_rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref().filter(|r| r.is_live())
    }

    /// The schemas in force.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The revision a request id committed at, when its digest matches;
    /// `RequestIdReused` when it was used for another request; `None` when
    /// it is unknown (or empty).
    pub fn answered(&self, request_id: &RequestId, digest: &[u8]) -> Option<Result<Revision, Rejection>> {
        let record = self.requests.get(request_id)?;
        Some(if record.digest == digest {
            Ok(record.revision)
        } else {
            Err(Rejection::RequestIdReused { request_id: request_id.clone(), revision: record.revision })
        })
    }

    /// Folds a committed event in. Events at or below the current revision
    /// are ignored, so replaying is harmless.
    pub fn evolve(&mut self, revision: Revision, event: &ChangeSetCommitted) {
        if revision <= self.revision {
            return;
        }
        self.revision = revision;
        for change in &event.schema_changes {
            self.schemas.apply(change);
        }
        for change in &event.changes {
            match change.op {
                KeyOp::Set { .. } => {
                    let meta = self.keys.entry(change.key.clone()).or_insert(KeyMeta {
                        create_revision: revision,
                        mod_revision: revision,
                        version: 0,
                    });
                    meta.mod_revision = revision;
                    meta.version += 1;
                }
                KeyOp::Delete => {
                    self.keys.remove(&change.key);
                }
            }
        }
        if let Some(r) = event.rollout.as_deref() {
            if matches!(r.change, crate::rollout::RolloutChange::Started(_)) {
                self.rollout_events.clear();
            }
            self.rollout_events.push((revision, event.clone()));
        }
        crate::rollout::event::fold(&mut self.rollout, revision, event);
        self.remember_request(revision, event);
    }

    fn remember_request(&mut self, revision: Revision, event: &ChangeSetCommitted) {
        while let Some((time, id)) = self.request_order.front() {
            let expired = time.checked_add(self.idempotency_window).is_some_and(|until| until < event.time);
            if !expired {
                break;
            }
            self.requests.remove(id);
            self.request_order.pop_front();
        }
        if !event.request_id.is_empty() {
            let record = RequestRecord { revision, digest: event.request_digest.clone() };
            if self.requests.insert(event.request_id.clone(), record).is_none() {
                self.request_order.push_back((event.time, event.request_id.clone()));
            }
        }
    }
}

/// The outcome of deciding a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append this event; its revision becomes the change set's revision.
    Append(Box<ChangeSetCommitted>),
    /// The same request was committed before at this revision: answer it
    /// again and append nothing.
    AlreadyApplied(Revision),
}

/// Why a command is refused. Nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(
        "revision conflict on key '{key}': expected_revision {expected} but its current mod_revision is {current}",
        expected = expected.to_wire()
    )]
    Conflict { key: Key, expected: Expectation, current: Revision },
    #[error("key '{key}' does not exist in namespace '{namespace}'")]
    NotFound { namespace: Namespace, key: Key },
    #[error("request_id '{request_id}' was already used for a different request (committed at revision {revision})")]
    RequestIdReused { request_id: RequestId, revision: Revision },
    /// A change set derived from the namespace at `expected` (a rollback)
    /// while it is at `current`.
    #[error("the namespace is at revision {current}, not {expected}")]
    NamespaceMoved { expected: Revision, current: Revision },
    /// Values that break the schemas in force (at most
    /// [`MAX_VIOLATIONS`]).
    #[error("{} value(s) break the namespace's schemas: {}", .0.len(), join(.0))]
    SchemaViolation(Vec<Violation>),
    /// A write to a key that a running (or paused) rollout changes.
    #[error("key '{key}' is held by rollout {rollout}: promote or abort it first")]
    HeldByRollout { key: Key, rollout: RolloutId },
    /// A rollout is running (or paused) in the namespace already.
    #[error("rollout {0} is still running in this namespace: one runs at a time")]
    RolloutRunning(RolloutId),
    #[error("rollout {0} does not exist in this namespace (or is not its latest)")]
    RolloutNotFound(String),
    /// A person's command the rollout's state or version refuses.
    #[error(transparent)]
    Rollout(#[from] RolloutError),
}

fn join(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// How the sets of a command break the schemas in force after its own
/// schema changes.
fn violations(state: &NamespaceState, cmd: &ChangeSetCommand) -> Vec<Violation> {
    let changed;
    let schemas = if cmd.schema_changes().is_empty() {
        &state.schemas
    } else {
        let mut next = state.schemas.clone();
        cmd.schema_changes().iter().for_each(|c| next.apply(c));
        changed = next;
        &changed
    };
    if schemas.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in cmd.changes() {
        if let Operation::Set { value, content_type } = &c.op {
            let room = MAX_VIOLATIONS.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            out.extend(schemas.check(&c.key, value, content_type, room));
        }
    }
    out
}

/// Decides a command against the state: the event to append, the earlier
/// revision of the same request, or a rejection.
pub fn decide(state: &NamespaceState, cmd: &ChangeSetCommand) -> Result<Decision, Rejection> {
    let meta = cmd.meta();
    // Idempotency comes first: a retry whose first attempt committed carries
    // a now-stale expected_revision and must still succeed.
    if let Some(answer) = state.answered(&meta.request_id, &cmd.digest()) {
        return answer.map(Decision::AlreadyApplied);
    }
    if let Some(computed_at) = cmd.computed_at()
        && computed_at != state.revision()
    {
        return Err(Rejection::NamespaceMoved { expected: computed_at, current: state.revision() });
    }
    if let Some(rollout) = state.live_rollout()
        && *cmd.origin() == crate::Origin::NamespaceDelete
    {
        return Err(Rejection::RolloutRunning(rollout.id.clone()));
    }
    if let Some(rollout) = state.live_rollout()
        && let Some(c) = cmd.changes().iter().find(|c| rollout.holds(&c.key))
    {
        return Err(Rejection::HeldByRollout { key: c.key.clone(), rollout: rollout.id.clone() });
    }
    // A schema over a held key could refuse the target its completion
    // commits unchecked: it waits for the rollout too.
    if let Some(rollout) = state.live_rollout()
        && let Some(key) = rollout.keys.iter().find(|k| cmd.schema_changes().iter().any(|s| s.pattern().matches(k)))
    {
        return Err(Rejection::HeldByRollout { key: key.clone(), rollout: rollout.id.clone() });
    }
    let mut changes = Vec::with_capacity(cmd.changes().len());
    for c in cmd.changes() {
        let meta = state.key(&c.key).copied();
        let current = meta.map_or(Revision::ZERO, |m| m.mod_revision);
        if let Some(expected) = c.expected
            && !expected.holds(current)
        {
            return Err(Rejection::Conflict { key: c.key.clone(), expected, current });
        }
        let (create_revision, version) = match (&c.op, meta) {
            (Operation::Set { .. }, Some(m)) => (m.create_revision, m.version + 1),
            (Operation::Set { .. }, None) => (Revision::ZERO, 1),
            (Operation::Delete, _) => (Revision::ZERO, 0),
        };
        let op = match &c.op {
            Operation::Set { value, content_type } => {
                KeyOp::Set { value: value.clone(), content_type: content_type.clone() }
            }
            Operation::Delete if current == 0 => {
                return Err(Rejection::NotFound { namespace: cmd.namespace().clone(), key: c.key.clone() });
            }
            Operation::Delete => KeyOp::Delete,
        };
        changes.push(KeyChange {
            key: c.key.clone(),
            op,
            previous_mod_revision: current,
            expected: c.expected,
            create_revision,
            version,
        });
    }
    let broken = violations(state, cmd);
    if !broken.is_empty() {
        return Err(Rejection::SchemaViolation(broken));
    }
    Ok(Decision::Append(Box::new(ChangeSetCommitted {
        namespace: cmd.namespace().clone(),
        changes,
        actor: meta.actor.clone(),
        reason: meta.reason.clone(),
        request_id: meta.request_id.clone(),
        request_digest: cmd.digest().to_vec(),
        time: meta.time,
        trace: meta.trace.clone(),
        origin: cmd.origin().clone(),
        schema_changes: cmd.schema_changes().to_vec(),
        rollout: None,
    })))
}

mod snapshot;
pub use snapshot::{RememberedRequest, StateSnapshot};

#[cfg(test)]
mod tests;
