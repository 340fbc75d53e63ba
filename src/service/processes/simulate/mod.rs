//! SimulatePolicy: what a policy would do to some invoices, computed by the engine itself. The
//! starter and the step executor run on copies of the invoices and a simulated customer, with
//! a simulated clock moved from one due time to the next, inside a transaction that is always
//! rolled back: the simulation is the engine's own code path (DESIGN.md §9), not a second
//! model of it that could drift. Charges meet a provider that declines every one.

mod copies;
mod run;

use copies::{StandIns, simulated_customer, simulated_invoices, stored_invoices};
use run::run_simulation;

use super::Processes;
use crate::clock::ManualClock;
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::domain::customer::Customer;
use crate::domain::invoice::{CollectionMethod, Invoice};
use crate::domain::money::Currency;
use crate::domain::notification::Notification;
use crate::domain::policy::{Policy, PolicyDefinition, PolicyScope};
use crate::domain::process::check_dunnable;
use crate::domain::process::state::{Charge, ProcessState};
use crate::domain::validation::Violations;
use crate::error::Error;
use crate::service::lookup::load_policy_version;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::HashSet;
use std::sync::Arc;

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
        let (customer, shown_id) =
            simulated_customer(&engine, &tx, caller, &request, &stored).await?;
        let copies = simulated_invoices(&engine, &tx, caller, &customer, &request, &stored).await?;
        let run = run_simulation(&engine, &tx, caller, &customer, &policy, &copies, &clock).await?;
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
