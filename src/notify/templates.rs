//! Email templates for dunning notifications, rendered with minijinja.
//!
//! A template has three parts: a subject, a plain-text body and an HTML body
//! ([`TemplateSource`]). The service ships built-in templates for every [`TemplateKind`] in
//! English, German and French ([`builtin`]); an organization can override any kind per locale
//! with its own source, which is checked with [`validate`] when it is saved. [`render`] turns a
//! source and an [`EmailContext`] into a [`RenderedEmail`].
//!
//! The variables and filters templates can use are documented on [`EmailContext`].

use std::fmt;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

use super::format::{format_date, format_money, language};

/// The kind of a dunning email: the reminder ladder and the other notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateKind {
    /// First reminder after the due date: polite, assumes an oversight.
    FriendlyReminder,
    /// Second reminder: firmer, asks for payment without further delay.
    FirmReminder,
    /// Last reminder: names the consequences (suspension, collection agency).
    FinalNotice,
    /// Courtesy note before the due date.
    PreDueReminder,
    /// Asks for payment of the overdue balance, with the payment link and the invoice table.
    PaymentRequest,
    /// Internal email to the customer's sales rep: which customer, what is overdue.
    SalesNotification,
    /// Hand-over to the collection agency: customer, invoices, amounts, dunning history.
    CollectionAgencyHandover,
}

impl TemplateKind {
    /// Every kind, in ladder order.
    pub const ALL: [TemplateKind; 7] = [
        TemplateKind::FriendlyReminder,
        TemplateKind::FirmReminder,
        TemplateKind::FinalNotice,
        TemplateKind::PreDueReminder,
        TemplateKind::PaymentRequest,
        TemplateKind::SalesNotification,
        TemplateKind::CollectionAgencyHandover,
    ];

    /// The stable name of the kind (`"friendly_reminder"`, ...), as used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::FriendlyReminder => "friendly_reminder",
            TemplateKind::FirmReminder => "firm_reminder",
            TemplateKind::FinalNotice => "final_notice",
            TemplateKind::PreDueReminder => "pre_due_reminder",
            TemplateKind::PaymentRequest => "payment_request",
            TemplateKind::SalesNotification => "sales_notification",
            TemplateKind::CollectionAgencyHandover => "collection_agency_handover",
        }
    }

    /// The kind named by [`as_str`](Self::as_str); `None` for any other string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The locales that have built-in templates; the first one is the fallback.
pub const BUILTIN_LOCALES: [&str; 3] = ["en", "de", "fr"];

/// The largest accepted template part, in bytes (checked by [`validate`]).
pub const MAX_TEMPLATE_PART_BYTES: usize = 64 * 1024;

/// The work one render may do (minijinja fuel: instructions and output size), so that an
/// override with a runaway loop fails instead of stalling the sender. The built-in templates
/// use a small fraction of it even for hundreds of invoices.
const RENDER_FUEL: u64 = 5_000_000;

const SUBJECT: &str = "subject";
const TEXT_BODY: &str = "text_body";
const HTML_BODY: &str = "html_body";

/// A template's three parts as source text (a built-in or an organization's override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// The subject line; rendered without escaping and collapsed to one line.
    pub subject: String,
    /// The plain-text body; rendered without escaping.
    pub text_body: String,
    /// The HTML body; every printed value is HTML-escaped.
    pub html_body: String,
}

/// A rendered email, ready to be put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no line breaks, trimmed.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
}

/// Which part of a template an error is in, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} line {line}: {message}")]
pub struct TemplateError {
    /// `"subject"`, `"text_body"` or `"html_body"`.
    pub part: &'static str,
    /// 1-based line in that part; 0 when the engine could not tell.
    pub line: usize,
    /// What is wrong, e.g. `syntax error: unexpected end of input, expected end of block`.
    pub message: String,
}

