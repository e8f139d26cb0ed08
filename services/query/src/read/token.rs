//! Page tokens: a `PageCursor` sealed with XChaCha20-Poly1305 (authenticated
//! encryption; each nonce is a random 128-bit prefix drawn once per process
//! and a 64-bit counter, so no nonce repeats), base64url. A token reveals
//! nothing (not the last key or namespace of its page) and is bound to its
//! request: the [`Scope`] (every parameter that shapes the answer) is the
//! associated data, so a token used with another parameter, edited, or
//! issued under another key is INVALID_ARGUMENT.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    Key, XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;
use veltrix_domain::{Namespace, Revision};
use veltrix_proto::v1::PageCursor;

/// The format's first byte, so that a later format can be told apart.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const BAD: &str = "page_token: must be a token returned by this service for the same request";

/// The request a token continues: what must be equal on every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    List {
        namespace: &'a Namespace,
        prefix: &'a str,
        at_revision: Option<Revision>,
        page_size: u32,
    },
    Blame {
        namespace: &'a Namespace,
        prefix: &'a str,
        at_revision: Option<Revision>,
        page_size: u32,
    },
    History {
        namespace: &'a Namespace,
        key: &'a str,
        from: Revision,
        to: Revision,
        page_size: u32,
    },
    Clients {
        namespace: &'a Namespace,
        /// The state filter's wire value (-1: none).
        state: i32,
        selector: &'a str,
        page_size: u32,
    },
    Namespaces {
        prefix: &'a str,
        page_size: u32,
        caller: Option<&'a str>,
    },
    Rollouts {
        namespace: &'a Namespace,
        page_size: u32,
    },
    Diff {
        from: &'a Namespace,
        from_revision: Option<Revision>,
        to: &'a Namespace,
        to_revision: Option<Revision>,
        prefix: &'a str,
        page_size: u32,
    },
}

impl Scope<'_> {
    /// An unambiguous encoding: a tag, then each field length-prefixed.
    fn associated_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        match *self {
            Self::List { namespace, prefix, at_revision, page_size } => {
                field(b"list");
                field(namespace.as_str().as_bytes());
                field(prefix.as_bytes());
                field(&at_revision.map_or([0xff; 8], |r| r.get().to_be_bytes()));
                field(&page_size.to_be_bytes());
            }
            Self::Blame { namespace, prefix, at_revision, page_size } => {
                field(b"blame");
                field(namespace.as_str().as_bytes());
                field(prefix.as_bytes());
                field(&at_revision.map_or([0xff; 8], |r| r.get().to_be_bytes()));
                field(&page_size.to_be_bytes());
            }
            Self::History { namespace, key, from, to, page_size } => {
                field(b"history");
                field(namespace.as_str().as_bytes());
                field(key.as_bytes());
                field(&from.get().to_be_bytes());
                field(&to.get().to_be_bytes());
                field(&page_size.to_be_bytes());
            }
            Self::Diff { from, from_revision, to, to_revision, prefix, page_size } => {
                field(b"diff");
                field(from.as_str().as_bytes());
                field(&from_revision.map_or([0xff; 8], |r| r.get().to_be_bytes()));
                field(to.as_str().as_bytes());
                field(&to_revision.map_or([0xff; 8], |r| r.get().to_be_bytes()));
                field(prefix.as_bytes());
                field(&page_size.to_be_bytes());
            }
            Self::Clients { namespace, state, selector, page_size } => {
                field(b"clients");
                field(namespace.as_str().as_bytes());
                field(&state.to_be_bytes());
                field(selector.as_bytes());
                field(&page_size.to_be_bytes());
            }
            Self::Rollouts { namespace, page_size } => {
                field(b"rollouts");
                field(namespace.as_str().as_bytes());
                field(&page_size.to_be_bytes());
            }
            Self::Namespaces { prefix, page_size, caller } => {
                field(b"namespaces");
                field(prefix.as_bytes());
                field(&page_size.to_be_bytes());
                field(caller.unwrap_or("").as_bytes());
            }
        }
        out
    }
}

