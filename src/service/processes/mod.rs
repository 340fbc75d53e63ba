//! Dunning processes: reading them, and keeping open ones in line with their invoices and
//! customer inside the writer's own transaction (a settling payment resolves its process
//! before anything else can run). Starting processes is in `start`, running steps in `steps`.

mod assign;
mod commands;
pub(crate) mod payment_plans;
pub mod simulate;
mod start;
mod steps;

pub use assign::AssignedPolicy;
pub use commands::{CommandRequest, CommandResult, PromiseTerms};
pub use payment_plans::PaymentPlanTerms;
pub use steps::ClaimedProcess;

use super::paging::PageRequest;
use super::{Caller, Core, CustomerRef, InvoiceRef, Services};
use crate::domain::customer::Customer;
use crate::domain::event::{EventPayload, EventType, NewEvent};
use crate::domain::invoice::{Invoice, InvoiceState};
use crate::domain::money::Money;
use crate::domain::notification::Notification;
use crate::domain::policy::Policy;
use crate::domain::policy::next_email_kind;
use crate::domain::process::command::ProcessCommand;
use crate::domain::process::payment_plan::InstalmentState;
use crate::domain::process::state::{
    ActionOutcome, Charge, OutcomeStatus, PauseReason, Process, ProcessState, Promise, StepRun,
};
use crate::domain::process::statement::history_lines;
use crate::domain::process::{Reconciled, reconcile};
use crate::domain::query::{NotificationFilter, ProcessFilter};
use crate::domain::template::TemplateKind;
use crate::error::Error;
use crate::service::notifications::{
    BookedCharge, ComposedEmail, EmailRequest, HistoryEntry, PlanLines,
};
use crate::service::payment_requests::charge_outcome;
use crate::storage::{Conn, Connection};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A process with its history, charges and current amount due (GetProcess).
#[derive(Debug, Clone)]
pub struct ProcessView {
    pub process: Process,
    pub history: Vec<StepRun>,
    /// The operator commands it received, oldest first.
    pub commands: Vec<ProcessCommand>,
    pub charges: Vec<Charge>,
    pub amount_due: Money,
}

/// What ListProcesses filters on, as the caller addresses it.
#[derive(Debug, Clone, Default)]
pub struct ProcessQuery {
    pub customer: Option<CustomerRef>,
    pub invoice: Option<InvoiceRef>,
    pub filter: ProcessFilter,
}

fn process_not_found(id: Uuid) -> Error {
    Error::not_found("PROCESS_NOT_FOUND", format!("no process with id {id}"))
}

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

/// The policy version a process follows (versions never change once written).
pub(crate) async fn policy_of<C: Connection>(conn: &Conn<C>, p: &Process) -> Result<Policy, Error> {
    conn.find_policy(
        p.organization_id,
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
    })
}

/// The invoices a process duns now: held, open, something due, not disputed or blocked on
/// their own.
pub(crate) fn dunned_invoices(p: &Process, invoices: &[Invoice]) -> Vec<Invoice> {
    invoices
        .iter()
        .filter(|i| p.holds(i.id) && i.state == InvoiceState::Open)
        .filter(|i| i.amount_due_minor() > 0 && !i.disputed && !i.dunning_blocked)
        .cloned()
        .collect()
}

/// An email of `kind` a process sends about `dunned`, with its policy's BCC list and agency
/// address and the charges booked so far: what a step queues and a preview renders.
pub(crate) fn process_email(
    p: &Process,
    policy: &Policy,
    kind: TemplateKind,
    dunned: &[Invoice],
    booked: &[Charge],
) -> EmailRequest {
    // An instalment reminder is about the next instalment unless told otherwise.
    let reminded = p
        .payment_plan
        .as_ref()
        .filter(|plan| plan.is_active())
        .and_then(|plan| {
            plan.instalments
                .iter()
                .position(|i| i.state == InstalmentState::Pending)
                .filter(|_| kind == TemplateKind::InstalmentReminder)
        });
    EmailRequest {
        invoice_external_ids: dunned.iter().map(|i| i.external_id.clone()).collect(),
        currency: Some(p.currency),
        process_id: Some(p.id),
        extra_bcc: policy.definition.bcc_emails.clone(),
        collection_agency_email: policy.definition.collection_agency_email.clone(),
        charges: booked
            .iter()
            .map(|c| BookedCharge {
                kind: c.kind,
                invoice_external_id: c.invoice_external_id.clone(),
                amount: Money::new(c.currency, c.amount_minor),
            })
            .collect(),
        payment_plan: p
            .payment_plan
            .as_ref()
            .map(|plan| PlanLines::of(plan, p.currency, reminded)),
        ..EmailRequest::new(kind, CustomerRef::Id(p.customer_id))
    }
}

