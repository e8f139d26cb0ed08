//! The projector: consumes the event stream in order and applies each change
//! set to the Redis read model.
//!
//! Its position is the generation's watermark in Redis (applies are
//! idempotent, so restarting from an older position is harmless). It reads
//! with an ephemeral consumer that NATS removes when this process is gone,
//! and recreates it from its own position after any error or gap. It watches
//! the model: a flushed Redis or a newly activated generation restarts it on
//! the right generation.

pub mod rebuild;

use std::{collections::HashMap, sync::Arc, time::Duration};

use veltrix_domain::{EventFeed, FeedError, FeedItem, FeedReader, Revision, next_batch};
use veltrix_proto::convert::read::change_record;
use veltrix_redis::{ApplyOptions, Generation, ReadModel};
use veltrix_server::{CancellationToken, Health};
use veltrix_telemetry::traces_enabled;

use crate::{
    state::ReadState,
    watch::hub::{Hub, HubEvent},
};

/// Health service name that reports the projection itself.
pub const PROJECTION_HEALTH: &str = "veltrix.config.v1.ConfigQuery.projection";
/// Raise the watermark in Redis at least this often (in events).
const RAISE_EVERY: u64 = 256;
/// Most change sets applied in one Redis round trip (projection and rebuild).
pub const BATCH: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const HALT_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("redis: {0}")]
    Redis(#[from] veltrix_redis::Error),
    #[error(transparent)]
    Read(#[from] FeedError),
    #[error("shutting down")]
    Shutdown,
}

enum Outcome {
    Shutdown,
    Restart,
    /// A failover lost change sets the projector had applied: read the
    /// stream again from `Memory::replay` (quietly up to where it was).
    Replay,
}

/// What the projector remembers across its runs on one generation: the
/// latest revision it applied to each namespace, and who the masters were
/// when it last looked, to find what a failover lost.
#[derive(Default)]
struct Memory {
    generation: Option<Generation>,
    known: HashMap<String, Revision>,
    masters: Option<String>,
    /// Where a replay of what a failover lost starts; kept until a run has
    /// read the stream past where it was (an error in between loses it not).
    replay: Option<Revision>,
}

impl Memory {
    fn on(&mut self, generation: Generation) {
        if self.generation != Some(generation) {
            *self = Self { generation: Some(generation), ..Self::default() };
        }
    }
}

/// Where one run of the projection is.
struct Run {
    generation: Generation,
    applied: Revision,
    complete: bool,
    /// Moving to another generation: reads stay on the old one until this.
    switch_at: Option<Revision>,
    /// Events applied since the watermark was last raised in Redis.
    unraised: u64,
    /// Re-applying what a failover lost: up to here watchers and readers
    /// have seen it all already.
    quiet_until: Option<Revision>,
}

pub struct Projector<F> {
    pub feed: F,
    pub model: ReadModel,
    pub state: Arc<ReadState>,
    pub hub: Arc<Hub>,
    pub options: ApplyOptions,
    pub check_interval: Duration,
    pub health: Health,
}

impl<F: EventFeed> Projector<F> {
    /// Runs until `shutdown`, restarting after every error with a backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut waiting_for_stream = false;
        let mut memory = Memory::default();
        loop {
            let result = self.run_once(&mut memory, &shutdown).await;
            let pause = match result {
                Ok(Outcome::Shutdown) | Err(Stop::Shutdown) => return,
                Ok(Outcome::Restart) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(Outcome::Replay) => continue,
                Err(Stop::Read(FeedError::Undecodable { revision, message })) => {
                    self.state.stats.undecodable();
                    self.state.set_halted(true);
                    self.health.set_service(PROJECTION_HEALTH, false).await;
                    tracing::error!(
                        %revision,
                        error = %message,
                        "projection halted: an event cannot be decoded (a newer schema or a corrupt payload); \
                         reads answer as of the revision before it; upgrade the query service"
                    );
                    HALT_RETRY
                }
                // A start before the command service's: wait quietly, say so once.
                Err(Stop::Read(FeedError::NoStream(name))) => {
                    if !std::mem::replace(&mut waiting_for_stream, true) {
                        tracing::info!(stream = %name, "waiting for the event stream (the command service creates it)");
                    }
                    backoff.min(Duration::from_secs(1))
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "projection interrupted");
                    backoff
                }
            };
            self.state.stats.restart();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The generation to write: the active one, or a new one when there is
    /// none (a new Redis, or one that lost its data).
    async fn generation(&self) -> Result<Generation, Stop> {
        if let Some(g) = self.model.active_generation().await? {
            return Ok(g);
        }
        if self.state.generation().is_some() {
            self.state.stats.model_lost();
            tracing::warn!("the read model is gone from Redis; rebuilding it from the event stream");
        }
        let fresh = Generation::new();
        Ok(self.model.activate_if_none(fresh).await?)
    }

    async fn run_once(&self, memory: &mut Memory, shutdown: &CancellationToken) -> Result<Outcome, Stop> {
        let generation = self.generation().await?;
        memory.on(generation);
        let replay = memory.replay;
        let gs = self.model.generation_state(generation).await?;
        let (applied, complete) = (gs.applied, gs.complete);
        // Moving to another generation (a rebuild switched it): keep reading
        // the old one until the new one is at least as far.
        let switch_at = match self.state.generation() {
            None => None,
            Some(g) if g == generation => None,
            Some(_) => Some(self.state.watermark()),
        };
        if switch_at.is_none() || applied >= switch_at.unwrap_or_default() {
            self.state.set(generation, applied);
        }
        tracing::info!(%generation, %applied, complete, "projecting");

        let from = replay.map_or(applied, |r| r.min(applied));
        let quiet_until = (from < applied).then_some(applied);
        if let Some(cache) = &self.state.cache {
            cache.start(generation, from, replay.is_some());
        }
        let mut reader = self.feed.open(from).await?;
        let mut run = Run { generation, applied: from, complete, switch_at, unraised: 0, quiet_until };
        let outcome = self.project(&mut run, memory, &mut reader, shutdown).await;
        // Leave nothing behind in the store.
        reader.close().await;
        outcome
    }

    async fn project(
        &self,
        run: &mut Run,
        memory: &mut Memory,
        reader: &mut F::Reader,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Stop> {
        let (generation, switch_at) = (run.generation, run.switch_at);
        if !run.complete && run.applied >= reader.head() {
            if !self.model.mark_complete(generation).await? {
                return Ok(Outcome::Restart);
            }
            run.complete = true;
        }
        if switch_at.is_none() {
            self.state.set_complete(run.complete);
        }
        self.health.set_service(PROJECTION_HEALTH, true).await;
        self.state.set_halted(false);

        let mut check = tokio::time::interval(self.check_interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Outcome::Shutdown),
                _ = check.tick() => {
                    if self.model_moved(generation, run.complete).await? {
                        return Ok(Outcome::Restart);
                    }
                    if let Some(from) = self.find_lost(generation, memory).await? {
                        memory.replay = Some(memory.replay.map_or(from, |r| r.min(from)));
                        // Best effort: the replay is remembered either way.
                        if let Err(e) = self.keep(run).await {
                            tracing::warn!(error = %e, "could not store the watermark before the replay");
                        }
                        return Ok(Outcome::Replay);
                    }
                }
                // Whatever else has already arrived is in the same batch:
                // one Redis round trip for all of it.
                batch = next_batch(reader, BATCH) => {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(e) => {
                            self.keep(run).await?;
                            return Err(e.into());
                        }
                    };
                    // One span per event, in the trace of the call that made
                    // it, spanning its apply and its hand-off to watchers.
                    let spans: Vec<_> = if traces_enabled() { batch.iter().map(apply_span).collect() } else { Vec::new() };
                    let befores = self.apply(run, &batch, shutdown).await?;
                    if let Some(from) = self.behind(run, memory, &batch, &befores) {
                        memory.replay = Some(memory.replay.map_or(from, |r| r.min(from)));
                        return Ok(Outcome::Replay);
                    }
                    remember(memory, &batch);
                    if !self.raise(run, &batch).await? {
                        return Ok(Outcome::Restart);
                    }
                    self.publish(run, &batch);
                    if run.quiet_until.is_some_and(|until| run.applied >= until) {
                        memory.replay = None;
                    }
                    // Past what was lost (or at the head): Redis holds the fold again.
                    let caught_up = batch.last().is_some_and(|item| item.pending == 0);
                    if let Some(cache) = self.state.cache.as_ref().filter(|_| caught_up || memory.replay.is_none()) {
                        cache.replayed();
                    }
                    drop(spans);
                }
            }
        }
    }

    /// Applies a batch to Redis (retrying until it is applied or shutdown).
    /// Answers, per change set, its namespace's revision in Redis before it.
    async fn apply(
        &self,
        run: &mut Run,
        batch: &[FeedItem],
        shutdown: &CancellationToken,
    ) -> Result<Vec<Revision>, Stop> {
        let events: Vec<_> = batch.iter().map(|n| (n.stored.revision, &n.stored.event)).collect();
        let befores = self.apply_with_retry(run.generation, &events, shutdown).await?;
        let Some(FeedItem { stored: last, pending }) = batch.last() else { return Ok(befores) };
        run.applied = last.revision;
        run.unraised += batch.len() as u64;
        let age = std::time::SystemTime::now().duration_since(last.event.time).unwrap_or_default();
        self.state.stats.lag(*pending, if *pending == 0 { 0.0 } else { age.as_secs_f64() });
        self.state.stats.applied(batch.len() as u64);
        Ok(befores)
    }

    /// Raises the watermark in Redis when caught up or every
    /// [`RAISE_EVERY`] events, and marks the model complete once caught up;
    /// `false` when the generation is gone (flushed or switched).
    async fn raise(&self, run: &mut Run, batch: &[FeedItem]) -> Result<bool, Stop> {
        let caught_up = batch.last().is_some_and(|item| item.pending == 0);
        if !caught_up && run.unraised < RAISE_EVERY {
            return Ok(true);
        }
        if !self.model.raise_applied(run.generation, run.applied).await? {
            return Ok(false);
        }
        run.unraised = 0;
        if !run.complete && caught_up {
            if !self.model.mark_complete(run.generation).await? {
                return Ok(false);
            }
            run.complete = true;
            tracing::info!(generation = %run.generation, applied = %run.applied, "read model complete");
        }
        Ok(true)
    }

    /// Updates the read cache, hands the batch to watchers, then moves the
    /// read watermark. Watchers
    /// get a change set after it is applied and before the watermark moves,
    /// so a watcher's progress after draining its channel covers everything
    /// up to the watermark.
    fn publish(&self, run: &Run, batch: &[FeedItem]) {
        // Before the watermark moves: a Get that sees it finds the cache as far.
        if let Some(cache) = &self.state.cache {
            let events: Vec<_> = batch.iter().map(|i| (i.stored.revision, &i.stored.event)).collect();
            cache.apply(run.generation, &events);
        }
        // A namespace's rollout changed: readers read it again (from here on
        // they find it applied).
        for FeedItem { stored, .. } in batch.iter().filter(|i| i.stored.event.rollout.is_some()) {
            self.state.rollouts.drop_namespace(&stored.event.namespace);
        }
        if run.switch_at.is_some_and(|at| run.applied < at) {
            return;
        }
        let seen = run.quiet_until.unwrap_or(Revision::ZERO);
        for FeedItem { stored, .. } in batch.iter().filter(|i| i.stored.revision > seen) {
            let (revision, event) = (stored.revision, &stored.event);
            self.hub.publish(&event.namespace, || HubEvent {
                revision,
                record: change_record(revision, event),
                committed_at: event.time,
            });
        }
        if run.quiet_until.is_some_and(|until| run.applied < until) {
            return;
        }
        // Published last: a reader woken by it finds the model applied and,
        // once caught up, marked complete.
        self.state.set(run.generation, run.applied);
        self.state.set_complete(run.complete);
    }

    /// What is applied stays applied: before a restart the watermark is
    /// raised to it, so the restart resumes after it and never goes back.
    async fn keep(&self, run: &Run) -> Result<(), Stop> {
        if run.unraised > 0 && run.switch_at.is_none() {
            self.model.raise_applied(run.generation, run.applied).await?;
        }
        Ok(())
    }

    async fn apply_with_retry(
        &self,
        generation: Generation,
        events: &[(Revision, &veltrix_domain::ChangeSetCommitted)],
        shutdown: &CancellationToken,
    ) -> Result<Vec<Revision>, Stop> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.model.apply_batch(generation, events, self.options).await {
                Ok(befores) => return Ok(befores),
                Err(e) => {
                    self.state.stats.redis_retry();
                    tracing::warn!(error = %e, events = events.len(), retry_in = ?backoff, "applying to Redis failed; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return Err(Stop::Shutdown),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// After the masters changed (a failover), compares each namespace's
    /// applied revision in its own slot with what this projector applied
    /// there; answers where to read the stream again from when a
    /// namespace lost change sets.
    async fn find_lost(&self, generation: Generation, memory: &mut Memory) -> Result<Option<Revision>, Stop> {
        let masters = self.model.masters_fingerprint().await?;
        let Some(before) = memory.masters.as_ref() else {
            memory.masters = Some(masters);
            return Ok(None);
        };
        if *before == masters {
            return Ok(None);
        }
        let names: Vec<&str> = memory.known.keys().map(String::as_str).collect();
        // The namespace index is in a slot of its own: what its master lost
        // is put back (the namespaces' own slots are checked below).
        self.model.reindex(generation, &names).await?;
        let stored = self.model.namespace_revisions(generation, &names).await?;
        let mut from: Option<Revision> = None;
        let mut lost = 0u64;
        for (name, stored) in names.iter().zip(stored) {
            if memory.known.get(*name).is_some_and(|known| stored < *known) {
                lost += 1;
                from = Some(from.map_or(stored, |f| f.min(stored)));
            }
        }
        // Looked at once the check succeeded: a failover seen half-way
        // (a master gone, its replica not yet promoted) is looked at again.
        memory.masters = Some(masters);
        if let Some(from) = from {
            self.state.stats.lost_namespaces(lost);
            tracing::warn!(
                namespaces = lost,
                from = %from,
                "a Redis failover lost change sets the read model had applied; projecting them again from the stream"
            );
        } else {
            tracing::info!(
                namespaces = names.len(),
                "the Redis masters changed; every namespace holds what was applied"
            );
        }
        Ok(from)
    }

    /// A namespace whose revision in Redis, right before this batch's first
    /// change set of it, is below the revision this projector applied there:
    /// it lost change sets (a failover), whatever came after. Answers where
    /// to read the stream again from. Not asked while replaying.
    fn behind(&self, run: &Run, memory: &Memory, batch: &[FeedItem], befores: &[Revision]) -> Option<Revision> {
        let first = batch.first()?.stored.revision;
        if run.quiet_until.is_some_and(|until| first <= until) {
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        let mut from: Option<Revision> = None;
        let mut lost = 0u64;
        for (item, before) in batch.iter().zip(befores) {
            let ns = item.stored.event.namespace.as_str();
            if !seen.insert(ns) {
                continue;
            }
            if memory.known.get(ns).is_some_and(|known| before < known) {
                lost += 1;
                from = Some(from.map_or(*before, |f| f.min(*before)));
            }
        }
        let from = from?;
        self.state.stats.lost_namespaces(lost);
        tracing::warn!(
            namespaces = lost,
            from = %from,
            "Redis lost change sets the read model had applied (a failover); projecting them again from the stream"
        );
        Some(from)
    }

    /// Whether the model changed under us: another generation is active, or
    /// the complete marker we saw is gone (Redis lost its data).
    async fn model_moved(&self, generation: Generation, complete: bool) -> Result<bool, Stop> {
        let active = self.model.active_generation().await?;
        if active != Some(generation) {
            tracing::info!(from = %generation, to = ?active, "the active generation changed");
            return Ok(true);
        }
        if complete && !self.model.generation_state(generation).await?.complete {
            self.state.stats.model_lost();
            tracing::warn!(%generation, "the read model lost its data; rebuilding from the event stream");
            return Ok(true);
        }
        Ok(false)
    }
}

/// The latest revision applied to each namespace of a batch.
fn remember(memory: &mut Memory, batch: &[FeedItem]) {
    for FeedItem { stored, .. } in batch {
        let known = memory.known.entry(stored.event.namespace.as_str().to_owned()).or_default();
        *known = (*known).max(stored.revision);
    }
}

/// The span of one event's projection, child of the call that made it.
fn apply_span(next: &FeedItem) -> tracing::Span {
    let (revision, event) = (next.stored.revision, &next.stored.event);
    let span = tracing::info_span!(
        "projection.apply",
        otel.kind = "consumer",
        namespace = event.namespace.as_str(),
        revision = revision.get(),
    );
    veltrix_telemetry::set_parent(&span, Some(&event.trace.traceparent), Some(&event.trace.tracestate));
    span
}