/// The variables every template sees. **This is the reference for template authors.**
///
/// # Variables
///
/// | Variable | Meaning |
/// |---|---|
/// | `organization.name` | Name of the organization sending the email (the creditor). |
/// | `organization.from_email` | Sender address of the organization. |
/// | `organization.reply_to_email` | Reply-to address; may be empty (the built-ins then show `from_email`). |
/// | `customer.name` | Name of the customer (the debtor) the email is about. |
/// | `customer.external_id` | The customer's id in the caller's systems (customer number); may be empty. |
/// | `customer.email` | The customer's email address; may be empty. |
/// | `invoices` | The invoices the email is about (a list; may be empty only in previews). Each has: |
/// | `invoice.number` | Invoice number as printed on the invoice; may be empty (use `invoice.number or invoice.external_id`). |
/// | `invoice.external_id` | The invoice's id in the caller's systems. |
/// | `invoice.issue_date` | Issue date, `YYYY-MM-DD` (format it with `date`). |
/// | `invoice.due_date` | Due date, `YYYY-MM-DD`. |
/// | `invoice.currency_code` | ISO 4217 code, e.g. `EUR`. |
/// | `invoice.total_amount` | Invoice total, decimal string such as `"1250.00"` (format it with `money`). |
/// | `invoice.amount_due` | What is still to pay: total − paid − credited, decimal string. |
/// | `invoice.days_overdue` | Whole days since the due date (an integer; negative before the due date). |
/// | `totals` | The balance the email asks for, one entry per currency (money of different currencies is never added). Each has: |
/// | `total.currency_code` | ISO 4217 code. |
/// | `total.amount` | Sum of `amount_due` of the invoices in that currency, decimal string. |
/// | `payment_link` | URL where the customer can pay; may be empty (test it with `{% if payment_link %}`). |
/// | `sales_rep_email` | The customer's sales rep; may be empty. |
/// | `history` | The dunning steps taken so far, oldest first (used by the agency hand-over and the sales notification; may be empty). Each has: |
/// | `entry.date` | When the step ran, `YYYY-MM-DD`. |
/// | `entry.description` | What was done, e.g. "Friendly reminder sent to billing@example.com". |
/// | `locale` | The locale the email is rendered for, e.g. `de` (the HTML built-ins put it in `<html lang>`). |
///
/// # Filters
///
/// * `amount|money(currency_code)` formats a decimal amount for the email's locale:
///   `{{ invoice.amount_due|money(invoice.currency_code) }}` gives `€1,250.00` in English,
///   `1.250,00 €` in German and `1 250,00 €` in French (see [`format_money`]).
/// * `yyyy_mm_dd|date` formats a date for the locale: `31 October 2026`, `31. Oktober 2026`,
///   `31 octobre 2026` (see [`format_date`]).
/// * All of minijinja's built-in filters, tests and functions (`length`, `default`, `upper`, ...).
///
/// # Syntax and behaviour
///
/// * Jinja syntax as implemented by minijinja, with `trim_blocks` and `lstrip_blocks` on: a line
///   holding only a `{% ... %}` tag produces no output, so block tags can sit on their own lines.
///   The trailing newline of a part is dropped.
/// * The HTML body is autoescaped (a customer called `<b>` prints as `&lt;b&gt;`); the subject
///   and the text body are not. The subject is collapsed to a single line after rendering.
/// * Undefined variables: **printing** one, iterating over one, passing one to a filter, or
///   reading an attribute of one is an error (so a misspelt `{{ custmer.name }}` is rejected by
///   [`validate`] instead of sending an email with a blank); **testing** one is allowed and false
///   (`{% if customer.phone %}`), as is `{{ x|default("...") }}`. Every variable above is always
///   defined — optional values are empty strings or empty lists — so templates that stick to
///   them never hit this at send time.
/// * `include`, `extends` and `import` find no templates: each part must be self-contained.
/// * A render has a bounded amount of work (fuel), so a runaway loop fails instead of hanging.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmailContext {
    /// The sending organization: `organization.name`, `.from_email`, `.reply_to_email`.
    pub organization: OrganizationVars,
    /// The customer (debtor): `customer.name`, `.external_id`, `.email`.
    pub customer: CustomerVars,
    /// The invoices the email is about.
    pub invoices: Vec<InvoiceVars>,
    /// The balance the email asks for, per currency.
    pub totals: Vec<AmountVars>,
    /// Where to pay; empty when there is none.
    pub payment_link: String,
    /// The customer's sales rep; empty when there is none.
    pub sales_rep_email: String,
    /// The dunning steps taken so far, oldest first.
    pub history: Vec<HistoryVars>,
    /// The resolved locale, e.g. `"de"`; amounts and dates are formatted for it.
    pub locale: String,
}

