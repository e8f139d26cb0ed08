//! The in-process read cache against a real redis-server: under random
//! writes, reads, reads racing writes, reads of a Redis another replica has
//! already moved ahead, projector restarts past what the cache saw, and
//! evictions, every answer a Get gives equals Redis's answer as of the
//! revision it reports.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use veltrix_domain::{
    ChangeSetCommitted, Namespace, Origin, Revision,
    fixtures::{self, Command, KeyOp},
};
use veltrix_proto::v1::KeyValue;
use veltrix_query::read::cache::{Lookup, ReadCache};
use veltrix_redis::{ApplyOptions, Generation, ReadModel};
use veltrix_testkit::Redis;

const NAMESPACES: [&str; 3] = ["app/a", "app/b", "app/c"];

fn committed(cmds: &[Command]) -> Vec<(Revision, ChangeSetCommitted)> {
    fixtures::committed(&NAMESPACES.map(|n| Namespace::parse(n).unwrap()), cmds)
}

#[derive(Debug, Clone)]
enum Step {
    /// The projector applies the next change sets (one batch).
    Project(usize),
    /// A Get.
    Read(usize, u8),
    /// A Get that misses, reads Redis, and keeps the answer only after the
    /// projector applied more change sets.
    Racy(usize, u8, usize),
    /// Another replica applied the next change set to Redis first; a Get
    /// runs before this replica's projector applies it.
    Ahead(usize, u8),
    /// Another replica applied the next change sets and raised the shared
    /// watermark past them; this replica's projector restarts from there
    /// (its cache never sees them).
    Restart(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let ns = 0..NAMESPACES.len();
    let step = prop_oneof![
        3 => (1usize..4).prop_map(Step::Project),
        4 => (ns.clone(), 0u8..6).prop_map(|(n, k)| Step::Read(n, k)),
        2 => (ns.clone(), 0u8..6, 1usize..3).prop_map(|(n, k, w)| Step::Racy(n, k, w)),
        1 => (ns, 0u8..6).prop_map(|(n, k)| Step::Ahead(n, k)),
        1 => (1usize..4).prop_map(Step::Restart),
    ];
    proptest::collection::vec(step, 1..80)
}

fn commands() -> impl Strategy<Value = Vec<Command>> {
    let op = prop_oneof![3 => any::<u8>().prop_map(KeyOp::Set), 1 => Just(KeyOp::Delete)];
    proptest::collection::vec((any::<u8>(), proptest::collection::vec((0u8..6, op), 1..4)), 1..60)
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A replica: its projector's position, its cache, and Redis.
struct Replica<'a> {
    model: &'a ReadModel,
    generation: Generation,
    cache: ReadCache,
    events: &'a [(Revision, ChangeSetCommitted)],
    /// Applied to the cache and the watermark (the projector's position).
    watermark: usize,
    /// Applied to Redis (by this replica or another).
    in_redis: usize,
    hits: u64,
}

impl<'a> Replica<'a> {
    /// A replica on a fresh generation, with a cache of `capacity` bytes.
    async fn new(model: &'a ReadModel, events: &'a [(Revision, ChangeSetCommitted)], capacity: usize) -> Self {
        let generation = Generation::from_u64(GENERATION.fetch_add(1, Ordering::Relaxed));
        model.mark_complete_inactive(generation).await.unwrap();
        let cache = ReadCache::new(capacity).unwrap();
        cache.start(generation, Revision::ZERO, false);
        Replica { model, generation, cache, events, watermark: 0, in_redis: 0, hits: 0 }
    }

    async fn land_in_redis(&mut self, upto: usize) {
        let upto = upto.min(self.events.len());
        for (revision, event) in self.events.get(self.in_redis..upto).unwrap_or_default() {
            self.model.apply(self.generation, *revision, event, ApplyOptions::default()).await.unwrap();
        }
        self.in_redis = self.in_redis.max(upto);
    }

    /// The projector: Redis first, then the cache, then the watermark.
    async fn project(&mut self, n: usize) {
        let upto = (self.watermark + n).min(self.events.len());
        self.land_in_redis(upto).await;
        let batch: Vec<_> = self.events[self.watermark..upto].iter().map(|(r, e)| (*r, e)).collect();
        self.cache.apply(self.generation, &batch);
        self.watermark = upto;
    }

    fn revision(&self) -> Revision {
        self.watermark.checked_sub(1).map_or(Revision::ZERO, |i| self.events[i].0)
    }

