//! Requests tests build again and again, and the check of a refusal.

use tonic::{Code, Request, Status};
use veltrix_proto::v1::{GetRequest, PutRequest};

pub fn put(ns: &str, key: &str, value: &str) -> PutRequest {
    PutRequest { namespace: ns.into(), key: key.into(), value: value.as_bytes().to_vec(), ..Default::default() }
}

pub fn get(ns: &str, key: &str) -> GetRequest {
    GetRequest { namespace: ns.into(), key: key.into(), ..Default::default() }
}

/// A request naming its actor (when authentication is off).
pub fn with_actor<T>(msg: T, actor: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-veltrix-actor", actor.parse().expect("an ASCII actor"));
    r
}

/// The status of a call that must fail with `code`.
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(s) if s.code() == code => s,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}
