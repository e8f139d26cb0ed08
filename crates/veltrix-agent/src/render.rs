//! From a revision's keys to file contents, in memory: one file per key,
//! one document (JSON, YAML, env, properties), or a minijinja template in
//! which a missing key is an error, never an empty string.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow, bail};
use sha2::{Digest, Sha256};
use veltrix_client::Entry;

use crate::config::{Format, Output};

/// The keys of one revision (names relative to the prefix).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub namespace: String,
    pub revision: u64,
    /// Key (without the prefix) → entry.
    pub entries: BTreeMap<String, Entry>,
}

/// What an output will hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Relative path → bytes.
    Files(BTreeMap<String, Vec<u8>>),
    Document(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub outputs: Vec<(Output, Content)>,
    /// SHA-256 over every output, `sha256:<hex>`.
    pub digest: String,
}

/// The key without the watched prefix.
pub fn relative(key: &str, prefix: &str) -> String {
    match key.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() => rest.trim_start_matches('/').to_owned(),
        _ => key.to_owned(),
    }
}

pub fn render(config: &Config, outputs: &[Output]) -> anyhow::Result<Rendered> {
    let mut hash = Sha256::new();
    let mut rendered = Vec::new();
    for output in outputs {
        let content = match output {
            Output::Dir(_) => Content::Files(files(config)?),
            Output::File { format, .. } => Content::Document(document(config, *format)?),
            Output::Template { src, .. } => Content::Document(template(config, src)?),
        };
        match &content {
            Content::Files(files) => {
                for (path, bytes) in files {
                    hash.update((path.len() as u64).to_be_bytes());
                    hash.update(path.as_bytes());
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(bytes);
                }
            }
            Content::Document(bytes) => {
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
        }
        hash.update(b"|");
        rendered.push((output.clone(), content));
    }
    let digest = format!("sha256:{}", hex(&hash.finalize()));
    Ok(Rendered { outputs: rendered, digest })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file per key; a key's `/` makes directories. A key whose path has
/// an empty, `.` or `..` segment is refused: it would name a file outside
/// the directory (or the directory itself).
fn files(config: &Config) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (key, entry) in &config.entries {
        if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
            bail!("key '{key}' cannot be a file in --dir: its path has an empty, '.' or '..' segment");
        }
        let clash = out.keys().any(|k: &String| k.starts_with(&format!("{key}/")) || key.starts_with(&format!("{k}/")));
        if clash {
            bail!("key '{key}' is both a file and a directory in --dir");
        }
        out.insert(key.clone(), entry.value.to_vec());
    }
    Ok(out)
}

fn text<'a>(key: &str, entry: &'a Entry) -> anyhow::Result<&'a str> {
    std::str::from_utf8(&entry.value).map_err(|_| anyhow!("key '{key}' is not UTF-8 text"))
}

/// A value as JSON: parsed when it is JSON, else a string.
fn json_value(key: &str, entry: &Entry) -> anyhow::Result<serde_json::Value> {
    let s = text(key, entry)?;
    if entry.content_type.contains("json") {
        return serde_json::from_str(s).with_context(|| format!("key '{key}' is not valid JSON"));
    }
    Ok(serde_json::Value::String(s.to_owned()))
}

fn json_map(config: &Config) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    config.entries.iter().map(|(k, e)| Ok((k.clone(), json_value(k, e)?))).collect()
}

fn document(config: &Config, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(&json_map(config)?)?;
            out.push(b'\n');
            Ok(out)
        }
        Format::Yaml => Ok(yaml_serde::to_string(&json_map(config)?)?.into_bytes()),
        Format::Env => {
            let mut out = String::new();
            let mut names = BTreeMap::new();
            for (key, entry) in &config.entries {
                let name = env_name(key);
                if let Some(other) = names.insert(name.clone(), key) {
                    bail!("keys '{other}' and '{key}' both become {name} in an env file");
                }
                out.push_str(&format!("{name}=\"{}\"\n", env_escape(text(key, entry)?)));
            }
            Ok(out.into_bytes())
        }
        Format::Properties => {
            let mut out = String::new();
            for (key, entry) in &config.entries {
                out.push_str(&format!(
                    "{}={}\n",
                    properties_escape(key, true),
                    properties_escape(text(key, entry)?, false)
                ));
            }
            Ok(out.into_bytes())
        }
    }
}

