//! Late fees and interest, exactly as DESIGN.md §9 says: computed at full precision with
//! decimals, rounded half-up to the currency's minor units only when booked, and booked so that
//! the bookings of a process always add up to the rounded exact total.

use super::money::Currency;
use super::policy::{FeeSettings, InterestSettings};
use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

/// Rounds an exact amount half-up (away from zero at the midpoint) to minor units.
pub fn round_to_minor(currency: Currency, amount: Decimal) -> i64 {
    let rounded = amount.round_dp_with_strategy(
        currency.minor_units(),
        RoundingStrategy::MidpointAwayFromZero,
    );
    let minor = rounded * Decimal::from(10i64.pow(currency.minor_units()));
    i64::try_from(minor.trunc()).unwrap_or(i64::MAX)
}

/// The fee for one invoice with `amount_due_minor` due: the fixed part (the band for the
/// amount due when the currency has bands, else the fixed amount for the currency) plus the
/// percentage of the amount due, limited to the cap, rounded half-up to minor units.
pub fn fee_minor(settings: &FeeSettings, currency: Currency, amount_due_minor: i64) -> i64 {
    let band = settings
        .bands
        .iter()
        .filter(|b| b.currency == currency && b.min_amount_due_minor <= amount_due_minor)
        .max_by_key(|b| b.min_amount_due_minor);
    let fixed_minor = match band {
        Some(band) => band.fee_minor,
        None => settings
            .fixed_amounts
            .iter()
            .find(|a| a.currency == currency)
            .map_or(0, |a| a.minor),
    };
    let amount_due = currency.to_decimal(amount_due_minor);
    let percentage_part = settings
        .percentage
        .map_or(Decimal::ZERO, |p| amount_due * p / Decimal::ONE_HUNDRED);
    let mut fee = currency.to_decimal(fixed_minor) + percentage_part;
    if let Some(cap) = settings.caps.iter().find(|c| c.currency == currency) {
        fee = fee.min(currency.to_decimal(cap.minor));
    }
    round_to_minor(currency, fee)
}

/// A payment that lowers an invoice's amount due from its (local) date on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatedPayment {
    pub date: NaiveDate,
    pub amount_minor: i64,
}

/// Interest accrued on one invoice over a period, at full precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterestAccrual {
    /// Exact interest in major units, not rounded.
    pub accrued: Decimal,
    /// First and last day of the period (the day after the due date, the step's local date).
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Annual rate in percent of the period's last day.
    pub last_rate_percent: Decimal,
}

/// The first day of the half-year `day` falls in (January 1 or July 1).
fn half_year_start(day: NaiveDate) -> NaiveDate {
    let month = if day.month() <= 6 { 1 } else { 7 };
    NaiveDate::from_ymd_opt(day.year(), month, 1).unwrap_or(day)
}

/// The annual rate in percent on `day`: the fixed rate, or the reference rate in force on the
/// first day of the day's half-year (zero before the table's first entry) plus the margin.
pub fn annual_rate_on(settings: &InterestSettings, day: NaiveDate) -> Decimal {
    if !settings.statutory {
        return settings.annual_rate_percent;
    }
    let start = half_year_start(day);
    let reference = settings
        .reference_rates
        .iter()
        .filter(|r| r.period_start <= start)
        .max_by_key(|r| r.period_start)
        .map_or(Decimal::ZERO, |r| r.rate_percent);
    reference + settings.statutory_margin_percent
}

