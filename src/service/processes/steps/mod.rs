//! Running steps: due processes are found by index, claimed with a lease (a compare-and-set
//! on `due_at`), and each one's step runs in one transaction with its step-run record, outbox
//! rows, payment requests, charges and events; the commit checks the lease is still held, so
//! a stale executor (its lease expired, a payment resolved the process) rolls back. The unique
//! key (process, step, attempt) makes a second execution impossible even if two replicas race.

mod actions;

use super::{ProcessChange, amount_due, resolution_events};
use crate::domain::charges::DatedPayment;
use crate::domain::customer::Customer;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::{Invoice, InvoiceState};
use crate::domain::notification::Attachment;
use crate::domain::notification::Notification;
use crate::domain::organization::Organization;
use crate::domain::policy::{ActionType, Policy};
use crate::domain::process::plan::{PlannedAction, StepFacts, condition_met, plan_action};
use crate::domain::process::schedule::{due_step, step_time};
use crate::domain::process::state::{
    ActionOutcome, Charge, OutcomeStatus, Process, ProcessState, StepRun, StepTrigger,
};
use crate::domain::process::statement::escalation_csv;
use crate::domain::process::{Reconciled, reconcile};
use crate::domain::template::TemplateKind;
use crate::error::Error;
use crate::service::notifications::TemplateCache;
use crate::service::payment_requests::charge_outcome;
use crate::service::{Caller, Core, Jobs};
use crate::storage::Tx;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// Processes claimed and run in one transaction per round. SQLite has one connection, which
/// the API waits for while a batch runs: smaller batches keep its latency low.
const STEP_BATCH: u64 = 100;
const SQLITE_STEP_BATCH: u64 = 20;
/// How long the actions after a charge in a policy's last step wait for its outcome before
/// they are skipped (a later step's time ends the wait otherwise).
const OUTCOME_WAIT: Duration = Duration::days(3);

/// What the steps of one batch share, read once per batch: policy versions (immutable),
/// organizations and template sources.
#[derive(Default)]
struct BatchCache {
    policies: HashMap<(Uuid, String, i32), Policy>,
    organizations: HashMap<Uuid, Organization>,
    templates: TemplateCache,
}

/// A process this replica holds the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedProcess {
    pub organization_id: Uuid,
    pub process_id: Uuid,
    /// The `due_at` the claim wrote; the step commits only while it is still there.
    pub lease: DateTime<Utc>,
}

impl Jobs {
    /// One round of the step runner: claims due processes and runs what is due for each.
    /// Returns how many it claimed.
    pub async fn run_due_steps(&self) -> Result<usize, Error> {
        let batch = match self.store.backend() {
            crate::storage::Backend::Postgres => STEP_BATCH,
            crate::storage::Backend::Sqlite => SQLITE_STEP_BATCH,
        };
        let claims = self.claim_due_processes(batch).await?;
        self.run_claimed_processes(&claims).await?;
        Ok(claims.len())
    }

