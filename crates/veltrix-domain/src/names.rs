//! Validated names: an invalid one cannot be constructed.

use std::fmt;

use crate::validation::ValidationError;

const NAMESPACE_RULE: &str = "must be 1 to 8 segments separated by '/', each matching [a-z0-9][a-z0-9_-]{0,62}";
const KEY_RULE: &str =
    "must be 1 to 256 bytes of printable ASCII without spaces, not starting or ending with '/' or '.'";

/// A namespace such as `payments/prod`: the unit of atomicity and ordering.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    pub const MAX_SEGMENTS: usize = 8;
    pub const MAX_SEGMENT_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let segments: Vec<&str> = s.split('/').collect();
        let ok = !s.is_empty() && segments.len() <= Self::MAX_SEGMENTS && segments.iter().all(|seg| valid_segment(seg));
        if ok { Ok(Self(s.to_owned())) } else { Err(ValidationError::new("namespace", NAMESPACE_RULE)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

fn valid_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    !b.is_empty()
        && b.len() <= Namespace::MAX_SEGMENT_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// A key inside a namespace, e.g. `db/url` or `feature.flags`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= Self::MAX_LEN
            && b.iter().all(|c| (0x21..=0x7e).contains(c))
            && !matches!(b[0], b'/' | b'.')
            && !matches!(b[b.len() - 1], b'/' | b'.');
        if ok { Ok(Self(s.to_owned())) } else { Err(ValidationError::new("key", KEY_RULE)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A MIME type of a value; empty input means `text/plain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentType(String);

impl ContentType {
    pub const DEFAULT: &str = "text/plain";
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Ok(Self(Self::DEFAULT.to_owned()));
        }
        let essence = s.split(';').next().unwrap_or_default().trim();
        let well_formed = essence.split_once('/').is_some_and(|(t, st)| token(t) && token(st));
        if s.len() <= Self::MAX_LEN && well_formed && s.bytes().all(|c| (0x20..=0x7e).contains(&c)) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new(
                "content_type",
                "must be a MIME type such as 'application/json' (type/subtype, at most 255 printable ASCII characters)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `application/json` and any `+json` structured-syntax type.
    pub fn is_json(&self) -> bool {
        let essence = self.0.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    }
}

fn token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
}

/// Defines a free-text newtype with a length bound and a character rule.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $allowed:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                let allowed: fn(char) -> bool = $allowed;
                if s.len() <= Self::MAX_LEN && s.chars().all(allowed) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(ValidationError::new($field, format!(concat!("must be at most {} bytes ", $rule), Self::MAX_LEN)))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A client's idempotency key; empty means "no idempotency".
    RequestId, "request_id", 128, |c| c.is_ascii_graphic(), "of printable ASCII without spaces"
);
bounded_text!(
    /// Why a change is made, for the audit trail.
    Reason, "reason", 1024, |c| !c.is_control() || c == '\n' || c == '\t', "of text without control characters"
);
bounded_text!(
    /// Who made a change.
    Actor, "actor", 256, |c| !c.is_control(), "of text without control characters"
);

impl Actor {
    pub fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["a", "payments/prod", "a-b_c/0", &["x"; 8].join("/"), &"a".repeat(63)] {
            assert!(Namespace::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "A", "-a", "_a", "a.b", "a b", &["x"; 9].join("/"), &"a".repeat(64), "é"] {
            let err = Namespace::parse(bad).expect_err(bad);
            assert_eq!(err.field, "namespace");
        }
    }

    #[test]
    fn keys() {
        for ok in ["a", "db/url", "feature.flags", "A~!", &"k".repeat(256)] {
            assert!(Key::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", ".a", "a.", "a b", "a\tb", "é", &"k".repeat(257)] {
            assert_eq!(Key::parse(bad).expect_err(bad).field, "key");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(ContentType::parse("").map(|c| c.0).ok(), Some("text/plain".into()));
        assert!(ContentType::parse("application/json; charset=utf-8").is_ok_and(|c| c.is_json()));
        assert!(ContentType::parse("application/vnd.x+json").is_ok_and(|c| c.is_json()));
        assert!(ContentType::parse("text/yaml").is_ok_and(|c| !c.is_json()));
        for bad in ["json", "/json", "a/", "a b/c", "a/b\n"] {
            assert_eq!(ContentType::parse(bad).expect_err(bad).field, "content_type");
        }
    }

    proptest! {
        #[test]
        fn key_rule_matches_definition(s in "[ -~]{0,260}") {
            let b = s.as_bytes();
            let expected = (1..=256).contains(&b.len())
                && !s.contains(' ')
                && !s.starts_with(['/', '.'])
                && !s.ends_with(['/', '.']);
            prop_assert_eq!(Key::parse(&s).is_ok(), expected);
        }

        #[test]
        fn namespace_rule_matches_definition(s in "[a-z0-9_/.-]{0,40}") {
            let expected = !s.is_empty() && s.split('/').count() <= 8 && s.split('/').all(|seg| {
                !seg.is_empty() && seg.len() <= 63
                    && seg.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && seg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            });
            prop_assert_eq!(Namespace::parse(&s).is_ok(), expected);
        }
    }
}