    /// A Get as the service answers it; `between` runs after Redis answered
    /// a miss and before the answer is offered to the cache.
    async fn get(&mut self, ns: usize, key: u8, between: usize) -> (Option<KeyValue>, Revision) {
        let namespace = Namespace::parse(NAMESPACES[ns]).unwrap();
        let key = format!("k/{key}");
        let watermark = self.revision();
        match self.cache.lookup(self.generation, namespace.as_str(), &key, watermark) {
            Lookup::Hit { kv, revision } => {
                self.hits += 1;
                (kv, revision)
            }
            Lookup::Miss(ticket) => {
                let (kv, at) = self.model.get(self.generation, &namespace, &key).await.unwrap();
                self.project(between).await;
                self.cache.fill(ticket, namespace.as_str(), &key, kv.as_ref(), at);
                (kv, watermark.max(at))
            }
        }
    }

    /// Redis's answer as of `revision` must be the Get's.
    async fn check(&self, ns: usize, key: u8, (kv, revision): (Option<KeyValue>, Revision)) {
        let namespace = Namespace::parse(NAMESPACES[ns]).unwrap();
        let key = format!("k/{key}");
        let want = if revision == Revision::ZERO {
            None
        } else {
            self.model.get_at(self.generation, &namespace, &key, revision).await.unwrap()
        };
        assert_eq!(kv, want, "{namespace}/{key} as of {revision}");
    }

