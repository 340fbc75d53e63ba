//! Invoices: amounts, states and the one definition of "overdue".

use super::money::{Currency, Money};
use chrono::{DateTime, Days, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    Open,
    Paid,
    Void,
    WrittenOff,
}

impl InvoiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Paid => "PAID",
            Self::Void => "VOID",
            Self::WrittenOff => "WRITTEN_OFF",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Paid, Self::Void, Self::WrittenOff]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// VOID and WRITTEN_OFF invoices never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Void | Self::WrittenOff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionMethod {
    /// The customer's payment method is charged.
    Automatic,
    /// The customer pays by bank transfer or similar.
    Manual,
}

impl CollectionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "AUTOMATIC",
            Self::Manual => "MANUAL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Automatic, Self::Manual]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What a billing system says an invoice is (UpsertInvoice input, validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSync {
    pub external_id: String,
    pub customer_external_id: String,
    pub number: String,
    pub currency: Currency,
    pub total_minor: i64,
    pub credited_minor: i64,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    /// `None` keeps the stored method (MANUAL for a new invoice).
    pub collection_method: Option<CollectionMethod>,
    pub disputed: bool,
    pub dunning_blocked: bool,
    pub dunning_block_reason: String,
    pub policy_code: String,
    pub metadata: BTreeMap<String, String>,
    /// The caller says the invoice is void.
    pub void: bool,
}

/// An invoice as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub external_id: String,
    pub number: String,
    pub currency: Currency,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub credited_minor: i64,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    /// The instant the invoice becomes overdue: midnight after `due_date` in the customer's
    /// time zone. Stored so that "overdue now" is an index range.
    pub overdue_at: DateTime<Utc>,
    /// Whether `invoice.overdue` was already appended for this invoice.
    pub overdue_announced: bool,
    pub state: InvoiceState,
    pub collection_method: CollectionMethod,
    pub disputed: bool,
    pub dunning_blocked: bool,
    pub dunning_block_reason: String,
    pub policy_code: String,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// A payment recorded against an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub invoice_id: Uuid,
    /// The caller's id of the payment; recording it twice is a no-op.
    pub external_id: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub paid_at: DateTime<Utc>,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

/// Why a change to an invoice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceRuleError {
    #[error("invoice is {0} and can no longer change")]
    NotOpen(&'static str),
    #[error("the invoice's customer cannot change")]
    CustomerImmutable,
    #[error("the invoice's currency cannot change once payments are recorded")]
    CurrencyImmutable,
    #[error("total_amount minus credited_amount would fall below the {paid} already paid")]
    AmountBelowSettled { paid: String },
    #[error("an invoice with recorded payments cannot be voided")]
    VoidWithPayments,
    #[error("payment of {amount} exceeds the amount due of {due}")]
    Overpayment { amount: String, due: String },
    #[error("payment currency {given} differs from the invoice currency {expected}")]
    CurrencyMismatch { given: String, expected: String },
    #[error("payment amount must be greater than zero")]
    ZeroPayment,
}

/// What a sync did to an invoice, so the caller can append the right events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Created,
    Updated,
    Unchanged,
}

/// The first instant at which an invoice due on `due_date` is overdue for a customer in `tz`:
/// the start of the following day there. Days that begin in a DST gap start at the first
/// instant that exists.
pub fn overdue_instant(due_date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    start_of_day(
        due_date
            .checked_add_days(Days::new(1))
            .unwrap_or(NaiveDate::MAX),
        tz,
    )
}

/// The instant `day` begins in `tz`. Days that begin in a DST gap start at the first instant
/// that exists.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        // A gap at midnight (e.g. a DST change at 00:00): the day starts an hour later.
        LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc()),
    }
}

impl Invoice {
    /// Total minus payments minus credits.
    pub fn amount_due_minor(&self) -> i64 {
        self.total_minor - self.paid_minor - self.credited_minor
    }

    /// [`amount_due_minor`](Self::amount_due_minor) as money of the invoice's currency.
    pub fn amount_due(&self) -> Money {
        Money::new(self.currency, self.amount_due_minor())
    }

