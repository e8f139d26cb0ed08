//! The behaviour every [`EventStore`] and [`EventFeed`] must show: run
//! against the memory store by `cargo test -p veltrix-domain` and against
//! JetStream in the adapter's tests. Each check panics on the first broken
//! rule.

use std::{future::Future, pin::pin, task::Poll, time::SystemTime};

use crate::{
    Actor, Appended, ChangeSetCommitted, ContentType, EventStore, Key, KeyChange, KeyOp, Namespace, Reason, RequestId,
    Revision, StoreError, TraceContext,
    feed::{EventFeed, FeedError, FeedReader, next_batch},
};

/// A change set setting `key` (its own name as the value) in `ns`.
pub fn event(ns: &str, key: &str, request_id: &str) -> ChangeSetCommitted {
    ChangeSetCommitted {
        namespace: Namespace::parse(ns).expect("valid namespace"),
        changes: vec![KeyChange {
            key: Key::parse(key).expect("valid key"),
            op: KeyOp::Set { value: key.as_bytes().to_vec(), content_type: ContentType::parse("").expect("ct") },
            previous_mod_revision: Revision::ZERO,
            expected: None,
            create_revision: Revision::ZERO,
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
        origin: crate::Origin::Write,
        schema_changes: Vec::new(),
        rollout: None,
    }
}

/// Panics on the first broken rule.
pub async fn run<S: EventStore>(store: &S) {
    let ns = Namespace::parse("conf/a").expect("ns");
    assert!(store.read(&ns, Revision::ZERO).await.expect("read empty").is_empty(), "a new namespace has no events");

    let e1 = event("conf/a", "k1", "");
    let Ok(Appended::Committed(r1)) = store.append(Revision::ZERO, &e1).await else { panic!("first append commits") };
    let read = store.read(&ns, Revision::ZERO).await.expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].revision, &read[0].event), (r1, &e1), "the event reads back as written");

    let stale = store.append(Revision::ZERO, &event("conf/a", "k2", "")).await;
    assert!(
        matches!(stale, Err(StoreError::WrongLastRevision { expected: Revision::ZERO })),
        "stale expectation: {stale:?}"
    );

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
    let Ok(Appended::Committed(r3)) = store.append(Revision::ZERO, &event("conf/a/b", "k", "")).await else {
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
    let all: Vec<_> = store.read(&ns, Revision::ZERO).await.expect("read all").iter().map(|e| e.revision).collect();
    assert_eq!(all, revisions);
    let tail: Vec<_> = store.read(&ns, revisions[10]).await.expect("read tail").iter().map(|e| e.revision).collect();
    assert_eq!(tail, revisions[11..]);

    // Read event by event: the same events, in order.
    let mut each = Vec::new();
    store.read_each(&ns, revisions[10], |e| each.push(e.revision)).await.expect("read each");
    assert_eq!(each, revisions[11..], "read_each sees what read sees");
    let mut none = Vec::new();
    store.read_each(&ns, last, |e| none.push(e.revision)).await.expect("read each at the end");
    assert!(none.is_empty(), "nothing after the last revision");

    snapshots(store, &ns, last, r3).await;
}

/// A snapshot reads back while it matches the log; one whose revision is
/// another namespace's event is not trusted. A store may keep none.
async fn snapshots<S: EventStore>(store: &S, ns: &Namespace, last: Revision, other: Revision) {
    let mut state = crate::NamespaceState::new(std::time::Duration::from_secs(60));
    for e in store.read(ns, Revision::ZERO).await.expect("read") {
        state.evolve(e.revision, &e.event);
    }
    let snapshot = state.snapshot(ns);
    assert_eq!(snapshot.revision, last);
    store.save_snapshot(&snapshot).await.expect("save a snapshot");
    // A store without snapshots answers none.
    if let Some(found) = store.snapshot(ns).await.expect("read the snapshot") {
        assert_eq!(found, snapshot, "a snapshot reads back as saved");
    }
    let forged = crate::aggregate::StateSnapshot { revision: other, ..snapshot };
    if store.save_snapshot(&forged).await.is_ok() {
        assert_eq!(
            store.snapshot(ns).await.expect("read"),
            None,
            "a snapshot at another namespace's event is not trusted"
        );
    }
}

