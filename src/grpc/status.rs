//! The one mapping from the crate's `Error` to a gRPC status with `ErrorInfo` (and
//! `BadRequest` / `PreconditionFailure` where fields or items are named).

use crate::error::Error;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "dunning";

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let message = err.to_string();
        let mut details = ErrorDetails::new();
        let (code, reason) = match err {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                (Code::InvalidArgument, "VALIDATION_FAILED")
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
                    details.add_precondition_failure_violation(reason, v.field, v.description);
                }
                (Code::FailedPrecondition, reason)
            }
            Error::Aborted(_) => (Code::Aborted, "CONCURRENT_MODIFICATION"),
            Error::Unauthenticated { reason, .. } => (Code::Unauthenticated, reason),
            Error::PermissionDenied { reason, .. } => (Code::PermissionDenied, reason),
            Error::Unimplemented(_) => (Code::Unimplemented, "NOT_IMPLEMENTED"),
            Error::Unavailable(ref detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                (Code::Unavailable, "STORAGE_UNAVAILABLE")
            }
            Error::ShuttingDown(_) => (Code::Unavailable, "SERVER_SHUTTING_DOWN"),
            Error::Internal(ref detail) => {
                tracing::error!(%detail, "internal error");
                (Code::Internal, "INTERNAL")
            }
        };
        let message = if reason == "STORAGE_UNAVAILABLE" {
            "the database is temporarily unavailable; retry".to_owned()
        } else if code == Code::Internal {
            "internal error".to_owned()
        } else {
            message
        };
        details.set_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new());
        Status::with_error_details(code, message, details)
    }
}