    /// Runs claimed processes in one transaction (one commit, one hold of the organization's
    /// event sequence, one statement per table for the whole batch). If any of them fails,
    /// the batch rolls back and each runs in its own transaction, so that one bad process
    /// does not hold up the others. Returns how many ran.
    pub async fn run_claimed_processes(&self, claims: &[ClaimedProcess]) -> Result<usize, Error> {
        if claims.is_empty() {
            return Ok(0);
        }
        let mut cache = BatchCache::default();
        match self.run_batch(claims, &mut cache).await {
            Ok(ran) => return Ok(ran),
            Err(e) if claims.len() == 1 => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "a step of the batch failed; running them one by one")
            }
        }
        let mut ran = 0;
        for claim in claims {
            match self
                .run_batch(std::slice::from_ref(claim), &mut cache)
                .await
            {
                Ok(n) => ran += n,
                // The lease expires and the step is tried again, by this replica or another.
                Err(e) => {
                    tracing::warn!(process = %claim.process_id, error = %e, "dunning step failed")
                }
            }
        }
        Ok(ran)
    }

    /// How long until the engine's next work falls due (a step or a look at a customer);
    /// zero when some is due now, `None` when nothing is scheduled.
    pub async fn engine_work_due_in(&self) -> Result<Option<std::time::Duration>, Error> {
        let next = self.store.next_engine_work_at().await?;
        Ok(next.map(|at| (at - self.now()).to_std().unwrap_or_default()))
    }

    /// Claims up to `limit` due processes (the first half of a round; tests call the halves
    /// apart to act between claim and commit).
    pub async fn claim_due_processes(&self, limit: u64) -> Result<Vec<ClaimedProcess>, Error> {
        let now = self.now();
        let due = self.store.due_processes(now, limit).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // Whole microseconds, as stored: the claim is recognised by this exact value.
        let lease = now + self.claim_lease;
        let lease = DateTime::from_timestamp_micros(lease.timestamp_micros()).unwrap_or(lease);
        let ids: Vec<Uuid> = due.iter().map(|(_, id)| *id).collect();
        let claimed = self.store.claim_processes(&ids, now, lease).await?;
        Ok(due
            .into_iter()
            .filter(|(_, id)| claimed.contains(id))
            .map(|(organization_id, process_id)| ClaimedProcess {
                organization_id,
                process_id,
                lease,
            })
            .collect())
    }

    /// Runs what is due for a claimed process in one transaction. Returns false when the
    /// claim was lost meanwhile (nothing was done).
    pub async fn run_claimed_process(&self, claim: &ClaimedProcess) -> Result<bool, Error> {
        let ran = self
            .run_batch(std::slice::from_ref(claim), &mut BatchCache::default())
            .await?;
        Ok(ran == 1)
    }

    /// Runs the claimed processes in one transaction: reads what their steps need with one
    /// query per table, runs each step in memory (rare actions — charges, write-offs,
    /// hand-overs — read and write as they go), then writes the batch's step runs, charges,
    /// outbox rows, processes and events with one statement per table. Returns how many ran
    /// (claims lost meanwhile are left out).
    async fn run_batch(
        &self,
        claims: &[ClaimedProcess],
        cache: &mut BatchCache,
    ) -> Result<usize, Error> {
        let tx = self.store.begin().await?;
        let mut ran = 0;
        let mut organizations: Vec<Uuid> = Vec::new();
        for claim in claims {
            if !organizations.contains(&claim.organization_id) {
                organizations.push(claim.organization_id);
            }
        }
        for organization_id in organizations {
            let mine: Vec<&ClaimedProcess> = claims
                .iter()
                .filter(|c| c.organization_id == organization_id)
                .collect();
            ran += self
                .run_batch_of_organization(&tx, organization_id, &mine, cache)
                .await?;
        }
        tx.commit().await?;
        Ok(ran)
    }

    async fn run_batch_of_organization(
        &self,
        tx: &Tx,
        organization_id: Uuid,
        claims: &[&ClaimedProcess],
        cache: &mut BatchCache,
    ) -> Result<usize, Error> {
        let caller = Caller { organization_id };
        let ids: Vec<Uuid> = claims.iter().map(|c| c.process_id).collect();
        let mut processes: HashMap<Uuid, Process> = tx
            .find_processes(organization_id, &ids, true)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        // A claim is held while the row still carries its lease (the row is locked now).
        processes.retain(|id, p| {
            claims
                .iter()
                .any(|c| c.process_id == *id && p.due_at == Some(c.lease))
        });
        if processes.is_empty() {
            return Ok(0);
        }
        let mut customer_ids: Vec<Uuid> = processes.values().map(|p| p.customer_id).collect();
        customer_ids.sort();
        customer_ids.dedup();
        let customers: HashMap<Uuid, Customer> = tx
            .find_customers_by_ids(organization_id, &customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let invoice_ids: Vec<Uuid> = processes
            .values()
            .flat_map(|p| p.open_invoice_ids())
            .collect();
        let mut invoices: HashMap<Uuid, Invoice> = tx
            .find_invoices_by_ids(organization_id, &invoice_ids, false)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        let process_ids: Vec<Uuid> = processes.keys().copied().collect();
        let mut booked = tx.charges_of_processes(&process_ids).await?;
        let BatchCache {
            policies,
            organizations,
            templates,
        } = cache;
        for p in processes.values() {
            let key = (organization_id, p.policy_code.clone(), p.policy_version);
            if policies.contains_key(&key) {
                continue;
            }
            let found = tx
                .find_policy(
                    organization_id,
                    &p.policy_code,
                    Some(p.policy_version),
                    false,
                )
                .await?
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "process {} follows missing policy {} v{}",
                        p.id, p.policy_code, p.policy_version
                    ))
                })?;
            policies.insert(key, found);
        }
        let organization = match organizations.entry(organization_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(crate::service::organizations::load_organization(tx, caller).await?)
            }
        };
        let organization = &*organization;
        let mut writes = StepWrites::default();
        let mut events = Vec::new();
        // In claim order: the most overdue first, as claimed.
        for claim in claims {
            let Some(process) = processes.remove(&claim.process_id) else {
                continue;
            };
            let customer = customers.get(&process.customer_id).ok_or_else(|| {
                Error::Internal(format!("process {} has no customer", process.id))
            })?;
            let held = process
                .open_invoice_ids()
                .iter()
                .filter_map(|id| invoices.remove(id))
                .collect();
            let policy = &policies[&(
                organization_id,
                process.policy_code.clone(),
                process.policy_version,
            )];
            let mut runner = StepRunner {
                core: self,
                tx,
                caller,
                policy,
                customer,
                organization,
                templates: &mut *templates,
                invoices: held,
                booked: booked.remove(&process.id).unwrap_or_default(),
                payments: None,
                now: self.now(),
                process,
                events: Vec::new(),
                writes: &mut writes,
            };
            runner.run_due(StepTrigger::Scheduled).await?;
            let StepRunner {
                mut process,
                events: appended,
                ..
            } = runner;
            process.due_at = due_at(&process);
            writes.processes.push(process);
            events.extend(appended);
        }
        let ran = writes.processes.len();
        writes.write(self, tx).await?;
        tx.append_events(organization_id, &events).await?;
        Ok(ran)
    }
}

