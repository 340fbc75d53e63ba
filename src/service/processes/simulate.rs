//! SimulatePolicy: what a policy would do to some invoices, computed by the engine itself. The
//! starter and the step executor run on copies of the invoices and a simulated customer, with
//! a simulated clock moved from one due time to the next, inside a transaction that is always
//! rolled back: the simulation is the engine's own code path (DESIGN.md §9), not a second
//! model of it that could drift. Charges meet a provider that declines every one.

use super::Processes;
use crate::clock::new_id;
use crate::clock::{Clock, ManualClock};
use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::customer::{Customer, CustomerDetails, PaymentMethod};
use crate::domain::invoice::{CollectionMethod, Invoice, InvoiceSync};
use crate::domain::money::Currency;
use crate::domain::notification::Notification;
use crate::domain::payment_request::Decline;
use crate::domain::policy::{Policy, PolicyDefinition, PolicyScope};
use crate::domain::process::check_dunnable;
use crate::domain::process::state::{Charge, OutcomeStatus, ProcessState, StepRun};
use crate::domain::validation::Violations;
use crate::engine::steps::{BatchCache, ClaimedProcess};
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::load_policy_version;
use crate::storage::Tx;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// At most this many invoices in one simulation.
pub const MAX_SIMULATED_INVOICES: usize = 1000;
/// The simulated clock stops this long after the start: a policy's steps span at most 50
/// steps of bounded delays, far less than this.
const HORIZON_DAYS: i64 = 366 * 20;
/// Rounds at one simulated instant before the simulation gives up (a round that makes no
/// progress would repeat forever).
const MAX_ROUNDS_AT_ONE_INSTANT: usize = 8;

/// Which policy to simulate.
#[derive(Debug, Clone)]
pub enum SimulatedPolicy {
    /// A stored policy (archived ones included), its latest version or the given one.
    Stored { code: String, version: Option<i32> },
    /// A policy not stored, validated like CreatePolicy.
    Inline {
        code: String,
        definition: PolicyDefinition,
    },
}

/// A hypothetical invoice.
#[derive(Debug, Clone)]
pub struct HypotheticalInvoice {
    pub label: String,
    pub currency: Currency,
    pub amount_due_minor: i64,
    pub due_date: NaiveDate,
    pub collection_method: CollectionMethod,
}

/// What to simulate (SimulatePolicy's request, validated).
#[derive(Debug, Clone)]
pub struct SimulationRequest {
    pub policy: SimulatedPolicy,
    pub invoices: Vec<HypotheticalInvoice>,
    /// Stored invoices, copied.
    pub stored_invoice_external_ids: Vec<String>,
    /// The stored customer the simulated one copies.
    pub customer_external_id: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub timezone: Option<Tz>,
    pub has_payment_method: bool,
}

/// One action of a simulated step.
#[derive(Debug, Clone)]
pub struct SimulatedAction {
    pub action: crate::domain::policy::Action,
    pub executed: bool,
    pub detail: String,
    pub charge_minor: Option<i64>,
    /// The email it queued, as the outbox holds it.
    pub email: Option<Notification>,
}

/// One step the engine ran in the simulation.
#[derive(Debug, Clone)]
pub struct SimulatedStep {
    /// 1-based, in the order the processes started.
    pub process_number: usize,
    pub invoice_labels: Vec<String>,
    pub currency: Currency,
    pub step_index: usize,
    pub step_name: String,
    pub at: DateTime<Utc>,
    pub actions: Vec<SimulatedAction>,
    /// Charges the step booked (invoice external ids are the labels).
    pub charges: Vec<Charge>,
    pub amount_due_minor: i64,
    pub total_charges_minor: i64,
    pub state_after: ProcessState,
}

/// SimulatePolicy's answer.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub policy: Policy,
    pub timeline: Vec<SimulatedStep>,
    /// Invoices that would not be dunned, by label, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// A simulated invoice: the row the engine sees, and the label the caller knows it by.