/// Whether emails of `kind` show the dunning history (the hand-over, the note to sales).
pub(crate) fn shows_history(kind: TemplateKind) -> bool {
    matches!(
        kind,
        TemplateKind::CollectionAgencyHandover | TemplateKind::SalesNotification
    )
}

/// The history lines an email shows for these step runs, dated in `tz`.
pub(crate) fn history_entries(history: &[StepRun], tz: chrono_tz::Tz) -> Vec<HistoryEntry> {
    history_lines(history, tz)
        .into_iter()
        .map(|(date, description)| HistoryEntry { date, description })
        .collect()
}

/// The amount still due on the invoices a process holds.
pub(crate) fn amount_due(p: &Process, invoices: &[Invoice]) -> Result<Money, Error> {
    Ok(Money::sum(
        p.currency,
        invoices
            .iter()
            .filter(|i| p.holds(i.id) && i.state == InvoiceState::Open && i.currency == p.currency)
            .map(Invoice::amount_due),
    )?)
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

impl Core {
    /// Called in the writer's transaction after invoices were saved: open processes holding
    /// them resolve, pause or resume as the invoices now say, and the engine is asked to look
    /// at their customers (an invoice may now start or join a process). Returns the events to
    /// append.
    pub(crate) async fn invoices_changed<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        changed: &[Invoice],
    ) -> Result<Vec<NewEvent>, Error> {
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let customers: HashSet<Uuid> = changed.iter().map(|i| i.customer_id).collect();
        let mut customers: Vec<Uuid> = customers.into_iter().collect();
        customers.sort();
        for customer_id in &customers {
            conn.request_dunning_check(caller.organization_id, *customer_id, now)
                .await?;
        }
        conn.wake_after_commit(&self.wake.engine);
        let ids: Vec<Uuid> = changed.iter().map(|i| i.id).collect();
        let processes = conn
            .open_processes_holding(caller.organization_id, &ids)
            .await?;
        let mut events = Vec::new();
        for p in processes {
            events.extend(self.reconcile_process(conn, caller, p, now).await?);
        }
        Ok(events)
    }

    /// Called in the writer's transaction after a customer changed (exclusion, payment method,
    /// policy, deletion): its open processes follow, and the engine looks at it again.
    pub(crate) async fn customer_changed<C: Connection>(
        &self,
        conn: &Conn<C>,
        customer: &Customer,
        payment_method_changed: bool,
    ) -> Result<Vec<NewEvent>, Error> {
        let caller = Caller::system(customer.organization_id);
        let now = self.now();
        let mut events = Vec::new();
        for mut p in conn
            .open_processes_of_customer(caller.organization_id, customer.id)
            .await?
        {
            if customer.is_deleted() {
                let previous = p.state;
                let invoices = conn
                    .find_invoices_by_ids(caller.organization_id, &p.open_invoice_ids(), false)
                    .await?;
                let amount = amount_due(&p, &invoices)?;
                let plan_before = p.payment_plan.clone();
                p.cancel(now);
                p.note = "the customer was deleted".into();
                conn.update_process(&p).await?;
                events.push(
                    ProcessChange::new(EventType::ProcessCancelled, Some(previous), amount)
                        .note("the customer was deleted")
                        .event(&p, now),
                );
                events.extend(payment_plans::plan_events(
                    plan_before.as_ref(),
                    &p,
                    "the customer was deleted",
                    now,
                ));
                continue;
            }
            if payment_method_changed && p.payment_retries_blocked {
                p.payment_retries_blocked = false;
                p.updated_at = now;
                conn.update_process(&p).await?;
            }
            events.extend(self.reconcile_process(conn, caller, p, now).await?);
        }
        if !customer.is_deleted() {
            conn.request_dunning_check(caller.organization_id, customer.id, now)
                .await?;
            conn.wake_after_commit(&self.wake.engine);
        }
        Ok(events)
    }

    /// Applies [`reconcile`] to a locked open process and saves what changed.
    async fn reconcile_process<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        mut p: Process,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        let invoices = conn
            .find_invoices_by_ids(caller.organization_id, &p.open_invoice_ids(), false)
            .await?;
        let customer = conn
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let previous = p.state;
        // A payment may meet instalments of a running plan (the last one met completes it
        // before the payment resolves the process).
        let plan_before = p.payment_plan.clone();
        let plan_changed = p.pause_reason == Some(PauseReason::PaymentPlan)
            && payment_plans::settle_plan(conn, &mut p, now).await?;
        let outcome = reconcile(&mut p, &invoices, &customer, now);
        let plan_events = payment_plans::plan_events(plan_before.as_ref(), &p, "", now);
        if outcome == Reconciled::Unchanged {
            if plan_changed {
                // The engine looks at the plan now (a missed or completed plan resumes the
                // process; reminders of met instalments are not sent).
                p.due_at = Some(now);
                p.updated_at = now;
                conn.update_process(&p).await?;
                conn.wake_after_commit(&self.wake.engine);
            }
            return Ok(plan_events);
        }
        let amount = amount_due(&p, &invoices)?;
        conn.update_process(&p).await?;
        if p.due_at.is_some() {
            conn.wake_after_commit(&self.wake.engine);
        }
        let mut events = plan_events;
        events.extend(match outcome {
            Reconciled::Resolved => resolution_events(&p, previous, amount, now),
            Reconciled::Paused(reason) => vec![
                ProcessChange::new(EventType::ProcessPaused, Some(previous), amount)
                    .note(reason.as_str().to_lowercase())
                    .event(&p, now),
            ],
            Reconciled::Resumed => vec![
                ProcessChange::new(EventType::ProcessResumed, Some(previous), amount)
                    .event(&p, now),
            ],
            Reconciled::Unchanged => Vec::new(),
        });
        Ok(events)
    }
}

