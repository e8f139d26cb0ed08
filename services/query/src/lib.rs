//! The query service of Veltrix Config: projects the event stream into the
//! Redis read model and serves reads (`ConfigQuery`): Get, List, History and
//! ListNamespaces, with read-your-writes (`min_revision`) and point-in-time
//! reads (`at_revision`), and Watch streams. `main.rs` parses the configuration and runs
//! [`app::start`] or [`rebuild::rebuild`].

pub mod app;
pub mod config;
pub mod grpc;
pub mod hub;
pub mod pages;
pub mod projector;
pub mod rebuild;
pub mod state;
pub mod status;
pub mod token;
pub mod watch;

pub use app::{Started, start};
pub use config::{Command, Config};
