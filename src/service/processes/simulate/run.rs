//! Running the engine over the copies with the simulated clock, and reading back the timeline
//! of what it did.

use super::copies::StandIns;
use super::{Copy, HORIZON_DAYS, MAX_ROUNDS_AT_ONE_INSTANT, SimulatedAction, SimulatedStep};
use crate::clock::{Clock, ManualClock};
use crate::core::Caller;
use crate::core::Core;
use crate::domain::customer::Customer;
use crate::domain::payment_request::Decline;
use crate::domain::policy::Policy;
use crate::domain::process::state::{Charge, OutcomeStatus, ProcessState, StepRun};
use crate::engine::steps::{BatchCache, ClaimedProcess};
use crate::error::Error;
use crate::storage::Tx;
use chrono::Duration;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What the engine did in a simulation: the processes it started, in order, and for each
/// step run the state its process was left in and the amount it was about.
pub(super) struct SimulationRun {
    processes: Vec<Uuid>,
    state_after: HashMap<Uuid, ProcessState>,
    amount_at: HashMap<Uuid, i64>,
}

/// Moves the simulated clock from one due time to the next, running at each what the
/// engine runs: the starter for the customer, the due steps, and the payment worker
/// (declining) for the charges they opened.
pub(super) async fn run_simulation(
    engine: &Core,
    tx: &Tx,
    caller: Caller,
    customer: &Customer,
    policy: &Policy,
    copies: &[Copy],
    clock: &ManualClock,
) -> Result<SimulationRun, Error> {
    let start = clock.now();
    let organization_id = caller.organization_id;
    let mut cache = BatchCache::with_policy(organization_id, policy);
    let can_charge = customer.details.payment_method.is_some();
    let mut run = SimulationRun {
        processes: Vec::new(),
        state_after: HashMap::new(),
        amount_at: HashMap::new(),
    };
    let invoices: HashMap<Uuid, i64> = copies
        .iter()
        .map(|c| (c.invoice.id, c.invoice.amount_due_minor()))
        .collect();
    let mut worked: HashSet<Uuid> = HashSet::new();
    let horizon = start + Duration::days(HORIZON_DAYS);
    let (mut now, mut rounds_here) = (start, 0usize);
    loop {
        clock.set(now);
        let looked = engine
            .start_for_customer(tx, caller, customer.id, Some(policy))
            .await?;
        let open = tx
            .open_processes_of_customer(organization_id, customer.id)
            .await?;
        for p in &open {
            if !run.processes.contains(&p.id) {
                run.processes.push(p.id);
            }
        }
        let due: Vec<ClaimedProcess> = open
            .iter()
            .filter_map(|p| {
                let lease = p.due_at.filter(|at| *at <= now)?;
                Some(ClaimedProcess {
                    organization_id,
                    process_id: p.id,
                    lease,
                })
            })
            .collect();
        if !due.is_empty() {
            let claims: Vec<&ClaimedProcess> = due.iter().collect();
            engine
                .run_batch_of_organization(tx, organization_id, &claims, &mut cache)
                .await?;
            let ids: Vec<Uuid> = due.iter().map(|c| c.process_id).collect();
            for process in tx.find_processes(organization_id, &ids, false).await? {
                let amount: i64 = process
                    .invoices
                    .iter()
                    .filter_map(|i| invoices.get(&i.invoice_id))
                    .sum();
                for step in tx.step_runs_of(process.id).await? {
                    if step.executed_at == now {
                        run.state_after.insert(step.id, process.state);
                        run.amount_at.insert(step.id, amount);
                    }
                    if let Some(request_id) = step.payment_request_id
                        && worked.insert(request_id)
                    {
                        let decline = Decline {
                            code: "simulated_decline".into(),
                            message: "the simulation declines every charge".into(),
                            hard: false,
                        };
                        engine
                            .work_with_declining_provider(
                                tx, caller, request_id, can_charge, decline,
                            )
                            .await?;
                    }
                }
            }
        }
        let open = tx
            .open_processes_of_customer(organization_id, customer.id)
            .await?;
        let Some(next) = open
            .iter()
            .filter_map(|p| p.due_at)
            .chain(looked.next_look)
            .min()
        else {
            break;
        };
        if next > horizon {
            break;
        }
        if next <= now {
            rounds_here += 1;
            if rounds_here > MAX_ROUNDS_AT_ONE_INSTANT {
                return Err(Error::Internal(format!(
                    "the simulation made no progress at {now}"
                )));
            }
        } else {
            (now, rounds_here) = (next, 0);
        }
    }
    Ok(run)
}

