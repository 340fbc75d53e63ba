//! Every `ErrorInfo.reason` this service answers with, as one enum: the code names a variant,
//! never a string, and a test checks that each one is documented in `proto/`.

/// Why a request failed, as `ErrorInfo.reason` (UPPER_SNAKE) says it. The gRPC code comes
/// from the `Error` variant that carries it (`grpc::status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A row with the same unique key was stored first by a concurrent request.
    AlreadyExists,
    /// An invoice total would fall below what was already paid and credited.
    AmountBelowSettled,
    /// Amounts that together exceed what can be represented.
    AmountOutOfRange,
    /// The API key is past its expiry.
    ApiKeyExpired,
    /// The API key is not one this service issued.
    ApiKeyInvalid,
    /// No `authorization: Bearer <key>` metadata.
    ApiKeyMissing,
    /// The command line was given an unknown key id.
    ApiKeyNotFound,
    /// The API key was revoked.
    ApiKeyRevoked,
    /// The client certificate (mTLS) names another organization than the API key's, or none.
    CertificateOrganizationMismatch,
    /// A concurrent request changed the same rows; a retry succeeds.
    ConcurrentModification,
    /// A payment in another currency than its invoice's.
    CurrencyMismatch,
    /// A customer with this external id exists.
    CustomerAlreadyExists,
    /// The customer's personal data was erased; it takes no new work.
    CustomerDeleted,
    /// No such customer in the caller's organization.
    CustomerNotFound,
    /// A bug or corrupt data; never caused by caller input.
    Internal,
    /// A page token that this list did not issue for these filters.
    InvalidPageToken,
    /// Several invoices of a batch were refused, for different reasons.
    InvoiceChangeRefused,
    /// An invoice's currency may not change.
    InvoiceCurrencyImmutable,
    /// An invoice's customer may not change.
    InvoiceCustomerImmutable,
    /// An invoice with recorded payments cannot be voided.
    InvoiceHasPayments,
    /// No such invoice in the caller's organization.
    InvoiceNotFound,
    /// The invoice is not OPEN.
    InvoiceNotOpen,
    /// A payment request named an invoice that is not overdue.
    InvoiceNotOverdue,
    /// A payment request named another customer's invoice.
    InvoiceOfOtherCustomer,
    /// A payment request named invoices of another currency.
    MixedCurrencies,
    /// Escalation needs the policy to name a collection agency.
    NoCollectionAgency,
    /// A preview without a kind, and the process's remaining steps send no email.
    NoNextEmail,
    /// AdvanceProcess on a process whose last step ran.
    NoNextStep,
    /// A payment request for a customer with nothing overdue in the currency.
    NoOverdueInvoices,
    /// The command line was given an organization name in use.
    OrganizationAlreadyExists,
    /// The key's organization was deleted while the key was in use.
    OrganizationNotFound,
    /// A payment larger than what is due on the invoice.
    Overpayment,
    /// A process paused by a cause (dispute, block, exclusion) that still holds.
    PauseCauseActive,
    /// An API key has as many calls in flight as DUNNING_KEY_CONCURRENCY allows.
    KeyConcurrencyLimited,
    /// An API key made more calls in a minute than DUNNING_KEY_REQUESTS_PER_MINUTE allows.
    KeyRateLimited,
    /// A preview of an email about a customer with nothing due.
    NothingDue,
    /// The request's bytes are not a valid protobuf encoding of its message.
    MalformedMessage,
    /// The request message is larger than the server accepts.
    MessageTooLarge,
    /// A payment with this external id was recorded with other content.
    PaymentAlreadyExists,
    /// A payment request's charge is in flight.
    PaymentInProgress,
    /// The payment request is closed.
    PaymentRequestAlreadySettled,
    /// The payment request can no longer be canceled.
    PaymentRequestNotCancelable,
    /// No such payment request in the caller's organization.
    PaymentRequestNotFound,
    /// A policy with this code exists.
    PolicyAlreadyExists,
    /// The policy is archived and may not be newly assigned.
    PolicyArchived,
    /// The organization's default policy cannot be archived.
    PolicyIsDefault,
    /// No such policy in the caller's organization.
    PolicyNotFound,
    /// A policy whose scope differs from the open processes' it would replace.
    PolicyScopeMismatch,
    /// The policy has no such version.
    PolicyVersionNotFound,
    /// The process has ended.
    ProcessClosed,
    /// The command needs an ACTIVE (or operator-paused) process.
    ProcessNotActive,
    /// No such process in the caller's organization.
    ProcessNotFound,
    /// ResumeProcess on a process that is not paused.
    ProcessNotPaused,
    /// A request_id used before for a different request.
    RequestIdConflict,
    /// InformSales for a customer without a sales rep email.
    SalesRepMissing,
    /// The API key lacks the scope the RPC needs.
    ScopeMissing,
    /// The server is starting (migrating its database); retry in a moment.
    ServerStarting,
    /// The server is draining before it stops; retry on another replica.
    ServerShuttingDown,
    /// The database is temporarily unavailable; a retry may succeed.
    StorageUnavailable,
    /// A template override that does not parse or render.
    TemplateInvalid,
    /// No template override of this kind and locale.
    TemplateOverrideNotFound,
    /// A template failed to render for this email.
    TemplateRenderFailed,
    /// Too many calls with a missing or wrong API key from one client address.
    TooManyFailedAuthentications,
    /// More invoices than one payment request may cover.
    TooManyInvoices,
    /// Bad input; the BadRequest details name each bad field.
    ValidationFailed,
    /// No such webhook endpoint in the caller's organization.
    WebhookEndpointNotFound,
}

