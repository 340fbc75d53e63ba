//! Composing an email: the template (the organization's override or the built-in one) for the
//! customer's locale, the context it renders with (customer, invoices, amounts, charges,
//! history, payment plan), and its recipients. `outbox` queues what this composes.

use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::lookup::load_live_customer;
use crate::domain::customer::Customer;
use crate::domain::invoice::Invoice;
use crate::domain::money::Currency;
use crate::domain::money::Money;
use crate::domain::notification::Attachment;
use crate::domain::notification::Recipients;
use crate::domain::organization::Organization;
use crate::domain::policy::Policy;
use crate::domain::process::payment_plan::InstalmentState;
use crate::domain::process::state::Charge;
use crate::domain::process::state::Process;
use crate::domain::process::state::StepRun;
use crate::domain::process::statement::history_lines;
use crate::domain::query::InvoiceFilter;
use crate::domain::template::Audience;
use crate::error::Error;
use crate::error::Reason;
use crate::notify::templates;
use crate::notify::templates::AmountVars;
use crate::notify::templates::ChargeVars;
use crate::notify::templates::CompiledTemplate;
use crate::notify::templates::CustomerVars;
use crate::notify::templates::EmailContext;
use crate::notify::templates::HistoryVars;
use crate::notify::templates::InstalmentVars;
use crate::notify::templates::InvoiceVars;
use crate::notify::templates::OrganizationVars;
use crate::notify::templates::RenderedEmail;
use crate::notify::templates::TemplateError;
use crate::notify::templates::TemplateKind;
use crate::notify::templates::TemplateSource;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What an email is about.
#[derive(Debug, Clone)]
pub struct EmailRequest {
    pub kind: TemplateKind,
    pub customer: CustomerRef,
    /// External ids of the customer's invoices to list; empty = its overdue invoices in
    /// `currency`.
    pub invoice_external_ids: Vec<String>,
    pub currency: Option<Currency>,
    /// Render in this locale instead of the customer's.
    pub locale: Option<String>,
    pub payment_link: String,
    pub process_id: Option<Uuid>,
    pub payment_request_id: Option<Uuid>,
    /// Extra BCC addresses (a policy's list).
    pub extra_bcc: Vec<String>,
    /// Where emails of the collection agency audience go (the policy's agency address).
    pub collection_agency_email: String,
    /// Fees and interest the dunning process booked so far (shown with the total).
    pub charges: Vec<BookedCharge>,
    /// Files to send with the email.
    pub attachments: Vec<Attachment>,
    /// The dunning steps taken so far (hand-over and sales emails), oldest first.
    pub history: Vec<HistoryEntry>,
    /// The operator's note with the command that sends the email.
    pub note: String,
    /// The process's payment plan (an instalment reminder shows it).
    pub payment_plan: Option<PlanLines>,
}

impl EmailRequest {
    /// An email of `kind` to `customer` about its overdue invoices, in its locale, with
    /// nothing else (no link, process, extra recipients, attachments or note).
    pub fn new(kind: TemplateKind, customer: CustomerRef) -> Self {
        Self {
            kind,
            customer,
            invoice_external_ids: Vec::new(),
            currency: None,
            locale: None,
            payment_link: String::new(),
            process_id: None,
            payment_request_id: None,
            extra_bcc: Vec::new(),
            collection_agency_email: String::new(),
            charges: Vec::new(),
            attachments: Vec::new(),
            history: Vec::new(),
            note: String::new(),
            payment_plan: None,
        }
    }
}

/// A payment plan as an email shows it: its instalments, and the one the email is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLines {
    pub instalments: Vec<InstalmentLine>,
    /// Index of the instalment the email is about (a reminder's).
    pub current: Option<usize>,
}

/// One instalment an email lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalmentLine {
    pub date: chrono::NaiveDate,
    pub amount: Money,
    pub state: crate::domain::process::payment_plan::InstalmentState,
}

