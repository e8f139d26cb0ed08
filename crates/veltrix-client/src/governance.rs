//! Governance: where a change came from (its origin), the JSON Schemas of a
//! namespace, who last set each key (Blame), and deleting a namespace.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use veltrix_proto::v1::{
    self, BlameRequest, DeleteNamespaceRequest, DeleteSchemaRequest, ListSchemasRequest, SetSchemaRequest, origin::Kind,
};

use crate::{Client, Computed, Diff, Result, Revision, client::new_request_id, types::time};

/// What kind of operation made a change set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// Put, Delete or Apply.
    #[default]
    Write,
    Rollback,
    Promotion,
    /// SetSchema or DeleteSchema.
    Schema,
    NamespaceDelete,
    /// A rollout's transition, or its target committed at completion.
    Rollout,
    /// Written by a newer version.
    Unknown,
}

/// Why a change set was made: "rolled back to 41", "promoted from
/// payments/staging@88".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    pub kind: OriginKind,
    /// The namespace rolled back (Rollback) or promoted from (Promotion).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
    /// The revision rolled back to, or promoted from.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub source_revision: Revision,
}

fn is_zero(r: &Revision) -> bool {
    *r == 0
}

impl From<Option<v1::Origin>> for Origin {
    fn from(o: Option<v1::Origin>) -> Self {
        let Some(o) = o else { return Self::default() };
        let kind = match Kind::try_from(o.kind) {
            Ok(Kind::Unspecified | Kind::Write) => OriginKind::Write,
            Ok(Kind::Rollback) => OriginKind::Rollback,
            Ok(Kind::Promotion) => OriginKind::Promotion,
            Ok(Kind::Schema) => OriginKind::Schema,
            Ok(Kind::NamespaceDelete) => OriginKind::NamespaceDelete,
            Ok(Kind::Rollout) => OriginKind::Rollout,
            Err(_) => OriginKind::Unknown,
        };
        Self { kind, source_namespace: o.source_namespace, source_revision: o.source_revision }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            OriginKind::Write => f.write_str("write"),
            OriginKind::Rollback => write!(f, "rolled back to {}", self.source_revision),
            OriginKind::Promotion => write!(f, "promoted from {}@{}", self.source_namespace, self.source_revision),
            OriginKind::Schema => f.write_str("schema change"),
            OriginKind::NamespaceDelete => f.write_str("namespace deleted"),
            OriginKind::Rollout => f.write_str("rollout"),
            OriginKind::Unknown => f.write_str("unknown origin"),
        }
    }
}

/// A change to the schema of a key pattern; `schema` is `None` when it was
/// deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    pub key_pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

impl From<v1::SchemaChange> for SchemaChange {
    fn from(c: v1::SchemaChange) -> Self {
        let set = c.op == v1::schema_change::Op::Set as i32;
        Self { key_pattern: c.key_pattern, schema: set.then_some(c.schema) }
    }
}

/// A schema in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaInfo {
    pub key_pattern: String,
    pub schema: String,
    /// The revision that set it.
    pub revision: Revision,
}

/// Who is responsible for a live key's value: the change set that last set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blamed {
    pub key: String,
    pub mod_revision: Revision,
    pub actor: String,
    pub reason: String,
    #[serde(with = "crate::types::opt_time")]
    pub time: Option<SystemTime>,
    pub request_id: String,
    pub origin: Origin,
}

/// Options of SetSchema, DeleteSchema and DeleteNamespace.
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {
    /// The namespace's current revision must be this (else a conflict).
    pub expected_revision: Option<Revision>,
    /// Check, append nothing.
    pub dry_run: bool,
    /// Idempotency key; one is generated when empty.
    pub request_id: Option<String>,
    pub reason: String,
}

impl Client {
    /// Sets the JSON Schema (draft 2020-12) that values of keys matching
    /// `key_pattern` must satisfy; answers the revision.
    pub async fn set_schema(
        &self,
        namespace: &str,
        key_pattern: &str,
        schema: &str,
        options: &AdminOptions,
    ) -> Result<Revision> {
        let message = SetSchemaRequest {
            namespace: namespace.into(),
            key_pattern: key_pattern.into(),
            schema: schema.into(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
            dry_run: options.dry_run,
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(c.set_schema(r).await?.into_inner().revision) }
        })
        .await
    }

    pub async fn delete_schema(&self, namespace: &str, key_pattern: &str, options: &AdminOptions) -> Result<Revision> {
        let message = DeleteSchemaRequest {
            namespace: namespace.into(),
            key_pattern: key_pattern.into(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
            dry_run: options.dry_run,
        };
        self.retry(|| {
            let (mut c, r) = (self.command.clone(), self.request(message.clone()));
            async move { Ok(c.delete_schema(r).await?.into_inner().revision) }
        })
        .await
    }

    /// The schemas in force (as of `at_revision`, else now), by pattern.
    pub async fn schemas(&self, namespace: &str, at_revision: Option<Revision>) -> Result<Vec<SchemaInfo>> {
        let message = ListSchemasRequest { namespace: namespace.into(), at_revision };
        let answer = self
            .retry(|| {
                let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                async move { Ok(q.list_schemas(r).await?.into_inner()) }
            })
            .await?;
        Ok(answer
            .schemas
            .into_iter()
            .map(|s| SchemaInfo { key_pattern: s.key_pattern, schema: s.schema, revision: s.revision })
            .collect())
    }

    /// Deletes every key and schema of a namespace in one change set.
    pub async fn delete_namespace(&self, namespace: &str, options: &AdminOptions) -> Result<Computed> {
        let message = DeleteNamespaceRequest {
            namespace: namespace.into(),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
            dry_run: options.dry_run,
        };
        let answer = self
            .retry(|| {
                let (mut c, r) = (self.command.clone(), self.request(message.clone()));
                async move { Ok(c.delete_namespace(r).await?.into_inner()) }
            })
            .await?;
        Ok(Computed {
            revision: answer.revision,
            changes: answer.changes.into_iter().map(Diff::from).collect(),
            schema_changes: answer.schema_changes.into_iter().map(SchemaChange::from).collect(),
        })
    }

    /// Each live key under `prefix` with the change set that last set it
    /// (as of `at_revision`, else now), in key order, all pages.
    pub async fn blame(&self, namespace: &str, prefix: &str, at_revision: Option<Revision>) -> Result<Vec<Blamed>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = BlameRequest {
                namespace: namespace.into(),
                prefix: prefix.into(),
                at_revision,
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .retry(|| {
                    let (mut q, r) = (self.query.clone(), self.request(message.clone()));
                    async move { Ok(q.blame(r).await?.into_inner()) }
                })
                .await?;
            out.extend(page.entries.into_iter().map(|e| Blamed {
                key: e.key,
                mod_revision: e.mod_revision,
                actor: e.actor,
                reason: e.reason,
                time: time(e.time),
                request_id: e.request_id,
                origin: Origin::from(e.origin),
            }));
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            // Later pages answer as of the first page's revision.
            page_token = page.next_page_token;
        }
    }
}
