//! Payment requests: asking a customer to pay the overdue balance of some invoices, charging
//! its payment method through the organization's provider or emailing the payment link, and
//! settling the invoices when the money arrives.
//!
//! Charging at most once: a request's charge always carries the same idempotency key; the
//! request is marked PROCESSING (committed) before the provider is called, a PROCESSING
//! request can be neither superseded nor canceled, and an unknown outcome is asked again with
//! the same key. Emailing at most once: the email's id is stored on the request in the
//! transaction that queues it.

use super::customers::{load_customer, request_id_conflict};
use super::invoices::{InvoiceView, NewPayment, pay_invoice};
use super::notifications::EmailRequest;
use super::organizations::load_organization;
use super::paging::{PageRequest, fingerprint};
use super::{Caller, CustomerRef, InvoiceRef, Services};
use crate::domain::customer::Customer;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::{Invoice, InvoiceState};
use crate::domain::money::Currency;
use crate::domain::payment_request::{
    ChargeTarget, CoveredInvoice, Decline, NextAction, PaymentRequest, PaymentRequestError,
    PaymentRequestStatus, Refresh, payment_link,
};
use crate::domain::validation::FieldViolation;
use crate::error::Error;
use crate::notify::templates::TemplateKind;
use crate::payments::{ChargeOutcome, ChargeRequest, PaymentProvider, Providers};
use crate::storage::{Conn, Connection, InvoiceFilter, PaymentRequestFilter, Tx};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Most invoices one request may cover.
pub const MAX_INVOICES: usize = 1000;
/// How long a claimed request is reserved for the worker charging it; a worker that dies
/// mid-charge leaves it to be charged again (same key) after this. Well above the longest
/// payment timeout (300 s), so a live call is never duplicated.
const CHARGE_LEASE: Duration = Duration::minutes(10);
/// Requests worked on per round, and at the same time.
const WORK_BATCH: u64 = 200;
const WORK_CONCURRENCY: usize = 16;

const CREATE_OPERATION: &str = "CreatePaymentRequest";
const RESULT_OPERATION: &str = "RecordPaymentResult";

/// An invoice named in CreatePaymentRequest, with the request field that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedInvoice {
    pub key: InvoiceRef,
    pub field: String,
}

/// CreatePaymentRequest input, validated.
#[derive(Debug, Clone)]
pub struct NewPaymentRequest {
    pub customer: CustomerRef,
    pub currency: Currency,
    /// Empty = every overdue invoice of the customer in `currency`.
    pub invoices: Vec<ListedInvoice>,
    pub request_id: Option<String>,
}

/// What the payments service reports about a request's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedOutcome {
    Succeeded,
    Failed(Decline),
}

#[derive(Debug, Clone)]
pub struct PaymentResult {
    pub outcome: ReportedOutcome,
    pub provider_reference: String,
    pub request_id: Option<String>,
}

/// ListPaymentRequests filters as the caller gives them.
#[derive(Debug, Clone, Default)]
pub struct PaymentRequestQuery {
    pub customer: Option<CustomerRef>,
    pub filter: PaymentRequestFilter,
}

fn not_found(id: Uuid) -> Error {
    Error::not_found(
        "PAYMENT_REQUEST_NOT_FOUND",
        format!("no payment request with id {id}"),
    )
}

fn rule_error(err: PaymentRequestError) -> Error {
    let reason = match err {
        PaymentRequestError::ChargeInFlight(_) => "PAYMENT_IN_PROGRESS",
        PaymentRequestError::Closed { .. } => "PAYMENT_REQUEST_ALREADY_SETTLED",
    };
    Error::precondition(reason, err.to_string())
}