impl PlanLines {
    /// The lines of `plan`, in the process's `currency`, about instalment `current`.
    pub fn of(
        plan: &crate::domain::process::payment_plan::PaymentPlan,
        currency: Currency,
        current: Option<usize>,
    ) -> Self {
        Self {
            instalments: plan
                .instalments
                .iter()
                .map(|i| InstalmentLine {
                    date: i.date,
                    amount: Money::new(currency, i.amount_minor),
                    state: i.state,
                })
                .collect(),
            current,
        }
    }
}

/// One line of the dunning history an email shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub date: chrono::NaiveDate,
    pub description: String,
}

/// A fee or interest amount an email lists.
#[derive(Debug, Clone)]
pub struct BookedCharge {
    pub kind: crate::domain::process::state::ChargeKind,
    pub invoice_external_id: String,
    pub amount: Money,
}

/// An email as it would be sent.
#[derive(Debug, Clone)]
pub struct ComposedEmail {
    pub rendered: RenderedEmail,
    pub recipients: Recipients,
    pub locale: String,
    pub customer: Customer,
    pub invoices: Vec<Invoice>,
    pub organization: Organization,
    /// Whether an organization's override was used instead of the built-in template.
    pub overridden: bool,
}

/// Template sources already looked up, by organization, kind and requested locale: (source,
/// locale used, whether it is the organization's override).
pub(crate) type TemplateCache = std::collections::HashMap<(Uuid, TemplateKind, String), Template>;

/// A template ready to render: parsed, the locale it was found for, and whether it is the
/// organization's own.
pub(crate) type Template = (Arc<CompiledTemplate>, String, bool);

/// The template for kind and locale (see `template_for`), parsed; one that does not parse
/// fails like one that does not render.
pub(crate) async fn compiled_template_for<C: Connection>(
    conn: &Conn<C>,
    organization_id: Uuid,
    kind: TemplateKind,
    locale: &str,
) -> Result<Template, Error> {
    let (source, used_locale, overridden) =
        template_for(conn, organization_id, kind, locale).await?;
    let compiled =
        CompiledTemplate::new(&source, &used_locale).map_err(|e| render_failed(kind, &e))?;
    Ok((Arc::new(compiled), used_locale, overridden))
}

pub(crate) fn render_failed(kind: TemplateKind, e: &TemplateError) -> Error {
    Error::precondition(
        Reason::TemplateRenderFailed,
        format!("the {} template does not render: {e}", kind.as_str()),
    )
}

/// The template to use: the organization's override for the exact locale, then for its
/// language, then the built-in one.
pub(crate) async fn template_for<C: Connection>(
    conn: &Conn<C>,
    organization_id: Uuid,
    kind: TemplateKind,
    locale: &str,
) -> Result<(TemplateSource, String, bool), Error> {
    let language = locale.split('-').next().unwrap_or(locale);
    for candidate in [locale, language] {
        if let Some(t) = conn
            .find_template(organization_id, kind.as_str(), candidate)
            .await?
        {
            let source = TemplateSource {
                subject: t.subject,
                text_body: t.text_body,
                html_body: t.html_body,
            };
            return Ok((source, candidate.to_owned(), true));
        }
    }
    let (source, used) = templates::builtin(kind, locale);
    Ok((source, used.to_owned(), false))
}

/// `instalments` of a template: the payment plan's, numbered from 1.
pub(crate) fn instalment_vars(request: &EmailRequest) -> Vec<InstalmentVars> {
    let Some(plan) = &request.payment_plan else {
        return Vec::new();
    };
    plan.instalments
        .iter()
        .enumerate()
        .map(|(i, line)| InstalmentVars {
            number: i as i64 + 1,
            date: line.date.to_string(),
            currency_code: line.amount.currency().code().to_owned(),
            amount: line.amount.to_string(),
            state: line.state.as_str().to_lowercase(),
        })
        .collect()
}

