//! The collections report: what is overdue now and how old it is, and what the dunning
//! processes recovered, booked and wrote off in a period, per currency, policy version and
//! step. The database computes the aggregates; this module holds the rules around them (the
//! aging ranges, the period, the derived ratios) and puts the aggregate rows together.

use super::money::Currency;
use super::process::state::ProcessState;
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeMap;

/// Longest period a report may cover, in days (both ends included): a year, leap day included.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// Days of the default period (to_date and the 29 days before it).
pub const DEFAULT_PERIOD_DAYS: u64 = 30;

/// One range of days overdue. `min_days == 0` is the "not due" range (due date not passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgingRange {
    pub label: &'static str,
    pub min_days: i64,
    /// `None` for the open-ended last range.
    pub max_days: Option<i64>,
}

/// The aging ranges of the report, in the order they are reported.
pub const AGING_RANGES: [AgingRange; 5] = [
    AgingRange {
        label: "not due",
        min_days: 0,
        max_days: Some(0),
    },
    AgingRange {
        label: "1-30",
        min_days: 1,
        max_days: Some(30),
    },
    AgingRange {
        label: "31-60",
        min_days: 31,
        max_days: Some(60),
    },
    AgingRange {
        label: "61-90",
        min_days: 61,
        max_days: Some(90),
    },
    AgingRange {
        label: "90+",
        min_days: 91,
        max_days: None,
    },
];

impl AgingRange {
    /// The range as bounds on an invoice's overdue instant (`overdue_at`, the start of the day
    /// after its due date in the customer's time zone), as of `as_of`: the invoice is in the
    /// range when `lower < overdue_at <= upper` (a missing bound is unbounded). An invoice is
    /// `d` days overdue when `as_of - overdue_at` lies in `[(d - 1) days, d days)`: counting in
    /// 24-hour steps from the overdue instant keeps this an index range on `overdue_at`.
    pub fn overdue_at_bounds(
        &self,
        as_of: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let days = chrono::Duration::days;
        if self.min_days == 0 {
            return (Some(as_of), None);
        }
        let upper = as_of - days(self.min_days - 1);
        let lower = self.max_days.map(|max| as_of - days(max));
        (lower, Some(upper))
    }
}

/// The period of the flow figures: whole days in the organization's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    /// Start of `from_date` in the organization's time zone.
    pub start: DateTime<Utc>,
    /// Start of the day after `to_date` (exclusive end).
    pub end: DateTime<Utc>,
}

/// Why a period is refused, naming the request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError {
    pub field: &'static str,
    pub message: String,
}

impl ReportPeriod {
    /// The period from the requested dates: `to_date` defaults to today in `tz` as of `now`,
    /// `from_date` to 29 days before `to_date`.
    pub fn new(
        from_date: Option<NaiveDate>,
        to_date: Option<NaiveDate>,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Result<ReportPeriod, PeriodError> {
        let to_date = to_date.unwrap_or_else(|| now.with_timezone(&tz).date_naive());
        let from_date = from_date.unwrap_or_else(|| {
            to_date
                .checked_sub_days(Days::new(DEFAULT_PERIOD_DAYS - 1))
                .unwrap_or(NaiveDate::MIN)
        });
        if from_date > to_date {
            return Err(PeriodError {
                field: "from_date",
                message: format!("must not be after to_date ({to_date})"),
            });
        }
        if (to_date - from_date).num_days() + 1 > MAX_PERIOD_DAYS {
            return Err(PeriodError {
                field: "to_date",
                message: format!("the period may cover at most {MAX_PERIOD_DAYS} days"),
            });
        }
        Ok(ReportPeriod {
            from_date,
            to_date,
            start: super::invoice::start_of_day(from_date, tz),
            end: super::invoice::overdue_instant(to_date, tz),
        })
    }
}

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// A median of microsecond differences, as the database returns it (a double: the mean of two
/// integers is an integer or ends in .5, both exact), in days.
pub fn median_days(median_micros: f64) -> Decimal {
    let half_micros = (median_micros * 2.0).round() as i64;
    Decimal::from(half_micros) / Decimal::from(2 * DAY_MICROS)
}

/// What a report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    pub period: ReportPeriod,
    /// The snapshot instant: now.
    pub as_of: DateTime<Utc>,
    /// Only this currency; `None` = all.
    pub currency: Option<Currency>,
}

/// Invoices and amount in one aging range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgingFigure {
    pub range: AgingRange,
    pub amount_minor: i64,
    pub invoice_count: i64,
}

/// One step of a policy version in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub step_index: i32,
    pub step_name: String,
    pub steps_run: i64,
    pub recovered_minor: i64,
    pub fees_minor: i64,
    pub interest_minor: i64,
}