/// `organization.*` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrganizationVars {
    /// The organization's name.
    pub name: String,
    /// The sender address.
    pub from_email: String,
    /// The reply-to address; may be empty.
    pub reply_to_email: String,
}

/// `customer.*` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CustomerVars {
    /// The customer's name.
    pub name: String,
    /// The caller's id for the customer; may be empty.
    pub external_id: String,
    /// The customer's email address; may be empty.
    pub email: String,
}

/// One entry of `invoices` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvoiceVars {
    /// The invoice number; may be empty.
    pub number: String,
    /// The caller's id for the invoice.
    pub external_id: String,
    /// Issue date, `YYYY-MM-DD`.
    pub issue_date: String,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: String,
    /// ISO 4217 currency code.
    pub currency_code: String,
    /// Invoice total, decimal string (`"1250.00"`).
    pub total_amount: String,
    /// Amount still due, decimal string.
    pub amount_due: String,
    /// Days since the due date; negative before it.
    pub days_overdue: i64,
}

/// One entry of `totals` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AmountVars {
    /// ISO 4217 currency code.
    pub currency_code: String,
    /// Decimal string (`"1400.50"`).
    pub amount: String,
}

/// One entry of `history` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryVars {
    /// When the step ran, `YYYY-MM-DD`.
    pub date: String,
    /// What was done.
    pub description: String,
}

/// Resolves a requested locale to a built-in one: `"de-AT"` → `"de"`, `"fr_CA"` → `"fr"`,
/// `"pt"` → `"en"`. Case does not matter; anything unknown (or empty) is `"en"`.
pub fn resolve_locale(locale: &str) -> &'static str {
    language(locale)
}

/// The three built-in source files of a kind and a built-in locale.
macro_rules! builtin_parts {
    ($kind:literal, $locale:literal) => {
        (
            include_str!(concat!("templates/", $kind, ".", $locale, ".subject.j2")),
            include_str!(concat!("templates/", $kind, ".", $locale, ".txt.j2")),
            include_str!(concat!("templates/", $kind, ".", $locale, ".html.j2")),
        )
    };
}

/// The built-in parts of every kind, for each built-in locale.
macro_rules! builtin_table {
    ($kind_value:expr, $locale_value:expr, $($variant:ident => $name:literal),* $(,)?) => {
        match ($kind_value, $locale_value) {
            $(
                (TemplateKind::$variant, "de") => builtin_parts!($name, "de"),
                (TemplateKind::$variant, "fr") => builtin_parts!($name, "fr"),
                (TemplateKind::$variant, _) => builtin_parts!($name, "en"),
            )*
        }
    };
}

/// The built-in template for kind and locale (locale fallback applied): returns the locale used too.
pub fn builtin(kind: TemplateKind, locale: &str) -> (TemplateSource, &'static str) {
    let resolved = resolve_locale(locale);
    let (subject, text_body, html_body) = builtin_table!(kind, resolved,
        FriendlyReminder => "friendly_reminder",
        FirmReminder => "firm_reminder",
        FinalNotice => "final_notice",
        PreDueReminder => "pre_due_reminder",
        PaymentRequest => "payment_request",
        SalesNotification => "sales_notification",
        CollectionAgencyHandover => "collection_agency_handover",
    );
    let source = TemplateSource {
        subject: subject.to_string(),
        text_body: text_body.to_string(),
        html_body: html_body.to_string(),
    };
    (source, resolved)
}

