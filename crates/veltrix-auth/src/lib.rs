//! Who may do what: the policy file of `--auth-config`, parsed and checked
//! here, with no I/O (the server crate loads and reloads the file).
//!
//! ```yaml
//! tokens:                       # bearer tokens, as SHA-256 hex, never in clear
//!   - identity: deployer
//!     sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! grants:                       # "*" matches one namespace segment, "**" any number
//!   - identity: deployer
//!     namespaces: ["payments/*"]
//!     roles: [read, write]
//!   - identity: dns:ops.example.com # a client certificate's first DNS SAN
//!     namespaces: ["**"]               # (`cn:NAME` for one with only a CN)
//!     roles: [read, admin]
//! ```
//!
//! Token and certificate identities live in separate spaces: a plain name
//! (or `token:NAME`) is a token identity and must be listed under `tokens`;
//! `dns:` and `cn:` name certificates. A certificate whose CN is `deployer`
//! is `cn:deployer` and never gets the grants of the token identity
//! `deployer`.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a call needs on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Get, List, History, Watch, Diff, Blame, ListSchemas, ListNamespaces (filtered).
    Read,
    /// Put, Delete, Apply, Rollback (and Promote, on its target).
    Write,
    /// SetSchema, DeleteSchema, DeleteNamespace.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy file: {0}")]
    Syntax(String),
    #[error("invalid policy: {0}")]
    Rule(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    #[serde(default)]
    grants: Vec<GrantEntry>,
    /// A policy that lets nobody in is refused unless it says it means it.
    #[serde(default)]
    allow_empty: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    identity: String,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEntry {
    identity: String,
    namespaces: Vec<String>,
    roles: Vec<Role>,
}

#[derive(Debug, Clone)]
struct Grant {
    patterns: Vec<Pattern>,
    roles: Vec<Role>,
}

/// A namespace pattern: segments separated by `/`; `*` is one segment,
/// `**` any number (including none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<String>);

impl Pattern {
    fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.is_empty() {
            return Err(PolicyError::Rule("an empty namespace pattern".into()));
        }
        let segments: Vec<String> = text.split('/').map(str::to_owned).collect();
        if segments.iter().any(|s| s.is_empty() || (s.contains('*') && s != "*" && s != "**")) {
            return Err(PolicyError::Rule(format!(
                "namespace pattern '{text}': segments are names, '*' or '**' (no empty segments, no partial wildcards)"
            )));
        }
        Ok(Self(segments))
    }

    fn matches(&self, namespace: &str) -> bool {
        let ns: Vec<&str> = namespace.split('/').collect();
        matches(&self.0, &ns)
    }
}

fn matches(pattern: &[String], ns: &[&str]) -> bool {
    match pattern.split_first() {
        None => ns.is_empty(),
        Some((p, rest)) if p == "**" => (0..=ns.len()).any(|skip| matches(rest, &ns[skip..])),
        Some((p, rest)) => match ns.split_first() {
            Some((n, ns_rest)) => (p == "*" || p == n) && matches(rest, ns_rest),
            None => false,
        },
    }
}

