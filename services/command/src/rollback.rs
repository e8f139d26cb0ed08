//! Rollback: the namespace's events are read from the event store (so it
//! reaches as far back as the stream does), the change set that restores
//! the keys under the prefix is computed, and it is appended like any other
//! change set, on condition that the namespace did not move meanwhile.

use tokio::time::{Instant, timeout_at};
use veltrix_domain::{
    ChangeSetCommand, Derived, EventStore, Limits, Origin, Rejection, Revision,
    rollback::{DiffEntry, Rollback, plan_rollback},
};

use crate::handler::{CommandError, CommandHandler};

/// Computations before giving up on a namespace that keeps moving.
const MAX_ROUNDS: u32 = 5;

impl<S: EventStore> CommandHandler<S> {
    /// Carries out (or, with `dry_run`, only computes) a rollback; answers
    /// the revision (the new one, or the current one when nothing is
    /// appended) and the changes.
    pub async fn rollback(
        &self,
        rollback: &Rollback,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<(Revision, Vec<DiffEntry>), CommandError> {
        for _ in 0..MAX_ROUNDS {
            let events = timeout_at(deadline, self.store().read(&rollback.namespace, Revision::ZERO))
                .await
                .map_err(|_| CommandError::Timeout)??;
            let plan = plan_rollback(&rollback.namespace, &events, rollback.to_revision, &rollback.prefix);
            if let Some(expected) = rollback.expected
                && expected != plan.at
            {
                return Err(Rejection::NamespaceMoved { expected, current: plan.at }.into());
            }
            if rollback.dry_run || plan.changes.is_empty() {
                return Ok((plan.at, plan.changes));
            }
            if plan.changes.len() > limits.max_changes {
                return Err(CommandError::TooLarge { changes: plan.changes.len(), max: limits.max_changes });
            }
            let derived = Derived {
                origin: Origin::Rollback { to_revision: rollback.to_revision },
                computed_at: plan.at,
                request: rollback.request(),
            };
            let commands = plan.commands(limits)?;
            let cmd = ChangeSetCommand::derived(
                rollback.namespace.clone(),
                commands,
                rollback.meta.clone(),
                derived,
                limits,
            )?;
            match self.execute(&cmd, deadline).await {
                Ok(revision) => return Ok((revision, plan.changes)),
                // Another write came between reading and appending: compute
                // again, unless the caller pinned the revision.
                Err(CommandError::Rejected(Rejection::NamespaceMoved { .. })) if rollback.expected.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        Err(CommandError::Contention(rollback.namespace.clone()))
    }
}
