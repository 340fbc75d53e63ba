//! Notifications: composing an email (template, locale, recipients, quiet hours), queueing it in
//! the outbox in the caller's transaction, delivering due ones, and template overrides.

use super::customers::load_customer;
use super::paging::PageRequest;
use super::{Caller, Core, CustomerRef, Jobs, Services};
use crate::domain::customer::Customer;
use crate::domain::event::{EventPayload, EventType, NewEvent};
use crate::domain::invoice::Invoice;
use crate::domain::money::{Currency, Money};
use crate::domain::notification::StoredTemplate;
use crate::domain::notification::{
    Attachment, MAX_ATTEMPTS, Notification, NotificationState, Recipients, message_id,
    next_send_time, retry_delay,
};
use crate::domain::organization::Organization;
use crate::domain::query::{InvoiceFilter, NotificationFilter};
use crate::domain::template::Audience;
use crate::error::Error;
use crate::notify::templates::{
    self, AmountVars, ChargeVars, CompiledTemplate, CustomerVars, EmailContext, HistoryVars,
    InstalmentVars, InvoiceVars, OrganizationVars, RenderedEmail, TemplateError, TemplateKind,
    TemplateSource,
};
use crate::notify::transport::{Mailer, SendError};
use crate::storage::{Conn, Connection};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Notifications claimed per delivery round.
const DELIVERY_BATCH: u64 = 200;

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

fn template_not_found(kind: TemplateKind, locale: &str) -> Error {
    Error::not_found(
        "TEMPLATE_OVERRIDE_NOT_FOUND",
        format!("no override of {} for locale {locale}", kind.as_str()),
    )
}

fn notification_event(event_type: EventType, n: &Notification, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_type,
        occurred_at: at,
        customer_id: Some(n.customer_id),
        customer_external_id: n.customer_external_id.clone(),
        invoice_id: None,
        invoice_external_id: String::new(),
        process_id: n.process_id,
        payload: EventPayload::Notification {
            notification_id: n.id.to_string(),
            template_kind: n.kind.clone(),
            state: n.state.as_str().to_owned(),
            message_id: n.message_id.clone(),
            attempts: n.attempts,
            error: n.last_error.clone(),
            suppressed_reason: n.suppressed_reason.clone(),
            payment_request_id: n
                .payment_request_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        },
    }
}

/// Template sources already looked up, by organization, kind and requested locale: (source,
/// locale used, whether it is the organization's override).
pub(crate) type TemplateCache = std::collections::HashMap<(Uuid, TemplateKind, String), Template>;

/// A template ready to render: parsed, the locale it was found for, and whether it is the
/// organization's own.
type Template = (Arc<CompiledTemplate>, String, bool);

