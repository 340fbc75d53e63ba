//! Running a process's steps: each one's step runs in one transaction with its step-run
//! record, outbox rows, payment requests, charges and events; the commit checks the lease is
//! still held, so a stale executor (its lease expired, a payment resolved the process) rolls
//! back. The unique key (process, step, attempt) makes a second execution impossible even if
//! two replicas race. The engine's batches are in `batch`, operator commands that run through
//! the same executor in `operations`.

mod actions;
mod batch;
mod operations;
mod payment_plans;

pub(crate) use batch::BatchCache;
pub use batch::ClaimedProcess;
pub(crate) use operations::Operation;

use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::charging::charge_outcome;
use crate::core::compose::TemplateCache;
use crate::core::process_events::ProcessChange;
use crate::core::process_events::plan_events;
use crate::core::process_events::promise_event;
use crate::core::process_events::resolution_events;
use crate::core::reconcile::amount_due;
use crate::core::reconcile::dunned_invoices;
use crate::domain::charges::DatedPayment;
use crate::domain::customer::Customer;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::Invoice;
use crate::domain::organization::Organization;
use crate::domain::policy::{ActionType, Policy};
use crate::domain::process::command::{PromiseOutcome, settle_promise};
use crate::domain::process::plan::{PlannedAction, StepFacts, condition_met, plan_action};
use crate::domain::process::schedule::{due_step, step_time};
use crate::domain::process::state::{
    ActionOutcome, Charge, OutcomeStatus, PauseReason, Process, ProcessState, StepRun, StepTrigger,
};
use crate::domain::process::{Reconciled, reconcile};
use crate::error::Error;
use crate::storage::Tx;
use batch::StepWrites;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// When the engine next has work for a process (see `Process::work_due_at`).
fn due_at(p: &Process) -> Option<DateTime<Utc>> {
    p.work_due_at()
}

/// Whether the last charge of a step before action `index` ran: conditions after it apply.
fn charge_before(policy: &Policy, step_index: usize, index: usize) -> bool {
    policy.definition.steps[step_index].actions[..index]
        .iter()
        .any(|a| a.action_type.charges())
}

/// Everything one process's step needs, inside its transaction.
struct StepRunner<'a> {
    core: &'a Core,
    tx: &'a Tx,
    caller: Caller,
    policy: &'a Policy,
    customer: &'a Customer,
    organization: &'a Organization,
    templates: &'a mut TemplateCache,
    /// The rows of the invoices the process holds (kept current as actions change them).
    invoices: Vec<Invoice>,
    /// Everything the process booked so far (including this step's bookings).
    booked: Vec<Charge>,
    /// Payments of the invoices, loaded when interest needs them.
    payments: Option<HashMap<Uuid, Vec<DatedPayment>>>,
    now: DateTime<Utc>,
    process: Process,
    events: Vec<NewEvent>,
    /// The batch's writes, this step's among them.
    writes: &'a mut StepWrites,
}

/// Whether a step's actions all ran or some wait for a charge's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Done,
    Waiting,
}

