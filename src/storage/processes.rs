//! Dunning processes, their invoices, step runs and charges, and the queue of customers the
//! engine must look at.

use super::entity::{charge, dunning_check, payment, process, process_invoice, step_run};
use super::{Conn, corrupt, db_error, from_micros, to_micros};
use crate::domain::charges::DatedPayment;
use crate::domain::money::Currency;
use crate::domain::policy::PolicyScope;
use crate::domain::process::state::{
    ActionOutcome, Charge, ChargeKind, PauseReason, Process, ProcessInvoice, ProcessState, StepRun,
    StepTrigger,
};
use crate::domain::query::ProcessFilter;
use crate::error::Error;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    /// Inserts a new process with its invoices. A second open process for the same scope key
    /// fails with ABORTED (another replica started it first; the next look joins it).
    pub async fn insert_process(&self, p: &Process) -> Result<(), Error> {
        process::Entity::insert(to_model(p).into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(lost_race)?;
        self.add_process_invoices(p.id, &p.invoices, 0).await
    }

    /// Adds invoices to a process's list (positions from `first_position`).
    pub async fn add_process_invoices(
        &self,
        process_id: Uuid,
        invoices: &[ProcessInvoice],
        first_position: usize,
    ) -> Result<(), Error> {
        if invoices.is_empty() {
            return Ok(());
        }
        let models = invoices.iter().enumerate().map(|(i, inv)| {
            process_invoice::Model {
                process_id,
                invoice_id: inv.invoice_id,
                invoice_external_id: inv.external_id.clone(),
                position: (first_position + i) as i32,
                is_open: inv.is_open,
            }
            .into_active_model()
        });
        process_invoice::Entity::insert_many(models)
            .exec_without_returning(&self.conn)
            .await
            .map_err(lost_race)?;
        Ok(())
    }

    /// Saves a process's row (and, once it ended, releases its invoices). With
    /// `claimed_due_at`, only while the claim is still held: the row's `due_at` is still the
    /// lease the claim wrote; otherwise (a payment resolved it, an operator paused it, the
    /// lease expired and another replica took it) nothing is written and this answers
    /// ABORTED, so the caller's transaction rolls back.
    pub async fn update_process(
        &self,
        p: &Process,
        claimed_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let model = to_model(p);
        let mut update = process::Entity::update_many()
            .set(model.into_active_model().reset_all())
            .filter(process::Column::Id.eq(p.id));
        if let Some(lease) = claimed_due_at {
            update = update.filter(process::Column::DueAt.eq(to_micros(lease)));
        }
        let result = update.exec(&self.conn).await.map_err(db_error)?;
        if result.rows_affected != 1 {
            return Err(Error::Aborted(format!(
                "process {} changed while its step ran; the step was not recorded",
                p.id
            )));
        }
        if !p.state.is_open() {
            process_invoice::Entity::update_many()
                .col_expr(process_invoice::Column::IsOpen, Expr::value(false))
                .filter(process_invoice::Column::ProcessId.eq(p.id))
                .exec(&self.conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// A process by id, with its invoices; locked for the transaction when `lock`
    /// (PostgreSQL).
    pub async fn find_process(
        &self,
        organization_id: Uuid,
        id: Uuid,
        lock: bool,
    ) -> Result<Option<Process>, Error> {
        let query = process::Entity::find_by_id(id)
            .filter(process::Column::OrganizationId.eq(organization_id));
        let Some(model) = self
            .for_update(query, lock)
            .one(&self.conn)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        Ok(self.with_process_invoices(vec![model]).await?.pop())
    }

    /// The open processes holding any of `invoice_ids`, locked (PostgreSQL) in id order.
    pub async fn open_processes_holding(
        &self,
        organization_id: Uuid,
        invoice_ids: &[Uuid],
    ) -> Result<Vec<Process>, Error> {
        let mut process_ids = Vec::new();
        for chunk in invoice_ids.chunks(super::rows_per_statement(1)) {
            let ids: Vec<Uuid> = process_invoice::Entity::find()
                .select_only()
                .column(process_invoice::Column::ProcessId)
                .filter(process_invoice::Column::InvoiceId.is_in(chunk.iter().copied()))
                .filter(process_invoice::Column::IsOpen.eq(true))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            process_ids.extend(ids);
        }
        self.lock_processes(organization_id, process_ids).await
    }

    /// The open processes of a customer, locked (PostgreSQL) in id order.
    pub async fn open_processes_of_customer(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Result<Vec<Process>, Error> {
        let ids: Vec<Uuid> = process::Entity::find()
            .select_only()
            .column(process::Column::Id)
            .filter(process::Column::OrganizationId.eq(organization_id))
            .filter(process::Column::CustomerId.eq(customer_id))
            .filter(process::Column::OpenScopeKey.is_not_null())
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        self.lock_processes(organization_id, ids).await
    }

    async fn lock_processes(
        &self,
        organization_id: Uuid,
        mut ids: Vec<Uuid>,
    ) -> Result<Vec<Process>, Error> {
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = process::Entity::find()
            .filter(process::Column::OrganizationId.eq(organization_id))
            .filter(process::Column::Id.is_in(ids))
            .filter(process::Column::OpenScopeKey.is_not_null())
            .order_by_asc(process::Column::Id);
        let models = self
            .for_update(query, true)
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        self.with_process_invoices(models).await
    }

    /// Processes newest first, after `after_id`.
    pub async fn list_processes(
        &self,
        organization_id: Uuid,
        filter: &ProcessFilter,
        after_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Process>, Error> {
        let mut query =
            process::Entity::find().filter(process::Column::OrganizationId.eq(organization_id));
        if let Some(customer_id) = filter.customer_id {
            query = query.filter(process::Column::CustomerId.eq(customer_id));
        }
        if let Some(state) = filter.state {
            query = query.filter(process::Column::State.eq(state.as_str()));
        }
        if let Some(code) = &filter.policy_code {
            query = query.filter(process::Column::PolicyCode.eq(code.as_str()));
        }
        if let Some(code) = &filter.currency_code {
            query = query.filter(process::Column::CurrencyCode.eq(code.as_str()));
        }
        if filter.open_only {
            query = query.filter(process::Column::OpenScopeKey.is_not_null());
        }
        if let Some(invoice_id) = filter.invoice_id {
            let ids: Vec<Uuid> = process_invoice::Entity::find()
                .select_only()
                .column(process_invoice::Column::ProcessId)
                .filter(process_invoice::Column::InvoiceId.eq(invoice_id))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            query = query.filter(process::Column::Id.is_in(ids));
        }
        if let Some(after) = after_id {
            query = query.filter(process::Column::Id.lt(after));
        }
        let models = query
            .order_by_desc(process::Column::Id)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        self.with_process_invoices(models).await
    }

    async fn with_process_invoices(
        &self,
        models: Vec<process::Model>,
    ) -> Result<Vec<Process>, Error> {
        if models.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
        let mut members: HashMap<Uuid, Vec<ProcessInvoice>> = HashMap::new();
        for chunk in ids.chunks(super::rows_per_statement(1)) {
            for m in process_invoice::Entity::find()
                .filter(process_invoice::Column::ProcessId.is_in(chunk.iter().copied()))
                .order_by_asc(process_invoice::Column::ProcessId)
                .order_by_asc(process_invoice::Column::Position)
                .all(&self.conn)
                .await
                .map_err(db_error)?
            {
                members
                    .entry(m.process_id)
                    .or_default()
                    .push(ProcessInvoice {
                        invoice_id: m.invoice_id,
                        external_id: m.invoice_external_id,
                        is_open: m.is_open,
                    });
            }
        }
        models
            .into_iter()
            .map(|m| {
                let invoices = members.remove(&m.id).unwrap_or_default();
                from_model(m, invoices)
            })
            .collect()
    }

    /// Processes (of any organization) with work due at `now`, as (organization, process)
    /// ids, most overdue first.
    pub async fn due_processes(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        process::Entity::find()
            .select_only()
            .column(process::Column::OrganizationId)
            .column(process::Column::Id)
            .filter(process::Column::DueAt.lte(to_micros(now)))
            .order_by_asc(process::Column::DueAt)
            .limit(limit)
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(db_error)
    }

    /// The earliest time the engine has work: the next due step or the next look at a
    /// customer (both an index's first entry).
    pub async fn next_engine_work_at(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let step: Option<i64> = process::Entity::find()
            .select_only()
            .column(process::Column::DueAt)
            .filter(process::Column::DueAt.is_not_null())
            .order_by_asc(process::Column::DueAt)
            .limit(1)
            .into_tuple::<Option<i64>>()
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .flatten();
        let check: Option<i64> = dunning_check::Entity::find()
            .select_only()
            .column(dunning_check::Column::CheckAt)
            .order_by_asc(dunning_check::Column::CheckAt)
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.conn)
            .await
            .map_err(db_error)?;
        Ok([step, check].into_iter().flatten().min().map(from_micros))
    }

    /// Claims due processes (see [`Conn::claim_due`]): their `due_at` becomes `lease_until`.
    pub async fn claim_processes(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, Error> {
        self.claim_due::<process::Entity>(
            process::Column::Id,
            process::Column::DueAt,
            ids,
            now,
            lease_until,
        )
        .await
    }

    /// Makes a process that waits for a charge's outcome due now (the outcome is known).
    pub async fn wake_waiting_process(
        &self,
        process_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        process::Entity::update_many()
            .col_expr(process::Column::DueAt, Expr::value(to_micros(now)))
            .filter(process::Column::Id.eq(process_id))
            .filter(process::Column::WaitingStepRunId.is_not_null())
            .filter(process::Column::OpenScopeKey.is_not_null())
            .filter(process::Column::State.eq(ProcessState::Active.as_str()))
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Records a step run. The unique key (process, step, attempt) makes a second run of the
    /// same step impossible, also when two replicas race: the loser gets ABORTED.
    pub async fn insert_step_run(&self, run: &StepRun) -> Result<(), Error> {
        step_run::Entity::insert(step_run_model(run)?.into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(lost_race)?;
        Ok(())
    }

    pub async fn update_step_run(&self, run: &StepRun) -> Result<(), Error> {
        step_run::Entity::update(step_run_model(run)?.into_active_model().reset_all())
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_step_run(&self, id: Uuid) -> Result<Option<StepRun>, Error> {
        step_run::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(step_run_from_model)
            .transpose()
    }

    /// A process's step runs, oldest first.
    pub async fn step_runs_of(&self, process_id: Uuid) -> Result<Vec<StepRun>, Error> {
        step_run::Entity::find()
            .filter(step_run::Column::ProcessId.eq(process_id))
            .order_by_asc(step_run::Column::ExecutedAt)
            .order_by_asc(step_run::Column::StepIndex)
            .order_by_asc(step_run::Column::Attempt)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(step_run_from_model)
            .collect()
    }

    /// Books charges. A fee booked twice for one (process, invoice, step) violates a unique
    /// key: ABORTED, the step rolls back.
    pub async fn insert_charges(&self, charges: &[Charge]) -> Result<(), Error> {
        if charges.is_empty() {
            return Ok(());
        }
        let models = charges.iter().map(|c| charge_model(c).into_active_model());
        charge::Entity::insert_many(models)
            .exec_without_returning(&self.conn)
            .await
            .map_err(lost_race)?;
        Ok(())
    }

    /// A process's charges, oldest first.
    pub async fn charges_of(&self, process_id: Uuid) -> Result<Vec<Charge>, Error> {
        charge::Entity::find()
            .filter(charge::Column::ProcessId.eq(process_id))
            .order_by_asc(charge::Column::BookedAt)
            .order_by_asc(charge::Column::Id)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(charge_from_model)
            .collect()
    }

    /// The payments of these invoices by invoice, dated in the time zone `tz` (interest).
    pub async fn dated_payments(
        &self,
        invoice_ids: &[Uuid],
        tz: Tz,
    ) -> Result<HashMap<Uuid, Vec<DatedPayment>>, Error> {
        let mut out: HashMap<Uuid, Vec<DatedPayment>> = HashMap::new();
        for chunk in invoice_ids.chunks(super::rows_per_statement(1)) {
            let rows: Vec<(Uuid, i64, i64)> = payment::Entity::find()
                .select_only()
                .column(payment::Column::InvoiceId)
                .column(payment::Column::AmountMinor)
                .column(payment::Column::PaidAt)
                .filter(payment::Column::InvoiceId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            for (invoice_id, amount_minor, paid_at) in rows {
                out.entry(invoice_id).or_default().push(DatedPayment {
                    date: from_micros(paid_at).with_timezone(&tz).date_naive(),
                    amount_minor,
                });
            }
        }
        Ok(out)
    }

    /// When each of these invoices last left a CANCELLED process (an operator stopped dunning
    /// them: no new process starts until the invoice changes after that).
    pub async fn cancellations_of(
        &self,
        invoice_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, DateTime<Utc>>, Error> {
        let mut out: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for chunk in invoice_ids.chunks(super::rows_per_statement(1)) {
            let members: Vec<(Uuid, Uuid)> = process_invoice::Entity::find()
                .select_only()
                .column(process_invoice::Column::InvoiceId)
                .column(process_invoice::Column::ProcessId)
                .filter(process_invoice::Column::InvoiceId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            let process_ids: Vec<Uuid> = members.iter().map(|(_, p)| *p).collect();
            let ended: HashMap<Uuid, i64> = process::Entity::find()
                .select_only()
                .column(process::Column::Id)
                .column(process::Column::EndedAt)
                .filter(process::Column::Id.is_in(process_ids))
                .filter(process::Column::State.eq(ProcessState::Cancelled.as_str()))
                .into_tuple::<(Uuid, Option<i64>)>()
                .all(&self.conn)
                .await
                .map_err(db_error)?
                .into_iter()
                .filter_map(|(id, at)| at.map(|at| (id, at)))
                .collect();
            for (invoice_id, process_id) in members {
                if let Some(at) = ended.get(&process_id) {
                    let at = from_micros(*at);
                    let entry = out.entry(invoice_id).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
        Ok(out)
    }

    /// Asks the engine to look at a customer's dunning at `at` (now, after a change).
    pub async fn request_dunning_check(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        dunning_check::Entity::insert(
            dunning_check::Model {
                customer_id,
                organization_id,
                check_at: to_micros(at),
            }
            .into_active_model(),
        )
        .on_conflict(
            OnConflict::column(dunning_check::Column::CustomerId)
                .update_column(dunning_check::Column::CheckAt)
                .to_owned(),
        )
        .exec_without_returning(&self.conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Asks for a look at every customer of an organization (its default policy changed).
    pub async fn request_dunning_checks_of_organization(
        &self,
        organization_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (at_param, org_param) = match self.backend() {
            super::Backend::Postgres => ("$1", "$2"),
            super::Backend::Sqlite => ("?", "?"),
        };
        // `WHERE true` lets SQLite tell the upsert clause from a join condition.
        let sql = format!(
            "INSERT INTO dunning_checks (customer_id, organization_id, check_at) \
             SELECT DISTINCT customer_id, organization_id, {at_param} FROM invoices \
             WHERE organization_id = {org_param} AND state = 'OPEN' AND true \
             ON CONFLICT (customer_id) DO UPDATE SET check_at = excluded.check_at"
        );
        let statement = sea_orm::Statement::from_sql_and_values(
            self.conn.get_database_backend(),
            sql,
            [to_micros(at).into(), organization_id.into()],
        );
        self.conn.execute_raw(statement).await.map_err(db_error)?;
        Ok(())
    }

    /// Customers (of any organization) due for a look at `now`, as (organization, customer).
    pub async fn due_dunning_checks(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        dunning_check::Entity::find()
            .select_only()
            .column(dunning_check::Column::OrganizationId)
            .column(dunning_check::Column::CustomerId)
            .filter(dunning_check::Column::CheckAt.lte(to_micros(now)))
            .order_by_asc(dunning_check::Column::CheckAt)
            .limit(limit)
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(db_error)
    }

    /// Claims due checks (see [`Conn::claim_due`]).
    pub async fn claim_dunning_checks(
        &self,
        customer_ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, Error> {
        self.claim_due::<dunning_check::Entity>(
            dunning_check::Column::CustomerId,
            dunning_check::Column::CheckAt,
            customer_ids,
            now,
            lease_until,
        )
        .await
    }

    /// Settles a claimed check: the next look at `next`, or none. Only while the claim is
    /// held: a change committed meanwhile moved `check_at` to its own time, and that look
    /// must still happen.
    pub async fn settle_dunning_check(
        &self,
        customer_id: Uuid,
        claimed: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let held = dunning_check::Column::CheckAt.eq(to_micros(claimed));
        match next {
            Some(at) => dunning_check::Entity::update_many()
                .col_expr(dunning_check::Column::CheckAt, Expr::value(to_micros(at)))
                .filter(dunning_check::Column::CustomerId.eq(customer_id))
                .filter(held)
                .exec(&self.conn)
                .await
                .map(|_| ()),
            None => dunning_check::Entity::delete_many()
                .filter(dunning_check::Column::CustomerId.eq(customer_id))
                .filter(held)
                .exec(&self.conn)
                .await
                .map(|_| ()),
        }
        .map_err(db_error)?;
        Ok(())
    }
}

/// A unique key another writer got first: the caller's transaction rolls back and the work
/// is looked at again.
fn lost_race(err: sea_orm::DbErr) -> Error {
    match db_error(err) {
        Error::AlreadyExists { .. } => {
            Error::Aborted("another engine replica did this first; retry".into())
        }
        other => other,
    }
}

fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn parse_date(text: &str) -> Result<Option<NaiveDate>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| corrupt("date", e))
}

fn to_model(p: &Process) -> process::Model {
    process::Model {
        id: p.id,
        organization_id: p.organization_id,
        customer_id: p.customer_id,
        customer_external_id: p.customer_external_id.clone(),
        currency_code: p.currency.code().to_owned(),
        policy_code: p.policy_code.clone(),
        policy_version: p.policy_version,
        scope: p.scope.as_str().to_owned(),
        scope_key: p.scope_key.clone(),
        open_scope_key: p.state.is_open().then(|| p.scope_key.clone()),
        state: p.state.as_str().to_owned(),
        pause_reason: p.pause_reason.map_or("", |r| r.as_str()).to_owned(),
        current_step_index: p.current_step_index as i32,
        attempt: p.attempt,
        anchor_date: p.anchor_date.to_string(),
        next_step_at: p.next_step_at.map(to_micros),
        last_step_at: p.last_step_at.map(to_micros),
        due_at: p.due_at.map(to_micros),
        waiting_step_run_id: p.waiting_step_run_id,
        promised_date: date_text(p.promised_date),
        promised_amount_minor: p.promised_amount_minor,
        note: p.note.clone(),
        payment_retries_blocked: p.payment_retries_blocked,
        suspension_requested: p.suspension_requested,
        started_at: to_micros(p.started_at),
        ended_at: p.ended_at.map(to_micros),
        updated_at: to_micros(p.updated_at),
    }
}

fn from_model(m: process::Model, invoices: Vec<ProcessInvoice>) -> Result<Process, Error> {
    Ok(Process {
        id: m.id,
        organization_id: m.organization_id,
        customer_id: m.customer_id,
        customer_external_id: m.customer_external_id,
        currency: Currency::from_code(&m.currency_code)
            .ok_or_else(|| corrupt("currency", &m.currency_code))?,
        policy_code: m.policy_code,
        policy_version: m.policy_version,
        scope: PolicyScope::parse(&m.scope).ok_or_else(|| corrupt("scope", &m.scope))?,
        scope_key: m.scope_key,
        state: ProcessState::parse(&m.state).ok_or_else(|| corrupt("state", &m.state))?,
        pause_reason: if m.pause_reason.is_empty() {
            None
        } else {
            Some(
                PauseReason::parse(&m.pause_reason)
                    .ok_or_else(|| corrupt("pause reason", &m.pause_reason))?,
            )
        },
        current_step_index: usize::try_from(m.current_step_index).unwrap_or(0),
        attempt: m.attempt,
        anchor_date: m
            .anchor_date
            .parse()
            .map_err(|e| corrupt("anchor date", e))?,
        next_step_at: m.next_step_at.map(from_micros),
        last_step_at: m.last_step_at.map(from_micros),
        due_at: m.due_at.map(from_micros),
        waiting_step_run_id: m.waiting_step_run_id,
        promised_date: parse_date(&m.promised_date)?,
        promised_amount_minor: m.promised_amount_minor,
        note: m.note,
        payment_retries_blocked: m.payment_retries_blocked,
        suspension_requested: m.suspension_requested,
        started_at: from_micros(m.started_at),
        ended_at: m.ended_at.map(from_micros),
        updated_at: from_micros(m.updated_at),
        invoices,
    })
}

fn step_run_model(run: &StepRun) -> Result<step_run::Model, Error> {
    Ok(step_run::Model {
        id: run.id,
        organization_id: run.organization_id,
        process_id: run.process_id,
        step_index: run.step_index as i32,
        attempt: run.attempt,
        step_name: run.step_name.clone(),
        policy_version: run.policy_version,
        trigger: run.trigger.as_str().to_owned(),
        executed_at: to_micros(run.executed_at),
        outcomes: serde_json::to_string(&run.outcomes)
            .map_err(|e| Error::Internal(format!("step outcomes: {e}")))?,
        waiting_from: run.waiting_from.map(|i| i as i32),
        payment_request_id: run.payment_request_id,
        payment_failed: run.payment_failed,
    })
}

fn step_run_from_model(m: step_run::Model) -> Result<StepRun, Error> {
    let outcomes: Vec<ActionOutcome> =
        serde_json::from_str(&m.outcomes).map_err(|e| corrupt("step outcomes", e))?;
    Ok(StepRun {
        id: m.id,
        organization_id: m.organization_id,
        process_id: m.process_id,
        step_index: usize::try_from(m.step_index).unwrap_or(0),
        attempt: m.attempt,
        step_name: m.step_name,
        policy_version: m.policy_version,
        trigger: StepTrigger::parse(&m.trigger).ok_or_else(|| corrupt("trigger", &m.trigger))?,
        executed_at: from_micros(m.executed_at),
        outcomes,
        waiting_from: m.waiting_from.and_then(|i| usize::try_from(i).ok()),
        payment_request_id: m.payment_request_id,
        payment_failed: m.payment_failed,
    })
}

fn charge_model(c: &Charge) -> charge::Model {
    let (from, to) = c.period_dates();
    charge::Model {
        id: c.id,
        organization_id: c.organization_id,
        process_id: c.process_id,
        step_run_id: c.step_run_id,
        invoice_id: c.invoice_id,
        invoice_external_id: c.invoice_external_id.clone(),
        kind: c.kind.as_str().to_owned(),
        amount_minor: c.amount_minor,
        currency_code: c.currency.code().to_owned(),
        step_index: c.step_index as i32,
        booked_at: to_micros(c.booked_at),
        interest_from: from,
        interest_to: to,
        annual_rate_percent: c.rate_text(),
    }
}

fn charge_from_model(m: charge::Model) -> Result<Charge, Error> {
    let period = match (parse_date(&m.interest_from)?, parse_date(&m.interest_to)?) {
        (Some(from), Some(to)) => Some((from, to)),
        _ => None,
    };
    Ok(Charge {
        id: m.id,
        organization_id: m.organization_id,
        process_id: m.process_id,
        step_run_id: m.step_run_id,
        invoice_id: m.invoice_id,
        invoice_external_id: m.invoice_external_id,
        kind: ChargeKind::parse(&m.kind).ok_or_else(|| corrupt("charge kind", &m.kind))?,
        amount_minor: m.amount_minor,
        currency: Currency::from_code(&m.currency_code)
            .ok_or_else(|| corrupt("currency", &m.currency_code))?,
        step_index: usize::try_from(m.step_index).unwrap_or(0),
        booked_at: from_micros(m.booked_at),
        interest_period: period,
        annual_rate_percent: if m.annual_rate_percent.is_empty() {
            None
        } else {
            Some(
                m.annual_rate_percent
                    .parse()
                    .map_err(|e| corrupt("rate", e))?,
            )
        },
    })
}
