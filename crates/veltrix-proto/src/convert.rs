//! Conversions between wire types and domain types.

mod command;
mod event;
mod fleet;
pub mod origin;
pub mod read;
pub mod rollout;
mod rollout_event;
mod snapshot;

pub use command::{CallContext, IntoCommand, delete_namespace, delete_schema, promote, rollback, set_schema};
pub use event::{EVENT_TYPE, EVENT_TYPE_V2, EVENT_TYPE_V3, EventDecodeError, decode_event, encode_event, event_type};
pub use fleet::{step_from_wire, step_to_wire};
pub use snapshot::{decode_snapshot, encode_snapshot};
