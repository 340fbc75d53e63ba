//! The overdue balance: the one figure that thresholds, payment requests, reports and emails
//! all use. Money of different currencies is never added, so there is one balance per currency.

use super::money::Currency;
use chrono::NaiveDate;

/// The overdue balance of one customer in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueBalance {
    pub currency: Currency,
    /// Sum of `amount_due` of the overdue invoices, in minor units.
    pub amount_due_minor: i64,
    pub invoice_count: i64,
    pub oldest_due_date: NaiveDate,
}
