//! Money: ISO 4217 currencies with their minor units, and exact decimal amounts.
//!
//! Amounts travel as decimal strings and are stored as integer minor units of their currency,
//! so they are exact and summable; they are never floats.

use rust_decimal::Decimal;
use std::fmt;

/// The largest amount accepted on input, in major units. Larger figures are almost certainly a
/// unit mix-up (cents sent as euros) and would risk overflow once converted to minor units.
pub const MAX_MAJOR_AMOUNT: i64 = 1_000_000_000_000;

/// An active ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown currency {code}")))
    }
}

impl Currency {
    /// Looks a currency up by its code (upper case, exactly as ISO 4217 spells it).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(code, minor_units)| Currency { code, minor_units })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimal places of the currency's minor unit (JPY 0, EUR 2, KWD 3).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// Parses a decimal string such as `"1234.50"` into minor units of this currency.
    pub fn parse_amount(&self, text: &str) -> Result<i64, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        // Only plain decimal notation: no exponent, no sign, no separators.
        if !text.chars().all(|c| c.is_ascii_digit() || c == '.') || text.starts_with('.') {
            if text.starts_with('-') {
                return Err(AmountError::Negative);
            }
            return Err(AmountError::NotADecimal);
        }
        let value: Decimal = text.parse().map_err(|_| AmountError::NotADecimal)?;
        self.to_minor(value)
    }

    /// Converts an exact decimal to minor units, rejecting extra precision.
    pub fn to_minor(&self, value: Decimal) -> Result<i64, AmountError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        if value.normalize().scale() > self.minor_units {
            return Err(AmountError::TooPrecise {
                minor_units: self.minor_units,
            });
        }
        if value >= Decimal::from(MAX_MAJOR_AMOUNT) {
            return Err(AmountError::TooLarge);
        }
        let scaled = value * Decimal::from(10i64.pow(self.minor_units));
        i64::try_from(scaled.trunc()).map_err(|_| AmountError::TooLarge)
    }

    /// The exact decimal value of an amount in minor units, at the currency's scale.
    pub fn to_decimal(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.minor_units)
    }

    /// Formats minor units as the wire decimal string, always with the currency's scale
    /// (`"12.50"`, `"1000"` for JPY, `"1.250"` for KWD).
    pub fn format(&self, minor: i64) -> String {
        self.to_decimal(minor).to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An exact amount in one currency, in its minor units. Arithmetic is checked: amounts of
/// different currencies are never added, and an overflow is an error, not a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    currency: Currency,
    minor: i64,
}

/// Why money arithmetic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {left} and {right} amounts")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount out of range")]
    Overflow,
}

impl Money {
    pub fn new(currency: Currency, minor: i64) -> Money {
        Money { currency, minor }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(currency, 0)
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(self.currency, minor))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(self.currency, minor))
    }

    /// The sum of `amounts`, all in `currency` (zero when there are none).
    pub fn sum(
        currency: Currency,
        amounts: impl IntoIterator<Item = Money>,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// The wire decimal string at the currency's scale.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.currency.format(self.minor))
    }
}

/// Why an amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is required")]
    Empty,
    #[error("amount must be a plain decimal number such as \"1234.50\"")]
    NotADecimal,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount has more decimal places than the currency's {minor_units} minor units")]
    TooPrecise { minor_units: u32 },
    #[error("amount must be below 1000000000000")]
    TooLarge,
}

/// Active ISO 4217 codes and their minor units (ISO 4217 list one).
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[cfg(test)]
mod tests {

    #[test]
    fn money_sums_are_checked() {
        let eur = Currency::from_code("EUR").unwrap();
        let usd = Currency::from_code("USD").unwrap();
        let sum = Money::sum(eur, [Money::new(eur, 150), Money::new(eur, 250)]).unwrap();
        assert_eq!(sum.to_string(), "4.00");
        assert_eq!(Money::sum(eur, []).unwrap(), Money::zero(eur));
        assert_eq!(
            Money::new(eur, 1).checked_add(Money::new(usd, 1)),
            Err(MoneyError::CurrencyMismatch {
                left: eur,
                right: usd
            })
        );
        assert_eq!(
            Money::new(eur, i64::MAX).checked_add(Money::new(eur, 1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(eur, 5)
                .checked_sub(Money::new(eur, 7))
                .unwrap()
                .minor(),
            -2
        );
    }

    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    #[test]
    fn parses_within_minor_units() {
        assert_eq!(eur().parse_amount("1234.50"), Ok(123450));
        assert_eq!(eur().parse_amount("0"), Ok(0));
        assert_eq!(eur().parse_amount("7"), Ok(700));
        assert_eq!(
            eur().parse_amount("1.500"),
            Ok(150),
            "trailing zeros are not precision"
        );
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(jpy.parse_amount("1000"), Ok(1000));
        assert_eq!(
            jpy.parse_amount("1000.5"),
            Err(AmountError::TooPrecise { minor_units: 0 })
        );
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(kwd.parse_amount("1.255"), Ok(1255));
    }

    #[test]
    fn rejects_malformed_amounts() {
        assert_eq!(eur().parse_amount("-1"), Err(AmountError::Negative));
        assert_eq!(eur().parse_amount("1e3"), Err(AmountError::NotADecimal));
        assert_eq!(eur().parse_amount(" 12.50 "), Err(AmountError::NotADecimal));
        assert_eq!(eur().parse_amount("NaN"), Err(AmountError::NotADecimal));
        assert_eq!(eur().parse_amount("1,000"), Err(AmountError::NotADecimal));
        assert_eq!(eur().parse_amount(".5"), Err(AmountError::NotADecimal));
        assert_eq!(eur().parse_amount(""), Err(AmountError::Empty));
        assert_eq!(eur().parse_amount("1.2.3"), Err(AmountError::NotADecimal));
        assert_eq!(
            eur().parse_amount("0.001"),
            Err(AmountError::TooPrecise { minor_units: 2 })
        );
        assert_eq!(
            eur().parse_amount("1000000000000"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn formats_at_currency_scale() {
        assert_eq!(eur().format(123450), "1234.50");
        assert_eq!(eur().format(5), "0.05");
        assert_eq!(Currency::from_code("JPY").unwrap().format(1000), "1000");
        assert_eq!(Currency::from_code("KWD").unwrap().format(1250), "1.250");
    }

    #[test]
    fn unknown_and_lower_case_codes_are_not_currencies() {
        assert!(Currency::from_code("XXX").is_none());
        assert!(Currency::from_code("eur").is_none());
        assert!(Currency::from_code("EURO").is_none());
    }
}
