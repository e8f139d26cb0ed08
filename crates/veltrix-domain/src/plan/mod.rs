//! Differences between two states, and the change sets built on them: a
//! rollback (every key under a prefix exactly as it was right after an
//! earlier revision) and a promotion (a namespace's keys under a prefix made
//! equal to another's). Computed from the namespaces' events, so they reach
//! as far back as the event stream does.

mod admin;

pub use admin::{
    DeleteNamespace, DeleteSchema, PlanRefusal, SetSchema, plan_delete_namespace, plan_delete_schema, plan_set_schema,
};

use std::collections::BTreeMap;

use crate::{
    Key, KeyCommand, KeyPattern, Limits, Namespace, Operation, Revision, SchemaChange,
    projection::{ProjectedKey, Projection},
    store::StoredEvent,
    validation::ValidationError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only in the later state.
    Added,
    /// Only in the earlier state.
    Removed,
    /// In both, with another value or content type.
    Changed,
}

/// One key that differs between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    pub key: Key,
    pub kind: DiffKind,
    pub before: Option<ProjectedKey>,
    pub after: Option<ProjectedKey>,
}

/// An entry of two key-ordered sequences walked together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paired<T> {
    /// Only in the first.
    Left(T),
    /// Only in the second.
    Right(T),
    Both(T, T),
}

/// Walks two sequences ordered by `key` together, key by key.
pub fn pair_by_key<T>(left: Vec<T>, right: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Paired<T>> {
    let (mut old, mut new) = (left.into_iter().peekable(), right.into_iter().peekable());
    let mut out = Vec::new();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return out,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => key(a).cmp(key(b)),
        };
        let next = match order {
            std::cmp::Ordering::Less => old.next().map(Paired::Left),
            std::cmp::Ordering::Greater => new.next().map(Paired::Right),
            std::cmp::Ordering::Equal => old.next().zip(new.next()).map(|(a, b)| Paired::Both(a, b)),
        };
        match next {
            Some(pair) => out.push(pair),
            None => return out,
        }
    }
}

/// The keys under `prefix` that differ from `before` to `after` (both in
/// key order), in key order.
pub fn diff(before: &[(&Key, &ProjectedKey)], after: &[(&Key, &ProjectedKey)], prefix: &str) -> Vec<DiffEntry> {
    let under = |entries: &[(&Key, &ProjectedKey)]| -> Vec<(Key, ProjectedKey)> {
        entries
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(k, v)| ((*k).clone(), (*v).clone()))
            .collect()
    };
    pair_by_key(under(before), under(after), |(k, _)| k.as_str())
        .into_iter()
        .filter_map(|pair| match pair {
            Paired::Left((key, was)) => {
                Some(DiffEntry { key, kind: DiffKind::Removed, before: Some(was), after: None })
            }
            Paired::Right((key, is)) => Some(DiffEntry { key, kind: DiffKind::Added, before: None, after: Some(is) }),
            Paired::Both((key, was), (_, is)) => (was.value != is.value || was.content_type != is.content_type)
                .then_some(DiffEntry { key, kind: DiffKind::Changed, before: Some(was), after: Some(is) }),
        })
        .collect()
}

/// A validated Rollback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub namespace: Namespace,
    /// At least 1.
    pub to_revision: Revision,
    pub prefix: String,
    /// The namespace's revision the caller expects (else ABORTED).
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: crate::CommandMeta,
}

impl Rollback {
    /// What the request asks for, canonically: its digest tells a retry
    /// from a reused request id whatever changes it computes.
    pub fn request(&self) -> Vec<u8> {
        let mut out = b"rollback".to_vec();
        out.extend_from_slice(&self.to_revision.get().to_be_bytes());
        out.extend_from_slice(&(self.prefix.len() as u64).to_be_bytes());
        out.extend_from_slice(self.prefix.as_bytes());
        out
    }
}

/// A validated Promote request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promote {
    pub source: Namespace,
    /// Absent: the source's latest revision.
    pub source_revision: Option<Revision>,
    pub target: Namespace,
    pub prefix: String,
    /// Also delete the target's keys under the prefix that the source lacks.
    pub delete_missing: bool,
    /// Only these keys (sorted, each once); empty: every key under the prefix.
    pub keys: Vec<String>,
    /// The target's revision the caller expects (else ABORTED).
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: crate::CommandMeta,
}

