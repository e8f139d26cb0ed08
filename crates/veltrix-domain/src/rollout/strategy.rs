//! A rollout's strategy, validated: cumulative steps ending at 100 %, each
//! with its bake time and gates, a canary selector and an ACK timeout.

use std::time::Duration;

use crate::{ValidationError, fleet::LabelSelector};

pub const MAX_STEPS: usize = 20;
/// The longest bake time or ACK timeout (a week).
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One step: `percent` of the namespace's Sync clients (cumulative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub percent: u8,
    pub bake: Duration,
    /// Share of the step's cohort that must ACK the target to advance.
    pub min_applied_percent: u8,
    /// Above this share of NACKs the rollout aborts.
    pub max_rejected_percent: u8,
}

/// A step as a client asked for it (absent gates take their defaults).
#[derive(Debug, Clone, Default)]
pub struct StepInput {
    pub percent: u32,
    pub bake: Duration,
    pub min_applied_percent: Option<u32>,
    pub max_rejected_percent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strategy {
    pub steps: Vec<Step>,
    pub canary: LabelSelector,
    /// Not enough ACKs this long after a step began: the rollout pauses.
    pub ack_timeout: Option<Duration>,
}

fn percent(field: String, value: u32, low: u32) -> Result<u8, ValidationError> {
    match u8::try_from(value) {
        Ok(p) if (low..=100).contains(&value) => Ok(p),
        _ => Err(ValidationError::new(field, format!("must be a percentage from {low} to 100"))),
    }
}

impl Strategy {
    pub fn new(
        steps: &[StepInput],
        canary: LabelSelector,
        ack_timeout: Option<Duration>,
    ) -> Result<Self, ValidationError> {
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(ValidationError::new("strategy.steps", format!("must hold 1 to {MAX_STEPS} steps")));
        }
        let mut out: Vec<Step> = Vec::with_capacity(steps.len());
        for (i, s) in steps.iter().enumerate() {
            let field = |name: &str| format!("strategy.steps[{i}].{name}");
            let p = percent(field("percent"), s.percent, 1)?;
            if out.last().is_some_and(|prev| prev.percent >= p) {
                return Err(ValidationError::new(
                    field("percent"),
                    "must be larger than the step before (steps are cumulative)",
                ));
            }
            if s.bake > MAX_WAIT {
                return Err(ValidationError::new(field("bake_time"), "must be at most 7 days"));
            }
            out.push(Step {
                percent: p,
                bake: s.bake,
                min_applied_percent: percent(field("min_applied_percent"), s.min_applied_percent.unwrap_or(100), 0)?,
                max_rejected_percent: percent(field("max_rejected_percent"), s.max_rejected_percent.unwrap_or(0), 0)?,
            });
        }
        if out.last().is_some_and(|s| s.percent != 100) {
            return Err(ValidationError::new(
                format!("strategy.steps[{}].percent", out.len() - 1),
                "the last step must be 100",
            ));
        }
        match ack_timeout {
            Some(t) if t.is_zero() || t > MAX_WAIT => {
                Err(ValidationError::new("strategy.ack_timeout", "must be more than 0 and at most 7 days"))
            }
            _ => Ok(Self { steps: out, canary, ack_timeout }),
        }
    }
}
