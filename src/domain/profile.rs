//! A customer's payment behaviour over a trailing window: how many invoices fell overdue, how
//! many were paid late and by how many days (from the due date, in the customer's time zone,
//! to the day the invoice was paid in full), how many were paid on time, and what was paid per
//! currency. Pure: the caller reads the invoices and payments of the window.

use crate::domain::event::EventType;
use crate::domain::invoice::{Invoice, InvoiceState, Payment};
use crate::domain::money::Currency;
use crate::domain::overdue::OverdueBalance;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Days looked back by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 365;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentProfile {
    /// The window: from `since` (exclusive) to `as_of`.
    pub since: DateTime<Utc>,
    pub as_of: DateTime<Utc>,
    /// Invoices whose due date passed in the window while something was still due.
    pub overdue_invoices: u32,
    /// Of the invoices due in the window, those paid in full after their due date...
    pub paid_late_invoices: u32,
    /// ...and those paid in full by their due date.
    pub paid_on_time_invoices: u32,
    /// Days from the due date to the day of full payment (customer's time zone) over the
    /// invoices paid late: their mean (two decimals) and maximum; zero when none was.
    pub average_days_late: Decimal,
    pub max_days_late: u32,
    /// Paid on time over paid (two decimals); `None` when none due in the window was paid.
    pub on_time_ratio: Option<Decimal>,
    /// Payments received in the window, per currency, in minor units.
    pub paid_minor: BTreeMap<Currency, i64>,
    /// What dunning took in the window (from the event log).
    pub history: CollectionsHistory,
    /// What is overdue now, per currency.
    pub overdue_now: Vec<OverdueBalance>,
}

/// Collections events of a customer in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionsHistory {
    /// Processes handed over to the collection agency (`process.escalated`).
    pub escalated_processes: u32,
    /// Invoices written off (`invoice.written_off`).
    pub written_off_invoices: u32,
    /// Promises to pay that were broken (`promise.broken`).
    pub broken_promises: u32,
}

impl CollectionsHistory {
    /// The event types counted: escalations, write-offs, broken promises.
    pub fn event_types() -> [&'static str; 3] {
        [
            EventType::ProcessEscalated.as_str(),
            EventType::InvoiceWrittenOff.as_str(),
            EventType::PromiseBroken.as_str(),
        ]
    }

