//! The fleet ledger in the query service: Sync streams and ReportStatus
//! write clients' reports through the [`writer::Writer`]; ListClients and
//! GetRevisionStatus read the ledger and judge each entry with the domain's
//! rules against the read model's newest revisions.

mod read;
mod sync;
mod writer;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

pub use sync::SyncStream;
use veltrix_domain::{
    Namespace, Revision,
    fleet::{ClientRecord, ClientState, LedgerStore, Timing},
};
use veltrix_proto::v1 as pb;
use veltrix_redis::{Generation, ReadModel, RedisLedger};
use veltrix_server::{CancellationToken, ServingGate};
pub use writer::Writer;

use crate::{metric, status::ReadError};

/// The `kind` label values of `veltrix_sync_reports_total`.
pub const REPORT_KINDS: [&str; 4] = ["subscribe", "ack", "nack", "status"];

/// How many change sets back a client's newest revision is looked for.
const TARGET_SCAN: usize = 1000;
/// Distinct prefixes of one namespace whose newest revision is looked up per
/// call; clients of others are judged by what was delivered to them.
const TARGET_PREFIXES: usize = 64;

pub struct Fleet {
    pub ledger: ServingGate<RedisLedger>,
    pub writer: Arc<Writer>,
    pub timing: Timing,
    pub replica: String,
    /// Open Sync streams per namespace on this replica (the gauge's scope).
    sessions: Mutex<HashMap<Namespace, usize>>,
}

impl Fleet {
    pub fn new(ledger: ServingGate<RedisLedger>, timing: Timing, replica: String) -> Arc<Self> {
        Arc::new(Self { ledger, writer: Arc::default(), timing, replica, sessions: Mutex::default() })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Namespace, usize>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn session_started(&self, ns: &Namespace) {
        *self.sessions().entry(ns.clone()).or_default() += 1;
    }

    fn session_ended(&self, ns: &Namespace) {
        if let Some(n) = self.sessions().get_mut(ns) {
            *n = n.saturating_sub(1);
        }
    }

    fn ledger(&self) -> Result<&RedisLedger, ReadError> {
        Ok(self.ledger.get()?)
    }

    /// Every client of `ns` the ledger still remembers (the forgotten ones
    /// are dropped on the way).
    pub(crate) async fn remembered(&self, ns: &Namespace, now: SystemTime) -> Result<Vec<ClientRecord>, ReadError> {
        let ledger = self.ledger()?;
        let (keep, forgotten): (Vec<_>, Vec<_>) =
            ledger.records(ns).await?.into_iter().partition(|r| !r.is_forgotten(now, &self.timing));
        if !forgotten.is_empty() {
            let ids: Vec<_> = forgotten.into_iter().map(|r| r.client_id).collect();
            ledger.remove(ns, &ids).await?;
        }
        Ok(keep)
    }

    /// Sets `veltrix_clients` every `every` for the namespaces this replica
    /// holds streams of (and once to zero for those it no longer does).
    pub async fn export_gauge(
        self: Arc<Self>,
        model: ServingGate<ReadModel>,
        state: Arc<crate::state::ReadState>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            let namespaces: Vec<(Namespace, usize)> = self.sessions().iter().map(|(k, v)| (k.clone(), *v)).collect();
            let (Ok(model), Some(generation)) = (model.get(), state.generation()) else { continue };
            for (ns, open) in namespaces {
                let now = SystemTime::now();
                let counts = match self.states(model, generation, &ns, now).await {
                    Ok(states) => states.into_iter().fold(HashMap::new(), |mut m, (_, s, _)| {
                        *m.entry(s).or_insert(0u64) += 1;
                        m
                    }),
                    Err(_) => continue,
                };
                for s in ClientState::ALL {
                    let n = counts.get(&s).copied().unwrap_or(0);
                    metrics::gauge!(metric::CLIENTS, "namespace" => ns.as_str().to_owned(), "state" => s.as_str())
                        .set(n as f64);
                }
                if open == 0 {
                    self.sessions().retain(|k, v| k != &ns || *v > 0);
                    for s in ClientState::ALL {
                        metrics::gauge!(metric::CLIENTS, "namespace" => ns.as_str().to_owned(), "state" => s.as_str())
                            .set(0.0);
                    }
                }
            }
        }
    }

    /// Each remembered client of `ns` with its state and the revision the
    /// state is about.
    async fn states(
        &self,
        model: &ReadModel,
        generation: Generation,
        ns: &Namespace,
        now: SystemTime,
    ) -> Result<Vec<(ClientRecord, ClientState, Revision)>, ReadError> {
        let records = self.remembered(ns, now).await?;
        let mut targets: HashMap<String, Option<(Revision, Option<SystemTime>)>> = HashMap::new();
        for r in &records {
            if targets.len() < TARGET_PREFIXES && !targets.contains_key(&r.prefix) {
                let newest = model.newest_touching(generation, ns, &r.prefix, TARGET_SCAN).await?;
                targets.insert(r.prefix.clone(), newest.map(|c| (Revision::new(c.revision), committed_at(&c))));
            }
        }
        Ok(records
            .into_iter()
            .map(|r| {
                let (target, at) = targets.get(&r.prefix).copied().flatten().unwrap_or((Revision::ZERO, None));
                let target = target.max(r.delivered);
                let state = r.state(target, at, now, &self.timing);
                (r, state, target)
            })
            .collect())
    }
}

fn committed_at(c: &pb::ChangeRecord) -> Option<SystemTime> {
    c.time.and_then(|t| SystemTime::try_from(t).ok())
}

pub(crate) fn state_to_wire(s: ClientState) -> pb::ClientState {
    match s {
        ClientState::Synced => pb::ClientState::Synced,
        ClientState::Pending => pb::ClientState::Pending,
        ClientState::Stale => pb::ClientState::Stale,
        ClientState::Rejected => pb::ClientState::Rejected,
        ClientState::Disconnected => pb::ClientState::Disconnected,
    }
}

fn time(t: SystemTime) -> Option<prost_types::Timestamp> {
    Some(t.into())
}

fn to_wire(r: ClientRecord, state: ClientState, target: Revision) -> pb::ClientStatus {
    pb::ClientStatus {
        client_id: r.client_id.as_str().to_owned(),
        namespace: r.namespace.as_str().to_owned(),
        prefix: r.prefix,
        labels: r.labels.into_iter().collect(),
        agent: Some(pb::AgentInfo { name: r.agent.name, version: r.agent.version }),
        state: state_to_wire(state).into(),
        applied_revision: r.applied.get(),
        delivered_revision: r.delivered.get(),
        last_error: r.last_error.map(|e| pb::ClientError {
            revision: e.revision.get(),
            step: veltrix_redis::step_to_wire(e.step).into(),
            error: e.error,
            time: time(e.at),
        }),
        connected_since: time(r.connected_since),
        last_seen: time(r.last_seen),
        replica: r.replica,
        digest: r.digest,
        target_revision: target.get(),
    }
}
