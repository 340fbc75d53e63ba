//! The engine's side of running steps: claiming due processes with a lease (a
//! compare-and-set on `due_at`), and running the claimed ones in batches that read what they
//! need with one query per table and write with one multi-row statement per table.

use super::StepRunner;
use crate::core::Caller;
use crate::core::Core;
use crate::core::compose::TemplateCache;
use crate::domain::customer::Customer;
use crate::domain::invoice::Invoice;
use crate::domain::notification::Notification;
use crate::domain::organization::Organization;
use crate::domain::policy::Policy;
use crate::domain::process::state::{Charge, Process, StepRun, StepTrigger};
use crate::engine::Engine;
use crate::error::Error;
use crate::storage::Tx;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tracing::Instrument;
use uuid::Uuid;

/// Processes claimed and run in one transaction per round. SQLite has one connection, which
/// the API waits for while a batch runs: smaller batches keep its latency low.
const STEP_BATCH: u64 = 250;
const SQLITE_STEP_BATCH: u64 = 20;

/// What the steps of one batch share, read once per batch: policy versions (immutable),
/// organizations and template sources.
#[derive(Default)]
pub(crate) struct BatchCache {
    policies: HashMap<(Uuid, String, i32), Policy>,
    organizations: HashMap<Uuid, Organization>,
    templates: TemplateCache,
}

impl BatchCache {
    /// A cache that knows `policy` already (a policy simulated without being stored).
    pub(crate) fn with_policy(organization_id: Uuid, policy: &Policy) -> Self {
        let mut cache = Self::default();
        cache.policies.insert(
            (organization_id, policy.code.clone(), policy.version),
            policy.clone(),
        );
        cache
    }
}

/// A process this replica holds the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedProcess {
    pub organization_id: Uuid,
    pub process_id: Uuid,
    /// The `due_at` the claim wrote; the step commits only while it is still there.
    pub lease: DateTime<Utc>,
}

impl Engine {
    /// One round of the step runner: claims due processes and runs what is due for each.
    /// Returns how many it claimed.
    pub async fn run_due_steps(&self) -> Result<usize, Error> {
        let batch = match self.store.backend() {
            crate::storage::Backend::Postgres => STEP_BATCH,
            crate::storage::Backend::Sqlite => SQLITE_STEP_BATCH,
        };
        let claims = self.claim_due_processes(batch).await?;
        self.run_claimed_processes(&claims).await?;
        Ok(claims.len())
    }

