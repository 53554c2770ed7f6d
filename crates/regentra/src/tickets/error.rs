//! The one error type of domain validation: which field was wrong and what a valid value looks
//! like. It never carries secrets (passwords are validated for length only, never echoed).

/// A value from outside (form, JSON, Graph payload, database row) did not parse.
///
/// `Display` is the user-facing sentence and always names the field, e.g.
/// "entra_tenant_id must be a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    field: &'static str,
    message: String,
}

impl ValidationError {
    /// A validation error for `field`; `message` should name the field and say what is expected.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The name of the field that failed (as used in the JSON API, e.g. `entra_tenant_id`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The user-facing message (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}