pub(crate) fn email_context(
    org: &Organization,
    customer: &Customer,
    invoices: &[Invoice],
    request: &EmailRequest,
    locale: &str,
    now: DateTime<Utc>,
) -> Result<EmailContext, Error> {
    let mut totals: BTreeMap<Currency, Money> = BTreeMap::new();
    for i in invoices {
        let total = totals.entry(i.currency).or_insert(Money::zero(i.currency));
        *total = total.checked_add(i.amount_due())?;
    }
    let mut with_charges = totals.clone();
    for c in &request.charges {
        let currency = c.amount.currency();
        let total = with_charges
            .entry(currency)
            .or_insert(Money::zero(currency));
        *total = total.checked_add(c.amount)?;
    }
    let amounts = |totals: &BTreeMap<Currency, Money>| {
        totals
            .values()
            .map(|total| AmountVars {
                currency_code: total.currency().code().to_owned(),
                amount: total.to_string(),
            })
            .collect::<Vec<_>>()
    };
    Ok(EmailContext {
        organization: OrganizationVars {
            name: org.settings.name.clone(),
            from_email: org.settings.sender.from_email.clone(),
            reply_to_email: org.settings.sender.reply_to_email.clone(),
        },
        customer: CustomerVars {
            name: customer.details.name.clone(),
            external_id: customer.external_id.clone(),
            email: customer.details.email.clone(),
        },
        invoices: invoices
            .iter()
            .map(|i| InvoiceVars {
                number: i.number.clone(),
                external_id: i.external_id.clone(),
                issue_date: i.issue_date.to_string(),
                due_date: i.due_date.to_string(),
                currency_code: i.currency.code().to_owned(),
                total_amount: i.currency.format(i.total_minor),
                amount_due: i.currency.format(i.amount_due_minor()),
                days_overdue: i.days_overdue(now, customer.details.timezone),
            })
            .collect(),
        totals: amounts(&totals),
        charges: request
            .charges
            .iter()
            .map(|c| ChargeVars {
                kind: c.kind.as_str().to_lowercase(),
                invoice_external_id: c.invoice_external_id.clone(),
                currency_code: c.amount.currency().code().to_owned(),
                amount: c.amount.to_string(),
            })
            .collect(),
        totals_with_charges: amounts(&with_charges),
        payment_link: request.payment_link.clone(),
        sales_rep_email: customer.details.sales_rep_email.clone(),
        history: request
            .history
            .iter()
            .map(|h| HistoryVars {
                date: h.date.to_string(),
                description: h.description.clone(),
            })
            .collect(),
        note: request.note.clone(),
        instalments: instalment_vars(request),
        instalment: request
            .payment_plan
            .as_ref()
            .and_then(|plan| plan.current)
            .and_then(|current| instalment_vars(request).into_iter().nth(current))
            .unwrap_or_default(),
        locale: locale.to_owned(),
    })
}

impl Core {
    /// Renders an email for a customer exactly as it would be sent.
    pub(crate) async fn compose<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<ComposedEmail, Error> {
        let org = crate::core::lookup::load_organization(conn, caller).await?;
        let customer = load_live_customer(conn, caller, &request.customer).await?;
        let mut invoices = if request.invoice_external_ids.is_empty() {
            let filter = InvoiceFilter {
                customer_id: Some(customer.id),
                overdue_only: true,
                currency_code: request.currency.map(|c| c.code().to_owned()),
                ..Default::default()
            };
            conn.list_invoices(caller.organization_id, &filter, self.now(), None, 1000)
                .await?
        } else {
            conn.find_invoices_by_external_ids(
                caller.organization_id,
                &request.invoice_external_ids,
                false,
            )
            .await?
        };
        invoices.retain(|i| i.customer_id == customer.id);
        if let Some(missing) = request
            .invoice_external_ids
            .iter()
            .find(|ext| !invoices.iter().any(|i| &&i.external_id == ext))
        {
            return Err(Error::not_found(
                Reason::InvoiceNotFound,
                format!(
                    "customer `{}` has no invoice `{missing}`",
                    customer.external_id
                ),
            ));
        }
        self.compose_from(conn, caller, request, org, customer, invoices, None)
            .await
    }

