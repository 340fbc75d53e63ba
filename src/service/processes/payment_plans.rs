//! Payment plans of processes (RecordPaymentPlan): making one from an operator's terms, and
//! the events of what becomes of it. The engine follows a plan in `steps::payment_plans`.

use crate::domain::event::{EventPayload, EventType, NewEvent};
use crate::domain::money::Money;
use crate::domain::process::payment_plan::{
    InstalmentState, InstalmentTerms, PaymentPlan, PlanState, PlanTerms, make_plan,
};
use crate::domain::process::state::Process;
use crate::error::Error;
use crate::service::processes::process_event;
use crate::service::{Caller, Core};
use crate::storage::{Conn, Connection};
use chrono::{DateTime, NaiveDate, Utc};

/// A payment plan as the operator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlanTerms {
    /// Each instalment's date (or why the text given is not one) and decimal amount.
    pub instalments: Vec<(Result<NaiveDate, String>, String)>,
    pub grace_days: u32,
    pub reminder_days_before: u32,
}

/// Settles the running payment plan of `p` with the payments recorded on its invoices since
/// the plan was made (see `PaymentPlan::settle`); returns whether anything changed.
pub(crate) async fn settle_plan<C: Connection>(
    conn: &Conn<C>,
    p: &mut Process,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let Some(made_at) = p
        .payment_plan
        .as_ref()
        .filter(|plan| plan.is_active())
        .map(|plan| plan.made_at)
    else {
        return Ok(false);
    };
    // Every invoice it held: one a payment settled counts too.
    let invoice_ids: Vec<_> = p.invoices.iter().map(|i| i.invoice_id).collect();
    let payments = conn.payments_recorded_since(&invoice_ids, made_at).await?;
    let Some(plan) = p.payment_plan.as_mut() else {
        return Ok(false);
    };
    let paid_before = plan.paid_minor;
    let changed = !plan.settle(&payments, now).is_empty() || plan.paid_minor != paid_before;
    Ok(changed)
}

impl Core {
    /// The plan `terms` make for a process owing `owed` (INVALID_ARGUMENT naming
    /// `instalments[i].date`, `instalments[i].amount`, `instalments`, `grace_days` or
    /// `reminder_days_before`).
    pub(crate) async fn plan_of<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        p: &Process,
        terms: &PaymentPlanTerms,
        owed: Money,
    ) -> Result<PaymentPlan, Error> {
        let customer = conn
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let terms = PlanTerms {
            instalments: terms
                .instalments
                .iter()
                .map(|(date, amount)| InstalmentTerms {
                    date: date.clone(),
                    amount_minor: p.currency.parse_amount(amount).map_err(|e| e.to_string()),
                })
                .collect(),
            grace_days: terms.grace_days,
            reminder_days_before: terms.reminder_days_before,
        };
        Ok(make_plan(
            &terms,
            owed.minor(),
            |minor| p.currency.format(minor),
            customer.details.timezone,
            self.now(),
        )?)
    }
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
