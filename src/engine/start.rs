//! Starting processes: the engine looks at the customers whose invoices changed (or whose
//! dunning may start at a time it noted), never at all invoices. For each of the customer's
//! open invoices not held by an open process it resolves the policy, checks eligibility, and
//! starts a process (or joins a running CUSTOMER_BALANCE one) once the first step's time has
//! come and the threshold is reached (DESIGN.md §9).

use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::process_events::ProcessChange;
use crate::core::reconcile::amount_due;
use crate::domain::customer::Customer;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::Invoice;
use crate::domain::money::Money;
use crate::domain::policy::Policy;
use crate::domain::process::schedule::{start_time, step_time};
use crate::domain::process::state::{Process, ProcessInvoice, ProcessState};
use crate::domain::process::{check_dunnable, resolve_policy_code, scope_key};
use crate::engine::Engine;
use crate::error::Error;
use crate::storage::Tx;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use tracing::Instrument;
use uuid::Uuid;

/// Customers looked at per round.
const CHECK_BATCH: u64 = 200;

/// Invoices of one scope key that may start a process together.
struct Candidate<'a> {
    policy: &'a Policy,
    invoices: Vec<&'a Invoice>,
}

impl Engine {
    /// One round of the starter: looks at due customers; returns how many it looked at.
    pub async fn start_due_processes(&self) -> Result<usize, Error> {
        let now = self.now();
        let due = self.store.due_dunning_checks(now, CHECK_BATCH).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let lease = now + self.claim_lease;
        let ids: Vec<Uuid> = due.iter().map(|(_, c, _)| *c).collect();
        let claimed = self.store.claim_dunning_checks(&ids, now, lease).await?;
        for (organization_id, customer_id, trace) in due {
            if !claimed.contains(&customer_id) {
                continue;
            }
            let caller = Caller::system(organization_id);
            let span = tracing::info_span!("dunning_check", customer = %customer_id);
            if let Some(trace) = &trace {
                crate::telemetry::continue_trace(&span, trace);
            }
            if let Err(e) = self
                .look_at_customer(caller, customer_id, lease)
                .instrument(span)
                .await
            {
                // Left claimed: looked at again when the lease expires.
                tracing::warn!(customer = %customer_id, error = %e, "dunning check failed");
            }
        }
        Ok(claimed.len())
    }

    /// Starts or joins what is due for one customer and notes when to look again.
    async fn look_at_customer(
        &self,
        caller: Caller,
        customer_id: Uuid,
        claimed: DateTime<Utc>,
    ) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        let looked = self
            .start_for_customer(&tx, caller, customer_id, None)
            .await?;
        tx.settle_dunning_check(customer_id, claimed, looked.next_look)
            .await?;
        tx.append_events(caller.organization_id, &looked.events)
            .await?;
        tx.commit().await?;
        if looked.started > 0 {
            tracing::debug!(customer = %customer_id, started = looked.started, "dunning processes started");
            self.wake.engine.notify_one();
        }
        Ok(())
    }
}

/// What looking at a customer did.
pub(crate) struct Looked {
    /// The events to append.
    pub events: Vec<NewEvent>,
    /// How many processes it started.
    pub started: usize,
    /// When dunning of an invoice of the customer may start next (a pre-due start, an
    /// invoice becoming overdue), if any.
    pub next_look: Option<DateTime<Utc>>,
}

