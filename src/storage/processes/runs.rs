//! What processes did: step runs, the charges they booked, and the payments interest is
//! computed from.

use super::{lost_race, parse_date};
use crate::domain::charges::DatedPayment;
use crate::domain::money::Currency;
use crate::domain::process::state::{ActionOutcome, Charge, ChargeKind, StepRun, StepTrigger};
use crate::error::Error;
use crate::storage::entity::{charge, payment, step_run};
use crate::storage::{Conn, corrupt, db_error, from_micros, to_micros};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

/// What the outcomes of a step run superseded by the catch-up rule contain (each says so;
/// see `record_superseded` in the step runner), as a LIKE pattern: such a run did not execute.
pub(crate) const SUPERSEDED_OUTCOMES: &str = "%\"detail\":\"superseded by step %";

impl<C: ConnectionTrait> Conn<C> {
    /// The index of the last step of the process executed at or before `at` (superseded runs
    /// did not execute); `None` before its first.
    pub async fn last_executed_step(
        &self,
        process_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<usize>, Error> {
        let index: Option<i32> = step_run::Entity::find()
            .select_only()
            .column(step_run::Column::StepIndex)
            .filter(step_run::Column::ProcessId.eq(process_id))
            .filter(step_run::Column::ExecutedAt.lte(to_micros(at)))
            .filter(step_run::Column::Outcomes.not_like(SUPERSEDED_OUTCOMES))
            .order_by_desc(step_run::Column::ExecutedAt)
            .order_by_desc(step_run::Column::StepIndex)
            .into_tuple()
            .one(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(index.and_then(|i| usize::try_from(i).ok()))
    }

    /// Records step runs in bounded multi-row statements. The unique key (process, step,
    /// attempt) makes a second run of the same step impossible, also when two replicas race:
    /// the loser gets ABORTED.
    pub async fn insert_step_runs(&self, runs: &[StepRun]) -> Result<(), Error> {
        let rows = runs
            .iter()
            .map(|r| step_run_model(r).map(IntoActiveModel::into_active_model))
            .collect::<Result<Vec<_>, Error>>()?;
        self.insert_rows(rows).await.map_err(lost_race)
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
        let rows = charges.iter().map(|c| charge_model(c).into_active_model());
        self.insert_rows(rows.collect()).await.map_err(lost_race)
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

    /// The charges of these processes by process, oldest first.
    pub async fn charges_of_processes(
        &self,
        process_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Charge>>, Error> {
        let mut out: HashMap<Uuid, Vec<Charge>> = HashMap::new();
        for chunk in process_ids.chunks(crate::storage::rows_per_statement(1)) {
            for m in charge::Entity::find()
                .filter(charge::Column::ProcessId.is_in(chunk.iter().copied()))
                .order_by_asc(charge::Column::BookedAt)
                .order_by_asc(charge::Column::Id)
                .all(&self.conn)
                .await
                .map_err(db_error)?
            {
                out.entry(m.process_id)
                    .or_default()
                    .push(charge_from_model(m)?);
            }
        }
        Ok(out)
    }

    /// When each payment on `invoice_ids` recorded at or after `since` was recorded, and its
    /// amount (a payment plan counts what was recorded, whatever value date it carries).
    pub async fn payments_recorded_since(
        &self,
        invoice_ids: &[Uuid],
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>, Error> {
        let mut out = Vec::new();
        for chunk in invoice_ids.chunks(super::super::rows_per_statement(1)) {
            let rows: Vec<(i64, i64)> = payment::Entity::find()
                .select_only()
                .column(payment::Column::CreatedAt)
                .column(payment::Column::AmountMinor)
                .filter(payment::Column::InvoiceId.is_in(chunk.iter().copied()))
                .filter(payment::Column::CreatedAt.gte(to_micros(since)))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            out.extend(
                rows.into_iter()
                    .map(|(at, amount)| (from_micros(at), amount)),
            );
        }
        Ok(out)
    }

    /// The payments of these invoices by invoice, dated in the time zone `tz` (interest).
    /// The sum of the payments on `invoice_ids` paid at or after `from` and before `to`.
    pub async fn payments_between(
        &self,
        invoice_ids: &[Uuid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let mut total = 0i64;
        for chunk in invoice_ids.chunks(super::super::rows_per_statement(1)) {
            let amounts: Vec<i64> = payment::Entity::find()
                .select_only()
                .column(payment::Column::AmountMinor)
                .filter(payment::Column::InvoiceId.is_in(chunk.iter().copied()))
                .filter(payment::Column::PaidAt.gte(to_micros(from)))
                .filter(payment::Column::PaidAt.lt(to_micros(to)))
                .into_tuple()
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            total += amounts.iter().sum::<i64>();
        }
        Ok(total)
    }

    pub async fn dated_payments(
        &self,
        invoice_ids: &[Uuid],
        tz: Tz,
    ) -> Result<HashMap<Uuid, Vec<DatedPayment>>, Error> {
        let mut out: HashMap<Uuid, Vec<DatedPayment>> = HashMap::new();
        for chunk in invoice_ids.chunks(super::super::rows_per_statement(1)) {
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
        policy_code: c.policy_code.clone(),
        policy_version: c.policy_version,
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
        policy_code: m.policy_code,
        policy_version: m.policy_version,
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
