//! Statuses with machine-readable details (`google.rpc.BadRequest`,
//! `google.rpc.ErrorInfo`), so that clients act on fields and revisions
//! without parsing messages. The message stays the human explanation.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt};

/// `ErrorInfo.domain` of every Veltrix detail.
pub const ERROR_DOMAIN: &str = "veltrix.config.v1";

/// INVALID_ARGUMENT naming the field and the rule it breaks.
pub fn invalid_argument(field: &str, rule: &str) -> Status {
    let message = if field.is_empty() { rule.to_owned() } else { format!("{field}: {rule}") };
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request_violation(field.to_owned(), rule.to_owned()),
    )
}

/// INVALID_ARGUMENT with one field violation per (field, description): the
/// values that break a schema, each field naming the key and the JSON
/// pointer of the failing part as `key#pointer`.
pub fn invalid_arguments(message: String, violations: Vec<(String, String)>) -> Status {
    let violations: Vec<_> = violations.into_iter().map(|(f, d)| FieldViolation::new(f, d)).collect();
    Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(violations))
}

/// FAILED_PRECONDITION with one violation per subject (`kind` names the
/// kind of precondition, e.g. SCHEMA).
pub fn failed_preconditions(message: String, kind: &str, subjects: Vec<(String, String)>) -> Status {
    let violations: Vec<_> =
        subjects.into_iter().map(|(s, d)| PreconditionViolation::new(kind.to_owned(), s, d)).collect();
    Status::with_error_details(Code::FailedPrecondition, message, ErrorDetails::with_precondition_failure(violations))
}

/// ABORTED for a compare-and-set on `key` that found it at `current`.
pub fn revision_conflict(message: String, key: &str, current: u64) -> Status {
    let metadata =
        HashMap::from([("key".to_owned(), key.to_owned()), ("current_revision".to_owned(), current.to_string())]);
    Status::with_error_details(
        Code::Aborted,
        message,
        ErrorDetails::with_error_info("REVISION_CONFLICT", ERROR_DOMAIN, metadata),
    )
}

/// OUT_OF_RANGE for a revision older than the retained history.
pub fn revision_compacted(message: String, oldest: u64) -> Status {
    let metadata = HashMap::from([("oldest_revision".to_owned(), oldest.to_string())]);
    Status::with_error_details(
        Code::OutOfRange,
        message,
        ErrorDetails::with_error_info("REVISION_COMPACTED", ERROR_DOMAIN, metadata),
    )
}

/// The status of a refusal before the service's logic: UNAUTHENTICATED,
/// PERMISSION_DENIED or RESOURCE_EXHAUSTED (with `RetryInfo` for a rate).
pub fn access_status(e: &crate::AccessError) -> Status {
    use crate::AccessError as A;
    let message = e.to_string();
    match e {
        A::UnknownToken | A::MalformedAuthorization(_) | A::AuthenticationRequired | A::Certificate(_) => {
            Status::unauthenticated(message)
        }
        A::PermissionDenied { .. } | A::InvalidIdentity { .. } => Status::permission_denied(message),
        A::RateLimited { retry_in, .. } => {
            Status::with_error_details(Code::ResourceExhausted, message, ErrorDetails::with_retry_info(Some(*retry_in)))
        }
        A::TooManyWatchers { .. } => Status::resource_exhausted(message),
    }
}

/// UNAVAILABLE while the service's dependencies are not ready.
pub fn not_ready(e: &crate::NotReady) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn details_round_trip() {
        let s = revision_conflict("conflict".into(), "db.url", 7);
        let info = s.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata.get("current_revision").map(String::as_str), Some("7"));
        let s = invalid_argument("changes[1].key", "must not be empty");
        assert_eq!(s.message(), "changes[1].key: must not be empty");
        let bad = s.get_error_details().bad_request().cloned().unwrap();
        assert_eq!(bad.field_violations[0].field, "changes[1].key");
    }

    #[test]
    fn a_rate_refusal_is_resource_exhausted_with_a_retry_hint() {
        let refused = crate::AccessError::RateLimited { rate: 1.0, retry_in: std::time::Duration::from_millis(300) };
        let status = access_status(&refused);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_some(), "a retry hint");
        let refused = crate::AccessError::Certificate("it lacks the clientAuth extended key usage");
        assert_eq!(access_status(&refused).code(), Code::Unauthenticated);
    }
}