struct Copy {
    invoice: Invoice,
    label: String,
}

impl Processes {
    /// Runs the engine over the request's invoices with a simulated clock and returns the
    /// timeline; nothing is stored or sent.
    pub async fn simulate_policy(
        &self,
        caller: Caller,
        request: SimulationRequest,
    ) -> Result<Simulation, Error> {
        let policy = self.simulated_policy(caller, &request.policy).await?;
        let start = request.start.unwrap_or_else(|| self.core.now());
        let clock = Arc::new(ManualClock::new(start));
        // The engine's own code, on a clock of its own; wake-ups go nowhere (nothing commits).
        let engine = Core::new(self.core.store.clone(), clock.clone());
        // Dropped without commit: everything the engine writes below is rolled back.
        let tx = self.core.store.begin().await?;
        let stored = stored_invoices(&tx, caller, &request.stored_invoice_external_ids).await?;
        let (customer, shown_id) = engine
            .simulated_customer(&tx, caller, &request, &stored)
            .await?;
        let copies = engine
            .simulated_invoices(&tx, caller, &customer, &request, &stored)
            .await?;
        let run = engine
            .run_simulation(&tx, caller, &customer, &policy, &copies, &clock)
            .await?;
        let stand_ins = StandIns::new(&customer, shown_id, &copies);
        let simulation = run
            .timeline(&tx, caller, &policy, &copies, &stand_ins)
            .await?;
        let skipped = skipped_invoices(&copies, &customer, &policy, &simulation);
        drop(tx);
        Ok(Simulation {
            policy,
            timeline: simulation,
            skipped,
        })
    }

    async fn simulated_policy(
        &self,
        caller: Caller,
        source: &SimulatedPolicy,
    ) -> Result<Policy, Error> {
        match source {
            SimulatedPolicy::Stored { code, version } => {
                load_policy_version(&self.core.store, caller, code, *version).await
            }
            SimulatedPolicy::Inline { code, definition } => {
                let now = self.core.now();
                Ok(Policy {
                    id: new_id(),
                    organization_id: caller.organization_id,
                    code: if code.is_empty() {
                        "simulated".into()
                    } else {
                        code.clone()
                    },
                    version: 1,
                    definition: definition.clone(),
                    archived: false,
                    created_at: now,
                    updated_at: now,
                })
            }
        }
    }
}

/// What the engine did in a simulation: the processes it started, in order, and for each
/// step run the state its process was left in and the amount it was about.
struct SimulationRun {
    processes: Vec<Uuid>,
    state_after: HashMap<Uuid, ProcessState>,
    amount_at: HashMap<Uuid, i64>,
}

