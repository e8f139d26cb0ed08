//! `ConfigCommand` over gRPC: metadata and message to a validated command,
//! the handler, and its error to a status.

use std::{sync::Arc, time::SystemTime};

use tonic::{Request, Response, Status, metadata::MetadataMap};
use veltrix_access::{AccessError, Auth, Role};
use veltrix_domain::{Actor, EventStore, Limits, TraceContext, ValidationError, rollout::RolloutCommand};
use veltrix_proto::{
    convert::rollout::{ActionRequest, rollout_action, rollout_to_wire, start_rollout},
    v1::{
        AbortRolloutRequest, PauseRolloutRequest, PromoteRolloutRequest, ResumeRolloutRequest, RolloutActionResponse,
        StartRolloutRequest, StartRolloutResponse,
    },
};
use veltrix_proto::{
    convert::{self, CallContext, IntoCommand, read},
    v1::{
        ApplyRequest, ApplyResponse, ChangeSetResponse, DeleteNamespaceRequest, DeleteNamespaceResponse, DeleteRequest,
        DeleteResponse, DeleteSchemaRequest, DeleteSchemaResponse, PromoteRequest, PutRequest, PutResponse,
        RollbackRequest, SetSchemaRequest, SetSchemaResponse, config_command_server::ConfigCommand,
    },
};
use veltrix_server::{CallTime, ServingGate};
use veltrix_telemetry::{TRACEPARENT, TRACESTATE, child_traceparent, span_traceparent};

use crate::{
    derived::Outcome,
    handler::{CommandError, CommandHandler},
    status::to_status,
};

/// Metadata naming who makes a change (until authentication is on).
pub const ACTOR_HEADER: &str = "x-veltrix-actor";

pub struct CommandService<S> {
    handler: ServingGate<Arc<CommandHandler<S>>>,
    call_time: CallTime,
    auth: Auth,
}

impl<S> CommandService<S> {
    /// The limits of commands are the handler's (known once the store is).
    pub fn new(handler: ServingGate<Arc<CommandHandler<S>>>, call_time: CallTime, auth: Auth) -> Self {
        Self { handler, call_time, auth }
    }
}

impl<S: EventStore> CommandService<S> {
    #[tracing::instrument(level = "debug", skip_all, fields(rpc = rpc))]
    async fn run<R: IntoCommand>(&self, rpc: &'static str, request: Request<R>) -> Result<u64, CommandError> {
        let caller = self.auth.caller(&request)?;
        let budget = self.call_time.budget(request.metadata());
        let deadline = tokio::time::Instant::now() + budget;
        let ctx = call_context(request.metadata(), caller.identity())?;
        let handler = self.handler.get()?;
        let cmd = request.into_inner().into_command(ctx, &handler.limits())?;
        // Nothing is appended for a caller without the write role here.
        caller.require(Role::Write, cmd.namespace().as_str())?;
        let revision = handler.execute(&cmd, deadline).await?;
        tracing::debug!(namespace = %cmd.namespace(), %revision, changes = cmd.changes().len(), "committed");
        Ok(revision.get())
    }

    /// Rollback: the write role on the namespace (it only puts back values
    /// the namespace held); admin as well when it would change schemas.
    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "Rollback"))]
    async fn run_rollback(&self, request: Request<RollbackRequest>) -> Result<ChangeSetResponse, CommandError> {
        let caller = self.auth.caller(&request)?;
        let deadline = tokio::time::Instant::now() + self.call_time.budget(request.metadata());
        let ctx = call_context(request.metadata(), caller.identity())?;
        let rollback = convert::rollback(request.into_inner(), ctx)?;
        caller.require(Role::Write, rollback.namespace.as_str())?;
        let may_change_schemas = caller.can(Role::Admin, rollback.namespace.as_str());
        let handler = self.handler.get()?;
        let outcome = handler.rollback(&rollback, may_change_schemas, &handler.limits(), deadline).await?;
        tracing::debug!(namespace = %rollback.namespace, revision = %outcome.revision, "rolled back");
        Ok(change_set_response(&outcome))
    }

    /// Promote: read on the source and write on the target.
    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "Promote"))]
    async fn run_promote(&self, request: Request<PromoteRequest>) -> Result<ChangeSetResponse, CommandError> {
        let caller = self.auth.caller(&request)?;
        let deadline = tokio::time::Instant::now() + self.call_time.budget(request.metadata());
        let ctx = call_context(request.metadata(), caller.identity())?;
        let promote = convert::promote(request.into_inner(), ctx)?;
        caller.require(Role::Read, promote.source.as_str())?;
        caller.require(Role::Write, promote.target.as_str())?;
        let handler = self.handler.get()?;
        let outcome = handler.promote(&promote, &handler.limits(), deadline).await?;
        tracing::debug!(source = %promote.source, target = %promote.target, revision = %outcome.revision, "promoted");
        Ok(change_set_response(&outcome))
    }

    /// SetSchema, DeleteSchema, DeleteNamespace: the admin role on the
    /// namespace. `convert` validates the message, `run` carries it out.
    async fn run_admin<R, T, C, F>(
        &self,
        request: Request<R>,
        convert: C,
        namespace: impl Fn(&T) -> &veltrix_domain::Namespace,
        run: impl FnOnce(Arc<CommandHandler<S>>, T, Limits, tokio::time::Instant) -> F,
    ) -> Result<Outcome, CommandError>
    where
        C: FnOnce(R, CallContext) -> Result<T, ValidationError>,
        F: std::future::Future<Output = Result<Outcome, CommandError>>,
    {
        let caller = self.auth.caller(&request)?;
        let deadline = tokio::time::Instant::now() + self.call_time.budget(request.metadata());
        let ctx = call_context(request.metadata(), caller.identity())?;
        let validated = convert(request.into_inner(), ctx)?;
        caller.require(Role::Admin, namespace(&validated).as_str())?;
        let handler = self.handler.get()?;
        let limits = handler.limits();
        run(handler.clone(), validated, limits, deadline).await
    }
}

