//! JSON Schemas over keys: a namespace holds schemas, each governing the
//! keys its pattern matches. Every value set on a matching key must be JSON
//! and valid against every matching schema (draft 2020-12), else the change
//! set is refused, naming the key, the JSON pointer and the rule.
//!
//! Schemas change in change sets like keys do (`SchemaChange` in the event),
//! so they are versioned, audited and rolled back with the namespace.

use std::{collections::BTreeMap, fmt, sync::Arc};

use crate::{Key, names::ContentType, validation::ValidationError};

const PATTERN_RULE: &str = "must be spelled like a key (1 to 256 bytes of printable ASCII without spaces, not starting \
     or ending with '/' or '.'), segments separated by '/', each non-empty; '*' matches within a segment, '**' (a whole \
     segment) across segments";

/// The most violations a refusal lists.
pub const MAX_VIOLATIONS: usize = 20;

/// The largest schema document accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// A glob over key segments: `*` matches any run of characters within a
/// segment, `**` (alone as a segment) any number of whole segments, e.g.
/// `services/*/limits` or `features/**`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPattern(String);

impl KeyPattern {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        // Spelled like a key (which bounds its length and characters), in
        // whole segments.
        let ok =
            Key::parse(s).is_ok() && s.split('/').all(|seg| !seg.is_empty() && (seg == "**" || !seg.contains("**")));
        if ok { Ok(Self(s.to_owned())) } else { Err(ValidationError::new("key_pattern", PATTERN_RULE)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key matches, segment by segment.
    pub fn matches(&self, key: &Key) -> bool {
        let pattern: Vec<&str> = self.0.split('/').collect();
        let key: Vec<&str> = key.as_str().split('/').collect();
        // reach[j]: the pattern so far matches the first j key segments.
        let mut reach = vec![false; key.len() + 1];
        reach[0] = true;
        for seg in pattern {
            let mut next = vec![false; key.len() + 1];
            for j in 0..=key.len() {
                if !reach[j] {
                    continue;
                }
                if seg == "**" {
                    next[j..].iter_mut().for_each(|r| *r = true);
                    break;
                }
                if let Some(k) = key.get(j)
                    && segment_matches(seg.as_bytes(), k.as_bytes())
                {
                    next[j + 1] = true;
                }
            }
            reach = next;
        }
        reach[key.len()]
    }
}

/// `*` within one segment, by dynamic programming (no backtracking).
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut on = false;
            for j in 0..=text.len() {
                on |= reach[j];
                next[j] = on;
            }
        } else {
            for j in 0..text.len() {
                next[j + 1] = reach[j] && text[j] == p;
            }
        }
        reach = next;
    }
    reach[text.len()]
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A change to a namespace's schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// The schema for the pattern becomes this document (replacing any).
    Set {
        pattern: KeyPattern,
        schema: String,
    },
    Delete {
        pattern: KeyPattern,
    },
}

impl SchemaChange {
    pub fn pattern(&self) -> &KeyPattern {
        match self {
            Self::Set { pattern, .. } | Self::Delete { pattern } => pattern,
        }
    }
}

/// A schema document that compiled: what the aggregate checks values with.
#[derive(Clone)]
pub struct Schema {
    source: String,
    /// `None` when this version cannot compile a stored document (written by
    /// a newer one): matching values are then refused, never let through.
    validator: Option<Arc<jsonschema::Validator>>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles a document offered by a client: JSON, at most
    /// [`MAX_SCHEMA_BYTES`], a valid draft 2020-12 schema that refers to
    /// nothing outside itself. Errors name the field `schema`.
    pub fn compile(source: &str) -> Result<Self, ValidationError> {
        if source.len() > MAX_SCHEMA_BYTES {
            return Err(ValidationError::new(
                "schema",
                format!("must be at most {MAX_SCHEMA_BYTES} bytes (got {})", source.len()),
            ));
        }
        let document: serde_json::Value = serde_json::from_str(source)
            .map_err(|e| ValidationError::new("schema", format!("must be a JSON document: {e}")))?;
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .offline()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&document)
            .map_err(|e| ValidationError::new("schema", format!("must be a valid JSON Schema (draft 2020-12): {e}")))?;
        Ok(Self { source: source.to_owned(), validator: Some(Arc::new(validator)) })
    }

    /// A stored document, compiled if this version can.
    fn stored(source: &str) -> Self {
        Self::compile(source).unwrap_or_else(|_| Self { source: source.to_owned(), validator: None })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// One way a value breaks a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: Key,
    pub pattern: KeyPattern,
    /// JSON pointer of the failing part of the value (`""`: the whole value).
    pub pointer: String,
    /// The rule broken, without the value itself.
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { String::new() } else { format!(" at {}", self.pointer) };
        write!(f, "key '{}'{at}: {} (schema '{}')", self.key, self.rule, self.pattern)
    }
}

/// The schemas in force in a namespace, by pattern.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    by_pattern: BTreeMap<KeyPattern, Schema>,
}

impl Schemas {
    pub fn is_empty(&self) -> bool {
        self.by_pattern.is_empty()
    }

    pub fn get(&self, pattern: &KeyPattern) -> Option<&Schema> {
        self.by_pattern.get(pattern)
    }

