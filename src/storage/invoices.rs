//! Invoices and the payments recorded against them.

use super::entity::{invoice, payment, process, process_invoice};
use super::{Conn, corrupt, db_error, db_error_or_duplicate, from_micros, to_micros};
use super::{Order, scoped};
use crate::domain::invoice::{CollectionMethod, Invoice, InvoiceState, Payment};
use crate::domain::money::Currency;
use crate::domain::overdue::OverdueBalance;
use crate::domain::query::InvoiceFilter;
use crate::error::Error;
use crate::error::Reason;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, IdenStatic, IntoActiveModel, Iterable,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

/// How an invoice is addressed.
#[derive(Debug, Clone, Copy)]
pub enum InvoiceKey<'a> {
    Id(Uuid),
    ExternalId(&'a str),
}

/// The SQL form of `Invoice::is_overdue`: OPEN, something due, not disputed, overdue instant
/// passed. Every overdue query uses this one condition.
fn overdue_condition(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(invoice::Column::State.eq(InvoiceState::Open.as_str()))
        .add(invoice::Column::OverdueAt.lte(to_micros(now)))
        .add(invoice::Column::AmountDueMinor.gt(0))
        .add(invoice::Column::Disputed.eq(false))
}

impl<C: ConnectionTrait> Conn<C> {
    /// An invoice of the organization by id or external id. With `lock`, its row lock is held
    /// until the transaction ends (PostgreSQL), so concurrent payments and changes of one
    /// invoice apply one after the other; SQLite transactions are already serialised.
    pub async fn find_invoice(
        &self,
        organization_id: Uuid,
        key: InvoiceKey<'_>,
        lock: bool,
    ) -> Result<Option<Invoice>, Error> {
        let mut query =
            invoice::Entity::find().filter(invoice::Column::OrganizationId.eq(organization_id));
        query = match key {
            InvoiceKey::Id(id) => query.filter(invoice::Column::Id.eq(id)),
            InvoiceKey::ExternalId(ext) => query.filter(invoice::Column::ExternalId.eq(ext)),
        };
        query = self.for_update(query, lock);
        query
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    /// The invoices with these external ids (those that exist); with `lock`, locked for this
    /// transaction on PostgreSQL.
    pub async fn find_invoices_by_external_ids(
        &self,
        organization_id: Uuid,
        external_ids: &[String],
        lock: bool,
    ) -> Result<Vec<Invoice>, Error> {
        self.models_by_external_ids::<invoice::Entity>(organization_id, external_ids, lock)
            .await?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// The invoices of the organization with these ids (those that exist), in external id
    /// order. With `lock`, their row locks are held until the transaction ends (PostgreSQL),
    /// taken in external id order like every other multi-invoice lock (see
    /// `models_by_external_ids`), so two transactions locking overlapping sets never deadlock.
    pub async fn find_invoices_by_ids(
        &self,
        organization_id: Uuid,
        ids: &[Uuid],
        lock: bool,
    ) -> Result<Vec<Invoice>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::rows_per_statement(1)) {
            // By primary key only (the organization is checked below): with the organization
            // in the query, PostgreSQL may prefer scanning all of the organization's invoices
            // in external_id order (seen at 100,000 invoices). Locks are still taken in
            // external id order (sorted after the key lookup).
            let mut query =
                invoice::Entity::find().filter(invoice::Column::Id.is_in(chunk.iter().copied()));
            if lock {
                query = query.order_by_asc(invoice::Column::ExternalId);
            }
            for model in self
                .for_update(query, lock)
                .all(&self.conn)
                .await
                .map_err(db_error)?
                .into_iter()
                .filter(|m| m.organization_id == organization_id)
            {
                out.push(from_model(model)?);
            }
        }
        out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        Ok(out)
    }