/// A parsed policy: token digests to identities, and grants per identity.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    tokens: Vec<([u8; 32], String)>,
    grants: HashMap<String, Vec<Grant>>,
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        // An empty or comment-only file is no policy at all: refused below.
        let file: Option<File> = yaml_serde::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let file = file.unwrap_or(File { tokens: Vec::new(), grants: Vec::new(), allow_empty: false });
        if file.tokens.is_empty() && file.grants.is_empty() && !file.allow_empty {
            return Err(PolicyError::Rule(
                "the policy has no tokens and no grants and would lock everyone out; write `allow_empty: true` to mean it"
                    .into(),
            ));
        }
        let mut tokens = Vec::with_capacity(file.tokens.len());
        for (i, t) in file.tokens.into_iter().enumerate() {
            let digest = parse_hex32(&t.sha256).ok_or_else(|| {
                PolicyError::Rule(format!("tokens[{i}].sha256: 64 hexadecimal characters (SHA-256 of the token)"))
            })?;
            if t.identity.trim().is_empty() || t.identity.contains(':') {
                return Err(PolicyError::Rule(format!(
                    "tokens[{i}].identity: a plain name (not empty, no ':'; `dns:` and `cn:` name certificates)"
                )));
            }
            if tokens.iter().any(|(d, _)| *d == digest) {
                return Err(PolicyError::Rule(format!("tokens[{i}]: the same token is listed twice")));
            }
            tokens.push((digest, t.identity));
        }
        let mut grants: HashMap<String, Vec<Grant>> = HashMap::new();
        for (i, g) in file.grants.into_iter().enumerate() {
            let patterns = g
                .namespaces
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PolicyError::Rule(format!("grants[{i}]: {e}")))?;
            if g.roles.is_empty() {
                return Err(PolicyError::Rule(format!("grants[{i}].roles: at least one of read, write, admin")));
            }
            let identity = grant_identity(i, &g.identity, &tokens)?;
            grants.entry(identity).or_default().push(Grant { patterns, roles: g.roles });
        }
        Ok(Self { tokens, grants })
    }

    /// The identity of a bearer token, comparing digests in constant time
    /// (and always against every entry, so timing tells nothing).
    pub fn identify(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (d, identity) in &self.tokens {
            if constant_time_eq(d, &digest) {
                found = Some(identity.as_str());
            }
        }
        found
    }

    /// Whether `identity` holds `role` on `namespace`.
    pub fn allows(&self, identity: &str, role: Role, namespace: &str) -> bool {
        self.grants.get(identity).is_some_and(|grants| {
            grants.iter().any(|g| g.roles.contains(&role) && g.patterns.iter().any(|p| p.matches(namespace)))
        })
    }

    /// Whether `identity` holds `role` on any namespace (for calls that span
    /// namespaces, such as rebuild).
    pub fn allows_anywhere(&self, identity: &str, role: Role) -> bool {
        self.grants.get(identity).is_some_and(|grants| grants.iter().any(|g| g.roles.contains(&role)))
    }

    /// Identities known to the policy (tokens or grants).
    pub fn identities(&self) -> usize {
        let mut names: Vec<&str> = self.tokens.iter().map(|(_, i)| i.as_str()).collect();
        names.extend(self.grants.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

/// The identity a grant names, in the space its prefix says: a plain name
/// or `token:NAME` is a token identity (listed under `tokens`), `dns:NAME`
/// and `cn:NAME` are certificate identities.
fn grant_identity(i: usize, text: &str, tokens: &[([u8; 32], String)]) -> Result<String, PolicyError> {
    let name = match text.split_once(':') {
        None => text,
        Some(("token", name)) => name,
        Some(("dns" | "cn", name)) if !name.trim().is_empty() => return Ok(text.to_owned()),
        Some(_) => {
            return Err(PolicyError::Rule(format!(
                "grants[{i}].identity '{text}': a token identity, `dns:NAME` or `cn:NAME`"
            )));
        }
    };
    if tokens.iter().any(|(_, t)| t == name) {
        return Ok(name.to_owned());
    }
    Err(PolicyError::Rule(format!(
        "grants[{i}].identity '{text}' names no token; a client certificate is written `dns:{name}` (its first DNS SAN) or `cn:{name}` (its CN)"
    )))
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 hex of a token, for writing policy files.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn policy() -> Policy {
        Policy::parse(&format!(
            "tokens:\n  - identity: deployer\n    sha256: \"{}\"\n  - identity: reader\n    sha256: \"{}\"\n\
             grants:\n  - identity: deployer\n    namespaces: [\"payments/*\"]\n    roles: [read, write]\n\
             \x20 - identity: reader\n    namespaces: [\"**\"]\n    roles: [read]\n\
             \x20 - identity: dns:ops\n    namespaces: [\"infra/**\"]\n    roles: [admin]\n\
             \x20 - identity: token:reader\n    namespaces: [\"extra\"]\n    roles: [write]\n",
            token_digest("s3cret"),
            token_digest("r3ad")
        ))
        .unwrap()
    }

    #[test]
    fn tokens_name_identities() {
        let p = policy();
        assert_eq!(p.identify("s3cret"), Some("deployer"));
        assert_eq!(p.identify("r3ad"), Some("reader"));
        assert_eq!(p.identify("S3cret"), None);
        assert_eq!(p.identify(""), None);
        assert_eq!(p.identities(), 3);
    }

    #[test]
    fn grants_match_namespace_patterns() {
        let p = policy();
        assert!(p.allows("deployer", Role::Write, "payments/api"));
        assert!(p.allows("deployer", Role::Read, "payments/api"));
        assert!(!p.allows("deployer", Role::Write, "payments/api/v2"), "* is one segment");
        assert!(!p.allows("deployer", Role::Write, "payments"));
        assert!(!p.allows("deployer", Role::Admin, "payments/api"));
        assert!(!p.allows("deployer", Role::Read, "billing/api"));
        assert!(p.allows("reader", Role::Read, "a/b/c"));
        assert!(!p.allows("reader", Role::Write, "a"));
        assert!(p.allows("dns:ops", Role::Admin, "infra"), "** matches no segment too");
        assert!(p.allows("dns:ops", Role::Admin, "infra/x/y"));
        assert!(!p.allows("ops", Role::Admin, "infra"), "a certificate identity is not a token identity");
        assert!(!p.allows("cn:ops", Role::Admin, "infra"), "nor a CN a DNS name");
        assert!(p.allows("reader", Role::Write, "extra"), "token:NAME is the token identity NAME");
        assert!(!p.allows("nobody", Role::Read, "infra"));
        assert!(p.allows_anywhere("dns:ops", Role::Admin));
        assert!(!p.allows_anywhere("reader", Role::Admin));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, needle) in [
            ("tokens: [{identity: a, sha256: \"xyz\"}]", "tokens[0].sha256"),
            ("grants: [{identity: a, namespaces: [\"pay*\"], roles: [read]}]", "partial wildcards"),
            ("grants: [{identity: a, namespaces: [\"a//b\"], roles: [read]}]", "no empty segments"),
            ("grants: [{identity: a, namespaces: [\"a\"], roles: []}]", "roles"),
            ("grants: [{identity: a, namespaces: [\"a\"], roles: [superuser]}]", "invalid policy file"),
            ("tokenz: []", "invalid policy file"),
            ("grants: [{identity: ops.example, namespaces: [\"a\"], roles: [read]}]", "`dns:ops.example`"),
            ("grants: [{identity: \"uri:x\", namespaces: [\"a\"], roles: [read]}]", "`dns:NAME` or `cn:NAME`"),
            ("grants: [{identity: \"dns:\", namespaces: [\"a\"], roles: [read]}]", "`dns:NAME` or `cn:NAME`"),
            (
                "tokens: [{identity: \"dns:x\", sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"}]",
                "tokens[0].identity",
            ),
            ("", "lock everyone out"),
            ("# only a comment\n", "lock everyone out"),
            ("tokens: []\ngrants: []\n", "lock everyone out"),
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn an_empty_policy_is_taken_only_when_it_says_so() {
        let p = Policy::parse("allow_empty: true\n").unwrap();
        assert_eq!(p.identities(), 0);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panicking(text in ".{0,400}") {
            let _ = Policy::parse(&text);
        }

        #[test]
        fn any_token_is_identified_or_not_without_panicking(token in ".{0,100}") {
            let p = policy();
            let _ = p.identify(&token);
        }
    }
}
