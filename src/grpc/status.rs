//! The one mapping from the crate's `Error` to a gRPC status with `ErrorInfo` (and
//! `BadRequest` / `PreconditionFailure` where fields or items are named).

use crate::error::{Error, Reason};
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "dunning";

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        // What the caller reads: the error's own text, except where it would leak a
        // dependency's or a bug's details (those go to the log).
        let mut message = err.to_string();
        let mut details = ErrorDetails::new();
        let (code, reason) = match err {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                (Code::InvalidArgument, Reason::ValidationFailed)
            }
            Error::InvalidRequest {
                reason,
                field,
                message,
            } => {
                details.add_bad_request_violation(field, message);
                (Code::InvalidArgument, reason)
            }
            Error::NotFound { reason, .. } => (Code::NotFound, reason),
            Error::AlreadyExists { reason, .. } => (Code::AlreadyExists, reason),
            Error::FailedPrecondition { reason, .. } => (Code::FailedPrecondition, reason),
            Error::PreconditionFailures {
                reason, violations, ..
            } => {
                for v in violations {
                    details.add_precondition_failure_violation(
                        reason.as_str(),
                        v.field,
                        v.description,
                    );
                }
                (Code::FailedPrecondition, reason)
            }
            Error::Aborted(_) => (Code::Aborted, Reason::ConcurrentModification),
            Error::Unauthenticated { reason, .. } => (Code::Unauthenticated, reason),
            Error::PermissionDenied { reason, .. } => (Code::PermissionDenied, reason),
            Error::ResourceExhausted { reason, .. } => (Code::ResourceExhausted, reason),
            Error::Unavailable(ref detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                message = "the database is temporarily unavailable; retry".to_owned();
                (Code::Unavailable, Reason::StorageUnavailable)
            }
            Error::ShuttingDown(_) => (Code::Unavailable, Reason::ServerShuttingDown),
            Error::Starting(_) => (Code::Unavailable, Reason::ServerStarting),
            Error::Setup(ref detail) | Error::Internal(ref detail) => {
                tracing::error!(%detail, "internal error");
                message = "internal error".to_owned();
                (Code::Internal, Reason::Internal)
            }
        };
        details.set_error_info(
            reason.as_str(),
            ERROR_DOMAIN,
            HashMap::<String, String>::new(),
        );
        Status::with_error_details(code, message, details)
    }
}
