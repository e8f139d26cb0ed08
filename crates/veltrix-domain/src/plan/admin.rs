//! The administrative change sets: setting and deleting a schema, deleting a
//! namespace. Planned from the namespace's events like a rollback, so a
//! schema is checked against the values actually stored, and appended on
//! condition that the namespace did not move meanwhile.

use super::{DiffEntry, DiffKind, Plan};
use crate::{
    CommandMeta, Key, KeyPattern, Namespace, Revision, SchemaChange, Schemas, projection::Projection,
    schema::MAX_VIOLATIONS, store::StoredEvent,
};

/// A validated SetSchema request (the document compiled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSchema {
    pub namespace: Namespace,
    pub pattern: KeyPattern,
    pub schema: String,
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: CommandMeta,
}

/// A validated DeleteSchema request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSchema {
    pub namespace: Namespace,
    pub pattern: KeyPattern,
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: CommandMeta,
}

/// A validated DeleteNamespace request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteNamespace {
    pub namespace: Namespace,
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: CommandMeta,
}

fn framed(tag: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = tag.to_vec();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

impl SetSchema {
    /// What the request asks for, canonically (see `Rollback::request`).
    pub fn request(&self) -> Vec<u8> {
        framed(b"set-schema", &[self.pattern.as_str().as_bytes(), self.schema.as_bytes()])
    }
}

impl DeleteSchema {
    pub fn request(&self) -> Vec<u8> {
        framed(b"delete-schema", &[self.pattern.as_str().as_bytes()])
    }
}

impl DeleteNamespace {
    pub fn request(&self) -> Vec<u8> {
        b"delete-namespace".to_vec()
    }
}

/// Why an administrative change cannot be planned. Nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefusal {
    #[error("namespace '{0}' has no change sets")]
    NoSuchNamespace(Namespace),
    #[error("namespace '{namespace}' has no schema for key pattern '{pattern}'")]
    NoSuchSchema { namespace: Namespace, pattern: KeyPattern },
    /// Current values that the schema would refuse: the first
    /// [`MAX_VIOLATIONS`] keys, and how many there are.
    #[error(
        "{total} current value(s) break the schema for '{pattern}': {}{more}",
        keys.iter().map(Key::as_str).collect::<Vec<_>>().join(", "),
        more = if *total > keys.len() { ", ..." } else { "" }
    )]
    Violated { pattern: KeyPattern, keys: Vec<Key>, total: usize },
}

fn fold(namespace: &Namespace, events: &[StoredEvent]) -> Projection {
    let mut state = Projection::new();
    for stored in events.iter().filter(|s| &s.event.namespace == namespace) {
        state.apply(stored.revision, &stored.event);
    }
    state
}

/// Sets the schema for a pattern, refused when a current value of a
/// matching key breaks it; nothing to do when the same document is in force.
pub fn plan_set_schema(request: &SetSchema, events: &[StoredEvent]) -> Result<Plan, PlanRefusal> {
    let state = fold(&request.namespace, events);
    let at = state.revision(&request.namespace);
    if state.schemas(&request.namespace).get(&request.pattern) == Some(&request.schema) {
        return Ok(Plan { at, ..Plan::default() });
    }
    let change = SchemaChange::Set { pattern: request.pattern.clone(), schema: request.schema.clone() };
    let mut only = Schemas::default();
    only.apply(&change);
    let broken: Vec<Key> = state
        .keys(&request.namespace)
        .into_iter()
        .filter(|(key, kv)| match crate::ContentType::parse(&kv.content_type) {
            Ok(content_type) => !only.check(key, &kv.value, &content_type, 1).is_empty(),
            Err(_) => only.iter().any(|(p, _)| p.matches(key)),
        })
        .map(|(key, _)| key.clone())
        .collect();
    if !broken.is_empty() {
        let total = broken.len();
        let keys = broken.into_iter().take(MAX_VIOLATIONS).collect();
        return Err(PlanRefusal::Violated { pattern: request.pattern.clone(), keys, total });
    }
    Ok(Plan { at, schema_changes: vec![change], ..Plan::default() })
}

/// Deletes the schema for a pattern (NOT_FOUND when there is none).
pub fn plan_delete_schema(request: &DeleteSchema, events: &[StoredEvent]) -> Result<Plan, PlanRefusal> {
    let state = fold(&request.namespace, events);
    if !state.schemas(&request.namespace).contains_key(&request.pattern) {
        return Err(PlanRefusal::NoSuchSchema {
            namespace: request.namespace.clone(),
            pattern: request.pattern.clone(),
        });
    }
    let change = SchemaChange::Delete { pattern: request.pattern.clone() };
    Ok(Plan { at: state.revision(&request.namespace), schema_changes: vec![change], ..Plan::default() })
}

/// Deletes every key and schema of a namespace and marks it deleted;
/// nothing to do when its latest change set already deleted it.
pub fn plan_delete_namespace(request: &DeleteNamespace, events: &[StoredEvent]) -> Result<Plan, PlanRefusal> {
    let ns = &request.namespace;
    let state = fold(ns, events);
    let at = state.revision(ns);
    if at.is_zero() {
        return Err(PlanRefusal::NoSuchNamespace(ns.clone()));
    }
    if state.is_deleted(ns) {
        return Ok(Plan { at, ..Plan::default() });
    }
    let changes = state
        .keys(ns)
        .into_iter()
        .map(|(key, kv)| DiffEntry { key: key.clone(), kind: DiffKind::Removed, before: Some(kv.clone()), after: None })
        .collect();
    let schema_changes = state.schemas(ns).into_keys().map(|pattern| SchemaChange::Delete { pattern }).collect();
    Ok(Plan { at, changes, schema_changes, mark: true })
}
