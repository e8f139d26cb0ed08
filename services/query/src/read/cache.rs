//! The in-process read cache: the current keys of the namespaces this
//! replica reads most, exactly as its own projector applied them, so that a
//! Get at or below the watermark is a lookup instead of a Redis round trip.
//!
//! Coherence, without trusting timing:
//! - The projector updates the cache after a batch is in Redis and before
//!   the watermark moves past it ([`ReadCache::apply`]); every change set
//!   of a cached namespace passes through it, in order.
//! - A key only enters the cache from a Redis answer read at exactly the
//!   namespace revision the cached namespace is at (`applied`). A Redis
//!   answer from before a change set the projector has since applied, or
//!   from after one it has not applied yet (another replica ahead), is
//!   served but not kept.
//! - A namespace only enters the cache from a Redis answer if no change set
//!   of a namespace name in the same bucket reached the cache (and no entry
//!   of one left it) since the lookup: every change set of the namespace the
//!   cache has seen was then in Redis before the read, and every later one
//!   reaches the new entry (one Redis already holds is skipped by revision).
//!
//! - It is emptied when a run of the projector starts past what it has seen
//!   (the shared watermark, raised by another replica) or replays what a
//!   Redis failover lost, and takes no new namespace until the replay is
//!   done.
//!
//! Memory is bounded by `capacity` bytes (an estimate of the keys, values
//! and entries held): the least recently read namespaces leave first.
//! Point-in-time reads, listings, history and rebuilds stay on Redis.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Mutex, MutexGuard},
};

use lru::LruCache;
use veltrix_domain::{ChangeSetCommitted, Origin, Revision};
use veltrix_proto::{convert::read::key_value_after, v1::KeyValue};
use veltrix_redis::Generation;

use crate::metric;

/// Buckets of namespace names whose last unseen change the cache tracks.
const BUCKETS: usize = 1024;
/// Bytes counted for each cached key besides its strings (map slot,
/// `KeyValue` fields, allocator headers).
const KEY_OVERHEAD: usize = 160;
/// Bytes counted for each cached namespace besides its name.
const SPACE_OVERHEAD: usize = 128;

/// The answer of a lookup.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The key as of `revision` (`None`: not there).
    Hit { kv: Option<KeyValue>, revision: Revision },
    /// Not cached: read Redis, then [`ReadCache::fill`] with this ticket.
    Miss(Ticket),
}

/// What a miss saw, for deciding whether Redis's answer may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: Generation,
    epoch: u64,
}

pub struct ReadCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

struct Inner {
    /// The generation the projector applies; reads of another miss.
    generation: Option<Generation>,
    spaces: LruCache<String, Space>,
    bytes: usize,
    /// Raised whenever a namespace without an entry changes or an entry
    /// leaves; `touched` holds, per bucket of names, when it last did.
    epoch: u64,
    touched: Vec<u64>,
    hasher: RandomState,
    /// Every change set of the generation up to here has been applied
    /// (since the cache was last emptied).
    seen: Revision,
    /// Replaying what a failover lost: nothing enters.
    paused: bool,
}

/// Cached keys of a namespace; `None`: the key does not exist.
type Keys = HashMap<String, Option<KeyValue>>;

struct Space {
    /// The namespace's revision these keys are as of.
    applied: Revision,
    keys: Keys,
    bytes: usize,
}

