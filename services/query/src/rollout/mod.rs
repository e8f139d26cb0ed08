//! Rollouts on the query side: GetRollout and ListRollouts ([`read`]), the
//! controller that evaluates the gates and appends their transitions
//! ([`controller`]), and what a Sync session sends its client of the
//! namespace's rollout ([`delivery`]).
//!
//! A namespace's rollouts are folded from their transition events, which
//! the projection stores apart (`{ns}:rollouts`), with the domain's fold:
//! the same one the command side decides with.

pub mod cache;
pub mod controller;
pub mod delivery;
mod read;

use veltrix_domain::{Namespace, rollout::Rollout};
use veltrix_redis::{Generation, ReadModel};

use crate::{state::ReadState, status::ReadError};

/// Every rollout of `ns`, oldest first.
pub(crate) async fn rollouts(
    model: &ReadModel,
    state: &ReadState,
    generation: Generation,
    ns: &Namespace,
) -> Result<Vec<Rollout>, ReadError> {
    let events = state.rollouts.events(model, generation, ns).await?;
    Ok(veltrix_domain::rollout::fold_all(events.iter().map(|(r, e)| (*r, e))))
}