impl SimulationRun {
    /// The step runs of the simulated processes with what each action did, ordered by time,
    /// process and step.
    pub(super) async fn timeline(
        &self,
        tx: &Tx,
        caller: Caller,
        policy: &Policy,
        copies: &[Copy],
        stand_ins: &StandIns,
    ) -> Result<Vec<SimulatedStep>, Error> {
        let labels: HashMap<Uuid, &str> = copies
            .iter()
            .map(|c| (c.invoice.id, c.label.as_str()))
            .collect();
        let label_of = |id: &Uuid| labels.get(id).map(|l| (*l).to_owned()).unwrap_or_default();
        let mut timeline = Vec::new();
        for (number, id) in self.processes.iter().enumerate() {
            let Some(process) = tx.find_process(caller.organization_id, *id, false).await? else {
                continue;
            };
            let invoice_labels: Vec<String> = process
                .invoices
                .iter()
                .map(|i| label_of(&i.invoice_id))
                .collect();
            let charges = tx.charges_of(*id).await?;
            let mut runs = tx.step_runs_of(*id).await?;
            runs.sort_by_key(|r| (r.executed_at, r.step_index));
            let mut total = 0i64;
            for step_run in runs {
                let booked: Vec<Charge> = charges
                    .iter()
                    .filter(|c| c.step_run_id == step_run.id)
                    .map(|c| Charge {
                        invoice_external_id: label_of(&c.invoice_id),
                        ..c.clone()
                    })
                    .collect();
                total += booked.iter().map(|c| c.amount_minor).sum::<i64>();
                let actions = simulated_actions(tx, caller, policy, &step_run, stand_ins).await?;
                timeline.push(SimulatedStep {
                    process_number: number + 1,
                    invoice_labels: invoice_labels.clone(),
                    currency: process.currency,
                    step_index: step_run.step_index,
                    step_name: step_run.step_name.clone(),
                    at: step_run.executed_at,
                    actions,
                    charges: booked,
                    amount_due_minor: self.amount_at.get(&step_run.id).copied().unwrap_or(0),
                    total_charges_minor: total,
                    state_after: self
                        .state_after
                        .get(&step_run.id)
                        .copied()
                        .unwrap_or(process.state),
                });
            }
        }
        timeline.sort_by_key(|s| (s.at, s.process_number, s.step_index));
        Ok(timeline)
    }
}

/// What each action of a step run did, with the email it queued: its own, or the payment
/// link of the payment request it opened.
pub(super) async fn simulated_actions(
    tx: &Tx,
    caller: Caller,
    policy: &Policy,
    step_run: &StepRun,
    stand_ins: &StandIns,
) -> Result<Vec<SimulatedAction>, Error> {
    let mut actions = Vec::with_capacity(step_run.outcomes.len());
    let step = &policy.definition.steps[step_run.step_index];
    for (action, outcome) in step.actions.iter().zip(&step_run.outcomes) {
        let mut notification_id = outcome.notification_id;
        if notification_id.is_none()
            && let Some(request_id) = outcome.payment_request_id
            && let Some(request) = tx
                .find_payment_request(caller.organization_id, request_id, false)
                .await?
        {
            notification_id = request.email_notification_id;
        }
        let email = match notification_id {
            Some(id) => tx
                .find_notification(id)
                .await?
                .map(|n| stand_ins.restore(n)),
            None => None,
        };
        actions.push(SimulatedAction {
            action: action.clone(),
            executed: outcome.status != OutcomeStatus::Skipped,
            detail: outcome.detail.clone(),
            charge_minor: outcome.charge_minor,
            email,
        });
    }
    Ok(actions)
}
