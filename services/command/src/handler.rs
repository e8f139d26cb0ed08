//! The command handler: per namespace, decide against the cached state and
//! append under the event store's expected-revision check; on a conflict,
//! catch up and decide again.
//!
//! Writes to one namespace are serialized in this process by a per-namespace
//! lock (so they do not conflict with each other); writers in other processes
//! are serialized by the store's check. The lock is an optimisation, the
//! store's check is what makes it correct.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    metric,
    snapshots::{SnapshotPolicy, Snapshots, event_bytes},
};
use tokio::time::{Instant, timeout_at};
use veltrix_domain::{
    Appended, ChangeSetCommand, Decision, EventStore, Namespace, NamespaceState, Rejection, Revision, StoreError,
    ValidationError, decide,
};

/// Decide-append rounds before giving up on a namespace with heavy
/// contention (the call's deadline bounds them too).
const MAX_ATTEMPTS: u32 = 32;
/// Longest pause between two rounds; the pause is random so that writers in
/// different processes stop colliding.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

type Slot = Arc<tokio::sync::Mutex<Option<NamespaceState>>>;
/// A load of a namespace's state from the stream, shared by every call that
/// waits for it; it runs to its end whether they wait or not.
type Load = futures::future::Shared<futures::future::BoxFuture<'static, Result<(), Arc<StoreError>>>>;

/// Every way a command call can fail; `status.rs` maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Refused before the command is looked at (who calls, limits).
    #[error(transparent)]
    Access(#[from] veltrix_access::AccessError),
    #[error(transparent)]
    NotReady(#[from] veltrix_server::NotReady),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the event store did not answer within the call's deadline; the outcome is unknown, retry with the same request_id"
    )]
    Timeout,
    /// An administrative change that cannot be planned (a schema current
    /// values break, a schema or namespace that does not exist).
    #[error(transparent)]
    Plan(#[from] veltrix_domain::plan::PlanRefusal),
    /// A whole-namespace rollback that would change schemas, by a caller
    /// without the admin role.
    #[error(
        "this rollback would change the schemas of namespace '{0}', which needs the admin role; roll back by prefix to keep them"
    )]
    SchemasNeedAdmin(Namespace),
    #[error("too many concurrent writers on namespace '{0}'; retry")]
    Contention(Namespace),
    /// A computed change set (a rollback) larger than one change set may be.
    #[error(
        "the change set would hold {changes} changes, more than the {max} allowed; narrow it with a prefix, or delete the keys in smaller change sets first"
    )]
    TooLarge { changes: usize, max: usize },
}

pub struct CommandHandler<S> {
    store: Arc<S>,
    /// When to write namespace snapshots.
    snapshots: Arc<Snapshots>,
    /// Loads in progress, by namespace.
    loads: Arc<Mutex<HashMap<Namespace, Load>>>,
    /// What a command may hold, fitted to the store's message limit.
    limits: veltrix_domain::Limits,
    namespaces: Mutex<HashMap<Namespace, Slot>>,
    idempotency_window: Duration,
    /// Most namespace states kept; beyond it idle ones are forgotten (and
    /// loaded from the stream again when next written).
    max_cached: usize,
}

impl<S: EventStore> CommandHandler<S> {
    pub fn new(store: S, idempotency_window: Duration, max_cached: usize) -> Self {
        Self {
            store: Arc::new(store),
            snapshots: Arc::new(Snapshots::new(SnapshotPolicy::default())),
            loads: Arc::default(),
            limits: veltrix_domain::Limits::default(),
            namespaces: Mutex::new(HashMap::new()),
            idempotency_window,
            max_cached: max_cached.max(1),
        }
    }

