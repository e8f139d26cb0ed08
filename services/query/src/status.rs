//! The one place where read errors become gRPC statuses.

use tonic::Status;
use veltrix_domain::{Revision, ValidationError};
use veltrix_server::details;

/// Every way a query call or a watch stream can fail; [`to_status`] maps
/// each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Refused before the request is looked at (who calls, limits).
    #[error(transparent)]
    Access(#[from] veltrix_access::AccessError),
    #[error(transparent)]
    NotReady(#[from] veltrix_server::NotReady),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    BadToken(&'static str),
    #[error(transparent)]
    Model(#[from] veltrix_redis::Error),
    #[error("key '{key}' does not exist in namespace '{namespace}' at revision {revision}")]
    NotFound { namespace: String, key: String, revision: Revision },
    #[error("revision {wanted} not reached within the deadline: the read model has applied up to {applied}{halted}")]
    NotReached { wanted: Revision, applied: Revision, halted: &'static str },
    #[error("revision {revision} is not a change of namespace '{namespace}'")]
    NoSuchRevision { namespace: String, revision: Revision },
    #[error("{0}")]
    NoRollout(String),
    #[error(transparent)]
    Ledger(#[from] veltrix_domain::fleet::LedgerError),
    #[error("not ready yet: the read model has no generation")]
    NoGeneration,
    /// The call's time limit (its deadline, at most --max-call-time) passed.
    #[error("the call did not complete within its time limit; retry, or narrow the request")]
    TimedOut,
    /// A watch at a revision the read model has not applied yet.
    #[error("revision {0} is not applied yet")]
    NotApplied(Revision),
    /// A watch ended by the server's shutdown.
    #[error("the server is shutting down; reconnect and resume with start_revision {resume_from}")]
    ShuttingDown { resume_from: Revision },
    /// A watch on one more namespace than the replica holds at once.
    #[error(transparent)]
    HubFull(#[from] crate::watch::hub::HubFull),
    /// A watch whose client accepted nothing for the stall timeout.
    #[error("the client read nothing for {idle:?} and fell behind; resume with start_revision {resume_from}")]
    Stalled { idle: std::time::Duration, resume_from: Revision },
}

pub fn to_status(err: ReadError) -> Status {
    use veltrix_redis::Error as M;
    match err {
        ReadError::Access(e) => details::access_status(&e),
        ReadError::NotReady(e) => details::not_ready(&e),
        ReadError::Invalid(e) => details::invalid_argument(&e.field, &e.rule),
        ReadError::BadToken(msg) => Status::invalid_argument(msg),
        ReadError::NotFound { .. } | ReadError::NoSuchRevision { .. } | ReadError::NoRollout(_) => {
            Status::not_found(err.to_string())
        }
        ReadError::Ledger(e @ veltrix_domain::fleet::LedgerError::Unavailable(_)) => {
            tracing::warn!(error = %e, "fleet ledger unavailable");
            Status::unavailable("fleet ledger unavailable, retry")
        }
        ReadError::Ledger(e @ veltrix_domain::fleet::LedgerError::Corrupt(_)) => {
            tracing::error!(error = %e, "corrupt fleet ledger entry");
            Status::internal("internal error")
        }
        ReadError::NotReached { .. } | ReadError::TimedOut => Status::deadline_exceeded(err.to_string()),
        ReadError::NoGeneration | ReadError::ShuttingDown { .. } => Status::unavailable(err.to_string()),
        ReadError::NotApplied(_) => Status::deadline_exceeded(err.to_string()),
        ReadError::Stalled { .. } | ReadError::HubFull(_) => Status::resource_exhausted(err.to_string()),
        ReadError::Model(e @ M::Compacted { oldest, .. }) => details::revision_compacted(e.to_string(), oldest.get()),
        ReadError::Model(M::Incomplete) => {
            Status::unavailable("the read model is being rebuilt from the event stream; retry shortly")
        }
        // Our words only: the Redis error goes to the log.
        ReadError::Model(e @ (M::Redis(_) | M::Config(_))) => {
            tracing::warn!(error = %e, "read model unavailable");
            Status::unavailable("read model unavailable, retry")
        }
        ReadError::Model(e @ M::Corrupt(_)) => {
            tracing::error!(error = %e, "corrupt read model entry");
            Status::internal("internal error")
        }
    }
}
