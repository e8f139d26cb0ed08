//! `veltrixctl apply`: a change set from a YAML or JSON file, and its
//! dry run (the diff against the current state). The file is either a
//! change set:
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
//! or the desired state, a plain map of key → value as `veltrixctl export`
//! writes it (see [`crate::export`]): the keys whose value or content type
//! differ are set, and with `--delete-missing` the keys the file lacks are
//! deleted, each with compare-and-set on the revision it was read at.
//! Values are text; binary values are written `base64:...`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use veltrix_client::{Change, ChangeOp, Client, Entry, Error, decode_value, encode_value};

use crate::{Failure, cli::Output, exit, export, other, output, read_input, revision, usage};

/// The flags of `veltrixctl apply`.
pub struct Options {
    pub dry_run: bool,
    pub delete_missing: bool,
    pub prefix: String,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

/// Reads and parses the file ("-": standard input).
pub fn read(path: &std::path::Path, delete_missing: bool) -> Result<File, Failure> {
    let text = String::from_utf8(read_input(path)?).map_err(|_| usage("the file is not UTF-8"))?;
    let file = parse(&text).map_err(|e| Failure { code: exit::INVALID, message: e })?;
    if delete_missing && matches!(file, File::ChangeSet { .. }) {
        return Err(usage("--delete-missing is for a desired state (a map of key -> value), not a change set"));
    }
    Ok(file)
}

/// Applies the file, or with `--dry-run` prints what it would change and
/// ends with the status the real apply would end with.
pub async fn run(client: &Client, namespace: &str, file: File, o: Options, out: Output) -> Result<(), Failure> {
    let (file_reason, changes, plan) = match file {
        File::ChangeSet { reason, changes } => {
            let plan = if o.dry_run { plan(client, namespace, &changes).await? } else { Vec::new() };
            (reason, changes, plan)
        }
        File::Desired(desired) => {
            let listing = client.list(namespace, &o.prefix).await?;
            let changes = desired_changes(&listing.entries, &desired, &o.prefix, o.delete_missing)
                .map_err(|e| Failure { code: exit::INVALID, message: e })?;
            if changes.is_empty() {
                return unchanged(out, listing.revision);
            }
            let current = listing.entries.into_iter().map(|e| (e.key.clone(), e)).collect();
            (None, changes.clone(), plan_from(&current, &changes))
        }
    };
    if o.dry_run {
        match out {
            Output::Table => print_plan(&plan),
            f => output::structured(f, &serde_json::json!({ "dry_run": true, "changes": plan })).map_err(other)?,
        }
        return match plan.iter().find_map(|p| p.refused.as_ref().map(|r| (p.action, r))) {
            Some(("missing", why)) => Err(Failure { code: exit::NOT_FOUND, message: why.clone() }),
            Some((_, why)) => Err(Failure { code: exit::CONFLICT, message: why.clone() }),
            None => Ok(()),
        };
    }
    let options = veltrix_client::WriteOptions {
        reason: o.reason.or(file_reason).unwrap_or_default(),
        request_id: o.request_id,
        ..Default::default()
    };
    let r = client.apply(namespace, changes, &options).await?;
    revision(out, r)
}

/// A desired state that is already the current one: nothing is appended.
fn unchanged(out: Output, at: u64) -> Result<(), Failure> {
    match out {
        Output::Table => {
            println!("no changes (revision {at})");
            Ok(())
        }
        f => output::structured(f, &serde_json::json!({ "revision": at, "changed": false })).map_err(other),
    }
}

/// What an apply file says.
pub enum File {
    ChangeSet {
        reason: Option<String>,
        changes: Vec<Change>,
    },
    /// Key → (value, content type).
    Desired(BTreeMap<String, (Bytes, String)>),
}

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

/// Parses the file (YAML, which includes JSON): a change set when it has a
/// list of `changes`, else a desired state.
pub fn parse(text: &str) -> Result<File, String> {
    let value: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| format!("invalid file: {e}"))?;
    if value.get("changes").is_some_and(yaml_serde::Value::is_sequence) {
        let file: ChangeFile = yaml_serde::from_value(value).map_err(|e| format!("invalid change file: {e}"))?;
        let (reason, changes) = change_set(file)?;
        return Ok(File::ChangeSet { reason, changes });
    }
    desired(value).map(File::Desired)
}

