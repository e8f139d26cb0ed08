//! What the projector shares with the read path: which generation reads use,
//! how far it is applied, and the projection's health counters.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::{sync::watch, time::Instant};
use veltrix_domain::Revision;
use veltrix_redis::Generation;

use crate::metric;

/// The read side's view of the projection.
#[derive(Debug)]
pub struct ReadState {
    generation: AtomicU64,
    watermark: watch::Sender<Revision>,
    halted: AtomicBool,
    complete: watch::Sender<bool>,
    pub stats: ProjectionStats,
    /// Each namespace's rollout events (the projector drops what changes).
    pub rollouts: crate::rollout::cache::RolloutCache,
    /// Current keys of the namespaces read most (the projector keeps it
    /// coherent); `None` when turned off.
    pub cache: Option<crate::read::cache::ReadCache>,
}

/// Counters of the projection, kept here for tests and health, and exported
/// as Prometheus metrics.
#[derive(Debug, Default)]
pub struct ProjectionStats {
    pub applied_events: AtomicU64,
    pub undecodable_events: AtomicU64,
    pub redis_retries: AtomicU64,
    pub consumer_restarts: AtomicU64,
    pub model_losses: AtomicU64,
    /// Namespaces a Redis failover took applied change sets from.
    pub lost_namespaces: AtomicU64,
    /// Watch streams open now.
    pub watchers: AtomicU64,
    /// Watch streams ended because their client stopped reading.
    pub stalled_watchers: AtomicU64,
}

impl ProjectionStats {
    pub fn applied(&self, events: u64) {
        self.applied_events.fetch_add(events, Ordering::Relaxed);
        metrics::counter!(metric::APPLIED_EVENTS).increment(events);
    }

    pub fn undecodable(&self) {
        self.undecodable_events.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::UNDECODABLE_EVENTS).increment(1);
    }

    pub fn redis_retry(&self) {
        self.redis_retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::REDIS_RETRIES).increment(1);
    }

    pub fn restart(&self) {
        self.consumer_restarts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::RESTARTS).increment(1);
    }

    pub fn lost_namespaces(&self, n: u64) {
        self.lost_namespaces.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(metric::LOST_NAMESPACES).increment(n);
    }

    pub fn model_lost(&self) {
        self.model_losses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::MODEL_LOSSES).increment(1);
    }

    /// How far the projection is behind the stream: events not applied yet,
    /// and the age of the last applied event while some are pending.
    pub fn lag(&self, events: u64, seconds: f64) {
        metrics::gauge!(metric::LAG_EVENTS).set(events as f64);
        metrics::gauge!(metric::LAG_SECONDS).set(seconds);
    }
}