    /// Renders an email from what the caller already read (the engine has the organization,
    /// customer and invoices of a step at hand); `templates` keeps the template sources a
    /// batch of emails looked up.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn compose_from<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
        org: Organization,
        customer: Customer,
        mut invoices: Vec<Invoice>,
        templates: Option<&mut TemplateCache>,
    ) -> Result<ComposedEmail, Error> {
        invoices.sort_by(|a, b| {
            a.due_date
                .cmp(&b.due_date)
                .then(a.external_id.cmp(&b.external_id))
        });
        let locale = request
            .locale
            .clone()
            .unwrap_or_else(|| customer.details.locale.clone());
        let key = (caller.organization_id, request.kind, locale.clone());
        let (template, used_locale, overridden) = match templates {
            Some(cache) => match cache.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let found =
                        compiled_template_for(conn, caller.organization_id, request.kind, &locale)
                            .await?;
                    cache.insert(key, found.clone());
                    found
                }
            },
            None => {
                compiled_template_for(conn, caller.organization_id, request.kind, &locale).await?
            }
        };
        let context = email_context(
            &org,
            &customer,
            &invoices,
            request,
            &used_locale,
            self.now(),
        )?;
        let rendered = template
            .render(&context)
            .map_err(|e| render_failed(request.kind, &e))?;
        let d = &customer.details;
        let only = |address: &str| {
            [address.to_owned()]
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
        };
        let recipients = match request.kind.audience() {
            Audience::Customer => Recipients::new(
                &only(&d.email),
                &d.cc_emails,
                &[&d.bcc_emails, &request.extra_bcc],
            ),
            Audience::SalesRep => {
                Recipients::new(&only(&d.sales_rep_email), &[], &[&request.extra_bcc])
            }
            Audience::CollectionAgency => Recipients::new(
                &only(&request.collection_agency_email),
                &[],
                &[&request.extra_bcc],
            ),
        };
        Ok(ComposedEmail {
            rendered,
            recipients,
            locale: used_locale,
            customer,
            invoices,
            organization: org,
            overridden,
        })
    }
}

/// An email of `kind` a process sends about `dunned`, with its policy's BCC list and agency
/// address and the charges booked so far: what a step queues and a preview renders.
pub(crate) fn process_email(
    p: &Process,
    policy: &Policy,
    kind: TemplateKind,
    dunned: &[Invoice],
    booked: &[Charge],
) -> EmailRequest {
    // An instalment reminder is about the next instalment unless told otherwise.
    let reminded = p
        .payment_plan
        .as_ref()
        .filter(|plan| plan.is_active())
        .and_then(|plan| {
            plan.instalments
                .iter()
                .position(|i| i.state == InstalmentState::Pending)
                .filter(|_| kind == TemplateKind::InstalmentReminder)
        });
    EmailRequest {
        invoice_external_ids: dunned.iter().map(|i| i.external_id.clone()).collect(),
        currency: Some(p.currency),
        process_id: Some(p.id),
        extra_bcc: policy.definition.bcc_emails.clone(),
        collection_agency_email: policy.definition.collection_agency_email.clone(),
        charges: booked
            .iter()
            .map(|c| BookedCharge {
                kind: c.kind,
                invoice_external_id: c.invoice_external_id.clone(),
                amount: Money::new(c.currency, c.amount_minor),
            })
            .collect(),
        payment_plan: p
            .payment_plan
            .as_ref()
            .map(|plan| PlanLines::of(plan, p.currency, reminded)),
        ..EmailRequest::new(kind, CustomerRef::Id(p.customer_id))
    }
}

/// Whether emails of `kind` show the dunning history (the hand-over, the note to sales).
pub(crate) fn shows_history(kind: TemplateKind) -> bool {
    matches!(
        kind,
        TemplateKind::CollectionAgencyHandover | TemplateKind::SalesNotification
    )
}

/// The history lines an email shows for these step runs, dated in `tz`.
pub(crate) fn history_entries(history: &[StepRun], tz: chrono_tz::Tz) -> Vec<HistoryEntry> {
    history_lines(history, tz)
        .into_iter()
        .map(|(date, description)| HistoryEntry { date, description })
        .collect()
}
