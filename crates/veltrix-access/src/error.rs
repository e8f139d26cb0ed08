//! Why a call is refused before it reaches a service's logic: who calls,
//! what they may do and how much they may ask. Typed here; each service's
//! `status.rs` turns them into statuses (through
//! `veltrix_server::details::access_status`).

use std::time::Duration;

use veltrix_auth::Role;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    /// UNAUTHENTICATED: the token is not in the policy.
    #[error("unknown bearer token")]
    UnknownToken,
    /// UNAUTHENTICATED: the `authorization` metadata is not a bearer token.
    #[error("authorization metadata: {0}")]
    MalformedAuthorization(&'static str),
    /// UNAUTHENTICATED: neither a token nor a client certificate.
    #[error("authentication required: send `authorization: Bearer <token>` or a client certificate")]
    AuthenticationRequired,
    /// UNAUTHENTICATED: a client certificate that names no identity.
    #[error("client certificate refused: {0}")]
    Certificate(&'static str),
    /// PERMISSION_DENIED: the caller lacks the role on the namespace.
    #[error("'{identity}' has no {role} role on namespace '{namespace}'")]
    PermissionDenied { identity: String, role: Role, namespace: String },
    /// PERMISSION_DENIED: an authenticated identity that cannot be recorded
    /// as an actor.
    #[error("identity '{identity}' is not a valid actor: {rule}")]
    InvalidIdentity { identity: String, rule: String },
    /// RESOURCE_EXHAUSTED, with a retry hint.
    #[error("rate limit of {rate} requests/s exceeded; retry in {} ms", retry_in.as_millis().max(1))]
    RateLimited { rate: f64, retry_in: Duration },
    /// RESOURCE_EXHAUSTED.
    #[error("at most {limit} open watch streams per caller; close one first")]
    TooManyWatchers { limit: usize },
}