/// Simple interest on an invoice for each day from the day after `due_date` through `through`,
/// on that day's amount due (`base_minor`, the total less credits, lowered by each payment
/// from its date on), at `rate / 100 / basis` per day. `None` when the period is empty.
pub fn accrue_interest(
    settings: &InterestSettings,
    currency: Currency,
    due_date: NaiveDate,
    through: NaiveDate,
    base_minor: i64,
    payments: &[DatedPayment],
) -> Option<InterestAccrual> {
    let from = due_date.succ_opt()?;
    if through < from {
        return None;
    }
    let basis = settings.day_count.basis();
    let mut accrued = Decimal::ZERO;
    let mut day = from;
    let mut rate = annual_rate_on(settings, day);
    while day <= through {
        rate = annual_rate_on(settings, day);
        let paid: i64 = payments
            .iter()
            .filter(|p| p.date <= day)
            .map(|p| p.amount_minor)
            .fold(0i64, i64::saturating_add);
        let due_minor = base_minor.saturating_sub(paid).max(0);
        if due_minor > 0 {
            accrued += currency.to_decimal(due_minor) * rate / Decimal::ONE_HUNDRED / basis;
        }
        day = day.succ_opt()?;
    }
    Some(InterestAccrual {
        accrued,
        from,
        to: through,
        last_rate_percent: rate,
    })
}

