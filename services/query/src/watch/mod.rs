//! Watch streams. Per call: subscribe to the namespace's hub channel FIRST,
//! then replay from the read model's history until it has nothing more, then
//! deliver live change sets, skipping what was already sent. A watcher that
//! lags behind the hub's ring goes back to replaying; one whose client stops
//! reading is ended with RESOURCE_EXHAUSTED; shutdown ends it with
//! UNAVAILABLE. Every end names the revision to resume from.

pub mod hub;

use std::{
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use futures::Stream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tonic::Status;
use tracing::Instrument;
use veltrix_access::WatcherPermit;
use veltrix_domain::{Namespace, Revision};
use veltrix_proto::v1::{ChangeRecord, Progress, Snapshot, WatchRequest, WatchResponse, watch_response::Event};
use veltrix_redis::{Generation, ReadModel};
use veltrix_server::CancellationToken;
use veltrix_telemetry::traces_enabled;

use crate::{
    grpc::QueryService,
    metric,
    read::{key_prefix, pages::page_as_of, positive},
    state::ReadState,
    status::{ReadError, to_status},
    watch::hub::{Hub, Subscription},
};

/// Tunables of watch streams (see `WatchArgs`).
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    pub progress_interval: Duration,
    pub stall_timeout: Duration,
    pub queue: usize,
    pub snapshot_chunk: usize,
}

/// What a validated Watch call asks for.
pub struct WatchSpec {
    pub namespace: Namespace,
    pub prefix: String,
    pub start_revision: Option<Revision>,
    pub include_snapshot: bool,
    /// A Sync stream: rollout transitions (records without key changes)
    /// come through, for the session to turn into what its client applies;
    /// a plain Watch skips them (the committed state does not change).
    pub rollouts: bool,
    /// A Sync client: its snapshot shows a live rollout's target when the
    /// client is in the cohort at the snapshot's revision.
    pub snapshot_view: Option<std::sync::Arc<crate::rollout::delivery::SnapshotView>>,
}

/// The response stream: queued messages, then the status the watcher ended
/// with (if any).
pub struct WatchStream {
    rx: mpsc::Receiver<WatchResponse>,
    end: Option<oneshot::Receiver<Status>>,
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(m)) => Poll::Ready(Some(Ok(m))),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => match self.end.as_mut().map(|end| Pin::new(end).poll(cx)) {
                None => Poll::Ready(None),
                Some(Poll::Pending) => Poll::Pending,
                Some(Poll::Ready(status)) => {
                    self.end = None;
                    Poll::Ready(status.ok().map(Err))
                }
            },
        }
    }
}

/// Why a watcher stopped: an error for the client, or the client is gone.
enum Stop {
    Error(ReadError),
    ClientGone,
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Self {
        Self::Error(e)
    }
}

impl From<veltrix_redis::Error> for Stop {
    fn from(e: veltrix_redis::Error) -> Self {
        Self::Error(ReadError::Model(e))
    }
}

/// Starts a watcher; the stream is returned at once, the replay runs in
/// the watcher's task.
pub fn start(
    spec: WatchSpec,
    model: ReadModel,
    state: Arc<ReadState>,
    hub: Arc<Hub>,
    settings: WatchSettings,
    shutdown: CancellationToken,
    permit: Option<WatcherPermit>,
) -> Result<WatchStream, ReadError> {
    let live = hub.subscribe(&spec.namespace)?;
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let (end_tx, end_rx) = oneshot::channel();
    let watcher = Watcher { spec, model, state, hub, settings, shutdown, tx, sent: Revision::ZERO, _permit: permit };
    tokio::spawn(watcher.run(live, end_tx));
    Ok(WatchStream { rx, end: Some(end_rx) })
}

struct Watcher {
    /// The caller's place among its open watch streams, freed when the
    /// watcher ends.
    _permit: Option<WatcherPermit>,
    spec: WatchSpec,
    model: ReadModel,
    state: Arc<ReadState>,
    hub: Arc<Hub>,
    settings: WatchSettings,
    shutdown: CancellationToken,
    tx: mpsc::Sender<WatchResponse>,
    /// Every matching change set up to this revision has been delivered.
    sent: Revision,
}

/// The `reason` label values of `veltrix_watch_ended_total`.
pub const END_REASONS: [&str; 4] = ["client_gone", "stalled", "unavailable", "error"];