impl Core {
    /// The simulated customer: a copy of the stored one the request names (or of its stored
    /// invoices' customer), else a placeholder.
    async fn simulated_customer(
        &self,
        tx: &Tx,
        caller: Caller,
        request: &SimulationRequest,
        stored_invoices: &[Invoice],
    ) -> Result<(Customer, String), Error> {
        let org = load_organization(tx, caller).await?;
        let stored = match &request.customer_external_id {
            Some(external_id) => Some(
                tx.find_customer_by_external_id(caller.organization_id, external_id)
                    .await?
                    .filter(|c| !c.is_deleted())
                    .ok_or_else(|| {
                        Error::not_found(
                            Reason::CustomerNotFound,
                            format!("no customer with external_id `{external_id}`"),
                        )
                    })?,
            ),
            None => customer_of_invoices(tx, caller, stored_invoices).await?,
        };
        let shown_id = stored.as_ref().map_or_else(
            || "simulated-customer".to_owned(),
            |c| c.external_id.clone(),
        );
        let mut details = match stored {
            Some(c) => c.details,
            None => CustomerDetails {
                name: "Simulated customer".into(),
                email: "customer@example.invalid".into(),
                cc_emails: Vec::new(),
                bcc_emails: Vec::new(),
                locale: String::new(),
                timezone: org.settings.timezone,
                sales_rep_email: String::new(),
                payment_method: None,
                policy_code: String::new(),
                dunning_excluded: false,
                dunning_excluded_reason: String::new(),
                tags: Vec::new(),
                metadata: BTreeMap::new(),
            },
        };
        if let Some(tz) = request.timezone {
            details.timezone = tz;
        }
        if request.has_payment_method && details.payment_method.is_none() {
            details.payment_method = Some(PaymentMethod {
                provider: "simulation".into(),
                token: "simulated".into(),
            });
        }
        // A simulation shows what the policy would do: an exclusion would hide all of it.
        details.dunning_excluded = false;
        let now = self.now();
        let customer = Customer {
            id: new_id(),
            organization_id: caller.organization_id,
            external_id: format!("{STAND_IN_PREFIX}{}", new_id()),
            details,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        tx.insert_customer(&customer).await?;
        Ok((customer, shown_id))
    }

    /// Copies of the stored invoices and the hypothetical ones, owed by the simulated
    /// customer.
    async fn simulated_invoices(
        &self,
        tx: &Tx,
        caller: Caller,
        customer: &Customer,
        request: &SimulationRequest,
        stored: &[Invoice],
    ) -> Result<Vec<Copy>, Error> {
        let now = self.now();
        let tz = customer.details.timezone;
        let suffix = customer.external_id.clone();
        debug_assert!(suffix.starts_with(STAND_IN_PREFIX));
        let mut syncs: Vec<(String, InvoiceSync)> = Vec::new();
        for invoice in stored {
            syncs.push((
                invoice.external_id.clone(),
                InvoiceSync {
                    // As if its amount due had been owed since the due date.
                    total_minor: invoice.amount_due_minor(),
                    credited_minor: 0,
                    number: invoice.number.clone(),
                    issue_date: invoice.issue_date,
                    collection_method: Some(invoice.collection_method),
                    metadata: invoice.metadata.clone(),
                    ..hypothetical_sync(&invoice.external_id, invoice.currency, invoice.due_date)
                },
            ));
        }
        for invoice in &request.invoices {
            syncs.push((
                invoice.label.clone(),
                InvoiceSync {
                    total_minor: invoice.amount_due_minor,
                    collection_method: Some(invoice.collection_method),
                    ..hypothetical_sync(&invoice.label, invoice.currency, invoice.due_date)
                },
            ));
        }
        let mut copies = Vec::with_capacity(syncs.len());
        for (label, mut sync) in syncs {
            // Unique beside the stored invoices; the label is what the timeline shows.
            sync.external_id = format!("{label}~{suffix}");
            let invoice = Invoice::create(
                new_id(),
                caller.organization_id,
                customer.id,
                tz,
                &sync,
                now,
            )
            .map_err(|e| Error::field("invoices", e.to_string()))?;
            copies.push(Copy { invoice, label });
        }
        let rows: Vec<Invoice> = copies.iter().map(|c| c.invoice.clone()).collect();
        tx.save_invoices(&rows, &[]).await?;
        Ok(copies)
    }

    /// Moves the simulated clock from one due time to the next, running at each what the
    /// engine runs: the starter for the customer, the due steps, and the payment worker
    /// (declining) for the charges they opened.
    async fn run_simulation(
        &self,
        tx: &Tx,
        caller: Caller,
        customer: &Customer,
        policy: &Policy,
        copies: &[Copy],
        clock: &ManualClock,
    ) -> Result<SimulationRun, Error> {
        let start = clock.now();
        let organization_id = caller.organization_id;
        let mut cache = BatchCache::with_policy(organization_id, policy);
        let can_charge = customer.details.payment_method.is_some();
        let mut run = SimulationRun {
            processes: Vec::new(),
            state_after: HashMap::new(),
            amount_at: HashMap::new(),
        };
        let invoices: HashMap<Uuid, i64> = copies
            .iter()
            .map(|c| (c.invoice.id, c.invoice.amount_due_minor()))
            .collect();
        let mut worked: HashSet<Uuid> = HashSet::new();
        let horizon = start + Duration::days(HORIZON_DAYS);
        let (mut now, mut rounds_here) = (start, 0usize);
        loop {
            clock.set(now);
            let looked = self
                .start_for_customer(tx, caller, customer.id, Some(policy))
                .await?;
            let open = tx
                .open_processes_of_customer(organization_id, customer.id)
                .await?;
            for p in &open {
                if !run.processes.contains(&p.id) {
                    run.processes.push(p.id);
                }
            }
            let due: Vec<ClaimedProcess> = open
                .iter()
                .filter_map(|p| {
                    let lease = p.due_at.filter(|at| *at <= now)?;
                    Some(ClaimedProcess {
                        organization_id,
                        process_id: p.id,
                        lease,
                    })
                })
                .collect();
            if !due.is_empty() {
                let claims: Vec<&ClaimedProcess> = due.iter().collect();
                self.run_batch_of_organization(tx, organization_id, &claims, &mut cache)
                    .await?;
                let ids: Vec<Uuid> = due.iter().map(|c| c.process_id).collect();
                for process in tx.find_processes(organization_id, &ids, false).await? {
                    let amount: i64 = process
                        .invoices
                        .iter()
                        .filter_map(|i| invoices.get(&i.invoice_id))
                        .sum();
                    for step in tx.step_runs_of(process.id).await? {
                        if step.executed_at == now {
                            run.state_after.insert(step.id, process.state);
                            run.amount_at.insert(step.id, amount);
                        }
                        if let Some(request_id) = step.payment_request_id
                            && worked.insert(request_id)
                        {
                            let decline = Decline {
                                code: "simulated_decline".into(),
                                message: "the simulation declines every charge".into(),
                                hard: false,
                            };
                            self.work_with_declining_provider(
                                tx, caller, request_id, can_charge, decline,
                            )
                            .await?;
                        }
                    }
                }
            }
            let open = tx
                .open_processes_of_customer(organization_id, customer.id)
                .await?;
            let Some(next) = open
                .iter()
                .filter_map(|p| p.due_at)
                .chain(looked.next_look)
                .min()
            else {
                break;
            };
            if next > horizon {
                break;
            }
            if next <= now {
                rounds_here += 1;
                if rounds_here > MAX_ROUNDS_AT_ONE_INSTANT {
                    return Err(Error::Internal(format!(
                        "the simulation made no progress at {now}"
                    )));
                }
            } else {
                (now, rounds_here) = (next, 0);
            }
        }
        Ok(run)
    }
}

impl SimulationRun {
    /// The step runs of the simulated processes with what each action did, ordered by time,
    /// process and step.
    async fn timeline(
        &self,
        tx: &Tx,
        caller: Caller,
        policy: &Policy,
        copies: &[Copy],
        stand_ins: &StandIns,
    ) -> Result<Vec<SimulatedStep>, Error> {
        let labels: HashMap<Uuid, &str> = copies
            .iter()
            .map(|c| (c.invoice.id, c.label.as_str()))
            .collect();
        let label_of = |id: &Uuid| labels.get(id).map(|l| (*l).to_owned()).unwrap_or_default();
        let mut timeline = Vec::new();
        for (number, id) in self.processes.iter().enumerate() {
            let Some(process) = tx.find_process(caller.organization_id, *id, false).await? else {
                continue;
            };
            let invoice_labels: Vec<String> = process
                .invoices
                .iter()
                .map(|i| label_of(&i.invoice_id))
                .collect();
            let charges = tx.charges_of(*id).await?;
            let mut runs = tx.step_runs_of(*id).await?;
            runs.sort_by_key(|r| (r.executed_at, r.step_index));
            let mut total = 0i64;
            for step_run in runs {
                let booked: Vec<Charge> = charges
                    .iter()
                    .filter(|c| c.step_run_id == step_run.id)
                    .map(|c| Charge {
                        invoice_external_id: label_of(&c.invoice_id),
                        ..c.clone()
                    })
                    .collect();
                total += booked.iter().map(|c| c.amount_minor).sum::<i64>();
                let actions = simulated_actions(tx, caller, policy, &step_run, stand_ins).await?;
                timeline.push(SimulatedStep {
                    process_number: number + 1,
                    invoice_labels: invoice_labels.clone(),
                    currency: process.currency,
                    step_index: step_run.step_index,
                    step_name: step_run.step_name.clone(),
                    at: step_run.executed_at,
                    actions,
                    charges: booked,
                    amount_due_minor: self.amount_at.get(&step_run.id).copied().unwrap_or(0),
                    total_charges_minor: total,
                    state_after: self
                        .state_after
                        .get(&step_run.id)
                        .copied()
                        .unwrap_or(process.state),
                });
            }
        }
        timeline.sort_by_key(|s| (s.at, s.process_number, s.step_index));
        Ok(timeline)
    }
}

/// What each action of a step run did, with the email it queued: its own, or the payment
/// link of the payment request it opened.
async fn simulated_actions(
    tx: &Tx,
    caller: Caller,
    policy: &Policy,
    step_run: &StepRun,
    stand_ins: &StandIns,
) -> Result<Vec<SimulatedAction>, Error> {
    let mut actions = Vec::with_capacity(step_run.outcomes.len());
    let step = &policy.definition.steps[step_run.step_index];
    for (action, outcome) in step.actions.iter().zip(&step_run.outcomes) {
        let mut notification_id = outcome.notification_id;
        if notification_id.is_none()
            && let Some(request_id) = outcome.payment_request_id
            && let Some(request) = tx
                .find_payment_request(caller.organization_id, request_id, false)
                .await?
        {
            notification_id = request.email_notification_id;
        }
        let email = match notification_id {
            Some(id) => tx
                .find_notification(id)
                .await?
                .map(|n| stand_ins.restore(n)),
            None => None,
        };
        actions.push(SimulatedAction {
            action: action.clone(),
            executed: outcome.status != OutcomeStatus::Skipped,
            detail: outcome.detail.clone(),
            charge_minor: outcome.charge_minor,
            email,
        });
    }
    Ok(actions)
}

/// The external ids of the simulated customer and invoices start with this (they must be
/// unique beside the stored rows they copy).
const STAND_IN_PREFIX: &str = "simulation-";

/// The stand-in external ids of a simulation and the ids the caller knows: emails render
/// the stand-ins, and show the caller's ids once restored.
struct StandIns {
    /// Longest first: an invoice's stand-in contains the customer's.
    replacements: Vec<(String, String)>,
}

impl StandIns {
    fn new(customer: &Customer, shown_id: String, copies: &[Copy]) -> Self {
        let mut replacements: Vec<(String, String)> = copies
            .iter()
            .map(|c| (c.invoice.external_id.clone(), c.label.clone()))
            .collect();
        replacements.push((customer.external_id.clone(), shown_id));
        Self { replacements }
    }

