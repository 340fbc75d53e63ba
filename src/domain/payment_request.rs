//! Payment requests: a customer asked to pay the overdue balance of some invoices in one
//! currency, charged through a payment provider or emailed with a payment link.

use super::invoice::{Invoice, InvoiceState};
use super::money::{Currency, Money, MoneyError};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Calls to the provider for one charge whose outcome stays unknown (timeouts, 5xx) before the
/// service stops retrying and waits for the payments service to report the result.
pub const MAX_CHARGE_CALLS: i32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentRequestStatus {
    Pending,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Superseded,
}

impl PaymentRequestStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
            Self::Superseded => "SUPERSEDED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Still live: it holds its invoices (no other request may cover them) and a payment may
    /// still settle it. FAILED is live because its emailed payment link can still be paid.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Processing | Self::Failed)
    }
}

/// A provider's refusal of a charge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decline {
    pub code: String,
    pub message: String,
    /// The payment method is unusable (stolen card, closed account); a soft decline may
    /// succeed later.
    pub hard: bool,
}

/// The provider, payments-service URL (`http` only) and payment-method token a charge goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeTarget {
    pub provider: String,
    pub url: String,
    pub token: String,
}

/// What bringing a request in line with its invoices did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    AmountChanged,
    /// Closed SUCCEEDED: nothing left due and something was paid.
    Settled,
    /// Closed CANCELED: nothing left due and nothing paid (voided or credited).
    Canceled,
}

/// One invoice covered by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredInvoice {
    pub invoice_id: Uuid,
    pub external_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub currency: Currency,
    /// The overdue balance of the covered invoices still to be paid, in minor units.
    pub amount_minor: i64,
    pub invoices: Vec<CoveredInvoice>,
    pub status: PaymentRequestStatus,
    pub payment_link: String,
    pub superseded_by: Option<Uuid>,
    pub last_decline: Option<Decline>,
    /// Calls made to the provider for this request's charge.
    pub attempt_count: i32,
    pub provider_reference: String,
    /// The key the charge is sent with; set by the first call and reused by every retry, so
    /// the provider charges at most once.
    pub charge_idempotency_key: String,
    /// Where the charge was sent by its first call; every retry goes to the same provider,
    /// URL and payment method, whatever changed meanwhile.
    pub charge_target: Option<ChargeTarget>,
    pub email_notification_id: Option<Uuid>,
    pub process_id: Option<Uuid>,
    /// A dunning step's RETRY_PAYMENT: the request only charges and never emails a payment
    /// link (what the customer hears after a decline is the policy's business).
    pub charges_only: bool,
    pub cancel_reason: String,
    /// When the payment worker has something to do for this request (charge, retry the
    /// charge, or email); `None` when nothing is left to do.
    pub next_action_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Why a change of a payment request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRequestError {
    #[error(
        "payment request {0} has a charge in flight at the payment provider; wait for its result"
    )]
    ChargeInFlight(Uuid),
    #[error("payment request {id} is {status} and can no longer change")]
    Closed { id: Uuid, status: &'static str },
}

/// What the payment worker does next for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    /// Charge the customer's payment method.
    Charge,
    /// Email the customer the payment link (no usable payment method, or below the minimum).
    Email { why: &'static str },
    /// Nothing (the request was settled or closed meanwhile).
    Nothing,
}

impl PaymentRequest {
    /// The caller's ids of the covered invoices, in the request's order.
    pub fn invoice_external_ids(&self) -> Vec<String> {
        self.invoices
            .iter()
            .map(|i| i.external_id.clone())
            .collect()
    }

    /// The idempotency key of this request's charge.
    pub fn charge_key(id: Uuid) -> String {
        format!("payreq_{}", id.simple())
    }

    /// Decides how to collect an open request: charge when the customer's payment method can
    /// be charged by the organization's provider and the amount reaches the provider's
    /// minimum for the currency; otherwise email.
    pub fn next_action(&self, can_charge: bool, minimum_minor: Option<i64>) -> NextAction {
        match self.status {
            PaymentRequestStatus::Processing if can_charge => NextAction::Charge,
            PaymentRequestStatus::Pending if !can_charge => NextAction::Email {
                why: "no payment method the provider can charge",
            },
            PaymentRequestStatus::Pending
                if minimum_minor.is_some_and(|min| self.amount_minor < min) =>
            {
                NextAction::Email {
                    why: "amount below the provider's minimum charge",
                }
            }
            PaymentRequestStatus::Pending => NextAction::Charge,
            _ => NextAction::Nothing,
        }
    }

    /// Replaced by a newer request covering some of the same invoices.
    pub fn supersede(&mut self, by: Uuid, now: DateTime<Utc>) -> Result<(), PaymentRequestError> {
        self.ensure_not_charging()?;
        self.close(PaymentRequestStatus::Superseded, now)?;
        self.superseded_by = Some(by);
        Ok(())
    }

