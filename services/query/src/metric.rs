//! The query service's metric names (the per-RPC ones come from
//! `veltrix-server`, the NATS and Redis connections' from their adapters).
//! Help texts are in [`crate::state::describe_metrics`].

pub const APPLIED_EVENTS: &str = "veltrix_projection_applied_events_total";
pub const APPLIED_REVISION: &str = "veltrix_projection_applied_revision";
pub const HALTED: &str = "veltrix_projection_halted";
pub const LAG_EVENTS: &str = "veltrix_projection_lag_events";
pub const LAG_SECONDS: &str = "veltrix_projection_lag_seconds";
pub const REDIS_RETRIES: &str = "veltrix_projection_redis_retries_total";
pub const RESTARTS: &str = "veltrix_projection_restarts_total";
pub const UNDECODABLE_EVENTS: &str = "veltrix_projection_undecodable_events_total";
pub const MODEL_LOSSES: &str = "veltrix_read_model_losses_total";
pub const LOST_NAMESPACES: &str = "veltrix_read_model_lost_namespaces_total";
pub const DELIVERY_LATENCY: &str = "veltrix_watch_delivery_latency_seconds";
pub const WATCH_ENDED: &str = "veltrix_watch_ended_total";
pub const EVENTS_DELIVERED: &str = "veltrix_watch_events_delivered_total";
pub const WATCH_LAGGED: &str = "veltrix_watch_lagged_total";
pub const WATCHERS: &str = "veltrix_watch_watchers";
pub const CLIENTS: &str = "veltrix_clients";
pub const REPORTS: &str = "veltrix_sync_reports_total";
pub const LEDGER_LAG: &str = "veltrix_ledger_report_lag_seconds";
pub const LEDGER_WRITES: &str = "veltrix_ledger_writes_total";
pub const LEDGER_ERRORS: &str = "veltrix_ledger_write_errors_total";
pub const ROLLOUTS: &str = "veltrix_rollouts";
pub const ROLLOUT_TRANSITIONS: &str = "veltrix_rollout_transitions_total";
pub const ROLLOUT_DELIVERIES: &str = "veltrix_rollout_deliveries_total";
pub const READ_CACHE_LOOKUPS: &str = "veltrix_read_cache_lookups_total";
pub const READ_CACHE_BYTES: &str = "veltrix_read_cache_bytes";