/// Faults a test can inject into a store, to see how its feed reports them.
pub trait Faults: Sync {
    /// Appends an event this version cannot decode; answers its revision.
    fn append_undecodable(&self) -> impl Future<Output = Revision> + Send;
    /// Makes the next revision go missing from the feed: the next append
    /// lands one revision further.
    fn lose_next_revision(&self) -> impl Future<Output = ()> + Send;
}

async fn append<S: EventStore>(store: &S, expected: Revision, ns: &str, key: &str) -> Revision {
    match store.append(expected, &event(ns, key, "")).await {
        Ok(Appended::Committed(r)) => r,
        other => panic!("append to {ns} after {expected}: {other:?}"),
    }
}

/// The feed: every namespace in one order, the head, waiting, reopening from
/// a checkpoint, batches, and an undecodable event or a gap reported, never
/// skipped. Uses the namespaces `feed/a` and `feed/b`, which must be empty.
pub async fn run_feed<S: EventStore, E: EventFeed, F: Faults>(store: &S, feed: &E, faults: &F) {
    let start = feed.open(Revision::ZERO).await.expect("open").head();
    let a1 = append(store, Revision::ZERO, "feed/a", "k1").await;
    let b1 = append(store, Revision::ZERO, "feed/b", "k1").await;
    let a2 = append(store, a1, "feed/a", "k2").await;
    assert_eq!([a1, b1, a2], [start + 1, start + 2, start + 3], "revisions follow each other");

    // Every namespace, in revision order, with what is left after each.
    let mut reader = feed.open(start).await.expect("open at the start");
    assert_eq!(reader.head(), a2, "the head is the last revision when opened");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let item = reader.next().await.expect("next");
        seen.push((item.stored.revision, item.stored.event.namespace.as_str().to_owned(), item.pending));
    }
    let expected = [(a1, "feed/a", 2), (b1, "feed/b", 1), (a2, "feed/a", 0)];
    assert_eq!(seen, expected.map(|(r, ns, p)| (r, ns.to_owned(), p)), "one order across namespaces");

    // Caught up, a reader waits for the next append.
    let a3 = {
        let mut waiting = pin!(reader.next());
        let first = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx).is_pending())).await;
        assert!(first, "a caught-up reader waits");
        let a3 = append(store, a2, "feed/a", "k3").await;
        let item = waiting.await.expect("the appended event arrives");
        assert_eq!((item.stored.revision, item.pending), (a3, 0));
        a3
    };
    reader.close().await;

    // From a checkpoint: what follows it, in batches that never exceed max.
    let mut reader = feed.open(b1).await.expect("open at a checkpoint");
    let mut batched = Vec::new();
    while batched.len() < 2 {
        let batch = next_batch(&mut reader, 1).await.expect("batch");
        assert_eq!(batch.len(), 1, "a batch holds at most max events");
        batched.extend(batch.into_iter().map(|i| i.stored.revision));
    }
    assert_eq!(batched, [a2, a3]);

    // An undecodable event ends the reader there, again on every try; the
    // events after it are read by a reader opened past it.
    let bad = faults.append_undecodable().await;
    let a4 = append(store, a3, "feed/a", "k4").await;
    for _ in 0..2 {
        match reader.next().await {
            Err(FeedError::Undecodable { revision, .. }) => assert_eq!(revision, bad),
            other => panic!("an undecodable event is reported, not skipped: {other:?}"),
        }
    }
    reader.close().await;
    // In a batch, the events before it are kept; the next batch reports it.
    let mut reader = feed.open(a2).await.expect("open before it");
    let batch = next_batch(&mut reader, 10).await.expect("the events before the bad one");
    assert_eq!(batch.iter().map(|i| i.stored.revision).collect::<Vec<_>>(), [a3]);
    assert!(matches!(next_batch(&mut reader, 10).await, Err(FeedError::Undecodable { .. })));
    reader.close().await;
    let mut past = feed.open(bad).await.expect("open past it");
    assert_eq!(past.next().await.expect("after the bad one").stored.revision, a4);
    past.close().await;

    // A revision missing from the sequence is a gap, not a skip.
    faults.lose_next_revision().await;
    let a5 = append(store, a4, "feed/a", "k5").await;
    assert!(a5 > a4 + 1, "a revision went missing");
    let mut reader = feed.open(a4).await.expect("open before the gap");
    match reader.next().await {
        Err(FeedError::Gap { expected, got }) => assert_eq!((expected, got), (a4 + 1, a5)),
        other => panic!("a gap is reported: {other:?}"),
    }
    reader.close().await;
}
