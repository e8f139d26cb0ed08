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
/// `default`), at most `max`, less a margin so that a dependency that does
/// not answer is reported before the client gives up on its own.
pub fn call_budget(metadata: &MetadataMap, default: Duration, max: Duration) -> Duration {
    let total = grpc_timeout(metadata).unwrap_or(default).min(max);
    total.saturating_sub((total / 10).min(Duration::from_millis(200)))
}

/// The time limits of a service's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTime {
    /// For calls that carry no deadline.
    pub default: Duration,
    /// The most any call may take.
    pub max: Duration,
}

impl CallTime {
    /// How long the server may work on a call with this metadata.
    pub fn budget(&self, metadata: &MetadataMap) -> Duration {
        call_budget(metadata, self.default, self.max)
    }
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
        let (default, max) = (Duration::from_secs(5), Duration::from_secs(30));
        assert_eq!(call_budget(&MetadataMap::new(), default, max), Duration::from_millis(4800));
        assert_eq!(call_budget(&md("1S"), default, max), Duration::from_millis(900));
        assert_eq!(call_budget(&md("100H"), default, max), Duration::from_millis(29_800), "at most the server's limit");
    }
}
