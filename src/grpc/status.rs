//! The one mapping from the crate's `Error` to a gRPC status with `ErrorInfo` (and
//! `BadRequest` / `PreconditionFailure` where fields or items are named).

use crate::domain::validation::FieldViolation;
use crate::error::{Error, Reason};
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "dunning";

/// Field violations an answer lists at most; the rest are counted in a last one.
const MAX_VIOLATIONS: usize = 100;
/// Bytes of field violations an answer carries at most, so that the whole answer (message,
/// details and headers) stays under 8 KB, which every client reads.
const VIOLATION_BYTES: usize = 5_000;
/// Longest field path, description and message kept (a bad value is quoted in them).
const MAX_FIELD: usize = 200;
const MAX_DESCRIPTION: usize = 300;
const MAX_MESSAGE: usize = 1_000;

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        // What the caller reads: the error's own text, except where it would leak a
        // dependency's or a bug's details (those go to the log).
        let mut message = clip(&err.to_string(), MAX_MESSAGE);
        let mut details = ErrorDetails::new();
        let (code, reason) = match err {
            Error::InvalidArgument(violations) => {
                let violations = bounded(violations);
                message = clip(
                    &Error::InvalidArgument(violations.clone()).to_string(),
                    MAX_MESSAGE,
                );
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
                details.add_bad_request_violation(
                    clip(&field, MAX_FIELD),
                    clip(&message, MAX_DESCRIPTION),
                );
                (Code::InvalidArgument, reason)
            }
            Error::NotFound { reason, .. } => (Code::NotFound, reason),
            Error::AlreadyExists { reason, .. } => (Code::AlreadyExists, reason),
            Error::FailedPrecondition { reason, .. } => (Code::FailedPrecondition, reason),
            Error::PreconditionFailures {
                reason, violations, ..
            } => {
                for v in bounded(violations) {
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

/// `text`, cut to about `max` bytes at a character boundary, saying how long it was.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// At most [`MAX_VIOLATIONS`] violations within [`VIOLATION_BYTES`], each clipped, and a last
/// one counting those left out.
fn bounded(violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    let total = violations.len();
    let mut kept = Vec::new();
    let mut bytes = 0;
    for v in violations {
        let v = FieldViolation {
            field: clip(&v.field, MAX_FIELD),
            description: clip(&v.description, MAX_DESCRIPTION),
        };
        let size = v.field.len() + v.description.len();
        if kept.len() == MAX_VIOLATIONS || bytes + size > VIOLATION_BYTES {
            break;
        }
        bytes += size;
        kept.push(v);
    }
    if kept.len() < total {
        kept.push(FieldViolation {
            field: String::new(),
            description: format!(
                "{} more bad fields are not listed (the first {} are)",
                total - kept.len(),
                kept.len()
            ),
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_size(status: &Status) -> usize {
        status.message().len() + status.details().len()
    }

    #[test]
    fn a_huge_bad_value_is_quoted_in_part() {
        let id = "x".repeat(100_000);
        let status: Status =
            Error::field(format!("customers[{id}]"), format!("`{id}` is not known")).into();
        assert!(answer_size(&status) < 2_000, "{}", answer_size(&status));
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert!(
            violations[0].description.ends_with("bytes in all)"),
            "{violations:?}"
        );
        let status: Status =
            Error::not_found(Reason::CustomerNotFound, format!("no `{id}`")).into();
        assert!(status.message().len() < 1_100);
    }

    #[test]
    fn ten_thousand_bad_items_are_counted_not_listed() {
        let violations = (0..10_000)
            .map(|i| FieldViolation {
                field: format!("customer.cc_emails[{i}]"),
                description: format!("`{}` is not an email address", "y".repeat(50)),
            })
            .collect();
        let status: Status = Error::InvalidArgument(violations).into();
        assert!(answer_size(&status) < 8_000, "{}", answer_size(&status));
        let listed = status.get_details_bad_request().unwrap().field_violations;
        assert!(listed.len() <= MAX_VIOLATIONS + 1);
        let last = listed.last().unwrap();
        assert!(
            last.description
                .contains(&format!("{} more bad fields", 10_000 - (listed.len() - 1))),
            "{last:?}"
        );
    }
}
