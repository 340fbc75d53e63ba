//! Dunning processes: reading them, and keeping open ones in line with their invoices and
//! customer inside the writer's own transaction (a settling payment resolves its process
//! before anything else can run). Starting processes is in `start`, running steps in `steps`.

mod assign;
mod commands;
pub(crate) mod payment_plans;
pub mod simulate;

use super::paging::PageRequest;
use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::InvoiceRef;
use crate::core::charging::charge_outcome;
use crate::core::compose::ComposedEmail;
use crate::core::compose::EmailRequest;
use crate::core::compose::history_entries;
use crate::core::compose::process_email;
use crate::core::compose::shows_history;
use crate::core::reconcile::dunned_invoices;
use crate::core::reconcile::policy_of;
use crate::domain::invoice::Invoice;
use crate::domain::invoice::InvoiceState;
use crate::domain::money::Money;
use crate::domain::notification::Notification;
use crate::domain::policy::next_email_kind;
use crate::domain::process::command::ProcessCommand;
use crate::domain::process::state::Charge;
use crate::domain::process::state::OutcomeStatus;
use crate::domain::process::state::Process;
use crate::domain::process::state::StepRun;
use crate::domain::query::NotificationFilter;
use crate::domain::query::ProcessFilter;
use crate::domain::template::TemplateKind;
use crate::error::Error;
use crate::error::Reason;
pub use assign::AssignedPolicy;
pub use commands::CommandRequest;
pub use commands::CommandResult;
pub use commands::PromiseTerms;
pub use payment_plans::PaymentPlanTerms;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Dunning processes: reading, operator commands, payment plans, policy assignment and simulation.
#[derive(Clone)]
pub struct Processes {
    core: Arc<Core>,
}

impl Processes {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

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
    Error::not_found(Reason::ProcessNotFound, format!("no process with id {id}"))
}

impl Processes {
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
            .core
            .store
            .find_process(caller.organization_id, process_id, false)
            .await?
            .ok_or_else(|| process_not_found(process_id))?;
        let policy = policy_of(&self.core.store, &p).await?;
        let kind = match kind {
            Some(kind) => kind,
            None => next_email_kind(&policy.definition.steps, p.current_step_index).ok_or_else(
                || {
                    Error::precondition(
                        Reason::NoNextEmail,
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
            .core
            .store
            .find_invoices_by_ids(caller.organization_id, &ids, false)
            .await?;
        let mut dunned = dunned_invoices(&p, &invoices);
        if dunned.is_empty() {
            // Nothing left to dun (the process ended): its invoices as they stand.
            dunned = invoices;
        }
        let booked = self.core.store.charges_of(p.id).await?;
        let customer = self
            .core
            .store
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let history = if shows_history(kind) {
            history_entries(
                &self.core.store.step_runs_of(p.id).await?,
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
        self.core.compose(&self.core.store, caller, &request).await
    }

    /// A process with its full history.
    pub async fn get_process(&self, caller: Caller, id: Uuid) -> Result<ProcessView, Error> {
        let p = self
            .core
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
                crate::core::lookup::load_customer(&self.core.store, caller, customer)
                    .await?
                    .id,
            );
        }
        if let Some(invoice) = &query.invoice {
            filter.invoice_id = Some(
                crate::core::lookup::load_invoice(&self.core.store, caller, invoice, false)
                    .await?
                    .id,
            );
        }
        let after = page.after_id(&(caller.organization_id, &filter))?;
        let rows = self
            .core
            .store
            .list_processes(caller.organization_id, &filter, after, page.fetch_limit())
            .await?;
        let (rows, token) = page.finish(rows, &(caller.organization_id, &filter), |p| {
            p.id.to_string()
        });
        // The invoices of the whole page in one read.
        let ids: Vec<Uuid> = rows
            .iter()
            .flat_map(|p| p.invoices.iter().map(|i| i.invoice_id))
            .collect();
        let invoices = self
            .core
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
            .core
            .store
            .find_invoices_by_ids(p.organization_id, &ids, false)
            .await?;
        let mut history = self.core.store.step_runs_of(p.id).await?;
        self.follow_pending_outcomes(&p, &mut history).await?;
        Ok(ProcessView {
            amount_due: open_amount_due(&p, &invoices)?,
            history,
            commands: self.core.store.commands_of(p.id).await?,
            charges: self.core.store.charges_of(p.id).await?,
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
            .core
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
                .core
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