    /// The single definition of overdue: OPEN, something due, not disputed, and `now` past the
    /// end of the due date in the customer's time zone.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state == InvoiceState::Open
            && self.amount_due_minor() > 0
            && !self.disputed
            && now >= self.overdue_at
    }

    /// Whole days since the due date, as of `today` in the customer's time zone; 0 when not
    /// overdue.
    pub fn days_overdue(&self, now: DateTime<Utc>, tz: Tz) -> i64 {
        if !self.is_overdue(now) {
            return 0;
        }
        let today = now.with_timezone(&tz).date_naive();
        (today - self.due_date).num_days().max(0)
    }

    /// Creates an invoice from its first sync.
    pub fn create(
        id: Uuid,
        organization_id: Uuid,
        customer_id: Uuid,
        customer_tz: Tz,
        sync: &InvoiceSync,
        now: DateTime<Utc>,
    ) -> Result<Invoice, InvoiceRuleError> {
        let mut invoice = Invoice {
            id,
            organization_id,
            customer_id,
            external_id: sync.external_id.clone(),
            number: sync.number.clone(),
            currency: sync.currency,
            total_minor: sync.total_minor,
            paid_minor: 0,
            credited_minor: sync.credited_minor,
            issue_date: sync.issue_date,
            due_date: sync.due_date,
            overdue_at: overdue_instant(sync.due_date, customer_tz),
            overdue_announced: false,
            state: InvoiceState::Open,
            collection_method: sync.collection_method.unwrap_or(CollectionMethod::Manual),
            disputed: sync.disputed,
            dunning_blocked: sync.dunning_blocked,
            dunning_block_reason: sync.dunning_block_reason.clone(),
            policy_code: sync.policy_code.clone(),
            metadata: sync.metadata.clone(),
            created_at: now,
            updated_at: now,
            paid_at: None,
        };
        if sync.void {
            invoice.state = InvoiceState::Void;
        } else {
            invoice.settle_state(now);
        }
        Ok(invoice)
    }

    /// Applies a later sync of the same invoice.
    pub fn sync(
        &mut self,
        customer_id: Uuid,
        customer_tz: Tz,
        sync: &InvoiceSync,
        now: DateTime<Utc>,
    ) -> Result<SyncOutcome, InvoiceRuleError> {
        if customer_id != self.customer_id {
            return Err(InvoiceRuleError::CustomerImmutable);
        }
        let before = self.clone();
        if sync.currency != self.currency && self.paid_minor > 0 {
            return Err(InvoiceRuleError::CurrencyImmutable);
        }
        self.number = sync.number.clone();
        self.currency = sync.currency;
        self.total_minor = sync.total_minor;
        self.credited_minor = sync.credited_minor;
        self.issue_date = sync.issue_date;
        if self.due_date != sync.due_date {
            self.due_date = sync.due_date;
            self.overdue_announced = false;
        }
        self.overdue_at = overdue_instant(self.due_date, customer_tz);
        if let Some(method) = sync.collection_method {
            self.collection_method = method;
        }
        self.disputed = sync.disputed;
        self.dunning_blocked = sync.dunning_blocked;
        self.dunning_block_reason = sync.dunning_block_reason.clone();
        self.policy_code = sync.policy_code.clone();
        self.metadata = sync.metadata.clone();

        if *self == before && !(sync.void && self.state != InvoiceState::Void) {
            return Ok(SyncOutcome::Unchanged);
        }
        if before.state.is_final() {
            *self = before;
            return Err(InvoiceRuleError::NotOpen(self.state.as_str()));
        }
        if self.amount_due_minor() < 0 {
            let paid = self.currency.format(self.paid_minor);
            *self = before;
            return Err(InvoiceRuleError::AmountBelowSettled { paid });
        }
        if sync.void {
            if self.paid_minor > 0 {
                *self = before;
                return Err(InvoiceRuleError::VoidWithPayments);
            }
            self.state = InvoiceState::Void;
        } else {
            self.settle_state(now);
        }
        self.updated_at = now;
        Ok(SyncOutcome::Updated)
    }

    /// Moves the time zone of the overdue instant (the customer's time zone changed).
    pub fn rezone(&mut self, customer_tz: Tz) {
        self.overdue_at = overdue_instant(self.due_date, customer_tz);
    }

    /// Records a payment of `amount_minor`.
    pub fn record_payment(
        &mut self,
        currency: Currency,
        amount_minor: i64,
        paid_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), InvoiceRuleError> {
        if currency != self.currency {
            return Err(InvoiceRuleError::CurrencyMismatch {
                given: currency.code().into(),
                expected: self.currency.code().into(),
            });
        }
        if self.state != InvoiceState::Open {
            return Err(InvoiceRuleError::NotOpen(self.state.as_str()));
        }
        if amount_minor <= 0 {
            return Err(InvoiceRuleError::ZeroPayment);
        }
        if amount_minor > self.amount_due_minor() {
            return Err(InvoiceRuleError::Overpayment {
                amount: self.currency.format(amount_minor),
                due: self.currency.format(self.amount_due_minor()),
            });
        }
        self.paid_minor += amount_minor;
        self.settle_state(paid_at);
        self.updated_at = now;
        Ok(())
    }

    /// Voids an open invoice.
    pub fn void(&mut self, now: DateTime<Utc>) -> Result<(), InvoiceRuleError> {
        match self.state {
            InvoiceState::Open => {}
            InvoiceState::Void => return Ok(()),
            other => return Err(InvoiceRuleError::NotOpen(other.as_str())),
        }
        if self.paid_minor > 0 {
            return Err(InvoiceRuleError::VoidWithPayments);
        }
        self.state = InvoiceState::Void;
        self.updated_at = now;
        Ok(())
    }

    /// Writes an open invoice off (a dunning step's WRITE_OFF): nothing is collected any more.
    /// Writing off a written-off invoice changes nothing.
    pub fn write_off(&mut self, now: DateTime<Utc>) -> Result<(), InvoiceRuleError> {
        match self.state {
            InvoiceState::Open => {}
            InvoiceState::WrittenOff => return Ok(()),
            other => return Err(InvoiceRuleError::NotOpen(other.as_str())),
        }
        self.state = InvoiceState::WrittenOff;
        self.updated_at = now;
        Ok(())
    }

    /// OPEN while something is due, PAID once nothing is.
    fn settle_state(&mut self, at: DateTime<Utc>) {
        if self.amount_due_minor() == 0 {
            if self.state != InvoiceState::Paid {
                self.state = InvoiceState::Paid;
                self.paid_at = Some(at);
            }
        } else {
            self.state = InvoiceState::Open;
            self.paid_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sync() -> InvoiceSync {
        InvoiceSync {
            external_id: "inv_1".into(),
            customer_external_id: "cus_1".into(),
            number: "2026-001".into(),
            currency: Currency::from_code("EUR").unwrap(),
            total_minor: 10_000,
            credited_minor: 0,
            issue_date: date("2026-10-01"),
            due_date: date("2026-10-31"),
            collection_method: None,
            disputed: false,
            dunning_blocked: false,
            dunning_block_reason: String::new(),
            policy_code: String::new(),
            metadata: BTreeMap::new(),
            void: false,
        }
    }

    fn invoice(tz: Tz) -> Invoice {
        Invoice::create(
            Uuid::nil(),
            Uuid::nil(),
            Uuid::nil(),
            tz,
            &sync(),
            at("2026-10-01T00:00:00Z"),
        )
        .unwrap()
    }

    #[test]
    fn overdue_starts_at_midnight_after_due_date_in_customer_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let inv = invoice(berlin);
        // 2026-11-01 00:00 in Berlin (CET, UTC+1) is 2026-10-31 23:00 UTC.
        assert_eq!(inv.overdue_at, at("2026-10-31T23:00:00Z"));
        assert!(!inv.is_overdue(at("2026-10-31T22:59:59Z")));
        assert!(inv.is_overdue(at("2026-10-31T23:00:00Z")));
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let inv = invoice(la);
        assert!(!inv.is_overdue(at("2026-11-01T06:59:59Z")));
        assert!(inv.is_overdue(at("2026-11-01T07:00:00Z")));
    }

    #[test]
    fn disputed_settled_and_credited_invoices_are_not_overdue() {
        let late = at("2026-12-01T00:00:00Z");
        let mut inv = invoice(chrono_tz::UTC);
        assert!(inv.is_overdue(late));
        inv.disputed = true;
        assert!(!inv.is_overdue(late));
        inv.disputed = false;
        let mut s = sync();
        s.credited_minor = 10_000;
        inv.sync(Uuid::nil(), chrono_tz::UTC, &s, late).unwrap();
        assert_eq!(inv.state, InvoiceState::Paid);
        assert!(!inv.is_overdue(late));
    }

    #[test]
    fn payments_partial_full_and_over() {
        let eur = Currency::from_code("EUR").unwrap();
        let now = at("2026-11-05T00:00:00Z");
        let mut inv = invoice(chrono_tz::UTC);
        inv.record_payment(eur, 4_000, now, now).unwrap();
        assert_eq!(inv.amount_due_minor(), 6_000);
        assert_eq!(inv.state, InvoiceState::Open);
        assert!(matches!(
            inv.record_payment(eur, 6_001, now, now),
            Err(InvoiceRuleError::Overpayment { .. })
        ));
        let usd = Currency::from_code("USD").unwrap();
        assert!(matches!(
            inv.record_payment(usd, 1, now, now),
            Err(InvoiceRuleError::CurrencyMismatch { .. })
        ));
        inv.record_payment(eur, 6_000, now, now).unwrap();
        assert_eq!(inv.state, InvoiceState::Paid);
        assert_eq!(inv.paid_at, Some(now));
        assert!(matches!(
            inv.record_payment(eur, 1, now, now),
            Err(InvoiceRuleError::NotOpen("PAID"))
        ));
    }

    #[test]
    fn sync_rules() {
        let now = at("2026-11-05T00:00:00Z");
        let eur = Currency::from_code("EUR").unwrap();
        let mut inv = invoice(chrono_tz::UTC);
        assert_eq!(
            inv.sync(Uuid::nil(), chrono_tz::UTC, &sync(), now),
            Ok(SyncOutcome::Unchanged)
        );
        assert_eq!(
            inv.sync(Uuid::from_u128(1), chrono_tz::UTC, &sync(), now),
            Err(InvoiceRuleError::CustomerImmutable)
        );
        inv.record_payment(eur, 5_000, now, now).unwrap();
        let mut lower = sync();
        lower.total_minor = 4_000;
        assert!(matches!(
            inv.sync(Uuid::nil(), chrono_tz::UTC, &lower, now),
            Err(InvoiceRuleError::AmountBelowSettled { .. })
        ));
        assert_eq!(
            inv.total_minor, 10_000,
            "a refused sync leaves the invoice as it was"
        );
        let mut voided = sync();
        voided.void = true;
        assert_eq!(
            inv.sync(Uuid::nil(), chrono_tz::UTC, &voided, now),
            Err(InvoiceRuleError::VoidWithPayments)
        );
        let mut fresh = invoice(chrono_tz::UTC);
        assert_eq!(
            fresh.sync(Uuid::nil(), chrono_tz::UTC, &voided, now),
            Ok(SyncOutcome::Updated)
        );
        assert_eq!(fresh.state, InvoiceState::Void);
        let mut changed = sync();
        changed.total_minor = 1;
        assert_eq!(
            fresh.sync(Uuid::nil(), chrono_tz::UTC, &changed, now),
            Err(InvoiceRuleError::NotOpen("VOID"))
        );
    }

    #[test]
    fn days_overdue_counts_customer_calendar_days() {
        let inv = invoice(chrono_tz::UTC);
        assert_eq!(
            inv.days_overdue(at("2026-10-31T12:00:00Z"), chrono_tz::UTC),
            0
        );
        assert_eq!(
            inv.days_overdue(at("2026-11-01T00:00:00Z"), chrono_tz::UTC),
            1
        );
        assert_eq!(
            inv.days_overdue(at("2026-11-30T23:00:00Z"), chrono_tz::UTC),
            30
        );
    }
}
