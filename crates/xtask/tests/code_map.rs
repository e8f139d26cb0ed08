//! ARCHITECTURE.md's code map matches the code: every workspace crate has a
//! row, and each crate depends only on the watched crates its row's "may
//! depend on" column names (`cargo metadata`).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

/// Crates outside the workspace that do I/O or fix the wire: using one is
/// an architectural decision, so the map must say so.
const WATCHED: &[&str] = &[
    "async-nats",
    "axum",
    "redis",
    "tokio",
    "tonic",
    "tonic-health",
    "tonic-reflection",
    "prost",
    "metrics",
    "metrics-exporter-prometheus",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "tracing-opentelemetry",
];

/// Row path (e.g. `crates/veltrix-domain`) → the backticked names of its last column.
fn code_map(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section = architecture.split("## Code map").nth(1).expect("a code map section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let path = line.trim_start_matches("| `").split('`').next().unwrap().to_owned();
        let allowed = line.trim_end().trim_end_matches('|').rsplit(" | ").next().unwrap();
        let names = allowed.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        rows.insert(path, names);
    }
    rows
}

#[test]
fn every_crate_depends_only_on_what_the_code_map_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let rows = code_map(&architecture);
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let workspace: BTreeSet<&str> = packages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let mut wrong = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        let dir = manifest.parent().unwrap().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let Some(allowed) = rows.get(&dir) else {
            wrong.push(format!("{name} ({dir}) has no row in the code map"));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            let normal = dep["kind"].is_null();
            let watched = workspace.contains(dep_name) || WATCHED.contains(&dep_name);
            if normal && watched && !allowed.contains(dep_name) {
                wrong.push(format!("{name} depends on {dep_name}, which its row does not allow"));
            }
        }
    }
    for path in rows.keys() {
        assert!(root.join(path).join("Cargo.toml").exists(), "the code map names {path}, which is not a crate");
    }
    assert!(wrong.is_empty(), "ARCHITECTURE.md's code map and the code disagree:\n{}", wrong.join("\n"));
}

#[test]
fn the_map_is_read_as_written() {
    let rows =
        code_map("## Code map\n\n| crate | owns | may |\n| `crates/a` | x | `b`, `tokio` (prose) |\n\n## Next\n");
    assert_eq!(rows["crates/a"], BTreeSet::from(["b".to_owned(), "tokio".to_owned()]));
}