async fn load_request<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    id: Uuid,
    lock: bool,
) -> Result<PaymentRequest, Error> {
    conn.find_payment_request(caller.organization_id, id, lock)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Locks the request's invoices, then the request itself (the order every writer uses), and
/// returns both as they are now.
async fn lock_request(
    tx: &Tx,
    caller: Caller,
    id: Uuid,
) -> Result<(PaymentRequest, Vec<Invoice>), Error> {
    let unlocked = load_request(tx, caller, id, false).await?;
    let invoice_ids: Vec<Uuid> = unlocked.invoices.iter().map(|i| i.invoice_id).collect();
    let invoices = tx
        .find_invoices_by_ids(caller.organization_id, &invoice_ids, true)
        .await?;
    Ok((load_request(tx, caller, id, true).await?, invoices))
}

/// The event a refresh calls for, if it changed anything.
fn refresh_event(refresh: Refresh) -> Option<EventType> {
    match refresh {
        Refresh::Unchanged => None,
        Refresh::AmountChanged => Some(EventType::PaymentRequestAmountChanged),
        Refresh::Settled => Some(EventType::PaymentRequestSettled),
        Refresh::Canceled => Some(EventType::PaymentRequestCanceled),
    }
}

/// The open requests covering any of these invoices, each re-read under its row lock: a
/// request read without it could have started a charge since, and overwriting it would lose
/// that.
async fn lock_open_requests_covering<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    invoice_ids: &[Uuid],
) -> Result<Vec<PaymentRequest>, Error> {
    let mut locked = Vec::new();
    for request in conn
        .open_payment_requests_covering(caller.organization_id, invoice_ids)
        .await?
    {
        if let Some(fresh) = conn
            .find_payment_request(caller.organization_id, request.id, true)
            .await?
            && fresh.status.is_open()
        {
            locked.push(fresh);
        }
    }
    Ok(locked)
}

impl Services {
    /// Creates a payment request for some of a customer's overdue invoices in one currency
    /// (all of them when none are listed), superseding open requests that cover any of them.
    pub async fn create_payment_request(
        &self,
        caller: Caller,
        new: &NewPaymentRequest,
    ) -> Result<PaymentRequest, Error> {
        let tx = self.store.begin().await?;
        let found = load_customer(&tx, caller, &new.customer).await?;
        // Locked (customer, then invoices, then requests): a concurrent deletion of the
        // customer waits for this request and cancels it, or this one sees the deletion.
        let customer = tx
            .lock_customer(caller.organization_id, found.id)
            .await?
            .unwrap_or(found);
        let request_fingerprint = fingerprint(&(
            customer.id,
            new.currency,
            new.invoices.iter().map(|i| &i.key).collect::<Vec<_>>(),
        ));
        if let Some(request_id) = &new.request_id
            && let Some((stored, resource_id)) = tx
                .find_idempotency_key(caller.organization_id, CREATE_OPERATION, request_id)
                .await?
        {
            if stored != request_fingerprint {
                return Err(request_id_conflict(request_id));
            }
            return load_request(&tx, caller, resource_id, false).await;
        }
        if customer.is_deleted() {
            return Err(Error::precondition(
                "CUSTOMER_DELETED",
                format!("customer `{}` was deleted", customer.external_id),
            ));
        }
        let now = self.now();
        let id = Uuid::now_v7();
        if let Some(request_id) = &new.request_id {
            // First, so that a concurrent call with the same request_id waits for this one
            // and then answers ABORTED (retry: the replay) instead of superseding it.
            tx.insert_idempotency_key(
                caller.organization_id,
                CREATE_OPERATION,
                request_id,
                &request_fingerprint,
                id,
                now,
            )
            .await?;
        }
        let invoices = self
            .invoices_to_request(&tx, caller, &customer, new, now)
            .await?;

        let invoice_ids: Vec<Uuid> = invoices.iter().map(|i| i.id).collect();
        let mut events = Vec::new();
        for mut older in lock_open_requests_covering(&tx, caller, &invoice_ids).await? {
            older.supersede(id, now).map_err(rule_error)?;
            events.push(NewEvent::payment_request(
                EventType::PaymentRequestSuperseded,
                &older,
                now,
            ));
            events.extend(self.save_request(&tx, &older).await?);
        }
        let org = load_organization(&tx, caller).await?;
        let request = PaymentRequest {
            id,
            organization_id: caller.organization_id,
            customer_id: customer.id,
            customer_external_id: customer.external_id.clone(),
            currency: new.currency,
            amount_minor: invoices.iter().map(Invoice::amount_due_minor).sum(),
            invoices: invoices
                .iter()
                .map(|i| CoveredInvoice {
                    invoice_id: i.id,
                    external_id: i.external_id.clone(),
                })
                .collect(),
            status: PaymentRequestStatus::Pending,
            payment_link: payment_link(&org.settings.payment_link_template, id),
            superseded_by: None,
            last_decline: None,
            attempt_count: 0,
            provider_reference: String::new(),
            charge_idempotency_key: String::new(),
            charge_target: None,
            email_notification_id: None,
            process_id: None,
            cancel_reason: String::new(),
            next_action_at: Some(now),
            created_at: now,
            updated_at: now,
            settled_at: None,
        };
        tx.insert_payment_request(&request).await?;
        events.push(NewEvent::payment_request(
            EventType::PaymentRequestCreated,
            &request,
            now,
        ));
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        self.payment_signal.notify_one();
        Ok(request)
    }

