//! The events a process change appends: step changes, promises, payment plans, resolution.

use crate::domain::event::EventPayload;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::money::Money;
use crate::domain::process::payment_plan::InstalmentState;
use crate::domain::process::payment_plan::PaymentPlan;
use crate::domain::process::payment_plan::PlanState;
use crate::domain::process::state::ActionOutcome;
use crate::domain::process::state::Process;
use crate::domain::process::state::ProcessState;
use crate::domain::process::state::Promise;
use crate::domain::process::state::StepRun;
use chrono::DateTime;
use chrono::Utc;
use uuid::Uuid;

/// The details of a process event; `step` for events about one step run.
pub(crate) struct ProcessChange<'a> {
    pub event_type: EventType,
    pub previous: Option<ProcessState>,
    pub amount_due: Money,
    pub step: Option<(&'a StepRun, &'a str)>,
    pub note: String,
    pub sales_rep_email: String,
    pub notification_id: Option<Uuid>,
    /// Who gave the command behind the change; empty for the engine's own.
    pub actor: String,
}

impl<'a> ProcessChange<'a> {
    pub fn new(event_type: EventType, previous: Option<ProcessState>, amount_due: Money) -> Self {
        Self {
            event_type,
            previous,
            amount_due,
            step: None,
            note: String::new(),
            sales_rep_email: String::new(),
            notification_id: None,
            actor: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    pub fn step(mut self, run: &'a StepRun, name: &'a str) -> Self {
        self.step = Some((run, name));
        self
    }

    pub fn event(self, p: &Process, now: DateTime<Utc>) -> NewEvent {
        let (step_index, step_name, attempt, trigger, outcomes) = match self.step {
            Some((run, name)) => (
                run.step_index as i32,
                name.to_owned(),
                run.attempt,
                run.trigger.as_str().to_owned(),
                run.outcomes.clone(),
            ),
            None => (
                p.current_step_index as i32,
                String::new(),
                0,
                String::new(),
                Vec::<ActionOutcome>::new(),
            ),
        };
        process_event(
            self.event_type,
            p,
            EventPayload::Process {
                policy_code: p.policy_code.clone(),
                policy_version: p.policy_version,
                scope: p.scope.as_str().to_owned(),
                state: p.state.as_str().to_owned(),
                previous_state: self.previous.map_or("", |s| s.as_str()).to_owned(),
                pause_reason: p.pause_reason.map_or("", |r| r.as_str()).to_owned(),
                step_index,
                step_name,
                attempt,
                trigger,
                action_outcomes: outcomes,
                currency_code: p.currency.code().to_owned(),
                amount_due: self.amount_due.to_string(),
                invoice_external_ids: p.invoices.iter().map(|i| i.external_id.clone()).collect(),
                next_step_at: p.next_step_at,
                note: self.note,
                sales_rep_email: self.sales_rep_email,
                notification_id: self
                    .notification_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                actor: self.actor,
            },
            now,
        )
    }
}

/// A promise's event (promise.recorded, .kept, .broken).
pub(crate) fn promise_event(
    event_type: EventType,
    p: &Process,
    promise: &Promise,
    note: &str,
    now: DateTime<Utc>,
) -> NewEvent {
    process_event(
        event_type,
        p,
        EventPayload::Promise {
            promised_date: promise.date.to_string(),
            amount: promise
                .amount_minor
                .map(|m| p.currency.format(m))
                .unwrap_or_default(),
            currency_code: p.currency.code().to_owned(),
            note: note.to_owned(),
        },
        now,
    )
}

/// An event about process `p` (its customer, no single invoice) with `payload`.
pub(crate) fn process_event(
    event_type: EventType,
    p: &Process,
    payload: EventPayload,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        event_type,
        occurred_at: now,
        customer_id: Some(p.customer_id),
        customer_external_id: p.customer_external_id.clone(),
        invoice_id: None,
        invoice_external_id: String::new(),
        process_id: Some(p.id),
        payload,
    }
}

/// The events of a process leaving its open states: resolved, and, when it had asked for the
/// customer's suspension, that the suspension may be lifted.
pub(crate) fn resolution_events(
    p: &Process,
    previous: ProcessState,
    amount: Money,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let mut events = Vec::new();
    // Paid in full while it waited for a promise: the promise was kept.
    if previous == ProcessState::Paused
        && let Some(promise) = &p.promise
    {
        events.push(promise_event(EventType::PromiseKept, p, promise, "", now));
    }
    events
        .push(ProcessChange::new(EventType::ProcessResolved, Some(previous), amount).event(p, now));
    if p.suspension_requested {
        events.push(
            ProcessChange::new(EventType::SuspensionLiftRequested, Some(previous), amount)
                .note("the process resolved: the customer may be reinstated")
                .event(p, now),
        );
    }
    events
}

/// An event about `plan` of process `p`: about instalment `index` (0-based), or the plan as a
/// whole.
pub(crate) fn plan_event(
    event_type: EventType,
    p: &Process,
    plan: &PaymentPlan,
    index: Option<usize>,
    note: &str,
    now: DateTime<Utc>,
) -> NewEvent {
    let instalment = index.and_then(|i| plan.instalments.get(i).map(|inst| (i, inst)));
    process_event(
        event_type,
        p,
        EventPayload::PaymentPlan {
            plan_id: plan.id.to_string(),
            state: plan.state.as_str().to_owned(),
            instalment_number: instalment.map_or(0, |(i, _)| i as i32 + 1),
            instalment_date: instalment.map_or(String::new(), |(_, inst)| inst.date.to_string()),
            instalment_amount: instalment.map_or(String::new(), |(_, inst)| {
                p.currency.format(inst.amount_minor)
            }),
            paid_amount: p.currency.format(plan.paid_minor),
            total_amount: p.currency.format(plan.total_minor),
            instalment_count: plan.instalments.len() as i32,
            currency_code: p.currency.code().to_owned(),
            note: note.to_owned(),
        },
        now,
    )
}

/// The events of what became of the process's payment plan since it was `before`: each
/// instalment met or missed, then the plan completed or cancelled (with `why`). A plan
/// replaced by another is cancelled.
pub(crate) fn plan_events(
    before: Option<&PaymentPlan>,
    p: &Process,
    why: &str,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let Some(before) = before.filter(|b| b.is_active()) else {
        return Vec::new();
    };
    let Some(after) = p.payment_plan.as_ref().filter(|a| a.id == before.id) else {
        let mut replaced = before.clone();
        replaced.cancel(now);
        return vec![plan_event(
            EventType::PaymentPlanCancelled,
            p,
            &replaced,
            None,
            "replaced by a new payment plan",
            now,
        )];
    };
    let mut events: Vec<NewEvent> = before
        .instalments
        .iter()
        .zip(&after.instalments)
        .enumerate()
        .filter(|(_, (b, _))| b.state == InstalmentState::Pending)
        .filter_map(|(i, (_, a))| match a.state {
            InstalmentState::Met => Some(plan_event(
                EventType::InstalmentMet,
                p,
                after,
                Some(i),
                "",
                now,
            )),
            InstalmentState::Missed => Some(plan_event(
                EventType::InstalmentMissed,
                p,
                after,
                Some(i),
                "",
                now,
            )),
            InstalmentState::Pending | InstalmentState::Dropped => None,
        })
        .collect();
    match after.state {
        PlanState::Completed => events.push(plan_event(
            EventType::PaymentPlanCompleted,
            p,
            after,
            None,
            "",
            now,
        )),
        PlanState::Cancelled => events.push(plan_event(
            EventType::PaymentPlanCancelled,
            p,
            after,
            None,
            why,
            now,
        )),
        PlanState::Active | PlanState::Missed => {}
    }
    events
}
