//! Charging and settling payment requests inside the caller's transaction: opening a request,
//! recording a charge's success or decline, emailing the payment link, and keeping open
//! requests in line with their invoices. The payment worker (`engine::jobs::payments`) calls
//! the provider; requests and dunning steps open requests.

use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::compose::EmailRequest;
use crate::core::lookup::load_customer;
use crate::core::lookup::load_organization;
use crate::core::payments::NewPayment;
use crate::core::payments::pay_invoice;
use crate::domain::customer::Customer;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::invoice::Invoice;
use crate::domain::invoice::InvoiceState;
use crate::domain::money::Currency;
use crate::domain::money::Money;
use crate::domain::organization::Organization;
use crate::domain::payment_request::ChargeTarget;
use crate::domain::payment_request::CoveredInvoice;
use crate::domain::payment_request::Decline;
use crate::domain::payment_request::NextAction;
use crate::domain::payment_request::PaymentRequest;
use crate::domain::payment_request::PaymentRequestError;
use crate::domain::payment_request::PaymentRequestStatus;
use crate::domain::payment_request::Refresh;
use crate::domain::payment_request::payment_link;
use crate::domain::query::PaymentRequestFilter;
use crate::error::Error;
use crate::error::Reason;
use crate::notify::templates::TemplateKind;
use crate::storage::Conn;
use crate::storage::Connection;
use crate::storage::Tx;
use chrono::DateTime;
use chrono::Utc;
use uuid::Uuid;

/// The provider named in a simulation's declined attempts.
pub(crate) const SIMULATED_PROVIDER: &str = "simulation";

/// The provider's smallest charge in the request's currency, if it has one.
pub(crate) fn minimum_charge(org: &Organization, request: &PaymentRequest) -> Option<i64> {
    org.settings
        .payment_provider
        .minimum_charge_minor
        .get(&request.currency)
        .copied()
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

pub(crate) fn not_found(id: Uuid) -> Error {
    Error::not_found(
        Reason::PaymentRequestNotFound,
        format!("no payment request with id {id}"),
    )
}

pub(crate) fn rule_error(err: PaymentRequestError) -> Error {
    let reason = match err {
        PaymentRequestError::ChargeInFlight(_) => Reason::PaymentInProgress,
        PaymentRequestError::Closed { .. } => Reason::PaymentRequestAlreadySettled,
    };
    Error::precondition(reason, err.to_string())
}

pub(crate) async fn load_request<C: Connection>(
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
pub(crate) async fn lock_request(
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
pub(crate) fn refresh_event(refresh: Refresh) -> Option<EventType> {
    match refresh {
        Refresh::Unchanged => None,
        Refresh::AmountChanged => Some(EventType::PaymentRequestAmountChanged),
        Refresh::Settled => Some(EventType::PaymentRequestSettled),
        Refresh::Canceled => Some(EventType::PaymentRequestCanceled),
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
    pub(crate) async fn settle_paid(
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
    pub(crate) async fn record_decline(
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
    pub(crate) async fn save_request<C: Connection>(
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
    pub(crate) async fn email_payment_link(
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

impl Core {
    /// Takes a request that will not be charged off the worker's list, in `tx`, emailing its
    /// payment link first (`email_link`) if it is still pending. Returns the events.
    pub(crate) async fn work_without_charge(
        &self,
        tx: &Tx,
        caller: Caller,
        id: Uuid,
        email_link: bool,
    ) -> Result<Vec<NewEvent>, Error> {
        let mut request = load_request(tx, caller, id, true).await?;
        if email_link && request.status == PaymentRequestStatus::Pending {
            self.email_payment_link(tx, caller, &mut request).await?;
        }
        request.next_action_at = None;
        self.save_request(tx, &request).await
    }

    /// Works a request in `tx` as the worker would with a provider that declines every
    /// charge (`can_charge`: whether the customer has a chargeable method): a simulation's
    /// payment attempt. Returns the events.
    pub(crate) async fn work_with_declining_provider(
        &self,
        tx: &Tx,
        caller: Caller,
        id: Uuid,
        can_charge: bool,
        decline: Decline,
    ) -> Result<Vec<NewEvent>, Error> {
        let request = load_request(tx, caller, id, false).await?;
        let org = load_organization(tx, caller).await?;
        let email_link = match request.next_action(can_charge, minimum_charge(&org, &request)) {
            NextAction::Charge => {
                let (mut request, invoices) = lock_request(tx, caller, id).await?;
                let now = self.now();
                let target = ChargeTarget {
                    provider: SIMULATED_PROVIDER.into(),
                    url: String::new(),
                    token: String::new(),
                };
                request.begin_charge_call(&target, now);
                let mut events = self
                    .record_decline(
                        tx,
                        caller,
                        &mut request,
                        &invoices,
                        decline,
                        "",
                        SIMULATED_PROVIDER,
                        now,
                    )
                    .await?;
                events.extend(self.save_request(tx, &request).await?);
                return Ok(events);
            }
            NextAction::Email { .. } => true,
            NextAction::Nothing => false,
        };
        self.work_without_charge(tx, caller, id, email_link).await
    }
}
