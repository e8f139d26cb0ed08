//! Change sets the service computes: Rollback, Promote, SetSchema,
//! DeleteSchema and DeleteNamespace. The namespaces'
//! events are read from the event store (so they reach as far back as the
//! stream does), the change set is planned, and it is appended like any
//! other, on condition that the namespace did not move meanwhile (else it
//! is planned again, unless the caller pinned the revision).

use std::future::Future;

use tokio::time::{Instant, timeout_at};
use veltrix_domain::{
    ChangeSetCommand, CommandMeta, Derived, EventStore, Limits, Namespace, Origin, Rejection, Revision, StoredEvent,
    plan::{
        DeleteNamespace, DeleteSchema, Plan, Promote, Rollback, SetSchema, plan_delete_namespace, plan_delete_schema,
        plan_promote, plan_rollback, plan_set_schema,
    },
};

use crate::handler::{CommandError, CommandHandler};

/// Plans before giving up on a namespace that keeps moving.
const MAX_ROUNDS: u32 = 5;

/// A planned change set and what it needs to be appended.
struct Planned {
    plan: Plan,
    origin: Origin,
    request: Vec<u8>,
}

/// A computed change set's answer: the revision (the new one, or the
/// current one when nothing was appended) and what it changes.
pub struct Outcome {
    pub revision: Revision,
    pub plan: Plan,
}

/// What every computed change set shares.
struct Job<'a> {
    namespace: &'a Namespace,
    expected: Option<Revision>,
    dry_run: bool,
    meta: &'a CommandMeta,
}

impl<S: EventStore> CommandHandler<S> {
    /// Carries out (or, with `dry_run`, only computes) a rollback; answers
    /// the revision (the new one, or the current one when nothing is
    /// appended) and the changes.
    pub async fn rollback(
        &self,
        rollback: &Rollback,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job {
            namespace: &rollback.namespace,
            expected: rollback.expected,
            dry_run: rollback.dry_run,
            meta: &rollback.meta,
        };
        self.carry_out(job, limits, deadline, || async {
            let events = self.events(&rollback.namespace, deadline).await?;
            Ok(Planned {
                plan: plan_rollback(&rollback.namespace, &events, rollback.to_revision, &rollback.prefix),
                origin: Origin::Rollback { to_revision: rollback.to_revision },
                request: rollback.request(),
            })
        })
        .await
    }

    /// Carries out (or only computes) a promotion into the target namespace.
    pub async fn promote(
        &self,
        promote: &Promote,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job {
            namespace: &promote.target,
            expected: promote.expected,
            dry_run: promote.dry_run,
            meta: &promote.meta,
        };
        self.carry_out(job, limits, deadline, || async {
            let source = self.events(&promote.source, deadline).await?;
            let target = self.events(&promote.target, deadline).await?;
            let (plan, from) = plan_promote(promote, &source, &target);
            Ok(Planned {
                plan,
                origin: Origin::Promotion { source_namespace: Box::new(promote.source.clone()), source_revision: from },
                request: promote.request(from),
            })
        })
        .await
    }

    /// Sets a schema, refused while current values break it.
    pub async fn set_schema(
        &self,
        request: &SetSchema,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job {
            namespace: &request.namespace,
            expected: request.expected,
            dry_run: request.dry_run,
            meta: &request.meta,
        };
        self.carry_out(job, limits, deadline, || async {
            let events = self.events(&request.namespace, deadline).await?;
            Ok(Planned { plan: plan_set_schema(request, &events)?, origin: Origin::Schema, request: request.request() })
        })
        .await
    }

    pub async fn delete_schema(
        &self,
        request: &DeleteSchema,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job {
            namespace: &request.namespace,
            expected: request.expected,
            dry_run: request.dry_run,
            meta: &request.meta,
        };
        self.carry_out(job, limits, deadline, || async {
            let events = self.events(&request.namespace, deadline).await?;
            Ok(Planned {
                plan: plan_delete_schema(request, &events)?,
                origin: Origin::Schema,
                request: request.request(),
            })
        })
        .await
    }

    /// Deletes every key and schema of a namespace and marks it deleted.
    pub async fn delete_namespace(
        &self,
        request: &DeleteNamespace,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job {
            namespace: &request.namespace,
            expected: request.expected,
            dry_run: request.dry_run,
            meta: &request.meta,
        };
        self.carry_out(job, limits, deadline, || async {
            let events = self.events(&request.namespace, deadline).await?;
            Ok(Planned {
                plan: plan_delete_namespace(request, &events)?,
                origin: Origin::NamespaceDelete,
                request: request.request(),
            })
        })
        .await
    }

    async fn events(&self, namespace: &Namespace, deadline: Instant) -> Result<Vec<StoredEvent>, CommandError> {
        Ok(timeout_at(deadline, self.store().read(namespace, Revision::ZERO))
            .await
            .map_err(|_| CommandError::Timeout)??)
    }

    async fn carry_out<F, Fut>(
        &self,
        job: Job<'_>,
        limits: &Limits,
        deadline: Instant,
        mut plan: F,
    ) -> Result<Outcome, CommandError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Planned, CommandError>>,
    {
        for _ in 0..MAX_ROUNDS {
            let Planned { plan, origin, request } = plan().await?;
            if let Some(expected) = job.expected
                && expected != plan.at
            {
                return Err(Rejection::NamespaceMoved { expected, current: plan.at }.into());
            }
            if plan.is_noop() {
                return Ok(Outcome { revision: plan.at, plan });
            }
            if plan.changes.len() > limits.max_changes {
                return Err(CommandError::TooLarge { changes: plan.changes.len(), max: limits.max_changes });
            }
            let derived = Derived { origin, computed_at: plan.at, request };
            let cmd = ChangeSetCommand::derived(
                job.namespace.clone(),
                plan.commands(limits)?,
                plan.schema_changes.clone(),
                job.meta.clone(),
                derived,
                limits,
            )?;
            // A dry run is decided like the real call (schemas, a reused
            // request id) and appends nothing.
            let done = if job.dry_run {
                self.check(&cmd, deadline).await.map(|()| plan.at)
            } else {
                self.execute(&cmd, deadline).await
            };
            match done {
                Ok(revision) => return Ok(Outcome { revision, plan }),
                Err(CommandError::Rejected(Rejection::NamespaceMoved { .. })) if job.expected.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        Err(CommandError::Contention(job.namespace.clone()))
    }
}
