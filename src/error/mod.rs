//! The crate's one error type. `grpc::status` maps every variant to a gRPC code and an
//! `ErrorInfo` reason; nothing a caller can cause becomes `INTERNAL`.

use crate::domain::validation::FieldViolation;
pub use reason::Reason;

pub mod reason;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: each bad field named.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// Bad input that is about the request as a whole, with a specific reason.
    #[error("{message}")]
    InvalidRequest {
        reason: Reason,
        field: String,
        message: String,
    },
    /// The addressed resource does not exist in the caller's organization.
    #[error("{message}")]
    NotFound { reason: Reason, message: String },
    #[error("{message}")]
    AlreadyExists { reason: Reason, message: String },
    /// The resource is in the wrong state for the request.
    #[error("{message}")]
    FailedPrecondition { reason: Reason, message: String },
    /// Several items of a batch are in the wrong state; each is named.
    #[error("{message}")]
    PreconditionFailures {
        reason: Reason,
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// A concurrent request changed the same rows; retrying succeeds.
    #[error("{0}")]
    Aborted(String),
    #[error("{message}")]
    Unauthenticated { reason: Reason, message: String },
    /// The caller is refused for a while (too many failed authentications).
    #[error("{message}")]
    ResourceExhausted { reason: Reason, message: String },
    /// The caller's key may not make this call (a scope it lacks).
    #[error("{message}")]
    PermissionDenied { reason: Reason, message: String },
    /// A dependency (the database) is down or overloaded; the caller may retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The server is starting (migrating its database); a retry in a moment succeeds.
    #[error("{0}")]
    Starting(String),
    /// The server is stopping; the message says how to resume elsewhere.
    #[error("{0}")]
    ShuttingDown(String),
    /// The process cannot start as configured (a port in use, a database that cannot be
    /// reached); the message names the setting to change. Never an RPC's answer.
    #[error("{0}")]
    Setup(String),
    /// A bug or corrupt data; never caused by caller input.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One bad field.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn not_found(reason: Reason, message: impl Into<String>) -> Self {
        Error::NotFound {
            reason,
            message: message.into(),
        }
    }

    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    pub fn already_exists(reason: Reason, message: impl Into<String>) -> Self {
        Error::AlreadyExists {
            reason,
            message: message.into(),
        }
    }
}

impl From<crate::domain::money::MoneyError> for Error {
    fn from(e: crate::domain::money::MoneyError) -> Self {
        use crate::domain::money::MoneyError;
        match e {
            // Callers only ever add amounts of one currency: a mismatch is a bug.
            MoneyError::CurrencyMismatch { .. } => Error::Internal(e.to_string()),
            MoneyError::Overflow => Error::InvalidRequest {
                reason: Reason::AmountOutOfRange,
                field: String::new(),
                message: "the amounts involved add up beyond the representable range".into(),
            },
        }
    }
}

impl From<crate::domain::process::command::Refused> for Error {
    fn from(refused: crate::domain::process::command::Refused) -> Self {
        Error::precondition(refused.reason, refused.message)
    }
}

impl From<Vec<FieldViolation>> for Error {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Error::InvalidArgument(violations)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