impl Core {
    /// Starts (or joins to a running CUSTOMER_BALANCE process) what is due now for one
    /// customer, in `tx`. `policy` replaces the policy resolution when given (a simulation
    /// of that policy); otherwise each invoice's policy is resolved as DESIGN.md §9 says.
    pub(crate) async fn start_for_customer(
        &self,
        tx: &Tx,
        caller: Caller,
        customer_id: Uuid,
        policy: Option<&Policy>,
    ) -> Result<Looked, Error> {
        let org_id = caller.organization_id;
        let now = self.now();
        let Some(customer) = tx.lock_customer(org_id, customer_id).await? else {
            return Ok(Looked {
                events: Vec::new(),
                started: 0,
                next_look: None,
            });
        };
        let org = crate::core::lookup::load_organization(tx, caller).await?;
        // Locked: a payment recorded meanwhile either is seen here or waits and then finds
        // the process this starts.
        let invoices = tx.lock_open_invoices_of_customer(customer_id).await?;
        let mut open = tx.open_processes_of_customer(org_id, customer_id).await?;
        let free: Vec<&Invoice> = invoices
            .iter()
            .filter(|i| !open.iter().any(|p| p.holds(i.id)))
            .collect();
        let free_ids: Vec<Uuid> = free.iter().map(|i| i.id).collect();
        let cancelled = tx.cancellations_of(&free_ids).await?;

        let mut policies: HashMap<String, Option<Policy>> = HashMap::new();
        let mut candidates: BTreeMap<String, Candidate<'_>> = BTreeMap::new();
        let mut next_look: Option<DateTime<Utc>> = None;
        let mut note_look = |at: DateTime<Utc>| {
            next_look = Some(next_look.map_or(at, |n: DateTime<Utc>| n.min(at)));
        };
        let default_code = org.settings.default_policy_code.as_str();
        if let Some(chosen) = policy {
            policies.insert(chosen.code.clone(), Some(chosen.clone()));
        }
        for invoice in &free {
            if let Some(code) = chosen_or_resolved(policy, invoice, &customer, default_code)
                && !policies.contains_key(code)
            {
                let found = tx.find_policy(org_id, code, None, false).await?;
                policies.insert(code.to_owned(), found);
            }
        }
        for invoice in free {
            // An operator cancelled its dunning: it starts again only once it changed.
            if cancelled
                .get(&invoice.id)
                .is_some_and(|at| invoice.updated_at <= *at)
            {
                continue;
            }
            let Some(code) = chosen_or_resolved(policy, invoice, &customer, default_code) else {
                continue;
            };
            let Some(Some(policy)) = policies.get(code) else {
                continue;
            };
            let definition = &policy.definition;
            if check_dunnable(invoice, &customer, definition).is_err() {
                continue;
            }
            let Some(starts_at) = start_time(
                &definition.steps,
                invoice.due_date,
                customer.details.timezone,
            ) else {
                continue;
            };
            if starts_at > now {
                note_look(starts_at);
                continue;
            }
            candidates
                .entry(scope_key(definition.scope, invoice))
                .or_insert_with(|| Candidate {
                    policy,
                    invoices: Vec::new(),
                })
                .invoices
                .push(invoice);
        }
        let mut events = Vec::new();
        let mut started = 0usize;
        for (key, candidate) in candidates {
            if let Some(process) = open.iter_mut().find(|p| p.scope_key == key) {
                events.extend(
                    self.join(tx, process, &candidate.invoices, &invoices, now)
                        .await?,
                );
                continue;
            }
            let definition = &candidate.policy.definition;
            let currency = candidate.invoices[0].currency;
            let total = Money::sum(currency, candidate.invoices.iter().map(|i| i.amount_due()))?;
            if !definition.reaches_threshold(currency, total.minor()) {
                continue;
            }
            let tz = customer.details.timezone;
            let anchor_date = candidate
                .invoices
                .iter()
                .map(|i| i.due_date)
                .min()
                .unwrap_or(candidate.invoices[0].due_date);
            let base = start_time(&definition.steps, anchor_date, tz).unwrap_or(now);
            let first_at = step_time(&definition.steps[0], anchor_date, tz, base);
            let p = Process {
                id: new_id(),
                organization_id: org_id,
                customer_id,
                customer_external_id: customer.external_id.clone(),
                currency,
                policy_code: candidate.policy.code.clone(),
                policy_version: candidate.policy.version,
                scope: definition.scope,
                scope_key: key,
                state: ProcessState::Active,
                pause_reason: None,
                current_step_index: 0,
                attempt: 1,
                anchor_date,
                next_step_at: Some(first_at),
                last_step_at: None,
                due_at: Some(first_at),
                waiting_step_run_id: None,
                promise: None,
                payment_plan: None,
                note: String::new(),
                payment_retries_blocked: false,
                suspension_requested: false,
                started_at: now,
                ended_at: None,
                updated_at: now,
                // The look runs in the trace of the request that asked for it.
                trace_context: crate::telemetry::current_trace(),
                invoices: candidate
                    .invoices
                    .iter()
                    .map(|i| ProcessInvoice {
                        invoice_id: i.id,
                        external_id: i.external_id.clone(),
                        is_open: true,
                    })
                    .collect(),
            };
            tx.insert_process(&p).await?;
            events.push(ProcessChange::new(EventType::ProcessStarted, None, total).event(&p, now));
            started += 1;
        }
        Ok(Looked {
            events,
            started,
            next_look,
        })
    }

    /// Adds overdue invoices to a running CUSTOMER_BALANCE process.
    async fn join(
        &self,
        tx: &Tx,
        process: &mut Process,
        joining: &[&Invoice],
        invoices: &[Invoice],
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        let added: Vec<ProcessInvoice> = joining
            .iter()
            .map(|i| ProcessInvoice {
                invoice_id: i.id,
                external_id: i.external_id.clone(),
                is_open: true,
            })
            .collect();
        tx.add_process_invoices(process.id, &added, process.invoices.len())
            .await?;
        process.invoices.extend(added);
        process.updated_at = now;
        tx.update_process(process).await?;
        let amount = amount_due(process, invoices)?;
        Ok(joining
            .iter()
            .map(|invoice| {
                let mut event = ProcessChange::new(
                    EventType::ProcessInvoiceJoined,
                    Some(process.state),
                    amount,
                )
                .event(process, now);
                event.invoice_id = Some(invoice.id);
                event.invoice_external_id = invoice.external_id.clone();
                event
            })
            .collect())
    }
}

/// The policy code of an invoice: the chosen one (a simulation), else as resolved.
fn chosen_or_resolved<'a>(
    chosen: Option<&'a Policy>,
    invoice: &'a Invoice,
    customer: &'a Customer,
    default_code: &'a str,
) -> Option<&'a str> {
    match chosen {
        Some(policy) => Some(policy.code.as_str()),
        None => resolve_policy_code(invoice, customer, default_code),
    }
}
