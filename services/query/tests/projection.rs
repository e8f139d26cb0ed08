//! The projector against the in-memory event feed and a real Redis: it
//! applies every event in order, halts on an undecodable one, never skips a
//! gap, and resumes from the checkpoint it left in Redis.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use veltrix_domain::{
    EventFeed, EventStore, FeedError, Revision,
    conformance::event,
    memory::{MemoryEventStore, MemoryReader},
};
use veltrix_query::{
    projection::{PROJECTION_HEALTH, Projector},
    state::ReadState,
    watch::hub::Hub,
};
use veltrix_redis::{ApplyOptions, ReadModel};
use veltrix_server::{CancellationToken, Health};
use veltrix_testkit::{Redis, eventually};

/// The memory feed, recording the position of every reader it opens.
#[derive(Clone, Default)]
struct Recorded {
    store: MemoryEventStore,
    opened: Arc<Mutex<Vec<Revision>>>,
}

impl EventFeed for Recorded {
    type Reader = MemoryReader;

    async fn open(&self, after: Revision) -> Result<MemoryReader, FeedError> {
        self.opened.lock().unwrap().push(after);
        self.store.open(after).await
    }
}

struct Running {
    state: Arc<ReadState>,
    model: ReadModel,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn project(feed: &Recorded, redis: &Redis) -> Running {
    let model = ReadModel::connect(&redis.url(), "veltrix").await.unwrap();
    let (health, _service) = Health::new(vec!["veltrix.config.v1.ConfigQuery", PROJECTION_HEALTH]).await;
    let state = ReadState::new();
    let projector = Projector {
        feed: feed.clone(),
        model: model.clone(),
        state: state.clone(),
        hub: Hub::new(64, 100),
        options: ApplyOptions::default(),
        check_interval: Duration::from_millis(100),
        health,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(projector.run(stop.clone()));
    Running { state, model, stop, task }
}

impl Running {
    async fn reaches(&self, revision: Revision) {
        let state = &self.state;
        eventually(Duration::from_secs(20), "the projection reaches the revision", || async move {
            (state.watermark() >= revision).then_some(())
        })
        .await;
    }

    async fn value(&self, ns: &str, key: &str) -> Option<Vec<u8>> {
        let (generation, ns) = (self.state.generation().unwrap(), veltrix_domain::Namespace::parse(ns).unwrap());
        let (kv, _) = self.model.get(generation, &ns, key).await.unwrap();
        kv.map(|kv| kv.value.to_vec())
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn put(store: &MemoryEventStore, ns: &str, key: &str) -> Revision {
    let namespace = veltrix_domain::Namespace::parse(ns).unwrap();
    let last = store.read(&namespace, Revision::ZERO).await.unwrap().last().map_or(Revision::ZERO, |e| e.revision);
    match store.append(last, &event(ns, key, "")).await.unwrap() {
        veltrix_domain::Appended::Committed(r) | veltrix_domain::Appended::Duplicate(r) => r,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_in_order_and_resumes_from_its_checkpoint() {
    let (redis, feed) = (Redis::from_env(), Recorded::default());
    put(&feed.store, "p/a", "k1").await;
    let r2 = put(&feed.store, "p/b", "k1").await;
    let running = project(&feed, &redis).await;
    running.reaches(r2).await;
    assert_eq!(running.value("p/a", "k1").await.as_deref(), Some(&b"k1"[..]));
    // Live events after the catch-up.
    let r3 = put(&feed.store, "p/a", "k2").await;
    running.reaches(r3).await;
    assert_eq!(running.value("p/a", "k2").await.as_deref(), Some(&b"k2"[..]));
    running.stop().await;

    // A new projector on the same Redis starts from the watermark it left.
    let r4 = put(&feed.store, "p/b", "k2").await;
    feed.opened.lock().unwrap().clear();
    let running = project(&feed, &redis).await;
    running.reaches(r4).await;
    assert_eq!(feed.opened.lock().unwrap().first().copied(), Some(r3), "resumes after its checkpoint");
    assert_eq!(running.value("p/b", "k2").await.as_deref(), Some(&b"k2"[..]));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halts_on_an_undecodable_event_and_applies_nothing_after_it() {
    let (redis, feed) = (Redis::from_env(), Recorded::default());
    let r1 = put(&feed.store, "p/a", "k1").await;
    let bad = feed.store.append_undecodable("a newer event version");
    let after = put(&feed.store, "p/a", "k2").await;
    let running = project(&feed, &redis).await;
    running.reaches(r1).await;
    let state = running.state.clone();
    eventually(Duration::from_secs(20), "the projection halts", || async { state.is_halted().then_some(()) }).await;
    assert_eq!(running.state.watermark(), bad - 1, "the watermark stops before the bad event, not at {after}");
    assert!(running.state.stats.undecodable_events.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_never_skipped() {
    let (redis, feed) = (Redis::from_env(), Recorded::default());
    let r1 = put(&feed.store, "p/a", "k1").await;
    feed.store.lose_next_revision();
    let r3 = put(&feed.store, "p/a", "k2").await;
    assert_eq!(r3, r1 + 2);
    let running = project(&feed, &redis).await;
    running.reaches(r1).await;
    // It reopens from its position again and again, and never applies past the gap.
    let opened = feed.opened.clone();
    eventually(Duration::from_secs(20), "the reader is reopened after the gap", || async {
        (opened.lock().unwrap().iter().filter(|p| **p == r1).count() >= 2).then_some(())
    })
    .await;
    assert_eq!(running.state.watermark(), r1, "nothing past the gap is applied");
    running.stop().await;
}
