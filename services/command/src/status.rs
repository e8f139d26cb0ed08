//! The one place where command errors become gRPC statuses.

use tonic::{Code, Status};
use veltrix_domain::{Rejection, StoreError, plan::PlanRefusal, rollout::RolloutError};
use veltrix_server::details;

use crate::handler::CommandError;

pub fn to_status(err: CommandError) -> Status {
    match err {
        CommandError::Access(e) => details::access_status(&e),
        CommandError::NotReady(e) => details::not_ready(&e),
        CommandError::Invalid(e) => details::invalid_argument(&e.field, &e.rule),
        CommandError::Rejected(r) => match &r {
            Rejection::Conflict { key, current, .. } => {
                details::revision_conflict(r.to_string(), key.as_str(), current.get())
            }
            Rejection::NotFound { .. } => Status::not_found(r.to_string()),
            Rejection::RequestIdReused { .. } => Status::already_exists(r.to_string()),
            Rejection::NamespaceMoved { .. } => Status::aborted(r.to_string()),
            Rejection::SchemaViolation(violations) => {
                let fields = violations
                    .iter()
                    .map(|v| (format!("{}#{}", v.key, v.pointer), format!("{} (schema '{}')", v.rule, v.pattern)))
                    .collect();
                details::invalid_arguments(r.to_string(), fields)
            }
            Rejection::HeldByRollout { .. } | Rejection::RolloutRunning(_) => {
                Status::failed_precondition(r.to_string())
            }
            Rejection::RolloutNotFound(_) => Status::not_found(r.to_string()),
            Rejection::Rollout(RolloutError::Version { .. }) => Status::aborted(r.to_string()),
            Rejection::Rollout(RolloutError::State { .. }) => Status::failed_precondition(r.to_string()),
        },
        CommandError::Plan(refusal) => match &refusal {
            PlanRefusal::NoSuchNamespace(_) | PlanRefusal::NoSuchSchema { .. } => {
                Status::not_found(refusal.to_string())
            }
            PlanRefusal::Violated { pattern, keys, .. } => {
                let subjects = keys
                    .iter()
                    .map(|k| (k.to_string(), format!("its value breaks the schema for '{pattern}'")))
                    .collect();
                details::failed_preconditions(refusal.to_string(), "SCHEMA", subjects)
            }
        },
        CommandError::SchemasNeedAdmin(_) => Status::permission_denied(err.to_string()),
        CommandError::TooLarge { .. } => Status::failed_precondition(err.to_string()),
        CommandError::Timeout => Status::unavailable(err.to_string()),
        CommandError::Contention(_) => Status::aborted(err.to_string()),
        CommandError::Store(e) => store_status(e),
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        // Our words only: the NATS error is in the source, for the log.
        StoreError::Unavailable { .. } => {
            tracing::warn!(error = %chain(&e), "event store unavailable");
            Status::unavailable(format!("{e}; the outcome is unknown, retry with the same request_id"))
        }
        StoreError::Refused { .. } => {
            tracing::warn!(error = %chain(&e), "event store refused an append");
            Status::new(Code::FailedPrecondition, e.to_string())
        }
        StoreError::Undecodable { .. } => {
            tracing::error!(error = %e, "namespace holds an event this version cannot read");
            Status::failed_precondition(format!("{e}; upgrade the command service"))
        }
        // Handled by retrying in the handler; reaching here is a bug.
        StoreError::WrongLastRevision { .. } => {
            tracing::error!(error = %e, "unexpected revision conflict escaped the handler");
            Status::internal("internal error")
        }
    }
}

/// The error and its causes on one line, for logs.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
