//! Event conversions and the event-reading RPCs of DunningService.

use super::convert::{self, timestamp};
use super::processes::plan_state_to_proto;
use crate::domain::event::{Event, EventPayload};
use crate::domain::invoice::InvoiceState;
use crate::domain::money::Currency;
use crate::domain::payment_request::PaymentRequestStatus;
use crate::domain::policy::PolicyScope;
use crate::domain::process::payment_plan::PlanState;
use crate::domain::process::state::{ChargeKind, PauseReason, ProcessState, StepTrigger};
use crate::domain::query::EventFilter;
use crate::domain::validation;
use crate::error::Error;
use crate::proto;

/// Longest list of event types a filter may name.
const MAX_TYPES: usize = 100;

pub fn event_to_proto(e: &Event) -> proto::Event {
    use proto::event::Payload;
    let payload = match e.payload.clone() {
        EventPayload::Customer {
            external_id,
            changed_fields,
        } => Payload::Customer(proto::CustomerEventPayload {
            external_id,
            changed_fields,
        }),
        EventPayload::Invoice {
            invoice_external_id,
            state,
            currency_code,
            amount_due,
            due_date,
            reason,
        } => {
            let state = match InvoiceState::parse(&state) {
                Some(InvoiceState::Open) => proto::InvoiceState::Open,
                Some(InvoiceState::Paid) => proto::InvoiceState::Paid,
                Some(InvoiceState::Void) => proto::InvoiceState::Void,
                Some(InvoiceState::WrittenOff) => proto::InvoiceState::WrittenOff,
                None => proto::InvoiceState::Unspecified,
            };
            Payload::Invoice(proto::InvoiceEventPayload {
                invoice_external_id,
                state: state as i32,
                currency_code,
                amount_due,
                due_date,
                reason,
            })
        }
        EventPayload::Payment {
            payment_external_id,
            amount,
            currency_code,
            invoice_amount_due,
        } => Payload::Payment(proto::PaymentEventPayload {
            payment_external_id,
            amount,
            currency_code,
            invoice_amount_due,
        }),
        EventPayload::Notification {
            notification_id,
            template_kind,
            state,
            message_id,
            attempts,
            error,
            suppressed_reason,
            payment_request_id,
        } => Payload::Notification(proto::NotificationEventPayload {
            notification_id,
            kind: super::convert::kind_to_proto(&template_kind) as i32,
            state: super::notifications::state_name_to_proto(&state) as i32,
            message_id,
            attempts,
            error,
            suppressed_reason,
            payment_request_id,
        }),
        EventPayload::PaymentAttempt {
            payment_request_id,
            provider,
            amount,
            currency_code,
            idempotency_key,
            invoice_external_ids,
            decline_code,
            decline_message,
            hard_decline,
            provider_reference,
        } => Payload::PaymentAttempt(proto::PaymentAttemptEventPayload {
            payment_request_id,
            provider,
            amount,
            currency_code,
            idempotency_key,
            invoice_external_ids,
            decline_code,
            decline_message,
            hard_decline,
            provider_reference,
        }),
        EventPayload::PaymentRequest {
            payment_request_id,
            status,
            amount,
            currency_code,
            invoice_external_ids,
            superseded_by_id,
            payment_link,
        } => Payload::PaymentRequest(proto::PaymentRequestEventPayload {
            payment_request_id,
            status: PaymentRequestStatus::parse(&status)
                .map(super::payment_requests::status_to_proto)
                .unwrap_or(proto::PaymentRequestStatus::Unspecified) as i32,
            amount,
            currency_code,
            invoice_external_ids,
            superseded_by_id,
            payment_link,
        }),
        EventPayload::Process {
            policy_code,
            policy_version,
            scope,
            state,
            previous_state,
            pause_reason,
            step_index,
            step_name,
            attempt,
            trigger,
            action_outcomes,
            currency_code,
            amount_due,
            invoice_external_ids,
            next_step_at,
            note,
            sales_rep_email,
            notification_id,
            actor,
        } => {
            let state_of = |text: &str| {
                ProcessState::parse(text)
                    .map(super::processes::state_to_proto)
                    .unwrap_or(proto::ProcessState::Unspecified) as i32
            };
            let currency = Currency::from_code(&currency_code);
            Payload::Process(proto::ProcessEventPayload {
                policy_code,
                policy_version,
                scope: PolicyScope::parse(&scope)
                    .map(super::convert::policy::scope_to_proto)
                    .unwrap_or(proto::PolicyScope::Unspecified) as i32,
                state: state_of(&state),
                previous_state: state_of(&previous_state),
                pause_reason: super::processes::pause_reason_to_proto(PauseReason::parse(
                    &pause_reason,
                )) as i32,
                step_index,
                step_name,
                attempt,
                trigger: StepTrigger::parse(&trigger)
                    .map(super::processes::trigger_to_proto)
                    .unwrap_or(proto::StepTrigger::Unspecified) as i32,
                action_outcomes: match currency {
                    Some(currency) => action_outcomes
                        .iter()
                        .map(|o| super::processes::outcome_to_proto(o, currency))
                        .collect(),
                    None => Vec::new(),
                },
                currency_code,
                amount_due,
                invoice_external_ids,
                next_step_time: convert::optional_timestamp(next_step_at),
                note,
                sales_rep_email,
                notification_id,
                actor,
            })
        }
        EventPayload::Charge {
            charge_id,
            charge_kind,
            invoice_external_id,
            amount,
            currency_code,
            step_index,
            interest_from_date,
            interest_to_date,
            annual_rate_percent,
        } => Payload::Charge(proto::ChargeEventPayload {
            charge_id,
            kind: ChargeKind::parse(&charge_kind)
                .map(super::processes::charge_kind_to_proto)
                .unwrap_or(proto::ChargeKind::Unspecified) as i32,
            invoice_external_id,
            amount,
            currency_code,
            step_index,
            interest_from_date,
            interest_to_date,
            annual_rate_percent,
        }),
        EventPayload::PolicyAssigned {
            policy_code,
            previous_policy_code,
            apply_to_open_processes,
            moved_process_ids,
        } => Payload::PolicyAssigned(proto::PolicyAssignedEventPayload {
            policy_code,
            previous_policy_code,
            apply_to_open_processes,
            moved_process_ids,
        }),
        EventPayload::Promise {
            promised_date,
            amount,
            currency_code,
            note,
        } => Payload::Promise(proto::PromiseEventPayload {
            promised_date,
            amount,
            currency_code,
            note,
        }),
        EventPayload::PaymentPlan {
            plan_id,
            state,
            instalment_number,
            instalment_date,
            instalment_amount,
            paid_amount,
            total_amount,
            instalment_count,
            currency_code,
            note,
        } => Payload::PaymentPlan(proto::PaymentPlanEventPayload {
            plan_id,
            state: PlanState::parse(&state)
                .map_or(proto::PaymentPlanState::Unspecified, plan_state_to_proto)
                as i32,
            instalment_number,
            instalment_date,
            instalment_amount,
            paid_amount,
            total_amount,
            instalment_count,
            currency_code,
            note,
        }),
        EventPayload::WebhookEndpoint {
            endpoint_id,
            url,
            disabled_reason,
            consecutive_failures,
        } => Payload::WebhookEndpoint(proto::WebhookEndpointEventPayload {
            endpoint_id,
            url,
            disabled_reason,
            consecutive_failures,
        }),
    };
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    proto::Event {
        id: e.id.to_string(),
        sequence: e.sequence,
        r#type: e.event_type.clone(),
        event_time: timestamp(e.occurred_at),
        customer_id: id(e.customer_id),
        customer_external_id: e.customer_external_id.clone(),
        invoice_id: id(e.invoice_id),
        invoice_external_id: e.invoice_external_id.clone(),
        process_id: id(e.process_id),
        payload: Some(payload),
    }
}

