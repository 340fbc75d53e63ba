//! Locale-aware formatting of money amounts and dates for notification emails.
//!
//! Pure functions, no ICU: the service ships built-in templates for English, German and French,
//! and these functions format for exactly those languages (any other locale is formatted as
//! English, matching the template fallback).
//!
//! Separators follow CLDR conventions: a no-break space (U+00A0) joins a number and a currency
//! symbol or code that is written apart from it (`1.250,00 €`, `KWD 1.250`), so an email client
//! never wraps between the two; French groups thousands with a narrow no-break space (U+202F).

use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

/// No-break space, between an amount and a currency written apart from it.
const NBSP: char = '\u{a0}';
/// Narrow no-break space, the French thousands separator.
const NNBSP: char = '\u{202f}';

/// The language a locale is formatted in: `"en"`, `"de"` or `"fr"`.
///
/// Only the language subtag counts and case does not matter: `"de-AT"`, `"de_CH"` and `"DE"` are
/// German; anything unknown (or empty) is English.
pub(crate) fn language(locale: &str) -> &'static str {
    let primary = locale
        .trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match primary.as_str() {
        "de" => "de",
        "fr" => "fr",
        _ => "en",
    }
}

/// The symbol of a currency, for the currencies that are written with one.
fn currency_symbol(code: &str) -> Option<&'static str> {
    match code {
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        "CHF" => Some("CHF"),
        _ => None,
    }
}

/// Formats a decimal amount (`"1250.00"`) in a currency (`"EUR"`) for a locale.
///
/// * `en`: `€1,250.00`, `$12.50`, `¥1,000`, `KWD 1.250`, `-£3.20`
/// * `de`: `1.250,00 €`, `12,50 $`, `1.250 KWD`
/// * `fr`: `1 250,00 €` (thousands separated by U+202F)
///
/// EUR, USD, GBP, JPY and CHF are written with their symbol (`CHF` is its own symbol), any other
/// currency with its ISO code. The number of decimals is the one of the input (the amount is not
/// re-rounded): amounts on the wire already carry the currency's minor units. An amount that is
/// not a decimal number is returned as given (trimmed), followed by the currency code.
pub fn format_money(amount: &str, currency_code: &str, locale: &str) -> String {
    let lang = language(locale);
    let code = currency_code.trim().to_ascii_uppercase();
    let Ok(value) = Decimal::from_str(amount.trim()) else {
        let parts: Vec<&str> = [amount.trim(), code.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect();
        return parts.join(&NBSP.to_string());
    };

    let negative = value.is_sign_negative() && !value.is_zero();
    // `Decimal`'s string form keeps the scale of the input ("1250.00" stays "1250.00").
    let digits = value.abs().to_string();
    let (integer, fraction) = match digits.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (digits.as_str(), None),
    };
    let (group_separator, decimal_separator) = match lang {
        "de" => ('.', ','),
        "fr" => (NNBSP, ','),
        _ => (',', '.'),
    };

    let mut number = group_digits(integer, group_separator);
    if let Some(fraction) = fraction {
        number.push(decimal_separator);
        number.push_str(fraction);
    }
    let sign = if negative { "-" } else { "" };

    if code.is_empty() {
        return format!("{sign}{number}");
    }
    let symbol = currency_symbol(&code).unwrap_or(code.as_str());
    match lang {
        "en" if symbol.chars().all(|c| c.is_ascii_alphabetic()) => {
            format!("{sign}{symbol}{NBSP}{number}")
        }
        "en" => format!("{sign}{symbol}{number}"),
        _ => format!("{sign}{number}{NBSP}{symbol}"),
    }
}

