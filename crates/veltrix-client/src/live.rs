//! [`LiveConfig`]: an in-memory copy of a namespace (or a prefix of it) kept
//! current by a watch stream. Reads are local; the copy can be saved to a
//! file after every change, so that a process that restarts while the
//! servers are unreachable starts with the last configuration it knew.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use crate::{Client, Entry, Error, Reporter, Result, Revision, SyncOptions, SyncStep, WatchEvent, WatchStart};

/// Where the current copy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// Nothing yet (no cache file, servers not reached).
    Empty,
    /// The cache file; not confirmed by the servers yet.
    Cache,
    /// The servers.
    Server,
}

/// One consistent state of the watched keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub namespace: String,
    pub prefix: String,
    /// Every change up to this revision is in `entries`.
    pub revision: Revision,
    pub entries: BTreeMap<String, Entry>,
    #[serde(skip, default = "empty")]
    pub source: Source,
}

fn empty() -> Source {
    Source::Cache
}

/// Decides whether a new copy may replace the current one: `Err` names why
/// not (the copy is NACKed at step CHECK and the previous one kept).
pub type Validator = Arc<dyn Fn(&Snapshot) -> std::result::Result<(), String> + Send + Sync>;

/// Options of a [`LiveConfig`].
#[derive(Clone, Default)]
pub struct LiveOptions {
    /// Only keys with this prefix.
    pub prefix: String,
    /// Save the copy here after every change, and start from it.
    pub cache_file: Option<PathBuf>,
    /// Follow through a Sync stream as this client (its prefix, start and
    /// applied revision are the copy's): every revision the copy takes is
    /// acknowledged to the fleet ledger. Without it: a plain watch.
    pub sync: Option<SyncOptions>,
    /// Checked before a new copy is taken (with `sync`, a rejected one is
    /// NACKed).
    pub validate: Option<Validator>,
}

impl std::fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOptions")
            .field("prefix", &self.prefix)
            .field("cache_file", &self.cache_file)
            .field("sync", &self.sync)
            .field("validate", &self.validate.as_ref().map(|_| "Fn"))
            .finish()
    }
}

struct Shared {
    state: RwLock<Arc<Snapshot>>,
    changed: watch::Sender<Revision>,
}

/// A live local copy of a namespace. Dropping it stops the watch.
pub struct LiveConfig {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for LiveConfig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LiveConfig {
    /// Starts the copy: from the cache file when there is a usable one, then
    /// kept current by a watch (resuming after the cached revision). Returns
    /// at once; see [`LiveConfig::wait_synced`].
    pub async fn start(client: &Client, namespace: &str, options: LiveOptions) -> Result<Self> {
        let cached = match &options.cache_file {
            Some(path) => load(path, namespace, &options.prefix).await,
            None => None,
        };
        let initial = cached.unwrap_or_else(|| Snapshot {
            namespace: namespace.to_owned(),
            prefix: options.prefix.clone(),
            revision: 0,
            entries: BTreeMap::new(),
            source: Source::Empty,
        });
        let start = match initial.source {
            Source::Cache => WatchStart::From(initial.revision.saturating_add(1)),
            _ => WatchStart::Snapshot,
        };
        let initial_revision = if initial.source == Source::Cache { initial.revision } else { 0 };
        let (changed, _) = watch::channel(initial.revision);
        let shared = Arc::new(Shared { state: RwLock::new(Arc::new(initial)), changed });
        let applied = initial_revision;
        let task = match options.sync {
            Some(sync) => {
                let sync = SyncOptions { prefix: options.prefix.clone(), start, applied, ..sync };
                let handle = client.sync(namespace, sync);
                let reporter = handle.reporter();
                tokio::spawn(follow(handle, shared.clone(), options.cache_file, options.validate, Some(reporter)))
            }
            None => {
                let stream = client.watch(namespace, &options.prefix, start);
                tokio::spawn(follow(stream, shared.clone(), options.cache_file, options.validate, None))
            }
        };
        Ok(Self { shared, task })
    }

    /// The current copy.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A key's value in the local copy.
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.snapshot().entries.get(key).cloned()
    }

    /// The revision the copy is current to.
    pub fn revision(&self) -> Revision {
        self.snapshot().revision
    }

    pub fn source(&self) -> Source {
        self.snapshot().source
    }