/// Help text and units of the query service's metrics; the counters start
/// at zero so that rates are defined before the first event.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    let counters = [
        (metric::APPLIED_EVENTS, "Events applied to the read model."),
        (metric::UNDECODABLE_EVENTS, "Events the projection could not decode (it halts)."),
        (metric::REDIS_RETRIES, "Applies to Redis retried after an error."),
        (metric::RESTARTS, "Projection restarts (new consumer) after errors, gaps or model changes."),
        (metric::MODEL_LOSSES, "Times the read model was found lost (flushed) and rebuilt."),
        (metric::EVENTS_DELIVERED, "Change sets delivered to watchers."),
        (metric::WATCH_LAGGED, "Watchers that fell behind the live ring and replayed from history."),
        (veltrix_redis::RECONNECTS, "Redis connection losses that made the client reconnect."),
        (
            metric::LOST_NAMESPACES,
            "Namespaces found missing applied change sets after a Redis failover (projected again).",
        ),
        (veltrix_redis::UNREPLICATED, "Projected batches no replica confirmed in time (WAIT fell short)."),
        (metric::LEDGER_WRITES, "Client entries written to the fleet ledger (coalesced reports)."),
        (metric::LEDGER_ERRORS, "Fleet ledger writes that failed (retried)."),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
        metrics::counter!(name).increment(0);
    }
    describe_counter!(metric::WATCH_ENDED, "Watch streams ended, by reason.");
    for reason in crate::watch::END_REASONS {
        metrics::counter!(metric::WATCH_ENDED, "reason" => reason).increment(0);
    }
    describe_counter!(
        metric::READ_CACHE_LOOKUPS,
        "Gets of current values looked up in the in-process read cache, by result (hit, miss)."
    );
    for result in ["hit", "miss"] {
        metrics::counter!(metric::READ_CACHE_LOOKUPS, "result" => result).increment(0);
    }
    describe_gauge!(metric::READ_CACHE_BYTES, Unit::Bytes, "Bytes the in-process read cache holds (an estimate).");
    describe_counter!(metric::REPORTS, "Client reports received, by kind (subscribe, ack, nack, status).");
    for kind in crate::fleet::REPORT_KINDS {
        metrics::counter!(metric::REPORTS, "kind" => kind).increment(0);
    }
    describe_gauge!(
        metric::CLIENTS,
        "Clients of the fleet ledger by namespace and state (each replica exports the whole ledger's view of the namespaces it serves: aggregate with max, not sum)."
    );
    describe_histogram!(metric::LEDGER_LAG, Unit::Seconds, "Receipt of a client report to its write to the ledger.");
    describe_gauge!(metric::APPLIED_REVISION, "Highest revision applied with everything before it.");
    describe_gauge!(metric::HALTED, "1 while the projection is halted on an undecodable event.");
    describe_gauge!(metric::LAG_EVENTS, "Events in the stream not applied yet.");
    describe_gauge!(
        metric::LAG_SECONDS,
        Unit::Seconds,
        "Age of the last applied event while events are pending; 0 when caught up."
    );
    describe_gauge!(metric::WATCHERS, "Watch streams open.");
    describe_gauge!(metric::ROLLOUTS, "Live rollouts seen by this replica's controller, by state (running, paused).");
    describe_counter!(
        metric::ROLLOUT_TRANSITIONS,
        "Rollout transitions this replica's controller appended, by kind and trigger (gate, timeout)."
    );
    describe_counter!(
        metric::ROLLOUT_DELIVERIES,
        "Rollout targets (kind=target) and base values after an abort (kind=base) sent to Sync clients."
    );
    for state in ["running", "paused"] {
        metrics::gauge!(metric::ROLLOUTS, "state" => state).increment(0.0);
    }
    for (kind, trigger) in [("advanced", "gate"), ("completed", "gate"), ("aborted", "gate"), ("paused", "timeout")] {
        metrics::counter!(metric::ROLLOUT_TRANSITIONS, "kind" => kind, "triggered_by" => trigger).increment(0);
    }
    for kind in ["target", "base"] {
        metrics::counter!(metric::ROLLOUT_DELIVERIES, "kind" => kind).increment(0);
    }
    // Gauges exist from the start too (a fresh replica's panels show 0).
    for gauge in [
        metric::WATCHERS,
        metric::READ_CACHE_BYTES,
        metric::APPLIED_REVISION,
        metric::HALTED,
        metric::LAG_EVENTS,
        metric::LAG_SECONDS,
    ] {
        metrics::gauge!(gauge).increment(0.0);
    }
    describe_histogram!(
        metric::DELIVERY_LATENCY,
        Unit::Seconds,
        "Commit (command service clock) to delivery of a live change to a watcher."
    );
}

impl ReadState {
    /// With a read cache of the default size.
    pub fn new() -> Arc<Self> {
        Self::with_read_cache(crate::config::DEFAULT_READ_CACHE_BYTES)
    }

    /// With a read cache of at most `bytes` (0: none).
    pub fn with_read_cache(bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            generation: AtomicU64::new(0),
            watermark: watch::Sender::new(Revision::ZERO),
            halted: AtomicBool::new(false),
            complete: watch::Sender::new(false),
            stats: ProjectionStats::default(),
            rollouts: Default::default(),
            cache: crate::read::cache::ReadCache::new(bytes),
        })
    }

    /// The generation reads use (none yet before the first).
    pub fn generation(&self) -> Option<Generation> {
        match self.generation.load(Ordering::Acquire) {
            0 => None,
            n => Some(Generation::from_u64(n)),
        }
    }

    /// Every change set up to this revision is applied in the read generation.
    pub fn watermark(&self) -> Revision {
        *self.watermark.borrow()
    }

    /// Points reads at `generation`, applied up to `watermark`. The
    /// generation is published first, so a reader that sees the new
    /// watermark reads the generation it belongs to.
    pub fn set(&self, generation: Generation, watermark: Revision) {
        self.generation.store(generation.get(), Ordering::Release);
        metrics::gauge!(metric::APPLIED_REVISION).set(watermark.get() as f64);
        self.watermark.send_if_modified(|w| {
            let changed = *w != watermark;
            *w = watermark;
            changed
        });
    }

    /// Waits until the watermark reaches `revision`; `false` if `deadline`
    /// passes first.
    pub async fn wait_for(&self, revision: Revision, deadline: Instant) -> bool {
        let mut rx = self.watermark.subscribe();
        tokio::time::timeout_at(deadline, rx.wait_for(|w| *w >= revision)).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether the read generation holds every event up to the stream's
    /// head as it was when its projection began.
    pub fn set_complete(&self, complete: bool) {
        self.complete.send_if_modified(|c| std::mem::replace(c, complete) != complete);
    }

    /// Waits until the read generation is complete.
    pub async fn wait_complete(&self) {
        let _ = self.complete.subscribe().wait_for(|c| *c).await;
    }

    /// The projection stopped at an event it cannot apply.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

    pub fn set_halted(&self, halted: bool) {
        self.halted.store(halted, Ordering::Release);
        metrics::gauge!(metric::HALTED).set(if halted { 1.0 } else { 0.0 });
    }
}
