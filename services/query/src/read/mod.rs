//! The read RPCs (Get, List, History, ListNamespaces): validation, waiting
//! for `min_revision`, and the read model's answer, as of a revision when
//! asked; with what they share (pages as of a revision, signed page tokens).

mod blame;
pub mod cache;
mod diff;
pub mod pages;
pub mod token;

use tokio::time::Instant;
use tonic::Request;
use veltrix_access::{Caller, Role};
use veltrix_domain::{Key, Namespace, Revision, ValidationError};
use veltrix_proto::v1::{
    GetRequest, GetResponse, HistoryRequest, HistoryResponse, KeyValue, ListNamespacesRequest, ListNamespacesResponse,
    ListRequest, ListResponse, NamespaceInfo, PageCursor,
};
use veltrix_redis::{Generation, ListPage, ReadModel};

use crate::{
    grpc::QueryService,
    read::{
        cache::Lookup,
        pages::{fit, page_as_of},
        token::Scope,
    },
    status::ReadError,
};

/// What a page of a listing is asked for.
pub(crate) struct Listing<'a> {
    pub ns: &'a Namespace,
    pub prefix: &'a str,
    pub limit: usize,
    pub min: Option<Revision>,
    pub at: Option<Revision>,
    pub page_token: &'a str,
    pub scope: &'a Scope<'a>,
}

/// Namespace names one ListNamespaces call looks at, at most.
const NAMESPACE_SCAN: usize = 10_000;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub(crate) fn page_size(v: u32) -> Result<usize, ReadError> {
    match v {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(ValidationError::new("page_size", format!("must be at most {MAX_PAGE} (got {n})")).into()),
    }
}

pub(crate) fn key_prefix(p: &str) -> Result<(), ReadError> {
    if p.len() <= Key::MAX_LEN && p.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
        Ok(())
    } else {
        Err(ValidationError::new("prefix", "must be at most 256 bytes of printable ASCII without spaces").into())
    }
}

/// A revision the request may leave unset, but not set to 0.
pub(crate) fn positive(field: &str, v: Option<u64>) -> Result<Option<Revision>, ReadError> {
    match v {
        Some(0) => Err(ValidationError::new(field, "must be at least 1 when set").into()),
        other => Ok(other.map(Revision::new)),
    }
}

/// A revision where 0 means "unset".
fn optional(v: u64) -> Option<Revision> {
    (v != 0).then_some(Revision::new(v))
}

impl QueryService {
    pub(crate) fn deadline<T>(&self, request: &Request<T>) -> Instant {
        Instant::now() + self.call_time.budget(request.metadata())
    }

    /// Waits until every change set up to `revision` is applied.
    pub(crate) async fn reach(&self, revision: Option<Revision>, deadline: Instant) -> Result<(), ReadError> {
        let Some(wanted) = revision else { return Ok(()) };
        if self.state.wait_for(wanted, deadline).await {
            return Ok(());
        }
        let halted = if self.state.is_halted() { " (the projection is halted at an event it cannot read)" } else { "" };
        Err(ReadError::NotReached { wanted, applied: self.state.watermark(), halted })
    }

    pub(crate) fn generation(&self) -> Result<(Generation, Revision), ReadError> {
        // Watermark first: the generation it belongs to is published before it.
        let watermark = self.state.watermark();
        let generation = self.state.generation().ok_or(ReadError::NoGeneration)?;
        Ok((generation, watermark))
    }