    /// Canceled by the caller. Canceling a canceled request changes nothing (returns false).
    pub fn cancel(
        &mut self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentRequestError> {
        if self.status == PaymentRequestStatus::Canceled {
            return Ok(false);
        }
        self.ensure_not_charging()?;
        self.close(PaymentRequestStatus::Canceled, now)?;
        self.cancel_reason = reason.to_owned();
        Ok(true)
    }

    /// A call to the provider is about to be made; the first one fixes the key and the target.
    pub fn begin_charge_call(&mut self, target: &ChargeTarget, now: DateTime<Utc>) {
        if self.charge_idempotency_key.is_empty() {
            self.charge_idempotency_key = Self::charge_key(self.id);
        }
        if self.charge_target.is_none() {
            self.charge_target = Some(target.clone());
        }
        self.status = PaymentRequestStatus::Processing;
        self.attempt_count += 1;
        self.updated_at = now;
    }

    /// The money was collected.
    pub fn succeed(
        &mut self,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PaymentRequestError> {
        self.close(PaymentRequestStatus::Succeeded, now)?;
        if !reference.is_empty() {
            self.provider_reference = reference.to_owned();
        }
        Ok(())
    }

    /// The charge was declined; the request stays open (its payment link can be paid).
    pub fn fail(
        &mut self,
        decline: Decline,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PaymentRequestError> {
        self.ensure_open()?;
        self.status = PaymentRequestStatus::Failed;
        self.last_decline = Some(decline);
        if !reference.is_empty() {
            self.provider_reference = reference.to_owned();
        }
        self.next_action_at = None;
        self.updated_at = now;
        Ok(())
    }

    /// The provider accepted the charge but will report the outcome later.
    pub fn await_result(&mut self, reference: &str, now: DateTime<Utc>) {
        if !reference.is_empty() {
            self.provider_reference = reference.to_owned();
        }
        self.next_action_at = None;
        self.updated_at = now;
    }

    /// The outcome of a call is unknown: call again (same key) after a backoff, or give up
    /// calling once [`MAX_CHARGE_CALLS`] were made. Returns whether a retry is scheduled.
    pub fn retry_unknown(&mut self, now: DateTime<Utc>, jitter: f64) -> bool {
        self.updated_at = now;
        if self.attempt_count >= MAX_CHARGE_CALLS {
            self.next_action_at = None;
            return false;
        }
        self.next_action_at = Some(now + charge_retry_delay(self.attempt_count, jitter));
        true
    }

    /// Brings an open request without a charge in flight in line with its invoices (as they
    /// are now): nothing left due closes it (SUCCEEDED if anything was paid, CANCELED if all
    /// was voided or credited); otherwise the amount becomes what is due. Invoices no longer
    /// in the request's currency count for nothing. A request whose charge is in flight keeps
    /// the amount being charged.
    pub fn refresh(
        &mut self,
        invoices: &[Invoice],
        now: DateTime<Utc>,
    ) -> Result<Refresh, MoneyError> {
        if !self.status.is_open() || self.status == PaymentRequestStatus::Processing {
            return Ok(Refresh::Unchanged);
        }
        let covered: Vec<&Invoice> = invoices
            .iter()
            .filter(|i| self.invoices.iter().any(|c| c.invoice_id == i.id))
            .collect();
        let due = Money::sum(
            self.currency,
            covered
                .iter()
                .filter(|i| i.state == InvoiceState::Open && i.currency == self.currency)
                .map(|i| i.amount_due()),
        )?
        .minor();
        if due > 0 {
            if due == self.amount_minor {
                return Ok(Refresh::Unchanged);
            }
            self.amount_minor = due;
            self.updated_at = now;
            return Ok(Refresh::AmountChanged);
        }
        let anything_paid = covered.iter().any(|i| i.paid_minor > 0);
        let status = if anything_paid {
            PaymentRequestStatus::Succeeded
        } else {
            PaymentRequestStatus::Canceled
        };
        if self.close(status, now).is_err() {
            return Ok(Refresh::Unchanged);
        }
        if anything_paid {
            Ok(Refresh::Settled)
        } else {
            self.cancel_reason = "nothing is left due: its invoices were voided or credited".into();
            Ok(Refresh::Canceled)
        }
    }

    fn ensure_open(&self) -> Result<(), PaymentRequestError> {
        if self.status.is_open() {
            Ok(())
        } else {
            Err(PaymentRequestError::Closed {
                id: self.id,
                status: self.status.as_str(),
            })
        }
    }

    fn ensure_not_charging(&self) -> Result<(), PaymentRequestError> {
        if self.status == PaymentRequestStatus::Processing {
            return Err(PaymentRequestError::ChargeInFlight(self.id));
        }
        Ok(())
    }

    fn close(
        &mut self,
        status: PaymentRequestStatus,
        now: DateTime<Utc>,
    ) -> Result<(), PaymentRequestError> {
        self.ensure_open()?;
        self.status = status;
        self.next_action_at = None;
        self.settled_at = Some(now);
        self.updated_at = now;
        Ok(())
    }
}

/// Delay before calling again about a charge whose outcome is unknown: 30 s doubling per
/// call, capped at one hour, spread by `jitter` in [0, 1) over +-20 %.
pub fn charge_retry_delay(calls_made: i32, jitter: f64) -> Duration {
    super::backoff::exponential(
        Duration::seconds(30),
        Duration::hours(1),
        calls_made,
        jitter,
    )
}

/// A payment link from the organization's template (`{payment_request_id}` replaced).
pub fn payment_link(template: &str, id: Uuid) -> String {
    if template.is_empty() {
        return String::new();
    }
    template.replace("{payment_request_id}", &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: PaymentRequestStatus) -> PaymentRequest {
        let now = DateTime::UNIX_EPOCH;
        PaymentRequest {
            id: Uuid::from_u128(7),
            organization_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            customer_external_id: "cus".into(),
            currency: Currency::from_code("EUR").unwrap(),
            amount_minor: 10_000,
            invoices: vec![],
            status,
            payment_link: String::new(),
            superseded_by: None,
            last_decline: None,
            attempt_count: 0,
            provider_reference: String::new(),
            charge_idempotency_key: String::new(),
            charge_target: None,
            email_notification_id: None,
            process_id: None,
            charges_only: false,
            cancel_reason: String::new(),
            next_action_at: Some(now),
            created_at: now,
            updated_at: now,
            settled_at: None,
        }
    }

    #[test]
    fn a_charge_in_flight_can_be_neither_superseded_nor_canceled() {
        let now = DateTime::UNIX_EPOCH;
        let mut r = request(PaymentRequestStatus::Processing);
        assert_eq!(
            r.supersede(Uuid::nil(), now),
            Err(PaymentRequestError::ChargeInFlight(r.id))
        );
        assert!(r.cancel("x", now).is_err());
        let mut failed = request(PaymentRequestStatus::Failed);
        failed.supersede(Uuid::from_u128(9), now).unwrap();
        assert_eq!(failed.status, PaymentRequestStatus::Superseded);
        assert_eq!(failed.next_action_at, None);
        assert!(failed.cancel("late", now).is_err(), "superseded is final");
    }

    #[test]
    fn retries_keep_the_key_and_stop_after_the_budget() {
        let now = DateTime::UNIX_EPOCH;
        let mut r = request(PaymentRequestStatus::Pending);
        let target = ChargeTarget {
            provider: "sandbox".into(),
            url: String::new(),
            token: "tok_timeout".into(),
        };
        r.begin_charge_call(&target, now);
        let key = r.charge_idempotency_key.clone();
        assert_eq!(key, PaymentRequest::charge_key(r.id));
        assert!(r.retry_unknown(now, 0.5));
        assert_eq!(r.next_action_at, Some(now + Duration::seconds(30)));
        let other = ChargeTarget {
            token: "tok_success".into(),
            ..target.clone()
        };
        for _ in 1..MAX_CHARGE_CALLS {
            r.begin_charge_call(&other, now);
        }
        assert_eq!(
            r.charge_target,
            Some(target),
            "retries go where the first call went"
        );
        assert_eq!(r.charge_idempotency_key, key);
        assert!(!r.retry_unknown(now, 0.5));
        assert_eq!(r.next_action_at, None);
    }

    #[test]
    fn minimum_and_payment_method_decide_charge_or_email() {
        let r = request(PaymentRequestStatus::Pending);
        assert_eq!(r.next_action(true, None), NextAction::Charge);
        assert_eq!(r.next_action(true, Some(10_000)), NextAction::Charge);
        assert!(matches!(
            r.next_action(true, Some(10_001)),
            NextAction::Email { .. }
        ));
        assert!(matches!(
            r.next_action(false, None),
            NextAction::Email { .. }
        ));
        let done = request(PaymentRequestStatus::Succeeded);
        assert_eq!(done.next_action(true, None), NextAction::Nothing);
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(charge_retry_delay(1, 0.5), Duration::seconds(30));
        assert_eq!(charge_retry_delay(2, 0.5), Duration::seconds(60));
        assert_eq!(charge_retry_delay(20, 0.5), Duration::seconds(3_600));
        assert!(charge_retry_delay(1, 0.0) < charge_retry_delay(1, 0.99));
    }
}
