//! Process conversions and the process-reading RPCs of DunningService.

use super::convert::policy::{action_type_to_proto, scope_to_proto};
use super::convert::{self, optional_timestamp, timestamp};
use super::{Api, authenticate};
use crate::domain::money::{Currency, Money};
use crate::domain::process::command::{CommandKind, ProcessCommand};
use crate::domain::process::payment_plan::{InstalmentState, PaymentPlan, PlanState};
use crate::domain::process::state::{
    ActionOutcome, Charge, ChargeKind, OutcomeStatus, PauseReason, ProcessState, StepRun,
    StepTrigger,
};
use crate::domain::query::ProcessFilter;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::service::InvoiceRef;
use crate::service::processes::{ProcessQuery, ProcessView};
use tonic::{Request, Response, Status};

pub fn state_to_proto(state: ProcessState) -> proto::ProcessState {
    match state {
        ProcessState::Active => proto::ProcessState::Active,
        ProcessState::Paused => proto::ProcessState::Paused,
        ProcessState::Resolved => proto::ProcessState::Resolved,
        ProcessState::Exhausted => proto::ProcessState::Exhausted,
        ProcessState::Escalated => proto::ProcessState::Escalated,
        ProcessState::Cancelled => proto::ProcessState::Cancelled,
    }
}

fn state_from_proto(state: proto::ProcessState) -> Option<ProcessState> {
    ProcessState::ALL
        .into_iter()
        .find(|s| state_to_proto(*s) == state)
}

pub fn pause_reason_to_proto(reason: Option<PauseReason>) -> proto::PauseReason {
    match reason {
        None => proto::PauseReason::Unspecified,
        Some(PauseReason::Manual) => proto::PauseReason::Manual,
        Some(PauseReason::Dispute) => proto::PauseReason::Dispute,
        Some(PauseReason::PromiseToPay) => proto::PauseReason::PromiseToPay,
        Some(PauseReason::DunningBlocked) => proto::PauseReason::DunningBlocked,
        Some(PauseReason::CustomerExcluded) => proto::PauseReason::CustomerExcluded,
        Some(PauseReason::PaymentPlan) => proto::PauseReason::PaymentPlan,
    }
}

pub(super) fn plan_state_to_proto(state: PlanState) -> proto::PaymentPlanState {
    match state {
        PlanState::Active => proto::PaymentPlanState::Active,
        PlanState::Completed => proto::PaymentPlanState::Completed,
        PlanState::Missed => proto::PaymentPlanState::Missed,
        PlanState::Cancelled => proto::PaymentPlanState::Cancelled,
    }
}

fn instalment_state_to_proto(state: InstalmentState) -> proto::InstalmentState {
    match state {
        InstalmentState::Pending => proto::InstalmentState::Pending,
        InstalmentState::Met => proto::InstalmentState::Met,
        InstalmentState::Missed => proto::InstalmentState::Missed,
        InstalmentState::Dropped => proto::InstalmentState::Dropped,
    }
}

fn plan_to_proto(plan: &PaymentPlan, currency: Currency) -> proto::PaymentPlan {
    proto::PaymentPlan {
        id: plan.id.to_string(),
        state: plan_state_to_proto(plan.state) as i32,
        create_time: timestamp(plan.made_at),
        end_time: optional_timestamp(plan.ended_at),
        grace_days: plan.grace_days as i32,
        reminder_days_before: plan.reminder_days_before as i32,
        total_amount: currency.format(plan.total_minor),
        paid_amount: currency.format(plan.paid_minor),
        instalments: plan
            .instalments
            .iter()
            .enumerate()
            .map(|(index, i)| proto::Instalment {
                date: i.date.to_string(),
                amount: currency.format(i.amount_minor),
                cumulative_amount: currency.format(plan.cumulative_minor(index)),
                state: instalment_state_to_proto(i.state) as i32,
                deadline_time: timestamp(i.deadline),
                reminder_time: optional_timestamp(i.remind_at),
                reminded_time: optional_timestamp(i.reminded_at),
                settle_time: optional_timestamp(i.settled_at),
            })
            .collect(),
    }
}

