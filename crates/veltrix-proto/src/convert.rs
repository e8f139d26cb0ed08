//! Conversions between wire types and domain types.

mod command;
mod event;
pub mod origin;
pub mod read;

pub use command::{CallContext, IntoCommand, delete_namespace, delete_schema, promote, rollback, set_schema};
pub use event::{EVENT_TYPE, EVENT_TYPE_V2, EventDecodeError, decode_event, encode_event, event_type};