    /// The handler writing snapshots by this policy.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = Arc::new(Snapshots::new(policy));
        self
    }

    /// The handler with these limits (the store's message limit known).
    pub fn with_limits(mut self, limits: veltrix_domain::Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> veltrix_domain::Limits {
        self.limits
    }

    /// Namespace states held now.
    pub fn cached(&self) -> usize {
        self.namespaces.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs a command to completion or until `deadline`; answers the revision
    /// of its change set.
    pub async fn execute(&self, cmd: &ChangeSetCommand, deadline: Instant) -> Result<Revision, CommandError> {
        self.execute_with(cmd.namespace(), deadline, |state| decide(state, cmd)).await
    }

    /// Runs the command that `decide` makes of the namespace's latest state
    /// (decided again after every conflict) to completion or `deadline`.
    pub(crate) async fn execute_with(
        &self,
        namespace: &Namespace,
        deadline: Instant,
        decide: impl Fn(&NamespaceState) -> Result<Decision, Rejection>,
    ) -> Result<Revision, CommandError> {
        let slot = self.slot(namespace);
        self.loaded(namespace, &slot, deadline).await?;
        let mut state = timeout_at(deadline, slot.lock()).await.map_err(|_| CommandError::Timeout)?;
        // Out of time, the state stays: an append that may still land is
        // found by the next command, whose append the stream then refuses
        // (expected revision), so it catches up and decides again.
        timeout_at(deadline, self.execute_locked(&mut state, namespace, decide))
            .await
            .unwrap_or(Err(CommandError::Timeout))
    }

    /// Decides a command against the namespace's latest state and appends
    /// nothing: what a dry run answers.
    pub async fn check(&self, cmd: &ChangeSetCommand, deadline: Instant) -> Result<(), CommandError> {
        self.with_latest(cmd.namespace(), deadline, |state| decide(state, cmd).map(|_| ()).map_err(Into::into)).await
    }

    /// The answer of a request committed before (or `RequestIdReused`),
    /// from the namespace's latest state; `None` when the request id is
    /// empty or unknown.
    pub async fn answered(
        &self,
        namespace: &Namespace,
        request_id: &veltrix_domain::RequestId,
        digest: &[u8],
        deadline: Instant,
    ) -> Result<Option<Result<Revision, Rejection>>, CommandError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        self.with_latest(namespace, deadline, |state| Ok(state.answered(request_id, digest))).await
    }

    /// Runs `f` on the namespace's state caught up with the stream, under
    /// the namespace's lock.
    pub(crate) async fn with_latest<T>(
        &self,
        namespace: &Namespace,
        deadline: Instant,
        f: impl FnOnce(&NamespaceState) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let slot = self.slot(namespace);
        self.loaded(namespace, &slot, deadline).await?;
        let mut guard = timeout_at(deadline, slot.lock()).await.map_err(|_| CommandError::Timeout)?;
        let caught_up = async {
            match guard.as_mut() {
                // Folding starts once the read is complete: out of time, the
                // state is as it was.
                Some(state) => self.catch_up(namespace, state).await,
                None => {
                    *guard = Some(self.load(namespace).await?);
                    Ok(())
                }
            }
        };
        timeout_at(deadline, caught_up).await.map_err(|_| CommandError::Timeout)??;
        match guard.as_ref() {
            Some(state) => f(state),
            None => Err(CommandError::Timeout),
        }
    }

    async fn execute_locked(
        &self,
        slot: &mut Option<NamespaceState>,
        namespace: &Namespace,
        decide: impl Fn(&NamespaceState) -> Result<Decision, Rejection>,
    ) -> Result<Revision, CommandError> {
        // Whether the state has been caught up with the store in this call:
        // a rejection decided on a cached state that another process has
        // moved past (another replica's write, the rollout controller's
        // transition) is decided again on the caught-up state first.
        let mut fresh = false;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                metrics::counter!(metric::RETRIES).increment(1);
                tokio::time::sleep(backoff(attempt)).await;
            }
            let state = match slot {
                Some(state) => state,
                None => {
                    fresh = true;
                    slot.insert(self.load(namespace).await?)
                }
            };
            let decided = match decide(state) {
                Err(_) if !fresh => {
                    if let Err(e) = self.catch_up(namespace, state).await {
                        *slot = None;
                        return Err(e);
                    }
                    decide(state)
                }
                decided => decided,
            };
            let event = match decided? {
                Decision::AlreadyApplied(revision) => return Ok(revision),
                Decision::Append(event) => event,
            };
            let started = std::time::Instant::now();
            let appended = self.store.append(state.revision(), &event).await;
            metrics::histogram!(metric::APPEND_DURATION).record(started.elapsed().as_secs_f64());
            match appended {
                Ok(Appended::Committed(revision)) => {
                    state.evolve(revision, &event);
                    self.snapshots.after_fold(&self.store, namespace, state, 1, event_bytes(&event));
                    return Ok(revision);
                }
                // Another writer, or an earlier attempt of this request, got
                // there first: learn what it wrote and decide again. A
                // duplicate is then answered from the request ids in the state.
                Ok(Appended::Duplicate(_)) | Err(StoreError::WrongLastRevision { .. }) => {
                    let counter = if appended.is_ok() { metric::APPEND_DUPLICATES } else { metric::APPEND_CONFLICTS };
                    metrics::counter!(counter).increment(1);
                    if let Err(e) = self.catch_up(namespace, state).await {
                        *slot = None;
                        return Err(e);
                    }
                    fresh = true;
                }
                Err(e) => {
                    metrics::counter!(metric::APPEND_ERRORS).increment(1);
                    *slot = None;
                    return Err(e.into());
                }
            }
        }
        Err(CommandError::Contention(namespace.clone()))
    }

    /// Waits until the namespace's state is in its slot, loading it in the
    /// background when it is not: a load that takes longer than the call's
    /// deadline goes on, and the next call waits for the same one (a big
    /// namespace becomes writable however short the deadlines).
    async fn loaded(&self, namespace: &Namespace, slot: &Slot, deadline: Instant) -> Result<(), CommandError> {
        if timeout_at(deadline, slot.lock()).await.map_err(|_| CommandError::Timeout)?.is_some() {
            return Ok(());
        }
        let load = self.load_in_background(namespace, slot);
        match timeout_at(deadline, load).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CommandError::Store(e.duplicate())),
            Err(_) => Err(CommandError::Timeout),
        }
    }

    /// The load of the namespace in progress, or a new one.
    fn load_in_background(&self, namespace: &Namespace, slot: &Slot) -> Load {
        use futures::FutureExt;
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(load) = loads.get(namespace) {
            return load.clone();
        }
        metrics::counter!(metric::NAMESPACE_LOADS).increment(1);
        let (store, ns, slot, window) = (self.store.clone(), namespace.clone(), slot.clone(), self.idempotency_window);
        let (running, snapshots) = (self.loads.clone(), self.snapshots.clone());
        let task = tokio::spawn(async move {
            let result = match load_state(store.as_ref(), &ns, window).await {
                Ok((state, events, bytes)) => {
                    snapshots.after_fold(&store, &ns, &state, events, bytes);
                    let mut guard = slot.lock().await;
                    if guard.is_none() {
                        *guard = Some(state);
                    }
                    Ok(())
                }
                Err(e) => Err(Arc::new(e)),
            };
            running.lock().unwrap_or_else(PoisonError::into_inner).remove(&ns);
            result
        });
        let load: Load = async move {
            task.await.unwrap_or_else(|e| {
                Err(Arc::new(StoreError::Unavailable {
                    message: format!("loading the namespace failed: {e}"),
                    source: None,
                }))
            })
        }
        .boxed()
        .shared();
        loads.insert(namespace.clone(), load.clone());
        load
    }

    async fn load(&self, namespace: &Namespace) -> Result<NamespaceState, CommandError> {
        let (state, events, bytes) = load_state(self.store.as_ref(), namespace, self.idempotency_window).await?;
        self.snapshots.after_fold(&self.store, namespace, &state, events, bytes);
        Ok(state)
    }

    /// Folds in every event of the namespace after the state's revision.
    async fn catch_up(&self, namespace: &Namespace, state: &mut NamespaceState) -> Result<(), CommandError> {
        let (mut events, mut bytes) = (0u64, 0u64);
        for stored in self.store.read(namespace, state.revision()).await? {
            events = events.saturating_add(1);
            bytes = bytes.saturating_add(event_bytes(&stored.event));
            state.evolve(stored.revision, &stored.event);
        }
        self.snapshots.after_fold(&self.store, namespace, state, events, bytes);
        Ok(())
    }

    fn slot(&self, namespace: &Namespace) -> Slot {
        let mut map = self.namespaces.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_cached && !map.contains_key(namespace) {
            // Forget idle states (no command holds them) down to 90% of the
            // limit, so that the scan is paid once per many insertions.
            // Forgetting is always safe: a state is reloaded from the stream.
            let target = self.max_cached - self.max_cached / 10 - 1;
            let mut excess = map.len().saturating_sub(target);
            map.retain(|_, slot| {
                if excess > 0 && Arc::strong_count(slot) == 1 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let slot = map.entry(namespace.clone()).or_default().clone();
        metrics::gauge!(metric::NAMESPACE_STATES).set(map.len() as f64);
        slot
    }
}

/// A namespace's state: from its latest snapshot the store trusts (if
/// any), then every event after it, folded one by one as they are read (a
/// long history is never held whole). Answers the state and how many events
/// and bytes were folded.
async fn load_state<S: EventStore>(
    store: &S,
    namespace: &Namespace,
    window: Duration,
) -> Result<(NamespaceState, u64, u64), StoreError> {
    let started = std::time::Instant::now();
    let snapshot = match store.snapshot(namespace).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(%namespace, error = %e, "could not read the namespace's snapshot; folding its history");
            None
        }
    };
    let from_snapshot = snapshot.as_ref().map(|s| s.revision);
    let mut state = snapshot.map_or_else(|| NamespaceState::new(window), |s| NamespaceState::restore(s, window));
    let (mut events, mut bytes) = (0u64, 0u64);
    store
        .read_each(namespace, state.revision(), |stored| {
            events = events.saturating_add(1);
            bytes = bytes.saturating_add(event_bytes(&stored.event));
            state.evolve(stored.revision, &stored.event);
        })
        .await?;
    metrics::histogram!(metric::NAMESPACE_LOAD_DURATION).record(started.elapsed().as_secs_f64());
    metrics::counter!(metric::NAMESPACE_LOAD_EVENTS).increment(events);
    tracing::debug!(
        %namespace,
        revision = %state.revision(),
        keys = state.len(),
        snapshot = ?from_snapshot,
        folded = events,
        "namespace state loaded"
    );
    Ok((state, events, bytes))
}

