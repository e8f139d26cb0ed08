//! Every refusal of the API, and its one mapping to an HTTP status and a
//! JSON body `{code, message, field?, key?, current_revision?}`. The
//! services' own refusals pass through with their gRPC meaning (`code` is
//! the gRPC code's name); nothing local (paths, transport errors) reaches
//! the browser.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use veltrix_client::Error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not signed in, or the session has ended")]
    SignedOut,
    #[error("refused: {0}")]
    Csrf(&'static str),
    #[error("no such endpoint")]
    NoSuchEndpoint,
    #[error("this console is not served under that host name (see --allowed-hosts)")]
    Host,
    #[error("invalid {field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error(transparent)]
    Service(#[from] Error),
    #[error("the console could not complete the request")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Self::Invalid { field, rule: rule.into() }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_revision: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            Body { code: "internal", message: self.to_string(), field: None, key: None, current_revision: None };
        let status = match &self {
            Self::SignedOut => {
                body.code = "unauthenticated";
                StatusCode::UNAUTHORIZED
            }
            Self::Csrf(_) => {
                body.code = "csrf";
                StatusCode::FORBIDDEN
            }
            Self::NoSuchEndpoint => {
                body.code = "not_found";
                StatusCode::NOT_FOUND
            }
            Self::Host => {
                body.code = "host_not_allowed";
                StatusCode::MISDIRECTED_REQUEST
            }
            Self::Invalid { field, .. } => {
                body.code = "invalid_argument";
                body.field = Some(field);
                StatusCode::BAD_REQUEST
            }
            Self::Internal(cause) => {
                tracing::warn!(%cause, "console request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Service(e) => service(e, &mut body),
        };
        (status, Json(body)).into_response()
    }
}

fn service<'a>(e: &'a Error, body: &mut Body<'a>) -> StatusCode {
    let (code, status) = match e {
        Error::Conflict { key, current, .. } => {
            body.key = key.as_deref();
            body.current_revision = *current;
            ("aborted", StatusCode::CONFLICT)
        }
        Error::NotFound { .. } => ("not_found", StatusCode::NOT_FOUND),
        Error::Invalid { field, .. } => {
            body.field = Some(field);
            ("invalid_argument", StatusCode::BAD_REQUEST)
        }
        Error::AlreadyExists { .. } => ("already_exists", StatusCode::CONFLICT),
        Error::Compacted { .. } => ("out_of_range", StatusCode::GONE),
        Error::Unavailable { .. } => {
            // The transport's words (addresses, OS errors) stay in the log.
            tracing::warn!(error = %e, "a service is unavailable");
            body.message = "the service is unavailable; retry shortly".into();
            ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
        }
        Error::DeadlineExceeded { .. } => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Error::FailedPrecondition { .. } => ("failed_precondition", StatusCode::PRECONDITION_FAILED),
        Error::Unauthenticated { .. } => ("unauthenticated", StatusCode::UNAUTHORIZED),
        Error::PermissionDenied { .. } => ("permission_denied", StatusCode::FORBIDDEN),
        Error::ResourceExhausted { .. } => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Error::Local(_) | Error::Other { .. } => {
            tracing::warn!(error = %e, "a service call failed");
            body.message = "the console could not complete the request".into();
            ("internal", StatusCode::BAD_GATEWAY)
        }
    };
    body.code = code;
    status
}
