//! Keeping open processes in line with their invoices and customer, inside the writer's own
//! transaction (a settling payment resolves its process before anything else can run).

use crate::core::Caller;
use crate::core::Core;
use crate::core::payment_plans::settle_plan;
use crate::core::process_events::ProcessChange;
use crate::core::process_events::plan_events;
use crate::core::process_events::resolution_events;
use crate::domain::customer::Customer;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::invoice::Invoice;
use crate::domain::invoice::InvoiceState;
use crate::domain::money::Money;
use crate::domain::policy::Policy;
use crate::domain::process::Reconciled;
use crate::domain::process::reconcile;
use crate::domain::process::state::PauseReason;
use crate::domain::process::state::Process;
use crate::error::Error;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;
use std::collections::HashSet;
use uuid::Uuid;

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
                events.extend(plan_events(
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
    pub(crate) async fn reconcile_process<C: Connection>(
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
            && settle_plan(conn, &mut p, now).await?;
        let outcome = reconcile(&mut p, &invoices, &customer, now);
        let plan_events = plan_events(plan_before.as_ref(), &p, "", now);
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
