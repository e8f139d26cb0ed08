//! A Sync stream: the client's `subscribe` opens a watcher (the same one
//! Watch uses, so the same guarantees), whose messages go out as
//! SyncResponses; the client's acks and nacks update its ledger entry, which
//! the replica also refreshes every heartbeat while the stream is open.

use std::{sync::Arc, time::SystemTime};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use veltrix_access::Caller;
use veltrix_domain::{
    Namespace, Revision, ValidationError,
    fleet::{Agent, ClientId, ClientRecord, LedgerStore, RolloutTarget, check_labels},
    rollout::RolloutId,
};
use veltrix_proto::v1::{
    SyncRequest, SyncResponse, SyncSubscribe, WatchRequest, WatchResponse, sync_request::Request as Report,
    sync_response, watch_response,
};
use veltrix_redis::ReadModel;
use veltrix_server::ServingGate;

use super::Fleet;
use crate::{
    grpc::QueryService,
    metric,
    rollout::delivery::{self, Action},
    state::ReadState,
    status::ReadError,
    watch::WatchStream,
};

pub type SyncStream = ReceiverStream<Result<SyncResponse, Status>>;

/// The most bytes of an ack's digest.
const MAX_DIGEST: usize = 256;

fn invalid(field: &str, rule: &str) -> ReadError {
    ValidationError::new(field, rule).into()
}

impl QueryService {
    /// Reads the subscribe message, checks it and the caller's read role,
    /// and starts the session.
    pub(crate) async fn open_sync(
        &self,
        caller: Caller,
        mut inbound: Streaming<SyncRequest>,
    ) -> Result<SyncStream, ReadError> {
        let first = inbound.message().await.map_err(|_| invalid("subscribe", "the stream ended before subscribing"))?;
        let Some(SyncRequest { request: Some(Report::Subscribe(subscribe)) }) = first else {
            return Err(invalid("subscribe", "the first message of a Sync stream must be subscribe"));
        };
        let namespace = Namespace::parse(&subscribe.namespace)?;
        caller.require(veltrix_access::Role::Read, namespace.as_str())?;
        let mut record = subscribed(&subscribe, namespace.clone(), &self.fleet.replica)?;
        let permit = caller.watcher()?;
        // What this replica has not written yet is newer than the ledger.
        let earlier = match self.fleet.writer.pending(&namespace, &record.client_id) {
            Some(pending) => Some(pending),
            None => self.fleet.ledger()?.record(&namespace, &record.client_id).await?,
        };
        if let Some(earlier) = earlier {
            record.continue_from(&earlier);
        }
        let snapshot = subscribe.include_snapshot;
        // What the client runs of a rollout: with a snapshot, what the
        // snapshot shows (the view says); resuming, the target the ledger
        // says it was sent, if it has moved past the record that carried it
        // (else the replay brings that record again, and with it the target).
        let holds = match &record.rollout {
            Some(t) if !snapshot && subscribe.start_revision.is_none_or(|s| s > t.revision.get()) => Some(t.id.clone()),
            _ => None,
        };
        if holds.is_none() {
            record.rollout = None;
        }
        let view = snapshot.then(|| Arc::new(delivery::SnapshotView::new(record.clone(), self.state.clone())));
        let watch = self
            .open_watch_for(
                WatchRequest {
                    namespace: subscribe.namespace,
                    prefix: subscribe.prefix,
                    start_revision: subscribe.start_revision,
                    include_snapshot: subscribe.include_snapshot,
                },
                permit,
                Some(view.clone()),
            )
            .await?;
        metrics::counter!(metric::REPORTS, "kind" => "subscribe").increment(1);
        self.fleet.writer.update(&record);
        self.fleet.session_started(&namespace);
        let (tx, rx) = mpsc::channel(self.watch.queue.max(1));
        let rollouts = Rollouts { model: self.model.clone(), state: self.state.clone(), holds, view };
        let session = Session { record, fleet: self.fleet.clone(), watch, inbound, tx, rollouts };
        tokio::spawn(session.run());
        Ok(ReceiverStream::new(rx))
    }
}

