//! Input rules shared by every use case, collected as field violations so that one bad request
//! reports every bad field at once.

use chrono::NaiveDate;
use chrono_tz::Tz;

/// Longest `external_id` a caller may use.
pub const MAX_EXTERNAL_ID_LEN: usize = 128;
/// Longest free-text field (names, reasons, references).
pub const MAX_TEXT_LEN: usize = 512;
/// Most entries in a list field (cc/bcc emails, tags).
pub const MAX_LIST_LEN: usize = 50;
/// Most metadata entries, and the longest key and value.
pub const MAX_METADATA_ENTRIES: usize = 50;
pub const MAX_METADATA_KEY_LEN: usize = 64;
pub const MAX_METADATA_VALUE_LEN: usize = 512;

/// One bad field: its path in the request (`invoices[3].due_date`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Collects violations while a request is checked.
#[derive(Debug, Default)]
pub struct Violations {
    items: Vec<FieldViolation>,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.items.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Adds every violation of a nested check with `prefix.` in front of its field path.
    pub fn extend_prefixed(&mut self, prefix: &str, other: Violations) {
        for mut item in other.items {
            item.field = format!("{prefix}.{}", item.field);
            self.items.push(item);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.items
    }

    /// Records the error of a check, if any, and returns its value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// Finishes the check: `Ok` when nothing was wrong.
    pub fn finish(self) -> Result<(), Vec<FieldViolation>> {
        if self.items.is_empty() {
            Ok(())
        } else {
            Err(self.items)
        }
    }
}

/// An identifier chosen by a caller: 1–128 characters of `A–Z a–z 0–9 _ - . : @ /`.
pub fn external_id(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!("must be at most {MAX_EXTERNAL_ID_LEN} characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@' | '/'))
    {
        return Err("may contain only letters, digits and _ - . : @ /".into());
    }
    Ok(value.to_owned())
}

/// An email address (RFC 5322 addr-spec, as lettre parses it).
pub fn email(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.len() > 254 {
        return Err("must be at most 254 characters".into());
    }
    trimmed
        .parse::<lettre::Address>()
        .map(|_| trimmed.to_owned())
        .map_err(|e| format!("is not a valid email address ({e})"))
}

/// An optional email address: empty means none.
pub fn optional_email(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        email(value)
    }
}

/// A list of email addresses, de-duplicated case-insensitively, order kept.
pub fn email_list(field: &str, values: &[String], violations: &mut Violations) -> Vec<String> {
    if values.len() > MAX_LIST_LEN {
        violations.add(field, format!("must have at most {MAX_LIST_LEN} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match email(value) {
            Ok(address) => {
                if !out.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                    out.push(address);
                }
            }
            Err(e) => violations.add(format!("{field}[{i}]"), e),
        }
    }
    out
}

/// Free text up to `MAX_TEXT_LEN` characters, without control characters.
pub fn text(value: &str) -> Result<String, String> {
    text_up_to(value, MAX_TEXT_LEN)
}

/// Free text up to `max` characters, without control characters.
pub fn text_up_to(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_owned())
}

/// Required free text.
pub fn required_text(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("is required".into());
    }
    text(value)
}

/// An IANA time zone name such as `Europe/Berlin`.
pub fn timezone(value: &str) -> Result<Tz, String> {
    value
        .parse::<Tz>()
        .map_err(|_| format!("`{value}` is not an IANA time zone name such as Europe/Berlin"))
}

/// A locale tag: a language (`en`), optionally with a region (`de-DE`, `pt_BR`).
pub fn locale(value: &str) -> Result<String, String> {
    let mut parts = value.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let region = parts.next();
    let valid_language =
        (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic());
    let valid_region = region.is_none_or(|r| {
        (r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
    });
    if !valid_language || !valid_region || parts.next().is_some() {
        return Err(format!("`{value}` is not a locale such as en or de-DE"));
    }
    let mut normalized = language.to_ascii_lowercase();
    if let Some(region) = region {
        normalized.push('-');
        normalized.push_str(&region.to_ascii_uppercase());
    }
    Ok(normalized)
}

/// A calendar date written `YYYY-MM-DD`.
pub fn date(value: &str) -> Result<NaiveDate, String> {
    if value.is_empty() {
        return Err("is required (YYYY-MM-DD)".into());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|d| value.len() == 10 && (1900..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| format!("`{value}` is not a date written YYYY-MM-DD"))
}

/// Free-form tags: short, no control characters, de-duplicated.
pub fn tags(field: &str, values: &[String], violations: &mut Violations) -> Vec<String> {
    if values.len() > MAX_LIST_LEN {
        violations.add(field, format!("must have at most {MAX_LIST_LEN} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, tag) in values.iter().enumerate() {
        if tag.is_empty() || tag.len() > MAX_METADATA_KEY_LEN || tag.chars().any(char::is_control) {
            violations.add(
                format!("{field}[{i}]"),
                format!(
                    "must be 1 to {MAX_METADATA_KEY_LEN} characters without control characters"
                ),
            );
        } else if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}

/// Caller metadata: a bounded string map.
pub fn metadata<'a>(
    field: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
    violations: &mut Violations,
) {
    if entries.len() > MAX_METADATA_ENTRIES {
        violations.add(
            field,
            format!("must have at most {MAX_METADATA_ENTRIES} entries"),
        );
        return;
    }
    for (key, value) in entries {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
            violations.add(
                format!("{field}[{key}]"),
                format!("keys must be 1 to {MAX_METADATA_KEY_LEN} characters"),
            );
        } else if value.len() > MAX_METADATA_VALUE_LEN {
            violations.add(
                format!("{field}[{key}]"),
                format!("values must be at most {MAX_METADATA_VALUE_LEN} characters"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids() {
        assert!(external_id("cus_123-A.b:c@d/e").is_ok());
        assert!(external_id("").is_err());
        assert!(external_id("has space").is_err());
        assert!(external_id("ünïcode").is_err());
        assert!(external_id(&"x".repeat(129)).is_err());
        assert!(external_id(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email(" a@example.com ").unwrap(), "a@example.com");
        assert!(email("not-an-email").is_err());
        assert!(email("a@").is_err());
        assert_eq!(optional_email("").unwrap(), "");
        let mut v = Violations::new();
        let list = email_list(
            "cc_emails",
            &["a@x.io".into(), "A@x.io".into(), "bad".into()],
            &mut v,
        );
        assert_eq!(list, vec!["a@x.io".to_string()]);
        assert_eq!(v.into_vec()[0].field, "cc_emails[2]");
    }

    #[test]
    fn locales_and_zones_and_dates() {
        assert_eq!(locale("de_de").unwrap(), "de-DE");
        assert_eq!(locale("fr").unwrap(), "fr");
        assert!(locale("english").is_err());
        assert!(locale("").is_err());
        assert!(timezone("Europe/Berlin").is_ok());
        assert!(timezone("Mars/Base").is_err());
        assert!(date("2026-02-28").is_ok());
        assert!(date("2026-02-30").is_err());
        assert!(date("2026-2-3").is_err());
        assert!(date("26-02-03").is_err());
    }
}