/// The filter fields shared by ListEvents and WatchEvents.
pub struct EventFilterInput<'a> {
    pub customer_id: &'a str,
    pub customer_external_id: &'a str,
    pub invoice_id: &'a str,
    pub invoice_external_id: &'a str,
    pub process_id: &'a str,
    pub types: &'a [String],
}

/// Validates a filter; external ids are resolved by the caller of this function.
pub fn event_filter(
    input: &EventFilterInput<'_>,
) -> Result<(EventFilter, Option<String>, Option<String>), Error> {
    let optional_external = |field: &str, value: &str| {
        (!value.is_empty())
            .then(|| validation::external_id(value).map_err(|e| Error::field(field, e)))
            .transpose()
    };
    if input.types.len() > MAX_TYPES {
        return Err(Error::field(
            "types",
            format!("must name at most {MAX_TYPES} types"),
        ));
    }
    for (i, t) in input.types.iter().enumerate() {
        if t.is_empty()
            || t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
        {
            return Err(Error::field(
                format!("types[{i}]"),
                "is not an event type such as invoice.overdue",
            ));
        }
    }
    let filter = EventFilter {
        customer_id: convert::optional_uuid("customer_id", input.customer_id)?,
        invoice_id: convert::optional_uuid("invoice_id", input.invoice_id)?,
        process_id: convert::optional_uuid("process_id", input.process_id)?,
        event_types: input.types.to_vec(),
    };
    Ok((
        filter,
        optional_external("customer_external_id", input.customer_external_id)?,
        optional_external("invoice_external_id", input.invoice_external_id)?,
    ))
}
