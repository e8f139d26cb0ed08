//! The fleet ledger from the client's side: what clients report they run
//! (ListClients), how the fleet stands on a revision (GetRevisionStatus),
//! and a one-shot agent's report (ReportStatus).

use std::{collections::BTreeMap, time::SystemTime};

use serde::{Deserialize, Serialize};
use veltrix_proto::v1::{
    self, AgentInfo, GetRevisionStatusRequest, ListClientsRequest, ReportStatusRequest, SyncAck, SyncNack,
    report_status_request::Report,
};

use crate::{Client, Result, Revision, SyncOptions, SyncStep, types::time};

/// A client's state in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientState {
    Synced,
    Pending,
    Stale,
    Rejected,
    Disconnected,
    Unknown,
}

impl ClientState {
    fn from_wire(s: i32) -> Self {
        match v1::ClientState::try_from(s) {
            Ok(v1::ClientState::Synced) => Self::Synced,
            Ok(v1::ClientState::Pending) => Self::Pending,
            Ok(v1::ClientState::Stale) => Self::Stale,
            Ok(v1::ClientState::Rejected) => Self::Rejected,
            Ok(v1::ClientState::Disconnected) => Self::Disconnected,
            _ => Self::Unknown,
        }
    }

    fn wire(self) -> Option<i32> {
        let s = match self {
            Self::Synced => v1::ClientState::Synced,
            Self::Pending => v1::ClientState::Pending,
            Self::Stale => v1::ClientState::Stale,
            Self::Rejected => v1::ClientState::Rejected,
            Self::Disconnected => v1::ClientState::Disconnected,
            Self::Unknown => return None,
        };
        Some(s.into())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "SYNCED",
            Self::Pending => "PENDING",
            Self::Stale => "STALE",
            Self::Rejected => "REJECTED",
            Self::Disconnected => "DISCONNECTED",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// `synced`, `PENDING`, ...
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Synced, Self::Pending, Self::Stale, Self::Rejected, Self::Disconnected]
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
    }
}

/// Clients that rejected the same way, from the wire.
pub(crate) fn rejection(g: v1::RejectionGroup) -> Rejection {
    Rejection { step: step_name(g.step), error: g.error, count: g.count, client_ids: g.client_ids }
}

fn step_name(step: i32) -> String {
    match v1::SyncStep::try_from(step) {
        Ok(v1::SyncStep::Render) => "render",
        Ok(v1::SyncStep::Check) => "check",
        Ok(v1::SyncStep::Reload) => "reload",
        Ok(v1::SyncStep::Health) => "health",
        _ => "unknown",
    }
    .to_owned()
}

/// A client's last NACK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientError {
    pub revision: Revision,
    pub step: String,
    pub error: String,
    #[serde(default, with = "crate::types::opt_time")]
    pub time: Option<SystemTime>,
}

/// One client as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    pub namespace: String,
    pub prefix: String,
    pub labels: BTreeMap<String, String>,
    pub agent: String,
    pub state: ClientState,
    pub applied_revision: Revision,
    pub delivered_revision: Revision,
    pub target_revision: Revision,
    pub last_error: Option<ClientError>,
    #[serde(default, with = "crate::types::opt_time")]
    pub connected_since: Option<SystemTime>,
    #[serde(default, with = "crate::types::opt_time")]
    pub last_seen: Option<SystemTime>,
    pub replica: String,
    pub digest: String,
}

impl From<v1::ClientStatus> for ClientInfo {
    fn from(c: v1::ClientStatus) -> Self {
        let agent = c.agent.map(|a| if a.version.is_empty() { a.name } else { format!("{}/{}", a.name, a.version) });
        Self {
            client_id: c.client_id,
            namespace: c.namespace,
            prefix: c.prefix,
            labels: c.labels.into_iter().collect(),
            agent: agent.unwrap_or_default(),
            state: ClientState::from_wire(c.state),
            applied_revision: c.applied_revision,
            delivered_revision: c.delivered_revision,
            target_revision: c.target_revision,
            last_error: c.last_error.map(|e| ClientError {
                revision: e.revision,
                step: step_name(e.step),
                error: e.error,
                time: time(e.time),
            }),
            connected_since: time(c.connected_since),
            last_seen: time(c.last_seen),
            replica: c.replica,
            digest: c.digest,
        }
    }
}

/// Clients that rejected a revision the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub step: String,
    pub error: String,
    pub count: u32,
    pub client_ids: Vec<String>,
}

/// How the fleet stands on a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionStatus {
    pub revision: Revision,
    pub applied: u32,
    pub pending: u32,
    pub stale: u32,
    pub rejected: u32,
    pub disconnected: u32,
    pub rejections: Vec<Rejection>,
}

/// Filters of [`Client::clients`].
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub state: Option<ClientState>,
    /// `k=v,k2=v2`.
    pub selector: String,
}

/// One report of [`Client::report_status`].
#[derive(Debug, Clone)]
pub enum StatusReport {
    Ack { revision: Revision, digest: String },
    Nack { revision: Revision, applied: Revision, step: SyncStep, error: String },
}

impl Client {
    /// Every client of `namespace` the ledger knows (all pages), in client
    /// id order.
    pub async fn clients(&self, namespace: &str, filter: &ClientFilter) -> Result<Vec<ClientInfo>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = ListClientsRequest {
                namespace: namespace.into(),
                state: filter.state.and_then(ClientState::wire),
                label_selector: filter.selector.clone(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let answer = self
                .retry(|| {
                    let (mut q, r) = (self.query(), self.request(message.clone()));
                    async move { Ok(q.list_clients(r).await?.into_inner()) }
                })
                .await?;
            out.extend(answer.clients.into_iter().map(ClientInfo::from));
            if answer.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = answer.next_page_token;
        }
    }

    /// How the clients stand on `revision` (absent: the latest).
    pub async fn revision_status(&self, namespace: &str, revision: Option<Revision>) -> Result<RevisionStatus> {
        let message = GetRevisionStatusRequest { namespace: namespace.into(), revision };
        let s = self
            .retry(|| {
                let (mut q, r) = (self.query(), self.request(message.clone()));
                async move { Ok(q.get_revision_status(r).await?.into_inner()) }
            })
            .await?;
        Ok(RevisionStatus {
            revision: s.revision,
            applied: s.applied,
            pending: s.pending,
            stale: s.stale,
            rejected: s.rejected,
            disconnected: s.disconnected,
            rejections: s.rejections.into_iter().map(rejection).collect(),
        })
    }

    /// A one-shot agent's report to the ledger (an init container's).
    pub async fn report_status(&self, namespace: &str, who: &SyncOptions, report: StatusReport) -> Result<()> {
        let report = match report {
            StatusReport::Ack { revision, digest } => Report::Ack(SyncAck { revision, digest }),
            StatusReport::Nack { revision, applied, step, error } => Report::Nack(SyncNack {
                revision,
                applied_revision: applied,
                step: crate::sync::step_wire(step).into(),
                error,
            }),
        };
        let message = ReportStatusRequest {
            client_id: who.client_id.clone(),
            namespace: namespace.into(),
            prefix: who.prefix.clone(),
            labels: who.labels.clone().into_iter().collect(),
            agent: Some(AgentInfo { name: who.agent.0.clone(), version: who.agent.1.clone() }),
            report: Some(report),
        };
        self.retry(|| {
            let (mut q, r) = (self.query(), self.request(message.clone()));
            async move { Ok(q.report_status(r).await?.into_inner()) }
        })
        .await?;
        Ok(())
    }
}