    async fn step(&mut self, step: &Step) {
        match *step {
            Step::Project(n) => self.project(n).await,
            Step::Read(ns, key) => {
                let answer = self.get(ns, key, 0).await;
                self.check(ns, key, answer).await;
            }
            Step::Racy(ns, key, between) => {
                let answer = self.get(ns, key, between).await;
                self.check(ns, key, answer).await;
            }
            Step::Ahead(ns, key) => {
                let ahead = self.watermark + 1;
                self.land_in_redis(ahead).await;
                let answer = self.get(ns, key, 0).await;
                self.check(ns, key, answer).await;
                self.project(1).await;
            }
            Step::Restart(skipped) => {
                let from = (self.watermark + skipped).min(self.events.len());
                self.land_in_redis(from).await;
                self.watermark = from;
                self.cache.start(self.generation, self.revision(), false);
            }
        }
    }
}

async fn run(model: &ReadModel, events: &[(Revision, ChangeSetCommitted)], steps: &[Step], capacity: usize) -> u64 {
    let mut replica = Replica::new(model, events, capacity).await;
    for step in steps {
        replica.step(step).await;
    }
    // Everything projected: every key, twice (a miss, then what it kept).
    replica.project(events.len()).await;
    for _ in 0..2 {
        for ns in 0..NAMESPACES.len() {
            for key in 0..6 {
                let answer = replica.get(ns, key, 0).await;
                assert_eq!(answer.1, replica.revision().max(answer.1));
                replica.check(ns, key, answer).await;
            }
        }
    }
    assert!(replica.cache.bytes() <= capacity, "{} bytes held, capacity {capacity}", replica.cache.bytes());
    replica.hits
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_get_equals_redis_at_the_revision_it_reports(
        cmds in commands(),
        steps in steps(),
        // From a few keys (constant eviction) to everything.
        capacity in prop_oneof![300usize..3000, Just(1usize << 20)],
    ) {
        let events = committed(&cmds);
        prop_assume!(!events.is_empty());
        RUNTIME.block_on(async {
            let model = model().await;
            run(&model, &events, &steps, capacity).await;
        });
    }
}

static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
    std::sync::LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
static REDIS: std::sync::LazyLock<Redis> = std::sync::LazyLock::new(Redis::from_env);

async fn model() -> ReadModel {
    ReadModel::connect(&REDIS.url(), "cache").await.unwrap()
}

fn set(ns: u8, key: u8, value: u8) -> Command {
    (ns, vec![(key, KeyOp::Set(value))])
}

/// The cache is used at all: a second Get is a hit, a write to a cached
/// key updates it in place (no Redis round trip after it), and a namespace
/// that leaves (evicted, deleted) is read from Redis again.
#[tokio::test]
async fn hits_follow_writes_and_evictions_and_deletions() {
    let model = model().await;
    let events = committed(&[set(0, 1, 10), set(0, 2, 20), set(1, 1, 30), set(0, 1, 11), set(1, 2, 40)]);
    let mut r = Replica::new(&model, &events, 1 << 20).await;
    let generation = r.generation;
    r.project(3).await;
    for _ in 0..2 {
        let answer = r.get(0, 1, 0).await;
        r.check(0, 1, answer).await;
    }
    assert_eq!(r.hits, 1, "the second Get is a hit");
    r.project(1).await; // app/a k/1 = 11
    let (kv, revision) = r.get(0, 1, 0).await;
    assert_eq!((r.hits, revision), (2, Revision::new(4)), "the write updated the cached key");
    assert_eq!(kv.as_ref().map(|kv| kv.value.to_vec()), Some(vec![11; 3]));
    assert_eq!(kv.as_ref().map(|kv| kv.version), Some(2));
    // A key that does not exist is cached too.
    r.get(0, 5, 0).await;
    assert_eq!(r.get(0, 5, 0).await, (None, Revision::new(4)));
    assert_eq!(r.hits, 3);

    // A namespace deleted leaves the cache.
    let mut deleted = events[0].1.clone();
    deleted.origin = Origin::NamespaceDelete;
    deleted.changes.clear();
    r.cache.apply(generation, &[(Revision::new(6), &deleted)]);
    assert_eq!(r.cache.namespaces(), 0);

    // Too small for two namespaces: reading one evicts the other.
    let mut r = Replica::new(&model, &events, 500).await;
    r.project(5).await;
    r.get(0, 1, 0).await;
    r.get(1, 1, 0).await;
    assert_eq!(r.cache.namespaces(), 1, "{} bytes", r.cache.bytes());
    let answer = r.get(0, 1, 0).await;
    assert_eq!(r.hits, 0, "app/a was evicted");
    r.check(0, 1, answer).await;

    // One namespace larger than the cache keeps its entry, drops its keys
    // when full, and caches what is read next.
    for key in [2, 3, 4, 1] {
        r.get(0, key, 0).await;
        assert!(r.cache.bytes() <= 500, "{} bytes", r.cache.bytes());
    }
    assert_eq!(r.cache.namespaces(), 1);
    // The first read may fill it past the budget (the keys go again), the
    // second then fills an emptied entry, the third is a hit.
    for _ in 0..3 {
        let answer = r.get(0, 1, 0).await;
        r.check(0, 1, answer).await;
    }
    assert!(r.hits >= 1, "a key read after the keys were dropped is cached");
}

/// A race the property test may not draw: a Get misses, a change set to
/// its key is applied (Redis and cache) before the Get offers Redis's older
/// answer; the older answer is not kept.
#[tokio::test]
async fn an_answer_older_than_the_projector_is_not_kept() {
    let model = model().await;
    let events = committed(&[set(0, 1, 10), set(0, 1, 11)]);
    for (existing, first) in [(false, 1usize), (true, 1)] {
        let mut r = Replica::new(&model, &events, 1 << 20).await;
        r.project(first).await;
        if existing {
            // The namespace is cached (another key), k/1 is not.
            r.get(0, 3, 0).await;
        }
        let (kv, _) = r.get(0, 1, 1).await; // the second write lands in between
        assert_eq!(kv.map(|kv| kv.mod_revision), Some(1));
        let (kv, revision) = r.get(0, 1, 0).await;
        assert_eq!((kv.map(|kv| kv.mod_revision), revision), (Some(2), Revision::new(2)), "existing: {existing}");
    }
}

/// A run that replays what a Redis failover lost empties the cache and
/// takes no namespace in until the replay is done (Redis then holds newer
/// revisions than some of its keys); a run that starts past what the cache
/// saw empties it too.
#[tokio::test]
async fn replays_and_restarts_past_the_cache_empty_it() {
    let model = model().await;
    let events = committed(&[set(0, 1, 10), set(0, 2, 20), set(0, 1, 11)]);
    let mut r = Replica::new(&model, &events, 1 << 20).await;
    let generation = r.generation;
    r.project(2).await;
    r.get(0, 1, 0).await;
    assert_eq!(r.cache.namespaces(), 1);

    // A restart from where this replica's cache is: nothing is lost.
    r.cache.start(generation, Revision::new(2), false);
    assert_eq!(r.cache.namespaces(), 1);

    // Replaying: emptied, and a miss is not kept until the replay is done.
    r.cache.start(generation, Revision::new(1), true);
    assert_eq!(r.cache.namespaces(), 0);
    r.get(0, 1, 0).await;
    assert_eq!(r.cache.namespaces(), 0, "nothing enters during a replay");
    r.cache.replayed();
    r.get(0, 1, 0).await;
    assert_eq!(r.cache.namespaces(), 1);

    // Another replica's change set, and a run that starts after it.
    r.land_in_redis(3).await;
    r.watermark = 3;
    r.cache.start(generation, Revision::new(3), false);
    assert_eq!(r.cache.namespaces(), 0, "the cache never saw revision 3");
    let (kv, revision) = r.get(0, 1, 0).await;
    assert_eq!((kv.map(|kv| kv.mod_revision), revision), (Some(3), Revision::new(3)));
}
