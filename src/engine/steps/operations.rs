//! Operator commands that act through the step executor: "Next Dunning" runs the next step
//! exactly as a scheduled run would (with trigger ADVANCED), and an operator's hand-over or
//! note to sales sends the same emails the policy's actions send.

use super::StepRunner;
use super::batch::{BatchCache, StepInputs, StepWrites};
use crate::core::Caller;
use crate::core::Core;
use crate::core::process_events::ProcessChange;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::policy::ActionType;
use crate::domain::process::command::{self, Applied};
use crate::domain::process::state::{Process, ProcessState, StepTrigger};
use crate::domain::template::TemplateKind;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::Tx;
use uuid::Uuid;

/// What an operator asks the executor to do with a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Run the next step now.
    Advance,
    /// Hand the process over to the collection agency, with the operator's note.
    Escalate { note: String },
    /// Email the customer's sales rep about the process, with the operator's note.
    InformSales { note: String },
}

/// A process after an operation, with the events to append and the email it queued.
pub(crate) struct Operated {
    pub process: Process,
    pub events: Vec<NewEvent>,
    pub notification_id: Option<Uuid>,
    /// False when the operation was already in effect (escalating an ESCALATED process):
    /// nothing was written.
    pub changed: bool,
}

impl Core {
    /// Applies `operation` to `process` (locked in `tx`, of the caller's organization) and
    /// writes what it did in `tx`: step runs, charges, outbox rows and the process. Refused
    /// for a state the operation does not apply to (FAILED_PRECONDITION naming the state).
    pub(crate) async fn operate(
        &self,
        tx: &Tx,
        caller: Caller,
        process: Process,
        operation: &Operation,
    ) -> Result<Operated, Error> {
        let mut cache = BatchCache::default();
        let id = process.id;
        let mut inputs = StepInputs::read(tx, caller, vec![process], &mut cache).await?;
        let mut writes = StepWrites::default();
        let mut runner = inputs
            .runner(self, tx, caller, id, &mut cache, &mut writes)?
            .ok_or_else(|| Error::Internal(format!("process {id} was not read")))?;
        let (notification_id, changed) = match operation {
            Operation::Advance => (None, runner.advance().await.map(|()| true)?),
            Operation::Escalate { note } => runner.escalate(note).await?,
            Operation::InformSales { note } => (runner.inform_sales(note).await?, true),
        };
        let due_before = runner.process.due_at;
        let (mut process, events) = runner.finish();
        if *operation != Operation::Advance {
            // An email by an operator leaves the engine's work where it was: a step waiting
            // for a charge that was just woken (due now) stays due now.
            process.due_at = match (due_before, process.due_at) {
                (Some(before), Some(after)) => Some(before.min(after)),
                (before, after) => after.or(before.filter(|_| process.state.is_open())),
            };
        }
        if changed {
            writes.processes.push(process.clone());
            writes.write(self, tx).await?;
        }
        Ok(Operated {
            process,
            events,
            notification_id,
            changed,
        })
    }
}

impl StepRunner<'_> {
    /// "Next Dunning": finishes a step that waits for a charge's outcome (its waiting
    /// actions are skipped if the outcome is not known yet), then runs the next step now;
    /// the one after it is scheduled from now.
    async fn advance(&mut self) -> Result<(), Error> {
        let steps = self.policy.definition.steps.len();
        command::check_advance(&self.process, steps)?;
        if !self.reconcile_now()? {
            // Its invoices turned out settled or disputed: the process resolved or paused
            // instead, as the response shows.
            return Ok(());
        }
        let amount = self.amount_due()?;
        let mut change =
            ProcessChange::new(EventType::ProcessAdvanced, Some(self.process.state), amount);
        change.actor = self.actor();
        self.events.push(change.event(&self.process, self.now));
        if let Some(run_id) = self.process.waiting_step_run_id {
            self.continue_waiting(run_id, false).await?;
        }
        if self.process.state != ProcessState::Active {
            // The waiting step's remaining actions ended the process (a write-off).
            return Ok(());
        }
        let index = self.process.current_step_index;
        if index >= steps {
            return Ok(());
        }
        self.run_step(index, StepTrigger::Advanced).await
    }

    /// An operator's hand-over to the collection agency. Returns the email queued, and
    /// whether anything changed (an ESCALATED process is left as it is).
    async fn escalate(&mut self, note: &str) -> Result<(Option<Uuid>, bool), Error> {
        let has_agency = !self.policy.definition.collection_agency_email.is_empty();
        if command::check_escalate(&self.process, has_agency)? == Applied::AlreadyInEffect {
            return Ok((None, false));
        }
        let why = if note.is_empty() {
            "escalated by an operator".to_owned()
        } else {
            note.to_owned()
        };
        let outcome = self.hand_over(None, note, &why).await?;
        Ok((outcome.notification_id, true))
    }

    /// An operator's note to the customer's sales rep about the process.
    async fn inform_sales(&mut self, note: &str) -> Result<Option<Uuid>, Error> {
        let has_rep = !self.customer.details.sales_rep_email.is_empty();
        command::check_inform_sales(&self.process, has_rep)?;
        let dunned = self.dunned();
        let outcome = self
            .email(
                ActionType::NotifySales,
                TemplateKind::SalesNotification,
                &dunned,
                None,
                note,
            )
            .await?;
        self.process.updated_at = self.now;
        if outcome.status == crate::domain::process::state::OutcomeStatus::Failed {
            return Err(Error::precondition(
                Reason::TemplateRenderFailed,
                outcome.detail,
            ));
        }
        Ok(outcome.notification_id)
    }
}
