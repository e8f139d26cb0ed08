//! The request digest that tells a retry from a reused request id.
//!
//! The digest is stored in events, so its encoding is part of the storage
//! format: never change it, add a new algorithm beside it instead.

use sha2::{Digest, Sha256};

use crate::{
    command::{KeyCommand, Operation},
    names::{Namespace, Reason},
};

/// SHA-256 over a length-prefixed canonical encoding of what the request
/// asks for: namespace, reason, and each change with its condition. The actor
/// and the time are not part of it: a retry may come from another connection.
pub fn request_digest(namespace: &Namespace, changes: &[KeyCommand], reason: &Reason) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"veltrix.request.v1");
    field(&mut h, namespace.as_str().as_bytes());
    field(&mut h, reason.as_str().as_bytes());
    h.update((changes.len() as u64).to_be_bytes());
    for c in changes {
        field(&mut h, c.key.as_str().as_bytes());
        match c.expected {
            None => h.update([0u8]),
            Some(e) => {
                h.update([1u8]);
                h.update(e.to_wire().to_be_bytes());
            }
        }
        match &c.op {
            Operation::Set { value, content_type } => {
                h.update([1u8]);
                field(&mut h, content_type.as_str().as_bytes());
                field(&mut h, value);
            }
            Operation::Delete => h.update([2u8]),
        }
    }
    h.finalize().into()
}

/// SHA-256 over a derived request (a rollback): what it asks for, in the
/// caller's canonical encoding, not the changes computed from it.
pub fn derived_digest(namespace: &Namespace, request: &[u8], reason: &Reason) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"veltrix.derived.v1");
    field(&mut h, namespace.as_str().as_bytes());
    field(&mut h, reason.as_str().as_bytes());
    field(&mut h, request);
    h.finalize().into()
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}
