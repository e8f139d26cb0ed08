//! The deadline of a gRPC call.

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The `grpc-timeout` the client sent, if it is well formed.
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long the server may work on a call: the client's deadline (or
/// `default`), less a margin so that a dependency that does not answer is
/// reported as UNAVAILABLE before the client gives up on its own.
pub fn call_budget(metadata: &MetadataMap, default: Duration) -> Duration {
    let total = grpc_timeout(metadata).unwrap_or(default);
    total.saturating_sub((total / 10).min(Duration::from_millis(200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", v.parse().unwrap());
        m
    }

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(grpc_timeout(&md("2S")), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout(&md("150m")), Some(Duration::from_millis(150)));
        assert_eq!(grpc_timeout(&md("x")), None);
        assert_eq!(call_budget(&MetadataMap::new(), Duration::from_secs(5)), Duration::from_millis(4800));
        assert_eq!(call_budget(&md("1S"), Duration::from_secs(5)), Duration::from_millis(900));
    }
}
