//! Blame (who last set each live key, when, why, and how) and ListSchemas
//! (the schemas in force): the read model's answer as of a revision.

use tokio::time::Instant;
use veltrix_domain::{Namespace, Revision};
use veltrix_proto::v1::{
    BlameEntry, BlameRequest, BlameResponse, ListSchemasRequest, ListSchemasResponse, PageCursor, Schema,
};

use super::{Listing, key_prefix, page_size, pages::fit, positive, token::Scope};
use crate::{grpc::QueryService, status::ReadError};

impl QueryService {
    pub(crate) async fn blame(&self, req: BlameRequest, deadline: Instant) -> Result<BlameResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        key_prefix(&req.prefix)?;
        let limit = page_size(req.page_size)?;
        let at = positive("at_revision", req.at_revision)?;
        let scope = Scope::Blame { namespace: &ns, prefix: &req.prefix, at_revision: at, page_size: req.page_size };
        let listing =
            Listing { ns: &ns, prefix: &req.prefix, limit, min: None, at, page_token: &req.page_token, scope: &scope };
        let (page, revision) = self.page(listing, deadline).await?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, _) = self.generation()?;
        let keys: Vec<(&str, Revision)> =
            page.kvs.iter().map(|kv| (kv.key.as_str(), Revision::new(kv.mod_revision))).collect();
        let records = model.last_changes(generation, &ns, &keys).await?;
        let entries: Vec<BlameEntry> = page
            .kvs
            .iter()
            .zip(records)
            .map(|(kv, record)| BlameEntry {
                key: kv.key.clone(),
                mod_revision: kv.mod_revision,
                actor: record.actor,
                reason: record.reason,
                time: record.time,
                request_id: record.request_id,
                origin: record.origin,
            })
            .collect();
        let (entries, cut) = fit(entries, self.max_response_bytes);
        let next_page_token = match entries.last() {
            Some(last) if page.more || cut => {
                let cursor = PageCursor { revision: revision.get(), after: last.key.clone(), ..Default::default() };
                self.tokens.seal(&scope, &cursor)
            }
            _ => String::new(),
        };
        Ok(BlameResponse { entries, next_page_token, revision: revision.get() })
    }

    pub(crate) async fn list_schemas(
        &self,
        req: ListSchemasRequest,
        deadline: Instant,
    ) -> Result<ListSchemasResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let at = positive("at_revision", req.at_revision)?;
        self.reach(at, deadline).await?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, watermark) = self.generation()?;
        // As of what the answer says: not a schema change applied beyond it.
        let revision = at.unwrap_or(watermark);
        let rows = model.schemas(generation, &ns, Some(revision)).await?;
        let schemas = rows
            .into_iter()
            .map(|r| Schema { key_pattern: r.pattern, schema: r.schema, revision: r.revision.get() })
            .collect();
        Ok(ListSchemasResponse { schemas, revision: revision.get() })
    }
}
