//! The write endpoints. Each needs the session's CSRF token ([`Writer`]) and
//! a reason; key writes are compare-and-set (the revision the editor
//! started from), so a concurrent change comes back as a conflict (409)
//! and is never overwritten. Rollback, promote and schema changes take
//! `dry_run` for their preview.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use veltrix_client::{
    AdminOptions, Computed, PromoteOptions, Revision, RollbackOptions, Rollout, RolloutAction, RolloutActionOptions,
    WriteOptions,
};

use super::{ApiError, Shared, Writer, extract::Body};

/// The longest reason recorded.
const MAX_REASON: usize = 1024;

fn reason(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid("reason", "must say why the change is made"));
    }
    if text.len() > MAX_REASON {
        return Err(ApiError::invalid("reason", format!("must be at most {MAX_REASON} bytes")));
    }
    Ok(text.to_owned())
}

#[derive(Deserialize)]
pub struct PutForm {
    namespace: String,
    key: String,
    value: String,
    #[serde(default)]
    content_type: String,
    /// The key's mod_revision the edit started from (0: a new key).
    expected_revision: Option<Revision>,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
pub struct Written {
    revision: Revision,
}

pub async fn put(Writer(caller): Writer, Body(form): Body<PutForm>) -> Result<Json<Written>, ApiError> {
    let expected = form.expected_revision.ok_or_else(|| {
        ApiError::invalid("expected_revision", "is required: the revision the edit started from (0 for a new key)")
    })?;
    let options = WriteOptions {
        expected_revision: Some(expected),
        reason: reason(&form.reason)?,
        request_id: None,
        content_type: form.content_type,
    };
    // Values travel as the API shows them: text, or `base64:` and the bytes.
    let value = veltrix_client::decode_value(&form.value).map_err(|rule| ApiError::invalid("value", rule))?;
    let revision = caller.session.client.put_with(&form.namespace, &form.key, value, &options).await?;
    caller.session.wrote(revision, &form.namespace);
    Ok(Json(Written { revision }))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    namespace: String,
    key: String,
    expected_revision: Option<Revision>,
    #[serde(default)]
    reason: String,
}

pub async fn delete(Writer(caller): Writer, Body(form): Body<DeleteForm>) -> Result<Json<Written>, ApiError> {
    let expected = form
        .expected_revision
        .ok_or_else(|| ApiError::invalid("expected_revision", "is required: the revision of the key being deleted"))?;
    let options =
        WriteOptions { expected_revision: Some(expected), reason: reason(&form.reason)?, ..Default::default() };
    let revision = caller.session.client.delete_with(&form.namespace, &form.key, &options).await?;
    caller.session.wrote(revision, &form.namespace);
    Ok(Json(Written { revision }))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    namespace: String,
    to_revision: Revision,
    #[serde(default)]
    prefix: String,
    expected_revision: Option<Revision>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: String,
}

pub async fn rollback(Writer(caller): Writer, Body(form): Body<RollbackForm>) -> Result<Json<Computed>, ApiError> {
    let options = RollbackOptions {
        prefix: form.prefix,
        expected_revision: form.expected_revision,
        dry_run: form.dry_run,
        request_id: None,
        reason: if form.dry_run { form.reason } else { reason(&form.reason)? },
    };
    let computed = caller.session.client.rollback(&form.namespace, form.to_revision, &options).await?;
    caller.session.wrote(computed.revision, &form.namespace);
    Ok(Json(computed))
}

#[derive(Deserialize)]
pub struct PromoteForm {
    source: String,
    target: String,
    source_revision: Option<Revision>,
    /// Only these keys; empty: every key.
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    delete_missing: bool,
    expected_revision: Option<Revision>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: String,
}

pub async fn promote(Writer(caller): Writer, Body(form): Body<PromoteForm>) -> Result<Json<Computed>, ApiError> {
    let options = PromoteOptions {
        source_revision: form.source_revision,
        prefix: String::new(),
        delete_missing: form.delete_missing,
        keys: form.keys,
        expected_revision: form.expected_revision,
        dry_run: form.dry_run,
        request_id: None,
        reason: if form.dry_run { form.reason } else { reason(&form.reason)? },
    };
    let computed = caller.session.client.promote(&form.source, &form.target, &options).await?;
    caller.session.wrote(computed.revision, &form.target);
    Ok(Json(computed))
}

#[derive(Deserialize)]
pub struct SchemaForm {
    namespace: String,
    key_pattern: String,
    #[serde(default)]
    schema: String,
    expected_revision: Option<Revision>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: String,
}

fn admin(form: &SchemaForm) -> Result<AdminOptions, ApiError> {
    Ok(AdminOptions {
        expected_revision: form.expected_revision,
        dry_run: form.dry_run,
        request_id: None,
        reason: if form.dry_run { form.reason.clone() } else { reason(&form.reason)? },
    })
}

/// Sets a schema; with `dry_run`, checks it against the current values
/// (the service refuses one that a current value breaks, naming it).
pub async fn set_schema(Writer(caller): Writer, Body(form): Body<SchemaForm>) -> Result<Json<Written>, ApiError> {
    let options = admin(&form)?;
    let client = &caller.session.client;
    let revision = client.set_schema(&form.namespace, &form.key_pattern, &form.schema, &options).await?;
    caller.session.wrote(revision, &form.namespace);
    Ok(Json(Written { revision }))
}

pub async fn delete_schema(Writer(caller): Writer, Body(form): Body<SchemaForm>) -> Result<Json<Written>, ApiError> {
    let options = admin(&form)?;
    let revision = caller.session.client.delete_schema(&form.namespace, &form.key_pattern, &options).await?;
    caller.session.wrote(revision, &form.namespace);
    Ok(Json(Written { revision }))
}

#[derive(Deserialize)]
pub struct RolloutForm {
    namespace: String,
    id: String,
    /// pause, resume, abort or promote.
    action: String,
    expected_version: Option<u64>,
    #[serde(default)]
    reason: String,
}

pub async fn rollout_action(
    State(_): State<Shared>,
    Writer(caller): Writer,
    Body(form): Body<RolloutForm>,
) -> Result<Json<Rollout>, ApiError> {
    let action = match form.action.as_str() {
        "pause" => RolloutAction::Pause,
        "resume" => RolloutAction::Resume,
        "abort" => RolloutAction::Abort,
        "promote" => RolloutAction::Promote,
        _ => return Err(ApiError::invalid("action", "must be pause, resume, abort or promote")),
    };
    let options = RolloutActionOptions {
        expected_version: form.expected_version,
        request_id: None,
        reason: reason(&form.reason)?,
    };
    Ok(Json(caller.session.client.rollout_action(action, &form.namespace, &form.id, &options).await?))
}