    fn restore(&self, mut email: Notification) -> Notification {
        for text in [
            &mut email.subject,
            &mut email.text_body,
            &mut email.html_body,
            &mut email.customer_external_id,
        ] {
            if text.contains(STAND_IN_PREFIX) {
                for (stand_in, shown) in &self.replacements {
                    *text = text.replace(stand_in.as_str(), shown);
                }
            }
        }
        for id in &mut email.invoice_external_ids {
            if let Some((_, shown)) = self.replacements.iter().find(|(s, _)| s == id) {
                *id = shown.clone();
            }
        }
        email
    }
}

/// The stored invoices to copy, in the order given (NOT_FOUND naming a missing one).
async fn stored_invoices(
    tx: &Tx,
    caller: Caller,
    external_ids: &[String],
) -> Result<Vec<Invoice>, Error> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = tx
        .find_invoices_by_external_ids(caller.organization_id, external_ids, false)
        .await?;
    external_ids
        .iter()
        .map(|external_id| {
            let at = found
                .iter()
                .position(|i| &i.external_id == external_id)
                .ok_or_else(|| {
                    Error::not_found(
                        Reason::InvoiceNotFound,
                        format!("no invoice with external_id `{external_id}`"),
                    )
                })?;
            Ok(found.swap_remove(at))
        })
        .collect()
}