/// The ledger entry of a client that just subscribed.
fn subscribed(s: &SyncSubscribe, namespace: Namespace, replica: &str) -> Result<ClientRecord, ReadError> {
    let now = SystemTime::now();
    let mut record = ClientRecord::new(ClientId::parse(&s.client_id)?, namespace, s.prefix.clone(), replica, now);
    record.labels = check_labels(&s.labels)?;
    let agent = s.agent.clone().unwrap_or_default();
    if agent.name.len() > 128 || agent.version.len() > 128 {
        return Err(invalid("agent", "name and version must be at most 128 bytes each"));
    }
    record.agent = Agent { name: agent.name, version: agent.version };
    record.applied = Revision::new(s.applied_revision);
    record.connected = true;
    Ok(record)
}

/// Applies one ack or nack to `record`.
pub(super) fn apply_report(record: &mut ClientRecord, report: Report, now: SystemTime) -> Result<(), ReadError> {
    match report {
        Report::Ack(ack) => {
            if ack.digest.len() > MAX_DIGEST {
                return Err(invalid("ack.digest", "must be at most 256 bytes"));
            }
            record.ack(Revision::new(ack.revision), &ack.digest, now);
            metrics::counter!(metric::REPORTS, "kind" => "ack").increment(1);
        }
        Report::Nack(nack) => {
            let step = veltrix_proto::v1::SyncStep::try_from(nack.step)
                .ok()
                .and_then(veltrix_redis::step_from_wire)
                .ok_or_else(|| invalid("nack.step", "must be one of RENDER, CHECK, RELOAD, HEALTH"))?;
            if nack.revision == 0 {
                return Err(invalid("nack.revision", "must be the rejected revision (at least 1)"));
            }
            if nack.applied_revision >= nack.revision {
                return Err(invalid("nack.applied_revision", "must be older than the rejected revision"));
            }
            record.nack(Revision::new(nack.revision), Revision::new(nack.applied_revision), step, &nack.error, now);
            metrics::counter!(metric::REPORTS, "kind" => "nack").increment(1);
        }
        Report::Subscribe(_) => return Err(invalid("subscribe", "only the first message of a stream subscribes")),
    }
    Ok(())
}

struct Session {
    record: ClientRecord,
    fleet: Arc<Fleet>,
    watch: WatchStream,
    inbound: Streaming<SyncRequest>,
    tx: mpsc::Sender<Result<SyncResponse, Status>>,
    rollouts: Rollouts,
}

/// What the session knows of the namespace's rollout.
struct Rollouts {
    model: ServingGate<ReadModel>,
    state: Arc<ReadState>,
    /// The rollout whose target the client runs.
    holds: Option<RolloutId>,
    /// What the snapshot being sent shows (a snapshot was asked for).
    view: Option<Arc<delivery::SnapshotView>>,
}

impl Session {
    async fn run(mut self) {
        let mut heartbeat = tokio::time::interval(self.fleet.timing.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                item = self.watch.next() => match item {
                    Some(Ok(message)) => {
                        let message = match self.rollout_view(message).await {
                            Ok(Some(message)) => message,
                            Ok(None) => continue,
                            Err(e) => {
                                let _ = self.tx.send(Err(crate::status::to_status(e))).await;
                                break;
                            }
                        };
                        let delivered = delivered_revision(&message);
                        if self.tx.send(Ok(to_sync(message))).await.is_err() {
                            break;
                        }
                        if let Some(revision) = delivered {
                            self.record.delivered(revision, SystemTime::now());
                            self.fleet.writer.update(&self.record);
                        }
                    }
                    Some(Err(status)) => {
                        let _ = self.tx.send(Err(status)).await;
                        break;
                    }
                    None => break,
                },
                message = self.inbound.message() => match message {
                    Ok(Some(SyncRequest { request: Some(report) })) => {
                        if let Err(e) = apply_report(&mut self.record, report, SystemTime::now()) {
                            let _ = self.tx.send(Err(crate::status::to_status(e))).await;
                            break;
                        }
                        self.fleet.writer.update(&self.record);
                    }
                    Ok(Some(SyncRequest { request: None })) => {
                        let e = invalid("request", "must be subscribe, ack or nack");
                        let _ = self.tx.send(Err(crate::status::to_status(e))).await;
                        break;
                    }
                    Ok(None) | Err(_) => break,
                },
                _ = heartbeat.tick() => {
                    self.record.replica_seen = SystemTime::now();
                    self.fleet.writer.update(&self.record);
                }
                () = self.tx.closed() => break,
            }
        }
        self.record.connected = false;
        self.record.replica_seen = SystemTime::now();
        self.fleet.writer.update(&self.record);
        self.fleet.session_ended(&self.record.namespace);
    }
}

