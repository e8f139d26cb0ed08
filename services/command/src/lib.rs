//! The command service of Veltrix Config: validates config changes (put,
//! delete, atomic change sets, compare-and-set, idempotent retries) and
//! appends each as one event to NATS JetStream. `main.rs` only parses the
//! configuration and runs [`app::start`].

pub mod app;
pub mod config;
pub mod derived;
pub mod grpc;
pub mod handler;
pub mod metric;
pub mod rollout;
pub mod snapshots;
pub mod status;

pub use app::start;
pub use config::Config;
pub use veltrix_server::Running;
