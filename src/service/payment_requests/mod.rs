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
use super::{Caller, Core, CustomerRef, InvoiceRef, Services};
use crate::domain::customer::Customer;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::{Invoice, InvoiceState};
use crate::domain::money::{Currency, Money};
use crate::domain::payment_request::{
    CoveredInvoice, Decline, PaymentRequest, PaymentRequestError, PaymentRequestStatus, Refresh,
    payment_link,
};
use crate::domain::query::PaymentRequestFilter;
use crate::error::Error;
use crate::notify::templates::TemplateKind;
use crate::storage::{Conn, Connection, Tx};

mod coverage;
mod worker;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Most invoices one request may cover.
pub const MAX_INVOICES: usize = 1000;

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

/// What a dunning step learns from its charge: `Some(Ok(()))` paid, `Some(Err(why))` failed
/// or could not be made (declined, closed unpaid, or left without a charge), `None` still
/// unknown.
pub(crate) fn charge_outcome(request: &PaymentRequest) -> Option<Result<(), String>> {
    match request.status {
        PaymentRequestStatus::Succeeded => Some(Ok(())),
        PaymentRequestStatus::Failed => Some(Err(request.last_decline.as_ref().map_or_else(
            || "the charge was declined".to_owned(),
            |d| format!("declined: {} ({})", d.message, d.code),
        ))),
        PaymentRequestStatus::Canceled | PaymentRequestStatus::Superseded => Some(Err(format!(
            "the payment request was {}",
            request.status.as_str().to_lowercase()
        ))),
        PaymentRequestStatus::Pending if request.next_action_at.is_none() => {
            Some(Err("the payment method could not be charged".to_owned()))
        }
        PaymentRequestStatus::Pending | PaymentRequestStatus::Processing => None,
    }
}

/// A request opened by the service itself (a dunning step) or by CreatePaymentRequest.
pub(crate) struct NewRequestFor<'a> {
    pub id: Uuid,
    pub currency: Currency,
    pub invoices: &'a [Invoice],
    pub process_id: Option<Uuid>,
    pub charges_only: bool,
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

        let (request, events) = self
            .insert_payment_request_for(
                &tx,
                caller,
                &customer,
                NewRequestFor {
                    id,
                    currency: new.currency,
                    invoices: &invoices,
                    process_id: None,
                    charges_only: false,
                },
                now,
            )
            .await?;
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok(request)
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
}

impl Core {
    /// Opens a payment request for `invoices` (locked by the caller) in the caller's
    /// transaction, superseding open requests that cover any of them; wakes the payment
    /// worker once committed. Returns the request and the events to append.
    pub(crate) async fn insert_payment_request_for(
        &self,
        tx: &Tx,
        caller: Caller,
        customer: &Customer,
        for_: NewRequestFor<'_>,
        now: DateTime<Utc>,
    ) -> Result<(PaymentRequest, Vec<NewEvent>), Error> {
        let invoices = for_.invoices;
        let invoice_ids: Vec<Uuid> = invoices.iter().map(|i| i.id).collect();
        let mut events = Vec::new();
        for mut older in tx
            .lock_open_payment_requests_covering(caller.organization_id, &invoice_ids)
            .await?
        {
            older.supersede(for_.id, now).map_err(rule_error)?;
            events.push(NewEvent::payment_request(
                EventType::PaymentRequestSuperseded,
                &older,
                now,
            ));
            events.extend(self.save_request(tx, &older).await?);
        }
        let org = load_organization(tx, caller).await?;
        let request = PaymentRequest {
            id: for_.id,
            organization_id: caller.organization_id,
            customer_id: customer.id,
            customer_external_id: customer.external_id.clone(),
            currency: for_.currency,
            amount_minor: Money::sum(for_.currency, invoices.iter().map(Invoice::amount_due))?
                .minor(),
            invoices: invoices
                .iter()
                .map(|i| CoveredInvoice {
                    invoice_id: i.id,
                    external_id: i.external_id.clone(),
                })
                .collect(),
            status: PaymentRequestStatus::Pending,
            payment_link: payment_link(&org.settings.payment_link_template, for_.id),
            superseded_by: None,
            last_decline: None,
            attempt_count: 0,
            provider_reference: String::new(),
            charge_idempotency_key: String::new(),
            charge_target: None,
            email_notification_id: None,
            process_id: for_.process_id,
            charges_only: for_.charges_only,
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
        tx.wake_after_commit(&self.wake.payments);
        Ok((request, events))
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
        let caller = Caller::system(request.organization_id);
        events.extend(self.invoices_changed(tx, caller, invoices).await?);
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
        if let Some(event) = refresh_event(request.refresh(invoices, now)?) {
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
        if let Some(process_id) = request.process_id
            && charge_outcome(request).is_some()
        {
            conn.wake_waiting_process(process_id, self.now()).await?;
            conn.wake_after_commit(&self.wake.engine);
        }
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
        if request.email_notification_id.is_some() || request.charges_only {
            return Ok(());
        }
        let customer = load_customer(tx, caller, &CustomerRef::Id(request.customer_id)).await?;
        if customer.is_deleted() {
            return Ok(());
        }
        let email = EmailRequest {
            invoice_external_ids: request.invoice_external_ids(),
            currency: Some(request.currency),
            payment_link: request.payment_link.clone(),
            process_id: request.process_id,
            payment_request_id: Some(request.id),
            ..EmailRequest::new(
                TemplateKind::PaymentRequest,
                CustomerRef::Id(request.customer_id),
            )
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
        for mut request in conn
            .lock_open_payment_requests_covering(caller.organization_id, &ids)
            .await?
        {
            let covered: Vec<Uuid> = request.invoices.iter().map(|i| i.invoice_id).collect();
            let invoices = conn
                .find_invoices_by_ids(caller.organization_id, &covered, false)
                .await?;
            let Some(event) = refresh_event(request.refresh(&invoices, now)?) else {
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
}