impl StepRunner<'_> {
    /// The trace context of the request that made the process due, taken: the step about to
    /// run joins that trace, the steps after it do not.
    fn take_trace_context(&mut self) -> Option<String> {
        self.process.trace_context.take()
    }

    /// The process as the step left it, with when the engine next has work for it, and the
    /// events to append.
    fn finish(self) -> (Process, Vec<NewEvent>) {
        let mut process = self.process;
        process.due_at = due_at(&process);
        (process, self.events)
    }

    /// Does what is due: brings the process in line with its invoices, finishes a step that
    /// waited for a charge, and runs the step whose time has come (the latest one, when
    /// several are: the earlier ones are recorded as superseded).
    async fn run_due(&mut self, trigger: StepTrigger) -> Result<(), Error> {
        if !self.reconcile_now()? {
            return Ok(());
        }
        if self.process.pause_reason == Some(PauseReason::PromiseToPay)
            && !(self.settle_promise().await? && self.reconcile_now()?)
        {
            // Still waiting for the promise; or, once it settled, a dispute or an exclusion
            // that came meanwhile holds the process.
            return Ok(());
        }
        if self.process.pause_reason == Some(PauseReason::PaymentPlan)
            && !(self.follow_plan().await? && self.reconcile_now()?)
        {
            // The plan runs on; or, once it ended, a dispute or an exclusion holds the
            // process.
            return Ok(());
        }
        if let Some(run_id) = self.process.waiting_step_run_id
            && self.continue_waiting(run_id, true).await? == Progress::Waiting
        {
            return Ok(());
        }
        if !matches!(
            self.process.state,
            ProcessState::Active | ProcessState::Escalated
        ) {
            return Ok(());
        }
        let policy = self.policy;
        let steps = &policy.definition.steps;
        let Some(next_at) = self.process.next_step_at else {
            return Ok(());
        };
        let Some(due) = due_step(
            steps,
            self.process.current_step_index,
            next_at,
            self.process.anchor_date,
            self.customer.details.timezone,
            self.now,
        ) else {
            return Ok(());
        };
        for index in &due.superseded {
            self.record_superseded(*index, due.run).await?;
        }
        self.run_step(due.run, trigger).await
    }

    /// Who acts, for events: the operator's key, or empty for the engine.
    fn actor(&self) -> String {
        self.caller.actor.for_events()
    }

    /// Brings the process in line with its invoices and customer (they may have changed since
    /// the step was scheduled), with the events of what changed. Returns whether it still
    /// runs: false once it resolved or paused.
    fn reconcile_now(&mut self) -> Result<bool, Error> {
        let previous = self.process.state;
        let plan_before = self.process.payment_plan.clone();
        let reconciled = reconcile(&mut self.process, &self.invoices, self.customer, self.now);
        let amount = self.amount_due()?;
        let (event, note, runs) = match reconciled {
            Reconciled::Unchanged => return Ok(true),
            Reconciled::Resolved => {
                // A plan still running ended with the process.
                self.events.extend(plan_events(
                    plan_before.as_ref(),
                    &self.process,
                    "",
                    self.now,
                ));
                self.events
                    .extend(resolution_events(&self.process, previous, amount, self.now));
                return Ok(false);
            }
            Reconciled::Paused(reason) => (
                EventType::ProcessPaused,
                reason.as_str().to_lowercase(),
                false,
            ),
            Reconciled::Resumed => (EventType::ProcessResumed, String::new(), true),
        };
        self.events.push(
            ProcessChange::new(event, Some(previous), amount)
                .note(note)
                .event(&self.process, self.now),
        );
        Ok(runs)
    }

    /// Keeps or breaks the promise the process waits for once its deadline passed, and runs
    /// the process again. Returns whether it runs.
    async fn settle_promise(&mut self) -> Result<bool, Error> {
        if self.process.state != ProcessState::Paused {
            return Ok(self.process.state.is_open());
        }
        let owed = self.amount_due()?;
        let paid_since = match &self.process.promise {
            Some(promise) => {
                self.tx
                    .payments_between(
                        // Every invoice it held: one the payment settled counts too.
                        &self
                            .process
                            .invoices
                            .iter()
                            .map(|i| i.invoice_id)
                            .collect::<Vec<_>>(),
                        promise.made_at,
                        promise.deadline,
                    )
                    .await?
            }
            None => 0,
        };
        let Some((promise, outcome)) =
            settle_promise(&mut self.process, owed.minor(), paid_since, self.now)
        else {
            return Ok(false);
        };
        let (event_type, note) = match outcome {
            PromiseOutcome::Kept => (EventType::PromiseKept, "the promise was kept"),
            PromiseOutcome::Broken => (EventType::PromiseBroken, "the promise was broken"),
        };
        self.events.push(promise_event(
            event_type,
            &self.process,
            &promise,
            "",
            self.now,
        ));
        self.events.push(
            ProcessChange::new(EventType::ProcessResumed, Some(ProcessState::Paused), owed)
                .note(note)
                .event(&self.process, self.now),
        );
        Ok(true)
    }

    fn amount_due(&self) -> Result<crate::domain::money::Money, Error> {
        amount_due(&self.process, &self.invoices)
    }

    /// The invoices the process duns now: held, open, something due, not disputed or
    /// blocked on their own.
    fn dunned(&self) -> Vec<Invoice> {
        dunned_invoices(&self.process, &self.invoices)
    }

    async fn record_superseded(&mut self, index: usize, by: usize) -> Result<(), Error> {
        let detail = format!(
            "superseded by step {} ({})",
            by + 1,
            self.policy.definition.steps[by].name
        );
        let run = self.new_run(index, StepTrigger::Scheduled, &detail);
        self.writes.step_runs.push(run);
        Ok(())
    }

    /// A run of step `index` now, every action SKIPPED with `detail` until it runs.
    fn new_run(&self, index: usize, trigger: StepTrigger, detail: &str) -> StepRun {
        let step = &self.policy.definition.steps[index];
        StepRun {
            id: new_id(),
            organization_id: self.caller.organization_id,
            process_id: self.process.id,
            step_index: index,
            attempt: self.process.attempt,
            step_name: step.name.clone(),
            policy_version: self.policy.version,
            trigger,
            executed_at: self.now,
            outcomes: step
                .actions
                .iter()
                .map(|a| ActionOutcome::new(a.action_type, OutcomeStatus::Skipped, detail))
                .collect(),
            waiting_from: None,
            payment_request_id: None,
            payment_failed: false,
        }
    }

    /// Runs step `index` from its first action and schedules the following one from now.
    async fn run_step(&mut self, index: usize, trigger: StepTrigger) -> Result<(), Error> {
        let policy = self.policy;
        let steps = &policy.definition.steps;
        let tz = self.customer.details.timezone;
        self.process.current_step_index = index + 1;
        self.process.last_step_at = Some(self.now);
        self.process.next_step_at = steps
            .get(index + 1)
            .map(|next| step_time(next, self.process.anchor_date, tz, self.now));
        self.process.updated_at = self.now;
        let mut run = self.new_run(index, trigger, "not run");
        let progress = self.run_actions(&mut run, 0).await?;
        let executed = self.step_executed(&run, progress);
        self.writes.step_runs.push(run);
        executed
    }

    /// The event of a step run, and EXHAUSTED after the last step's actions all ran.
    fn step_executed(&mut self, run: &StepRun, progress: Progress) -> Result<(), Error> {
        let amount = self.amount_due()?;
        let name = self.policy.definition.steps[run.step_index].name.clone();
        self.events.push(
            ProcessChange::new(
                EventType::ProcessStepExecuted,
                Some(self.process.state),
                amount,
            )
            .step(run, &name)
            .event(&self.process, self.now),
        );
        let steps = self.policy.definition.steps.len();
        if progress == Progress::Done
            && self.process.state == ProcessState::Active
            && self.process.current_step_index >= steps
        {
            self.process.state = ProcessState::Exhausted;
            self.process.next_step_at = None;
            self.process.updated_at = self.now;
            self.events.push(
                ProcessChange::new(
                    EventType::ProcessExhausted,
                    Some(ProcessState::Active),
                    amount,
                )
                .event(&self.process, self.now),
            );
        }
        Ok(())
    }

    /// Finishes the step run that waits for a charge's outcome, if the outcome is known or
    /// the wait is over (`wait` false: an operator moves on, the outcome is not awaited).
    async fn continue_waiting(&mut self, run_id: Uuid, wait: bool) -> Result<Progress, Error> {
        let mut run = self
            .tx
            .find_step_run(run_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("step run {run_id} is missing")))?;
        let from = run.waiting_from.unwrap_or(run.outcomes.len());
        let request = match run.payment_request_id {
            Some(id) => {
                self.tx
                    .find_payment_request(self.caller.organization_id, id, false)
                    .await?
            }
            None => None,
        };
        let outcome = request.as_ref().and_then(charge_outcome);
        let charge_index = from.saturating_sub(1);
        match outcome {
            Some(Ok(())) => {
                run.payment_failed = false;
                run.outcomes[charge_index].follow_charge(outcome);
            }
            Some(Err(_)) => {
                run.payment_failed = true;
                run.outcomes[charge_index].follow_charge(outcome);
                if request
                    .as_ref()
                    .and_then(|r| r.last_decline.as_ref())
                    .is_some_and(|d| d.hard)
                {
                    self.process.payment_retries_blocked = true;
                }
            }
            None => {
                let deadline = due_at(&self.process);
                if wait && deadline.is_some_and(|d| d > self.now) {
                    return Ok(Progress::Waiting);
                }
                for outcome in &mut run.outcomes[from..] {
                    outcome.status = OutcomeStatus::Skipped;
                    outcome.detail = "payment outcome unknown".into();
                }
                run.waiting_from = None;
                self.process.waiting_step_run_id = None;
                self.tx.update_step_run(&run).await?;
                return self.finish_continued(&run, Progress::Done);
            }
        }
        run.waiting_from = None;
        self.process.waiting_step_run_id = None;
        let progress = self.run_actions(&mut run, from).await?;
        self.tx.update_step_run(&run).await?;
        self.finish_continued(&run, progress)
    }

    fn finish_continued(&mut self, run: &StepRun, progress: Progress) -> Result<Progress, Error> {
        self.process.updated_at = self.now;
        self.step_executed(run, progress)?;
        Ok(progress)
    }

    /// Runs the actions of `run`'s step from `from` on, in order, until one waits for a
    /// charge's outcome or the process ends.
    async fn run_actions(&mut self, run: &mut StepRun, from: usize) -> Result<Progress, Error> {
        let policy = self.policy;
        let actions = &policy.definition.steps[run.step_index].actions;
        for index in from..actions.len() {
            if !self.process.state.is_open() {
                run.outcomes[index].detail = "the process ended".into();
                continue;
            }
            let action = &actions[index];
            let failed =
                charge_before(self.policy, run.step_index, index).then_some(run.payment_failed);
            if let Err(why) = condition_met(action, failed) {
                run.outcomes[index] =
                    ActionOutcome::new(action.action_type, OutcomeStatus::Skipped, why);
                continue;
            }
            let dunned = self.dunned();
            if matches!(action.action_type, ActionType::AccrueInterest) && self.payments.is_none() {
                let ids: Vec<Uuid> = dunned.iter().map(|i| i.id).collect();
                self.payments = Some(
                    self.tx
                        .dated_payments(&ids, self.customer.details.timezone)
                        .await?,
                );
            }
            let empty = HashMap::new();
            let facts = StepFacts {
                invoices: &dunned,
                payments: self.payments.as_ref().unwrap_or(&empty),
                booked: &self.booked,
                policy_code: &self.policy.code,
                policy_version: self.policy.version,
                step_index: run.step_index,
                local_date: self
                    .now
                    .with_timezone(&self.customer.details.timezone)
                    .date_naive(),
                has_sales_rep: !self.customer.details.sales_rep_email.is_empty(),
                has_agency_email: !self.policy.definition.collection_agency_email.is_empty(),
                cannot_charge: self.cannot_charge(&dunned),
                payment_retries_blocked: self.process.payment_retries_blocked,
            };
            let plan = plan_action(action, &facts);
            let outcome = match plan {
                PlannedAction::Skip {
                    detail,
                    failed_charge,
                } => {
                    if failed_charge {
                        run.payment_failed = true;
                    }
                    ActionOutcome::new(action.action_type, OutcomeStatus::Skipped, detail)
                }
                PlannedAction::Email(kind) => {
                    self.email(action.action_type, kind, &dunned, Some(run), "")
                        .await?
                }
                PlannedAction::Book(charges) => self.book(action.action_type, charges, run).await?,
                PlannedAction::Charge => {
                    let (outcome, chargeable) =
                        self.charge(action.action_type, index, &dunned, run).await?;
                    run.outcomes[index] = outcome;
                    if run.payment_request_id.is_none() || !chargeable {
                        run.payment_failed = true;
                        continue;
                    }
                    if index + 1 < actions.len() {
                        run.waiting_from = Some(index + 1);
                        self.process.waiting_step_run_id = Some(run.id);
                        return Ok(Progress::Waiting);
                    }
                    continue;
                }
                PlannedAction::RequestSuspension => {
                    self.process.suspension_requested = true;
                    let amount = self.amount_due()?;
                    self.events.push(
                        ProcessChange::new(
                            EventType::SuspensionRequested,
                            Some(self.process.state),
                            amount,
                        )
                        .note(format!("requested by step {}", run.step_index + 1))
                        .event(&self.process, self.now),
                    );
                    ActionOutcome::new(
                        action.action_type,
                        OutcomeStatus::Succeeded,
                        "suspension requested",
                    )
                }
                PlannedAction::Escalate => {
                    self.hand_over(Some(run), "", "escalated by the policy")
                        .await?
                }
                PlannedAction::WriteOff => self.write_off(action.action_type, &dunned).await?,
            };
            run.outcomes[index] = outcome;
        }
        Ok(Progress::Done)
    }
}