    pub(crate) async fn get(&self, req: GetRequest, deadline: Instant) -> Result<GetResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let key = Key::parse(&req.key)?;
        let min = positive("min_revision", req.min_revision)?;
        let at = positive("at_revision", req.at_revision)?;
        self.reach(min.max(at), deadline).await?;
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, watermark) = self.generation()?;
        let (kv, revision) = match at {
            Some(at) => (model.get_at(generation, &ns, key.as_str(), at).await?, at),
            None => self.current(model, generation, watermark, &ns, &key).await?,
        };
        match kv {
            Some(kv) => Ok(GetResponse { kv: Some(kv), revision: revision.get() }),
            None => Err(ReadError::NotFound { namespace: ns.to_string(), key: key.to_string(), revision }),
        }
    }

    /// A key's current value: from the read cache when it holds it, else
    /// from Redis (and kept when coherent).
    async fn current(
        &self,
        model: &ReadModel,
        generation: Generation,
        watermark: Revision,
        ns: &Namespace,
        key: &Key,
    ) -> Result<(Option<KeyValue>, Revision), ReadError> {
        let ticket = match &self.state.cache {
            None => None,
            Some(cache) => match cache.lookup(generation, ns.as_str(), key.as_str(), watermark) {
                Lookup::Hit { kv, revision } => return Ok((kv, revision)),
                Lookup::Miss(ticket) => Some((cache, ticket)),
            },
        };
        let (kv, ns_rev) = model.get(generation, ns, key.as_str()).await?;
        if let Some((cache, ticket)) = ticket {
            cache.fill(ticket, ns.as_str(), key.as_str(), kv.as_ref(), ns_rev);
        }
        Ok((kv, watermark.max(ns_rev)))
    }

    pub(crate) async fn list(&self, req: ListRequest, deadline: Instant) -> Result<ListResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        key_prefix(&req.prefix)?;
        let limit = page_size(req.page_size)?;
        let min = positive("min_revision", req.min_revision)?;
        let at = positive("at_revision", req.at_revision)?;
        let scope = Scope::List { namespace: &ns, prefix: &req.prefix, at_revision: at, page_size: req.page_size };
        let listing =
            Listing { ns: &ns, prefix: &req.prefix, limit, min, at, page_token: &req.page_token, scope: &scope };
        let (page, revision) = self.page(listing, deadline).await?;
        let (kvs, cut) = fit(page.kvs, self.max_response_bytes);
        let next_page_token = match kvs.last() {
            Some(last) if page.more || cut => {
                let cursor = PageCursor { revision: revision.get(), after: last.key.clone(), ..Default::default() };
                self.tokens.seal(&scope, &cursor)
            }
            _ => String::new(),
        };
        Ok(ListResponse { kvs, next_page_token, revision: revision.get() })
    }

    /// A page of a listing (List, Blame): the first as of now or
    /// `at_revision` (after `min_revision` is reached), later ones as of the
    /// revision the first fixed, carried by the page token.
    pub(crate) async fn page(
        &self,
        listing: Listing<'_>,
        deadline: Instant,
    ) -> Result<(ListPage, Revision), ReadError> {
        let Listing { ns, prefix, limit, min, at, page_token, scope } = listing;
        let cursor = match page_token {
            "" => None,
            t => Some(self.tokens.open(t, scope).map_err(ReadError::BadToken)?),
        };
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        Ok(match (cursor, at) {
            // Later pages answer as of the first page's revision.
            (Some(c), _) => {
                let (generation, _) = self.generation()?;
                let after = Some(c.after.as_str());
                let revision = Revision::new(c.revision);
                (page_as_of(model, generation, ns, prefix, after, limit, revision).await?, revision)
            }
            (None, Some(at)) => {
                self.reach(Some(at.max(min.unwrap_or_default())), deadline).await?;
                let (generation, _) = self.generation()?;
                (model.list_at(generation, ns, prefix, None, limit, at).await?, at)
            }
            (None, None) => {
                self.reach(min, deadline).await?;
                let (generation, watermark) = self.generation()?;
                let page = model.list(generation, ns, prefix, None, limit).await?;
                let revision = watermark.max(page.namespace_revision);
                (page, revision)
            }
        })
    }

    pub(crate) async fn history(&self, req: HistoryRequest) -> Result<HistoryResponse, ReadError> {
        let ns = Namespace::parse(&req.namespace)?;
        let key = match req.key.as_str() {
            "" => None,
            k => Some(Key::parse(k)?),
        };
        let limit = page_size(req.page_size)?;
        if req.to_revision != 0 && req.from_revision > req.to_revision {
            return Err(ValidationError::new("from_revision", "must not be greater than to_revision").into());
        }
        let scope = Scope::History {
            namespace: &ns,
            key: &req.key,
            from: Revision::new(req.from_revision),
            to: Revision::new(req.to_revision),
            page_size: req.page_size,
        };
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, watermark) = self.generation()?;
        let (from, to) = match req.page_token.as_str() {
            "" => {
                let oldest = model.oldest_revision(generation, &ns).await?.max(Revision::new(1));
                (optional(req.from_revision).unwrap_or(oldest), optional(req.to_revision).unwrap_or(watermark))
            }
            t => {
                let c = self.tokens.open(t, &scope).map_err(ReadError::BadToken)?;
                (Revision::new(c.next_revision), Revision::new(c.revision))
            }
        };
        let key_str = key.as_ref().map(Key::as_str);
        let (records, more) = model.history(generation, &ns, key_str, from, Some(to), limit).await?;
        let (records, cut) = fit(records, self.max_response_bytes);
        let next_page_token = match records.last() {
            Some(last) if more || cut => {
                let next_revision = last.revision.saturating_add(1);
                self.tokens.seal(&scope, &PageCursor { revision: to.get(), next_revision, ..Default::default() })
            }
            _ => String::new(),
        };
        Ok(HistoryResponse { records, next_page_token })
    }

    /// The namespaces the caller may read: filtered before paging, so that
    /// neither a page nor its token says anything of the others. A page may
    /// come back shorter than asked (at most [`NAMESPACE_SCAN`] names are
    /// looked at per call); its token leads on.
    pub(crate) async fn namespaces(
        &self,
        req: ListNamespacesRequest,
        caller: &Caller,
    ) -> Result<ListNamespacesResponse, ReadError> {
        if req.prefix.len() > 512
            || !req.prefix.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-/".contains(&c))
        {
            return Err(ValidationError::new("prefix", "must be at most 512 characters of [a-z0-9_/-]").into());
        }
        let limit = page_size(req.page_size)?;
        let scope = Scope::Namespaces { prefix: &req.prefix, page_size: req.page_size, caller: caller.identity() };
        let mut after = match req.page_token.as_str() {
            "" => None,
            t => Some(self.tokens.open(t, &scope).map_err(ReadError::BadToken)?.after),
        };
        let model = self.model.get().map_err(|_| ReadError::NoGeneration)?;
        let (generation, _) = self.generation()?;
        let (mut visible, mut scanned) = (Vec::new(), 0usize);
        let more = 'scan: loop {
            let batch = limit.saturating_sub(visible.len()).max(64);
            let (names, more) = model.namespace_names(generation, &req.prefix, after.as_deref(), batch).await?;
            scanned = scanned.saturating_add(names.len());
            let count = names.len();
            for (i, name) in names.into_iter().enumerate() {
                let readable = caller.can(Role::Read, &name);
                after = Some(name.clone());
                if readable {
                    visible.push(name);
                    if visible.len() == limit {
                        break 'scan more || i + 1 < count;
                    }
                }
            }
            if !more || scanned >= NAMESPACE_SCAN {
                break more;
            }
        };
        let next_page_token = match after {
            Some(after) if more => self.tokens.seal(&scope, &PageCursor { after, ..Default::default() }),
            _ => String::new(),
        };
        let namespaces = model
            .namespace_rows(generation, visible)
            .await?
            .into_iter()
            // Listed before its first change set is applied: not there yet.
            .filter(|r| r.revision > 0 && (req.include_deleted || !r.deleted))
            .map(|r| NamespaceInfo {
                name: r.name,
                revision: r.revision.get(),
                key_count: r.key_count,
                deleted: r.deleted,
            })
            .collect();
        Ok(ListNamespacesResponse { namespaces, next_page_token })
    }
}
