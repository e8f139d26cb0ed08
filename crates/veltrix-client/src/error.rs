//! One error type for every call, from the gRPC status: the variants a
//! caller acts on, with what the server said about them.

use tonic::Code;
use tonic_types::StatusExt;

/// Reasons in `google.rpc.ErrorInfo` details that the servers attach.
pub const REVISION_CONFLICT: &str = "REVISION_CONFLICT";
pub const REVISION_COMPACTED: &str = "REVISION_COMPACTED";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Compare-and-set failed: the key is at `current` (ABORTED).
    #[error("{message}")]
    Conflict { key: Option<String>, current: Option<u64>, message: String },
    /// The key (or namespace) does not exist (NOT_FOUND).
    #[error("not found: {message}")]
    NotFound { message: String },
    /// The request breaks a rule; `field` names the field (INVALID_ARGUMENT).
    #[error("invalid {field}: {rule}")]
    Invalid { field: String, rule: String },
    /// A request id reused for a different request (ALREADY_EXISTS).
    #[error("already exists: {message}")]
    AlreadyExists { message: String },
    /// The revision asked for is older than the retained history (OUT_OF_RANGE).
    #[error("out of range: {message}")]
    Compacted { oldest: Option<u64>, message: String },
    /// The service or its dependencies cannot answer now; retrying later is
    /// safe (UNAVAILABLE, or no connection).
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    /// The deadline passed (DEADLINE_EXCEEDED).
    #[error("deadline exceeded: {message}")]
    DeadlineExceeded { message: String },
    /// The operation cannot run in the current state (FAILED_PRECONDITION).
    #[error("failed precondition: {message}")]
    FailedPrecondition { message: String },
    /// No or unknown credentials (UNAUTHENTICATED).
    #[error("unauthenticated: {message}")]
    Unauthenticated { message: String },
    /// Known identity without the right (PERMISSION_DENIED).
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },
    /// A limit was hit; retry later (RESOURCE_EXHAUSTED).
    #[error("resource exhausted: {message}")]
    ResourceExhausted { message: String },
    /// A local problem: a bad URL, an unreadable file.
    #[error("{0}")]
    Local(String),
    /// Any other status.
    #[error("{code:?}: {message}")]
    Other { code: Code, message: String },
}

impl Error {
    /// Whether the call may be repeated as it was (with the same request id).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        // A connection that could not be made (refused, TLS handshake
        // failed) reaches us as UNKNOWN with a transport error as source.
        if status.code() == Code::Unknown
            && std::error::Error::source(&status).is_some_and(|e| e.is::<tonic::transport::Error>())
        {
            let cause = std::error::Error::source(&status).map(chain).unwrap_or_default();
            return Self::Unavailable { message: format!("{message}: {cause}") };
        }
        let details = status.get_error_details();
        let info = details.error_info();
        let meta = |name: &str| info.and_then(|i| i.metadata.get(name)).cloned();
        match status.code() {
            Code::Aborted => Self::Conflict {
                key: meta("key"),
                current: meta("current_revision").and_then(|v| v.parse().ok()),
                message,
            },
            Code::NotFound => Self::NotFound { message },
            Code::InvalidArgument => {
                let violation = details.bad_request().and_then(|b| b.field_violations.first());
                match violation {
                    Some(v) => Self::Invalid { field: v.field.clone(), rule: v.description.clone() },
                    // Older servers: "field: rule".
                    None => match message.split_once(": ") {
                        Some((field, rule)) if !field.contains(' ') => {
                            Self::Invalid { field: field.to_owned(), rule: rule.to_owned() }
                        }
                        _ => Self::Invalid { field: String::new(), rule: message },
                    },
                }
            }
            Code::AlreadyExists => Self::AlreadyExists { message },
            Code::OutOfRange => {
                Self::Compacted { oldest: meta("oldest_revision").and_then(|v| v.parse().ok()), message }
            }
            Code::Unavailable => Self::Unavailable { message },
            Code::DeadlineExceeded => Self::DeadlineExceeded { message },
            Code::FailedPrecondition => Self::FailedPrecondition { message },
            Code::Unauthenticated => Self::Unauthenticated { message },
            Code::PermissionDenied => Self::PermissionDenied { message },
            Code::ResourceExhausted => Self::ResourceExhausted { message },
            code => Self::Other { code, message },
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Self::Unavailable { message: e.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