impl<S: EventStore> CommandService<S> {
    /// StartRollout: the write role on the namespace.
    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "StartRollout"))]
    async fn run_start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<StartRolloutResponse, CommandError> {
        let caller = self.auth.caller(&request)?;
        let deadline = tokio::time::Instant::now() + self.call_time.budget(request.metadata());
        let ctx = call_context(request.metadata(), caller.identity())?;
        let handler = self.handler.get()?;
        let start = start_rollout(request.into_inner(), ctx, &handler.limits())?;
        caller.require(Role::Write, start.target.namespace().as_str())?;
        let revision = handler.start_rollout(&start, deadline).await?;
        tracing::info!(namespace = %start.target.namespace(), rollout = %start.id, %revision, "rollout started");
        Ok(StartRolloutResponse { rollout_id: start.id.to_string(), revision: revision.get() })
    }

    /// Pause, resume, abort, promote: the write role on the namespace.
    async fn run_rollout_action<R>(
        &self,
        request: Request<R>,
        command: RolloutCommand,
    ) -> Result<RolloutActionResponse, CommandError>
    where
        for<'a> ActionRequest<'a>: From<&'a R>,
    {
        let caller = self.auth.caller(&request)?;
        let deadline = tokio::time::Instant::now() + self.call_time.budget(request.metadata());
        let ctx = call_context(request.metadata(), caller.identity())?;
        let (namespace, action) = rollout_action(ActionRequest::from(request.get_ref()), command, ctx)?;
        caller.require(Role::Write, namespace.as_str())?;
        let handler = self.handler.get()?;
        let (revision, rollout) = handler.rollout_action(&namespace, &action, deadline).await?;
        tracing::info!(%namespace, rollout = %action.id, ?command, %revision, "rollout transition");
        Ok(RolloutActionResponse { revision: revision.get(), rollout: rollout.map(|r| rollout_to_wire(&r, None)) })
    }
}

fn change_set_response(outcome: &Outcome) -> ChangeSetResponse {
    ChangeSetResponse {
        revision: outcome.revision.get(),
        changes: outcome.plan.changes.iter().map(read::diff_entry).collect(),
        schema_changes: outcome.plan.schema_changes.iter().map(read::schema_change).collect(),
    }
}

