//! Payment requests: asking a customer to pay the overdue balance of some invoices, charging
//! its payment method through the organization's provider or emailing the payment link, and
//! settling the invoices when the money arrives.
//!
//! Charging at most once: a request's charge always carries the same idempotency key; the
//! request is marked PROCESSING (committed) before the provider is called, a PROCESSING
//! request can be neither superseded nor canceled, and an unknown outcome is asked again with
//! the same key. Emailing at most once: the email's id is stored on the request in the
//! transaction that queues it.

use super::invoices::InvoiceView;
use super::paging::PageRequest;
use super::paging::fingerprint;
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::InvoiceRef;
use crate::core::charging::NewRequestFor;
use crate::core::charging::load_request;
use crate::core::charging::lock_request;
use crate::core::lookup::check_not_deleted;
use crate::core::lookup::load_customer;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::money::Currency;
use crate::domain::payment_request::Decline;
use crate::domain::payment_request::PaymentRequest;
use crate::domain::payment_request::PaymentRequestError;
use crate::domain::query::PaymentRequestFilter;
use crate::error::Error;
use crate::error::Reason;
use crate::service::invoices::invoice_views;
use crate::service::lookup::request_id_conflict;
use std::sync::Arc;
use uuid::Uuid;

/// Payment requests: create, read, cancel, and the outcomes the payments service reports.
#[derive(Clone)]
pub struct PaymentRequests {
    core: Arc<Core>,
}

impl PaymentRequests {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

mod coverage;

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

impl PaymentRequests {
    /// Creates a payment request for some of a customer's overdue invoices in one currency
    /// (all of them when none are listed), superseding open requests that cover any of them.
    pub async fn create_payment_request(
        &self,
        caller: Caller,
        new: &NewPaymentRequest,
    ) -> Result<PaymentRequest, Error> {
        let tx = self.core.store.begin().await?;
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
        check_not_deleted(&customer)?;
        let now = self.core.now();
        let id = new_id();
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
            .core
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
        load_request(&self.core.store, caller, id, false).await
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
            filter.customer_id = Some(load_customer(&self.core.store, caller, customer).await?.id);
        }
        let before = page.after_id(&(caller.organization_id, &filter))?;
        let rows = self
            .core
            .store
            .list_payment_requests(caller.organization_id, &filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, &filter), |r| {
            r.id.to_string()
        }))
    }

    /// Cancels an open request that has no charge in flight; canceling a canceled request
    /// returns it unchanged.
    pub async fn cancel_payment_request(
        &self,
        caller: Caller,
        id: Uuid,
        reason: &str,
    ) -> Result<PaymentRequest, Error> {
        let tx = self.core.store.begin().await?;
        let mut request = load_request(&tx, caller, id, true).await?;
        let now = self.core.now();
        let changed = request.cancel(reason, now).map_err(|e| {
            Error::precondition(
                Reason::PaymentRequestNotCancelable,
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
            events.extend(self.core.save_request(&tx, &request).await?);
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
        let tx = self.core.store.begin().await?;
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
            let request = load_request(&self.core.store, caller, id, false).await?;
            let ids: Vec<Uuid> = request.invoices.iter().map(|i| i.invoice_id).collect();
            let invoices = self
                .core
                .store
                .find_invoices_by_ids(caller.organization_id, &ids, false)
                .await?;
            return Ok((
                request,
                invoice_views(&self.core.store, caller, invoices, self.core.now()).await?,
            ));
        }
        let now = self.core.now();
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
                Reason::PaymentRequestAlreadySettled,
                format!(
                    "payment request {id} is {}; record a payment collected for its invoices \
                     with InvoiceService.RecordPayment",
                    request.status.as_str()
                ),
            ));
        }
        let events = match &result.outcome {
            ReportedOutcome::Succeeded => {
                self.core
                    .settle_paid(
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
                self.core
                    .record_decline(
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
        events.extend(self.core.save_request(&tx, &request).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok((
            request,
            invoice_views(&self.core.store, caller, invoices, self.core.now()).await?,
        ))
    }
}
