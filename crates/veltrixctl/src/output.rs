//! Printing results: tables for people, JSON or YAML for scripts.

use std::time::SystemTime;

use serde::Serialize;
use veltrix_client::{ChangeSet, Entry, NamespaceInfo, OriginKind, WatchEvent, encode_value, rfc3339};

use crate::cli::Output;

/// Prints `value` as JSON or YAML.
pub fn structured<T: Serialize>(format: Output, value: &T) -> Result<(), String> {
    let text = match format {
        Output::Yaml => yaml_serde::to_string(value).map_err(|e| e.to_string())?,
        _ => serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n",
    };
    print!("{text}");
    Ok(())
}

/// `value` as a table (drawn by `table`) or as JSON/YAML.
pub fn show<T: Serialize>(format: Output, value: &T, table: impl FnOnce(&T)) -> Result<(), crate::Failure> {
    match format {
        Output::Table => {
            table(value);
            Ok(())
        }
        f => structured(f, value).map_err(crate::other),
    }
}

/// Whole seconds, for tables.
pub fn time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| {
            let text = rfc3339(t);
            match text.split_once('.') {
                Some((secs, _)) => format!("{secs}Z"),
                None => text,
            }
        },
    )
}

/// Text for a terminal: control characters (newlines, escape sequences)
/// written as escapes, so a value cannot move the cursor or recolour the
/// screen. `get --raw` is the way to the bytes.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = printable(s);
    if one_line.chars().count() <= max {
        one_line
    } else {
        one_line.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| printable(cell)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

pub fn entry(e: &Entry) {
    let rows = [
        ("key", e.key.clone()),
        ("value", encode_value(&e.value)),
        ("content_type", e.content_type.clone()),
        ("create_revision", e.create_revision.to_string()),
        ("mod_revision", e.mod_revision.to_string()),
        ("version", e.version.to_string()),
        ("updated_at", time(e.updated_at)),
        ("updated_by", e.updated_by.clone()),
    ];
    for (name, value) in rows {
        if !value.is_empty() {
            println!("{name:<16} {}", printable(&value));
        }
    }
}

pub fn entries(list: &[Entry]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![e.key.clone(), e.mod_revision.to_string(), e.version.to_string(), shorten(&encode_value(&e.value), 60)]
        })
        .collect();
    table(&["KEY", "REVISION", "VERSION", "VALUE"], &rows);
}

pub fn change_sets(list: &[ChangeSet]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            // Not a plain write: say so first ("rolled back to 41: ...").
            let origin = (c.origin.kind != OriginKind::Write).then(|| format!("({})", c.origin));
            let keys = c.changes.iter().map(|k| match &k.value {
                Some(v) => format!("{}={}", k.key, shorten(&encode_value(v), 30)),
                None => format!("-{}", k.key),
            });
            let schemas = c.schema_changes.iter().map(|s| match s.schema {
                Some(_) => format!("schema:{}", s.key_pattern),
                None => format!("-schema:{}", s.key_pattern),
            });
            let changes = origin.into_iter().chain(keys).chain(schemas).collect::<Vec<_>>().join(" ");
            vec![c.revision.to_string(), time(c.time), c.actor.clone(), shorten(&c.reason, 30), changes]
        })
        .collect();
    table(&["REVISION", "TIME", "ACTOR", "REASON", "CHANGES"], &rows);
}

pub fn namespaces(list: &[NamespaceInfo]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            let name = if n.deleted { format!("{} (deleted)", n.name) } else { n.name.clone() };
            vec![name, n.revision.to_string(), n.key_count.to_string()]
        })
        .collect();
    table(&["NAMESPACE", "REVISION", "KEYS"], &rows);
}

/// One watch event: a line (table, JSON) or a document (YAML).
pub fn watch_event(format: Output, event: &WatchEvent) -> Result<(), String> {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Line<'a> {
        Snapshot { revision: u64, entries: &'a [Entry] },
        Change(&'a ChangeSet),
        Progress { revision: u64 },
    }
    let line = match event {
        WatchEvent::Snapshot { entries, revision } => Line::Snapshot { revision: *revision, entries },
        WatchEvent::Changes(c) => Line::Change(c),
        WatchEvent::Progress(revision) => Line::Progress { revision: *revision },
    };
    match format {
        Output::Json => println!("{}", serde_json::to_string(&line).map_err(|e| e.to_string())?),
        Output::Yaml => print!("---\n{}", yaml_serde::to_string(&line).map_err(|e| e.to_string())?),
        Output::Table => match event {
            WatchEvent::Snapshot { entries, revision } => {
                for e in entries {
                    println!("{revision} snapshot {}={}", e.key, printable(&encode_value(&e.value)));
                }
            }
            WatchEvent::Changes(c) => {
                for k in &c.changes {
                    match &k.value {
                        Some(v) => println!("{} set {}={}", c.revision, k.key, printable(&encode_value(v))),
                        None => println!("{} delete {}", c.revision, k.key),
                    }
                }
                for s in &c.schema_changes {
                    let op = if s.schema.is_some() { "set" } else { "delete" };
                    println!("{} schema {op} {}", c.revision, printable(&s.key_pattern));
                }
            }
            WatchEvent::Progress(_) => {}
        },
    }
    Ok(())
}
