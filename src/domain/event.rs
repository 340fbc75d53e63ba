//! Events: the append-only record of every state change, written in the same transaction as
//! the change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Event types, spelled as on the wire (`<family>.<what>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CustomerCreated,
    CustomerUpdated,
    CustomerDeleted,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    NotificationSent,
    NotificationFailed,
    NotificationSuppressed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerCreated => "customer.created",
            Self::CustomerUpdated => "customer.updated",
            Self::CustomerDeleted => "customer.deleted",
            Self::InvoiceCreated => "invoice.created",
            Self::InvoiceUpdated => "invoice.updated",
            Self::InvoiceOverdue => "invoice.overdue",
            Self::InvoicePaid => "invoice.paid",
            Self::InvoiceVoided => "invoice.voided",
            Self::PaymentRecorded => "payment.recorded",
            Self::NotificationSent => "notification.sent",
            Self::NotificationFailed => "notification.failed",
            Self::NotificationSuppressed => "notification.suppressed",
        }
    }
}

/// Typed details of an event, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventPayload {
    Customer {
        external_id: String,
        changed_fields: Vec<String>,
    },
    Invoice {
        invoice_external_id: String,
        state: String,
        currency_code: String,
        amount_due: String,
        due_date: String,
        /// Why the change was made (a void's reason); empty otherwise.
        #[serde(default)]
        reason: String,
    },
    Payment {
        payment_external_id: String,
        amount: String,
        currency_code: String,
        invoice_amount_due: String,
    },
    Notification {
        notification_id: String,
        /// Template kind, as `TemplateKind::as_str`.
        template_kind: String,
        state: String,
        message_id: String,
        attempts: i32,
        error: String,
        suppressed_reason: String,
        payment_request_id: String,
    },
}

/// An event about to be appended; the log assigns its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub customer_id: Option<Uuid>,
    pub customer_external_id: String,
    pub invoice_id: Option<Uuid>,
    pub invoice_external_id: String,
    pub process_id: Option<Uuid>,
    pub payload: EventPayload,
}

/// An appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub customer_id: Option<Uuid>,
    pub customer_external_id: String,
    pub invoice_id: Option<Uuid>,
    pub invoice_external_id: String,
    pub process_id: Option<Uuid>,
    pub payload: EventPayload,
}

impl NewEvent {
    /// An invoice event carrying a snapshot of the invoice after the change.
    pub fn invoice(
        event_type: EventType,
        invoice: &super::invoice::Invoice,
        customer_external_id: &str,
        at: DateTime<Utc>,
    ) -> NewEvent {
        NewEvent {
            event_type,
            occurred_at: at,
            customer_id: Some(invoice.customer_id),
            customer_external_id: customer_external_id.to_owned(),
            invoice_id: Some(invoice.id),
            invoice_external_id: invoice.external_id.clone(),
            process_id: None,
            payload: EventPayload::Invoice {
                invoice_external_id: invoice.external_id.clone(),
                state: invoice.state.as_str().into(),
                currency_code: invoice.currency.code().into(),
                amount_due: invoice.currency.format(invoice.amount_due_minor()),
                due_date: invoice.due_date.to_string(),
                reason: String::new(),
            },
        }
    }

    /// The same event with the reason the caller gave for the change (invoice events only).
    pub fn with_reason(mut self, why: &str) -> NewEvent {
        if let EventPayload::Invoice { reason, .. } = &mut self.payload {
            *reason = why.to_owned();
        }
        self
    }

    /// A customer event.
    pub fn customer(
        event_type: EventType,
        customer: &super::customer::Customer,
        changed_fields: Vec<String>,
        at: DateTime<Utc>,
    ) -> NewEvent {
        NewEvent {
            event_type,
            occurred_at: at,
            customer_id: Some(customer.id),
            customer_external_id: customer.external_id.clone(),
            invoice_id: None,
            invoice_external_id: String::new(),
            process_id: None,
            payload: EventPayload::Customer {
                external_id: customer.external_id.clone(),
                changed_fields,
            },
        }
    }
}