/// The one customer `invoices` belong to, if there are any.
async fn customer_of_invoices(
    tx: &Tx,
    caller: Caller,
    invoices: &[Invoice],
) -> Result<Option<Customer>, Error> {
    let mut owners: Vec<Uuid> = invoices.iter().map(|i| i.customer_id).collect();
    owners.sort();
    owners.dedup();
    match owners.as_slice() {
        [] => Ok(None),
        [one] => Ok(tx
            .find_customers_by_ids(caller.organization_id, &[*one])
            .await?
            .into_iter()
            .next()
            .filter(|c| !c.is_deleted())),
        _ => Err(Error::field(
            "invoice_external_ids",
            "the invoices belong to more than one customer; simulate them apart",
        )),
    }
}

/// The invoices no simulated process took up, with why.
fn skipped_invoices(
    copies: &[Copy],
    customer: &Customer,
    policy: &Policy,
    timeline: &[SimulatedStep],
) -> Vec<(String, String)> {
    let dunned: HashSet<&str> = timeline
        .iter()
        .flat_map(|s| s.invoice_labels.iter().map(String::as_str))
        .collect();
    copies
        .iter()
        .filter(|c| !dunned.contains(c.label.as_str()))
        .map(|c| {
            let definition = &policy.definition;
            let reason = if definition.steps.is_empty() {
                "the policy has no steps"
            } else {
                match check_dunnable(&c.invoice, customer, definition) {
                    Err(why) => why.describe(),
                    Ok(()) if definition.scope == PolicyScope::CustomerBalance => {
                        "the balance is below the policy's threshold"
                    }
                    Ok(()) => "below the policy's threshold",
                }
            };
            (c.label.clone(), reason.to_owned())
        })
        .collect()
}