    /// A receiver that wakes on every change (its value is the revision).
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.shared.changed.subscribe()
    }

    /// Waits until the servers confirmed the copy (a snapshot, or the
    /// resumed stream after a cached copy).
    pub async fn wait_synced(&self, within: Duration) -> Result<()> {
        let mut rx = self.subscribe();
        let synced = async {
            while self.source() != Source::Server {
                if rx.changed().await.is_err() {
                    return Err(Error::Local("the live copy stopped".into()));
                }
            }
            Ok(())
        };
        tokio::time::timeout(within, synced)
            .await
            .map_err(|_| Error::Unavailable { message: format!("not synced with the servers within {within:?}") })?
    }
}

/// Applies the stream's events to the copy. `latest` follows the server
/// (including revisions the validator refused); the published copy is the
/// last accepted one.
async fn follow<S>(
    mut stream: S,
    shared: Arc<Shared>,
    cache_file: Option<PathBuf>,
    validate: Option<Validator>,
    reporter: Option<Reporter>,
) where
    S: futures::Stream<Item = Result<WatchEvent>> + Unpin,
{
    let mut latest = Snapshot::clone(&shared.state.read().unwrap_or_else(std::sync::PoisonError::into_inner));
    let mut refused = false;
    while let Some(first) = stream.next().await {
        let mut next = Some(first);
        let mut state = latest.clone();
        let published = shared.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let before = (published.revision, published.source);
        let mut changed = false;
        // Apply everything that has arrived, then publish once.
        while let Some(event) = next.take() {
            match event {
                Ok(WatchEvent::Snapshot { entries, revision }) => {
                    state.entries = entries.into_iter().map(|e| (e.key.clone(), e)).collect();
                    state.revision = revision;
                    changed = true;
                }
                Ok(WatchEvent::Changes(set)) => {
                    for c in set.changes {
                        match c.value {
                            Some(value) => {
                                let version = state.entries.get(&c.key).map_or(1, |e| e.version + 1);
                                let create = state.entries.get(&c.key).map_or(set.revision, |e| e.create_revision);
                                let entry = Entry {
                                    key: c.key.clone(),
                                    value,
                                    content_type: c.content_type,
                                    create_revision: create,
                                    mod_revision: set.revision,
                                    version,
                                    updated_at: set.time,
                                    updated_by: set.actor.clone(),
                                };
                                state.entries.insert(c.key, entry);
                            }
                            None => {
                                state.entries.remove(&c.key);
                            }
                        }
                    }
                    state.revision = state.revision.max(set.revision);
                    changed = true;
                }
                Ok(WatchEvent::Progress(revision)) => state.revision = state.revision.max(revision),
                Err(e) => {
                    tracing::error!(namespace = %state.namespace, error = %e, "live config stopped");
                    return;
                }
            }
            state.source = Source::Server;
            next = stream.next().now_or_never().flatten();
        }
        latest = state.clone();
        if !changed && refused {
            // Progress past a refused copy: the refused one is still latest.
            continue;
        }
        refused = false;
        if changed
            && let Some(validate) = &validate
            && let Err(why) = validate(&state)
        {
            refused = true;
            tracing::warn!(namespace = %state.namespace, revision = state.revision, error = %why, "live config refused a revision; keeping the previous copy");
            if let Some(reporter) = &reporter {
                reporter.nack(state.revision, published.revision, SyncStep::Check, &why);
            }
            continue;
        }
        if (state.revision, state.source) == before && !changed {
            continue;
        }
        if changed && let Some(reporter) = &reporter {
            reporter.ack(state.revision, "");
        }
        let state = Arc::new(state);
        *shared.state.write().unwrap_or_else(std::sync::PoisonError::into_inner) = state.clone();
        shared.changed.send_replace(state.revision);
        if changed
            && let Some(path) = &cache_file
            && let Err(e) = save(path, &state).await
        {
            tracing::warn!(path = %path.display(), error = %e, "could not save the live config cache");
        }
    }
}

async fn load(path: &Path, namespace: &str, prefix: &str) -> Option<Snapshot> {
    let bytes = tokio::fs::read(path).await.ok()?;
    match serde_json::from_slice::<Snapshot>(&bytes) {
        Ok(s) if s.namespace == namespace && s.prefix == prefix => Some(Snapshot { source: Source::Cache, ..s }),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the cache file holds another namespace or prefix; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable cache file; ignored");
            None
        }
    }
}

/// Writes the copy next to `path` and renames it over `path`, so that a
/// crash leaves the old file or the new one, never half of one.
async fn save(path: &Path, state: &Snapshot) -> std::io::Result<()> {
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, json).await?;
    tokio::fs::rename(&tmp, path).await
}