impl Services {
    /// Renders an email of a process as it would be sent now, with its customer, invoices,
    /// policy, charges and history (PreviewNotification with a process): `kind`, or the next
    /// email its remaining steps send. Nothing is stored or sent.
    pub async fn preview_process_email(
        &self,
        caller: Caller,
        process_id: Uuid,
        kind: Option<TemplateKind>,
        locale: Option<String>,
    ) -> Result<ComposedEmail, Error> {
        let p = self
            .store
            .find_process(caller.organization_id, process_id, false)
            .await?
            .ok_or_else(|| process_not_found(process_id))?;
        let policy = policy_of(&self.store, &p).await?;
        let kind = match kind {
            Some(kind) => kind,
            None => next_email_kind(&policy.definition.steps, p.current_step_index).ok_or_else(
                || {
                    Error::precondition(
                        "NO_NEXT_EMAIL",
                        format!(
                            "the remaining steps of policy `{}` v{} send no email; give a kind",
                            policy.code, policy.version
                        ),
                    )
                },
            )?,
        };
        let ids: Vec<Uuid> = p.invoices.iter().map(|i| i.invoice_id).collect();
        let invoices = self
            .store
            .find_invoices_by_ids(caller.organization_id, &ids, false)
            .await?;
        let mut dunned = dunned_invoices(&p, &invoices);
        if dunned.is_empty() {
            // Nothing left to dun (the process ended): its invoices as they stand.
            dunned = invoices;
        }
        let booked = self.store.charges_of(p.id).await?;
        let customer = self
            .store
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let history = if shows_history(kind) {
            history_entries(
                &self.store.step_runs_of(p.id).await?,
                customer.details.timezone,
            )
        } else {
            Vec::new()
        };
        let request = EmailRequest {
            locale,
            history,
            ..process_email(&p, &policy, kind, &dunned, &booked)
        };
        self.preview_email(caller, &request).await
    }

    /// A process with its full history.
    pub async fn get_process(&self, caller: Caller, id: Uuid) -> Result<ProcessView, Error> {
        let p = self
            .store
            .find_process(caller.organization_id, id, false)
            .await?
            .ok_or_else(|| process_not_found(id))?;
        self.process_view(p).await
    }