/// One policy version in one currency in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyReport {
    pub policy_code: String,
    pub policy_version: i32,
    pub started: i64,
    pub resolved: i64,
    pub exhausted: i64,
    pub escalated: i64,
    pub cancelled: i64,
    pub recovered_minor: i64,
    pub recovered_before_first_step_minor: i64,
    pub cohort_recovered_minor: i64,
    pub cohort_outstanding_minor: i64,
    /// Median days from process start to payment, unrounded.
    pub median_days_to_pay: Option<Decimal>,
    pub paid_invoice_count: i64,
    pub fees_minor: i64,
    pub interest_minor: i64,
    pub written_off_minor: i64,
    pub steps: Vec<StepReport>,
}

impl PolicyReport {
    /// Cohort recovered / (cohort recovered + cohort outstanding), 4 places rounded half-up;
    /// `None` when nothing was dunned.
    pub fn recovery_rate(&self) -> Option<Decimal> {
        let recovered = Decimal::from(self.cohort_recovered_minor);
        let total = recovered + Decimal::from(self.cohort_outstanding_minor);
        if total.is_zero() {
            return None;
        }
        let mut rate =
            (recovered / total).round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
        // Always four places on the wire ("1.0000", not "1").
        rate.rescale(4);
        Some(rate)
    }

    /// The median rounded half-up to 2 places of a day.
    pub fn median_days_rounded(&self) -> Option<Decimal> {
        self.median_days_to_pay.map(|d| {
            let mut days = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            days.rescale(2);
            days
        })
    }
}

/// Figures of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyReport {
    pub currency: Currency,
    pub overdue_minor: i64,
    pub overdue_invoice_count: i64,
    pub overdue_customer_count: i64,
    /// One per [`AGING_RANGES`] entry, in that order.
    pub aging: Vec<AgingFigure>,
    pub recovered_minor: i64,
    pub recovered_invoice_count: i64,
    pub fees_minor: i64,
    pub interest_minor: i64,
    pub written_off_minor: i64,
    /// One per [`ProcessState::ALL`] entry, in that order.
    pub processes_by_state: Vec<(ProcessState, i64)>,
    /// Sorted by code, then version.
    pub policies: Vec<PolicyReport>,
}

