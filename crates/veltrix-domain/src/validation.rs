//! The one error type for input that breaks a rule.

use std::fmt;

/// An input that breaks a rule: names the field (as the client spelled it,
/// e.g. `changes[2].key`) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl fmt::Display) -> Self {
        Self { field: field.into(), rule: rule.to_string() }
    }

    /// The same error for a field nested under `parent` (`changes[3]` + `key`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() { parent.to_owned() } else { format!("{parent}.{}", self.field) };
        self
    }
}
