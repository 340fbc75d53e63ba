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
    PaymentAttempted,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRequestCreated,
    PaymentRequestAmountChanged,
    PaymentRequestSettled,
    PaymentRequestFailed,
    PaymentRequestSuperseded,
    PaymentRequestCanceled,
    WebhookEndpointDisabled,
    InvoiceWrittenOff,
    ProcessStarted,
    ProcessInvoiceJoined,
    ProcessStepExecuted,
    ProcessPaused,
    ProcessResumed,
    ProcessReset,
    ProcessAdvanced,
    ProcessExhausted,
    ProcessEscalated,
    ProcessResolved,
    ProcessCancelled,
    SalesInformed,
    PolicyAssigned,
    PromiseRecorded,
    PromiseKept,
    PromiseBroken,
    PaymentPlanRecorded,
    InstalmentMet,
    InstalmentMissed,
    PaymentPlanCompleted,
    PaymentPlanCancelled,
    SuspensionRequested,
    SuspensionLiftRequested,
    FeeBooked,
    InterestBooked,
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
            Self::PaymentAttempted => "payment.attempted",
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentFailed => "payment.failed",
            Self::PaymentRequestCreated => "payment_request.created",
            Self::PaymentRequestAmountChanged => "payment_request.amount_changed",
            Self::PaymentRequestSettled => "payment_request.settled",
            Self::PaymentRequestFailed => "payment_request.failed",
            Self::PaymentRequestSuperseded => "payment_request.superseded",
            Self::PaymentRequestCanceled => "payment_request.canceled",
            Self::WebhookEndpointDisabled => "webhook_endpoint.disabled",
            Self::InvoiceWrittenOff => "invoice.written_off",
            Self::ProcessStarted => "process.started",
            Self::ProcessInvoiceJoined => "process.invoice_joined",
            Self::ProcessStepExecuted => "process.step_executed",
            Self::ProcessPaused => "process.paused",
            Self::ProcessResumed => "process.resumed",
            Self::ProcessReset => "process.reset",
            Self::ProcessAdvanced => "process.advanced",
            Self::ProcessExhausted => "process.exhausted",
            Self::ProcessEscalated => "process.escalated",
            Self::ProcessResolved => "process.resolved",
            Self::ProcessCancelled => "process.cancelled",
            Self::SalesInformed => "sales.informed",
            Self::PolicyAssigned => "policy.assigned",
            Self::PromiseRecorded => "promise.recorded",
            Self::PromiseKept => "promise.kept",
            Self::PromiseBroken => "promise.broken",
            Self::PaymentPlanRecorded => "payment_plan.recorded",
            Self::InstalmentMet => "payment_plan.instalment_met",
            Self::InstalmentMissed => "payment_plan.instalment_missed",
            Self::PaymentPlanCompleted => "payment_plan.completed",
            Self::PaymentPlanCancelled => "payment_plan.cancelled",
            Self::SuspensionRequested => "suspension.requested",
            Self::SuspensionLiftRequested => "suspension.lift_requested",
            Self::FeeBooked => "fee.booked",
            Self::InterestBooked => "interest.booked",
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
    PaymentAttempt {
        payment_request_id: String,
        provider: String,
        amount: String,
        currency_code: String,
        idempotency_key: String,
        invoice_external_ids: Vec<String>,
        decline_code: String,
        decline_message: String,
        hard_decline: bool,
        provider_reference: String,
    },
    PaymentRequest {
        payment_request_id: String,
        /// Status after the change, as `PaymentRequestStatus::as_str`.
        status: String,
        amount: String,
        currency_code: String,
        invoice_external_ids: Vec<String>,
        superseded_by_id: String,
        payment_link: String,
    },
    Process {
        policy_code: String,
        policy_version: i32,
        /// As `PolicyScope::as_str`.
        scope: String,
        /// As `ProcessState::as_str`; `previous_state` empty for process.started.
        state: String,
        previous_state: String,
        /// As `PauseReason::as_str`, empty unless paused.
        pause_reason: String,
        step_index: i32,
        step_name: String,
        attempt: i32,
        /// As `StepTrigger::as_str`; empty unless a step ran.
        trigger: String,
        action_outcomes: Vec<super::process::state::ActionOutcome>,
        currency_code: String,
        amount_due: String,
        invoice_external_ids: Vec<String>,
        next_step_at: Option<DateTime<Utc>>,
        note: String,
        sales_rep_email: String,
        notification_id: String,
        /// Who gave the command behind the event (`api_key:<id>`); empty for the engine's own.
        #[serde(default)]
        actor: String,
    },
    Charge {
        charge_id: String,
        /// As `ChargeKind::as_str`.
        charge_kind: String,
        invoice_external_id: String,
        amount: String,
        currency_code: String,
        step_index: i32,
        interest_from_date: String,
        interest_to_date: String,
        annual_rate_percent: String,
    },
    PolicyAssigned {
        policy_code: String,
        previous_policy_code: String,
        apply_to_open_processes: bool,
        moved_process_ids: Vec<String>,
    },
    Promise {
        /// YYYY-MM-DD.
        promised_date: String,
        /// Decimal string; empty = the full amount due.
        amount: String,
        currency_code: String,
        note: String,
    },
    PaymentPlan {
        plan_id: String,
        /// The plan's state after the change, as `PlanState::as_str`.
        state: String,
        /// 1-based number of the instalment met or missed; 0 for the plan as a whole.
        instalment_number: i32,
        /// YYYY-MM-DD of that instalment; empty for the plan as a whole.
        instalment_date: String,
        /// Decimal string of that instalment; empty for the plan as a whole.
        instalment_amount: String,
        /// Payments since the plan was made, decimal string.
        paid_amount: String,
        /// What the instalments add up to, decimal string.
        total_amount: String,
        instalment_count: i32,
        currency_code: String,
        note: String,
    },
    WebhookEndpoint {
        endpoint_id: String,
        url: String,
        disabled_reason: String,
        consecutive_failures: i32,
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

    /// The money an event of the collections report is about: what an `invoice.written_off`
    /// wrote off. `None` for every other event.
    pub fn reported_amount(&self) -> Option<super::money::Money> {
        match (&self.event_type, &self.payload) {
            (
                EventType::InvoiceWrittenOff,
                EventPayload::Invoice {
                    currency_code,
                    amount_due,
                    ..
                },
            ) => {
                let currency = super::money::Currency::from_code(currency_code)?;
                let minor = currency.parse_amount(amount_due).ok()?;
                Some(super::money::Money::new(currency, minor))
            }
            _ => None,
        }
    }

    /// The same event with the reason the caller gave for the change (invoice events only).
    pub fn with_reason(mut self, why: &str) -> NewEvent {
        if let EventPayload::Invoice { reason, .. } = &mut self.payload {
            *reason = why.to_owned();
        }
        self
    }

    /// An event about a payment request (its customer and process, no single invoice).
    fn about_payment_request(
        event_type: EventType,
        request: &super::payment_request::PaymentRequest,
        at: DateTime<Utc>,
        payload: EventPayload,
    ) -> NewEvent {
        NewEvent {
            event_type,
            occurred_at: at,
            customer_id: Some(request.customer_id),
            customer_external_id: request.customer_external_id.clone(),
            invoice_id: None,
            invoice_external_id: String::new(),
            process_id: request.process_id,
            payload,
        }
    }

    /// A payment request event carrying a snapshot of the request after the change.
    pub fn payment_request(
        event_type: EventType,
        request: &super::payment_request::PaymentRequest,
        at: DateTime<Utc>,
    ) -> NewEvent {
        Self::about_payment_request(
            event_type,
            request,
            at,
            EventPayload::PaymentRequest {
                payment_request_id: request.id.to_string(),
                status: request.status.as_str().into(),
                amount: request.currency.format(request.amount_minor),
                currency_code: request.currency.code().into(),
                invoice_external_ids: request.invoice_external_ids(),
                superseded_by_id: request
                    .superseded_by
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                payment_link: request.payment_link.clone(),
            },
        )
    }

    /// A charge event of a payment request: attempted, succeeded, or failed with `decline`.
    pub fn payment_attempt(
        event_type: EventType,
        request: &super::payment_request::PaymentRequest,
        provider: &str,
        decline: Option<&super::payment_request::Decline>,
        at: DateTime<Utc>,
    ) -> NewEvent {
        let decline = decline.cloned().unwrap_or_default();
        Self::about_payment_request(
            event_type,
            request,
            at,
            EventPayload::PaymentAttempt {
                payment_request_id: request.id.to_string(),
                provider: provider.to_owned(),
                amount: request.currency.format(request.amount_minor),
                currency_code: request.currency.code().into(),
                idempotency_key: request.charge_idempotency_key.clone(),
                invoice_external_ids: request.invoice_external_ids(),
                decline_code: decline.code,
                decline_message: decline.message,
                hard_decline: decline.hard,
                provider_reference: request.provider_reference.clone(),
            },
        )
    }

    /// `webhook_endpoint.disabled`: the server gave up on an endpoint.
    pub fn webhook_endpoint_disabled(
        endpoint: &super::webhook::WebhookEndpoint,
        at: DateTime<Utc>,
    ) -> NewEvent {
        NewEvent {
            event_type: EventType::WebhookEndpointDisabled,
            occurred_at: at,
            customer_id: None,
            customer_external_id: String::new(),
            invoice_id: None,
            invoice_external_id: String::new(),
            process_id: None,
            payload: EventPayload::WebhookEndpoint {
                endpoint_id: endpoint.id.to_string(),
                url: endpoint.url.clone(),
                disabled_reason: endpoint.disabled_reason.clone(),
                consecutive_failures: endpoint.consecutive_failures,
            },
        }
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