    /// A page of processes, newest first (each without its history; GetProcess has it).
    pub async fn list_processes(
        &self,
        caller: Caller,
        query: &ProcessQuery,
        page: &PageRequest,
    ) -> Result<(Vec<ProcessView>, String), Error> {
        let mut filter = query.filter.clone();
        if let Some(customer) = &query.customer {
            filter.customer_id = Some(
                super::customers::load_customer(&self.store, caller, customer)
                    .await?
                    .id,
            );
        }
        if let Some(invoice) = &query.invoice {
            filter.invoice_id = Some(
                super::invoices::load_invoice(&self.store, caller, invoice, false)
                    .await?
                    .id,
            );
        }
        let after = page.after_id(&filter)?;
        let rows = self
            .store
            .list_processes(caller.organization_id, &filter, after, page.fetch_limit())
            .await?;
        let (rows, token) = page.finish(rows, &filter, |p| p.id.to_string());
        // The invoices of the whole page in one read.
        let ids: Vec<Uuid> = rows
            .iter()
            .flat_map(|p| p.invoices.iter().map(|i| i.invoice_id))
            .collect();
        let invoices = self
            .store
            .find_invoices_by_ids(caller.organization_id, &ids, false)
            .await?;
        let views = rows
            .into_iter()
            .map(|p| {
                let amount_due = open_amount_due(&p, &invoices)?;
                Ok(ProcessView {
                    process: p,
                    history: Vec::new(),
                    commands: Vec::new(),
                    charges: Vec::new(),
                    amount_due,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok((views, token))
    }

    async fn process_view(&self, p: Process) -> Result<ProcessView, Error> {
        let ids: Vec<Uuid> = p.invoices.iter().map(|i| i.invoice_id).collect();
        let invoices = self
            .store
            .find_invoices_by_ids(p.organization_id, &ids, false)
            .await?;
        let mut history = self.store.step_runs_of(p.id).await?;
        self.follow_pending_outcomes(&p, &mut history).await?;
        Ok(ProcessView {
            amount_due: open_amount_due(&p, &invoices)?,
            history,
            commands: self.store.commands_of(p.id).await?,
            charges: self.store.charges_of(p.id).await?,
            process: p,
        })
    }

    /// Brings PENDING outcomes up to date with their side effects as they stand now (an email
    /// sent, failed or suppressed; a charge paid or declined): the step recorded what it
    /// queued, the outbox and the payment worker finish it later.
    async fn follow_pending_outcomes(
        &self,
        p: &Process,
        history: &mut [StepRun],
    ) -> Result<(), Error> {
        let pending = || {
            history
                .iter()
                .flat_map(|r| &r.outcomes)
                .filter(|o| o.status == OutcomeStatus::Pending)
        };
        if pending().next().is_none() {
            return Ok(());
        }
        let filter = NotificationFilter {
            process_id: Some(p.id),
            ..Default::default()
        };
        let notifications: HashMap<Uuid, Notification> = self
            .store
            .list_notifications(p.organization_id, &filter, None, 10_000)
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        let mut requests = HashMap::new();
        for id in pending()
            .filter_map(|o| o.payment_request_id)
            .collect::<Vec<_>>()
        {
            if let Some(r) = self
                .store
                .find_payment_request(p.organization_id, id, false)
                .await?
            {
                requests.insert(id, r);
            }
        }
        for outcome in history.iter_mut().flat_map(|r| r.outcomes.iter_mut()) {
            if outcome.status != OutcomeStatus::Pending {
                continue;
            }
            if let Some(request) = outcome.payment_request_id.and_then(|id| requests.get(&id)) {
                outcome.follow_charge(charge_outcome(request));
            } else if let Some(n) = outcome
                .notification_id
                .and_then(|id| notifications.get(&id))
            {
                outcome.follow_email(n);
            }
        }
        Ok(())
    }
}

/// What is still due on the process's invoices that are OPEN (also after the process ended:
/// a cancelled process's invoices stay unpaid).
fn open_amount_due(p: &Process, invoices: &[Invoice]) -> Result<Money, Error> {
    let covered = |id: Uuid| p.invoices.iter().any(|i| i.invoice_id == id);
    Ok(Money::sum(
        p.currency,
        invoices
            .iter()
            .filter(|i| covered(i.id) && i.state == InvoiceState::Open && i.currency == p.currency)
            .map(Invoice::amount_due),
    )?)
}