/// Inserts `separator` between groups of three digits, counted from the right.
fn group_digits(integer: &str, separator: char) -> String {
    let count = integer.chars().count();
    let mut grouped = String::with_capacity(integer.len() + count / 3 * 3);
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (count - index).is_multiple_of(3) {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    grouped
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// Formats a `YYYY-MM-DD` date as a long date for a locale.
///
/// * `en`: `31 October 2026`
/// * `de`: `31. Oktober 2026`
/// * `fr`: `31 octobre 2026`, and `1er octobre 2026` for the first of a month
///
/// Input that is not a valid `YYYY-MM-DD` date is returned unchanged.
pub fn format_date(yyyy_mm_dd: &str, locale: &str) -> String {
    let Ok(date) = NaiveDate::parse_from_str(yyyy_mm_dd.trim(), "%Y-%m-%d") else {
        return yyyy_mm_dd.to_string();
    };
    let day = date.day();
    let month = date.month0() as usize;
    let year = date.year();
    match language(locale) {
        "de" => format!("{day}. {} {year}", MONTHS_DE[month % 12]),
        "fr" if day == 1 => format!("1er {} {year}", MONTHS_FR[month % 12]),
        "fr" => format!("{day} {} {year}", MONTHS_FR[month % 12]),
        _ => format!("{day} {} {year}", MONTHS_EN[month % 12]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_uses_the_primary_subtag() {
        assert_eq!(language("de-AT"), "de");
        assert_eq!(language("de_CH"), "de");
        assert_eq!(language("FR-ca"), "fr");
        assert_eq!(language("en-GB"), "en");
        assert_eq!(language("pt-BR"), "en");
        assert_eq!(language(""), "en");
    }

    #[test]
    fn english_money() {
        assert_eq!(format_money("1250.00", "EUR", "en"), "€1,250.00");
        assert_eq!(format_money("12.50", "USD", "en"), "$12.50");
        assert_eq!(format_money("1000", "JPY", "en"), "¥1,000");
        assert_eq!(format_money("1.250", "KWD", "en"), "KWD\u{a0}1.250");
        assert_eq!(format_money("99.95", "gbp", "en-GB"), "£99.95");
        assert_eq!(format_money("1250.00", "CHF", "en"), "CHF\u{a0}1,250.00");
        assert_eq!(format_money("1234567.89", "USD", "en"), "$1,234,567.89");
        assert_eq!(format_money("-3.20", "GBP", "en"), "-£3.20");
        assert_eq!(format_money("0.00", "EUR", "en"), "€0.00");
        assert_eq!(format_money("999", "JPY", "en"), "¥999");
    }

    #[test]
    fn german_money() {
        assert_eq!(format_money("1250.00", "EUR", "de"), "1.250,00\u{a0}€");
        assert_eq!(format_money("1250.00", "EUR", "de-AT"), "1.250,00\u{a0}€");
        assert_eq!(format_money("12.50", "USD", "de"), "12,50\u{a0}$");
        assert_eq!(format_money("1000", "JPY", "de"), "1.000\u{a0}¥");
        assert_eq!(format_money("1.250", "KWD", "de"), "1,250\u{a0}KWD");
        assert_eq!(
            format_money("-1000000.5", "CHF", "de"),
            "-1.000.000,5\u{a0}CHF"
        );
    }

    #[test]
    fn french_money() {
        assert_eq!(
            format_money("1250.00", "EUR", "fr"),
            "1\u{202f}250,00\u{a0}€"
        );
        assert_eq!(format_money("12.50", "USD", "fr-CA"), "12,50\u{a0}$");
        assert_eq!(format_money("100", "JPY", "fr"), "100\u{a0}¥");
    }

    #[test]
    fn money_keeps_the_input_scale() {
        assert_eq!(format_money("10.5", "EUR", "en"), "€10.5");
        assert_eq!(format_money("10.500", "KWD", "en"), "KWD\u{a0}10.500");
    }

    #[test]
    fn invalid_money_is_returned_with_the_code() {
        assert_eq!(format_money("abc", "EUR", "en"), "abc\u{a0}EUR");
        assert_eq!(format_money("", "EUR", "de"), "EUR");
        assert_eq!(format_money("12.50", "", "en"), "12.50");
        assert_eq!(format_money("x", "", "en"), "x");
    }

    #[test]
    fn dates() {
        assert_eq!(format_date("2026-10-31", "en"), "31 October 2026");
        assert_eq!(format_date("2026-10-31", "de"), "31. Oktober 2026");
        assert_eq!(format_date("2026-03-05", "de-AT"), "5. März 2026");
        assert_eq!(format_date("2026-10-31", "fr"), "31 octobre 2026");
        assert_eq!(format_date("2026-08-01", "fr"), "1er août 2026");
        assert_eq!(format_date("2026-08-01", "en-US"), "1 August 2026");
        assert_eq!(format_date("2026-02-07", "pt"), "7 February 2026");
    }

    #[test]
    fn invalid_dates_are_returned_unchanged() {
        assert_eq!(format_date("2026-02-30", "en"), "2026-02-30");
        assert_eq!(format_date("soon", "de"), "soon");
        assert_eq!(format_date("", "fr"), "");
    }
}