    /// The invoices a new request covers, locked, checked against the rules: the customer's,
    /// in the request's currency, overdue.
    async fn invoices_to_request(
        &self,
        tx: &Tx,
        caller: Caller,
        customer: &Customer,
        new: &NewPaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, Error> {
        let org_id = caller.organization_id;
        if new.invoices.is_empty() {
            let filter = InvoiceFilter {
                customer_id: Some(customer.id),
                overdue_only: true,
                currency_code: Some(new.currency.code().to_owned()),
                ..Default::default()
            };
            let found = tx
                .list_invoices(org_id, &filter, now, None, MAX_INVOICES as u64 + 1)
                .await?;
            if found.len() > MAX_INVOICES {
                return Err(Error::InvalidRequest {
                    reason: "TOO_MANY_INVOICES",
                    field: "invoice_external_ids".into(),
                    message: format!(
                        "customer `{}` has more than {MAX_INVOICES} overdue invoices in {}; \
                         list the invoices to include",
                        customer.external_id,
                        new.currency.code()
                    ),
                });
            }
            let ids: Vec<Uuid> = found.iter().map(|i| i.id).collect();
            let mut locked = tx.find_invoices_by_ids(org_id, &ids, true).await?;
            locked.retain(|i| i.is_overdue(now));
            if locked.is_empty() {
                return Err(Error::precondition(
                    "NO_OVERDUE_INVOICES",
                    format!(
                        "customer `{}` has no overdue invoices in {}",
                        customer.external_id,
                        new.currency.code()
                    ),
                ));
            }
            return Ok(locked);
        }

        // Resolve what was listed, then lock by id (in id order) and check the locked rows.
        let external: Vec<String> = new
            .invoices
            .iter()
            .filter_map(|i| match &i.key {
                InvoiceRef::ExternalId(ext) => Some(ext.clone()),
                InvoiceRef::Id(_) => None,
            })
            .collect();
        let by_external: HashMap<String, Uuid> = tx
            .find_invoices_by_external_ids(org_id, &external, false)
            .await?
            .into_iter()
            .map(|i| (i.external_id, i.id))
            .collect();
        let mut wanted: Vec<(Uuid, &ListedInvoice)> = Vec::new();
        let mut seen = HashSet::new();
        for listed in &new.invoices {
            let id = match &listed.key {
                InvoiceRef::Id(id) => Some(*id),
                InvoiceRef::ExternalId(ext) => by_external.get(ext).copied(),
            };
            match id {
                Some(id) => {
                    if seen.insert(id) {
                        wanted.push((id, listed));
                    }
                }
                // Ids not found at all are reported after the lookup below.
                None => wanted.push((Uuid::nil(), listed)),
            }
        }
        let mut ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        ids.sort();
        ids.dedup();
        let locked: HashMap<Uuid, Invoice> = tx
            .find_invoices_by_ids(org_id, &ids, true)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();

        let shown = |listed: &ListedInvoice| match &listed.key {
            InvoiceRef::Id(id) => format!("invoice {id}"),
            InvoiceRef::ExternalId(ext) => format!("invoice `{ext}`"),
        };
        let mut missing = Vec::new();
        let mut foreign = Vec::new();
        let mut other_currency = Vec::new();
        let mut not_overdue = Vec::new();
        let mut invoices = Vec::new();
        for (id, listed) in wanted {
            let Some(invoice) = locked.get(&id) else {
                missing.push(format!("{} ({})", shown(listed), listed.field));
                continue;
            };
            if invoice.customer_id != customer.id {
                foreign.push(format!("{} ({})", shown(listed), listed.field));
            } else if invoice.currency != new.currency {
                other_currency.push(format!(
                    "{} ({}) is in {}",
                    shown(listed),
                    listed.field,
                    invoice.currency.code()
                ));
            } else if !invoice.is_overdue(now) {
                not_overdue.push(FieldViolation {
                    field: listed.field.clone(),
                    description: format!(
                        "{} is not overdue (state {}, amount due {}, due {})",
                        shown(listed),
                        invoice.state.as_str(),
                        invoice.currency.format(invoice.amount_due_minor()),
                        invoice.due_date
                    ),
                });
            } else {
                invoices.push(invoice.clone());
            }
        }
        if !missing.is_empty() {
            return Err(Error::not_found(
                "INVOICE_NOT_FOUND",
                format!("no such invoice: {}", missing.join(", ")),
            ));
        }
        if !foreign.is_empty() {
            return Err(Error::InvalidRequest {
                reason: "INVOICE_OF_OTHER_CUSTOMER",
                field: "invoice_external_ids".into(),
                message: format!(
                    "not invoices of customer `{}`: {}",
                    customer.external_id,
                    foreign.join(", ")
                ),
            });
        }
        if !other_currency.is_empty() {
            return Err(Error::InvalidRequest {
                reason: "MIXED_CURRENCIES",
                field: "invoice_external_ids".into(),
                message: format!(
                    "every invoice must be in {}: {}",
                    new.currency.code(),
                    other_currency.join(", ")
                ),
            });
        }
        if !not_overdue.is_empty() {
            let message = not_overdue
                .iter()
                .map(|v| v.description.clone())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::PreconditionFailures {
                reason: "INVOICE_NOT_OVERDUE",
                message,
                violations: not_overdue,
            });
        }
        Ok(invoices)
    }