fn desired(value: yaml_serde::Value) -> Result<BTreeMap<String, (Bytes, String)>, String> {
    let map = match value {
        yaml_serde::Value::Mapping(map) => map,
        yaml_serde::Value::Null => return Ok(BTreeMap::new()),
        _ => return Err("the file must be a map of key -> value, or a change set {reason, changes}".into()),
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_owned) else {
            return Err(format!("every key must be a string, not {key:?}"));
        };
        if key.starts_with("# ") {
            continue; // the header of an export (no key contains a space)
        }
        let value: export::Value = yaml_serde::from_value(value).map_err(|_| {
            format!("{key}: a value must be a string (quote numbers and booleans) or {{value, content_type}}")
        })?;
        out.insert(key.clone(), value.decode().map_err(|e| format!("{key}: {e}"))?);
    }
    Ok(out)
}

/// The changes that make the keys under `prefix` equal to `desired`, each
/// conditional on the revision the key was read at.
pub fn desired_changes(
    current: &[Entry],
    desired: &BTreeMap<String, (Bytes, String)>,
    prefix: &str,
    delete_missing: bool,
) -> Result<Vec<Change>, String> {
    if let Some(outside) = desired.keys().find(|k| !k.starts_with(prefix)) {
        return Err(format!("the file's key {outside} is not under --prefix {prefix}"));
    }
    let current: HashMap<&str, &Entry> = current.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut changes = Vec::new();
    for (key, (value, content_type)) in desired {
        let now = current.get(key.as_str());
        let same = now.is_some_and(|e| e.value == *value && content_type_of(e) == or_text(content_type));
        if !same {
            changes.push(Change {
                key: key.clone(),
                expected_revision: Some(now.map_or(0, |e| e.mod_revision)),
                op: ChangeOp::Set { value: value.clone(), content_type: content_type.clone() },
            });
        }
    }
    if delete_missing {
        let mut gone: Vec<&&Entry> =
            current.values().filter(|e| e.key.starts_with(prefix) && !desired.contains_key(&e.key)).collect();
        gone.sort_by(|a, b| a.key.cmp(&b.key));
        changes.extend(gone.into_iter().map(|e| Change {
            key: e.key.clone(),
            expected_revision: Some(e.mod_revision),
            op: ChangeOp::Delete,
        }));
    }
    Ok(changes)
}

fn content_type_of(e: &Entry) -> &str {
    or_text(&e.content_type)
}

/// An unsaid content type is `text/plain`.
fn or_text(content_type: &str) -> &str {
    if content_type.is_empty() { export::TEXT } else { content_type }
}

fn change_set(file: ChangeFile) -> Result<(Option<String>, Vec<Change>), String> {
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

/// Compares each change with the key's current state, read key by key.
pub async fn plan(client: &Client, namespace: &str, changes: &[Change]) -> Result<Vec<Planned>, Error> {
    let mut current = HashMap::new();
    for c in changes {
        match client.get(namespace, &c.key).await {
            Ok(e) => {
                current.insert(c.key.clone(), e);
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(plan_from(&current, changes))
}

/// Compares each change with `current` (key → entry; absent: no such key).
pub fn plan_from(current: &HashMap<String, Entry>, changes: &[Change]) -> Vec<Planned> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let current = current.get(&c.key);
        let current_revision = current.as_ref().map(|e| e.mod_revision);
        let (action, new) = match (&c.op, &current) {
            (ChangeOp::Set { value, .. }, None) => ("create", Some(encode_value(value))),
            (ChangeOp::Set { value, content_type }, Some(e))
                if e.value == *value && content_type_of(e) == or_text(content_type) =>
            {
                ("unchanged", Some(encode_value(value)))
            }
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
            current: current.map(|e| encode_value(&e.value)),
            current_revision,
            new,
            refused,
        });
    }
    out
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
