//! Recording a payment on an invoice, in the caller's transaction (RecordPayment and a
//! successful charge).

use crate::clock::new_id;
use crate::domain::event::EventPayload;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::invoice::Invoice;
use crate::domain::invoice::InvoiceRuleError;
use crate::domain::invoice::InvoiceState;
use crate::domain::invoice::Payment;
use crate::domain::money::Currency;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;

/// A payment to record.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub external_id: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub paid_at: Option<DateTime<Utc>>,
    pub reference: String,
}

/// The reason code and gRPC class of a refused invoice change.
pub(crate) fn rule_reason(err: &InvoiceRuleError) -> Reason {
    match err {
        InvoiceRuleError::NotOpen(_) => Reason::InvoiceNotOpen,
        InvoiceRuleError::CustomerImmutable => Reason::InvoiceCustomerImmutable,
        InvoiceRuleError::CurrencyImmutable => Reason::InvoiceCurrencyImmutable,
        InvoiceRuleError::AmountBelowSettled { .. } => Reason::AmountBelowSettled,
        InvoiceRuleError::VoidWithPayments => Reason::InvoiceHasPayments,
        InvoiceRuleError::Overpayment { .. } => Reason::Overpayment,
        InvoiceRuleError::CurrencyMismatch { .. } => Reason::CurrencyMismatch,
        InvoiceRuleError::ZeroPayment => Reason::ValidationFailed,
    }
}

pub(crate) fn rule_error(err: InvoiceRuleError) -> Error {
    match err {
        InvoiceRuleError::CurrencyMismatch { .. } => Error::InvalidRequest {
            reason: Reason::CurrencyMismatch,
            field: "currency_code".into(),
            message: err.to_string(),
        },
        InvoiceRuleError::ZeroPayment => Error::field("amount", err.to_string()),
        other => Error::precondition(rule_reason(&other), other.to_string()),
    }
}

/// Records `payment` against a locked `invoice` and saves both; returns the payment and the
/// events it calls for (`payment.recorded`, and `invoice.paid` when nothing is left due).
pub(crate) async fn pay_invoice<C: Connection>(
    conn: &Conn<C>,
    invoice: &mut Invoice,
    customer_external_id: &str,
    payment: NewPayment,
    now: DateTime<Utc>,
) -> Result<(Payment, Vec<NewEvent>), Error> {
    if let Some(at) = payment.paid_at
        && (at > now + chrono::Duration::days(1) || at < now - chrono::Duration::days(3_660))
    {
        return Err(Error::field(
            "paid_time",
            "must be within the last ten years and at most a day ahead of now",
        ));
    }
    let paid_at = payment.paid_at.unwrap_or(now);
    let before = invoice.state;
    invoice
        .record_payment(payment.currency, payment.amount_minor, paid_at, now)
        .map_err(rule_error)?;
    let recorded = Payment {
        id: new_id(),
        organization_id: invoice.organization_id,
        invoice_id: invoice.id,
        external_id: payment.external_id,
        currency: payment.currency,
        amount_minor: payment.amount_minor,
        paid_at,
        reference: payment.reference,
        created_at: now,
    };
    conn.save_invoices(&[], std::slice::from_ref(invoice))
        .await?;
    conn.insert_payment(&recorded, invoice.overdue_at).await?;
    let mut events = vec![NewEvent {
        event_type: EventType::PaymentRecorded,
        occurred_at: now,
        customer_id: Some(invoice.customer_id),
        customer_external_id: customer_external_id.to_owned(),
        invoice_id: Some(invoice.id),
        invoice_external_id: invoice.external_id.clone(),
        process_id: None,
        payload: EventPayload::Payment {
            payment_external_id: recorded.external_id.clone(),
            amount: recorded.currency.format(recorded.amount_minor),
            currency_code: recorded.currency.code().into(),
            invoice_amount_due: invoice.currency.format(invoice.amount_due_minor()),
        },
    }];
    if invoice.state == InvoiceState::Paid && before != InvoiceState::Paid {
        events.push(NewEvent::invoice(
            EventType::InvoicePaid,
            invoice,
            customer_external_id,
            now,
        ));
    }
    Ok((recorded, events))
}
