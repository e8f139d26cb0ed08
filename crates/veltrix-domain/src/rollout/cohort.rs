//! Who is in a rollout's cohort: a stable hash of (rollout id, client id)
//! into [`BUCKETS`] buckets; a step of p % holds the buckets below p × 100,
//! so a client in one step is in every later one, on every replica and
//! across reconnects. Clients matching the canary selector are in from the
//! first step. The hash is a storage format: changing it would move clients
//! between cohorts of running rollouts.

use sha2::{Digest, Sha256};

use super::RolloutId;
use crate::fleet::{ClientId, LabelSelector, Labels};

/// Buckets a client can fall into.
pub const BUCKETS: u16 = 10_000;

/// The client's bucket in this rollout: the first 8 bytes of SHA-256 over
/// the length-prefixed rollout id and the client id, modulo [`BUCKETS`].
pub fn bucket(rollout: &RolloutId, client: &ClientId) -> u16 {
    let mut hash = Sha256::new();
    hash.update((rollout.as_str().len() as u64).to_be_bytes());
    hash.update(rollout.as_str().as_bytes());
    hash.update(client.as_str().as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below 10,000: it fits.
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u16
}

/// Whether a bucket is in a step of `percent` (1..=100).
pub fn covers(percent: u8, bucket: u16) -> bool {
    u32::from(bucket) < u32::from(percent.min(100)) * 100
}

/// The cohort of one step of one rollout (0 %: nobody).
#[derive(Debug, Clone, Copy)]
pub struct Cohort<'a> {
    pub rollout: &'a RolloutId,
    pub percent: u8,
    pub canary: &'a LabelSelector,
}

impl Cohort<'_> {
    /// Whether the client runs the target (no one does at 0 %: aborted).
    pub fn includes(&self, client: &ClientId, labels: &Labels) -> bool {
        self.percent > 0 && (!self.canary.is_empty() && self.canary.matches(labels))
            || covers(self.percent, bucket(self.rollout, client))
    }
}
