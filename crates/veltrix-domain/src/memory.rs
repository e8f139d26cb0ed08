//! An in-memory [`EventStore`] for fast tests of the logic above the store.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use crate::{
    Revision,
    event::ChangeSetCommitted,
    names::Namespace,
    store::{Appended, EventStore, StoreError, StoredEvent},
};

#[derive(Debug, Default)]
pub struct MemoryEventStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<StoredEvent>,
    last_by_namespace: HashMap<Namespace, Revision>,
    /// (namespace, request id) -> revision; never expires here.
    dedupe: HashMap<(Namespace, String), Revision>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event of every namespace, in revision order.
    pub fn all(&self) -> Vec<StoredEvent> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).log.clone()
    }
}

impl EventStore for MemoryEventStore {
    async fn read(&self, namespace: &Namespace, after: Revision) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inner.log.iter().filter(|e| e.revision > after && &e.event.namespace == namespace).cloned().collect())
    }

    async fn append(&self, expected_last: Revision, event: &ChangeSetCommitted) -> Result<Appended, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let ns = event.namespace.clone();
        let dedupe_key = (ns.clone(), event.request_id.as_str().to_owned());
        if !event.request_id.is_empty() {
            if let Some(rev) = inner.dedupe.get(&dedupe_key) {
                return Ok(Appended::Duplicate(*rev));
            }
        }
        let last = inner.last_by_namespace.get(&ns).copied().unwrap_or(0);
        if last != expected_last {
            return Err(StoreError::WrongLastRevision { expected: expected_last });
        }
        let revision = inner.log.len() as Revision + 1;
        inner.log.push(StoredEvent { revision, event: event.clone() });
        inner.last_by_namespace.insert(ns, revision);
        if !event.request_id.is_empty() {
            inner.dedupe.insert(dedupe_key, revision);
        }
        Ok(Appended::Committed(revision))
    }
}