    /// Runs claimed processes in one transaction (one commit, one hold of the organization's
    /// event sequence, one statement per table for the whole batch). If any of them fails,
    /// the batch rolls back and each runs in its own transaction, so that one bad process
    /// does not hold up the others. Returns how many ran.
    pub async fn run_claimed_processes(&self, claims: &[ClaimedProcess]) -> Result<usize, Error> {
        if claims.is_empty() {
            return Ok(0);
        }
        let mut cache = BatchCache::default();
        match self.run_batch(claims, &mut cache).await {
            Ok(ran) => return Ok(ran),
            Err(e) if claims.len() == 1 => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "a step of the batch failed; running them one by one")
            }
        }
        let mut ran = 0;
        for claim in claims {
            match self
                .run_batch(std::slice::from_ref(claim), &mut cache)
                .await
            {
                Ok(n) => ran += n,
                // The lease expires and the step is tried again, by this replica or another.
                Err(e) => {
                    tracing::warn!(process = %claim.process_id, error = %e, "dunning step failed")
                }
            }
        }
        Ok(ran)
    }

    /// How long until the engine's next work falls due (a step or a look at a customer);
    /// zero when some is due now, `None` when nothing is scheduled.
    pub async fn engine_work_due_in(&self) -> Result<Option<std::time::Duration>, Error> {
        let next = self.store.next_engine_work_at().await?;
        Ok(next.map(|at| (at - self.now()).to_std().unwrap_or_default()))
    }

    /// Claims up to `limit` due processes (the first half of a round; tests call the halves
    /// apart to act between claim and commit).
    pub async fn claim_due_processes(&self, limit: u64) -> Result<Vec<ClaimedProcess>, Error> {
        let now = self.now();
        // Whole microseconds, as stored: the claim is recognised by this exact value.
        let lease = now + self.claim_lease;
        let lease = DateTime::from_timestamp_micros(lease.timestamp_micros()).unwrap_or(lease);
        let claimed = self.store.claim_due_processes(now, lease, limit).await?;
        Ok(claimed
            .into_iter()
            .map(|(organization_id, process_id)| ClaimedProcess {
                organization_id,
                process_id,
                lease,
            })
            .collect())
    }

    /// Runs what is due for a claimed process in one transaction. Returns false when the
    /// claim was lost meanwhile (nothing was done).
    pub async fn run_claimed_process(&self, claim: &ClaimedProcess) -> Result<bool, Error> {
        let ran = self
            .run_batch(std::slice::from_ref(claim), &mut BatchCache::default())
            .await?;
        Ok(ran == 1)
    }

    /// Runs the claimed processes in one transaction: reads what their steps need with one
    /// query per table, runs each step in memory (rare actions — charges, write-offs,
    /// hand-overs — read and write as they go), then writes the batch's step runs, charges,
    /// outbox rows, processes and events with one statement per table. Returns how many ran
    /// (claims lost meanwhile are left out).
    async fn run_batch(
        &self,
        claims: &[ClaimedProcess],
        cache: &mut BatchCache,
    ) -> Result<usize, Error> {
        let tx = self.store.begin().await?;
        let mut ran = Ran::default();
        let mut organizations: Vec<Uuid> = Vec::new();
        for claim in claims {
            if !organizations.contains(&claim.organization_id) {
                organizations.push(claim.organization_id);
            }
        }
        for organization_id in organizations {
            let mine: Vec<&ClaimedProcess> = claims
                .iter()
                .filter(|c| c.organization_id == organization_id)
                .collect();
            ran.add(
                self.run_batch_of_organization(&tx, organization_id, &mine, cache)
                    .await?,
            );
        }
        tx.commit().await?;
        self.count(&ran, claims.len());
        Ok(ran.processes)
    }

    /// Counts a committed batch: each action's outcome, each step's lag, the claims lost.
    fn count(&self, ran: &Ran, claimed: usize) {
        for run in &ran.step_runs {
            for outcome in &run.outcomes {
                self.metrics
                    .count_action(outcome.action_type.as_str(), outcome.status.as_str());
            }
            tracing::info!(
                process = %run.process_id,
                step = run.step_index + 1,
                step_name = %run.step_name,
                attempt = run.attempt,
                trigger = run.trigger.as_str(),
                outcomes = %run
                    .outcomes
                    .iter()
                    .map(|o| format!("{}={}", o.action_type.as_str(), o.status.as_str()))
                    .collect::<Vec<_>>()
                    .join(","),
                "step ran"
            );
        }
        for lag in &ran.lags {
            self.metrics.observe_step_lag(*lag);
        }
        self.metrics
            .count_claims_lost(claimed.saturating_sub(ran.processes));
    }
}

impl Core {
    /// Runs what is due for the claimed processes of one organization in `tx` (claims lost
    /// meanwhile are left out) and writes it there. Returns how many ran.
    pub(crate) async fn run_batch_of_organization(
        &self,
        tx: &Tx,
        organization_id: Uuid,
        claims: &[&ClaimedProcess],
        cache: &mut BatchCache,
    ) -> Result<Ran, Error> {
        let caller = Caller::system(organization_id);
        let ids: Vec<Uuid> = claims.iter().map(|c| c.process_id).collect();
        let mut processes = tx.find_processes(organization_id, &ids, true).await?;
        // A claim is held while the row still carries its lease (the row is locked now).
        processes.retain(|p| {
            claims
                .iter()
                .any(|c| c.process_id == p.id && p.due_at == Some(c.lease))
        });
        if processes.is_empty() {
            return Ok(Ran::default());
        }
        let now = self.now();
        let lags: Vec<f64> = processes
            .iter()
            .filter_map(|p| p.next_step_at)
            .filter(|due| *due <= now)
            .map(|due| (now - due).num_milliseconds() as f64 / 1000.0)
            .collect();
        let mut inputs = StepInputs::read(tx, caller, processes, cache).await?;
        let mut writes = StepWrites::default();
        let mut events = Vec::new();
        // In claim order: the most overdue first, as claimed.
        for claim in claims {
            let Some(mut runner) =
                inputs.runner(self, tx, caller, claim.process_id, cache, &mut writes)?
            else {
                continue;
            };
            let span = tracing::info_span!("step_run", process = %claim.process_id);
            if let Some(trace) = runner.take_trace_context() {
                crate::telemetry::continue_trace(&span, &trace);
            }
            runner
                .run_due(StepTrigger::Scheduled)
                .instrument(span)
                .await?;
            let (process, appended) = runner.finish();
            writes.processes.push(process);
            events.extend(appended);
        }
        writes.write(self, tx).await?;
        tx.append_events(organization_id, &events).await?;
        Ok(Ran {
            processes: writes.processes.len(),
            step_runs: writes.step_runs,
            lags,
        })
    }
}

