//! `veltrixctl apply`: a change set from a YAML or JSON file, and its
//! dry run (the diff against the current state).
//!
//! ```yaml
//! reason: rotate the database password
//! changes:
//!   - key: db.url
//!     value: postgres://db-2
//!     content_type: text/plain    # optional
//!     expected_revision: 12       # optional compare-and-set (0: must not exist)
//!   - key: feature.old
//!     delete: true
//! ```
//! Values are text; binary values are written `base64:...`.

use serde::{Deserialize, Serialize};
use veltrix_client::{Change, ChangeOp, Client, Entry, Error, decode_value, encode_value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFile {
    #[serde(default)]
    pub reason: Option<String>,
    pub changes: Vec<FileChange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub expected_revision: Option<u64>,
    #[serde(default)]
    pub delete: bool,
}

/// Parses the file (YAML, which includes JSON) into changes.
pub fn parse(text: &str) -> Result<(Option<String>, Vec<Change>), String> {
    let file: ChangeFile = yaml_serde::from_str(text).map_err(|e| format!("invalid change file: {e}"))?;
    let mut changes = Vec::with_capacity(file.changes.len());
    for (i, c) in file.changes.into_iter().enumerate() {
        let op = match (c.delete, c.value) {
            (true, None) => ChangeOp::Delete,
            (false, Some(v)) => ChangeOp::Set {
                value: decode_value(&v).map_err(|e| format!("changes[{i}].value: {e}"))?,
                content_type: c.content_type.unwrap_or_default(),
            },
            (true, Some(_)) => return Err(format!("changes[{i}]: either a value or delete: true, not both")),
            (false, None) => return Err(format!("changes[{i}]: needs a value or delete: true")),
        };
        changes.push(Change { key: c.key, expected_revision: c.expected_revision, op });
    }
    Ok((file.reason, changes))
}

/// What one change would do.
#[derive(Debug, Serialize)]
pub struct Planned {
    pub key: String,
    /// create, update, unchanged, delete, or missing (a delete of an absent key).
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// Why the change set would be refused, if it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Compares each change with the key's current state (read after `min`).
pub async fn plan(client: &Client, namespace: &str, changes: &[Change]) -> Result<Vec<Planned>, Error> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let current: Option<Entry> = match client.get(namespace, &c.key).await {
            Ok(e) => Some(e),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let current_revision = current.as_ref().map(|e| e.mod_revision);
        let (action, new) = match (&c.op, &current) {
            (ChangeOp::Set { value, .. }, None) => ("create", Some(encode_value(value))),
            (ChangeOp::Set { value, .. }, Some(e)) if e.value == *value => ("unchanged", Some(encode_value(value))),
            (ChangeOp::Set { value, .. }, Some(_)) => ("update", Some(encode_value(value))),
            (ChangeOp::Delete, Some(_)) => ("delete", None),
            (ChangeOp::Delete, None) => ("missing", None),
        };
        let refused = match (c.expected_revision, current_revision.unwrap_or(0)) {
            (Some(expected), actual) if expected != actual => {
                Some(format!("expected_revision {expected} but the key is at {actual}"))
            }
            _ if action == "missing" => Some("the key does not exist".to_owned()),
            _ => None,
        };
        out.push(Planned {
            key: c.key.clone(),
            action,
            current: current.as_ref().map(|e| encode_value(&e.value)),
            current_revision,
            new,
            refused,
        });
    }
    Ok(out)
}

/// The diff for people.
pub fn print_plan(plan: &[Planned]) {
    for p in plan {
        let line = match p.action {
            "create" => format!("+ {} = {}", p.key, p.new.as_deref().unwrap_or_default()),
            "update" => format!(
                "~ {}: {} -> {}",
                p.key,
                p.current.as_deref().unwrap_or_default(),
                p.new.as_deref().unwrap_or_default()
            ),
            "delete" => format!("- {} (was {})", p.key, p.current.as_deref().unwrap_or_default()),
            "missing" => format!("- {} (does not exist)", p.key),
            _ => format!("  {} (unchanged)", p.key),
        };
        match &p.refused {
            Some(why) => println!("{line}   ! refused: {why}"),
            None => println!("{line}"),
        }
    }
}
