//! The reference fold of the read side: what every namespace looks like
//! after a sequence of committed change sets, computed in order from its own
//! state. The Redis projection must agree with it whatever the delivery order.

use std::{collections::BTreeMap, time::SystemTime};

use crate::{ChangeSetCommitted, Key, KeyOp, KeyPattern, Namespace, Origin, Revision, SchemaChange};

/// A live key as reads show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectedKey {
    pub value: Vec<u8>,
    pub content_type: String,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
    pub updated_at: SystemTime,
    pub updated_by: String,
}

#[derive(Debug, Clone, Default)]
pub struct Projection {
    namespaces: BTreeMap<Namespace, BTreeMap<Key, ProjectedKey>>,
    revisions: BTreeMap<Namespace, Revision>,
    schemas: BTreeMap<Namespace, BTreeMap<KeyPattern, String>>,
    /// Namespaces whose latest change set is a DeleteNamespace.
    deleted: std::collections::BTreeSet<Namespace>,
}

impl Projection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds in the next change set; events must come in revision order.
    pub fn apply(&mut self, revision: Revision, event: &ChangeSetCommitted) {
        let schemas = self.schemas.entry(event.namespace.clone()).or_default();
        for change in &event.schema_changes {
            match change {
                SchemaChange::Set { pattern, schema } => schemas.insert(pattern.clone(), schema.clone()),
                SchemaChange::Delete { pattern } => schemas.remove(pattern),
            };
        }
        if event.origin == Origin::NamespaceDelete {
            self.deleted.insert(event.namespace.clone());
        } else {
            self.deleted.remove(&event.namespace);
        }
        let keys = self.namespaces.entry(event.namespace.clone()).or_default();
        for c in &event.changes {
            match &c.op {
                KeyOp::Set { value, content_type } => {
                    let (create_revision, version) =
                        keys.get(&c.key).map_or((revision, 1), |k| (k.create_revision, k.version + 1));
                    keys.insert(
                        c.key.clone(),
                        ProjectedKey {
                            value: value.clone(),
                            content_type: content_type.to_string(),
                            create_revision,
                            mod_revision: revision,
                            version,
                            updated_at: event.time,
                            updated_by: event.actor.to_string(),
                        },
                    );
                }
                KeyOp::Delete => {
                    keys.remove(&c.key);
                }
            }
        }
        self.revisions.insert(event.namespace.clone(), revision);
    }

    /// Live keys of a namespace in key order.
    pub fn keys(&self, namespace: &Namespace) -> Vec<(&Key, &ProjectedKey)> {
        self.namespaces.get(namespace).map(|m| m.iter().collect()).unwrap_or_default()
    }

    /// The schemas in force in a namespace: pattern → document.
    pub fn schemas(&self, namespace: &Namespace) -> BTreeMap<KeyPattern, String> {
        self.schemas.get(namespace).cloned().unwrap_or_default()
    }

    /// Whether the namespace's latest change set deleted it.
    pub fn is_deleted(&self, namespace: &Namespace) -> bool {
        self.deleted.contains(namespace)
    }

    pub fn get(&self, namespace: &Namespace, key: &Key) -> Option<&ProjectedKey> {
        self.namespaces.get(namespace)?.get(key)
    }

    /// Latest revision of a namespace (0: none).
    pub fn revision(&self, namespace: &Namespace) -> Revision {
        self.revisions.get(namespace).copied().unwrap_or_default()
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.revisions.keys()
    }
}
