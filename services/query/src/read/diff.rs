//! Diff: the keys under a prefix that differ between two states (a
//! namespace at two revisions, or two namespaces), by merging the two
//! listings in key order. The first page fixes both revisions; its token
//! carries them and the last key looked at, so later pages continue the
//! same comparison.

use tokio::time::Instant;
use veltrix_domain::{
    Namespace, Revision,
    plan::{Paired, pair_by_key},
};
use veltrix_proto::v1::{DiffEntry, DiffRequest, DiffResponse, KeyValue, PageCursor, diff_entry::Kind};
use veltrix_redis::{Generation, ReadModel};

use crate::{
    grpc::QueryService,
    read::{key_prefix, page_size, pages::page_as_of, positive, token::Scope},
    status::ReadError,
};

/// Listing rounds one page may take (each reads up to a page from each side).
const MAX_ROUNDS: usize = 10;

/// One side of the comparison.
struct Side<'a> {
    namespace: &'a Namespace,
    revision: Revision,
}

impl QueryService {
    pub(crate) async fn diff(&self, req: DiffRequest, deadline: Instant) -> Result<DiffResponse, ReadError> {
        let from_ns = Namespace::parse(&req.from_namespace).map_err(|e| field("from_namespace", e))?;
        let to_ns = match req.to_namespace.as_str() {
            "" => from_ns.clone(),
            name => Namespace::parse(name).map_err(|e| field("to_namespace", e))?,
        };
        key_prefix(&req.prefix)?;
        let limit = page_size(req.page_size)?;
        let (from_at, to_at) =
            (positive("from_revision", req.from_revision)?, positive("to_revision", req.to_revision)?);
        let scope = Scope::Diff {
            from: &from_ns,
            from_revision: from_at,
            to: &to_ns,
            to_revision: to_at,
            prefix: &req.prefix,
            page_size: req.page_size,
        };
        let (revisions, mut after) = match req.page_token.as_str() {
            "" => {
                self.reach(from_at.max(to_at), deadline).await?;
                let (_, watermark) = self.generation()?;
                ((from_at.unwrap_or(watermark), to_at.unwrap_or(watermark)), None)
            }
            t => {
                let c = self.tokens.open(t, &scope).map_err(ReadError::BadToken)?;
                ((Revision::new(c.revision), Revision::new(c.next_revision)), Some(c.after))
            }
        };
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, _) = self.generation()?;
        let from = Side { namespace: &from_ns, revision: revisions.0 };
        let to = Side { namespace: &to_ns, revision: revisions.1 };
        let (mut entries, mut more) = (Vec::new(), true);
        for _ in 0..MAX_ROUNDS {
            let round = Round { model, generation, prefix: &req.prefix, after: after.as_deref(), limit };
            let (found, last, done) = round.compare(&from, &to).await?;
            entries.extend(found);
            after = last.or(after);
            more = !done;
            if !more || entries.len() >= limit {
                break;
            }
        }
        // At most a page, and at most the byte budget: the token continues
        // after the last entry kept.
        let (kept, cut) = super::pages::fit(entries, self.max_response_bytes);
        let mut entries = kept;
        if cut || entries.len() > limit {
            entries.truncate(limit);
            after = entries.last().map(|e| e.key.clone());
            more = true;
        }
        let next_page_token = match &after {
            Some(after) if more => {
                let cursor = PageCursor {
                    revision: revisions.0.get(),
                    next_revision: revisions.1.get(),
                    after: after.clone(),
                    ..Default::default()
                };
                self.tokens.seal(&scope, &cursor)
            }
            _ => String::new(),
        };
        Ok(DiffResponse { entries, next_page_token, from_revision: revisions.0.get(), to_revision: revisions.1.get() })
    }
}

fn field(name: &str, e: veltrix_domain::ValidationError) -> ReadError {
    veltrix_domain::ValidationError::new(name, e.rule).into()
}

/// One round of the merge: a page of each side after `after`.
struct Round<'a> {
    model: &'a ReadModel,
    generation: Generation,
    prefix: &'a str,
    after: Option<&'a str>,
    limit: usize,
}

impl Round<'_> {
    /// The differing keys up to the last key both sides have listed, that
    /// key, and whether both sides are exhausted.
    async fn compare(
        &self,
        from: &Side<'_>,
        to: &Side<'_>,
    ) -> Result<(Vec<DiffEntry>, Option<String>, bool), ReadError> {
        let (model, generation, prefix, after, limit) =
            (self.model, self.generation, self.prefix, self.after, self.limit);
        let a = page_as_of(model, generation, from.namespace, prefix, after, limit, from.revision).await?;
        let b = page_as_of(model, generation, to.namespace, prefix, after, limit, to.revision).await?;
        // Keys beyond the shorter side's last one are compared next round.
        let bound = match (a.more, b.more) {
            (false, false) => None,
            (true, false) => a.kvs.last().map(|kv| kv.key.clone()),
            (false, true) => b.kvs.last().map(|kv| kv.key.clone()),
            (true, true) => a.kvs.last().zip(b.kvs.last()).map(|(x, y)| x.key.clone().min(y.key.clone())),
        };
        let within = |kv: &KeyValue| bound.as_ref().is_none_or(|b| kv.key <= *b);
        let left: Vec<KeyValue> = a.kvs.into_iter().filter(within).collect();
        let right: Vec<KeyValue> = b.kvs.into_iter().filter(within).collect();
        let last = match &bound {
            Some(b) => Some(b.clone()),
            None => left.last().map(|kv| kv.key.clone()).max(right.last().map(|kv| kv.key.clone())),
        };
        Ok((merge(left, right), last, bound.is_none()))
    }
}

/// The differences of two listings in key order.
fn merge(before: Vec<KeyValue>, after: Vec<KeyValue>) -> Vec<DiffEntry> {
    let entry = |key: String, kind: Kind, before, after| DiffEntry { key, kind: kind as i32, before, after };
    pair_by_key(before, after, |kv| kv.key.as_str())
        .into_iter()
        .filter_map(|pair| match pair {
            Paired::Left(was) => Some(entry(was.key.clone(), Kind::Removed, Some(was), None)),
            Paired::Right(is) => Some(entry(is.key.clone(), Kind::Added, None, Some(is))),
            Paired::Both(was, is) => (was.value != is.value || was.content_type != is.content_type)
                .then(|| entry(was.key.clone(), Kind::Changed, Some(was), Some(is))),
        })
        .collect()
}