/// The call's actor, trace and time. With authentication on, the actor is
/// the authenticated identity and `x-veltrix-actor` is ignored.
fn call_context(md: &MetadataMap, identity: Option<&str>) -> Result<CallContext, CommandError> {
    let text = |name: &'static str| md.get(name).map(move |v| v.to_str().map_err(|_| name));
    let claimed = if identity.is_some() { None } else { text(ACTOR_HEADER) };
    let actor = match identity {
        Some(identity) => Actor::parse(identity)
            .map_err(|e| AccessError::InvalidIdentity { identity: identity.to_owned(), rule: e.rule })?,
        None => match claimed {
            None => Actor::anonymous(),
            Some(Ok(a)) if !a.is_empty() => {
                Actor::parse(a).map_err(|e| ValidationError::new(format!("{ACTOR_HEADER} metadata"), e.rule))?
            }
            Some(Ok(_)) => Actor::anonymous(),
            Some(Err(name)) => {
                return Err(ValidationError::new(format!("{name} metadata"), "must be printable ASCII").into());
            }
        },
    };
    // The event records the trace of this call: the exported server span
    // when traces are on, else the caller's trace with a new span id.
    let (traceparent, tracestate) = span_traceparent(&tracing::Span::current()).unwrap_or_else(|| {
        let traceparent = child_traceparent(text(TRACEPARENT).and_then(Result::ok));
        let tracestate = text(TRACESTATE).and_then(Result::ok).unwrap_or_default().to_owned();
        (traceparent, tracestate)
    });
    // W3C caps tracestate at 512 bytes; a longer one is dropped, not cut.
    let tracestate = if tracestate.len() <= 512 { tracestate } else { String::new() };
    Ok(CallContext { actor, trace: TraceContext { traceparent, tracestate }, time: SystemTime::now() })
}

#[tonic::async_trait]
impl<S: EventStore> ConfigCommand for CommandService<S> {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let revision = self.run("Put", request).await.map_err(to_status)?;
        Ok(Response::new(PutResponse { revision }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let revision = self.run("Delete", request).await.map_err(to_status)?;
        Ok(Response::new(DeleteResponse { revision }))
    }

    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let revision = self.run("Apply", request).await.map_err(to_status)?;
        Ok(Response::new(ApplyResponse { revision }))
    }

    async fn rollback(&self, request: Request<RollbackRequest>) -> Result<Response<ChangeSetResponse>, Status> {
        self.run_rollback(request).await.map(Response::new).map_err(to_status)
    }

    async fn promote(&self, request: Request<PromoteRequest>) -> Result<Response<ChangeSetResponse>, Status> {
        self.run_promote(request).await.map(Response::new).map_err(to_status)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "SetSchema"))]
    async fn set_schema(&self, request: Request<SetSchemaRequest>) -> Result<Response<SetSchemaResponse>, Status> {
        let outcome = self
            .run_admin(
                request,
                convert::set_schema,
                |r| &r.namespace,
                |h, r, limits, deadline| async move { h.set_schema(&r, &limits, deadline).await },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(SetSchemaResponse { revision: outcome.revision.get() }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "DeleteSchema"))]
    async fn delete_schema(
        &self,
        request: Request<DeleteSchemaRequest>,
    ) -> Result<Response<DeleteSchemaResponse>, Status> {
        let outcome = self
            .run_admin(
                request,
                convert::delete_schema,
                |r| &r.namespace,
                |h, r, limits, deadline| async move { h.delete_schema(&r, &limits, deadline).await },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteSchemaResponse { revision: outcome.revision.get() }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc = "DeleteNamespace"))]
    async fn delete_namespace(
        &self,
        request: Request<DeleteNamespaceRequest>,
    ) -> Result<Response<DeleteNamespaceResponse>, Status> {
        let outcome = self
            .run_admin(
                request,
                convert::delete_namespace,
                |r| &r.namespace,
                |h, r, limits, deadline| async move { h.delete_namespace(&r, &limits, deadline).await },
            )
            .await
            .map_err(to_status)?;
        let ChangeSetResponse { revision, changes, schema_changes } = change_set_response(&outcome);
        Ok(Response::new(DeleteNamespaceResponse { revision, changes, schema_changes }))
    }

    async fn start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<Response<StartRolloutResponse>, Status> {
        self.run_start_rollout(request).await.map(Response::new).map_err(to_status)
    }

    async fn pause_rollout(
        &self,
        request: Request<PauseRolloutRequest>,
    ) -> Result<Response<RolloutActionResponse>, Status> {
        self.run_rollout_action(request, RolloutCommand::Pause).await.map(Response::new).map_err(to_status)
    }

    async fn resume_rollout(
        &self,
        request: Request<ResumeRolloutRequest>,
    ) -> Result<Response<RolloutActionResponse>, Status> {
        self.run_rollout_action(request, RolloutCommand::Resume).await.map(Response::new).map_err(to_status)
    }

    async fn abort_rollout(
        &self,
        request: Request<AbortRolloutRequest>,
    ) -> Result<Response<RolloutActionResponse>, Status> {
        self.run_rollout_action(request, RolloutCommand::Abort).await.map(Response::new).map_err(to_status)
    }

    async fn promote_rollout(
        &self,
        request: Request<PromoteRolloutRequest>,
    ) -> Result<Response<RolloutActionResponse>, Status> {
        self.run_rollout_action(request, RolloutCommand::Promote).await.map(Response::new).map_err(to_status)
    }
}
