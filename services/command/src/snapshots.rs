//! When the command service writes a namespace's snapshot: after enough
//! events (or bytes of values) have been folded into its state since the
//! last one, in the background, one at a time per namespace. A snapshot only
//! makes the next load shorter: losing one, or failing to write it, costs a
//! longer load and nothing else.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use veltrix_domain::{ChangeSetCommitted, EventStore, KeyOp, Namespace, NamespaceState};

use crate::metric;

/// After how much folding a snapshot is written; `every == 0` writes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    pub every: u64,
    pub bytes: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self { every: 1000, bytes: 16 * 1024 * 1024 }
    }
}

/// Namespaces whose counts are kept at most.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Due {
    events: u64,
    bytes: u64,
    saving: bool,
}

/// What has been folded since each namespace's last snapshot.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    policy: SnapshotPolicy,
    due: Mutex<HashMap<Namespace, Due>>,
}

/// The bytes an event adds to what a load reads: its keys and values.
pub(crate) fn event_bytes(event: &ChangeSetCommitted) -> u64 {
    event
        .changes
        .iter()
        .map(|c| {
            let value = match &c.op {
                KeyOp::Set { value, .. } => value.len(),
                KeyOp::Delete => 0,
            };
            (c.key.as_str().len() + value) as u64
        })
        .sum()
}

impl Snapshots {
    pub(crate) fn new(policy: SnapshotPolicy) -> Self {
        Self { policy, due: Mutex::default() }
    }

    /// Counts `events` of `bytes` folded into the namespace's state; answers
    /// whether a snapshot is due now (and then counts it as being written).
    fn folded(&self, namespace: &Namespace, events: u64, bytes: u64) -> bool {
        if self.policy.every == 0 || events == 0 {
            return false;
        }
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        if due.len() >= MAX_TRACKED && !due.contains_key(namespace) {
            // Forgetting a count only delays a snapshot.
            due.retain(|_, d| d.saving);
        }
        let d = due.entry(namespace.clone()).or_default();
        d.events = d.events.saturating_add(events);
        d.bytes = d.bytes.saturating_add(bytes);
        if d.saving || (d.events < self.policy.every && d.bytes < self.policy.bytes) {
            return false;
        }
        *d = Due { events: 0, bytes: 0, saving: true };
        true
    }

    fn saved(&self, namespace: &Namespace) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = due.get_mut(namespace) {
            d.saving = false;
        }
    }

    /// Notes what was folded into `state` and, when a snapshot is due,
    /// writes one in the background.
    pub(crate) fn after_fold<S: EventStore>(
        self: &Arc<Self>,
        store: &Arc<S>,
        namespace: &Namespace,
        state: &NamespaceState,
        events: u64,
        bytes: u64,
    ) {
        if !self.folded(namespace, events, bytes) {
            return;
        }
        let snapshot = state.snapshot(namespace);
        let (store, snapshots, namespace) = (store.clone(), self.clone(), namespace.clone());
        tokio::spawn(async move {
            match store.save_snapshot(&snapshot).await {
                Ok(()) => {
                    metrics::counter!(metric::SNAPSHOTS_WRITTEN).increment(1);
                    tracing::debug!(%namespace, revision = %snapshot.revision, keys = snapshot.keys.len(), "snapshot written");
                }
                Err(e) => tracing::warn!(%namespace, error = %e, "could not write the namespace's snapshot"),
            }
            snapshots.saved(&namespace);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_after_enough_events_or_bytes_and_one_at_a_time() {
        let s = Snapshots::new(SnapshotPolicy { every: 3, bytes: 100 });
        let ns = Namespace::parse("a").unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.folded(&ns, 2, 10));
        assert!(s.folded(&ns, 1, 10), "3 events");
        assert!(!s.folded(&ns, 1, 10), "one is being written");
        s.saved(&ns);
        assert!(!s.folded(&ns, 1, 10), "counted from the last one (two events since)");
        assert!(s.folded(&ns, 1, 10), "the third event since");
        s.saved(&ns);
        assert!(s.folded(&ns, 1, 100), "enough bytes");
        let never = Snapshots::new(SnapshotPolicy { every: 0, bytes: 0 });
        assert!(!never.folded(&ns, 1_000_000, u64::MAX));
    }
}
