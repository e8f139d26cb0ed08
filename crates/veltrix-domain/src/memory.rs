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
        if !event.request_id.is_empty()
            && let Some(rev) = inner.dedupe.get(&dedupe_key)
        {
            return Ok(Appended::Duplicate(*rev));
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

/// The behaviour every [`EventStore`] must show; run against the memory store
/// here and against JetStream in the adapter's tests.
pub mod conformance {
    use std::time::SystemTime;

    use crate::{
        Actor, Appended, ChangeSetCommitted, ContentType, EventStore, Key, KeyChange, KeyOp, Namespace, Reason,
        RequestId, StoreError, TraceContext,
    };

    fn event(ns: &str, key: &str, request_id: &str) -> ChangeSetCommitted {
        ChangeSetCommitted {
            namespace: Namespace::parse(ns).expect("valid namespace"),
            changes: vec![KeyChange {
                key: Key::parse(key).expect("valid key"),
                op: KeyOp::Set { value: key.as_bytes().to_vec(), content_type: ContentType::parse("").expect("ct") },
                previous_mod_revision: 0,
                expected: None,
                create_revision: 0,
                version: 1,
            }],
            actor: Actor::anonymous(),
            reason: Reason::default(),
            request_id: RequestId::parse(request_id).expect("valid request id"),
            request_digest: vec![1; 32],
            time: SystemTime::UNIX_EPOCH,
            trace: TraceContext {
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                tracestate: String::new(),
            },
        }
    }

    /// Panics on the first broken rule.
    pub async fn run<S: EventStore>(store: &S) {
        let ns = Namespace::parse("conf/a").expect("ns");
        assert!(store.read(&ns, 0).await.expect("read empty").is_empty(), "a new namespace has no events");

        let e1 = event("conf/a", "k1", "");
        let Ok(Appended::Committed(r1)) = store.append(0, &e1).await else { panic!("first append commits") };
        let read = store.read(&ns, 0).await.expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].revision, &read[0].event), (r1, &e1), "the event reads back as written");

        let stale = store.append(0, &event("conf/a", "k2", "")).await;
        assert!(matches!(stale, Err(StoreError::WrongLastRevision { expected: 0 })), "stale expectation: {stale:?}");

        let e2 = event("conf/a", "k2", "req-1");
        let Ok(Appended::Committed(r2)) = store.append(r1, &e2).await else { panic!("append at the right revision") };
        assert!(r2 > r1);
        match store.append(r1, &e2).await {
            Ok(Appended::Duplicate(r)) => assert_eq!(r, r2, "a duplicate answers the original revision"),
            Err(StoreError::WrongLastRevision { .. }) => {}
            other => panic!("a retried append must not commit twice: {other:?}"),
        }

        // Another namespace, including a "child" one, has its own order in
        // the same global sequence.
        let Ok(Appended::Committed(r3)) = store.append(0, &event("conf/a/b", "k", "")).await else {
            panic!("a child namespace starts empty")
        };
        assert!(r3 > r2, "revisions are global");
        let read = store.read(&ns, r1).await.expect("read after");
        assert_eq!(
            read.iter().map(|e| e.revision).collect::<Vec<_>>(),
            vec![r2],
            "reads only its own subject, after the given revision"
        );

        // A longer history, read from the start and from the middle.
        let mut last = r2;
        let mut revisions = vec![r1, r2];
        for i in 0..25 {
            let Ok(Appended::Committed(r)) = store.append(last, &event("conf/a", &format!("k{i}"), "")).await else {
                panic!("append {i}")
            };
            revisions.push(r);
            last = r;
        }
        let all: Vec<_> = store.read(&ns, 0).await.expect("read all").iter().map(|e| e.revision).collect();
        assert_eq!(all, revisions);
        let tail: Vec<_> =
            store.read(&ns, revisions[10]).await.expect("read tail").iter().map(|e| e.revision).collect();
        assert_eq!(tail, revisions[11..]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_conforms() {
        let store = super::MemoryEventStore::new();
        block_on(super::conformance::run(&store));
    }

    /// The memory store never awaits anything, so one poll completes it.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory store does not wait"),
        }
    }
}
