//! The queue of customers the engine must look at (a write to their invoices or to them).

use crate::error::Error;
use crate::storage::entity::dunning_check;
use crate::storage::{Conn, db_error, to_micros};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    /// Asks the engine to look at a customer's dunning at `at` (now, after a change); the
    /// look joins the trace of the current span.
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
                trace_context: crate::telemetry::current_trace(),
            }
            .into_active_model(),
        )
        .on_conflict(
            OnConflict::column(dunning_check::Column::CustomerId)
                .update_columns([
                    dunning_check::Column::CheckAt,
                    dunning_check::Column::TraceContext,
                ])
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
            super::super::Backend::Postgres => ("$1", "$2"),
            super::super::Backend::Sqlite => ("?", "?"),
        };
        // `WHERE true` lets SQLite tell the upsert clause from a join condition.
        let sql = format!(
            "INSERT INTO dunning_checks (customer_id, organization_id, check_at) \
             SELECT DISTINCT customer_id, organization_id, {at_param} FROM invoices \
             WHERE organization_id = {org_param} AND state = 'OPEN' AND true \
             ON CONFLICT (customer_id) DO UPDATE SET check_at = excluded.check_at, \
             trace_context = excluded.trace_context"
        );
        let statement = sea_orm::Statement::from_sql_and_values(
            self.conn.get_database_backend(),
            sql,
            [to_micros(at).into(), organization_id.into()],
        );
        self.conn.execute_raw(statement).await.map_err(db_error)?;
        Ok(())
    }

    /// Customers (of any organization) due for a look at `now`, as (organization, customer,
    /// the trace context of the request that asked for the look).
    pub async fn due_dunning_checks(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid, Option<String>)>, Error> {
        dunning_check::Entity::find()
            .select_only()
            .column(dunning_check::Column::OrganizationId)
            .column(dunning_check::Column::CustomerId)
            .column(dunning_check::Column::TraceContext)
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
