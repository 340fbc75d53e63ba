//! What each action of a step does inside the step's transaction: emails through the outbox,
//! charges booked, payment requests opened, invoices written off.

use super::StepRunner;
use crate::clock::new_id;
use crate::core::charging::NewRequestFor;
use crate::core::compose::EmailRequest;
use crate::core::compose::history_entries;
use crate::core::compose::process_email;
use crate::core::compose::shows_history;
use crate::core::process_events::ProcessChange;
use crate::core::process_events::plan_events;
use crate::core::process_events::process_event;
use crate::core::process_events::resolution_events;
use crate::domain::event::{EventPayload, EventType, NewEvent};
use crate::domain::invoice::{Invoice, InvoiceState};
use crate::domain::notification::{Attachment, NotificationState};
use crate::domain::policy::ActionType;
use crate::domain::process::plan::PlannedCharge;
use crate::domain::process::state::ProcessState;
use crate::domain::process::state::{
    ActionOutcome, Charge, ChargeKind, OutcomeStatus, Process, StepRun,
};
use crate::domain::process::statement::escalation_csv;
use crate::domain::process::{Reconciled, reconcile};
use crate::domain::template::TemplateKind;
use crate::error::Error;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl StepRunner<'_> {
    /// Why the customer cannot be charged for `dunned` now, if it cannot.
    pub(super) fn cannot_charge(&self, dunned: &[Invoice]) -> Option<&'static str> {
        if self.customer.details.payment_method.is_none() {
            return Some("the customer has no payment method");
        }
        let due: i64 = dunned
            .iter()
            .filter(|i| i.is_overdue(self.now))
            .map(Invoice::amount_due_minor)
            .sum();
        let minimum = self
            .organization
            .settings
            .payment_provider
            .minimum_charge_minor
            .get(&self.process.currency)
            .copied()
            .unwrap_or(0);
        (due < minimum).then_some("the amount is below the provider's minimum charge")
    }

    /// Queues an email about the dunned invoices; a suppressed one (nobody to send it to)
    /// is SKIPPED, a template that does not render FAILED. `run` is the step that sends it
    /// (none for an operator's command, whose `note` the email shows).
    pub(super) async fn email(
        &mut self,
        action_type: ActionType,
        kind: TemplateKind,
        dunned: &[Invoice],
        run: Option<&StepRun>,
        note: &str,
    ) -> Result<ActionOutcome, Error> {
        self.email_with(action_type, kind, dunned, run, note, Vec::new())
            .await
    }

    /// The process's step runs so far, oldest first, `run` (still being written) last.
    async fn history(&self, run: Option<&StepRun>) -> Result<Vec<StepRun>, Error> {
        let mut history = self.tx.step_runs_of(self.process.id).await?;
        // A continued step run is stored already; `run` is its current state.
        history.retain(|stored| run.is_none_or(|run| stored.id != run.id));
        let process_id = self.process.id;
        history.extend(
            self.writes
                .step_runs
                .iter()
                .filter(|r| r.process_id == process_id)
                .cloned(),
        );
        history.extend(run.cloned());
        Ok(history)
    }

    /// Hands the process over to the collection agency: the hand-over email with a CSV
    /// statement of the invoices and the history, and state ESCALATED. `run` is the step
    /// that escalates (none when an operator does), `note` the operator's, `why` the
    /// event's note.
    pub(super) async fn hand_over(
        &mut self,
        run: Option<&StepRun>,
        note: &str,
        why: &str,
    ) -> Result<ActionOutcome, Error> {
        let dunned = self.dunned();
        let history = self.history(run).await?;
        let statement = Attachment {
            filename: format!("statement-{}.csv", self.process.customer_external_id),
            content_type: "text/csv; charset=utf-8".into(),
            content: escalation_csv(&dunned, &self.booked, &history),
        };
        let outcome = self
            .email_with(
                ActionType::Escalate,
                TemplateKind::CollectionAgencyHandover,
                &dunned,
                run,
                note,
                vec![statement],
            )
            .await?;
        let previous = self.process.state;
        let plan_before = self.process.payment_plan.clone();
        self.process.state = ProcessState::Escalated;
        self.process.pause_reason = None;
        self.process.end_arrangements(self.now);
        self.process.updated_at = self.now;
        self.events.extend(plan_events(
            plan_before.as_ref(),
            &self.process,
            why,
            self.now,
        ));
        let amount = self.amount_due()?;
        let mut change =
            ProcessChange::new(EventType::ProcessEscalated, Some(previous), amount).note(why);
        change.notification_id = outcome.notification_id;
        change.actor = self.actor();
        self.events.push(change.event(&self.process, self.now));
        Ok(outcome)
    }

    pub(super) async fn email_with(
        &mut self,
        action_type: ActionType,
        kind: TemplateKind,
        dunned: &[Invoice],
        run: Option<&StepRun>,
        note: &str,
        attachments: Vec<Attachment>,
    ) -> Result<ActionOutcome, Error> {
        let history = if shows_history(kind) {
            history_entries(&self.history(run).await?, self.customer.details.timezone)
        } else {
            Vec::new()
        };
        let request = EmailRequest {
            attachments,
            history,
            note: note.to_owned(),
            ..process_email(&self.process, self.policy, kind, dunned, &self.booked)
        };
        self.queue_email(action_type, &request, dunned, run, note)
            .await
    }

    /// Renders `request` about the dunned invoices and queues it in the outbox with the
    /// step's writes; the outcome says whether it was queued, suppressed or failed to render.
    pub(super) async fn queue_email(
        &mut self,
        action_type: ActionType,
        request: &EmailRequest,
        dunned: &[Invoice],
        run: Option<&StepRun>,
        note: &str,
    ) -> Result<ActionOutcome, Error> {
        let kind = request.kind;
        let composed = self
            .core
            .compose_from(
                self.tx,
                self.caller,
                request,
                self.organization.clone(),
                self.customer.clone(),
                dunned.to_vec(),
                Some(&mut *self.templates),
            )
            .await;
        let notification = match composed {
            Ok(composed) => {
                let (row, events) = self.core.outbox_row(self.caller, request, composed);
                self.events.extend(events);
                row
            }
            Err(Error::FailedPrecondition { message, .. }) => {
                return Ok(ActionOutcome::new(
                    action_type,
                    OutcomeStatus::Failed,
                    message,
                ));
            }
            Err(other) => return Err(other),
        };
        let mut outcome = if notification.state == NotificationState::Suppressed {
            ActionOutcome::new(
                action_type,
                OutcomeStatus::Skipped,
                notification.suppressed_reason.clone(),
            )
        } else {
            ActionOutcome::new(
                action_type,
                OutcomeStatus::Pending,
                format!("{} queued", kind.as_str().to_lowercase()),
            )
        };
        outcome.notification_id = Some(notification.id);
        if action_type == ActionType::NotifySales {
            let amount = self.amount_due()?;
            let mut change =
                ProcessChange::new(EventType::SalesInformed, Some(self.process.state), amount)
                    .note(note);
            if let Some(run) = run {
                change = change.step(run, &self.policy.definition.steps[run.step_index].name);
            }
            change.sales_rep_email = self.customer.details.sales_rep_email.clone();
            change.notification_id = Some(notification.id);
            change.actor = self.actor();
            self.events.push(change.event(&self.process, self.now));
        }
        self.writes.notifications.push(notification);
        Ok(outcome)
    }

    /// Books fees or interest, each an event for the billing system.
    pub(super) async fn book(
        &mut self,
        action_type: ActionType,
        planned: Vec<PlannedCharge>,
        run: &StepRun,
    ) -> Result<ActionOutcome, Error> {
        let charges: Vec<Charge> = planned
            .into_iter()
            .map(|c| Charge {
                id: new_id(),
                organization_id: self.caller.organization_id,
                process_id: self.process.id,
                step_run_id: run.id,
                invoice_id: c.invoice_id,
                invoice_external_id: c.invoice_external_id,
                kind: c.kind,
                amount_minor: c.amount_minor,
                currency: self.process.currency,
                step_index: run.step_index,
                booked_at: self.now,
                policy_code: self.policy.code.clone(),
                policy_version: self.policy.version,
                interest_period: c.interest_period,
                annual_rate_percent: c.annual_rate_percent,
            })
            .collect();
        let total: i64 = charges.iter().map(|c| c.amount_minor).sum();
        for c in &charges {
            self.events.push(charge_event(&self.process, c, self.now));
        }
        let detail = match (charges.len(), action_type) {
            (0, ActionType::ApplyFee) => "no fee to book".to_owned(),
            (0, _) => "no interest to book".to_owned(),
            (n, _) => format!(
                "{} booked on {n} invoice{}",
                self.process.currency.format(total),
                if n == 1 { "" } else { "s" }
            ),
        };
        self.writes.charges.extend(charges.iter().cloned());
        self.booked.extend(charges);
        let mut outcome = ActionOutcome::new(action_type, OutcomeStatus::Succeeded, detail);
        outcome.charge_minor = Some(total);
        Ok(outcome)
    }

    /// Opens the step's payment request for the overdue dunned invoices (charged by the
    /// payment worker with an idempotency key derived from it; a RETRY_PAYMENT one never
    /// emails a link). Returns the outcome and whether a charge will be attempted.
    pub(super) async fn charge(
        &mut self,
        action_type: ActionType,
        index: usize,
        dunned: &[Invoice],
        run: &mut StepRun,
    ) -> Result<(ActionOutcome, bool), Error> {
        let overdue: Vec<Uuid> = dunned
            .iter()
            .filter(|i| i.is_overdue(self.now))
            .map(|i| i.id)
            .collect();
        if overdue.is_empty() {
            return Ok((
                ActionOutcome::new(
                    action_type,
                    OutcomeStatus::Skipped,
                    "nothing is overdue yet",
                ),
                false,
            ));
        }
        let locked = self
            .tx
            .find_invoices_by_ids(self.caller.organization_id, &overdue, true)
            .await?;
        // One request per action of a step run: a second execution of the step would collide
        // on this id.
        let id = Uuid::new_v5(&run.id, format!("charge:{index}").as_bytes());
        let charges_only = action_type == ActionType::RetryPayment;
        let (request, events) = self
            .core
            .insert_payment_request_for(
                self.tx,
                self.caller,
                self.customer,
                NewRequestFor {
                    id,
                    currency: self.process.currency,
                    invoices: &locked,
                    process_id: Some(self.process.id),
                    charges_only,
                },
                self.now,
            )
            .await?;
        self.events.extend(events);
        run.payment_request_id = Some(request.id);
        let cannot = self.cannot_charge(dunned);
        let detail = match cannot {
            None => format!("charging {}", request.currency.format(request.amount_minor)),
            Some(why) => format!("payment link emailed: {why}"),
        };
        let mut outcome = ActionOutcome::new(action_type, OutcomeStatus::Pending, detail);
        outcome.payment_request_id = Some(request.id);
        Ok((outcome, cannot.is_none()))
    }

    /// Writes the dunned invoices off; the process then resolves.
    pub(super) async fn write_off(
        &mut self,
        action_type: ActionType,
        dunned: &[Invoice],
    ) -> Result<ActionOutcome, Error> {
        let ids: Vec<Uuid> = dunned.iter().map(|i| i.id).collect();
        let mut locked = self
            .tx
            .find_invoices_by_ids(self.caller.organization_id, &ids, true)
            .await?;
        locked.retain(|i| i.state == InvoiceState::Open);
        let mut total = 0i64;
        for invoice in &mut locked {
            total += invoice.amount_due_minor();
            invoice
                .write_off(self.now)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mut event = NewEvent::invoice(
                EventType::InvoiceWrittenOff,
                invoice,
                &self.customer.external_id,
                self.now,
            )
            .with_reason("written off by the dunning policy");
            event.process_id = Some(self.process.id);
            self.events.push(event);
        }
        self.tx.save_invoices(&[], &locked).await?;
        let requests = self
            .core
            .reconcile_payment_requests(self.tx, self.caller, &locked)
            .await?;
        self.events.extend(requests);
        for updated in &locked {
            if let Some(row) = self.invoices.iter_mut().find(|i| i.id == updated.id) {
                *row = updated.clone();
            }
        }
        let previous = self.process.state;
        if reconcile(&mut self.process, &self.invoices, self.customer, self.now)
            == Reconciled::Resolved
        {
            let amount = self.amount_due()?;
            self.events
                .extend(resolution_events(&self.process, previous, amount, self.now));
        }
        Ok(ActionOutcome::new(
            action_type,
            OutcomeStatus::Succeeded,
            format!(
                "{} written off on {} invoice{}",
                self.process.currency.format(total),
                locked.len(),
                if locked.len() == 1 { "" } else { "s" }
            ),
        ))
    }
}

/// `fee.booked` or `interest.booked`.
fn charge_event(p: &Process, c: &Charge, now: DateTime<Utc>) -> NewEvent {
    let (from, to) = c.period_dates();
    NewEvent {
        invoice_id: Some(c.invoice_id),
        invoice_external_id: c.invoice_external_id.clone(),
        ..process_event(
            match c.kind {
                ChargeKind::Fee => EventType::FeeBooked,
                ChargeKind::Interest => EventType::InterestBooked,
            },
            p,
            EventPayload::Charge {
                charge_id: c.id.to_string(),
                charge_kind: c.kind.as_str().to_owned(),
                invoice_external_id: c.invoice_external_id.clone(),
                amount: c.currency.format(c.amount_minor),
                currency_code: c.currency.code().to_owned(),
                step_index: c.step_index as i32,
                interest_from_date: from,
                interest_to_date: to,
                annual_rate_percent: c.rate_text(),
            },
            now,
        )
    }
}
