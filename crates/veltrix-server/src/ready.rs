//! The refusal of a service that is up but not ready to answer yet.

/// UNAVAILABLE: the service is up but its dependencies are not ready yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not ready yet: {0}")]
pub struct NotReady(pub &'static str);