    pub async fn get_payment_request(
        &self,
        caller: Caller,
        id: Uuid,
    ) -> Result<PaymentRequest, Error> {
        load_request(&self.store, caller, id, false).await
    }

    /// A page of requests, newest first.
    pub async fn list_payment_requests(
        &self,
        caller: Caller,
        query: &PaymentRequestQuery,
        page: &PageRequest,
    ) -> Result<(Vec<PaymentRequest>, String), Error> {
        let mut filter = query.filter.clone();
        if let Some(customer) = &query.customer {
            filter.customer_id = Some(load_customer(&self.store, caller, customer).await?.id);
        }
        let before = page.after_id(&filter)?;
        let rows = self
            .store
            .list_payment_requests(caller.organization_id, &filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &filter, |r| r.id.to_string()))
    }

    /// Cancels an open request that has no charge in flight; canceling a canceled request
    /// returns it unchanged.
    pub async fn cancel_payment_request(
        &self,
        caller: Caller,
        id: Uuid,
        reason: &str,
    ) -> Result<PaymentRequest, Error> {
        let tx = self.store.begin().await?;
        let mut request = load_request(&tx, caller, id, true).await?;
        let now = self.now();
        let changed = request.cancel(reason, now).map_err(|e| {
            Error::precondition(
                "PAYMENT_REQUEST_NOT_CANCELABLE",
                match e {
                    PaymentRequestError::ChargeInFlight(_) => e.to_string(),
                    PaymentRequestError::Closed { status, .. } => {
                        format!("payment request {id} is {status} and cannot be canceled")
                    }
                },
            )
        })?;
        if changed {
            let mut events = vec![NewEvent::payment_request(
                EventType::PaymentRequestCanceled,
                &request,
                now,
            )];
            events.extend(self.save_request(&tx, &request).await?);
            tx.append_events(caller.organization_id, &events).await?;
            tx.commit().await?;
        }
        Ok(request)
    }

    /// Records what the payments service reports about a request's payment: a success
    /// settles its invoices; a failure records the decline and emails the payment link (if
    /// not emailed yet).
    pub async fn record_payment_result(
        &self,
        caller: Caller,
        id: Uuid,
        result: &PaymentResult,
    ) -> Result<(PaymentRequest, Vec<InvoiceView>), Error> {
        let tx = self.store.begin().await?;
        let result_fingerprint = fingerprint(&(id, &result.outcome, &result.provider_reference));
        if let Some(request_id) = &result.request_id
            && let Some((stored, resource_id)) = tx
                .find_idempotency_key(caller.organization_id, RESULT_OPERATION, request_id)
                .await?
        {
            if stored != result_fingerprint || resource_id != id {
                return Err(request_id_conflict(request_id));
            }
            // Release the transaction first: on SQLite it holds the only connection.
            drop(tx);
            let request = load_request(&self.store, caller, id, false).await?;
            let ids: Vec<Uuid> = request.invoices.iter().map(|i| i.invoice_id).collect();
            let invoices = self
                .store
                .find_invoices_by_ids(caller.organization_id, &ids, false)
                .await?;
            return Ok((request, self.views(caller, invoices).await?));
        }
        let now = self.now();
        if let Some(request_id) = &result.request_id {
            // First, so that a concurrent call with the same request_id waits for this one and
            // then answers ABORTED (retry: the replay) instead of ALREADY_SETTLED.
            tx.insert_idempotency_key(
                caller.organization_id,
                RESULT_OPERATION,
                request_id,
                &result_fingerprint,
                id,
                now,
            )
            .await?;
        }
        let (mut request, mut invoices) = lock_request(&tx, caller, id).await?;
        if !request.status.is_open() {
            return Err(Error::precondition(
                "PAYMENT_REQUEST_ALREADY_SETTLED",
                format!(
                    "payment request {id} is {}; record a payment collected for its invoices \
                     with InvoiceService.RecordPayment",
                    request.status.as_str()
                ),
            ));
        }
        let events = match &result.outcome {
            ReportedOutcome::Succeeded => {
                self.settle_paid(
                    &tx,
                    &mut request,
                    &mut invoices,
                    &result.provider_reference,
                    "",
                    now,
                )
                .await?
            }
            ReportedOutcome::Failed(decline) => {
                self.record_decline(
                    &tx,
                    caller,
                    &mut request,
                    &invoices,
                    decline.clone(),
                    &result.provider_reference,
                    "",
                    now,
                )
                .await?
            }
        };
        let mut events = events;
        events.extend(self.save_request(&tx, &request).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok((request, self.views(caller, invoices).await?))
    }

    /// Records the payment of every covered invoice's amount due and closes the request as
    /// SUCCEEDED. `provider` is set when the service's own charge succeeded.
    async fn settle_paid(
        &self,
        tx: &Tx,
        request: &mut PaymentRequest,
        invoices: &mut [Invoice],
        reference: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        request.succeed(reference, now).map_err(rule_error)?;
        let mut events = vec![NewEvent::payment_attempt(
            EventType::PaymentSucceeded,
            request,
            provider,
            None,
            now,
        )];
        // The amount collected is the request's amount (fixed while a charge is in flight),
        // shared over the covered invoices in the request's order, never beyond what each
        // still owes in the request's currency.
        let mut left = request.amount_minor;
        for covered in &request.invoices {
            let Some(invoice) = invoices.iter_mut().find(|i| i.id == covered.invoice_id) else {
                continue;
            };
            let due = invoice.amount_due_minor();
            if left == 0
                || invoice.state != InvoiceState::Open
                || invoice.currency != request.currency
                || due <= 0
            {
                continue;
            }
            let amount = left.min(due);
            left -= amount;
            let payment = NewPayment {
                external_id: format!("payreq_{}_{}", request.id.simple(), invoice.id.simple()),
                currency: invoice.currency,
                amount_minor: amount,
                paid_at: Some(now),
                reference: request.provider_reference.clone(),
            };
            let (_, paid_events) =
                pay_invoice(tx, invoice, &request.customer_external_id, payment, now).await?;
            events.extend(paid_events);
        }
        if left > 0 {
            // Paid by other means while the charge was in flight: the payments service must
            // refund or credit the difference.
            tracing::warn!(payment_request = %request.id,
                unallocated = %request.currency.format(left),
                "collected more than the invoices still owe");
        }
        events.push(NewEvent::payment_request(
            EventType::PaymentRequestSettled,
            request,
            now,
        ));
        Ok(events)
    }

    /// Records a declined charge, brings the request in line with its invoices (they may have
    /// changed while the charge was in flight), and emails the payment link if anything is
    /// still due, once per request.
    #[allow(clippy::too_many_arguments)]
    async fn record_decline(
        &self,
        tx: &Tx,
        caller: Caller,
        request: &mut PaymentRequest,
        invoices: &[Invoice],
        decline: Decline,
        reference: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        request
            .fail(decline.clone(), reference, now)
            .map_err(rule_error)?;
        let mut events = vec![
            NewEvent::payment_attempt(
                EventType::PaymentFailed,
                request,
                provider,
                Some(&decline),
                now,
            ),
            NewEvent::payment_request(EventType::PaymentRequestFailed, request, now),
        ];
        if let Some(event) = refresh_event(request.refresh(invoices, now)) {
            events.push(NewEvent::payment_request(event, request, now));
        }
        if request.status.is_open() {
            self.email_payment_link(tx, caller, request).await?;
        }
        Ok(events)
    }

    /// Saves a request; one that closed withdraws its payment-link email if that is still
    /// waiting to be sent (a superseded, canceled or settled request asks for nothing).
    /// Returns the events to append.
    async fn save_request<C: Connection>(
        &self,
        conn: &Conn<C>,
        request: &PaymentRequest,
    ) -> Result<Vec<NewEvent>, Error> {
        conn.update_payment_request(request).await?;
        let mut events = Vec::new();
        if !request.status.is_open()
            && let Some(id) = request.email_notification_id
        {
            let reason = format!(
                "payment request {} is {}",
                request.id,
                request.status.as_str().to_lowercase()
            );
            events.extend(self.withdraw_notification(conn, id, &reason).await?);
        }
        Ok(events)
    }

    /// Queues the payment request email unless one was already queued for this request.
    async fn email_payment_link(
        &self,
        tx: &Tx,
        caller: Caller,
        request: &mut PaymentRequest,
    ) -> Result<(), Error> {
        if request.email_notification_id.is_some() {
            return Ok(());
        }
        let customer = load_customer(tx, caller, &CustomerRef::Id(request.customer_id)).await?;
        if customer.is_deleted() {
            return Ok(());
        }
        let email = EmailRequest {
            kind: TemplateKind::PaymentRequest,
            customer: CustomerRef::Id(request.customer_id),
            invoice_external_ids: request.invoice_external_ids(),
            currency: Some(request.currency),
            locale: None,
            payment_link: request.payment_link.clone(),
            process_id: request.process_id,
            payment_request_id: Some(request.id),
            extra_bcc: Vec::new(),
        };
        match self.queue_email(tx, caller, &email).await {
            Ok(notification) => {
                request.email_notification_id = Some(notification.id);
                Ok(())
            }
            // A template override that does not render must not undo the outcome being
            // recorded (a charge result, a decline): the outcome stands, the email is logged.
            Err(
                e @ (Error::FailedPrecondition { .. }
                | Error::PreconditionFailures { .. }
                | Error::InvalidArgument(_)),
            ) => {
                tracing::error!(payment_request = %request.id, error = %e,
                    "payment request email could not be composed");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Brings open requests covering `changed` invoices in line with them
    /// (`PaymentRequest::refresh`); a request with a charge in flight is left to the charge's
    /// outcome. Returns the events to append.
    pub(crate) async fn reconcile_payment_requests<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        changed: &[Invoice],
    ) -> Result<Vec<NewEvent>, Error> {
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = changed.iter().map(|i| i.id).collect();
        let now = self.now();
        let mut events = Vec::new();
        for mut request in lock_open_requests_covering(conn, caller, &ids).await? {
            let covered: Vec<Uuid> = request.invoices.iter().map(|i| i.invoice_id).collect();
            let invoices = conn
                .find_invoices_by_ids(caller.organization_id, &covered, false)
                .await?;
            let Some(event) = refresh_event(request.refresh(&invoices, now)) else {
                continue;
            };
            events.push(NewEvent::payment_request(event, &request, now));
            events.extend(self.save_request(conn, &request).await?);
        }
        Ok(events)
    }

    /// Cancels a deleted customer's open requests that have no charge in flight.
    pub(crate) async fn cancel_payment_requests_of_customer<C: Connection>(
        &self,
        conn: &Conn<C>,
        customer: &Customer,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        let mut events = Vec::new();
        for status in [PaymentRequestStatus::Pending, PaymentRequestStatus::Failed] {
            let filter = PaymentRequestFilter {
                customer_id: Some(customer.id),
                status: Some(status),
                currency_code: None,
            };
            let open = conn
                .list_payment_requests(customer.organization_id, &filter, None, u64::MAX >> 1)
                .await?;
            for listed in open {
                // Under its lock: a charge may have started since the list was read.
                let Some(mut request) = conn
                    .find_payment_request(customer.organization_id, listed.id, true)
                    .await?
                else {
                    continue;
                };
                if !matches!(request.cancel("the customer was deleted", now), Ok(true)) {
                    continue;
                }
                conn.update_payment_request(&request).await?;
                events.push(NewEvent::payment_request(
                    EventType::PaymentRequestCanceled,
                    &request,
                    now,
                ));
            }
        }
        Ok(events)
    }

    /// Completes when a payment request was created since the last call.
    pub async fn payment_requests_changed(&self) {
        self.payment_signal.notified().await;
    }

    /// Charges or emails every payment request with work due; returns how many were worked
    /// on. Safe on several replicas at once: each request is claimed before it is worked on.
    pub async fn process_due_payment_requests(
        &self,
        providers: &Providers,
    ) -> Result<usize, Error> {
        let now = self.now();
        let due = self.store.due_payment_requests(now, WORK_BATCH).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for (organization_id, id) in due {
            if self
                .store
                .claim_payment_request(id, now, now + CHARGE_LEASE)
                .await?
            {
                claimed.push((Caller { organization_id }, id));
            }
        }
        let count = claimed.len();
        let mut work = futures_util::stream::iter(claimed)
            .map(|(caller, id)| async move {
                if let Err(e) = self.work_on_payment_request(providers, caller, id).await {
                    // The claim expires and the request is worked on again (same key).
                    tracing::warn!(payment_request = %id, error = %e, "payment request work failed");
                }
            })
            .buffer_unordered(WORK_CONCURRENCY);
        while work.next().await.is_some() {}
        Ok(count)
    }

    async fn work_on_payment_request(
        &self,
        providers: &Providers,
        caller: Caller,
        id: Uuid,
    ) -> Result<(), Error> {
        let request = load_request(&self.store, caller, id, false).await?;
        let org = load_organization(&self.store, caller).await?;
        let customer =
            load_customer(&self.store, caller, &CustomerRef::Id(request.customer_id)).await?;
        // A charge in flight goes where its first call went; a new one to the customer's
        // current payment method.
        let target = match &request.charge_target {
            Some(target) => Some(target.clone()),
            None => customer
                .details
                .payment_method
                .as_ref()
                .filter(|_| !customer.is_deleted())
                .and_then(|m| providers.target_for(&org.settings.payment_provider, m)),
        };
        let provider = target.as_ref().and_then(|t| {
            providers
                .provider(&org.settings.payment_provider, t)
                .map(|p| (p, t.clone()))
        });
        let minimum = org
            .settings
            .payment_provider
            .minimum_charge_minor
            .get(&request.currency)
            .copied();
        match (request.next_action(provider.is_some(), minimum), provider) {
            (NextAction::Charge, Some((provider, target))) => {
                self.charge(caller, id, provider, target).await
            }
            (NextAction::Email { why }, _) => {
                let tx = self.store.begin().await?;
                let mut request = load_request(&tx, caller, id, true).await?;
                if request.status == PaymentRequestStatus::Pending {
                    tracing::info!(payment_request = %id, why, "emailing the payment link");
                    self.email_payment_link(&tx, caller, &mut request).await?;
                }
                request.next_action_at = None;
                tx.update_payment_request(&request).await?;
                tx.commit().await
            }
            (NextAction::Charge | NextAction::Nothing, _) => {
                let tx = self.store.begin().await?;
                let mut request = load_request(&tx, caller, id, true).await?;
                request.next_action_at = None;
                tx.update_payment_request(&request).await?;
                tx.commit().await
            }
        }
    }

    /// One call to the provider for a request's charge: PROCESSING is committed before the
    /// call, the outcome in a second transaction after it.
    async fn charge(
        &self,
        caller: Caller,
        id: Uuid,
        provider: Arc<dyn PaymentProvider>,
        target: ChargeTarget,
    ) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        let mut request = load_request(&tx, caller, id, true).await?;
        if !matches!(
            request.status,
            PaymentRequestStatus::Pending | PaymentRequestStatus::Processing
        ) {
            return Ok(());
        }
        let now = self.now();
        let first_call = request.charge_idempotency_key.is_empty();
        request.begin_charge_call(&target, now);
        tx.update_payment_request(&request).await?;
        if first_call {
            tx.append_events(
                caller.organization_id,
                &[NewEvent::payment_attempt(
                    EventType::PaymentAttempted,
                    &request,
                    provider.name(),
                    None,
                    now,
                )],
            )
            .await?;
        }
        tx.commit().await?;

        let outcome = provider
            .charge(&ChargeRequest {
                idempotency_key: request.charge_idempotency_key.clone(),
                organization_id: caller.organization_id,
                payment_request_id: id,
                customer_external_id: request.customer_external_id.clone(),
                payment_method_token: target.token.clone(),
                currency: request.currency,
                amount_minor: request.amount_minor,
                invoice_external_ids: request.invoice_external_ids(),
                now,
                retry: !first_call,
            })
            .await;

        let tx = self.store.begin().await?;
        let (mut request, mut invoices) = lock_request(&tx, caller, id).await?;
        let succeeded = matches!(outcome, ChargeOutcome::Succeeded { .. });
        // The payments service may have reported a result meanwhile: a decline reported then
        // does not hide money this call collected, but nothing else overrides it.
        if !(request.status == PaymentRequestStatus::Processing
            || succeeded && request.status.is_open())
        {
            return Ok(());
        }
        let now = self.now();
        let events = match outcome {
            ChargeOutcome::Succeeded { reference } => {
                self.settle_paid(
                    &tx,
                    &mut request,
                    &mut invoices,
                    &reference,
                    provider.name(),
                    now,
                )
                .await?
            }
            ChargeOutcome::Declined { decline, reference } => {
                self.record_decline(
                    &tx,
                    caller,
                    &mut request,
                    &invoices,
                    decline,
                    &reference,
                    provider.name(),
                    now,
                )
                .await?
            }
            ChargeOutcome::Pending { reference } => {
                request.await_result(&reference, now);
                Vec::new()
            }
            ChargeOutcome::Unknown { reason } => {
                tracing::warn!(payment_request = %id, %reason, calls = request.attempt_count,
                    "charge outcome unknown");
                if request.retry_unknown(now, rand::random::<f64>()) {
                    Vec::new()
                } else {
                    // Out of retries: the payments service must report the result. No email:
                    // the money may have been taken.
                    let unknown = Decline {
                        code: "unknown".into(),
                        message: reason,
                        hard: false,
                    };
                    vec![NewEvent::payment_attempt(
                        EventType::PaymentFailed,
                        &request,
                        provider.name(),
                        Some(&unknown),
                        now,
                    )]
                }
            }
        };
        let mut events = events;
        events.extend(self.save_request(&tx, &request).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await
    }
}