    /// The history from (event type, count) pairs.
    pub fn from_counts(counts: &[(String, i64)]) -> Self {
        let count = |wanted: &str| {
            counts
                .iter()
                .filter(|(t, _)| t == wanted)
                .map(|(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
                .sum()
        };
        let [escalated, written_off, broken] = Self::event_types();
        Self {
            escalated_processes: count(escalated),
            written_off_invoices: count(written_off),
            broken_promises: count(broken),
        }
    }
}

/// The profile as of `now` over the last `window_days`, from the customer's `invoices` (at
/// least those whose due date passed in the window) and `payments` (at least those received
/// in it), with dates read in `tz`.
pub fn payment_profile(
    invoices: &[Invoice],
    payments: &[Payment],
    tz: Tz,
    now: DateTime<Utc>,
    window_days: u32,
) -> PaymentProfile {
    let since = now - Duration::days(i64::from(window_days));
    let in_window = |at: DateTime<Utc>| at > since && at <= now;
    let mut overdue = 0;
    let mut late_days: Vec<u32> = Vec::new();
    let mut on_time = 0;
    for invoice in invoices {
        if invoice.state == InvoiceState::Void || !in_window(invoice.overdue_at) {
            continue;
        }
        let paid_at = invoice
            .paid_at
            .filter(|_| invoice.state == InvoiceState::Paid);
        match paid_at {
            Some(paid) if paid < invoice.overdue_at => on_time += 1,
            Some(paid) => {
                overdue += 1;
                let paid_day = paid.with_timezone(&tz).date_naive();
                let days = (paid_day - invoice.due_date).num_days().max(1);
                late_days.push(u32::try_from(days).unwrap_or(u32::MAX));
            }
            // Still open (or written off): it fell overdue. One settled by a credit did not.
            None if invoice.state != InvoiceState::Paid => overdue += 1,
            None => {}
        }
    }
    let paid_late = late_days.len() as u32;
    let average_days_late = if late_days.is_empty() {
        Decimal::ZERO
    } else {
        (Decimal::from(late_days.iter().map(|d| u64::from(*d)).sum::<u64>())
            / Decimal::from(late_days.len()))
        .round_dp(2)
    };
    let paid = paid_late + on_time;
    let mut paid_minor = BTreeMap::new();
    for payment in payments.iter().filter(|p| in_window(p.paid_at)) {
        *paid_minor.entry(payment.currency).or_insert(0) += payment.amount_minor;
    }
    PaymentProfile {
        since,
        as_of: now,
        overdue_invoices: overdue,
        paid_late_invoices: paid_late,
        paid_on_time_invoices: on_time,
        average_days_late,
        max_days_late: late_days.iter().copied().max().unwrap_or(0),
        on_time_ratio: (paid > 0)
            .then(|| (Decimal::from(on_time) / Decimal::from(paid)).round_dp(2)),
        paid_minor,
        history: CollectionsHistory::default(),
        overdue_now: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invoice::{CollectionMethod, overdue_instant};
    use chrono::NaiveDate;
    use uuid::Uuid;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    fn invoice(due: &str, state: InvoiceState, paid_at: Option<&str>, tz: Tz) -> Invoice {
        let due_date: NaiveDate = due.parse().unwrap();
        Invoice {
            id: Uuid::new_v4(),
            organization_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            external_id: format!("inv_{due}"),
            number: String::new(),
            currency: eur(),
            total_minor: 10_000,
            paid_minor: if state == InvoiceState::Paid {
                10_000
            } else {
                0
            },
            credited_minor: 0,
            issue_date: due_date,
            due_date,
            overdue_at: overdue_instant(due_date, tz),
            overdue_announced: false,
            state,
            collection_method: CollectionMethod::Manual,
            disputed: false,
            dunning_blocked: false,
            dunning_block_reason: String::new(),
            policy_code: String::new(),
            metadata: Default::default(),
            created_at: at("2025-01-01T00:00:00Z"),
            updated_at: at("2025-01-01T00:00:00Z"),
            paid_at: paid_at.map(at),
        }
    }

    fn payment(amount_minor: i64, paid_at: &str) -> Payment {
        Payment {
            id: Uuid::new_v4(),
            organization_id: Uuid::nil(),
            invoice_id: Uuid::nil(),
            external_id: String::new(),
            currency: eur(),
            amount_minor,
            paid_at: at(paid_at),
            reference: String::new(),
            created_at: at(paid_at),
        }
    }

    #[test]
    fn late_and_on_time_payments_over_the_window_in_the_customer_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let now = at("2026-11-24T12:00:00Z");
        let invoices = [
            // Paid the day before its due date: on time.
            invoice(
                "2026-10-01",
                InvoiceState::Paid,
                Some("2026-09-30T15:00:00Z"),
                ny,
            ),
            // Paid 2026-10-04 23:00 in New York (03:00 UTC the next day): 3 days late.
            invoice(
                "2026-10-01",
                InvoiceState::Paid,
                Some("2026-10-05T03:00:00Z"),
                ny,
            ),
            // Paid on its due date, late in the evening in New York: on time.
            invoice(
                "2026-10-15",
                InvoiceState::Paid,
                Some("2026-10-16T03:30:00Z"),
                ny,
            ),
            // Paid 10 days late.
            invoice(
                "2026-09-01",
                InvoiceState::Paid,
                Some("2026-09-11T16:00:00Z"),
                ny,
            ),
            // Still open: overdue.
            invoice("2026-11-10", InvoiceState::Open, None, ny),
            // Void, due long ago, not due yet: not counted.
            invoice("2026-10-20", InvoiceState::Void, None, ny),
            invoice(
                "2025-06-01",
                InvoiceState::Paid,
                Some("2025-08-01T00:00:00Z"),
                ny,
            ),
            invoice("2026-11-30", InvoiceState::Open, None, ny),
            // Due exactly at the window's start (overdue at its edge): outside.
            invoice("2025-11-23", InvoiceState::Open, None, ny),
        ];
        let payments = [
            payment(4_000, "2026-10-02T12:00:00Z"),
            payment(6_000, "2026-10-05T03:00:00Z"),
            // Before the window.
            payment(9_999, "2025-11-01T00:00:00Z"),
        ];
        let profile = payment_profile(&invoices, &payments, ny, now, DEFAULT_WINDOW_DAYS);
        assert_eq!(profile.since, at("2025-11-24T12:00:00Z"));
        assert_eq!(profile.paid_on_time_invoices, 2);
        assert_eq!(profile.paid_late_invoices, 2);
        assert_eq!(profile.overdue_invoices, 3, "two paid late and one open");
        assert_eq!(profile.max_days_late, 10);
        assert_eq!(profile.average_days_late, Decimal::new(650, 2));
        assert_eq!(profile.on_time_ratio, Some(Decimal::new(50, 2)));
        assert_eq!(profile.paid_minor.get(&eur()), Some(&10_000));
    }

    #[test]
    fn nothing_paid_gives_no_ratio() {
        let now = at("2026-11-24T12:00:00Z");
        let profile = payment_profile(&[], &[], chrono_tz::UTC, now, 30);
        assert_eq!(profile.on_time_ratio, None);
        assert_eq!(profile.average_days_late, Decimal::ZERO);
        assert!(profile.paid_minor.is_empty());
    }
}
