//! The query service of Veltrix Config: projects the event stream into the
//! Redis read model and serves reads (`ConfigQuery`): Get, List, History and
//! ListNamespaces, with read-your-writes (`min_revision`) and point-in-time
//! reads (`at_revision`), and Watch streams. `main.rs` parses the configuration and runs
//! [`app::start`] or [`rebuild::rebuild`].

pub mod app;
pub mod config;
pub mod fleet;
pub mod grpc;
pub mod metric;
pub mod projection;
pub mod read;
pub mod rollout;
pub mod state;
pub mod status;
pub mod watch;

pub use app::{Started, start};
pub use config::{Command, Config};