/// `db/url` → `DB_URL`; a leading digit gets a `_`.
fn env_name(key: &str) -> String {
    let mut name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

fn env_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Java properties escaping (ISO-8859-1 safe: everything else as `\uXXXX`).
fn properties_escape(v: &str, key: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '=' | ':' | '#' | '!' if key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if key || i == 0 => out.push_str("\\ "),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `config` holds each key (JSON values parsed), `raw` each value as text,
/// plus `namespace` and `revision`. Undefined is an error everywhere.
fn template(config: &Config, src: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let source = std::fs::read_to_string(src).with_context(|| format!("cannot read template {}", src.display()))?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // A config file ends as its template does (minijinja drops the last
    // newline by default).
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let name = src.display().to_string();
    env.add_template(&name, &source).map_err(|e| anyhow!("template {name}: {e}"))?;
    let raw: BTreeMap<&str, &str> =
        config.entries.iter().map(|(k, e)| Ok((k.as_str(), text(k, e)?))).collect::<anyhow::Result<_>>()?;
    let ctx = minijinja::context! {
        config => minijinja::Value::from_serialize(json_map(config)?),
        raw => minijinja::Value::from_serialize(&raw),
        namespace => config.namespace.as_str(),
        revision => config.revision,
    };
    let template = env.get_template(&name).map_err(|e| anyhow!("template {name}: {e}"))?;
    let out = template.render(ctx).map_err(|e| anyhow!("template {name}: {e}"))?;
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, ct: &str) -> Entry {
        Entry {
            key: String::new(),
            value: value.to_owned().into(),
            content_type: ct.into(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            updated_at: None,
            updated_by: String::new(),
        }
    }

    fn config() -> Config {
        let mut entries = BTreeMap::new();
        entries.insert("db/port".to_owned(), entry("5432", ""));
        entries.insert("limits".to_owned(), entry(r#"{"rps": 10}"#, "application/json"));
        entries.insert("motd".to_owned(), entry("say \"hi\" $USER\nbye", ""));
        Config { namespace: "app".into(), revision: 7, entries }
    }

    fn doc(format: Format) -> String {
        String::from_utf8(document(&config(), format).expect("renders")).expect("utf-8")
    }

    #[test]
    fn a_key_cannot_name_a_file_outside_the_directory() {
        for key in ["a/../../etc/passwd", "..", "a/./b", "a//b"] {
            let mut c = config();
            c.entries.insert(key.to_owned(), entry("x", ""));
            let e = files(&c).expect_err(key).to_string();
            assert!(e.contains("segment"), "{key}: {e}");
        }
        assert!(files(&config()).is_ok());
    }

    #[test]
    fn documents_in_every_format() {
        let json: serde_json::Value = serde_json::from_str(&doc(Format::Json)).expect("json");
        assert_eq!(json["limits"]["rps"], 10);
        assert_eq!(json["db/port"], "5432");
        let yaml: serde_json::Value = yaml_serde::from_str(&doc(Format::Yaml)).expect("yaml");
        assert_eq!(yaml, json);
        assert_eq!(
            doc(Format::Env),
            "DB_PORT=\"5432\"\nLIMITS=\"{\\\"rps\\\": 10}\"\nMOTD=\"say \\\"hi\\\" \\$USER\\nbye\"\n"
        );
        assert!(doc(Format::Properties).starts_with("db/port=5432\n"));
        assert_eq!(properties_escape("a=b é", true), "a\\=b\\ \\u00e9");
    }

    #[test]
    fn a_template_sees_keys_and_fails_on_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("t.conf");
        std::fs::write(&src, "port {{ config['db/port'] }} rps {{ config.limits.rps }} r{{ revision }}")
            .expect("write");
        assert_eq!(template(&config(), &src).expect("renders"), b"port 5432 rps 10 r7");
        std::fs::write(&src, "host {{ config['db/host'] }}").expect("write");
        assert!(template(&config(), &src).is_err(), "a missing key is an error");
        std::fs::write(&src, "{% if config.nope %}x{% endif %}").expect("write");
        assert!(template(&config(), &src).is_err(), "even in a condition");
    }

    #[test]
    fn the_digest_follows_the_content_and_keys_lose_the_prefix() {
        let outputs = [Output::Dir("d".into())];
        let a = render(&config(), &outputs).expect("renders");
        let mut changed = config();
        changed.revision = 8;
        assert_eq!(render(&changed, &outputs).expect("renders").digest, a.digest, "the revision alone is not content");
        changed.entries.insert("db/port".into(), entry("5433", ""));
        assert_ne!(render(&changed, &outputs).expect("renders").digest, a.digest);
        assert_eq!(relative("web/db/port", "web/"), "db/port");
        assert_eq!(relative("web/db/port", "web"), "db/port");
        assert_eq!(relative("other", "web/"), "other");
        let mut clash = config();
        clash.entries.insert("db".into(), entry("x", ""));
        assert!(files(&clash).is_err());
    }
}
