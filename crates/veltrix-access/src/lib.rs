//! Who may call a Veltrix service, and how much: the caller's identity
//! (bearer token or client certificate, in separate spaces), the
//! `--auth-config` policy loaded and reloaded from its file (the pure
//! policy itself is `veltrix-auth`), per-caller admission limits, and the
//! typed refusals each service maps to a status once.

pub mod admission;
pub mod auth;
mod error;
pub mod identity;

pub use admission::{Admission, LimitArgs, WatcherPermit};
pub use auth::{Auth, AuthError, Caller};
pub use error::AccessError;
pub use veltrix_auth::Role;
