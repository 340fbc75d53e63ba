//! The engine's side of a payment plan: at each instalment's deadline or reminder, and as
//! soon as a payment is recorded, the plan the process is paused for is brought up to date
//! with the payments since it was made; reminders are queued like any other email of the
//! process, and a missed instalment or a completed plan lets dunning resume.

use super::StepRunner;
use crate::domain::event::EventType;
use crate::domain::policy::ActionType;
use crate::domain::process::payment_plan::{PlanChange, PlanState};
use crate::domain::process::state::{OutcomeStatus, ProcessState};
use crate::domain::template::TemplateKind;
use crate::error::Error;
use crate::service::notifications::{EmailRequest, PlanLines};
use crate::service::processes::payment_plans::plan_events;
use crate::service::processes::{ProcessChange, process_email};

/// How far past the plan's making payments are looked for: beyond its last deadline.
const PAYMENTS_HORIZON: chrono::Duration = chrono::Duration::days(3 * 366);

impl StepRunner<'_> {
    /// Brings the payment plan the process is paused for up to date and sends the reminders
    /// that are due. Returns whether the process runs again (the plan ended).
    pub(super) async fn follow_plan(&mut self) -> Result<bool, Error> {
        if self.process.state != ProcessState::Paused {
            return Ok(self.process.state.is_open());
        }
        let Some(made_at) = self
            .process
            .payment_plan
            .as_ref()
            .filter(|plan| plan.is_active())
            .map(|plan| plan.made_at)
        else {
            return Ok(false);
        };
        // Every invoice it held: one a payment settled counts too.
        let invoice_ids: Vec<_> = self.process.invoices.iter().map(|i| i.invoice_id).collect();
        let paid = self
            .tx
            .payments_between(&invoice_ids, made_at, made_at + PAYMENTS_HORIZON)
            .await?;
        let before = self.process.payment_plan.clone();
        let changes = match &mut self.process.payment_plan {
            Some(plan) => plan.follow(paid, self.now),
            None => Vec::new(),
        };
        self.process.updated_at = self.now;
        self.events
            .extend(plan_events(before.as_ref(), &self.process, "", self.now));
        for change in &changes {
            if let PlanChange::Remind(index) = change {
                self.remind_instalment(*index).await?;
            }
        }
        let Some(plan) = self.process.payment_plan.as_ref() else {
            return Ok(false);
        };
        let note = match plan.state {
            PlanState::Active => return Ok(false),
            PlanState::Missed => "an instalment of the payment plan was missed",
            PlanState::Completed => "the payment plan was completed; what is still due is dunned",
            PlanState::Cancelled => "the payment plan ended",
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