/// The template engine for one locale: the `money` and `date` filters format for it.
fn environment<'source>(locale: &'static str) -> Environment<'source> {
    let mut env = Environment::new();
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax.trim_blocks(true).lstrip_blocks(true);
    // Building with the default delimiters cannot fail; if it ever did, the default syntax
    // (without block trimming) is still a working engine.
    if let Ok(syntax) = syntax.build() {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|name| {
        if name == HTML_BODY {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_fuel(Some(RENDER_FUEL));
    env.add_filter(
        "money",
        move |amount: Value, currency_code: String| -> Result<String, minijinja::Error> {
            if amount.is_undefined() || amount.is_none() {
                return Err(minijinja::Error::new(
                    ErrorKind::UndefinedError,
                    "money: the amount is undefined",
                ));
            }
            Ok(format_money(&amount.to_string(), &currency_code, locale))
        },
    );
    env.add_filter("date", move |date: String| format_date(&date, locale));
    env
}

fn template_error(part: &'static str, err: &minijinja::Error) -> TemplateError {
    let mut message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    TemplateError {
        part,
        line: err.line().unwrap_or(0),
        message,
    }
}

fn render_part<'source>(
    env: &Environment<'source>,
    part: &'static str,
    source: &'source str,
    context: &Value,
) -> Result<String, TemplateError> {
    let template = env
        .template_from_named_str(part, source)
        .map_err(|err| template_error(part, &err))?;
    template
        .render(context)
        .map_err(|err| template_error(part, &err))
}

/// Collapses a rendered subject to one line: line breaks, tabs and other control characters
/// become single spaces, and the ends are trimmed. No-break spaces (inside formatted amounts)
/// are kept.
fn single_line(subject: &str) -> String {
    subject
        .split(|c: char| c == ' ' || c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders; the subject is trimmed to one line; HTML is autoescaped, text is not.
///
/// Amounts and dates are formatted for `context.locale` (resolved with [`resolve_locale`]).
pub fn render(
    source: &TemplateSource,
    context: &EmailContext,
) -> Result<RenderedEmail, TemplateError> {
    let env = environment(resolve_locale(&context.locale));
    let value = Value::from(Serde(context));
    let subject = render_part(&env, SUBJECT, &source.subject, &value)?;
    let text_body = render_part(&env, TEXT_BODY, &source.text_body, &value)?;
    let html_body = render_part(&env, HTML_BODY, &source.html_body, &value)?;
    Ok(RenderedEmail {
        subject: single_line(&subject),
        text_body,
        html_body,
    })
}

fn parts(source: &TemplateSource) -> [(&'static str, &str); 3] {
    [
        (SUBJECT, source.subject.as_str()),
        (TEXT_BODY, source.text_body.as_str()),
        (HTML_BODY, source.html_body.as_str()),
    ]
}

/// Checks that all three parts parse (and render against a sample context); the error names part and line.
///
/// What is checked, in order:
/// 1. each part is at most [`MAX_TEMPLATE_PART_BYTES`] long;
/// 2. each part parses (syntax errors: unclosed blocks, bad expressions, ...);
/// 3. the template renders against two sample contexts — one with every optional value filled
///    in (several invoices, two currencies, payment link, history) and one with the optional
///    values empty — which catches unknown filters, misspelt variables, and type errors in the
///    branches those contexts take;
/// 4. the subject does not render to an empty line.
pub fn validate(source: &TemplateSource) -> Result<(), TemplateError> {
    for (part, text) in parts(source) {
        if text.len() > MAX_TEMPLATE_PART_BYTES {
            return Err(TemplateError {
                part,
                line: 0,
                message: format!(
                    "the template is {} bytes long; the limit is {MAX_TEMPLATE_PART_BYTES}",
                    text.len()
                ),
            });
        }
    }
    let env = environment(resolve_locale(""));
    for (part, text) in parts(source) {
        env.template_from_named_str(part, text)
            .map_err(|err| template_error(part, &err))?;
    }
    for context in [sample_context("en"), minimal_sample_context()] {
        let rendered = render(source, &context)?;
        if rendered.subject.is_empty() {
            return Err(TemplateError {
                part: SUBJECT,
                line: 1,
                message: "the subject renders to an empty line".to_string(),
            });
        }
    }
    Ok(())
}

/// A realistic context with every variable filled in: two EUR invoices and one USD invoice, a
/// payment link, a sales rep and a dunning history. Used by [`validate`]; handy for previews.
pub fn sample_context(locale: &str) -> EmailContext {
    EmailContext {
        organization: OrganizationVars {
            name: "Northwind Supplies Ltd".to_string(),
            from_email: "billing@northwind.example".to_string(),
            reply_to_email: "accounts@northwind.example".to_string(),
        },
        customer: CustomerVars {
            name: "Bluebird Bakery GmbH".to_string(),
            external_id: "CUST-1042".to_string(),
            email: "finance@bluebird.example".to_string(),
        },
        invoices: vec![
            InvoiceVars {
                number: "INV-2026-0042".to_string(),
                external_id: "inv_0042".to_string(),
                issue_date: "2026-09-01".to_string(),
                due_date: "2026-09-30".to_string(),
                currency_code: "EUR".to_string(),
                total_amount: "1250.00".to_string(),
                amount_due: "1250.00".to_string(),
                days_overdue: 31,
            },
            InvoiceVars {
                number: "INV-2026-0057".to_string(),
                external_id: "inv_0057".to_string(),
                issue_date: "2026-09-15".to_string(),
                due_date: "2026-10-15".to_string(),
                currency_code: "EUR".to_string(),
                total_amount: "300.00".to_string(),
                amount_due: "150.50".to_string(),
                days_overdue: 16,
            },
            InvoiceVars {
                number: "INV-2026-0061".to_string(),
                external_id: "inv_0061".to_string(),
                issue_date: "2026-09-20".to_string(),
                due_date: "2026-10-20".to_string(),
                currency_code: "USD".to_string(),
                total_amount: "89.90".to_string(),
                amount_due: "89.90".to_string(),
                days_overdue: 1,
            },
        ],
        totals: vec![
            AmountVars {
                currency_code: "EUR".to_string(),
                amount: "1400.50".to_string(),
            },
            AmountVars {
                currency_code: "USD".to_string(),
                amount: "89.90".to_string(),
            },
        ],
        payment_link: "https://pay.northwind.example/r/pr_7Hq2".to_string(),
        sales_rep_email: "jane.doe@northwind.example".to_string(),
        history: vec![
            HistoryVars {
                date: "2026-10-03".to_string(),
                description: "Friendly reminder sent to finance@bluebird.example".to_string(),
            },
            HistoryVars {
                date: "2026-10-17".to_string(),
                description: "Firm reminder sent to finance@bluebird.example".to_string(),
            },
            HistoryVars {
                date: "2026-10-31".to_string(),
                description: "Final notice sent; suspension requested".to_string(),
            },
        ],
        locale: resolve_locale(locale).to_string(),
    }
}

/// A context with one invoice and every optional value empty.
fn minimal_sample_context() -> EmailContext {
    EmailContext {
        organization: OrganizationVars {
            name: "Northwind Supplies Ltd".to_string(),
            from_email: String::new(),
            reply_to_email: String::new(),
        },
        customer: CustomerVars {
            name: "Bluebird Bakery GmbH".to_string(),
            external_id: String::new(),
            email: String::new(),
        },
        invoices: vec![InvoiceVars {
            number: String::new(),
            external_id: "inv_0042".to_string(),
            issue_date: "2026-09-01".to_string(),
            due_date: "2026-09-30".to_string(),
            currency_code: "JPY".to_string(),
            total_amount: "12000".to_string(),
            amount_due: "12000".to_string(),
            days_overdue: -3,
        }],
        totals: vec![AmountVars {
            currency_code: "JPY".to_string(),
            amount: "12000".to_string(),
        }],
        payment_link: String::new(),
        sales_rep_email: String::new(),
        history: Vec::new(),
        locale: "en".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::format::format_money;

    fn override_with_text(text_body: &str) -> TemplateSource {
        let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
        source.text_body = text_body.to_string();
        source
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in TemplateKind::ALL {
            assert_eq!(TemplateKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(
            TemplateKind::parse("collection_agency_handover"),
            Some(TemplateKind::CollectionAgencyHandover)
        );
        assert_eq!(TemplateKind::parse("FriendlyReminder"), None);
        assert_eq!(TemplateKind::parse(""), None);
    }

    #[test]
    fn every_builtin_renders_in_every_locale() {
        for kind in TemplateKind::ALL {
            for locale in BUILTIN_LOCALES {
                let (source, used) = builtin(kind, locale);
                assert_eq!(used, locale);
                let context = sample_context(locale);
                let email = render(&source, &context)
                    .unwrap_or_else(|err| panic!("{kind} {locale}: {err}"));
                let total = format_money("1400.50", "EUR", locale);
                let usd_total = format_money("89.90", "USD", locale);
                assert!(!email.subject.is_empty(), "{kind} {locale}: empty subject");
                assert!(!email.subject.contains('\n'), "{kind} {locale}");
                for (part, body) in [("text", &email.text_body), ("html", &email.html_body)] {
                    for number in ["INV-2026-0042", "INV-2026-0057", "INV-2026-0061"] {
                        assert!(body.contains(number), "{kind} {locale} {part}: {number}");
                    }
                    assert!(body.contains(&total), "{kind} {locale} {part}: {total}");
                    assert!(
                        body.contains(&usd_total),
                        "{kind} {locale} {part}: {usd_total}"
                    );
                    assert!(
                        body.contains("Bluebird Bakery GmbH"),
                        "{kind} {locale} {part}: customer name"
                    );
                    assert!(
                        body.contains("Northwind Supplies Ltd"),
                        "{kind} {locale} {part}: organization name"
                    );
                    assert!(
                        body.contains("accounts@northwind.example"),
                        "{kind} {locale} {part}: reply-to hint"
                    );
                    assert!(
                        !body.contains("{{"),
                        "{kind} {locale} {part}: unrendered tag"
                    );
                    assert!(
                        !body.contains("{%"),
                        "{kind} {locale} {part}: unrendered tag"
                    );
                }
                assert!(email.html_body.contains("<table"), "{kind} {locale}");
                assert!(
                    email
                        .html_body
                        .contains(&format!("<html lang=\"{locale}\">")),
                    "{kind} {locale}"
                );
            }
        }
    }

    #[test]
    fn every_builtin_renders_with_optional_values_empty() {
        let mut context = minimal_sample_context();
        for kind in TemplateKind::ALL {
            for locale in BUILTIN_LOCALES {
                context.locale = locale.to_string();
                let (source, _) = builtin(kind, locale);
                let email = render(&source, &context)
                    .unwrap_or_else(|err| panic!("{kind} {locale}: {err}"));
                let total = format_money("12000", "JPY", locale);
                assert!(email.text_body.contains("inv_0042"), "{kind} {locale}");
                assert!(email.text_body.contains(&total), "{kind} {locale}: {total}");
                assert!(email.html_body.contains(&total), "{kind} {locale}: {total}");
                assert!(!email.subject.is_empty(), "{kind} {locale}");
            }
        }
    }

    #[test]
    fn every_builtin_passes_validation() {
        for kind in TemplateKind::ALL {
            for locale in BUILTIN_LOCALES {
                let (source, _) = builtin(kind, locale);
                assert_eq!(validate(&source), Ok(()), "{kind} {locale}");
            }
        }
    }

    #[test]
    fn ladder_content() {
        let context = sample_context("en");
        let render_kind = |kind| {
            let (source, _) = builtin(kind, "en");
            render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"))
        };
        let final_notice = render_kind(TemplateKind::FinalNotice);
        assert!(final_notice.subject.starts_with("Final notice"));
        assert!(final_notice.text_body.contains("collection agency"));
        assert!(final_notice.text_body.contains("suspending"));

        let request = render_kind(TemplateKind::PaymentRequest);
        assert_eq!(
            request.subject,
            "Payment request from Northwind Supplies Ltd"
        );
        assert!(
            request
                .text_body
                .contains("https://pay.northwind.example/r/pr_7Hq2")
        );
        // Autoescaping writes `/` as `&#x2f;`, which browsers decode in attributes.
        assert!(
            request
                .html_body
                .contains("<a href=\"https:&#x2f;&#x2f;pay.northwind.example")
        );

        let handover = render_kind(TemplateKind::CollectionAgencyHandover);
        assert!(handover.text_body.contains("CUST-1042"));
        assert!(
            handover
                .text_body
                .contains("17 October 2026: Firm reminder sent")
        );
        assert!(
            handover
                .html_body
                .contains("Final notice sent; suspension requested")
        );

        let sales = render_kind(TemplateKind::SalesNotification);
        assert_eq!(
            sales.subject,
            "Overdue account: Bluebird Bakery GmbH (CUST-1042)"
        );
        assert!(sales.text_body.contains("31 days overdue"));
    }

    #[test]
    fn subjects_name_a_single_invoice() {
        let mut context = sample_context("de");
        context.invoices.truncate(1);
        context.totals.truncate(1);
        context.totals[0].amount = "1250.00".to_string();
        let (source, _) = builtin(TemplateKind::FriendlyReminder, "de");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            email.subject,
            "Zahlungserinnerung zu Rechnung INV-2026-0042"
        );
        let (source, _) = builtin(TemplateKind::PaymentRequest, "de");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            email.subject,
            "Zahlungsaufforderung von Northwind Supplies Ltd: 1.250,00\u{a0}€ offen"
        );
    }

    #[test]
    fn locale_fallback() {
        assert_eq!(resolve_locale("de-AT"), "de");
        assert_eq!(resolve_locale("de"), "de");
        assert_eq!(resolve_locale("fr_CA"), "fr");
        assert_eq!(resolve_locale("FR"), "fr");
        assert_eq!(resolve_locale("en-US"), "en");
        assert_eq!(resolve_locale("pt"), "en");
        assert_eq!(resolve_locale(""), "en");

        let (austrian, used) = builtin(TemplateKind::FirmReminder, "de-AT");
        assert_eq!(used, "de");
        assert_eq!(austrian, builtin(TemplateKind::FirmReminder, "de").0);
        let (portuguese, used) = builtin(TemplateKind::FirmReminder, "pt-BR");
        assert_eq!(used, "en");
        assert_eq!(portuguese, builtin(TemplateKind::FirmReminder, "en").0);
    }

    #[test]
    fn german_formatting_in_templates() {
        let mut context = sample_context("de");
        context.locale = "de-AT".to_string();
        let (source, _) = builtin(TemplateKind::FirmReminder, "de-AT");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert!(email.text_body.contains("fällig am 30. September 2026"));
        assert!(email.text_body.contains("1.250,00\u{a0}€"));
        assert!(
            email
                .text_body
                .contains("Offener Gesamtbetrag (EUR): 1.400,50\u{a0}€")
        );
        assert!(email.text_body.contains("89,90\u{a0}$"));
        assert!(email.html_body.contains("15. Oktober 2026"));
    }

    #[test]
    fn filters_follow_the_context_locale() {
        let source = TemplateSource {
            subject: "{{ '1250.5'|money('EUR') }} {{ '2026-10-31'|date }}".to_string(),
            text_body: "{{ 12|money('USD') }}".to_string(),
            html_body: "{{ locale }}".to_string(),
        };
        let mut context = sample_context("fr");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(email.subject, "1\u{202f}250,5\u{a0}€ 31 octobre 2026");
        assert_eq!(email.text_body, "12\u{a0}$");
        assert_eq!(email.html_body, "fr");
        context.locale = "en".to_string();
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(email.subject, "€1,250.5 31 October 2026");
    }

    #[test]
    fn unclosed_block_is_reported_with_part_and_line() {
        let source = override_with_text(
            "Dear {{ customer.name }},\n\n{% if payment_link %}\nPay here: {{ payment_link }}\n",
        );
        let err = validate(&source).err();
        let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
        assert_eq!(err.part, "text_body");
        assert!(err.message.contains("syntax error"), "{err}");

        // An unclosed block is reported where the input ends: here on line 3.
        let source = override_with_text(
            "Hello {{ customer.name }},\n\n{% if payment_link %}Pay: {{ payment_link }}",
        );
        let err = validate(&source).err();
        let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
        assert_eq!((err.part, err.line), ("text_body", 3));
        assert!(err.message.contains("expected end of block"), "{err}");

        let source = override_with_text("Hello\n\n{% if %}\nnever closed");
        let err = validate(&source).err();
        let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
        assert_eq!(err.part, "text_body");
        assert_eq!(err.line, 3);
        assert!(err.message.starts_with("syntax error"), "{err}");
        assert!(
            err.to_string()
                .starts_with("text_body line 3: syntax error"),
            "{err}"
        );
    }

    #[test]
    fn errors_in_subject_and_html_name_their_part() {
        let (mut source, _) = builtin(TemplateKind::FinalNotice, "fr");
        source.subject = "Rappel {{ customer.name ".to_string();
        let err = validate(&source)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((err.part, err.line), ("subject", 1));

        let (mut source, _) = builtin(TemplateKind::FinalNotice, "fr");
        source.html_body = "<p>\n{{ customer.name|no_such_filter }}\n</p>".to_string();
        let err = validate(&source)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((err.part, err.line), ("html_body", 2));
        assert!(err.message.contains("unknown filter"), "{err}");
    }

    #[test]
    fn undefined_variables_are_rejected_when_printed() {
        // A misspelt variable is caught at save time ...
        let err = validate(&override_with_text("Dear {{ custmer.name }},"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((err.part, err.line), ("text_body", 1));
        let err = validate(&override_with_text("Hi\n{{ customer.nmae }}"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((err.part, err.line), ("text_body", 2));
        assert!(err.message.contains("undefined"), "{err}");
        let err = validate(&override_with_text("{{ customer.nmae|date }}"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.part, "text_body");
        let err = validate(&override_with_text("{{ invoices[0].amount|money('EUR') }}"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(err.message.contains("undefined"), "{err}");
        // ... but testing an undefined value, or giving it a default, is fine.
        let lenient = override_with_text(
            "{% if customer.phone %}Call {{ customer.phone }}{% endif %}{{ customer.fax|default('-') }}",
        );
        assert_eq!(validate(&lenient), Ok(()));
        let email = render(&lenient, &sample_context("en")).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(email.text_body, "-");
    }

    #[test]
    fn empty_subject_and_oversized_parts_are_rejected() {
        let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
        source.subject = "{% if false %}x{% endif %}\n".to_string();
        let err = validate(&source)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.part, "subject");

        let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
        source.html_body = "x".repeat(MAX_TEMPLATE_PART_BYTES + 1);
        let err = validate(&source)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.part, "html_body");
    }

    #[test]
    fn runaway_templates_fail_instead_of_hanging() {
        let source = override_with_text(
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
        );
        let err = render(&source, &sample_context("en")).err();
        let err = err.unwrap_or_else(|| panic!("the runaway template rendered"));
        assert_eq!(err.part, "text_body");
        assert!(err.message.contains("fuel"), "{err}");
    }

    #[test]
    fn many_invoices_fit_the_render_budget() {
        let mut context = sample_context("de");
        let invoice = context.invoices[0].clone();
        context.invoices = (0..500)
            .map(|index| InvoiceVars {
                number: format!("INV-{index:05}"),
                ..invoice.clone()
            })
            .collect();
        for kind in TemplateKind::ALL {
            let (source, _) = builtin(kind, "de");
            let email = render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"));
            assert!(email.html_body.contains("INV-00499"), "{kind}");
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let mut context = sample_context("en");
        context.customer.name = "<script>alert('x')</script> & Co".to_string();
        context.invoices[0].number = "<b>INV</b>".to_string();
        for kind in TemplateKind::ALL {
            let (source, _) = builtin(kind, "en");
            let email = render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"));
            assert!(!email.html_body.contains("<script>"), "{kind}");
            assert!(!email.html_body.contains("<b>INV"), "{kind}");
            assert!(email.html_body.contains("&lt;script&gt;"), "{kind}");
            assert!(email.html_body.contains("&amp; Co"), "{kind}");
            assert!(email.text_body.contains("<b>INV</b>"), "{kind}");
        }
        let (source, _) = builtin(TemplateKind::SalesNotification, "en");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert!(email.subject.contains("<script>alert('x')</script> & Co"));
        assert!(email.text_body.contains("<script>alert('x')</script> & Co"));
    }

    #[test]
    fn subject_is_collapsed_to_one_line() {
        let source = TemplateSource {
            subject: "  Reminder\n{{ customer.name }}\r\n\tfor {{ '5'|money('EUR') }}  \n"
                .to_string(),
            text_body: String::new(),
            html_body: String::new(),
        };
        let mut context = sample_context("de");
        context.customer.name = "Evil\r\nBcc: someone@example.com".to_string();
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            email.subject,
            "Reminder Evil Bcc: someone@example.com for 5\u{a0}€"
        );
    }

    #[test]
    fn includes_find_nothing() {
        let err = validate(&override_with_text("{% include 'secret' %}"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.part, "text_body");
    }
}
