//! `veltrix-agent`: keeps a namespace (or a prefix of it) applied to local
//! files for a sidecar or an init container, and reports each revision's
//! outcome (ACK, or NACK with the failing step and error) over a Sync stream
//! to the fleet ledger. `main.rs` parses the flags and runs [`run::Agent`].

pub mod config;
pub mod hooks;
pub mod output;
pub mod render;
pub mod run;
pub mod state;