    /// Inserts new invoices (plain multi-row inserts: no conflict handling to pay for) and
    /// overwrites changed ones by id, in bounded statements.
    pub async fn save_invoices(
        &self,
        created: &[Invoice],
        updated: &[Invoice],
    ) -> Result<(), Error> {
        let concurrent = |e| match e {
            Error::AlreadyExists { .. } => Error::Aborted(
                "an invoice with the same external_id was created concurrently; retry".into(),
            ),
            other => other,
        };
        let columns = invoice::Column::iter().count();
        for chunk in created.chunks(super::rows_per_statement(columns)) {
            let models = chunk.iter().map(|i| to_model(i).into_active_model());
            invoice::Entity::insert_many(models)
                .exec_without_returning(&self.conn)
                .await
                .map_err(|e| concurrent(db_error(e)))?;
        }
        let immutable = [
            invoice::Column::Id,
            invoice::Column::OrganizationId,
            invoice::Column::CreatedAt,
        ];
        let mutable: Vec<invoice::Column> = invoice::Column::iter()
            .filter(|c| !immutable.iter().any(|i| i.as_str() == c.as_str()))
            .collect();
        for chunk in updated.chunks(super::rows_per_statement(columns)) {
            let models = chunk.iter().map(|i| to_model(i).into_active_model());
            invoice::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::column(invoice::Column::Id)
                        .update_columns(mutable.clone())
                        .to_owned(),
                )
                .exec_without_returning(&self.conn)
                .await
                .map_err(|e| concurrent(db_error(e)))?;
        }
        Ok(())
    }

    /// Invoices in creation order after `after_id`.
    pub async fn list_invoices(
        &self,
        organization_id: Uuid,
        filter: &InvoiceFilter,
        now: DateTime<Utc>,
        after_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Invoice>, Error> {
        let mut query = scoped::<invoice::Entity>(organization_id)?;
        if let Some(customer_id) = filter.customer_id {
            query = query.filter(invoice::Column::CustomerId.eq(customer_id));
        }
        if let Some(state) = filter.state {
            query = query.filter(invoice::Column::State.eq(state.as_str()));
        }
        if filter.overdue_only {
            query = query.filter(overdue_condition(now));
        }
        if let Some(code) = &filter.currency_code {
            query = query.filter(invoice::Column::CurrencyCode.eq(code.as_str()));
        }
        if let Some(from) = filter.due_date_from {
            query = query.filter(invoice::Column::DueDate.gte(from));
        }
        if let Some(to) = filter.due_date_to {
            query = query.filter(invoice::Column::DueDate.lte(to));
        }
        self.keyset_page(query, after_id, Order::OldestFirst, limit, from_model)
            .await
    }

    /// The customer's overdue balance per currency, sorted by currency code; one aggregate over
    /// the (customer_id, state, overdue_at) index.
    pub async fn overdue_balances(
        &self,
        customer_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OverdueBalance>, Error> {
        let rows: Vec<(String, i64, i64, NaiveDate)> = invoice::Entity::find()
            .select_only()
            .column(invoice::Column::CurrencyCode)
            .column_as(
                Expr::cust("CAST(SUM(amount_due_minor) AS BIGINT)"),
                "amount",
            )
            .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "invoice_count")
            .column_as(Expr::cust("MIN(due_date)"), "oldest_due_date")
            .filter(invoice::Column::CustomerId.eq(customer_id))
            .filter(overdue_condition(now))
            .group_by(invoice::Column::CurrencyCode)
            .order_by_asc(invoice::Column::CurrencyCode)
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(code, amount, count, oldest)| {
                Ok(OverdueBalance {
                    currency: currency(&code)?,
                    amount_due_minor: amount,
                    invoice_count: count,
                    oldest_due_date: oldest,
                })
            })
            .collect()
    }

    /// The customer's invoices that became overdue in (`since`, `until`] (whatever happened to
    /// them since), over the (customer_id, ...) index: the invoices a payment profile counts.
    pub async fn invoices_overdue_between(
        &self,
        customer_id: Uuid,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, Error> {
        invoice::Entity::find()
            .filter(invoice::Column::CustomerId.eq(customer_id))
            .filter(invoice::Column::OverdueAt.gt(to_micros(since)))
            .filter(invoice::Column::OverdueAt.lte(to_micros(until)))
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Payments received on the customer's invoices in (`since`, `until`].
    pub async fn payments_of_customer_between(
        &self,
        customer_id: Uuid,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Payment>, Error> {
        let invoices = sea_orm::sea_query::Query::select()
            .column(invoice::Column::Id)
            .from(invoice::Entity)
            .and_where(invoice::Column::CustomerId.eq(customer_id))
            .to_owned();
        payment::Entity::find()
            .filter(payment::Column::InvoiceId.in_subquery(invoices))
            .filter(payment::Column::PaidAt.gt(to_micros(since)))
            .filter(payment::Column::PaidAt.lte(to_micros(until)))
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(payment_from_model)
            .collect()
    }

    /// Overdue invoices (of any organization) whose `invoice.overdue` event is not yet
    /// appended, oldest overdue instant first.
    pub async fn invoices_to_announce_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Invoice>, Error> {
        invoice::Entity::find()
            .filter(invoice::Column::OverdueAnnounced.eq(false))
            .filter(overdue_condition(now))
            .order_by_asc(invoice::Column::OverdueAt)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Marks invoices as announced; returns the ids this call changed, so two scanners racing
    /// over the same rows announce each invoice once.
    pub async fn mark_overdue_announced(&self, id: Uuid) -> Result<bool, Error> {
        let result = invoice::Entity::update_many()
            .col_expr(invoice::Column::OverdueAnnounced, Expr::value(true))
            .filter(invoice::Column::Id.eq(id))
            .filter(invoice::Column::OverdueAnnounced.eq(false))
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected == 1)
    }

    /// Every invoice of a customer that is still open (to move its overdue instant), locked
    /// in external id order for the rest of the transaction (PostgreSQL) so that a payment
    /// recorded meanwhile is not overwritten.
    pub async fn lock_open_invoices_of_customer(
        &self,
        customer_id: Uuid,
    ) -> Result<Vec<Invoice>, Error> {
        let mut query = invoice::Entity::find()
            .filter(invoice::Column::CustomerId.eq(customer_id))
            .filter(invoice::Column::State.eq(InvoiceState::Open.as_str()))
            .order_by_asc(invoice::Column::ExternalId);
        query = self.for_update(query, true);
        query
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Saves a payment of an invoice that was overdue from `invoice_overdue_at`, attributed
    /// to the process open on the invoice when it was paid and the last step that process had
    /// executed by then (the collections report's "recovered per step").
    pub async fn insert_payment(
        &self,
        p: &Payment,
        invoice_overdue_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (process_id, process_step_index) = self.attribute_payment(p).await?.unzip();
        let model = payment::Model {
            invoice_overdue_at: Some(to_micros(invoice_overdue_at)),
            process_id,
            process_step_index,
            id: p.id,
            organization_id: p.organization_id,
            invoice_id: p.invoice_id,
            external_id: p.external_id.clone(),
            currency_code: p.currency.code().to_owned(),
            amount_minor: p.amount_minor,
            paid_at: to_micros(p.paid_at),
            reference: p.reference.clone(),
            created_at: to_micros(p.created_at),
        };
        payment::Entity::insert(model.into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| {
                db_error_or_duplicate(
                    e,
                    Reason::PaymentAlreadyExists,
                    format!(
                        "payment `{}` was recorded concurrently; retry",
                        p.external_id
                    ),
                )
            })?;
        Ok(())
    }

    /// The process a payment of `p.invoice_id` at `p.paid_at` is attributed to, with its last
    /// executed step by then (-1: none); the rule of migration `ATTRIBUTE_PAYMENTS`.
    async fn attribute_payment(&self, p: &Payment) -> Result<Option<(Uuid, i32)>, Error> {
        let paid_at = to_micros(p.paid_at);
        let held = process_invoice::Entity::find()
            .filter(process_invoice::Column::InvoiceId.eq(p.invoice_id))
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        let Some(process) = process::Entity::find()
            .filter(process::Column::Id.is_in(held.iter().map(|h| h.process_id)))
            .filter(process::Column::StartedAt.lte(paid_at))
            .filter(
                Condition::any()
                    .add(process::Column::EndedAt.is_null())
                    .add(process::Column::EndedAt.gte(paid_at)),
            )
            .order_by_desc(process::Column::StartedAt)
            .one(&self.conn)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let step = self.last_executed_step(process.id, p.paid_at).await?;
        Ok(Some((process.id, step.map_or(-1, |i| i as i32))))
    }

    pub async fn find_payment_by_external_id(
        &self,
        organization_id: Uuid,
        external_id: &str,
    ) -> Result<Option<Payment>, Error> {
        self.by_external_id::<payment::Entity, _>(organization_id, external_id, payment_from_model)
            .await
    }

    /// Payments of an invoice in recording order after `after_id`.
    pub async fn list_payments(
        &self,
        invoice_id: Uuid,
        after_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Payment>, Error> {
        let mut query = payment::Entity::find().filter(payment::Column::InvoiceId.eq(invoice_id));
        if let Some(after) = after_id {
            query = query.filter(payment::Column::Id.gt(after));
        }
        query
            .order_by_asc(payment::Column::Id)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(payment_from_model)
            .collect()
    }
}

fn currency(code: &str) -> Result<Currency, Error> {
    Currency::from_code(code).ok_or_else(|| corrupt("currency", code))
}

fn to_model(i: &Invoice) -> invoice::Model {
    invoice::Model {
        id: i.id,
        organization_id: i.organization_id,
        customer_id: i.customer_id,
        external_id: i.external_id.clone(),
        number: i.number.clone(),
        currency_code: i.currency.code().to_owned(),
        total_minor: i.total_minor,
        paid_minor: i.paid_minor,
        credited_minor: i.credited_minor,
        amount_due_minor: i.amount_due_minor(),
        issue_date: i.issue_date,
        due_date: i.due_date,
        overdue_at: to_micros(i.overdue_at),
        overdue_announced: i.overdue_announced,
        state: i.state.as_str().to_owned(),
        collection_method: i.collection_method.as_str().to_owned(),
        disputed: i.disputed,
        dunning_blocked: i.dunning_blocked,
        dunning_block_reason: i.dunning_block_reason.clone(),
        policy_code: i.policy_code.clone(),
        metadata: serde_json::to_string(&i.metadata).unwrap_or_else(|_| "{}".into()),
        created_at: to_micros(i.created_at),
        updated_at: to_micros(i.updated_at),
        paid_at: i.paid_at.map(to_micros),
    }
}

fn from_model(m: invoice::Model) -> Result<Invoice, Error> {
    Ok(Invoice {
        id: m.id,
        organization_id: m.organization_id,
        customer_id: m.customer_id,
        external_id: m.external_id,
        number: m.number,
        currency: currency(&m.currency_code)?,
        total_minor: m.total_minor,
        paid_minor: m.paid_minor,
        credited_minor: m.credited_minor,
        issue_date: m.issue_date,
        due_date: m.due_date,
        overdue_at: from_micros(m.overdue_at),
        overdue_announced: m.overdue_announced,
        state: InvoiceState::parse(&m.state).ok_or_else(|| corrupt("invoice state", &m.state))?,
        collection_method: CollectionMethod::parse(&m.collection_method)
            .ok_or_else(|| corrupt("collection method", &m.collection_method))?,
        disputed: m.disputed,
        dunning_blocked: m.dunning_blocked,
        dunning_block_reason: m.dunning_block_reason,
        policy_code: m.policy_code,
        metadata: serde_json::from_str(&m.metadata).map_err(|e| corrupt("invoice metadata", e))?,
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
        paid_at: m.paid_at.map(from_micros),
    })
}

fn payment_from_model(m: payment::Model) -> Result<Payment, Error> {
    Ok(Payment {
        id: m.id,
        organization_id: m.organization_id,
        invoice_id: m.invoice_id,
        external_id: m.external_id,
        currency: currency(&m.currency_code)?,
        amount_minor: m.amount_minor,
        paid_at: from_micros(m.paid_at),
        reference: m.reference,
        created_at: from_micros(m.created_at),
    })
}
