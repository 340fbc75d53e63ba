//! The variables a template sees, documented for template authors, and sample values used to
//! validate templates.

use serde::Serialize;

use super::format::language;

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
/// | `charges` | Late fees and interest the dunning process booked so far, oldest first (empty outside a process). Each has: |
/// | `charge.kind` | `fee` or `interest`. |
/// | `charge.invoice_external_id` | The invoice it was booked on. |
/// | `charge.currency_code` | ISO 4217 code. |
/// | `charge.amount` | Decimal string. |
/// | `totals_with_charges` | Like `totals`, plus the booked `charges`: what the customer owes with fees and interest. |
/// | `payment_link` | URL where the customer can pay; may be empty (test it with `{% if payment_link %}`). |
/// | `sales_rep_email` | The customer's sales rep; may be empty. |
/// | `history` | The dunning steps taken so far, oldest first (used by the agency hand-over and the sales notification; may be empty). Each has: |
/// | `entry.date` | When the step ran, `YYYY-MM-DD`. |
/// | `entry.description` | What was done, e.g. "Friendly reminder sent to billing@example.com". |
/// | `note` | The operator's note given with the command that sent the email (an escalation, "inform sales"); may be empty. |
/// | `instalments` | The process's payment plan, in date order (empty without one). Each has: |
/// | `instalment.number` | 1-based position in the plan (an integer). |
/// | `instalment.date` | The date it is to be paid by, `YYYY-MM-DD`. |
/// | `instalment.currency_code` | ISO 4217 code. |
/// | `instalment.amount` | Decimal string. |
/// | `instalment.state` | `pending`, `met`, `missed` or `dropped` (the plan ended before it was due). |
/// | `instalment` | The instalment the email is about (an instalment reminder's), with the fields above; empty strings and number 0 otherwise. |
/// | `locale` | The locale the email is rendered for, e.g. `de` (the HTML built-ins put it in `<html lang>`). |
///
/// # Filters
///
/// * `amount|money(currency_code)` formats a decimal amount for the email's locale:
///   `{{ invoice.amount_due|money(invoice.currency_code) }}` gives `€1,250.00` in English,
///   `1.250,00 €` in German and `1 250,00 €` in French (see [`format_money`](super::format::format_money)).
/// * `yyyy_mm_dd|date` formats a date for the locale: `31 October 2026`, `31. Oktober 2026`,
///   `31 octobre 2026` (see [`format_date`](super::format::format_date)).
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
///   [`validate`](super::templates::validate) instead of sending an email with a blank); **testing** one is allowed and false
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
    /// Fees and interest booked by the dunning process so far.
    pub charges: Vec<ChargeVars>,
    /// `totals` plus `charges`, per currency.
    pub totals_with_charges: Vec<AmountVars>,
    /// Where to pay; empty when there is none.
    pub payment_link: String,
    /// The customer's sales rep; empty when there is none.
    pub sales_rep_email: String,
    /// The dunning steps taken so far, oldest first.
    pub history: Vec<HistoryVars>,
    /// The operator's note with the command that sent the email; empty when there is none.
    pub note: String,
    /// The process's payment plan; empty without one.
    pub instalments: Vec<InstalmentVars>,
    /// The instalment the email is about; empty outside an instalment reminder.
    pub instalment: InstalmentVars,
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

/// One entry of `charges` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChargeVars {
    /// `fee` or `interest`.
    pub kind: String,
    pub invoice_external_id: String,
    pub currency_code: String,
    /// Decimal string.
    pub amount: String,
}

/// One entry of `instalments` in templates, and `instalment`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstalmentVars {
    /// 1-based position in the plan; 0 when there is no instalment.
    pub number: i64,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// ISO 4217 currency code.
    pub currency_code: String,
    /// Decimal string.
    pub amount: String,
    /// `pending`, `met`, `missed` or `dropped`.
    pub state: String,
}

/// One entry of `history` in templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryVars {
    /// When the step ran, `YYYY-MM-DD`.
    pub date: String,
    /// What was done.
    pub description: String,
}

/// A realistic context with every variable filled in: two EUR invoices and one USD invoice, a
/// payment link, a sales rep and a dunning history. Used by [`validate`](super::templates::validate); handy for previews.
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
        charges: vec![ChargeVars {
            kind: "fee".into(),
            invoice_external_id: "inv_1042".into(),
            currency_code: "EUR".into(),
            amount: "40.00".into(),
        }],
        totals_with_charges: vec![
            AmountVars {
                currency_code: "EUR".to_string(),
                amount: "1440.50".to_string(),
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
        note: "Customer promised by phone to pay on Friday; please follow up.".to_string(),
        instalments: vec![
            InstalmentVars {
                number: 1,
                date: "2026-11-15".to_string(),
                currency_code: "EUR".to_string(),
                amount: "700.00".to_string(),
                state: "met".to_string(),
            },
            InstalmentVars {
                number: 2,
                date: "2026-12-15".to_string(),
                currency_code: "EUR".to_string(),
                amount: "700.50".to_string(),
                state: "pending".to_string(),
            },
        ],
        instalment: InstalmentVars {
            number: 2,
            date: "2026-12-15".to_string(),
            currency_code: "EUR".to_string(),
            amount: "700.50".to_string(),
            state: "pending".to_string(),
        },
        locale: language(locale).to_string(),
    }
}

/// A context with one invoice and every optional value empty.
pub(crate) fn minimal_sample_context() -> EmailContext {
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
        charges: Vec::new(),
        totals_with_charges: Vec::new(),
        payment_link: String::new(),
        sales_rep_email: String::new(),
        history: Vec::new(),
        note: String::new(),
        instalments: Vec::new(),
        instalment: InstalmentVars::default(),
        locale: "en".to_string(),
    }
}
