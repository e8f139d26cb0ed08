//! The client: one builder for both services, per-call deadlines, safe
//! retries (writes keep their request id), and metadata for the actor and
//! credentials.

use std::{future::Future, sync::Arc, time::Duration};

use tonic::{Request, Status, metadata::MetadataMap, transport::Channel};
use veltrix_proto::v1::{
    ApplyRequest, DeleteRequest, GetRequest, HistoryRequest, ListNamespacesRequest, ListRequest, PutRequest,
    config_command_client::ConfigCommandClient, config_query_client::ConfigQueryClient,
};

pub use crate::builder::ClientBuilder;
use crate::{
    Change, ChangeSet, Entry, Error, NamespaceInfo, Result, Revision, Roles, WhoAmI,
    builder::Settings,
    watch::{WatchStart, WatchStream},
};

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Compare-and-set (Put, Delete): the key's expected mod_revision; 0 means
    /// the key must not exist.
    pub expected_revision: Option<Revision>,
    /// Why the change is made (recorded in the event).
    pub reason: String,
    /// Idempotency key; one is generated when empty, so that retries are safe.
    pub request_id: Option<String>,
    /// Content type of a Put's value.
    pub content_type: String,
}

/// Options of a read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Read-your-writes: wait until the read model has applied this revision.
    pub min_revision: Option<Revision>,
    /// Point-in-time read as of this revision.
    pub at_revision: Option<Revision>,
}

/// Which part of the history to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryOptions {
    pub from_revision: Option<Revision>,
    pub to_revision: Option<Revision>,
    /// Most change sets returned (all when `None`).
    pub limit: Option<usize>,
}

/// A page of keys with the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub revision: Revision,
}

/// A client of both services; cheap to clone (clones share connections).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) command: ConfigCommandClient<Channel>,
    pub(crate) query: ConfigQueryClient<Channel>,
    pub(crate) settings: Arc<Settings>,
}

