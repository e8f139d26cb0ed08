//! ListClients, GetRevisionStatus and ReportStatus.

use std::time::SystemTime;

use veltrix_domain::{
    Namespace, Revision,
    fleet::{ClientId, ClientRecord, LabelSelector, LedgerStore, Touch, check_labels, revision_status},
};
use veltrix_proto::v1::{
    self as pb, GetRevisionStatusRequest, GetRevisionStatusResponse, ListClientsRequest, ListClientsResponse,
    PageCursor, ReportStatusRequest, ReportStatusResponse, report_status_request::Report,
};

use super::{committed_at, state_to_wire, sync::apply_report, to_wire};
use crate::{
    grpc::QueryService,
    read::{page_size, positive, token::Scope},
    status::ReadError,
};

impl QueryService {
    pub(crate) async fn list_clients(&self, req: ListClientsRequest) -> Result<ListClientsResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let wanted = req
            .state
            .map(|s| match pb::ClientState::try_from(s) {
                Ok(pb::ClientState::Unspecified) | Err(_) => Err(veltrix_domain::ValidationError::new(
                    "state",
                    "must be one of SYNCED, PENDING, STALE, REJECTED, DISCONNECTED when set",
                )),
                Ok(s) => Ok(s),
            })
            .transpose()?;
        let selector = LabelSelector::parse(&req.label_selector)?;
        let limit = page_size(req.page_size)?;
        let scope = Scope::Clients {
            namespace: &ns,
            state: req.state.unwrap_or(-1),
            selector: &req.label_selector,
            page_size: req.page_size,
        };
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(self.tokens.open(token, &scope).map_err(ReadError::BadToken)?.after),
        };
        let (generation, _) = self.generation()?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let now = SystemTime::now();
        let mut clients: Vec<pb::ClientStatus> = self
            .fleet
            .states(model, generation, &ns, now)
            .await?
            .into_iter()
            .filter(|(r, s, _)| {
                after.as_deref().is_none_or(|a| r.client_id.as_str() > a)
                    && selector.matches(&r.labels)
                    && wanted.is_none_or(|w| state_to_wire(*s) == w)
            })
            .take(limit.saturating_add(1))
            .map(|(r, s, t)| to_wire(r, s, t))
            .collect();
        let next_page_token = if clients.len() > limit {
            clients.truncate(limit);
            let last = clients.last().map(|c| c.client_id.clone()).unwrap_or_default();
            self.tokens.seal(&scope, &PageCursor { after: last, ..PageCursor::default() })
        } else {
            String::new()
        };
        Ok(ListClientsResponse { clients, next_page_token })
    }

    pub(crate) async fn revision_status(
        &self,
        req: GetRevisionStatusRequest,
    ) -> Result<GetRevisionStatusResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let asked = positive("revision", req.revision)?;
        let (generation, _) = self.generation()?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let record = match asked {
            None => model.newest_touching(generation, &ns, "", 1).await?,
            Some(r) => model.history(generation, &ns, None, r, Some(r), 1).await?.0.into_iter().next(),
        };
        let Some(record) = record.filter(|c| asked.is_none_or(|r| r == c.revision)) else {
            return match asked {
                Some(r) => Err(ReadError::NoSuchRevision { namespace: ns.as_str().to_owned(), revision: r }),
                None => Ok(GetRevisionStatusResponse::default()),
            };
        };
        let touch = Touch {
            keys: record.changes.iter().map(|c| c.key.clone()).collect(),
            whole_namespace: !record.schema_changes.is_empty(),
        };
        let now = SystemTime::now();
        let clients = self.fleet.remembered(&ns, now).await?;
        let status = revision_status(
            &clients,
            Revision::new(record.revision),
            committed_at(&record),
            &touch,
            now,
            &self.fleet.timing,
        );
        Ok(GetRevisionStatusResponse {
            revision: status.revision.get(),
            applied: status.applied,
            pending: status.pending,
            stale: status.stale,
            rejected: status.rejected,
            disconnected: status.disconnected,
            rejections: status
                .rejections
                .into_iter()
                .map(|g| pb::RejectionGroup {
                    step: veltrix_redis::step_to_wire(g.step).into(),
                    error: g.error,
                    count: g.count,
                    client_ids: g.client_ids,
                })
                .collect(),
        })
    }

    /// A one-shot agent's report, written at once (it is about to exit).
    pub(crate) async fn report_status(&self, req: ReportStatusRequest) -> Result<ReportStatusResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let client_id = ClientId::parse(&req.client_id)?;
        crate::read::key_prefix(&req.prefix)?;
        let report = match req.report {
            Some(Report::Ack(a)) => pb::sync_request::Request::Ack(a),
            Some(Report::Nack(n)) => pb::sync_request::Request::Nack(n),
            None => return Err(veltrix_domain::ValidationError::new("report", "must be ack or nack").into()),
        };
        let now = SystemTime::now();
        let ledger = self.fleet.ledger()?;
        let mut record = match ledger.record(&ns, &client_id).await? {
            Some(earlier) => earlier,
            None => ClientRecord::new(client_id, ns, req.prefix.clone(), &self.fleet.replica, now),
        };
        record.prefix = req.prefix;
        record.labels = check_labels(&req.labels)?;
        if let Some(agent) = req.agent {
            record.agent = veltrix_domain::fleet::Agent { name: agent.name, version: agent.version };
        }
        apply_report(&mut record, report, now)?;
        metrics::counter!(crate::metric::REPORTS, "kind" => "status").increment(1);
        ledger.put(std::slice::from_ref(&record)).await?;
        Ok(ReportStatusResponse {})
    }
}
