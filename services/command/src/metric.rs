//! The command service's own metrics (the per-RPC ones come from
//! `veltrix-server`, the NATS connection's from `veltrix-jetstream`).

pub const APPEND_DURATION: &str = "veltrix_append_duration_seconds";
pub const APPEND_CONFLICTS: &str = "veltrix_append_conflicts_total";
pub const APPEND_DUPLICATES: &str = "veltrix_append_duplicates_total";
pub const RETRIES: &str = "veltrix_command_retries_total";
pub const NAMESPACE_STATES: &str = "veltrix_command_namespace_states";

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(APPEND_DURATION, Unit::Seconds, "Time of one append to JetStream, until its acknowledgement.");
    describe_counter!(
        APPEND_CONFLICTS,
        "Appends refused because another writer appended to the namespace first (the command is decided again)."
    );
    describe_counter!(APPEND_DUPLICATES, "Appends JetStream recognised as retries of an earlier request id.");
    describe_counter!(RETRIES, "Decide-append rounds after the first (conflicts, duplicates).");
    describe_gauge!(NAMESPACE_STATES, "Namespace states held in memory.");
    // Present from the start, so that rates are defined before the first event.
    for counter in [APPEND_CONFLICTS, APPEND_DUPLICATES, RETRIES] {
        metrics::counter!(counter).increment(0);
    }
}