/// The template for kind and locale (see `template_for`), parsed; one that does not parse
/// fails like one that does not render.
async fn compiled_template_for<C: Connection>(
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

fn render_failed(kind: TemplateKind, e: &TemplateError) -> Error {
    Error::precondition(
        "TEMPLATE_RENDER_FAILED",
        format!("the {} template does not render: {e}", kind.as_str()),
    )
}

/// The template to use: the organization's override for the exact locale, then for its
/// language, then the built-in one.
async fn template_for<C: Connection>(
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
fn instalment_vars(request: &EmailRequest) -> Vec<InstalmentVars> {
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

fn email_context(
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
    async fn compose<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<ComposedEmail, Error> {
        let org = super::organizations::load_organization(conn, caller).await?;
        let customer = load_customer(conn, caller, &request.customer).await?;
        if customer.is_deleted() {
            return Err(Error::precondition(
                "CUSTOMER_DELETED",
                format!("customer `{}` was deleted", customer.external_id),
            ));
        }
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
                "INVOICE_NOT_FOUND",
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

    /// Puts an email in the outbox in the caller's transaction: QUEUED for the next moment
    /// inside the customer's sending window, or SUPPRESSED (with an event) when there is nobody
    /// to send it to.
    pub(crate) async fn queue_email<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<Notification, Error> {
        let composed = self.compose(conn, caller, request).await?;
        self.queue_composed(conn, caller, request, composed).await
    }

    /// Puts a composed email in the outbox in the caller's transaction (see `queue_email`).
    pub(crate) async fn queue_composed<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
        composed: ComposedEmail,
    ) -> Result<Notification, Error> {
        let (n, events) = self.outbox_row(caller, request, composed);
        conn.insert_notification(&n).await?;
        conn.append_events(caller.organization_id, &events).await?;
        conn.wake_after_commit(&self.wake.outbox);
        Ok(n)
    }

    /// The outbox row of a composed email, and the event of its suppression when there is
    /// nobody to send it to; writing them (and waking the outbox after commit) is the
    /// caller's (the engine writes a batch's rows in one statement).
    pub(crate) fn outbox_row(
        &self,
        caller: Caller,
        request: &EmailRequest,
        composed: ComposedEmail,
    ) -> (Notification, Vec<NewEvent>) {
        let org = &composed.organization;
        let now = self.now();
        let id = Uuid::now_v7();
        let mut n = Notification {
            id,
            organization_id: caller.organization_id,
            customer_id: composed.customer.id,
            customer_external_id: composed.customer.external_id.clone(),
            process_id: request.process_id,
            payment_request_id: request.payment_request_id,
            invoice_external_ids: composed
                .invoices
                .iter()
                .map(|i| i.external_id.clone())
                .collect(),
            kind: request.kind.as_str().to_owned(),
            state: NotificationState::Queued,
            locale: composed.locale.clone(),
            from_name: org.settings.sender.from_name.clone(),
            from_email: org.settings.sender.from_email.clone(),
            reply_to_email: org.settings.sender.reply_to_email.clone(),
            recipients: composed.recipients.clone(),
            subject: composed.rendered.subject.clone(),
            text_body: composed.rendered.text_body.clone(),
            html_body: composed.rendered.html_body.clone(),
            attachments: request.attachments.clone(),
            message_id: message_id(id, &org.settings.sender.from_email),
            attempts: 0,
            last_error: String::new(),
            suppressed_reason: String::new(),
            server_response: String::new(),
            next_attempt_at: Some(next_send_time(
                now,
                composed.customer.details.timezone,
                &org.settings.quiet_hours,
            )),
            sent_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut events = Vec::new();
        if n.recipients.to.is_empty() {
            n.state = NotificationState::Suppressed;
            n.next_attempt_at = None;
            n.suppressed_reason = match request.kind.audience() {
                Audience::Customer => "the customer has no email address".into(),
                Audience::SalesRep => "the customer has no sales rep email".into(),
                Audience::CollectionAgency => "the policy has no collection agency email".into(),
            };
            events.push(notification_event(
                EventType::NotificationSuppressed,
                &n,
                now,
            ));
        }
        (n, events)
    }

    /// Wakes the outbox worker once the caller's transaction commits (after writing rows
    /// from `outbox_row`).
    pub(crate) fn wake_outbox_after_commit<C: Connection>(&self, conn: &Conn<C>) {
        conn.wake_after_commit(&self.wake.outbox);
    }

    /// A deleted customer's notifications: queued ones are suppressed (with their events,
    /// returned for the caller's transaction) and all lose recipients and content.
    pub(crate) async fn forget_notifications<C: Connection>(
        &self,
        conn: &Conn<C>,
        customer: &Customer,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        let mut events = Vec::new();
        for mut n in conn
            .notifications_of_customer(customer.organization_id, customer.id)
            .await?
        {
            if n.state == NotificationState::Queued {
                n.suppress("the customer was deleted", now);
                events.push(notification_event(
                    EventType::NotificationSuppressed,
                    &n,
                    now,
                ));
            }
            n.erase_personal_data(now);
            conn.update_notification(&n).await?;
        }
        Ok(events)
    }

    /// Suppresses a notification that is still waiting to be sent (what it asks for no longer
    /// holds); returns the event to append, if it was suppressed.
    pub(crate) async fn withdraw_notification<C: Connection>(
        &self,
        conn: &Conn<C>,
        id: Uuid,
        reason: &str,
    ) -> Result<Option<NewEvent>, Error> {
        let Some(mut n) = conn.find_notification(id).await? else {
            return Ok(None);
        };
        if n.state != NotificationState::Queued {
            return Ok(None);
        }
        let now = self.now();
        n.suppress(reason, now);
        conn.update_notification(&n).await?;
        Ok(Some(notification_event(
            EventType::NotificationSuppressed,
            &n,
            now,
        )))
    }
}

impl Services {
    /// What an email would look like, without sending anything.
    pub async fn preview_email(
        &self,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<ComposedEmail, Error> {
        self.compose(&self.store, caller, request).await
    }

    /// Queues an email about a customer's invoices in its own transaction.
    pub async fn send_email(
        &self,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<Notification, Error> {
        let tx = self.store.begin().await?;
        let n = self.queue_email(&tx, caller, request).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// A page of notifications, newest first.
    pub async fn list_notifications(
        &self,
        caller: Caller,
        customer: Option<CustomerRef>,
        mut filter: NotificationFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Notification>, String), Error> {
        if let Some(customer) = customer {
            filter.customer_id = Some(load_customer(&self.store, caller, &customer).await?.id);
        }
        let before = page.after_id(&filter)?;
        let rows = self
            .store
            .list_notifications(caller.organization_id, &filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &filter, |n| n.id.to_string()))
    }

    /// Stores an override after checking that it parses and renders.
    pub async fn set_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
        source: TemplateSource,
    ) -> Result<StoredTemplate, Error> {
        templates::validate(&source).map_err(|e| Error::InvalidRequest {
            reason: "TEMPLATE_INVALID",
            field: format!("template_override.{}", e.part),
            message: e.to_string(),
        })?;
        let stored = StoredTemplate {
            kind: kind.as_str().to_owned(),
            locale: locale.to_owned(),
            subject: source.subject,
            text_body: source.text_body,
            html_body: source.html_body,
            updated_at: self.now(),
        };
        self.store
            .upsert_template(caller.organization_id, &stored)
            .await?;
        Ok(stored)
    }

    pub async fn get_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
    ) -> Result<StoredTemplate, Error> {
        self.store
            .find_template(caller.organization_id, kind.as_str(), locale)
            .await?
            .ok_or_else(|| template_not_found(kind, locale))
    }

    pub async fn list_templates(
        &self,
        caller: Caller,
        kind: Option<TemplateKind>,
    ) -> Result<Vec<StoredTemplate>, Error> {
        self.store
            .list_templates(caller.organization_id, kind.map(TemplateKind::as_str))
            .await
    }

    pub async fn delete_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
    ) -> Result<(), Error> {
        if self
            .store
            .delete_template(caller.organization_id, kind.as_str(), locale)
            .await?
        {
            Ok(())
        } else {
            Err(template_not_found(kind, locale))
        }
    }
}

impl Jobs {
    /// Sends every notification whose attempt is due; returns how many attempts were made.
    /// Safe on several replicas at once: each notification is claimed before it is sent.
    /// Up to `mailer.concurrency()` messages are in flight; outcomes are recorded in batches,
    /// one transaction each.
    pub async fn deliver_due_notifications(
        &self,
        mailer: &Arc<dyn Mailer>,
    ) -> Result<usize, Error> {
        let now = self.now();
        let due = self.store.due_notifications(now, DELIVERY_BATCH).await?;
        let ids: Vec<Uuid> = due.iter().map(|n| n.id).collect();
        let won = self
            .store
            .claim_notifications(&ids, now, now + self.claim_lease)
            .await?;
        let won: std::collections::HashSet<Uuid> = won.into_iter().collect();
        let claimed: Vec<Notification> = due.into_iter().filter(|n| won.contains(&n.id)).collect();
        let attempted = claimed.len();
        let concurrency = mailer.concurrency().max(1);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut pending = claimed.into_iter();
        let mut finished = Vec::new();
        loop {
            while in_flight.len() < concurrency {
                let Some(n) = pending.next() else { break };
                let mailer = mailer.clone();
                in_flight.spawn(async move {
                    let outcome = mailer.send(&n).await;
                    (n, outcome)
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            finished.push(joined.map_err(|e| Error::Internal(format!("delivery task: {e}")))?);
            if finished.len() >= concurrency || in_flight.is_empty() {
                self.record_deliveries(std::mem::take(&mut finished))
                    .await?;
            }
        }
        self.record_deliveries(finished).await?;
        Ok(attempted)
    }

    /// Records the outcomes of attempts, with their events, in one transaction.
    async fn record_deliveries(
        &self,
        outcomes: Vec<(Notification, Result<String, SendError>)>,
    ) -> Result<(), Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut updated = Vec::with_capacity(outcomes.len());
        let mut events: Vec<(Uuid, NewEvent)> = Vec::new();
        for (mut n, outcome) in outcomes {
            n.attempts += 1;
            n.updated_at = now;
            match outcome {
                Ok(response) => {
                    n.state = NotificationState::Sent;
                    n.sent_at = Some(now);
                    n.next_attempt_at = None;
                    n.server_response = response;
                    n.last_error.clear();
                    events.push((
                        n.organization_id,
                        notification_event(EventType::NotificationSent, &n, now),
                    ));
                }
                Err(e) if e.permanent || n.attempts >= MAX_ATTEMPTS => {
                    n.state = NotificationState::Failed;
                    n.next_attempt_at = None;
                    n.last_error = e.message;
                    events.push((
                        n.organization_id,
                        notification_event(EventType::NotificationFailed, &n, now),
                    ));
                }
                Err(e) => {
                    n.last_error = e.message;
                    let retry_at = now + retry_delay(n.attempts, rand::random::<f64>());
                    n.next_attempt_at = Some(self.sending_window(&n, retry_at).await?);
                }
            }
            updated.push(n);
        }
        let tx = self.store.begin().await?;
        for n in &updated {
            tx.update_notification(n).await?;
        }
        // Events per organization, in the order the outcomes were recorded.
        let mut organizations: Vec<Uuid> = Vec::new();
        for (organization_id, _) in &events {
            if !organizations.contains(organization_id) {
                organizations.push(*organization_id);
            }
        }
        for organization_id in organizations {
            let of_org: Vec<NewEvent> = events
                .iter()
                .filter(|(o, _)| *o == organization_id)
                .map(|(_, e)| e.clone())
                .collect();
            tx.append_events(organization_id, &of_org).await?;
        }
        tx.commit().await
    }

    /// The first moment at or after `at` inside the customer's sending window.
    async fn sending_window(
        &self,
        n: &Notification,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        let owner = Caller::system(n.organization_id);
        let tz = load_customer(&self.store, owner, &CustomerRef::Id(n.customer_id))
            .await
            .map(|c| c.details.timezone)
            .unwrap_or(chrono_tz::UTC);
        let quiet = super::organizations::load_organization(&self.store, owner)
            .await?
            .settings
            .quiet_hours;
        Ok(next_send_time(at, tz, &quiet))
    }
}
