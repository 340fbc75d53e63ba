//! Dunning processes and their invoices: the rows, the index of due work and its claims.

mod checks;
mod commands;
mod runs;

pub(crate) use runs::SUPERSEDED_OUTCOMES;

use super::entity::{dunning_check, process, process_invoice};
use super::{Conn, corrupt, db_error, from_micros, to_micros};
use crate::domain::money::Currency;
use crate::domain::policy::PolicyScope;
use crate::domain::process::state::{PauseReason, Process, ProcessInvoice, ProcessState, Promise};
use crate::domain::query::ProcessFilter;
use crate::error::Error;
use crate::storage::{Order, scoped};
use chrono::{DateTime, NaiveDate, Utc};
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

    /// Saves a process's row (and, once it ended, releases its invoices).
    pub async fn update_process(&self, p: &Process) -> Result<(), Error> {
        let model = to_model(p);
        process::Entity::update_many()
            .set(model.into_active_model().reset_all())
            .filter(process::Column::Id.eq(p.id))
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
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

    /// Processes by id, with their invoices; locked for the transaction when `lock`
    /// (PostgreSQL). Missing ids are left out.
    pub async fn find_processes(
        &self,
        organization_id: Uuid,
        ids: &[Uuid],
        lock: bool,
    ) -> Result<Vec<Process>, Error> {
        let mut models = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::rows_per_statement(1)) {
            // By primary key only (the organization is checked below), so no planner can
            // prefer scanning the organization's rows; id order locks in a stable order.
            let query = process::Entity::find()
                .filter(process::Column::Id.is_in(chunk.iter().copied()))
                .order_by_asc(process::Column::Id);
            models.extend(
                self.for_update(query, lock)
                    .all(&self.conn)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .filter(|m| m.organization_id == organization_id),
            );
        }
        self.with_process_invoices(models).await
    }

    /// Saves the rows of processes this transaction read under its lock with their claim
    /// checked (`find_processes` with `lock`; SQLite has one writer): a multi-row upsert by
    /// id, in bounded statements. Processes that ended release their invoices.
    pub async fn save_locked_processes(&self, processes: &[Process]) -> Result<(), Error> {
        use sea_orm::Iterable;
        let columns = process::Column::iter().count();
        let changed = process::Column::iter().filter(|c| {
            !matches!(
                c,
                process::Column::Id | process::Column::OrganizationId | process::Column::StartedAt
            )
        });
        let on_conflict = OnConflict::column(process::Column::Id)
            .update_columns(changed)
            .to_owned();
        for chunk in processes.chunks(super::rows_per_statement(columns)) {
            process::Entity::insert_many(chunk.iter().map(|p| to_model(p).into_active_model()))
                .on_conflict(on_conflict.clone())
                .exec_without_returning(&self.conn)
                .await
                .map_err(db_error)?;
        }
        let ended: Vec<Uuid> = processes
            .iter()
            .filter(|p| !p.state.is_open())
            .map(|p| p.id)
            .collect();
        for chunk in ended.chunks(super::rows_per_statement(1)) {
            process_invoice::Entity::update_many()
                .col_expr(process_invoice::Column::IsOpen, Expr::value(false))
                .filter(process_invoice::Column::ProcessId.is_in(chunk.iter().copied()))
                .exec(&self.conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
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
        let mut query = scoped::<process::Entity>(organization_id)?;
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
        let models = self
            .keyset_page(query, after_id, Order::NewestFirst, limit, Ok)
            .await?;
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

    /// Claims up to `limit` processes with work due at `now`, most overdue first, by moving
    /// their `due_at` to `lease_until`; returns them as (organization, process). On PostgreSQL
    /// one statement finds and claims them, skipping rows another worker is claiming
    /// (`FOR UPDATE SKIP LOCKED`), so concurrent workers get disjoint batches; on SQLite (one
    /// writer) the due rows are read, then claimed with a compare-and-set.
    pub async fn claim_due_processes(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        if self.backend() == super::Backend::Sqlite {
            let due = self.due_processes(now, limit).await?;
            let ids: Vec<Uuid> = due.iter().map(|(_, id)| *id).collect();
            let claimed = self.claim_processes(&ids, now, lease_until).await?;
            return Ok(due
                .into_iter()
                .filter(|(_, id)| claimed.contains(id))
                .collect());
        }
        let statement = sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "WITH due AS (SELECT id, due_at FROM processes WHERE due_at IS NOT NULL \
             AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE processes p SET due_at = $3 FROM due WHERE p.id = due.id \
             RETURNING p.organization_id, p.id, due.due_at AS was_due_at",
            [
                to_micros(now).into(),
                (limit as i64).into(),
                to_micros(lease_until).into(),
            ],
        );
        let rows = self.conn.query_all_raw(statement).await.map_err(db_error)?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64>("", "was_due_at").map_err(db_error)?,
                    row.try_get::<Uuid>("", "organization_id")
                        .map_err(db_error)?,
                    row.try_get::<Uuid>("", "id").map_err(db_error)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        claimed.sort();
        Ok(claimed
            .into_iter()
            .map(|(_, organization_id, id)| (organization_id, id))
            .collect())
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
        promised_date: date_text(p.promise.as_ref().map(|promise| promise.date)),
        promised_amount_minor: p.promise.as_ref().and_then(|promise| promise.amount_minor),
        promise_deadline_at: p
            .promise
            .as_ref()
            .map(|promise| to_micros(promise.deadline)),
        promise_owed_minor: p.promise.as_ref().map(|promise| promise.owed_minor),
        promise_made_at: p.promise.as_ref().map(|promise| to_micros(promise.made_at)),
        payment_plan: p.payment_plan.as_ref().map(|plan| {
            // A plan is plain data (dates, integers, enums): serializing it cannot fail.
            serde_json::to_string(plan).unwrap_or_default()
        }),
        note: p.note.clone(),
        payment_retries_blocked: p.payment_retries_blocked,
        suspension_requested: p.suspension_requested,
        started_at: to_micros(p.started_at),
        ended_at: p.ended_at.map(to_micros),
        updated_at: to_micros(p.updated_at),
        trace_context: p.trace_context.clone(),
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
        promise: match (parse_date(&m.promised_date)?, m.promise_deadline_at) {
            (Some(date), Some(deadline)) => Some(Promise {
                date,
                amount_minor: m.promised_amount_minor,
                deadline: from_micros(deadline),
                owed_minor: m.promise_owed_minor.unwrap_or_default(),
                // Promises made before the column existed: since the process last changed
                // (the promise paused it).
                made_at: from_micros(m.promise_made_at.unwrap_or(m.updated_at)),
            }),
            _ => None,
        },
        payment_plan: match m.payment_plan.as_deref() {
            None | Some("") => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|e| corrupt("payment plan", e))?),
        },
        note: m.note,
        payment_retries_blocked: m.payment_retries_blocked,
        suspension_requested: m.suspension_requested,
        started_at: from_micros(m.started_at),
        ended_at: m.ended_at.map(from_micros),
        updated_at: from_micros(m.updated_at),
        invoices,
        trace_context: m.trace_context,
    })
}
