//! Operator commands on a process (DESIGN.md §1, "operator commands"): each checked against
//! the process's state under its row lock, recorded in the process history with who gave it,
//! and appended as an event, in one transaction. A step the engine runs at the same moment
//! either committed first (the command sees its result) or loses its lease (the command
//! changed `due_at`), so nothing runs twice.

use super::Processes;
use super::payment_plans::PaymentPlanTerms;
use super::{ProcessView, process_not_found};
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::process_events::ProcessChange;
use crate::core::process_events::plan_event;
use crate::core::process_events::plan_events;
use crate::core::process_events::promise_event;
use crate::core::reconcile::amount_due;
use crate::core::reconcile::policy_of;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::notification::Notification;
use crate::domain::process::command::{self, Applied, CommandKind, ProcessCommand};
use crate::domain::process::schedule::step_time;
use crate::domain::process::state::{Process, Promise};
use crate::engine::steps::Operation;
use crate::error::Error;
use crate::service::lookup::request_id_conflict;
use crate::service::paging::fingerprint;
use crate::storage::Tx;
use uuid::Uuid;

/// An operator command as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub kind: CommandKind,
    pub process_id: Uuid,
    /// The operator's note or reason (empty for none).
    pub note: String,
    /// Makes a retried command return the first one's result instead of acting again.
    pub request_id: Option<String>,
    /// RecordPromiseToPay: what the customer promised.
    pub promise: Option<PromiseTerms>,
    /// RecordPaymentPlan: the instalments agreed.
    pub payment_plan: Option<PaymentPlanTerms>,
}

/// A promise to pay as the operator records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseTerms {
    pub date: chrono::NaiveDate,
    /// Decimal amount in the process's currency; empty = the full amount due.
    pub amount: String,
}

/// A process after a command, with the email the command queued.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub view: ProcessView,
    pub notification: Option<Notification>,
}

/// What a command did inside its transaction.
struct Done {
    process: Process,
    events: Vec<NewEvent>,
    notification_id: Option<Uuid>,
    changed: bool,
}

impl Processes {
    /// Runs an operator command. FAILED_PRECONDITION (naming the process's state) when the
    /// command does not apply to the process as it is; a command already in effect (pausing
    /// a PAUSED process) returns the process unchanged and records nothing.
    pub async fn run_command(
        &self,
        caller: Caller,
        request: &CommandRequest,
    ) -> Result<CommandResult, Error> {
        let operation = request.kind.as_str();
        // The terms of a plan are part of the request a request_id stands for.
        let request_fingerprint = match &request.payment_plan {
            None => fingerprint(&(operation, request.process_id, request.note.as_str())),
            Some(terms) => fingerprint(&(operation, request.process_id, &request.note, terms)),
        };
        let tx = self.core.store.begin().await?;
        if let Some(request_id) = &request.request_id
            && let Some((stored, command_id)) = tx
                .find_idempotency_key(caller.organization_id, operation, request_id)
                .await?
        {
            if stored != request_fingerprint {
                return Err(request_id_conflict(request_id));
            }
            let first = tx.find_process_command(command_id).await?;
            drop(tx);
            return self
                .command_result(
                    caller,
                    request.process_id,
                    first.and_then(|c| c.notification_id),
                )
                .await;
        }
        let process = tx
            .find_process(caller.organization_id, request.process_id, true)
            .await?
            .ok_or_else(|| process_not_found(request.process_id))?;
        let previous = process.state;
        let done = self.apply_command(&tx, caller, request, process).await?;
        if done.changed {
            let now = self.core.now();
            let record = ProcessCommand {
                id: new_id(),
                organization_id: caller.organization_id,
                process_id: request.process_id,
                kind: request.kind,
                actor: caller.actor.to_string(),
                comment: request.note.clone(),
                previous_state: previous,
                state: done.process.state,
                step_index: done.process.current_step_index,
                notification_id: done.notification_id,
                created_at: now,
            };
            tx.insert_process_command(&record).await?;
            if let Some(request_id) = &request.request_id {
                tx.insert_idempotency_key(
                    caller.organization_id,
                    operation,
                    request_id,
                    &request_fingerprint,
                    record.id,
                    now,
                )
                .await?;
            }
            tx.append_events(caller.organization_id, &done.events)
                .await?;
            if done.process.due_at.is_some() {
                tx.wake_after_commit(&self.core.wake.engine);
            }
            tx.commit().await?;
        } else {
            // Nothing to write; the read below must not wait for this transaction.
            drop(tx);
        }
        self.command_result(caller, request.process_id, done.notification_id)
            .await
    }

    async fn command_result(
        &self,
        caller: Caller,
        process_id: Uuid,
        notification_id: Option<Uuid>,
    ) -> Result<CommandResult, Error> {
        let view = self.get_process(caller, process_id).await?;
        let notification = match notification_id {
            Some(id) => self.core.store.find_notification(id).await?,
            None => None,
        };
        Ok(CommandResult { view, notification })
    }