pub(crate) fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn query(&self) -> ConfigQueryClient<Channel> {
        self.query.clone()
    }

    pub(crate) fn backoff(&self) -> Duration {
        self.settings.backoff
    }

    /// Actor and credentials for a request.
    pub(crate) fn add_metadata(&self, md: &mut MetadataMap) {
        if let Some(actor) = &self.settings.actor {
            md.insert("x-veltrix-actor", actor.clone());
        }
        if let Some(auth) = &self.settings.authorization {
            md.insert("authorization", auth.clone());
        }
    }

    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.settings.timeout);
        self.add_metadata(request.metadata_mut());
        request
    }

    /// Runs `call` until it succeeds, fails with a non-retryable error, or
    /// the retries are spent.
    pub(crate) async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut attempt = 0u32;
        loop {
            match call().await.map_err(Error::from) {
                Err(e) if e.is_retryable() && attempt < self.settings.retries => {
                    let cap = self.settings.backoff.saturating_mul(1 << attempt.min(8));
                    tokio::time::sleep(cap.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "retrying");
                }
                result => return result,
            }
        }
    }

    pub async fn put(&self, namespace: &str, key: &str, value: impl Into<bytes::Bytes>) -> Result<Revision> {
        self.put_with(namespace, key, value, &WriteOptions::default()).await
    }

    pub async fn put_with(
        &self,
        namespace: &str,
        key: &str,
        value: impl Into<bytes::Bytes>,
        options: &WriteOptions,
    ) -> Result<Revision> {
        let message = PutRequest {
            namespace: namespace.into(),
            key: key.into(),
            value: value.into().to_vec(),
            content_type: options.content_type.clone(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(c.put(r).await?.into_inner().revision) }
        })
        .await
    }

    pub async fn delete(&self, namespace: &str, key: &str) -> Result<Revision> {
        self.delete_with(namespace, key, &WriteOptions::default()).await
    }

    pub async fn delete_with(&self, namespace: &str, key: &str, options: &WriteOptions) -> Result<Revision> {
        let message = DeleteRequest {
            namespace: namespace.into(),
            key: key.into(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(c.delete(r).await?.into_inner().revision) }
        })
        .await
    }

    /// Several changes as one atomic change set (one revision).
    pub async fn apply(&self, namespace: &str, changes: Vec<Change>, options: &WriteOptions) -> Result<Revision> {
        let message = ApplyRequest {
            namespace: namespace.into(),
            changes: changes.into_iter().map(Into::into).collect(),
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(c.apply(r).await?.into_inner().revision) }
        })
        .await
    }

    pub async fn get(&self, namespace: &str, key: &str) -> Result<Entry> {
        self.get_with(namespace, key, ReadOptions::default()).await
    }

    pub async fn get_with(&self, namespace: &str, key: &str, options: ReadOptions) -> Result<Entry> {
        let message = GetRequest {
            namespace: namespace.into(),
            key: key.into(),
            min_revision: options.min_revision,
            at_revision: options.at_revision,
        };
        self.retry(|| {
            let (mut q, r) = (self.query.clone(), self.request(message.clone()));
            async move {
                let response = q.get(r).await?.into_inner();
                response.kv.map(Entry::from).ok_or_else(|| Status::internal("a Get answer without its key"))
            }
        })
        .await
    }

    /// Every key under `prefix` (all pages), at one revision.
    pub async fn list(&self, namespace: &str, prefix: &str) -> Result<Listing> {
        self.list_with(namespace, prefix, ReadOptions::default()).await
    }

    pub async fn list_with(&self, namespace: &str, prefix: &str, options: ReadOptions) -> Result<Listing> {
        let mut listing = Listing { entries: Vec::new(), revision: 0 };
        let mut page_token = String::new();
        loop {
            let message = ListRequest {
                namespace: namespace.into(),
                prefix: prefix.into(),
                page_size: 500,
                page_token: page_token.clone(),
                min_revision: options.min_revision,
                at_revision: options.at_revision,
            };
            let page = self
                .retry(|| {
                    let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                    async move { Ok(q.list(r).await?.into_inner()) }
                })
                .await?;
            listing.revision = page.revision;
            listing.entries.extend(page.kvs.into_iter().map(Entry::from));
            if page.next_page_token.is_empty() {
                return Ok(listing);
            }
            page_token = page.next_page_token;
        }
    }

    /// The change sets of a namespace (or of one key), oldest first.
    pub async fn history(&self, namespace: &str, key: Option<&str>, options: HistoryOptions) -> Result<Vec<ChangeSet>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        let limit = options.limit.unwrap_or(usize::MAX);
        while out.len() < limit {
            let message = HistoryRequest {
                namespace: namespace.into(),
                key: key.unwrap_or_default().into(),
                from_revision: options.from_revision.unwrap_or(0),
                to_revision: options.to_revision.unwrap_or(0),
                page_size: (limit - out.len()).min(500) as u32,
                page_token: page_token.clone(),
            };
            let page = self
                .retry(|| {
                    let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                    async move { Ok(q.history(r).await?.into_inner()) }
                })
                .await?;
            out.extend(page.records.into_iter().map(ChangeSet::from));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Who the query service takes the caller for, and the caller's roles
    /// on each of `namespaces` (by that service's policy).
    pub async fn who_am_i(&self, namespaces: &[String]) -> Result<WhoAmI> {
        let message = veltrix_proto::v1::WhoAmIRequest { namespaces: namespaces.to_vec() };
        let answer = self
            .retry(|| {
                let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                async move { Ok(q.who_am_i(r).await?.into_inner()) }
            })
            .await?;
        Ok(WhoAmI {
            identity: answer.identity,
            authentication_enabled: answer.authentication_enabled,
            roles: answer
                .roles
                .into_iter()
                .map(|r| Roles { namespace: r.namespace, read: r.read, write: r.write, admin: r.admin })
                .collect(),
        })
    }

    /// Namespaces under `prefix` (all of them when empty).
    pub async fn namespaces(&self, prefix: &str) -> Result<Vec<NamespaceInfo>> {
        self.namespaces_with(prefix, false).await
    }

    /// Like [`Client::namespaces`]; with `include_deleted` also the
    /// namespaces DeleteNamespace deleted (marked `deleted`).
    pub async fn namespaces_with(&self, prefix: &str, include_deleted: bool) -> Result<Vec<NamespaceInfo>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = ListNamespacesRequest {
                page_size: 500,
                page_token: page_token.clone(),
                prefix: prefix.into(),
                include_deleted,
            };
            let page = self
                .retry(|| {
                    let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                    async move { Ok(q.list_namespaces(r).await?.into_inner()) }
                })
                .await?;
            out.extend(page.namespaces.into_iter().map(|n| NamespaceInfo {
                name: n.name,
                revision: n.revision,
                key_count: n.key_count,
                deleted: n.deleted,
            }));
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// The namespace's latest revision (0 when it has none).
    pub async fn revision(&self, namespace: &str) -> Result<Revision> {
        let message = ListRequest { namespace: namespace.into(), page_size: 1, ..Default::default() };
        self.retry(|| {
            let (mut q, r) = (self.query.clone(), self.request(message.clone()));
            async move { Ok(q.list(r).await?.into_inner().revision) }
        })
        .await
    }

    /// A stream of the namespace's changes under `prefix` that resumes on
    /// its own after disconnects (from the last revision it delivered) and
    /// falls back to a snapshot when that history is gone. Ends only on an
    /// error that retrying cannot fix, or when dropped.
    pub fn watch(&self, namespace: &str, prefix: &str, start: WatchStart) -> WatchStream {
        WatchStream::start(self.clone(), namespace.to_owned(), prefix.to_owned(), start)
    }
}