    /// Patterns and documents, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyPattern, &Schema)> {
        self.by_pattern.iter()
    }

    pub fn apply(&mut self, change: &SchemaChange) {
        match change {
            SchemaChange::Set { pattern, schema } => {
                if self.by_pattern.get(pattern).is_none_or(|s| s.source != *schema) {
                    self.by_pattern.insert(pattern.clone(), Schema::stored(schema));
                }
            }
            SchemaChange::Delete { pattern } => {
                self.by_pattern.remove(pattern);
            }
        }
    }

    /// How a value set on `key` breaks the schemas whose pattern matches it
    /// (every one must hold), at most `limit` ways (a large value may break
    /// a schema in very many places); empty when it breaks none.
    pub fn check(&self, key: &Key, value: &[u8], content_type: &ContentType, limit: usize) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut parsed: Option<Option<serde_json::Value>> = None;
        for (pattern, schema) in self.by_pattern.iter().filter(|(p, _)| p.matches(key)) {
            if out.len() >= limit {
                break;
            }
            let violation = |pointer: &str, rule: String| Violation {
                key: key.clone(),
                pattern: pattern.clone(),
                pointer: pointer.to_owned(),
                rule,
            };
            if !content_type.is_json() {
                out.push(violation("", format!("must have content type application/json (got {content_type})")));
                continue;
            }
            let Some(document) = parsed.get_or_insert_with(|| serde_json::from_slice(value).ok()) else {
                out.push(violation("", "must be valid JSON".to_owned()));
                continue;
            };
            let Some(validator) = &schema.validator else {
                out.push(violation("", "is governed by a schema this version cannot compile".to_owned()));
                continue;
            };
            let room = limit.saturating_sub(out.len());
            for error in validator.iter_errors(document).take(room) {
                out.push(violation(error.instance_path().as_str(), error.masked().to_string()));
            }
        }
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        KeyPattern::parse(pattern).unwrap().matches(&Key::parse(key).unwrap())
    }

    #[test]
    fn patterns_match_by_segment() {
        assert!(matches("db/url", "db/url"));
        assert!(!matches("db/url", "db/urls"));
        assert!(matches("services/*/limits", "services/api/limits"));
        assert!(!matches("services/*/limits", "services/api/v2/limits"));
        assert!(matches("services/**/limits", "services/api/v2/limits"));
        assert!(matches("services/**/limits", "services/limits"));
        assert!(matches("features/**", "features/a/b/c"));
        assert!(matches("**", "anything/at/all"));
        assert!(matches("*.json", "app.json"));
        assert!(!matches("*.json", "dir/app.json"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
    }

    #[test]
    fn malformed_patterns_are_refused_naming_the_field() {
        for bad in ["", "a//b", "/a", "a/", "a**/b", "has space", &"x".repeat(257)] {
            assert_eq!(KeyPattern::parse(bad).unwrap_err().field, "key_pattern", "{bad:?}");
        }
    }

    #[test]
    fn schemas_must_be_json_schema_documents() {
        assert_eq!(Schema::compile("{not json").unwrap_err().field, "schema");
        assert_eq!(Schema::compile(r#"{"type": 12}"#).unwrap_err().field, "schema");
        assert!(Schema::compile(r#"{"$ref": "https://example.com/s.json"}"#).is_err(), "no remote references");
        assert!(Schema::compile(r#"{"type": "object"}"#).is_ok());
    }

    #[test]
    fn check_names_the_key_pointer_and_rule_of_every_matching_schema() {
        let mut schemas = Schemas::default();
        let set = |p: &str, s: &str| SchemaChange::Set { pattern: KeyPattern::parse(p).unwrap(), schema: s.into() };
        schemas.apply(&set(
            "limits/*",
            r#"{"type":"object","properties":{"rps":{"type":"integer","maximum":100}},"required":["rps"]}"#,
        ));
        schemas.apply(&set("limits/**", r#"{"type":"object","properties":{"burst":{"type":"integer"}}}"#));
        let json = ContentType::parse("application/json").unwrap();
        let key = Key::parse("limits/api").unwrap();
        assert!(schemas.check(&key, br#"{"rps": 5}"#, &json, 20).is_empty());
        let v = schemas.check(&key, br#"{"rps": 500, "burst": "x"}"#, &json, 20);
        let found: Vec<_> = v.iter().map(|v| (v.pattern.as_str(), v.pointer.as_str())).collect();
        assert_eq!(found, [("limits/*", "/rps"), ("limits/**", "/burst")], "{v:?}");
        assert!(!v[0].rule.contains("500"), "the rule does not repeat the value: {}", v[0].rule);
        let text = ContentType::parse("text/plain").unwrap();
        assert_eq!(schemas.check(&key, b"rps=5", &text, 20).len(), 2);
        assert!(schemas.check(&Key::parse("other").unwrap(), b"x", &text, 20).is_empty());
        // A value that breaks a schema in many places: only `limit` are kept.
        let many = format!("[{}]", vec!["\"x\""; 1000].join(","));
        schemas.apply(&set("list", r#"{"type":"array","items":{"type":"integer"}}"#));
        assert_eq!(schemas.check(&Key::parse("list").unwrap(), many.as_bytes(), &json, 20).len(), 20);
        schemas.apply(&SchemaChange::Delete { pattern: KeyPattern::parse("limits/*").unwrap() });
        assert_eq!(schemas.check(&key, br#"{"rps": 500}"#, &json, 20), []);
    }
}