pub fn trigger_to_proto(trigger: StepTrigger) -> proto::StepTrigger {
    match trigger {
        StepTrigger::Scheduled => proto::StepTrigger::Scheduled,
        StepTrigger::Advanced => proto::StepTrigger::Advanced,
    }
}

pub fn charge_kind_to_proto(kind: ChargeKind) -> proto::ChargeKind {
    match kind {
        ChargeKind::Fee => proto::ChargeKind::Fee,
        ChargeKind::Interest => proto::ChargeKind::Interest,
    }
}

/// An action outcome; `currency` formats its charge amount.
pub fn outcome_to_proto(
    o: &ActionOutcome,
    currency: crate::domain::money::Currency,
) -> proto::ActionOutcome {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    proto::ActionOutcome {
        action_type: action_type_to_proto(o.action_type) as i32,
        status: match o.status {
            OutcomeStatus::Succeeded => proto::ActionOutcomeStatus::Succeeded,
            OutcomeStatus::Pending => proto::ActionOutcomeStatus::Pending,
            OutcomeStatus::Failed => proto::ActionOutcomeStatus::Failed,
            OutcomeStatus::Skipped => proto::ActionOutcomeStatus::Skipped,
        } as i32,
        detail: o.detail.clone(),
        notification_id: id(o.notification_id),
        payment_request_id: id(o.payment_request_id),
        charge_amount: o
            .charge_minor
            .map(|m| Money::new(currency, m).to_string())
            .unwrap_or_default(),
    }
}

fn step_run_to_proto(run: &StepRun, currency: crate::domain::money::Currency) -> proto::StepRun {
    proto::StepRun {
        step_index: run.step_index as i32,
        step_name: run.step_name.clone(),
        attempt: run.attempt,
        executed_time: timestamp(run.executed_at),
        trigger: trigger_to_proto(run.trigger) as i32,
        action_outcomes: run
            .outcomes
            .iter()
            .map(|o| outcome_to_proto(o, currency))
            .collect(),
    }
}

pub(super) fn charge_to_proto(c: &Charge) -> proto::Charge {
    let (from, to) = c.period_dates();
    proto::Charge {
        id: c.id.to_string(),
        kind: charge_kind_to_proto(c.kind) as i32,
        invoice_id: c.invoice_id.to_string(),
        invoice_external_id: c.invoice_external_id.clone(),
        amount: c.currency.format(c.amount_minor),
        currency_code: c.currency.code().to_owned(),
        booked_time: timestamp(c.booked_at),
        step_index: c.step_index as i32,
        interest_from_date: from,
        interest_to_date: to,
        annual_rate_percent: c.rate_text(),
    }
}

pub fn process_to_proto(view: ProcessView) -> proto::Process {
    let p = view.process;
    let currency = p.currency;
    // A promise is shown while the process waits for it (one kept at the resolution stays
    // on the row).
    let open_promise = p
        .promise
        .clone()
        .filter(|_| p.pause_reason == Some(PauseReason::PromiseToPay));
    proto::Process {
        id: p.id.to_string(),
        policy_code: p.policy_code,
        policy_version: p.policy_version,
        scope: scope_to_proto(p.scope) as i32,
        scope_key: p.scope_key,
        customer_id: p.customer_id.to_string(),
        customer_external_id: p.customer_external_id,
        currency_code: currency.code().to_owned(),
        invoice_ids: p
            .invoices
            .iter()
            .map(|i| i.invoice_id.to_string())
            .collect(),
        invoice_external_ids: p.invoices.iter().map(|i| i.external_id.clone()).collect(),
        state: state_to_proto(p.state) as i32,
        pause_reason: pause_reason_to_proto(p.pause_reason) as i32,
        current_step_index: p.current_step_index as i32,
        next_step_time: if matches!(p.state, ProcessState::Active | ProcessState::Escalated) {
            optional_timestamp(p.next_step_at)
        } else {
            None
        },
        promised_date: open_promise
            .as_ref()
            .map(|promise| promise.date.to_string())
            .unwrap_or_default(),
        history: view
            .history
            .iter()
            .map(|r| step_run_to_proto(r, currency))
            .collect(),
        charges: view.charges.iter().map(charge_to_proto).collect(),
        start_time: timestamp(p.started_at),
        end_time: optional_timestamp(p.ended_at),
        update_time: timestamp(p.updated_at),
        amount_due: view.amount_due.to_string(),
        promised_amount: open_promise
            .as_ref()
            .and_then(|promise| promise.amount_minor)
            .map(|m| currency.format(m))
            .unwrap_or_default(),
        note: p.note,
        payment_retries_blocked: p.payment_retries_blocked,
        commands: view.commands.iter().map(command_to_proto).collect(),
        payment_plan: p
            .payment_plan
            .as_ref()
            .map(|plan| plan_to_proto(plan, currency)),
    }
}