/// What the steps of a batch write, gathered to be written with one statement per table.
#[derive(Default)]
struct StepWrites {
    step_runs: Vec<StepRun>,
    charges: Vec<Charge>,
    notifications: Vec<Notification>,
    processes: Vec<Process>,
}

impl StepWrites {
    /// Step runs first: their unique key (process, step, attempt) fails the batch before
    /// anything else is written if another replica ran one of these steps.
    async fn write(self, core: &Core, tx: &Tx) -> Result<(), Error> {
        tx.insert_step_runs(&self.step_runs).await?;
        tx.insert_charges(&self.charges).await?;
        if !self.notifications.is_empty() {
            tx.insert_notifications(&self.notifications).await?;
            core.wake_outbox_after_commit(tx);
        }
        tx.save_locked_processes(&self.processes).await
    }
}

/// When the engine next has work for a process: its next step while it runs (ACTIVE or
/// ESCALATED), or the end of a wait for a charge's outcome.
fn due_at(p: &Process) -> Option<DateTime<Utc>> {
    if !matches!(p.state, ProcessState::Active | ProcessState::Escalated) {
        return None;
    }
    if p.waiting_step_run_id.is_some() {
        return Some(match p.next_step_at {
            Some(next) => next,
            None => p.last_step_at.unwrap_or(p.updated_at) + OUTCOME_WAIT,
        });
    }
    p.next_step_at
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
    /// Does what is due: brings the process in line with its invoices, finishes a step that
    /// waited for a charge, and runs the step whose time has come (the latest one, when
    /// several are: the earlier ones are recorded as superseded).
    async fn run_due(&mut self, trigger: StepTrigger) -> Result<(), Error> {
        let previous = self.process.state;
        match reconcile(&mut self.process, &self.invoices, self.customer, self.now) {
            Reconciled::Unchanged => {}
            Reconciled::Resolved => {
                let amount = self.amount_due()?;
                self.events
                    .extend(resolution_events(&self.process, previous, amount, self.now));
                return Ok(());
            }
            Reconciled::Paused(reason) => {
                let amount = self.amount_due()?;
                self.events.push(
                    ProcessChange::new(EventType::ProcessPaused, Some(previous), amount)
                        .note(reason.as_str().to_lowercase())
                        .event(&self.process, self.now),
                );
                return Ok(());
            }
            Reconciled::Resumed => {}
        }
        if let Some(run_id) = self.process.waiting_step_run_id
            && self.continue_waiting(run_id).await? == Progress::Waiting
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

    fn amount_due(&self) -> Result<crate::domain::money::Money, Error> {
        amount_due(&self.process, &self.invoices)
    }

    /// The invoices the process duns now: held, open, something due, not disputed or
    /// blocked on their own.
    fn dunned(&self) -> Vec<Invoice> {
        self.invoices
            .iter()
            .filter(|i| self.process.holds(i.id) && i.state == InvoiceState::Open)
            .filter(|i| i.amount_due_minor() > 0 && !i.disputed && !i.dunning_blocked)
            .cloned()
            .collect()
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
            id: Uuid::now_v7(),
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
    /// the wait is over.
    async fn continue_waiting(&mut self, run_id: Uuid) -> Result<Progress, Error> {
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
                if deadline.is_some_and(|d| d > self.now) {
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
                    self.email(action.action_type, kind, &dunned, run).await?
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
                    let mut history = self.tx.step_runs_of(self.process.id).await?;
                    let process_id = self.process.id;
                    history.extend(
                        self.writes
                            .step_runs
                            .iter()
                            .filter(|r| r.process_id == process_id)
                            .cloned(),
                    );
                    history.push(run.clone());
                    let statement = Attachment {
                        filename: format!("statement-{}.csv", self.process.customer_external_id),
                        content_type: "text/csv; charset=utf-8".into(),
                        content: escalation_csv(&dunned, &self.booked, &history),
                    };
                    let outcome = self
                        .email_with(
                            action.action_type,
                            TemplateKind::CollectionAgencyHandover,
                            &dunned,
                            run,
                            vec![statement],
                        )
                        .await?;
                    let previous = self.process.state;
                    self.process.state = ProcessState::Escalated;
                    self.process.updated_at = self.now;
                    let amount = self.amount_due()?;
                    let mut change =
                        ProcessChange::new(EventType::ProcessEscalated, Some(previous), amount)
                            .note("escalated by the policy");
                    change.notification_id = outcome.notification_id;
                    self.events.push(change.event(&self.process, self.now));
                    outcome
                }
                PlannedAction::WriteOff => self.write_off(action.action_type, &dunned).await?,
            };
            run.outcomes[index] = outcome;
        }
        Ok(Progress::Done)
    }
}