impl Reason {
    /// Every reason, for the documentation check.
    pub const ALL: [Reason; 66] = [
        Self::AlreadyExists,
        Self::AmountBelowSettled,
        Self::AmountOutOfRange,
        Self::ApiKeyExpired,
        Self::ApiKeyInvalid,
        Self::ApiKeyMissing,
        Self::ApiKeyNotFound,
        Self::ApiKeyRevoked,
        Self::CertificateOrganizationMismatch,
        Self::ConcurrentModification,
        Self::CurrencyMismatch,
        Self::CustomerAlreadyExists,
        Self::CustomerDeleted,
        Self::CustomerNotFound,
        Self::Internal,
        Self::InvalidPageToken,
        Self::InvoiceChangeRefused,
        Self::InvoiceCurrencyImmutable,
        Self::InvoiceCustomerImmutable,
        Self::InvoiceHasPayments,
        Self::InvoiceNotFound,
        Self::InvoiceNotOpen,
        Self::InvoiceNotOverdue,
        Self::InvoiceOfOtherCustomer,
        Self::MixedCurrencies,
        Self::NoCollectionAgency,
        Self::NoNextEmail,
        Self::NoNextStep,
        Self::NoOverdueInvoices,
        Self::KeyConcurrencyLimited,
        Self::KeyRateLimited,
        Self::NothingDue,
        Self::MalformedMessage,
        Self::MessageTooLarge,
        Self::OrganizationAlreadyExists,
        Self::OrganizationNotFound,
        Self::Overpayment,
        Self::PauseCauseActive,
        Self::PaymentAlreadyExists,
        Self::PaymentInProgress,
        Self::PaymentRequestAlreadySettled,
        Self::PaymentRequestNotCancelable,
        Self::PaymentRequestNotFound,
        Self::PolicyAlreadyExists,
        Self::PolicyArchived,
        Self::PolicyIsDefault,
        Self::PolicyNotFound,
        Self::PolicyScopeMismatch,
        Self::PolicyVersionNotFound,
        Self::ProcessClosed,
        Self::ProcessNotActive,
        Self::ProcessNotFound,
        Self::ProcessNotPaused,
        Self::RequestIdConflict,
        Self::SalesRepMissing,
        Self::ScopeMissing,
        Self::ServerShuttingDown,
        Self::ServerStarting,
        Self::StorageUnavailable,
        Self::TemplateInvalid,
        Self::TemplateOverrideNotFound,
        Self::TemplateRenderFailed,
        Self::TooManyFailedAuthentications,
        Self::TooManyInvoices,
        Self::ValidationFailed,
        Self::WebhookEndpointNotFound,
    ];