impl Watcher {
    async fn run(mut self, mut live: Subscription, end: oneshot::Sender<Status>) {
        metrics::gauge!(metric::WATCHERS).increment(1.0);
        self.state.stats.watchers.fetch_add(1, Ordering::Relaxed);
        let reason = match self.serve(&mut live).await {
            Stop::ClientGone => "client_gone",
            Stop::Error(e) => {
                let status = to_status(e);
                let reason = match status.code() {
                    tonic::Code::ResourceExhausted => {
                        self.state.stats.stalled_watchers.fetch_add(1, Ordering::Relaxed);
                        "stalled"
                    }
                    tonic::Code::Unavailable => "unavailable",
                    _ => "error",
                };
                let _ = end.send(status);
                reason
            }
        };
        metrics::gauge!(metric::WATCHERS).decrement(1.0);
        self.state.stats.watchers.fetch_sub(1, Ordering::Relaxed);
        metrics::counter!(metric::WATCH_ENDED, "reason" => reason).increment(1);
    }

    async fn serve(&mut self, live: &mut Subscription) -> Stop {
        match self.serve_inner(live).await {
            Ok(never) => match never {},
            Err(stop) => stop,
        }
    }

    async fn serve_inner(&mut self, live: &mut Subscription) -> Result<std::convert::Infallible, Stop> {
        self.sent = match (self.spec.include_snapshot, self.spec.start_revision) {
            (true, start) => self.snapshot(start.map(|s| s - 1)).await?,
            (false, Some(start)) => start.max(Revision::new(1)) - 1,
            (false, None) => self.state.watermark(),
        };
        self.replay().await?;
        let mut idle = Box::pin(tokio::time::sleep(self.settings.progress_interval));
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    return Err(ReadError::ShuttingDown { resume_from: self.sent + 1 }.into());
                }
                () = self.tx.closed() => return Err(Stop::ClientGone),
                () = &mut idle => {
                    self.progress(live).await?;
                    idle.as_mut().reset(tokio::time::Instant::now() + self.settings.progress_interval);
                }
                next = live.recv() => {
                    match next {
                        Ok(event) => {
                            if self.deliver(&event.record, Some(event.committed_at)).await? {
                                idle.as_mut().reset(tokio::time::Instant::now() + self.settings.progress_interval);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                            metrics::counter!(metric::WATCH_LAGGED).increment(1);
                            *live = self.hub.subscribe(&self.spec.namespace).map_err(ReadError::from)?;
                            self.replay().await?;
                        }
                    }
                }
            }
        }
    }

    /// Sends the matching keys at `at` (or at the current revision); answers
    /// the snapshot's revision.
    async fn snapshot(&mut self, at: Option<Revision>) -> Result<Revision, Stop> {
        let ns = self.spec.namespace.clone();
        let prefix = self.spec.prefix.clone();
        if let Some(at) = at {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            if at > 0 && !self.state.wait_for(at, deadline).await {
                return Err(ReadError::NotApplied(at).into());
            }
        }
        let generation = self.generation()?;
        let chunk = self.settings.snapshot_chunk.max(1);
        let (mut page, revision) = match at {
            Some(at) => (self.model.list_at(generation, &ns, &prefix, None, chunk, at).await?, at),
            None => {
                let watermark = self.state.watermark();
                let page = self.model.list(generation, &ns, &prefix, None, chunk).await?;
                let revision = watermark.max(page.namespace_revision);
                (page, revision)
            }
        };
        let overlay = match &self.spec.snapshot_view {
            Some(view) => view.overlay(&self.model, generation, revision).await?,
            None => None,
        };
        let mut before: Option<String> = None;
        loop {
            let after = page.kvs.last().map(|kv| kv.key.clone());
            let more = page.more;
            if let Some(overlay) = &overlay {
                let upto = if more { after.as_deref() } else { None };
                overlay.apply(&mut page.kvs, before.as_deref(), upto, revision);
            }
            before.clone_from(&after);
            self.send(WatchResponse {
                event: Some(Event::Snapshot(Snapshot { kvs: page.kvs, revision: revision.get(), last: !more })),
            })
            .await?;
            if !more {
                return Ok(revision);
            }
            page = page_as_of(&self.model, generation, &ns, &prefix, after.as_deref(), chunk, revision).await?;
        }
    }

    fn generation(&self) -> Result<Generation, Stop> {
        self.state.generation().ok_or_else(|| ReadError::NoGeneration.into())
    }

    /// Delivers everything the read model holds after `sent`.
    async fn replay(&mut self) -> Result<(), Stop> {
        loop {
            let generation = self.generation()?;
            let (records, more) =
                self.model.history(generation, &self.spec.namespace, None, self.sent + 1, None, 500).await?;
            for record in &records {
                self.deliver(record, None).await?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends the matching part of a change set not sent yet; `true` if a
    /// message went out.
    async fn deliver(&mut self, record: &ChangeRecord, committed_at: Option<SystemTime>) -> Result<bool, Stop> {
        if self.sent >= record.revision {
            return Ok(false);
        }
        let transition = record.rollout.is_some() && record.changes.is_empty();
        if transition && !self.spec.rollouts {
            self.sent = Revision::new(record.revision);
            return Ok(false);
        }
        let prefix = self.spec.prefix.as_str();
        let matching = if prefix.is_empty() {
            record.clone()
        } else {
            let changes: Vec<_> = record.changes.iter().filter(|c| c.key.starts_with(prefix)).cloned().collect();
            // Schema changes are changes to the namespace: every watcher of
            // it receives them, with the key changes under its prefix.
            if changes.is_empty() && record.schema_changes.is_empty() && !transition {
                self.sent = Revision::new(record.revision);
                return Ok(false);
            }
            ChangeRecord { changes, ..record.clone() }
        };
        let revision = Revision::new(record.revision);
        // With traces on: a span per delivery, a child of the change's call
        // when live, linked to it when replayed (a different cause: the
        // watcher's catching up).
        let span = if traces_enabled() { deliver_span(record, committed_at.is_some()) } else { tracing::Span::none() };
        self.send(WatchResponse { event: Some(Event::Change(matching)) }).instrument(span).await?;
        self.sent = revision;
        metrics::counter!(metric::EVENTS_DELIVERED).increment(1);
        if let Some(at) = committed_at.and_then(|t| SystemTime::now().duration_since(t).ok()) {
            metrics::histogram!(metric::DELIVERY_LATENCY).record(at.as_secs_f64());
        }
        Ok(true)
    }

    /// An idle stream gets a progress message: everything up to the applied
    /// revision has been delivered once the hub channel is drained (the
    /// projector hands a change set to the hub before it raises the
    /// watermark).
    async fn progress(&mut self, live: &mut Subscription) -> Result<(), Stop> {
        let watermark = self.state.watermark();
        loop {
            match live.try_recv() {
                Ok(event) => {
                    self.deliver(&event.record, Some(event.committed_at)).await?;
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => {
                    *live = self.hub.subscribe(&self.spec.namespace).map_err(ReadError::from)?;
                    self.replay().await?;
                    break;
                }
            }
        }
        self.sent = self.sent.max(watermark);
        self.send(WatchResponse { event: Some(Event::Progress(Progress { revision: self.sent.get() })) }).await
    }

    /// Queues a message; a client that accepts none for the stall timeout
    /// is ended.
    async fn send(&mut self, message: WatchResponse) -> Result<(), Stop> {
        match tokio::time::timeout(self.settings.stall_timeout, self.tx.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::ClientGone),
            Err(_) => Err(ReadError::Stalled { idle: self.settings.stall_timeout, resume_from: self.sent + 1 }.into()),
        }
    }
}

fn deliver_span(record: &ChangeRecord, live: bool) -> tracing::Span {
    let span = tracing::info_span!(
        "watch.deliver",
        otel.kind = "producer",
        namespace = record.namespace.as_str(),
        revision = record.revision,
        live,
    );
    let parent = Some(record.traceparent.as_str()).filter(|t| !t.is_empty());
    if live {
        veltrix_telemetry::set_parent(&span, parent, None);
    } else {
        veltrix_telemetry::add_link(&span, parent, None);
    }
    span
}

impl QueryService {
    pub(crate) async fn open_watch(&self, req: WatchRequest, permit: WatcherPermit) -> Result<WatchStream, ReadError> {
        self.open_watch_for(req, permit, None).await
    }

    /// A watch; `sync` for a Sync stream (rollout transitions come
    /// through, and the client's snapshot is asked of its view).
    pub(crate) async fn open_watch_for(
        &self,
        req: WatchRequest,
        permit: WatcherPermit,
        sync: Option<Option<std::sync::Arc<crate::rollout::delivery::SnapshotView>>>,
    ) -> Result<WatchStream, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        key_prefix(&req.prefix)?;
        let start_revision = positive("start_revision", req.start_revision)?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, _) = self.generation()?;
        // A start before the retained history fails the call itself, so the
        // client learns at once to take a snapshot instead.
        if let Some(start) = start_revision {
            let oldest = model.oldest_revision(generation, &ns).await?;
            if oldest > 0 && start < oldest {
                return Err(veltrix_redis::Error::Compacted { requested: start, oldest }.into());
            }
        }
        let spec = WatchSpec {
            namespace: ns,
            prefix: req.prefix,
            start_revision,
            include_snapshot: req.include_snapshot,
            rollouts: sync.is_some(),
            snapshot_view: sync.flatten(),
        };
        start(
            spec,
            model.clone(),
            self.state.clone(),
            self.hub.clone(),
            self.watch,
            self.shutdown.clone(),
            Some(permit),
        )
    }
}