impl Session {
    /// The message as this client must see it: a rollout transition becomes
    /// the target (the client enters the cohort), the base values (an
    /// abort took the target away), or nothing; a snapshot that shows the
    /// target records it in the ledger.
    async fn rollout_view(&mut self, message: WatchResponse) -> Result<Option<WatchResponse>, ReadError> {
        let r = &mut self.rollouts;
        let change = match &message.event {
            Some(watch_response::Event::Snapshot(s)) if s.last => {
                if let Some(id) = r.view.as_ref().and_then(|v| v.take_shown()) {
                    self.record.rollout = Some(RolloutTarget { id: id.clone(), revision: Revision::new(s.revision) });
                    r.holds = Some(id);
                    metrics::counter!(metric::ROLLOUT_DELIVERIES, "kind" => "target").increment(1);
                }
                return Ok(Some(message));
            }
            Some(watch_response::Event::Change(c)) if c.rollout.is_some() => c,
            _ => return Ok(Some(message)),
        };
        let revision = Revision::new(change.revision);
        // A transition alone changes no key; the completion does (for all).
        let forward = if change.changes.is_empty() { None } else { Some(message.clone()) };
        let generation = r.state.generation().ok_or(ReadError::NoGeneration)?;
        let model = r.model.get().map_err(|_| ReadError::NoGeneration)?;
        let ns = self.record.namespace.clone();
        let Some(rollout) = delivery::latest_at(model, &r.state, generation, &ns, revision).await? else {
            return Ok(forward);
        };
        let holds = r.holds.as_ref() == Some(&rollout.id);
        let prefix = self.record.prefix.clone();
        let record = match delivery::action(&rollout, &self.record, holds) {
            Action::Target => {
                r.holds = Some(rollout.id.clone());
                self.record.rollout = Some(RolloutTarget { id: rollout.id.clone(), revision });
                metrics::counter!(metric::ROLLOUT_DELIVERIES, "kind" => "target").increment(1);
                delivery::target_record(&rollout, &prefix, revision)
            }
            Action::Base => {
                r.holds = None;
                self.record.rollout = None;
                metrics::counter!(metric::ROLLOUT_DELIVERIES, "kind" => "base").increment(1);
                delivery::base_record(model, generation, &rollout, &prefix, revision).await?
            }
            Action::Forget | Action::Nothing => {
                if holds && rollout.last_kind() == veltrix_domain::rollout::TransitionKind::Completed {
                    r.holds = None;
                    self.record.rollout = None;
                }
                return Ok(forward);
            }
        };
        Ok(Some(WatchResponse { event: Some(watch_response::Event::Change(record)) }))
    }
}

/// The revision a message hands the client: a change's, or a snapshot's
/// once complete (progress is not a revision to apply).
fn delivered_revision(message: &WatchResponse) -> Option<Revision> {
    match message.event.as_ref()? {
        watch_response::Event::Change(c) => Some(Revision::new(c.revision)),
        watch_response::Event::Snapshot(s) if s.last => Some(Revision::new(s.revision)),
        _ => None,
    }
}

fn to_sync(message: WatchResponse) -> SyncResponse {
    let event = message.event.map(|e| match e {
        watch_response::Event::Snapshot(s) => sync_response::Event::Snapshot(s),
        watch_response::Event::Change(c) => sync_response::Event::Change(c),
        watch_response::Event::Progress(p) => sync_response::Event::Progress(p),
    });
    SyncResponse { event }
}