    /// The reason as the API spells it (UPPER_SNAKE).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::AmountBelowSettled => "AMOUNT_BELOW_SETTLED",
            Self::AmountOutOfRange => "AMOUNT_OUT_OF_RANGE",
            Self::ApiKeyExpired => "API_KEY_EXPIRED",
            Self::ApiKeyInvalid => "API_KEY_INVALID",
            Self::ApiKeyMissing => "API_KEY_MISSING",
            Self::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            Self::ApiKeyRevoked => "API_KEY_REVOKED",
            Self::CertificateOrganizationMismatch => "CERTIFICATE_ORGANIZATION_MISMATCH",
            Self::ConcurrentModification => "CONCURRENT_MODIFICATION",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::CustomerAlreadyExists => "CUSTOMER_ALREADY_EXISTS",
            Self::CustomerDeleted => "CUSTOMER_DELETED",
            Self::CustomerNotFound => "CUSTOMER_NOT_FOUND",
            Self::Internal => "INTERNAL",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::InvoiceChangeRefused => "INVOICE_CHANGE_REFUSED",
            Self::InvoiceCurrencyImmutable => "INVOICE_CURRENCY_IMMUTABLE",
            Self::InvoiceCustomerImmutable => "INVOICE_CUSTOMER_IMMUTABLE",
            Self::InvoiceHasPayments => "INVOICE_HAS_PAYMENTS",
            Self::InvoiceNotFound => "INVOICE_NOT_FOUND",
            Self::InvoiceNotOpen => "INVOICE_NOT_OPEN",
            Self::InvoiceNotOverdue => "INVOICE_NOT_OVERDUE",
            Self::InvoiceOfOtherCustomer => "INVOICE_OF_OTHER_CUSTOMER",
            Self::MixedCurrencies => "MIXED_CURRENCIES",
            Self::NoCollectionAgency => "NO_COLLECTION_AGENCY",
            Self::NoNextEmail => "NO_NEXT_EMAIL",
            Self::NoNextStep => "NO_NEXT_STEP",
            Self::NoOverdueInvoices => "NO_OVERDUE_INVOICES",
            Self::KeyConcurrencyLimited => "KEY_CONCURRENCY_LIMITED",
            Self::KeyRateLimited => "KEY_RATE_LIMITED",
            Self::NothingDue => "NOTHING_DUE",
            Self::MalformedMessage => "MALFORMED_MESSAGE",
            Self::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Self::OrganizationAlreadyExists => "ORGANIZATION_ALREADY_EXISTS",
            Self::OrganizationNotFound => "ORGANIZATION_NOT_FOUND",
            Self::Overpayment => "OVERPAYMENT",
            Self::PauseCauseActive => "PAUSE_CAUSE_ACTIVE",
            Self::PaymentAlreadyExists => "PAYMENT_ALREADY_EXISTS",
            Self::PaymentInProgress => "PAYMENT_IN_PROGRESS",
            Self::PaymentRequestAlreadySettled => "PAYMENT_REQUEST_ALREADY_SETTLED",
            Self::PaymentRequestNotCancelable => "PAYMENT_REQUEST_NOT_CANCELABLE",
            Self::PaymentRequestNotFound => "PAYMENT_REQUEST_NOT_FOUND",
            Self::PolicyAlreadyExists => "POLICY_ALREADY_EXISTS",
            Self::PolicyArchived => "POLICY_ARCHIVED",
            Self::PolicyIsDefault => "POLICY_IS_DEFAULT",
            Self::PolicyNotFound => "POLICY_NOT_FOUND",
            Self::PolicyScopeMismatch => "POLICY_SCOPE_MISMATCH",
            Self::PolicyVersionNotFound => "POLICY_VERSION_NOT_FOUND",
            Self::ProcessClosed => "PROCESS_CLOSED",
            Self::ProcessNotActive => "PROCESS_NOT_ACTIVE",
            Self::ProcessNotFound => "PROCESS_NOT_FOUND",
            Self::ProcessNotPaused => "PROCESS_NOT_PAUSED",
            Self::RequestIdConflict => "REQUEST_ID_CONFLICT",
            Self::SalesRepMissing => "SALES_REP_MISSING",
            Self::ScopeMissing => "SCOPE_MISSING",
            Self::ServerShuttingDown => "SERVER_SHUTTING_DOWN",
            Self::ServerStarting => "SERVER_STARTING",
            Self::StorageUnavailable => "STORAGE_UNAVAILABLE",
            Self::TemplateInvalid => "TEMPLATE_INVALID",
            Self::TemplateOverrideNotFound => "TEMPLATE_OVERRIDE_NOT_FOUND",
            Self::TemplateRenderFailed => "TEMPLATE_RENDER_FAILED",
            Self::TooManyFailedAuthentications => "TOO_MANY_FAILED_AUTHENTICATIONS",
            Self::TooManyInvoices => "TOO_MANY_INVOICES",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::WebhookEndpointNotFound => "WEBHOOK_ENDPOINT_NOT_FOUND",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    /// The contract's comments, where `grpcurl describe` shows them to callers.
    const PROTO: [&str; 16] = [
        include_str!("../../proto/dunning/v1/common.proto"),
        include_str!("../../proto/dunning/v1/customer.proto"),
        include_str!("../../proto/dunning/v1/customer_service.proto"),
        include_str!("../../proto/dunning/v1/dunning_service.proto"),
        include_str!("../../proto/dunning/v1/event.proto"),
        include_str!("../../proto/dunning/v1/invoice.proto"),
        include_str!("../../proto/dunning/v1/invoice_service.proto"),
        include_str!("../../proto/dunning/v1/notification.proto"),
        include_str!("../../proto/dunning/v1/organization.proto"),
        include_str!("../../proto/dunning/v1/organization_service.proto"),
        include_str!("../../proto/dunning/v1/payment_request.proto"),
        include_str!("../../proto/dunning/v1/payment_request_service.proto"),
        include_str!("../../proto/dunning/v1/policy.proto"),
        include_str!("../../proto/dunning/v1/process.proto"),
        include_str!("../../proto/dunning/v1/webhook.proto"),
        include_str!("../../proto/dunning/v1/webhook_service.proto"),
    ];

    /// Whether `word` stands in a comment line as a whole word (ALREADY_EXISTS inside
    /// CUSTOMER_ALREADY_EXISTS does not count).
    fn documented(word: &str) -> bool {
        let is_word = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
        PROTO.iter().flat_map(|p| p.lines()).any(|line| {
            let Some((_, comment)) = line.split_once("//") else {
                return false;
            };
            comment.match_indices(word).any(|(at, _)| {
                let before = comment[..at].chars().next_back();
                let after = comment[at + word.len()..].chars().next();
                !before.is_some_and(is_word) && !after.is_some_and(is_word)
            })
        })
    }

    #[test]
    fn every_reason_is_documented_in_the_proto_comments() {
        let missing: Vec<&str> = Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .filter(|r| !documented(r))
            .collect();
        assert!(
            missing.is_empty(),
            "reasons not documented in proto/: {missing:?}"
        );
    }

    #[test]
    fn reasons_are_upper_snake_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(
                r.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
            assert!(seen.insert(r.as_str()), "{r} listed twice");
        }
    }
}
