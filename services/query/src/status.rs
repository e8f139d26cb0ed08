//! The one place where read errors become gRPC statuses.

use tonic::Status;
use veltrix_domain::ValidationError;
use veltrix_server::details;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    BadToken(&'static str),
    #[error(transparent)]
    Model(#[from] veltrix_redis::Error),
    #[error("key '{key}' does not exist in namespace '{namespace}' at revision {revision}")]
    NotFound { namespace: String, key: String, revision: u64 },
    #[error("revision {wanted} not reached within the deadline: the read model has applied up to {applied}{halted}")]
    NotReached { wanted: u64, applied: u64, halted: &'static str },
    #[error("not ready yet: the read model has no generation")]
    NoGeneration,
}

pub fn to_status(err: ReadError) -> Status {
    use veltrix_redis::Error as M;
    match err {
        ReadError::Invalid(e) => details::invalid_argument(&e.field, &e.rule),
        ReadError::BadToken(msg) => Status::invalid_argument(msg),
        ReadError::NotFound { .. } => Status::not_found(err.to_string()),
        ReadError::NotReached { .. } => Status::deadline_exceeded(err.to_string()),
        ReadError::NoGeneration => Status::unavailable(err.to_string()),
        ReadError::Model(e @ M::Compacted { oldest, .. }) => details::revision_compacted(e.to_string(), oldest),
        ReadError::Model(M::Incomplete) => {
            Status::unavailable("the read model is being rebuilt from the event stream; retry shortly")
        }
        ReadError::Model(e @ M::Redis(_)) => {
            tracing::warn!(error = %e, "read model unavailable");
            Status::unavailable(format!("read model unavailable: {e}"))
        }
        ReadError::Model(e @ M::Corrupt(_)) => {
            tracing::error!(error = %e, "corrupt read model entry");
            Status::internal("internal error")
        }
    }
}