/// What to book now: the rounded total accrued to date minus what was booked before, never
/// negative, so that bookings never drift from the exact total.
pub fn interest_to_book(currency: Currency, accrued: Decimal, booked_minor: i64) -> i64 {
    (round_to_minor(currency, accrued) - booked_minor).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::{CurrencyAmount, DayCount, FeeBand, ReferenceRate};

    fn currency(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn fee(fixed: &[(&str, i64)], percentage: Option<&str>, caps: &[(&str, i64)]) -> FeeSettings {
        let amounts = |list: &[(&str, i64)]| {
            list.iter()
                .map(|(c, minor)| CurrencyAmount {
                    currency: currency(c),
                    minor: *minor,
                })
                .collect()
        };
        FeeSettings {
            fixed_amounts: amounts(fixed),
            percentage: percentage.map(|p| p.parse().unwrap()),
            caps: amounts(caps),
            bands: Vec::new(),
        }
    }

    #[test]
    fn fees_are_fixed_plus_percentage_capped_and_rounded_half_up() {
        let eur = currency("EUR");
        let settings = fee(&[("EUR", 500)], Some("1.5"), &[("EUR", 5000)]);
        assert_eq!(fee_minor(&settings, eur, 10_000), 650);
        assert_eq!(fee_minor(&settings, eur, 1_000_000), 5000, "capped");
        // 1.5 % of 1.00 is 0.015: half-up gives 0.02.
        let percentage_only = fee(&[], Some("1.5"), &[]);
        assert_eq!(fee_minor(&percentage_only, eur, 100), 2);
        assert_eq!(fee_minor(&percentage_only, eur, 33), 0);
        // A currency without a fixed amount gets only the percentage.
        assert_eq!(fee_minor(&settings, currency("USD"), 10_000), 150);
        // JPY has no minor units: 1.5 % of 1001 is 15.015 -> 15.
        assert_eq!(fee_minor(&percentage_only, currency("JPY"), 1001), 15);
    }

    #[test]
    fn fee_bands_pick_the_band_of_the_amount_due() {
        let gbp = currency("GBP");
        let mut settings = fee(&[("GBP", 1)], None, &[]);
        settings.bands = [(0, 4000), (100_000, 7000), (1_000_000, 10_000)]
            .into_iter()
            .map(|(min, fee)| FeeBand {
                currency: gbp,
                min_amount_due_minor: min,
                fee_minor: fee,
            })
            .collect();
        assert_eq!(fee_minor(&settings, gbp, 99_999), 4000);
        assert_eq!(fee_minor(&settings, gbp, 100_000), 7000);
        assert_eq!(fee_minor(&settings, gbp, 5_000_000), 10_000);
    }

    fn fixed_rate(rate: &str, day_count: DayCount) -> InterestSettings {
        InterestSettings {
            annual_rate_percent: rate.parse().unwrap(),
            day_count,
            statutory: false,
            statutory_margin_percent: Decimal::ZERO,
            reference_rates: Vec::new(),
        }
    }

    #[test]
    fn interest_accrues_day_by_day_from_the_day_after_the_due_date() {
        let eur = currency("EUR");
        let settings = fixed_rate("8", DayCount::Act365);
        let accrual = accrue_interest(
            &settings,
            eur,
            date("2026-10-31"),
            date("2026-11-30"),
            100_000,
            &[],
        )
        .unwrap();
        assert_eq!(accrual.from, date("2026-11-01"));
        // 1000.00 * 8 % * 30 / 365 = 6.5753...
        assert_eq!(round_to_minor(eur, accrual.accrued), 658);
        let act_360 = accrue_interest(
            &fixed_rate("8", DayCount::Act360),
            eur,
            date("2026-10-31"),
            date("2026-11-30"),
            100_000,
            &[],
        )
        .unwrap();
        assert_eq!(round_to_minor(eur, act_360.accrued), 667);
        assert!(
            accrue_interest(
                &settings,
                eur,
                date("2026-10-31"),
                date("2026-10-31"),
                1,
                &[]
            )
            .is_none()
        );
    }

    #[test]
    fn a_partial_payment_lowers_interest_from_its_date() {
        let eur = currency("EUR");
        let accrual = accrue_interest(
            &fixed_rate("8", DayCount::Act365),
            eur,
            date("2026-10-31"),
            date("2026-11-30"),
            100_000,
            &[DatedPayment {
                date: date("2026-11-11"),
                amount_minor: 50_000,
            }],
        )
        .unwrap();
        // 10 days on 1000.00 and 20 days on 500.00: 20,000 * 8 % / 365 = 4.3835...
        assert_eq!(round_to_minor(eur, accrual.accrued), 438);
    }

    #[test]
    fn statutory_interest_takes_each_half_years_reference_rate() {
        let eur = currency("EUR");
        let settings = InterestSettings {
            annual_rate_percent: Decimal::ZERO,
            day_count: DayCount::Act365,
            statutory: true,
            statutory_margin_percent: "8".parse().unwrap(),
            reference_rates: vec![
                ReferenceRate {
                    period_start: date("2026-01-01"),
                    rate_percent: "2".parse().unwrap(),
                },
                ReferenceRate {
                    period_start: date("2026-07-01"),
                    rate_percent: "3".parse().unwrap(),
                },
                // Announced mid-period: applies from the next half-year only.
                ReferenceRate {
                    period_start: date("2026-07-15"),
                    rate_percent: "9".parse().unwrap(),
                },
            ],
        };
        let accrual = accrue_interest(
            &settings,
            eur,
            date("2026-06-20"),
            date("2026-07-10"),
            100_000,
            &[],
        )
        .unwrap();
        // 10 days at 10 % and 10 days at 11 %: 1000 * 2.1 / 365 = 5.7534...
        assert_eq!(round_to_minor(eur, accrual.accrued), 575);
        assert_eq!(accrual.last_rate_percent, "11".parse::<Decimal>().unwrap());
    }

    #[test]
    fn bookings_add_up_to_the_rounded_exact_total() {
        let eur = currency("EUR");
        let settings = fixed_rate("9.12", DayCount::Act365);
        let due = date("2026-01-31");
        let mut booked = 0;
        let mut day = date("2026-02-01");
        while day <= date("2026-12-31") {
            let accrual = accrue_interest(&settings, eur, due, day, 123_457, &[]).unwrap();
            booked += interest_to_book(eur, accrual.accrued, booked);
            day += chrono::Duration::days(7);
        }
        let last = day - chrono::Duration::days(7);
        let exact = accrue_interest(&settings, eur, due, last, 123_457, &[]).unwrap();
        assert_eq!(booked, round_to_minor(eur, exact.accrued));
        assert_eq!(
            interest_to_book(eur, Decimal::ZERO, 10),
            0,
            "never negative"
        );
    }
}
