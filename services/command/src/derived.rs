//! Change sets the service computes: Rollback, Promote, SetSchema,
//! DeleteSchema and DeleteNamespace. A retried request is answered first,
//! from the namespace's request ids. Otherwise the namespaces' events are
//! read from the event store (so they reach as far back as the stream
//! does), the change set is planned, and it is appended like any other, on
//! condition that the namespace did not move meanwhile (else it is planned
//! again, unless the caller pinned the revision).

use std::future::Future;

use tokio::time::{Instant, timeout_at};
use veltrix_domain::{
    ChangeSetCommand, CommandMeta, Derived, EventStore, Limits, Namespace, Origin, Rejection, Revision, StoredEvent,
    command::max_changes,
    digest::derived_digest,
    plan::{
        DeleteNamespace, DeleteSchema, Plan, Promote, Rollback, SetSchema, plan_delete_namespace, plan_delete_schema,
        plan_promote, plan_rollback, plan_set_schema,
    },
};

use crate::handler::{CommandError, CommandHandler};

/// Plans before giving up on a namespace that keeps moving.
const MAX_ROUNDS: u32 = 5;

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
    /// The request, canonically: its digest tells a retry.
    request: Vec<u8>,
    origin: Origin,
    /// The caller holds admin on the namespace: the change set may change
    /// its schemas (a whole-namespace rollback may).
    may_change_schemas: bool,
}

impl<'a> Job<'a> {
    fn new(namespace: &'a Namespace, meta: &'a CommandMeta, request: Vec<u8>, origin: Origin) -> Self {
        Self { namespace, expected: None, dry_run: false, meta, request, origin, may_change_schemas: true }
    }

    fn asked(mut self, expected: Option<Revision>, dry_run: bool) -> Self {
        (self.expected, self.dry_run) = (expected, dry_run);
        self
    }
}

impl<S: EventStore> CommandHandler<S> {
    /// Carries out (or, with `dry_run`, only computes) a rollback. One that
    /// would change the namespace's schemas (a whole-namespace rollback past
    /// a schema change) needs `may_change_schemas` (the admin role).
    pub async fn rollback(
        &self,
        r: &Rollback,
        may_change_schemas: bool,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let origin = Origin::Rollback { to_revision: r.to_revision };
        let job = Job { may_change_schemas, ..Job::new(&r.namespace, &r.meta, r.request(), origin) };
        self.planned_on_own_events(job.asked(r.expected, r.dry_run), limits, deadline, |events| {
            Ok(plan_rollback(&r.namespace, events, r.to_revision, &r.prefix))
        })
        .await
    }

    /// Carries out (or only computes) a promotion into the target namespace.
    pub async fn promote(&self, p: &Promote, limits: &Limits, deadline: Instant) -> Result<Outcome, CommandError> {
        // The origin names the source revision the plan was computed from.
        let job = Job::new(&p.target, &p.meta, p.request(), Origin::Write).asked(p.expected, p.dry_run);
        self.carry_out(job, limits, deadline, || async {
            let source = self.events(&p.source, deadline).await?;
            let target = self.events(&p.target, deadline).await?;
            let (plan, from) = plan_promote(p, &source, &target);
            let origin = Origin::Promotion { source_namespace: Box::new(p.source.clone()), source_revision: from };
            Ok((plan, Some(origin)))
        })
        .await
    }

    /// Sets a schema, refused while current values break it.
    pub async fn set_schema(&self, r: &SetSchema, limits: &Limits, deadline: Instant) -> Result<Outcome, CommandError> {
        let job = Job::new(&r.namespace, &r.meta, r.request(), Origin::Schema).asked(r.expected, r.dry_run);
        self.planned_on_own_events(job, limits, deadline, |events| Ok(plan_set_schema(r, events)?)).await
    }

    pub async fn delete_schema(
        &self,
        r: &DeleteSchema,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job::new(&r.namespace, &r.meta, r.request(), Origin::Schema).asked(r.expected, r.dry_run);
        self.planned_on_own_events(job, limits, deadline, |events| Ok(plan_delete_schema(r, events)?)).await
    }

    /// Deletes every key and schema of a namespace and marks it deleted.
    pub async fn delete_namespace(
        &self,
        r: &DeleteNamespace,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Outcome, CommandError> {
        let job = Job::new(&r.namespace, &r.meta, r.request(), Origin::NamespaceDelete).asked(r.expected, r.dry_run);
        self.planned_on_own_events(job, limits, deadline, |events| Ok(plan_delete_namespace(r, events)?)).await
    }

    /// A change set planned from its own namespace's events alone.
    async fn planned_on_own_events(
        &self,
        job: Job<'_>,
        limits: &Limits,
        deadline: Instant,
        plan: impl Fn(&[StoredEvent]) -> Result<Plan, CommandError>,
    ) -> Result<Outcome, CommandError> {
        let namespace = job.namespace;
        let plan = &plan;
        self.carry_out(job, limits, deadline, || async move {
            let events = self.events(namespace, deadline).await?;
            Ok((plan(&events)?, None))
        })
        .await
    }

    async fn events(&self, namespace: &Namespace, deadline: Instant) -> Result<Vec<StoredEvent>, CommandError> {
        Ok(timeout_at(deadline, self.store().read(namespace, Revision::ZERO))
            .await
            .map_err(|_| CommandError::Timeout)??)
    }

    /// Plans (each round answers the plan and, when it depends on the plan,
    /// the origin), checks and appends; a retry of a committed request is
    /// answered before anything is planned.
    async fn carry_out<F, Fut>(
        &self,
        job: Job<'_>,
        limits: &Limits,
        deadline: Instant,
        mut plan: F,
    ) -> Result<Outcome, CommandError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Plan, Option<Origin>), CommandError>>,
    {
        let digest = derived_digest(job.namespace, &job.request, &job.meta.reason);
        if let Some(answer) = self.answered(job.namespace, &job.meta.request_id, &digest, deadline).await? {
            let revision = answer?;
            return Ok(Outcome { revision, plan: Plan { at: revision, ..Plan::default() } });
        }
        for _ in 0..MAX_ROUNDS {
            let (plan, origin) = plan().await?;
            let origin = origin.unwrap_or_else(|| job.origin.clone());
            if let Some(expected) = job.expected
                && expected != plan.at
            {
                return Err(Rejection::NamespaceMoved { expected, current: plan.at }.into());
            }
            if plan.is_noop() {
                return Ok(Outcome { revision: plan.at, plan });
            }
            if !plan.schema_changes.is_empty() && !job.may_change_schemas {
                return Err(CommandError::SchemasNeedAdmin(job.namespace.clone()));
            }
            let max = max_changes(&origin, limits);
            if plan.changes.len() > max {
                return Err(CommandError::TooLarge { changes: plan.changes.len(), max });
            }
            let derived = Derived { origin, computed_at: plan.at, request: job.request.clone() };
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
