//! The read endpoints: namespaces with their last change and fleet, keys
//! (searched by prefix and value), one key with its history, change sets
//! newest first, diffs, schemas, clients and rollouts.

use axum::{Json, extract::State};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use veltrix_client::{
    ChangeSet, Client, ClientFilter, DiffOptions, Entry, Error, HistoryOptions, ReadOptions, Revision, RevisionStatus,
    Roles,
};

use super::{ApiError, Caller, Shared, extract::Params};

/// The most namespaces one WhoAmI asks about (the query service's limit).
const WHO_AM_I_BATCH: usize = 1000;
/// The most change sets one history answer carries.
const MAX_HISTORY: usize = 500;
/// The most keys a listing answers (a namespace is browsed, not exported).
const MAX_KEYS: usize = 5000;

#[derive(Serialize)]
pub struct NamespaceView {
    name: String,
    revision: Revision,
    key_count: u64,
    last_change: Option<ChangeSet>,
    roles: Option<Roles>,
    /// The fleet on the head revision, when any client reports.
    fleet: Option<RevisionStatus>,
}

pub async fn namespaces(State(_): State<Shared>, caller: Caller) -> Result<Json<Vec<NamespaceView>>, ApiError> {
    let client = &caller.session.client;
    caught_up(&caller).await?;
    let all = client.namespaces("").await?;
    let mut roles = Vec::with_capacity(all.len());
    for names in all.chunks(WHO_AM_I_BATCH) {
        let names: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
        roles.extend(client.who_am_i(&names).await?.roles);
    }
    let mut roles = roles.into_iter();
    let views = stream::iter(all.into_iter().map(|info| {
        let roles = roles.next();
        async move {
            let last_change = recent(client, &info.name, None, 1, None).await.ok().and_then(|(_, mut v)| v.pop());
            let fleet = client
                .revision_status(&info.name, None)
                .await
                .ok()
                .filter(|s| s.applied + s.pending + s.stale + s.rejected + s.disconnected > 0);
            NamespaceView {
                name: info.name,
                revision: info.revision,
                key_count: info.key_count,
                last_change,
                roles,
                fleet,
            }
        }
    }))
    .buffered(8)
    .collect()
    .await;
    Ok(Json(views))
}

#[derive(Deserialize)]
pub struct RolesQuery {
    namespace: String,
}

/// The caller's roles on one namespace (to show only the controls it may use).
pub async fn roles(caller: Caller, Params(q): Params<RolesQuery>) -> Result<Json<Option<Roles>>, ApiError> {
    Ok(Json(caller.session.client.who_am_i(&[q.namespace]).await?.roles.pop()))
}

#[derive(Deserialize)]
pub struct KeysQuery {
    namespace: String,
    #[serde(default)]
    prefix: String,
    /// Only keys whose (text) value holds this, case-insensitively.
    #[serde(default)]
    search: String,
    /// As of this revision (point in time).
    revision: Option<Revision>,
}

#[derive(Serialize)]
pub struct KeyRow {
    key: String,
    content_type: String,
    mod_revision: Revision,
    version: u64,
    updated_by: String,
    size: usize,
    /// The value's start, when it is text.
    preview: Option<String>,
}

#[derive(Serialize)]
pub struct KeysView {
    namespace: String,
    revision: Revision,
    entries: Vec<KeyRow>,
    /// More keys matched than one answer carries.
    truncated: bool,
    roles: Option<Roles>,
}

pub async fn keys(caller: Caller, Params(q): Params<KeysQuery>) -> Result<Json<KeysView>, ApiError> {
    let client = &caller.session.client;
    let options = ReadOptions { at_revision: q.revision, min_revision: caller.session.min_revision() };
    let listing = client.list_with(&q.namespace, &q.prefix, options).await?;
    let needle = q.search.to_lowercase();
    let mut entries: Vec<KeyRow> = listing
        .entries
        .into_iter()
        .filter(|e| needle.is_empty() || e.text().is_some_and(|t| t.to_lowercase().contains(&needle)))
        .map(row)
        .collect();
    let truncated = entries.len() > MAX_KEYS;
    entries.truncate(MAX_KEYS);
    let roles = client.who_am_i(std::slice::from_ref(&q.namespace)).await?.roles.pop();
    Ok(Json(KeysView { namespace: q.namespace, revision: listing.revision, entries, truncated, roles }))
}

fn row(e: Entry) -> KeyRow {
    let preview = e.text().map(|t| t.chars().take(160).collect());
    KeyRow {
        size: e.value.len(),
        preview,
        key: e.key,
        content_type: e.content_type,
        mod_revision: e.mod_revision,
        version: e.version,
        updated_by: e.updated_by,
    }
}

#[derive(Deserialize)]
pub struct KeyQuery {
    namespace: String,
    key: String,
    revision: Option<Revision>,
}

#[derive(Serialize)]
pub struct KeyView {
    /// `None`: the key does not exist (at that revision).
    entry: Option<Entry>,
    /// The change sets that touched the key, newest first.
    history: Vec<ChangeSet>,
    roles: Option<Roles>,
}