fn key_bytes(key: &str, kv: Option<&KeyValue>) -> usize {
    let kv = kv.map_or(0, |kv| {
        kv.key
            .len()
            .saturating_add(kv.value.len())
            .saturating_add(kv.content_type.len())
            .saturating_add(kv.updated_by.len())
    });
    key.len().saturating_add(kv).saturating_add(KEY_OVERHEAD)
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl ReadCache {
    /// A cache of at most `capacity` bytes; `None` for 0 (disabled).
    pub fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            capacity,
            // Handles taken once: a hit costs no registry lookup.
            hits: metrics::counter!(metric::READ_CACHE_LOOKUPS, "result" => "hit"),
            misses: metrics::counter!(metric::READ_CACHE_LOOKUPS, "result" => "miss"),
            inner: Mutex::new(Inner {
                generation: None,
                spaces: LruCache::unbounded(),
                bytes: 0,
                epoch: 0,
                touched: vec![0; BUCKETS],
                hasher: RandomState::new(),
                seen: Revision::ZERO,
                paused: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The cache holds no invariant a panic elsewhere could break half-way
        // that a reader could not live with: every mutation completes.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A run of the projector begins on `generation`, reading the stream
    /// from `from` (everything up to it is in Redis). The cache is emptied
    /// when it belongs to another generation, when it has not seen every
    /// change set up to `from` (another replica raised the shared
    /// watermark past this one's own position), and when the run replays
    /// what a Redis failover lost (`replaying`: entries may have been made
    /// from what Redis still held; until [`ReadCache::replayed`] none are
    /// made, Redis holding newer revisions than some of its keys).
    pub fn start(&self, generation: Generation, from: Revision, replaying: bool) {
        let mut inner = self.lock();
        if inner.generation != Some(generation) || from > inner.seen || replaying {
            inner.generation = Some(generation);
            inner.spaces.clear();
            inner.bytes = 0;
            inner.epoch = inner.epoch.saturating_add(1);
            let epoch = inner.epoch;
            inner.touched.fill(epoch);
            inner.seen = from;
            metrics::gauge!(metric::READ_CACHE_BYTES).set(0.0);
        }
        inner.paused = replaying;
    }

    /// The replay [`ReadCache::start`] was told of is done: Redis holds
    /// the fold again, and namespaces may enter the cache.
    pub fn replayed(&self) {
        self.lock().paused = false;
    }

    /// The key's current value, if cached for `generation`; `watermark` is
    /// the read watermark, read before this call.
    pub fn lookup(&self, generation: Generation, namespace: &str, key: &str, watermark: Revision) -> Lookup {
        let mut inner = self.lock();
        let ticket = Ticket { generation, epoch: inner.epoch };
        if inner.generation == Some(generation)
            && let Some(space) = inner.spaces.get(namespace)
            && let Some(kv) = space.keys.get(key)
        {
            let revision = watermark.max(space.applied);
            let kv = kv.clone();
            drop(inner);
            self.hits.increment(1);
            return Lookup::Hit { kv, revision };
        }
        drop(inner);
        self.misses.increment(1);
        Lookup::Miss(ticket)
    }

    /// Redis's answer to a missed lookup: the key (`kv`) and the
    /// namespace's revision it was read at. Kept only when coherent (see
    /// the module's documentation).
    pub fn fill(&self, ticket: Ticket, namespace: &str, key: &str, kv: Option<&KeyValue>, at: Revision) {
        let mut inner = self.lock();
        if inner.generation != Some(ticket.generation) || inner.paused {
            return;
        }
        let added = key_bytes(key, kv);
        let grown = match inner.spaces.get_mut(namespace) {
            Some(space) => {
                if space.applied != at || space.keys.contains_key(key) {
                    return;
                }
                space.keys.insert(key.to_owned(), kv.cloned());
                space.bytes = space.bytes.saturating_add(added);
                added
            }
            None => {
                let bucket = inner.bucket(namespace);
                if inner.touched.get(bucket).is_none_or(|t| *t > ticket.epoch) {
                    return;
                }
                let bytes = added.saturating_add(namespace.len()).saturating_add(SPACE_OVERHEAD);
                let keys = HashMap::from([(key.to_owned(), kv.cloned())]);
                inner.spaces.push(namespace.to_owned(), Space { applied: at, keys, bytes });
                bytes
            }
        };
        inner.bytes = inner.bytes.saturating_add(grown);
        let left = inner.evict(self.capacity);
        drop(inner);
        drop(left);
    }

    /// A batch the projector applied to `generation` in Redis, in order;
    /// called before the watermark moves past it.
    pub fn apply(&self, generation: Generation, batch: &[(Revision, &ChangeSetCommitted)]) {
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            return;
        }
        for (revision, event) in batch {
            inner.apply_one(*revision, event);
            inner.seen = inner.seen.max(*revision);
        }
        let left = inner.evict(self.capacity);
        drop(inner);
        drop(left);
    }

    /// Bytes held (an estimate).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Namespaces held.
    pub fn namespaces(&self) -> usize {
        self.lock().spaces.len()
    }
}

impl Inner {
    fn bucket(&self, namespace: &str) -> usize {
        // Reduced modulo a small constant: fits any usize.
        (self.hasher.hash_one(namespace) % BUCKETS as u64) as usize
    }

    /// Whatever happens to a namespace without an entry from now on, an
    /// older miss may no longer create one for it.
    fn touch(&mut self, namespace: &str) {
        self.epoch = self.epoch.saturating_add(1);
        let (bucket, epoch) = (self.bucket(namespace), self.epoch);
        if let Some(t) = self.touched.get_mut(bucket) {
            *t = epoch;
        }
    }

    fn apply_one(&mut self, revision: Revision, event: &ChangeSetCommitted) {
        let name = event.namespace.as_str();
        if event.origin == Origin::NamespaceDelete {
            if let Some(space) = self.spaces.pop(name) {
                self.bytes = self.bytes.saturating_sub(space.bytes);
            }
            self.touch(name);
            return;
        }
        let Some(space) = self.spaces.peek_mut(name) else {
            self.touch(name);
            return;
        };
        // Already applied (a restart or a replay reads some change sets again).
        if revision <= space.applied {
            return;
        }
        space.applied = revision;
        let mut bytes = space.bytes;
        for change in &event.changes {
            if let Some(slot) = space.keys.get_mut(change.key.as_str()) {
                let after = key_value_after(revision, event, change);
                bytes = bytes.saturating_sub(key_bytes(change.key.as_str(), slot.as_ref()));
                bytes = bytes.saturating_add(key_bytes(change.key.as_str(), after.as_ref()));
                *slot = after;
            }
        }
        self.bytes = self.bytes.saturating_sub(space.bytes).saturating_add(bytes);
        space.bytes = bytes;
    }

    /// Namespaces leave, least recently read first, until the cache fits;
    /// one namespace larger than the whole cache keeps its entry (its
    /// revision) and drops its keys, which fill again as they are read.
    /// Answers what left, for the caller to free once the lock is released
    /// (freeing a large namespace takes a while; readers need not wait).
    #[must_use]
    fn evict(&mut self, capacity: usize) -> Vec<Keys> {
        let mut left = Vec::new();
        while self.bytes > capacity {
            if self.spaces.len() <= 1 {
                self.bytes = 0;
                if let Some((name, mut space)) = self.spaces.pop_lru() {
                    left.push(std::mem::take(&mut space.keys));
                    space.bytes = name.len().saturating_add(SPACE_OVERHEAD);
                    if space.bytes <= capacity {
                        self.bytes = space.bytes;
                        self.spaces.push(name, space);
                    } else {
                        self.touch(&name);
                    }
                }
                break;
            }
            let Some((name, space)) = self.spaces.pop_lru() else { break };
            self.bytes = self.bytes.saturating_sub(space.bytes);
            self.touch(&name);
            left.push(space.keys);
        }
        metrics::gauge!(metric::READ_CACHE_BYTES).set(self.bytes as f64);
        left
    }
}
