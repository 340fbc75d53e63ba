//! What list use cases ask for: the filters that handlers build, use cases check and
//! repositories run. Plain data, shared by every layer so none has to see another's types.

use super::event::Event;
use super::invoice::InvoiceState;
use super::notification::NotificationState;
use super::payment_request::PaymentRequestStatus;
use super::webhook::DeliveryStatus;
use chrono::NaiveDate;
use uuid::Uuid;

/// Filters of ListCustomers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFilter {
    pub email: Option<String>,
    pub tag: Option<String>,
    pub include_deleted: bool,
}

/// Filters of ListInvoices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    pub customer_id: Option<Uuid>,
    pub state: Option<InvoiceState>,
    pub overdue_only: bool,
    pub currency_code: Option<String>,
    pub due_date_from: Option<NaiveDate>,
    pub due_date_to: Option<NaiveDate>,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub customer_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub process_id: Option<Uuid>,
    pub event_types: Vec<String>,
}

impl EventFilter {
    /// Whether an event passes the filter: the in-memory form of the query `list_events` runs.
    pub fn matches(&self, event: &Event) -> bool {
        (self.customer_id.is_none() || self.customer_id == event.customer_id)
            && (self.invoice_id.is_none() || self.invoice_id == event.invoice_id)
            && (self.process_id.is_none() || self.process_id == event.process_id)
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
    }
}

/// Filters of ListNotifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub customer_id: Option<Uuid>,
    pub process_id: Option<Uuid>,
    pub state: Option<NotificationState>,
    /// The template kind (`TemplateKind::as_str`).
    pub kind: Option<&'static str>,
}

/// Filters of ListPaymentRequests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentRequestFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<PaymentRequestStatus>,
    pub currency_code: Option<String>,
}

/// Filters of ListProcesses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFilter {
    pub customer_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub state: Option<crate::domain::process::state::ProcessState>,
    pub policy_code: Option<String>,
    pub currency_code: Option<String>,
    /// Only ACTIVE, PAUSED, EXHAUSTED and ESCALATED processes.
    pub open_only: bool,
}

/// Filters of ListWebhookDeliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
}