#[derive(Clone)]
pub struct TokenKey {
    cipher: XChaCha20Poly1305,
    nonce_prefix: [u8; 16],
    counter: Arc<AtomicU64>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// The sealing key derived from a configured secret (at least 32 bytes,
    /// checked by the config).
    pub fn new(secret: &[u8]) -> Result<Self, getrandom::Error> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let derived = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(b"veltrix page token v1");
                mac.finalize().into_bytes()
            }
            Err(_) => unreachable!("HMAC takes any key length"),
        };
        let mut nonce_prefix = [0u8; 16];
        getrandom::fill(&mut nonce_prefix)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&derived));
        Ok(Self { cipher, nonce_prefix, counter: Arc::default() })
    }

    /// A random key for this process (tokens then only work on it), from
    /// the operating system's secure random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Self::new(&secret)
    }

    /// A token for `cursor` (its `scope` field is left empty: the scope is
    /// bound as associated data instead).
    pub fn seal(&self, scope: &Scope<'_>, cursor: &PageCursor) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        let (prefix, count) = nonce.split_at_mut(16);
        prefix.copy_from_slice(&self.nonce_prefix);
        count.copy_from_slice(&self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let aad = scope.associated_data();
        let body = cursor.encode_to_vec();
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &body, aad: &aad })
            .unwrap_or_else(|_| unreachable!("encrypting a short buffer cannot fail"));
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor of a token issued for `scope`.
    pub fn open(&self, token: &str, scope: &Scope<'_>) -> Result<PageCursor, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| BAD)?;
        let (version, rest) = bytes.split_first().ok_or(BAD)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(BAD);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let aad = scope.associated_data();
        let body =
            self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| BAD)?;
        PageCursor::decode(body.as_slice()).map_err(|_| BAD)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ns(name: &str) -> Namespace {
        Namespace::parse(name).unwrap()
    }

    fn cursor() -> PageCursor {
        PageCursor { scope: String::new(), revision: 7, after: "secret/key".into(), next_revision: 0 }
    }

    #[test]
    fn tokens_round_trip_reveal_nothing_and_refuse_tampering() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let a = ns("a");
        let scope = Scope::List { namespace: &a, prefix: "", at_revision: None, page_size: 10 };
        let token = key.seal(&scope, &cursor());
        assert_eq!(key.open(&token, &scope), Ok(cursor()));
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"), "the cursor is encrypted");
        assert_ne!(key.seal(&scope, &cursor()), token, "a fresh nonce per token");
        assert!(
            TokenKey::new(b"another key of thirty-two bytes!").unwrap().open(&token, &scope).is_err(),
            "another key"
        );
        let mut edited = raw.clone();
        edited[30] ^= 1;
        assert!(key.open(&URL_SAFE_NO_PAD.encode(edited), &scope).is_err(), "edited");
        assert!(key.open("not a token", &scope).is_err());
        assert!(key.open("", &scope).is_err());
    }

    #[test]
    fn a_token_is_bound_to_every_parameter_of_its_request() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let (a, b) = (ns("a"), ns("b"));
        let list = |namespace, prefix, at: Option<u64>, page_size| Scope::List {
            namespace,
            prefix,
            at_revision: at.map(Revision::new),
            page_size,
        };
        let issued = list(&a, "p/", Some(5), 10);
        let token = key.seal(&issued, &cursor());
        for other in [list(&b, "p/", Some(5), 10), list(&a, "q/", Some(5), 10), list(&a, "p/", None, 10)] {
            assert!(key.open(&token, &other).is_err(), "{other:?}");
        }
        assert!(key.open(&token, &list(&a, "p/", Some(6), 10)).is_err(), "at_revision");
        assert!(key.open(&token, &list(&a, "p/", Some(5), 11)).is_err(), "page_size");
        let history = |key, from, to| Scope::History {
            namespace: &a,
            key,
            from: Revision::new(from),
            to: Revision::new(to),
            page_size: 10,
        };
        let token = key.seal(&history("k", 1, 9), &cursor());
        for other in [history("j", 1, 9), history("k", 2, 9), history("k", 1, 8)] {
            assert!(key.open(&token, &other).is_err(), "{other:?}");
        }
        let names = |caller| Scope::Namespaces { prefix: "", page_size: 1, caller };
        let token = key.seal(&names(Some("alice")), &cursor());
        assert!(key.open(&token, &names(Some("bob"))).is_err(), "another caller");
        assert!(key.open(&token, &names(None)).is_err());
    }

    proptest! {
        /// Fuzz target: any text as a page token is refused, never a panic.
        #[test]
        fn fuzz_page_token_decoding(token in "\\PC{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let key = TokenKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
            let a = ns("a");
            let scope = Scope::List { namespace: &a, prefix: "", at_revision: None, page_size: 10 };
            prop_assert!(key.open(&token, &scope).is_err());
            prop_assert!(key.open(&URL_SAFE_NO_PAD.encode(&raw), &scope).is_err());
        }

        /// Fuzz target: any edit of a valid token is refused.
        #[test]
        fn fuzz_page_token_mutations(flips in proptest::collection::vec((any::<usize>(), 1..=255u8), 1..6)) {
            let key = TokenKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
            let a = ns("a");
            let scope = Scope::List { namespace: &a, prefix: "", at_revision: None, page_size: 10 };
            let token = key.seal(&scope, &cursor());
            let mut bytes = URL_SAFE_NO_PAD.decode(&token).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let original = bytes.clone();
            let len = bytes.len();
            for (at, flip) in flips {
                bytes[at % len] ^= flip;
            }
            // (Flips can cancel out; an unchanged token is still valid.)
            let edited = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(key.open(&edited, &scope).is_ok(), bytes == original);
        }
    }
}