impl Promote {
    /// What the request asks for, canonically (see [`Rollback::request`]):
    /// the source revision as asked (0: its latest), so that a retry is
    /// recognised after the source moved.
    pub fn request(&self) -> Vec<u8> {
        let source_revision = self.source_revision.unwrap_or_default();
        let mut out = b"promote".to_vec();
        for part in [self.source.as_str().as_bytes(), self.prefix.as_bytes()] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&source_revision.get().to_be_bytes());
        out.push(u8::from(self.delete_missing));
        // Appended only when keys are named, so that a promotion of a whole
        // prefix keeps the request bytes that earlier versions recorded.
        for key in &self.keys {
            out.extend_from_slice(&(key.len() as u64).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        out
    }
}

/// The promotion of `source`'s keys under `prefix` (as of `source_revision`,
/// else its latest) into `target`; answers the plan and the source revision
/// it was computed from.
pub fn plan_promote(
    promote: &Promote,
    source_events: &[StoredEvent],
    target_events: &[StoredEvent],
) -> (Plan, Revision) {
    let mut source = Projection::new();
    for stored in source_events.iter().filter(|s| s.event.namespace == promote.source) {
        if promote.source_revision.is_none_or(|at| stored.revision <= at) {
            source.apply(stored.revision, &stored.event);
        }
    }
    let mut target = Projection::new();
    for stored in target_events.iter().filter(|s| s.event.namespace == promote.target) {
        target.apply(stored.revision, &stored.event);
    }
    let mut changes = diff(&target.keys(&promote.target), &source.keys(&promote.source), &promote.prefix);
    if !promote.delete_missing {
        changes.retain(|c| c.kind != DiffKind::Removed);
    }
    if !promote.keys.is_empty() {
        changes.retain(|c| promote.keys.binary_search_by(|k| k.as_str().cmp(c.key.as_str())).is_ok());
    }
    let from = promote.source_revision.unwrap_or_else(|| source.revision(&promote.source));
    (Plan { at: target.revision(&promote.target), changes, ..Plan::default() }, from)
}

/// What a computed change set would change, computed at the namespace's
/// revision `at`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub at: Revision,
    /// From the current state (`before`) to the state at the target (`after`).
    pub changes: Vec<DiffEntry>,
    /// The schema changes, in force for the key changes of the same set.
    pub schema_changes: Vec<SchemaChange>,
    /// A change set is appended even when it changes nothing (deleting an
    /// empty namespace still marks it deleted).
    pub mark: bool,
}

impl Plan {
    /// Nothing to append: the state is already as asked.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty() && self.schema_changes.is_empty() && !self.mark
    }
}

/// The rollback of `namespace`'s keys under `prefix` to right after
/// `to_revision`, from the namespace's events in revision order. A rollback
/// of the whole namespace (empty prefix) also brings back the schemas in
/// force at `to_revision`; a prefix rollback keeps the current ones.
pub fn plan_rollback(namespace: &Namespace, events: &[StoredEvent], to_revision: Revision, prefix: &str) -> Plan {
    let (mut now, mut then) = (Projection::new(), Projection::new());
    for stored in events.iter().filter(|s| &s.event.namespace == namespace) {
        now.apply(stored.revision, &stored.event);
        if stored.revision <= to_revision {
            then.apply(stored.revision, &stored.event);
        }
    }
    let changes = diff(&now.keys(namespace), &then.keys(namespace), prefix);
    let schema_changes =
        if prefix.is_empty() { schema_diff(&now.schemas(namespace), &then.schemas(namespace)) } else { Vec::new() };
    Plan { at: now.revision(namespace), changes, schema_changes, mark: false }
}

/// The schema changes that turn `now` into `then`, in pattern order.
fn schema_diff(now: &BTreeMap<KeyPattern, String>, then: &BTreeMap<KeyPattern, String>) -> Vec<SchemaChange> {
    let removed = now.keys().filter(|p| !then.contains_key(*p)).map(|p| SchemaChange::Delete { pattern: p.clone() });
    let set = then
        .iter()
        .filter(|(p, s)| now.get(*p) != Some(*s))
        .map(|(p, s)| SchemaChange::Set { pattern: p.clone(), schema: s.clone() });
    let mut out: Vec<SchemaChange> = removed.chain(set).collect();
    out.sort_by(|a, b| a.pattern().cmp(b.pattern()));
    out
}

impl Plan {
    /// The key commands that carry the plan out.
    pub fn commands(&self, limits: &Limits) -> Result<Vec<KeyCommand>, ValidationError> {
        self.changes
            .iter()
            .map(|c| {
                let op = match &c.after {
                    Some(k) => Operation::set(k.value.clone(), &k.content_type, limits)?,
                    None => Operation::Delete,
                };
                Ok(KeyCommand { key: c.key.clone(), expected: None, op })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
