//! Page tokens: a `PageCursor` signed with HMAC-SHA256, base64url. A token
//! that was not issued by a service with the same key, was edited, or belongs
//! to another request is INVALID_ARGUMENT.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;
use veltrix_proto::v1::PageCursor;

const MAC_LEN: usize = 32;

#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> Self {
        Self(key.to_vec())
    }

    /// A random key for this process (tokens then only work on it), from
    /// the operating system's secure random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    pub fn sign(&self, cursor: &PageCursor) -> String {
        let mut bytes = cursor.encode_to_vec();
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor of a token issued for `scope`.
    pub fn verify(&self, token: &str, scope: &str) -> Result<PageCursor, &'static str> {
        const BAD: &str = "page_token: must be a token returned by this service for the same request";
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| BAD)?;
        if bytes.len() < MAC_LEN {
            return Err(BAD);
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| BAD)?;
        let cursor = PageCursor::decode(body).map_err(|_| BAD)?;
        if cursor.scope != scope {
            return Err(BAD);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = TokenKey::new(b"0123456789abcdef");
        let cursor = PageCursor { scope: "list:a:".into(), revision: 7, after: "k".into(), next_revision: 0 };
        let token = key.sign(&cursor);
        assert_eq!(key.verify(&token, "list:a:"), Ok(cursor));
        assert!(key.verify(&token, "list:b:").is_err(), "another request");
        assert!(TokenKey::new(b"another key 1234").verify(&token, "list:a:").is_err(), "another key");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[2] ^= 1;
        assert!(key.verify(&URL_SAFE_NO_PAD.encode(bytes), "list:a:").is_err(), "edited");
        assert!(key.verify("not a token", "list:a:").is_err());
        assert!(key.verify("", "list:a:").is_err());
    }

    proptest! {
        /// Fuzz target: any text as a page token is refused, never a panic.
        #[test]
        fn fuzz_page_token_decoding(token in "\\PC{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let key = TokenKey::new(b"0123456789abcdef");
            prop_assert!(key.verify(&token, "list:a:").is_err());
            prop_assert!(key.verify(&URL_SAFE_NO_PAD.encode(&raw), "list:a:").is_err());
        }

        /// Fuzz target: any edit of a valid token is refused.
        #[test]
        fn fuzz_page_token_mutations(flips in proptest::collection::vec((any::<usize>(), 1..=255u8), 1..6)) {
            let key = TokenKey::new(b"0123456789abcdef");
            let cursor = PageCursor { scope: "list:a:".into(), revision: 7, after: "k".into(), next_revision: 0 };
            let mut bytes = URL_SAFE_NO_PAD.decode(key.sign(&cursor)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let len = bytes.len();
            for (at, flip) in flips {
                bytes[at % len] ^= flip;
            }
            let edited = URL_SAFE_NO_PAD.encode(&bytes);
            // (Flips can cancel out; an unchanged token is still valid.)
            prop_assert_eq!(key.verify(&edited, "list:a:").is_ok(), edited == key.sign(&cursor));
        }
    }
}
