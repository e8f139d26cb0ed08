//! Calls whose change set the service computes (Rollback, Promote), and
//! the differences they answer with.

use serde::Serialize;
use veltrix_proto::v1::{self, ChangeSetResponse, DiffRequest, PromoteRequest, RollbackRequest, diff_entry};

use crate::{Client, Entry, Result, Revision, SchemaChange, client::new_request_id};

/// How one key differs between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Only in the later state.
    Added,
    /// Only in the earlier state.
    Removed,
    /// In both, with another value or content type.
    Changed,
}

/// One key that differs: as it was before, and as it is after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub key: String,
    pub kind: DiffKind,
    pub before: Option<Entry>,
    pub after: Option<Entry>,
}

impl From<v1::DiffEntry> for Diff {
    fn from(e: v1::DiffEntry) -> Self {
        let kind = match e.kind() {
            diff_entry::Kind::Added => DiffKind::Added,
            diff_entry::Kind::Removed => DiffKind::Removed,
            diff_entry::Kind::Changed | diff_entry::Kind::Unspecified => DiffKind::Changed,
        };
        Self { key: e.key, kind, before: e.before.map(Entry::from), after: e.after.map(Entry::from) }
    }
}

/// What a computed change set did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Computed {
    /// The new revision; the current one when nothing was appended.
    pub revision: Revision,
    pub changes: Vec<Diff>,
    /// The schemas set or deleted (a whole-namespace rollback, a namespace
    /// deletion).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<SchemaChange>,
}

/// Options of a rollback.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Only keys under this prefix (empty: the whole namespace).
    pub prefix: String,
    /// The namespace's current revision must be this (else a conflict).
    pub expected_revision: Option<Revision>,
    /// Compute the changes, append nothing.
    pub dry_run: bool,
    /// Idempotency key; one is generated when empty, so that retries are safe.
    pub request_id: Option<String>,
    pub reason: String,
}

/// Options of a promotion.
#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    /// The source as of this revision (absent: its latest).
    pub source_revision: Option<Revision>,
    /// Only keys under this prefix (empty: every key).
    pub prefix: String,
    /// Also delete the target's keys under the prefix that the source lacks.
    pub delete_missing: bool,
    /// Only these keys (each under the prefix); empty: every key.
    pub keys: Vec<String>,
    /// The target's current revision must be this (else a conflict).
    pub expected_revision: Option<Revision>,
    pub dry_run: bool,
    pub request_id: Option<String>,
    pub reason: String,
}

fn computed(answer: ChangeSetResponse) -> Computed {
    Computed {
        revision: answer.revision,
        changes: answer.changes.into_iter().map(Diff::from).collect(),
        schema_changes: answer.schema_changes.into_iter().map(SchemaChange::from).collect(),
    }
}

/// The two states a diff compares: a namespace at a revision (absent: the
/// latest applied).
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    pub from_revision: Option<Revision>,
    /// Empty: the same namespace.
    pub to_namespace: String,
    pub to_revision: Option<Revision>,
    pub prefix: String,
}

/// Every key that differs, and the revisions both sides were read at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Differences {
    pub from_revision: Revision,
    pub to_revision: Revision,
    pub entries: Vec<Diff>,
}

impl Client {
    /// The keys (under the prefix) that differ from one state to the other,
    /// in key order, all pages.
    pub async fn diff(&self, from_namespace: &str, options: &DiffOptions) -> Result<Differences> {
        let mut out = Differences { from_revision: 0, to_revision: 0, entries: Vec::new() };
        let mut page_token = String::new();
        loop {
            let message = DiffRequest {
                from_namespace: from_namespace.into(),
                from_revision: options.from_revision,
                to_namespace: options.to_namespace.clone(),
                to_revision: options.to_revision,
                prefix: options.prefix.clone(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .retry(|| {
                    let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                    async move { Ok(q.diff(r).await?.into_inner()) }
                })
                .await?;
            (out.from_revision, out.to_revision) = (page.from_revision, page.to_revision);
            out.entries.extend(page.entries.into_iter().map(Diff::from));
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Makes the target's keys under the prefix equal to the source's, in
    /// one change set of the target.
    pub async fn promote(&self, source: &str, target: &str, options: &PromoteOptions) -> Result<Computed> {
        let message = PromoteRequest {
            source_namespace: source.into(),
            source_revision: options.source_revision,
            target_namespace: target.into(),
            prefix: options.prefix.clone(),
            delete_missing: options.delete_missing,
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
            dry_run: options.dry_run,
            keys: options.keys.clone(),
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(computed(c.promote(r).await?.into_inner())) }
        })
        .await
    }

    /// Makes every key under the prefix as it was right after `to_revision`,
    /// in one change set.
    pub async fn rollback(
        &self,
        namespace: &str,
        to_revision: Revision,
        options: &RollbackOptions,
    ) -> Result<Computed> {
        let message = RollbackRequest {
            namespace: namespace.into(),
            to_revision,
            prefix: options.prefix.clone(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
            dry_run: options.dry_run,
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(computed(c.rollback(r).await?.into_inner())) }
        })
        .await
    }
}
