//! "How does the fleet stand on revision R": the clients whose prefix R
//! touched, counted by how they stand on it, with their rejections grouped.

use std::{collections::BTreeMap, time::SystemTime};

use super::{ClientRecord, ClientState, Step, Timing};
use crate::Revision;

/// What a revision changed, to tell which clients it concerns.
#[derive(Debug, Clone, Default)]
pub struct Touch {
    pub keys: Vec<String>,
    /// It changed the namespace itself (its schemas): every client.
    pub whole_namespace: bool,
}

impl Touch {
    /// Does it concern a client watching `prefix`?
    pub fn covers(&self, prefix: &str) -> bool {
        self.whole_namespace || prefix.is_empty() || self.keys.iter().any(|k| k.starts_with(prefix))
    }
}

/// Clients that rejected a revision the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionGroup {
    pub step: Step,
    pub error: String,
    pub count: u32,
    /// The first few, in client id order.
    pub client_ids: Vec<String>,
}

/// The counts add up to the clients the revision concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionStatus {
    pub revision: Revision,
    pub applied: u32,
    pub pending: u32,
    pub stale: u32,
    pub rejected: u32,
    pub disconnected: u32,
    /// Largest first, then by step and error.
    pub rejections: Vec<RejectionGroup>,
}

/// Client ids named per rejection group.
const NAMED: usize = 10;

/// How `records` (one namespace's) stand on `revision`, committed at
/// `committed_at`, which changed `touch`.
pub fn revision_status<'a>(
    records: impl IntoIterator<Item = &'a ClientRecord>,
    revision: Revision,
    committed_at: Option<SystemTime>,
    touch: &Touch,
    now: SystemTime,
    timing: &Timing,
) -> RevisionStatus {
    let mut status = RevisionStatus { revision, ..RevisionStatus::default() };
    let mut records: Vec<_> = records.into_iter().filter(|r| touch.covers(&r.prefix)).collect();
    records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut rejected = Vec::new();
    for record in records {
        let counter = match record.standing(revision, committed_at, now, timing) {
            ClientState::Synced => &mut status.applied,
            ClientState::Pending => &mut status.pending,
            ClientState::Stale => &mut status.stale,
            ClientState::Disconnected => &mut status.disconnected,
            ClientState::Rejected => {
                rejected.push(record);
                &mut status.rejected
            }
        };
        *counter = counter.saturating_add(1);
    }
    status.rejections = group_rejections(rejected);
    status
}

/// The last errors of `records`, grouped by step and error, largest group
/// first, each naming its first few clients in client id order.
pub fn group_rejections<'a>(records: impl IntoIterator<Item = &'a ClientRecord>) -> Vec<RejectionGroup> {
    let mut records: Vec<_> = records.into_iter().collect();
    records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut groups: BTreeMap<(Step, String), (u32, Vec<String>)> = BTreeMap::new();
    for e in records.into_iter().filter_map(|r| r.last_error.as_ref().map(|e| (r, e))) {
        let (record, e) = e;
        let group = groups.entry((e.step, e.error.clone())).or_default();
        group.0 = group.0.saturating_add(1);
        if group.1.len() < NAMED {
            group.1.push(record.client_id.as_str().to_owned());
        }
    }
    let mut out: Vec<_> = groups
        .into_iter()
        .map(|((step, error), (count, client_ids))| RejectionGroup { step, error, count, client_ids })
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.count));
    out
}
