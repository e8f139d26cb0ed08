//! An in-memory [`EventStore`] and [`EventFeed`] for fast tests of the logic
//! above the store, with faults a test can inject (an undecodable event, a
//! missing revision).

use std::{
    collections::HashMap,
    future::poll_fn,
    sync::{Arc, Mutex, PoisonError},
    task::{Poll, Waker},
};

use crate::{
    Revision,
    aggregate::StateSnapshot,
    event::ChangeSetCommitted,
    feed::{EventFeed, FeedError, FeedItem, FeedReader},
    names::Namespace,
    store::{Appended, EventStore, StoreError, StoredEvent},
};

/// Cheap to clone: clones share one log.
#[derive(Debug, Default, Clone)]
pub struct MemoryEventStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Clone)]
enum Entry {
    Event(Box<StoredEvent>),
    Undecodable { revision: Revision, message: String },
}

impl Entry {
    fn revision(&self) -> Revision {
        match self {
            Self::Event(e) => e.revision,
            Self::Undecodable { revision, .. } => *revision,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<Entry>,
    last_revision: Revision,
    last_by_namespace: HashMap<Namespace, Revision>,
    /// (namespace, request id) -> revision; never expires here.
    dedupe: HashMap<(Namespace, String), Revision>,
    /// Readers waiting for the next append.
    waiting: Vec<Waker>,
    /// The latest snapshot of each namespace.
    snapshots: HashMap<Namespace, StateSnapshot>,
}

impl Inner {
    fn push(&mut self, entry: Entry) {
        self.last_revision = entry.revision();
        self.log.push(entry);
        for waker in self.waiting.drain(..) {
            waker.wake();
        }
    }
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every decodable event of every namespace, in revision order.
    pub fn all(&self) -> Vec<StoredEvent> {
        let inner = self.lock();
        inner
            .log
            .iter()
            .filter_map(|e| match e {
                Entry::Event(e) => Some((**e).clone()),
                Entry::Undecodable { .. } => None,
            })
            .collect()
    }

    /// Appends an event no reader can decode (a newer version's, or a
    /// corrupt one); answers its revision.
    pub fn append_undecodable(&self, message: &str) -> Revision {
        let mut inner = self.lock();
        let revision = inner.last_revision + 1;
        inner.push(Entry::Undecodable { revision, message: message.to_owned() });
        revision
    }

    /// Loses the next revision: the next append gets the one after it, so
    /// readers see a gap.
    pub fn lose_next_revision(&self) {
        self.lock().last_revision += 1;
    }
}

impl EventStore for MemoryEventStore {
    async fn read(&self, namespace: &Namespace, after: Revision) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for entry in inner.log.iter().filter(|e| e.revision() > after) {
            match entry {
                Entry::Event(e) if &e.event.namespace == namespace => out.push((**e).clone()),
                Entry::Event(_) => {}
                // Its namespace cannot be known; a namespace read sees it as
                // the JetStream store would only if it were on its subject.
                Entry::Undecodable { .. } => {}
            }
        }
        Ok(out)
    }

    async fn append(&self, expected_last: Revision, event: &ChangeSetCommitted) -> Result<Appended, StoreError> {
        let mut inner = self.lock();
        let ns = event.namespace.clone();
        let dedupe_key = (ns.clone(), event.request_id.as_str().to_owned());
        if !event.request_id.is_empty()
            && let Some(rev) = inner.dedupe.get(&dedupe_key)
        {
            return Ok(Appended::Duplicate(*rev));
        }
        let last = inner.last_by_namespace.get(&ns).copied().unwrap_or_default();
        if last != expected_last {
            return Err(StoreError::WrongLastRevision { expected: expected_last });
        }
        let revision = inner.last_revision + 1;
        inner.push(Entry::Event(Box::new(StoredEvent { revision, event: event.clone() })));
        inner.last_by_namespace.insert(ns, revision);
        if !event.request_id.is_empty() {
            inner.dedupe.insert(dedupe_key, revision);
        }
        Ok(Appended::Committed(revision))
    }

    /// A snapshot is trusted only while the namespace's event at its
    /// revision is in the log.
    async fn snapshot(&self, namespace: &Namespace) -> Result<Option<StateSnapshot>, StoreError> {
        let inner = self.lock();
        let Some(snapshot) = inner.snapshots.get(namespace) else { return Ok(None) };
        let matches = inner.log.iter().any(
            |e| matches!(e, Entry::Event(e) if e.revision == snapshot.revision && &e.event.namespace == namespace),
        );
        Ok(matches.then(|| snapshot.clone()))
    }

    async fn save_snapshot(&self, snapshot: &StateSnapshot) -> Result<(), StoreError> {
        self.lock().snapshots.insert(snapshot.namespace.clone(), snapshot.clone());
        Ok(())
    }
}

/// A reader of the memory log from a position.
#[derive(Debug)]
pub struct MemoryReader {
    store: MemoryEventStore,
    position: Revision,
    head: Revision,
}

impl EventFeed for MemoryEventStore {
    type Reader = MemoryReader;

    async fn open(&self, after: Revision) -> Result<MemoryReader, FeedError> {
        let head = self.lock().last_revision;
        Ok(MemoryReader { store: self.clone(), position: after, head })
    }
}

impl FeedReader for MemoryReader {
    fn head(&self) -> Revision {
        self.head
    }

    async fn next(&mut self) -> Result<FeedItem, FeedError> {
        poll_fn(|cx| {
            let mut inner = self.store.lock();
            let Some(index) = inner.log.iter().position(|e| e.revision() > self.position) else {
                inner.waiting.push(cx.waker().clone());
                return Poll::Pending;
            };
            let entry = inner.log[index].clone();
            let expected = self.position + 1;
            if entry.revision() != expected {
                return Poll::Ready(Err(FeedError::Gap { expected, got: entry.revision() }));
            }
            let pending = (inner.log.len() - index - 1) as u64;
            Poll::Ready(match entry {
                Entry::Undecodable { revision, message } => Err(FeedError::Undecodable { revision, message }),
                Entry::Event(stored) => {
                    self.position = stored.revision;
                    Ok(FeedItem { stored: *stored, pending })
                }
            })
        })
        .await
    }

    async fn close(self) {}
}

impl crate::conformance::Faults for MemoryEventStore {
    async fn append_undecodable(&self) -> Revision {
        MemoryEventStore::append_undecodable(self, "an unknown event version")
    }

    async fn lose_next_revision(&self) {
        MemoryEventStore::lose_next_revision(self);
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryEventStore;
    use crate::conformance;

    #[test]
    fn memory_store_conforms() {
        block_on(conformance::run(&MemoryEventStore::new()));
    }

    #[test]
    fn memory_feed_conforms() {
        let store = MemoryEventStore::new();
        block_on(conformance::run_feed(&store, &store, &store));
    }

    /// The memory store never waits when the suite polls it, so one poll
    /// completes each step.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory store does not wait"),
        }
    }
}
