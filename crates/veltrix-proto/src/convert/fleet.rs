//! Fleet names between the domain and the wire.

use veltrix_domain::fleet::Step;

use crate::v1::SyncStep;

pub fn step_to_wire(step: Step) -> SyncStep {
    match step {
        Step::Render => SyncStep::Render,
        Step::Check => SyncStep::Check,
        Step::Reload => SyncStep::Reload,
        Step::Health => SyncStep::Health,
    }
}

pub fn step_from_wire(step: SyncStep) -> Option<Step> {
    match step {
        SyncStep::Render => Some(Step::Render),
        SyncStep::Check => Some(Step::Check),
        SyncStep::Reload => Some(Step::Reload),
        SyncStep::Health => Some(Step::Health),
        SyncStep::Unspecified => None,
    }
}