impl CurrencyReport {
    fn new(currency: Currency) -> Self {
        CurrencyReport {
            currency,
            overdue_minor: 0,
            overdue_invoice_count: 0,
            overdue_customer_count: 0,
            aging: AGING_RANGES
                .iter()
                .map(|&range| AgingFigure {
                    range,
                    amount_minor: 0,
                    invoice_count: 0,
                })
                .collect(),
            recovered_minor: 0,
            recovered_invoice_count: 0,
            fees_minor: 0,
            interest_minor: 0,
            written_off_minor: 0,
            processes_by_state: ProcessState::ALL.iter().map(|&s| (s, 0)).collect(),
            policies: Vec::new(),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionsReport {
    pub period: ReportPeriod,
    pub as_of: DateTime<Utc>,
    /// Sorted by currency code.
    pub currencies: Vec<CurrencyReport>,
}

/// A policy version in a currency: the key of the per-policy figures.
pub type PolicyKey = (Currency, String, i32);

/// Collects the aggregate rows of the report's queries, in any order, into the report.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    currencies: BTreeMap<&'static str, CurrencyReport>,
    policies: BTreeMap<(&'static str, String, i32), PolicyReport>,
    steps: BTreeMap<(&'static str, String, i32, i32), StepReport>,
}

impl ReportBuilder {
    pub fn currency(&mut self, currency: Currency) -> &mut CurrencyReport {
        self.currencies
            .entry(currency.code())
            .or_insert_with(|| CurrencyReport::new(currency))
    }

    /// The figures of a policy version (creating its currency too).
    pub fn policy(&mut self, key: &PolicyKey) -> &mut PolicyReport {
        self.currency(key.0);
        self.policies
            .entry((key.0.code(), key.1.clone(), key.2))
            .or_insert_with(|| PolicyReport {
                policy_code: key.1.clone(),
                policy_version: key.2,
                ..Default::default()
            })
    }

    /// The figures of a step of a policy version (creating the policy too).
    pub fn step(&mut self, key: &PolicyKey, step_index: i32) -> &mut StepReport {
        self.policy(key);
        self.steps
            .entry((key.0.code(), key.1.clone(), key.2, step_index))
            .or_insert_with(|| StepReport {
                step_index,
                ..Default::default()
            })
    }

    /// Counts `count` processes of `state` in `currency`.
    pub fn add_state_count(&mut self, currency: Currency, state: ProcessState, count: i64) {
        let report = self.currency(currency);
        if let Some(entry) = report
            .processes_by_state
            .iter_mut()
            .find(|(s, _)| *s == state)
        {
            entry.1 += count;
        }
    }

    /// Adds a charge total of a policy step to the step, its policy and its currency.
    pub fn add_charges(&mut self, key: &PolicyKey, step_index: i32, fee: bool, amount: i64) {
        let step = self.step(key, step_index);
        if fee {
            step.fees_minor += amount;
        } else {
            step.interest_minor += amount;
        }
        let policy = self.policy(key);
        if fee {
            policy.fees_minor += amount;
        } else {
            policy.interest_minor += amount;
        }
        let currency = self.currency(key.0);
        if fee {
            currency.fees_minor += amount;
        } else {
            currency.interest_minor += amount;
        }
    }

    pub fn finish(mut self, period: ReportPeriod, as_of: DateTime<Utc>) -> CollectionsReport {
        for ((currency, code, version, _), step) in std::mem::take(&mut self.steps) {
            if let Some(policy) = self.policies.get_mut(&(currency, code, version)) {
                policy.steps.push(step);
            }
        }
        for ((currency, _, _), policy) in std::mem::take(&mut self.policies) {
            if let Some(report) = self.currencies.get_mut(currency) {
                report.policies.push(policy);
            }
        }
        CollectionsReport {
            period,
            as_of,
            currencies: self.currencies.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn aging_bounds_count_days_from_the_overdue_instant() {
        let as_of = at("2026-11-24T12:00:00Z");
        // Due 2026-11-23: overdue since 2026-11-24T00:00Z, 1 day overdue.
        let overdue_at = at("2026-11-24T00:00:00Z");
        let within = |r: &AgingRange, t: DateTime<Utc>| {
            let (lower, upper) = r.overdue_at_bounds(as_of);
            lower.is_none_or(|l| t > l) && upper.is_none_or(|u| t <= u)
        };
        let range_of = |t| {
            AGING_RANGES
                .iter()
                .filter(|r| within(r, t))
                .map(|r| r.label)
                .collect::<Vec<_>>()
        };
        assert_eq!(range_of(overdue_at), ["1-30"]);
        // Due today: not due.
        assert_eq!(range_of(at("2026-11-25T00:00:00Z")), ["not due"]);
        // 30 days overdue (due 2026-10-25, overdue since 10-26): still 1-30; 31: 31-60.
        assert_eq!(range_of(at("2026-10-26T00:00:00Z")), ["1-30"]);
        assert_eq!(range_of(at("2026-10-25T00:00:00Z")), ["31-60"]);
        // 90 and 91 days.
        assert_eq!(range_of(at("2026-08-27T00:00:00Z")), ["61-90"]);
        assert_eq!(range_of(at("2026-08-26T00:00:00Z")), ["90+"]);
    }

    #[test]
    fn period_defaults_and_limits() {
        let now = at("2026-11-24T23:30:00Z");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Already 2026-11-25 in Berlin.
        let p = ReportPeriod::new(None, None, berlin, now).unwrap();
        assert_eq!(
            (p.from_date, p.to_date),
            (date("2026-10-27"), date("2026-11-25"))
        );
        assert_eq!(p.start, at("2026-10-26T23:00:00Z"));
        assert_eq!(p.end, at("2026-11-25T23:00:00Z"));
        let bad = ReportPeriod::new(
            Some(date("2026-11-02")),
            Some(date("2026-11-01")),
            berlin,
            now,
        );
        assert_eq!(bad.unwrap_err().field, "from_date");
        let long = ReportPeriod::new(
            Some(date("2025-01-01")),
            Some(date("2026-01-02")),
            berlin,
            now,
        );
        assert_eq!(long.unwrap_err().field, "to_date");
        let year = ReportPeriod::new(
            Some(date("2024-01-01")),
            Some(date("2024-12-31")),
            berlin,
            now,
        );
        assert!(year.is_ok(), "366 days of a leap year");
    }

    #[test]
    fn recovery_rate_is_rounded_and_absent_without_figures() {
        let mut p = PolicyReport::default();
        assert_eq!(p.recovery_rate(), None);
        p.cohort_recovered_minor = 1;
        p.cohort_outstanding_minor = 2;
        assert_eq!(p.recovery_rate().unwrap().to_string(), "0.3333");
        p.cohort_outstanding_minor = 0;
        assert_eq!(p.recovery_rate().unwrap().to_string(), "1.0000");
    }
}