pub async fn key(caller: Caller, Params(q): Params<KeyQuery>) -> Result<Json<KeyView>, ApiError> {
    let client = &caller.session.client;
    let options = ReadOptions { at_revision: q.revision, min_revision: caller.session.min_revision() };
    let entry = match client.get_with(&q.namespace, &q.key, options).await {
        Ok(entry) => Some(entry),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (_, history) = recent(client, &q.namespace, Some(&q.key), 50, None).await?;
    let roles = client.who_am_i(std::slice::from_ref(&q.namespace)).await?.roles.pop();
    Ok(Json(KeyView { entry, history, roles }))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    namespace: String,
    key: Option<String>,
    /// Only change sets older than this revision (the next page).
    before: Option<Revision>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct HistoryView {
    /// The revision the history was read up to: a live stream from the next
    /// one misses nothing.
    revision: Revision,
    /// Newest first.
    change_sets: Vec<ChangeSet>,
}

pub async fn history(caller: Caller, Params(q): Params<HistoryQuery>) -> Result<Json<HistoryView>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_HISTORY);
    let key = q.key.as_deref().filter(|k| !k.is_empty());
    caught_up(&caller).await?;
    let (revision, change_sets) = recent(&caller.session.client, &q.namespace, key, limit, q.before).await?;
    Ok(Json(HistoryView { revision, change_sets }))
}

/// Waits until the read model has applied this session's last write (the
/// watermark is the whole stream's: a read in the namespace written waits
/// for it), so a page shown after a save shows the save. A missing key is
/// an answer too; a caller who may not read where it wrote cannot wait.
async fn caught_up(caller: &Caller) -> Result<(), ApiError> {
    let Some(min_revision) = caller.session.min_revision() else { return Ok(()) };
    let options = ReadOptions { min_revision: Some(min_revision), at_revision: None };
    let namespace = caller.session.written_in();
    match caller.session.client.get_with(&namespace, PROBE_KEY, options).await {
        Ok(_) | Err(Error::NotFound { .. } | Error::PermissionDenied { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The key [`caught_up`] reads (whether it exists does not matter).
const PROBE_KEY: &str = "veltrix-console-read-your-writes";

/// The newest `limit` change sets of a namespace (or of one key) older
/// than `before`, newest first, and the revision they were read up to.
/// History pages run oldest first, and revisions count the whole stream,
/// so the window read grows until it holds enough (or reaches the oldest
/// retained).
async fn recent(
    client: &Client,
    namespace: &str,
    key: Option<&str>,
    limit: usize,
    before: Option<Revision>,
) -> Result<(Revision, Vec<ChangeSet>), Error> {
    let head = match before {
        Some(before) => before.saturating_sub(1),
        None => client.revision(namespace).await?,
    };
    if head == 0 {
        return Ok((head, Vec::new()));
    }
    let newest = |mut sets: Vec<ChangeSet>| {
        sets.reverse();
        sets.truncate(limit);
        (head, sets)
    };
    let mut window: u64 = 256;
    loop {
        let from = head.saturating_sub(window).saturating_add(1);
        let options = HistoryOptions { from_revision: Some(from), to_revision: Some(head), limit: None };
        let sets = match client.history(namespace, key, options).await {
            Ok(sets) => sets,
            // Older than the retained history: all that is kept is here.
            Err(Error::Compacted { .. }) => {
                let options = HistoryOptions { from_revision: None, ..options };
                return Ok(newest(client.history(namespace, key, options).await?));
            }
            Err(e) => return Err(e),
        };
        if sets.len() >= limit || from <= 1 {
            return Ok(newest(sets));
        }
        window = window.saturating_mul(8);
    }
}

#[derive(Deserialize)]
pub struct DiffQuery {
    namespace: String,
    from: Option<Revision>,
    to_namespace: Option<String>,
    to: Option<Revision>,
    #[serde(default)]
    prefix: String,
}

pub async fn diff(caller: Caller, Params(q): Params<DiffQuery>) -> Result<Json<veltrix_client::Differences>, ApiError> {
    let options = DiffOptions {
        from_revision: q.from,
        to_namespace: q.to_namespace.unwrap_or_default(),
        to_revision: q.to,
        prefix: q.prefix,
    };
    caught_up(&caller).await?;
    Ok(Json(caller.session.client.diff(&q.namespace, &options).await?))
}

#[derive(Deserialize)]
pub struct NamespaceQuery {
    namespace: String,
    revision: Option<Revision>,
}

pub async fn schemas(
    caller: Caller,
    Params(q): Params<NamespaceQuery>,
) -> Result<Json<Vec<veltrix_client::SchemaInfo>>, ApiError> {
    caught_up(&caller).await?;
    Ok(Json(caller.session.client.schemas(&q.namespace, q.revision).await?))
}

#[derive(Serialize)]
pub struct FleetView {
    clients: Vec<veltrix_client::ClientInfo>,
    status: RevisionStatus,
}

pub async fn clients(caller: Caller, Params(q): Params<NamespaceQuery>) -> Result<Json<FleetView>, ApiError> {
    let client = &caller.session.client;
    caught_up(&caller).await?;
    let clients = client.clients(&q.namespace, &ClientFilter::default()).await?;
    let status = client.revision_status(&q.namespace, q.revision).await?;
    Ok(Json(FleetView { clients, status }))
}

pub async fn rollouts(
    caller: Caller,
    Params(q): Params<NamespaceQuery>,
) -> Result<Json<Vec<veltrix_client::Rollout>>, ApiError> {
    let client = &caller.session.client;
    caught_up(&caller).await?;
    let mut rollouts = client.rollouts(&q.namespace).await?;
    // The live one with its cohort now (the listing carries no cohort).
    if let Some(live) = rollouts.iter_mut().find(|r| r.is_live())
        && let Ok(full) = client.rollout(&q.namespace, Some(&live.id)).await
    {
        *live = full;
    }
    Ok(Json(rollouts))
}