/// What a batch ran: the processes, the step runs it wrote and how late each process's due
/// step ran (seconds).
#[derive(Default)]
pub(crate) struct Ran {
    pub(crate) processes: usize,
    pub(crate) step_runs: Vec<StepRun>,
    pub(crate) lags: Vec<f64>,
}

impl Ran {
    fn add(&mut self, other: Ran) {
        self.processes += other.processes;
        self.step_runs.extend(other.step_runs);
        self.lags.extend(other.lags);
    }
}

/// What the steps of a batch read before they run, with one query per table: the locked
/// processes, their customers, the invoices they hold and the charges they booked.
pub(super) struct StepInputs {
    processes: HashMap<Uuid, Process>,
    customers: HashMap<Uuid, Customer>,
    invoices: HashMap<Uuid, Invoice>,
    booked: HashMap<Uuid, Vec<Charge>>,
}

impl StepInputs {
    /// Reads what `processes` (locked, of the caller's organization) need, and puts their
    /// policy versions and organization in `cache`.
    pub(super) async fn read(
        tx: &Tx,
        caller: Caller,
        processes: Vec<Process>,
        cache: &mut BatchCache,
    ) -> Result<Self, Error> {
        let organization_id = caller.organization_id;
        let mut customer_ids: Vec<Uuid> = processes.iter().map(|p| p.customer_id).collect();
        customer_ids.sort();
        customer_ids.dedup();
        let customers = tx
            .find_customers_by_ids(organization_id, &customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let invoice_ids: Vec<Uuid> = processes
            .iter()
            .flat_map(|p| p.open_invoice_ids())
            .collect();
        let invoices = tx
            .find_invoices_by_ids(organization_id, &invoice_ids, false)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        let process_ids: Vec<Uuid> = processes.iter().map(|p| p.id).collect();
        let booked = tx.charges_of_processes(&process_ids).await?;
        for p in &processes {
            let key = (organization_id, p.policy_code.clone(), p.policy_version);
            if cache.policies.contains_key(&key) {
                continue;
            }
            let found = crate::core::reconcile::policy_of(tx, p).await?;
            cache.policies.insert(key, found);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) =
            cache.organizations.entry(organization_id)
        {
            slot.insert(crate::core::lookup::load_organization(tx, caller).await?);
        }
        Ok(Self {
            processes: processes.into_iter().map(|p| (p.id, p)).collect(),
            customers,
            invoices,
            booked,
        })
    }

    /// The step runner of one of the processes read (`None` if it is not among them); its
    /// invoices and charges move into the runner.
    pub(super) fn runner<'a>(
        &'a mut self,
        core: &'a Core,
        tx: &'a Tx,
        caller: Caller,
        process_id: Uuid,
        cache: &'a mut BatchCache,
        writes: &'a mut StepWrites,
    ) -> Result<Option<StepRunner<'a>>, Error> {
        let Some(process) = self.processes.remove(&process_id) else {
            return Ok(None);
        };
        let customer = self
            .customers
            .get(&process.customer_id)
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", process.id)))?;
        let invoices = process
            .open_invoice_ids()
            .iter()
            .filter_map(|id| self.invoices.remove(id))
            .collect();
        let BatchCache {
            policies,
            organizations,
            templates,
        } = cache;
        let policy = &policies[&(
            caller.organization_id,
            process.policy_code.clone(),
            process.policy_version,
        )];
        Ok(Some(StepRunner {
            core,
            tx,
            caller,
            policy,
            customer,
            organization: &organizations[&caller.organization_id],
            templates,
            invoices,
            booked: self.booked.remove(&process.id).unwrap_or_default(),
            payments: None,
            now: core.now(),
            process,
            events: Vec::new(),
            writes,
        }))
    }
}

/// What the steps of a batch write, gathered to be written with one statement per table.
#[derive(Default)]
pub(super) struct StepWrites {
    pub(super) step_runs: Vec<StepRun>,
    pub(super) charges: Vec<Charge>,
    pub(super) notifications: Vec<Notification>,
    pub(super) processes: Vec<Process>,
}

impl StepWrites {
    /// Step runs first: their unique key (process, step, attempt) fails the batch before
    /// anything else is written if another replica ran one of these steps.
    pub(super) async fn write(&self, core: &Core, tx: &Tx) -> Result<(), Error> {
        tx.insert_step_runs(&self.step_runs).await?;
        tx.insert_charges(&self.charges).await?;
        if !self.notifications.is_empty() {
            tx.insert_notifications(&self.notifications).await?;
            core.wake_outbox_after_commit(tx);
        }
        tx.save_locked_processes(&self.processes).await
    }
}
