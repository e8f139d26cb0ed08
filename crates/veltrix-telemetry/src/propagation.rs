//! W3C trace context (https://www.w3.org/TR/trace-context/).

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The `traceparent` of the server's span for a request: the caller's trace
/// id with a new span id when the caller sent a valid `traceparent`, else a
/// new trace (not sampled).
pub fn child_traceparent(incoming: Option<&str>) -> String {
    match incoming.and_then(parse) {
        Some((trace_id, flags)) => format!("00-{trace_id}-{:016x}-{flags}", random_u64()),
        None => format!("00-{:016x}{:016x}-{:016x}-00", random_u64(), random_u64(), random_u64()),
    }
}

/// `(trace_id, flags)` of a valid version-00 `traceparent`.
fn parse(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|c| c != b'0')
        && parent_id.bytes().any(|c| c != b'0');
    valid.then_some((trace_id, flags))
}

/// Unpredictable enough for trace ids (not for secrets), never zero.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_callers_trace_and_makes_a_new_span() {
        let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let child = child_traceparent(Some(incoming));
        assert!(child.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(child.ends_with("-01"));
        assert_ne!(child, incoming);
        assert!(parse(&child).is_some());
    }

    #[test]
    fn starts_a_new_trace_for_missing_or_invalid_context() {
        for bad in [None, Some(""), Some("01-x"), Some("00-00000000000000000000000000000000-b7ad6b7169203331-01")] {
            let t = child_traceparent(bad);
            assert!(parse(&t).is_some(), "{t}");
            assert!(t.ends_with("-00"));
        }
    }
}