/// Full jitter: a random pause up to 0.25 ms × 2^attempt, capped.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_micros(250u64 << attempt.min(10)).min(MAX_BACKOFF);
    cap.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use veltrix_domain::{
        Actor, CommandMeta, Expectation, Key, KeyCommand, Limits, Operation, Reason, RequestId, TraceContext,
        memory::MemoryEventStore,
    };

    use super::*;

    fn cmd(key: &str, expected: Option<u64>, request_id: &str) -> ChangeSetCommand {
        cmd_in("ns", key, expected, request_id)
    }

    fn cmd_in(ns: &str, key: &str, expected: Option<u64>, request_id: &str) -> ChangeSetCommand {
        let change = KeyCommand {
            key: Key::parse(key).unwrap(),
            expected: Expectation::from_wire(expected),
            op: Operation::set(b"v".to_vec(), "", &Limits::default()).unwrap(),
        };
        let meta = CommandMeta {
            actor: Actor::anonymous(),
            reason: Reason::default(),
            request_id: RequestId::parse(request_id).unwrap(),
            trace: TraceContext::default(),
            time: SystemTime::now(),
        };
        ChangeSetCommand::new(Namespace::parse(ns).unwrap(), vec![change], meta, &Limits::default()).unwrap()
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn event_of(c: &ChangeSetCommand) -> veltrix_domain::ChangeSetCommitted {
        match decide(&NamespaceState::new(Duration::from_secs(60)), c) {
            Ok(Decision::Append(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn catches_up_with_another_writer_and_decides_again() {
        let h = CommandHandler::new(MemoryEventStore::new(), Duration::from_secs(3600), 1000);
        assert_eq!(h.execute(&cmd("a", None, ""), deadline()).await.unwrap(), 1);
        // Another process writes key b, unknown to this handler's cache.
        h.store().append(Revision::new(1), &event_of(&cmd("b", None, "other-1"))).await.unwrap();
        // An unconditional write still succeeds after catching up...
        assert_eq!(h.execute(&cmd("c", None, ""), deadline()).await.unwrap(), 3);
        // ...a conditional one sees the other writer's key...
        let err = h.execute(&cmd("b", Some(0), ""), deadline()).await.unwrap_err();
        assert!(matches!(err, CommandError::Rejected(Rejection::Conflict { current, .. }) if current == 2), "{err:?}");
        // ...and a retry of the other writer's request is answered, not appended.
        assert_eq!(h.execute(&cmd("b", None, "other-1"), deadline()).await.unwrap(), 2);
        assert_eq!(h.store().all().len(), 3);
    }

    #[tokio::test]
    async fn a_rejection_on_a_stale_cache_is_decided_again_on_the_stream() {
        let h = CommandHandler::new(MemoryEventStore::new(), Duration::from_secs(3600), 1000);
        assert_eq!(h.execute(&cmd("a", None, ""), deadline()).await.unwrap(), 1);
        // Another process sets `a` again: the cache still says revision 1.
        h.store().append(Revision::new(1), &event_of(&cmd("a", None, "other-1"))).await.unwrap();
        // A compare-and-set on the real revision succeeds...
        assert_eq!(h.execute(&cmd("a", Some(2), ""), deadline()).await.unwrap(), 3);
        // ...and one on a revision that is really gone is refused, naming
        // the real current one.
        let err = h.execute(&cmd("a", Some(2), ""), deadline()).await.unwrap_err();
        assert!(matches!(err, CommandError::Rejected(Rejection::Conflict { current, .. }) if current == 3), "{err:?}");
    }

    #[tokio::test]
    async fn forgets_idle_namespaces_beyond_the_limit_and_reloads_them() {
        let h = CommandHandler::new(MemoryEventStore::new(), Duration::from_secs(3600), 10);
        let mut revisions = Vec::new();
        for n in 0..50 {
            revisions.push(h.execute(&cmd_in(&format!("ns{n}"), "k", None, ""), deadline()).await.unwrap());
            assert!(h.cached() <= 10, "at most the limit: {}", h.cached());
        }
        // A forgotten namespace is loaded again: compare-and-set still sees its key.
        let err = h.execute(&cmd_in("ns0", "k", Some(0), ""), deadline()).await.unwrap_err();
        assert!(matches!(err, CommandError::Rejected(Rejection::Conflict { current, .. }) if current == revisions[0]));
        assert_eq!(h.execute(&cmd_in("ns0", "k", Some(revisions[0].get()), ""), deadline()).await.unwrap(), 51);
    }
}
