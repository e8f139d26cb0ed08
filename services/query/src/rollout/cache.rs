//! Each namespace's rollout events, kept in memory per replica: every Sync
//! session reads them at each transition, the controller every round, so
//! without it a transition costs a Redis read per open stream.
//!
//! Coherent with the model as the projector sees it: the projector drops a
//! namespace's entry after applying a rollout event to Redis and before it
//! hands the event to the watchers (so a session woken by a transition
//! reads it), and a read that raced with a drop does not store what it
//! read.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use veltrix_domain::{ChangeSetCommitted, Namespace, Revision};
use veltrix_redis::{Generation, ReadModel};

/// A namespace's rollout events, oldest first.
pub type Events = Arc<Vec<(Revision, ChangeSetCommitted)>>;

/// Namespaces kept at most; beyond it the cache starts over.
const MAX_NAMESPACES: usize = 10_000;

#[derive(Debug, Default)]
pub struct RolloutCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every drop: a read that began before one stores nothing.
    version: u64,
    entries: HashMap<(Generation, Namespace), Events>,
}

impl RolloutCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The namespace's rollout events, from memory or the model.
    pub async fn events(
        &self,
        model: &ReadModel,
        generation: Generation,
        ns: &Namespace,
    ) -> Result<Events, veltrix_redis::Error> {
        let key = (generation, ns.clone());
        let version = {
            let inner = self.inner();
            if let Some(events) = inner.entries.get(&key) {
                return Ok(events.clone());
            }
            inner.version
        };
        let events: Events = Arc::new(model.rollout_events(generation, ns).await?);
        let mut inner = self.inner();
        if inner.version == version {
            if inner.entries.len() >= MAX_NAMESPACES {
                inner.entries.clear();
            }
            inner.entries.insert(key, events.clone());
        }
        Ok(events)
    }

    /// The namespace's rollout changed in the model (the projector applied
    /// one of its events).
    pub fn drop_namespace(&self, ns: &Namespace) {
        let mut inner = self.inner();
        inner.version = inner.version.wrapping_add(1);
        inner.entries.retain(|(_, n), _| n != ns);
    }
}
