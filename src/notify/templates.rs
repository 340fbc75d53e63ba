//! Email templates for dunning notifications, rendered with minijinja.
//!
//! A template has three parts: a subject, a plain-text body and an HTML body
//! ([`TemplateSource`]). The service ships built-in templates for every [`TemplateKind`] in
//! English, German and French ([`builtin`]); an organization can override any kind per locale
//! with its own source, which is checked with [`validate`] when it is saved. [`render`] turns a
//! source and an [`EmailContext`] into a [`RenderedEmail`].
//!
//! The variables and filters templates can use are documented on [`EmailContext`].

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use super::context::minimal_sample_context;
pub use super::context::{
    AmountVars, ChargeVars, CustomerVars, EmailContext, HistoryVars, InstalmentVars, InvoiceVars,
    OrganizationVars, sample_context,
};
use super::format::{format_date, format_money, language};

pub use crate::domain::template::TemplateKind;

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
        InstalmentReminder => "instalment_reminder",
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
pub fn render(
    source: &TemplateSource,
    context: &EmailContext,
) -> Result<RenderedEmail, TemplateError> {
    CompiledTemplate::new(source, &context.locale)?.render(context)
}

/// A template parsed once for a locale and rendered many times (the emails of a batch of
/// dunning steps share one).
pub struct CompiledTemplate {
    env: Environment<'static>,
}

impl CompiledTemplate {
    /// Parses the three parts; the error names the part and line.
    pub fn new(source: &TemplateSource, locale: &str) -> Result<Self, TemplateError> {
        let mut env = environment(resolve_locale(locale));
        for (part, text) in parts(source) {
            env.add_template_owned(part, text.to_owned())
                .map_err(|err| template_error(part, &err))?;
        }
        Ok(Self { env })
    }

    /// Renders for `context` (whose locale should be the one compiled for: amounts and
    /// dates are formatted for that one).
    pub fn render(&self, context: &EmailContext) -> Result<RenderedEmail, TemplateError> {
        let value = Value::from(Serde(context));
        let part = |name: &'static str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&value))
                .map_err(|err| template_error(name, &err))
        };
        Ok(RenderedEmail {
            subject: single_line(&part(SUBJECT)?),
            text_body: part(TEXT_BODY)?,
            html_body: part(HTML_BODY)?,
        })
    }
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

#[cfg(test)]
mod tests;