fn command_type_to_proto(kind: CommandKind) -> proto::CommandType {
    match kind {
        CommandKind::Pause => proto::CommandType::Pause,
        CommandKind::Resume => proto::CommandType::Resume,
        CommandKind::Cancel => proto::CommandType::Cancel,
        CommandKind::Reset => proto::CommandType::Reset,
        CommandKind::Advance => proto::CommandType::Advance,
        CommandKind::Escalate => proto::CommandType::Escalate,
        CommandKind::InformSales => proto::CommandType::InformSales,
        CommandKind::PromiseToPay => proto::CommandType::PromiseToPay,
        CommandKind::PaymentPlan => proto::CommandType::PaymentPlan,
    }
}

fn command_to_proto(c: &ProcessCommand) -> proto::ProcessCommand {
    proto::ProcessCommand {
        command: command_type_to_proto(c.kind) as i32,
        actor: c.actor.clone(),
        comment: c.comment.clone(),
        previous_state: state_to_proto(c.previous_state) as i32,
        state: state_to_proto(c.state) as i32,
        step_index: c.step_index as i32,
        notification_id: c
            .notification_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        time: timestamp(c.created_at),
    }
}

pub async fn get(
    api: &Api,
    request: Request<proto::GetProcessRequest>,
) -> Result<Response<proto::GetProcessResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let id = convert::uuid("id", &request.get_ref().id)?;
    let view = api.services.processes.get_process(caller, id).await?;
    Ok(Response::new(proto::GetProcessResponse {
        process: Some(process_to_proto(view)),
    }))
}

pub async fn list(
    api: &Api,
    request: Request<proto::ListProcessesRequest>,
) -> Result<Response<proto::ListProcessesResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let page = convert::page(req.page_size, req.page_token)?;
    let customer = convert::customer_filter(&req.customer_id, &req.customer_external_id)?;
    let mut v = Violations::new();
    let state = match proto::ProcessState::try_from(req.state) {
        Ok(proto::ProcessState::Unspecified) => None,
        Ok(state) => state_from_proto(state),
        Err(_) => {
            v.add("state", "is not a known process state");
            None
        }
    };
    let currency_code = (!req.currency_code.is_empty())
        .then(|| convert::currency("currency_code", &req.currency_code, &mut v))
        .flatten()
        .map(|c| c.code().to_owned());
    let policy_code = if req.policy_code.is_empty() {
        None
    } else {
        v.check(
            "policy_code",
            super::convert::policy::policy_code(&req.policy_code),
        )
    };
    let invoice = if req.invoice_external_id.is_empty() {
        None
    } else {
        v.check(
            "invoice_external_id",
            validation::external_id(&req.invoice_external_id),
        )
        .map(InvoiceRef::ExternalId)
    };
    v.finish().map_err(Error::from)?;
    let query = ProcessQuery {
        customer,
        invoice,
        filter: ProcessFilter {
            state,
            policy_code,
            currency_code,
            open_only: req.open_only,
            ..Default::default()
        },
    };
    let (views, next_page_token) = api
        .services
        .processes
        .list_processes(caller, &query, &page)
        .await?;
    Ok(Response::new(proto::ListProcessesResponse {
        processes: views.into_iter().map(process_to_proto).collect(),
        next_page_token,
    }))
}
