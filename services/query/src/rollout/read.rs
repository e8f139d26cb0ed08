//! GetRollout and ListRollouts.

use std::time::SystemTime;

use veltrix_domain::{
    Namespace, Revision,
    rollout::{Rollout, RolloutId, cohort_inputs},
};
use veltrix_proto::{
    convert::rollout::rollout_to_wire,
    v1::{self as pb, GetRolloutRequest, GetRolloutResponse, ListRolloutsRequest, ListRolloutsResponse, PageCursor},
};

use crate::{grpc::QueryService, read::token::Scope, status::ReadError};

/// Rollouts per page: each carries its target's values.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: u32 = 100;

impl QueryService {
    /// The rollout on the wire; while it is live, with what the ledger says
    /// of its cohort now.
    async fn rollout_with_inputs(&self, ns: &Namespace, r: &Rollout) -> Result<pb::Rollout, ReadError> {
        if !r.is_live() {
            return Ok(rollout_to_wire(r, None));
        }
        let now = SystemTime::now();
        let records = self.fleet.remembered(ns, now).await?;
        let (inputs, _) = cohort_inputs(r, &records, now, &self.fleet.timing);
        Ok(rollout_to_wire(r, Some(inputs)))
    }

    pub(crate) async fn get_rollout(&self, req: GetRolloutRequest) -> Result<GetRolloutResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let wanted = match req.rollout_id.as_str() {
            "" => None,
            id => Some(RolloutId::parse(id)?),
        };
        let (generation, _) = self.generation()?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let all = super::rollouts(model, &self.state, generation, &ns).await?;
        let found = match &wanted {
            None => all.iter().rev().find(|r| r.is_live()),
            // An id is unique but for a request id reused after the
            // idempotency window: the newest is the one its actions reach.
            Some(id) => all.iter().rev().find(|r| &r.id == id),
        };
        let Some(rollout) = found else {
            return Err(ReadError::NoRollout(match wanted {
                None => format!("no rollout is running in namespace '{ns}'"),
                Some(id) => format!("rollout {id} does not exist in namespace '{ns}'"),
            }));
        };
        Ok(GetRolloutResponse { rollout: Some(self.rollout_with_inputs(&ns, rollout).await?) })
    }

    pub(crate) async fn list_rollouts(&self, req: ListRolloutsRequest) -> Result<ListRolloutsResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let limit = match req.page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n as usize,
            n => {
                return Err(veltrix_domain::ValidationError::new(
                    "page_size",
                    format!("must be at most {MAX_PAGE} (got {n})"),
                )
                .into());
            }
        };
        let scope = Scope::Rollouts { namespace: &ns, page_size: req.page_size };
        // Newest first: the token names the start revision of the last one
        // returned.
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(self.tokens.open(token, &scope).map_err(ReadError::BadToken)?.revision),
        };
        let (generation, _) = self.generation()?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let all = super::rollouts(model, &self.state, generation, &ns).await?;
        let page: Vec<&Rollout> = all
            .iter()
            .rev()
            .filter(|r| before.is_none_or(|b| r.started_revision < Revision::new(b)))
            .take(limit.saturating_add(1))
            .collect();
        let more = page.len() > limit;
        let mut rollouts = Vec::with_capacity(page.len().min(limit));
        for r in page.iter().take(limit) {
            rollouts.push(self.rollout_with_inputs(&ns, r).await?);
        }
        let next_page_token = match page.get(limit.saturating_sub(1)).filter(|_| more) {
            Some(last) => {
                self.tokens.seal(&scope, &PageCursor { revision: last.started_revision.get(), ..PageCursor::default() })
            }
            None => String::new(),
        };
        Ok(ListRolloutsResponse { rollouts, next_page_token })
    }
}