    async fn apply_command(
        &self,
        tx: &Tx,
        caller: Caller,
        request: &CommandRequest,
        mut process: Process,
    ) -> Result<Done, Error> {
        let note = request.note.as_str();
        let operation = match request.kind {
            CommandKind::Advance => Some(Operation::Advance),
            CommandKind::Escalate => Some(Operation::Escalate { note: note.into() }),
            CommandKind::InformSales => Some(Operation::InformSales { note: note.into() }),
            _ => None,
        };
        if let Some(operation) = operation {
            let operated = self.core.operate(tx, caller, process, &operation).await?;
            return Ok(Done {
                process: operated.process,
                events: operated.events,
                notification_id: operated.notification_id,
                changed: operated.changed,
            });
        }
        let now = self.core.now();
        let previous = process.state;
        let invoices = tx
            .find_invoices_by_ids(caller.organization_id, &process.open_invoice_ids(), false)
            .await?;
        let amount = amount_due(&process, &invoices)?;
        let plan_before = process.payment_plan.clone();
        let mut promised = None;
        let mut planned = false;
        let (applied, event_type) = match request.kind {
            CommandKind::Pause => (
                command::pause(&mut process, note, now)?,
                EventType::ProcessPaused,
            ),
            CommandKind::Resume => (
                command::resume(&mut process, now)?,
                EventType::ProcessResumed,
            ),
            CommandKind::Cancel => (
                command::cancel(&mut process, note, now)?,
                EventType::ProcessCancelled,
            ),
            CommandKind::Reset => {
                let first_step_at = self.first_step_at(tx, caller, &process).await?;
                (
                    command::reset(&mut process, first_step_at, now)?,
                    EventType::ProcessReset,
                )
            }
            CommandKind::PromiseToPay => {
                let terms = request
                    .promise
                    .as_ref()
                    .ok_or_else(|| Error::Internal("a promise to pay without its terms".into()))?;
                command::check_promise(&process)?;
                let promise = self.promise_of(tx, caller, &process, terms, amount).await?;
                promised = Some(promise.clone());
                (
                    command::promise_to_pay(&mut process, promise, note, now)?,
                    EventType::ProcessPaused,
                )
            }
            CommandKind::PaymentPlan => {
                let terms = request.payment_plan.as_ref().ok_or_else(|| {
                    Error::Internal("a payment plan without its instalments".into())
                })?;
                command::check_payment_plan(&process)?;
                let plan = self.plan_of(tx, caller, &process, terms, amount).await?;
                planned = true;
                (
                    command::record_payment_plan(&mut process, plan, note, now)?,
                    EventType::ProcessPaused,
                )
            }
            other => {
                return Err(Error::Internal(format!(
                    "command {} has no state change",
                    other.as_str()
                )));
            }
        };
        if applied == Applied::AlreadyInEffect {
            return Ok(Done {
                process,
                events: Vec::new(),
                notification_id: None,
                changed: false,
            });
        }
        if process.due_at.is_some() {
            // The step this command makes due joins the command's trace.
            process.trace_context = crate::telemetry::current_trace();
        }
        tx.update_process(&process).await?;
        let mut change = ProcessChange::new(event_type, Some(previous), amount).note(note);
        change.actor = caller.actor.for_events();
        let mut events = vec![change.event(&process, now)];
        if let Some(promise) = &promised {
            events.push(promise_event(
                EventType::PromiseRecorded,
                &process,
                promise,
                note,
                now,
            ));
        }
        events.extend(plan_events(plan_before.as_ref(), &process, note, now));
        if planned && let Some(plan) = &process.payment_plan {
            events.push(plan_event(
                EventType::PaymentPlanRecorded,
                &process,
                plan,
                None,
                note,
                now,
            ));
        }
        Ok(Done {
            process,
            events,
            notification_id: None,
            changed: true,
        })
    }

    /// The promise `terms` make for a process owing `owed` (INVALID_ARGUMENT naming
    /// `promised_date` or `amount` when they cannot be).
    async fn promise_of(
        &self,
        tx: &Tx,
        caller: Caller,
        p: &Process,
        terms: &PromiseTerms,
        owed: crate::domain::money::Money,
    ) -> Result<Promise, Error> {
        let amount_minor = if terms.amount.is_empty() {
            None
        } else {
            Some(
                p.currency
                    .parse_amount(&terms.amount)
                    .map_err(|e| Error::field("amount", e.to_string()))?,
            )
        };
        let customer = tx
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        Ok(command::make_promise(
            terms.date,
            amount_minor,
            owed.minor(),
            customer.details.timezone,
            self.core.now(),
        )?)
    }

    /// When the first step of the process's policy version is due if the process started
    /// now (a reset): due-date steps keep their dates, so the catch-up rule runs only the
    /// latest one that is due.
    async fn first_step_at(
        &self,
        tx: &Tx,
        caller: Caller,
        p: &Process,
    ) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        let policy = policy_of(tx, p).await?;
        let customer = tx
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let first = policy
            .definition
            .steps
            .first()
            .ok_or_else(|| Error::Internal(format!("policy {} has no steps", p.policy_code)))?;
        Ok(step_time(
            first,
            p.anchor_date,
            customer.details.timezone,
            self.core.now(),
        ))
    }
}
