//! Where events live: the stream and its subject prefix.

use std::time::Duration;

use veltrix_domain::Namespace;

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Stream name, e.g. `VELTRIX_EVENTS`.
    pub name: String,
    /// Subject prefix, e.g. `veltrix.events`; the stream takes `{prefix}.>`.
    pub subject_prefix: String,
    /// Replicas of the stream (1 for development, 3 in production).
    pub replicas: usize,
    /// JetStream's `Nats-Msg-Id` deduplication window.
    pub duplicate_window: Duration,
    /// Guard-rail on the stream's size; at the limit writes are refused
    /// rather than history dropped. -1: unlimited.
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "VELTRIX_EVENTS".into(),
            subject_prefix: "veltrix.events".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_bytes: -1,
        }
    }
}

impl StreamSettings {
    pub fn validate(&self) -> Result<(), Error> {
        let token_ok =
            |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !token_ok(&self.name) {
            return Err(Error::Settings(format!("stream name {:?} must be [A-Za-z0-9_-]+", self.name)));
        }
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(Error::Settings(format!(
                "subject prefix {:?} must be dot-separated tokens of [A-Za-z0-9_-]",
                self.subject_prefix
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::Settings(format!("replicas must be 1 to 5 (got {})", self.replicas)));
        }
        if self.duplicate_window.is_zero() {
            return Err(Error::Settings("duplicate window must be positive".into()));
        }
        Ok(())
    }

    /// The wildcard subject the stream listens on.
    pub fn stream_subject(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// The subject of a namespace: `payments/prod` -> `{prefix}.payments.prod`.
    pub fn subject(&self, namespace: &Namespace) -> String {
        let mut s = self.subject_prefix.clone();
        for seg in namespace.segments() {
            s.push('.');
            s.push_str(seg);
        }
        s
    }

    /// The namespace of a subject, if it is one of ours.
    pub fn namespace_of(&self, subject: &str) -> Option<Namespace> {
        let rest = subject.strip_prefix(&self.subject_prefix)?.strip_prefix('.')?;
        Namespace::parse(&rest.replace('.', "/")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let s = StreamSettings::default();
        let ns = Namespace::parse("payments/prod").unwrap();
        assert_eq!(s.subject(&ns), "veltrix.events.payments.prod");
        assert_eq!(s.namespace_of("veltrix.events.payments.prod"), Some(ns));
        assert_eq!(s.namespace_of("other.payments"), None);
        assert!(s.validate().is_ok());
        assert!(StreamSettings { subject_prefix: "a.*".into(), ..s.clone() }.validate().is_err());
        assert!(StreamSettings { name: "a.b".into(), ..s }.validate().is_err());
    }
}
