//! Rollouts on the command side: a person's start, pause, resume, abort and
//! promote, decided against the namespace's state like any write (so a
//! retry is answered, a conflict decided again) and appended as one
//! transition event. The gates' transitions are the query service's
//! controller's (see ARCHITECTURE.md).

use tokio::time::Instant;
use veltrix_domain::{
    EventStore, Namespace, Revision,
    rollout::{Rollout, RolloutAction, StartRollout, decide_action, decide_start},
};

use crate::handler::{CommandError, CommandHandler};

impl<S: EventStore> CommandHandler<S> {
    /// Appends a rollout's start: its target decided against the namespace
    /// (conflicts, schemas), committed by nobody yet.
    pub async fn start_rollout(&self, start: &StartRollout, deadline: Instant) -> Result<Revision, CommandError> {
        self.execute_with(start.target.namespace(), deadline, |state| decide_start(state, start.clone())).await
    }

    /// Appends a person's transition of a rollout; answers its revision and
    /// the rollout after it.
    pub async fn rollout_action(
        &self,
        namespace: &Namespace,
        action: &RolloutAction,
        deadline: Instant,
    ) -> Result<(Revision, Option<Rollout>), CommandError> {
        let revision =
            self.execute_with(namespace, deadline, |state| decide_action(state, namespace, action.clone())).await?;
        let rollout = self
            .with_latest(namespace, deadline, |state| Ok(state.rollout().filter(|r| r.id == action.id).cloned()))
            .await?;
        Ok((revision, rollout))
    }
}
