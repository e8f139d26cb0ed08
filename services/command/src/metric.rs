//! The command service's own metrics (the per-RPC ones come from
//! `veltrix-server`, the NATS connection's from `veltrix-jetstream`).

pub const APPEND_DURATION: &str = "veltrix_append_duration_seconds";
pub const APPEND_CONFLICTS: &str = "veltrix_append_conflicts_total";
pub const APPEND_DUPLICATES: &str = "veltrix_append_duplicates_total";
pub const RETRIES: &str = "veltrix_command_retries_total";
pub const NAMESPACE_STATES: &str = "veltrix_command_namespace_states";
pub const NAMESPACE_LOADS: &str = "veltrix_command_namespace_loads_total";
pub const APPEND_ERRORS: &str = "veltrix_append_errors_total";
pub const SNAPSHOTS_WRITTEN: &str = "veltrix_command_snapshots_written_total";
pub const NAMESPACE_LOAD_EVENTS: &str = "veltrix_command_namespace_load_events_total";
pub const NAMESPACE_LOAD_DURATION: &str = "veltrix_command_namespace_load_duration_seconds";
pub const STREAM_BYTES: &str = "veltrix_stream_bytes";
pub const STREAM_MAX_BYTES: &str = "veltrix_stream_max_bytes";
pub const STREAM_MESSAGES: &str = "veltrix_stream_messages";
/// How often the stream's size is read for the gauges.
pub const STREAM_USAGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(APPEND_DURATION, Unit::Seconds, "Time of one append to JetStream, until its acknowledgement.");
    describe_counter!(
        APPEND_CONFLICTS,
        "Appends refused because another writer appended to the namespace first (the command is decided again)."
    );
    describe_counter!(APPEND_DUPLICATES, "Appends JetStream recognised as retries of an earlier request id.");
    describe_counter!(RETRIES, "Decide-append rounds after the first (conflicts, duplicates).");
    describe_counter!(
        APPEND_ERRORS,
        "Appends to JetStream that failed (timeout or NATS error); the write is UNAVAILABLE."
    );
    describe_gauge!(NAMESPACE_STATES, "Namespace states held in memory.");
    describe_counter!(
        NAMESPACE_LOADS,
        "Namespace states loaded from the event stream (first write after a start or an eviction)."
    );
    describe_counter!(
        SNAPSHOTS_WRITTEN,
        "Namespace snapshots written (every --snapshot-every events or --snapshot-bytes)."
    );
    describe_counter!(
        veltrix_jetstream::SNAPSHOTS_IGNORED,
        "Namespace snapshots a load did not trust, by reason (its history was folded instead)."
    );
    for reason in veltrix_jetstream::SNAPSHOT_IGNORED_REASONS {
        metrics::counter!(veltrix_jetstream::SNAPSHOTS_IGNORED, "reason" => reason).increment(0);
    }
    describe_counter!(NAMESPACE_LOAD_EVENTS, "Events folded by namespace loads (after their snapshot, if any).");
    describe_histogram!(
        NAMESPACE_LOAD_DURATION,
        Unit::Seconds,
        "Time to load a namespace's state (its snapshot and the events after it)."
    );
    describe_gauge!(STREAM_BYTES, Unit::Bytes, "Bytes held by the event stream.");
    describe_gauge!(STREAM_MAX_BYTES, Unit::Bytes, "The event stream's byte limit (--stream-max-bytes; -1: none).");
    describe_gauge!(STREAM_MESSAGES, "Events held by the event stream.");
    // Present from the start, so that rates are defined before the first event.
    for counter in [
        APPEND_CONFLICTS,
        APPEND_DUPLICATES,
        RETRIES,
        APPEND_ERRORS,
        NAMESPACE_LOADS,
        SNAPSHOTS_WRITTEN,
        NAMESPACE_LOAD_EVENTS,
    ] {
        metrics::counter!(counter).increment(0);
    }
    let _registered = metrics::histogram!(APPEND_DURATION);
    for gauge in [NAMESPACE_STATES, STREAM_BYTES, STREAM_MAX_BYTES, STREAM_MESSAGES] {
        metrics::gauge!(gauge).increment(0.0);
    }
}

/// Keeps the stream-size gauges current until `shutdown`.
pub async fn report_stream_usage(
    store: veltrix_jetstream::JetStreamEventStore,
    shutdown: veltrix_server::CancellationToken,
) {
    let mut tick = tokio::time::interval(STREAM_USAGE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match store.usage().await {
            Ok(u) => {
                metrics::gauge!(STREAM_BYTES).set(u.bytes as f64);
                metrics::gauge!(STREAM_MAX_BYTES).set(u.max_bytes as f64);
                metrics::gauge!(STREAM_MESSAGES).set(u.messages as f64);
            }
            Err(e) => tracing::debug!(error = %e, "could not read the stream's size"),
        }
    }
}