/// An invoice sync for a simulated invoice: what is not said is the plain default.
fn hypothetical_sync(label: &str, currency: Currency, due_date: NaiveDate) -> InvoiceSync {
    InvoiceSync {
        external_id: label.to_owned(),
        customer_external_id: String::new(),
        number: label.to_owned(),
        currency,
        total_minor: 0,
        credited_minor: 0,
        issue_date: due_date,
        due_date,
        collection_method: Some(CollectionMethod::Automatic),
        disputed: false,
        dunning_blocked: false,
        dunning_block_reason: String::new(),
        policy_code: String::new(),
        metadata: BTreeMap::new(),
        void: false,
    }
}

/// Checks what the wire cannot: the number of invoices and unique labels.
pub fn check_simulated_invoices(
    hypothetical: &[HypotheticalInvoice],
    stored: &[String],
    v: &mut Violations,
) {
    let count = hypothetical.len() + stored.len();
    if count == 0 || count > MAX_SIMULATED_INVOICES {
        v.add(
            "invoices",
            format!(
                "give 1 to {MAX_SIMULATED_INVOICES} invoices (with invoice_external_ids); got {count}"
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, label) in stored
        .iter()
        .chain(hypothetical.iter().map(|h| &h.label))
        .enumerate()
    {
        if !seen.insert(label.as_str()) {
            let field = if i < stored.len() {
                format!("invoice_external_ids[{i}]")
            } else {
                format!("invoices[{}].external_id", i - stored.len())
            };
            v.add(&field, format!("`{label}` is given twice"));
        }
    }
}
