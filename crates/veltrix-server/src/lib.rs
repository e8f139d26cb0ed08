//! Server plumbing shared by `veltrix-command` and `veltrix-query`: typed
//! configuration helpers, gRPC deadlines, the health and reflection services,
//! and shutdown on SIGTERM/SIGINT. Nothing here knows about config keys or
//! events.

mod args;
mod cli;
pub mod connections;
mod deadline;
pub mod details;
mod grpc;
mod ready;
mod rpc;
mod running;
mod serve;
mod signal;
pub mod tls;

pub use args::{LogFormat, ServeArgs};
pub use cli::{EX_CONFIG, parse_duration, parse_from, parse_or_exit};
pub use deadline::{CallTime, call_budget, grpc_timeout};
pub use grpc::{
    Health, ServingGate, TransportSettings, reflection_services, run_until_shutdown, server_builder, start_metrics,
};
pub use ready::NotReady;
pub use rpc::{RpcTelemetryLayer, code_name, describe_rpc_metrics, register_rpc_metrics};
pub use running::{BoxError, ReadySender, Running, Scaffold};
pub use serve::{Attempt, ServiceServer, retry_until_ready};
pub use signal::shutdown_signal;
pub use tokio_util::sync::CancellationToken;
pub use veltrix_access::AccessError;
