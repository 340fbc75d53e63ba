//! The engine's side of a payment plan: at each instalment's deadline or reminder, and as
//! soon as a payment is recorded, the plan the process is paused for is brought up to date
//! with the payments since it was made; reminders are queued like any other email of the
//! process, and a missed instalment or a completed plan lets dunning resume.

use super::StepRunner;
use crate::core::compose::EmailRequest;
use crate::core::compose::PlanLines;
use crate::core::compose::process_email;
use crate::core::payment_plans::settle_plan;
use crate::core::process_events::ProcessChange;
use crate::core::process_events::plan_events;
use crate::domain::event::EventType;
use crate::domain::policy::ActionType;
use crate::domain::process::payment_plan::PlanState;
use crate::domain::process::state::{OutcomeStatus, ProcessState};
use crate::domain::template::TemplateKind;
use crate::error::Error;

impl StepRunner<'_> {
    /// Brings the payment plan the process is paused for up to date and sends the reminders
    /// that are due; once the plan ended (missed, or completed with something still due)
    /// the process resumes. Returns whether it runs again.
    pub(super) async fn follow_plan(&mut self) -> Result<bool, Error> {
        if self.process.state != ProcessState::Paused {
            return Ok(self.process.state.is_open());
        }
        let before = self.process.payment_plan.clone();
        if settle_plan(self.tx, &mut self.process, self.now).await? {
            self.process.updated_at = self.now;
        }
        self.events
            .extend(plan_events(before.as_ref(), &self.process, "", self.now));
        let reminders = match &mut self.process.payment_plan {
            Some(plan) => plan.due_reminders(self.now),
            None => Vec::new(),
        };
        for index in reminders {
            self.remind_instalment(index).await?;
        }
        let note = match self.process.payment_plan.as_ref().map(|plan| plan.state) {
            Some(PlanState::Active) => return Ok(false),
            Some(PlanState::Missed) => "an instalment of the payment plan was missed",
            Some(PlanState::Completed) => {
                "the payment plan was completed; what is still due is dunned"
            }
            Some(PlanState::Cancelled) | None => "the payment plan ended",
        };
        self.process.resume(self.now);
        let owed = self.amount_due()?;
        self.events.push(
            ProcessChange::new(EventType::ProcessResumed, Some(ProcessState::Paused), owed)
                .note(note)
                .event(&self.process, self.now),
        );
        Ok(true)
    }

    /// Queues the reminder of instalment `index` to the customer, like the process's other
    /// emails (its invoices, the policy's BCC list, quiet hours by the outbox). A template
    /// that does not render is logged: the plan goes on.
    async fn remind_instalment(&mut self, index: usize) -> Result<(), Error> {
        let dunned = self.dunned();
        if self.customer.details.dunning_excluded || dunned.is_empty() {
            // Excluded from dunning, or everything left is disputed or blocked: no reminder.
            return Ok(());
        }
        let Some(plan) = &self.process.payment_plan else {
            return Ok(());
        };
        let request = EmailRequest {
            payment_plan: Some(PlanLines::of(plan, self.process.currency, Some(index))),
            ..process_email(
                &self.process,
                self.policy,
                TemplateKind::InstalmentReminder,
                &dunned,
                &self.booked,
            )
        };
        let outcome = self
            .queue_email(ActionType::SendReminder, &request, &dunned, None, "")
            .await?;
        if outcome.status == OutcomeStatus::Failed {
            tracing::warn!(
                process_id = %self.process.id,
                instalment = index + 1,
                detail = %outcome.detail,
                "instalment reminder not sent"
            );
        }
        Ok(())
    }
}
