//! Webhook endpoints and deliveries.

use super::entity::{event, webhook_delivery as delivery, webhook_endpoint as endpoint};
use super::{Conn, corrupt, db_error, from_micros, to_micros};
use super::{Order, scoped};
use crate::domain::event::Event;
use crate::domain::query::DeliveryFilter;
use crate::domain::webhook::{DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use crate::error::Error;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    pub async fn insert_webhook_endpoint(&self, e: &WebhookEndpoint) -> Result<(), Error> {
        endpoint::Entity::insert(endpoint_model(e).into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn update_webhook_endpoint(&self, e: &WebhookEndpoint) -> Result<(), Error> {
        endpoint_model(e)
            .into_active_model()
            .reset_all()
            .update(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn delete_webhook_endpoint(&self, id: Uuid) -> Result<(), Error> {
        endpoint::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// An endpoint of the organization; with `lock`, held until the transaction ends
    /// (PostgreSQL). Writers lock the endpoint before its deliveries.
    pub async fn find_webhook_endpoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
        lock: bool,
    ) -> Result<Option<WebhookEndpoint>, Error> {
        let mut query = endpoint::Entity::find_by_id(id)
            .filter(endpoint::Column::OrganizationId.eq(organization_id));
        query = self.for_update(query, lock);
        query
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(endpoint_from_model)
            .transpose()
    }

    /// Endpoints of an organization, oldest first, after `after_id`.
    pub async fn list_webhook_endpoints(
        &self,
        organization_id: Uuid,
        after_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<WebhookEndpoint>, Error> {
        let query = scoped::<endpoint::Entity>(organization_id)?;
        self.keyset_page(
            query,
            after_id,
            Order::OldestFirst,
            limit,
            endpoint_from_model,
        )
        .await
    }

    /// Every enabled endpoint of every organization (the dispatcher's work list).
    pub async fn enabled_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, Error> {
        endpoint::Entity::find()
            .filter(endpoint::Column::Enabled.eq(true))
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(endpoint_from_model)
            .collect()
    }

    /// Moves an enabled endpoint's cursor from `from` to `to`, only if it is still at `from`
    /// (another replica's dispatcher may have moved it): returns whether it moved.
    pub async fn advance_webhook_cursor(
        &self,
        id: Uuid,
        from: i64,
        to: i64,
    ) -> Result<bool, Error> {
        let statement = Query::update()
            .table(endpoint::Entity)
            .value(endpoint::Column::Cursor, to)
            .and_where(Expr::col(endpoint::Column::Id).eq(id))
            .and_where(Expr::col(endpoint::Column::Cursor).eq(from))
            // Disabled meanwhile: its events wait for it to be enabled again.
            .and_where(Expr::col(endpoint::Column::Enabled).eq(true))
            .to_owned();
        let result = self.conn.execute(&statement).await.map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    /// Counts an attempt against the endpoint's run of failures (reset by a success) and
    /// returns the run's length, atomically so that concurrent deliveries count right.
    pub async fn count_webhook_attempt(&self, id: Uuid, succeeded: bool) -> Result<i32, Error> {
        let column = endpoint::Column::ConsecutiveFailures;
        let value = if succeeded {
            Expr::value(0)
        } else {
            Expr::col(column).add(1)
        };
        let statement = Query::update()
            .table(endpoint::Entity)
            .value(column, value)
            .and_where(Expr::col(endpoint::Column::Id).eq(id))
            .returning_col(column)
            .to_owned();
        match self.conn.query_one(&statement).await.map_err(db_error)? {
            Some(row) => row.try_get("", "consecutive_failures").map_err(db_error),
            // Deleted meanwhile.
            None => Ok(0),
        }
    }

    /// Stores new deliveries; one that exists already (same endpoint and event) is kept.
    pub async fn insert_webhook_deliveries(&self, ds: &[WebhookDelivery]) -> Result<(), Error> {
        for chunk in ds.chunks(super::rows_per_statement(14)) {
            let models = chunk.iter().map(|d| delivery_model(d).into_active_model());
            delivery::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([delivery::Column::EndpointId, delivery::Column::EventId])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&self.conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    pub async fn update_webhook_delivery(&self, d: &WebhookDelivery) -> Result<(), Error> {
        delivery_model(d)
            .into_active_model()
            .reset_all()
            .update(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Gives up every pending delivery of an endpoint.
    pub async fn fail_pending_webhook_deliveries(
        &self,
        endpoint_id: Uuid,
        why: &str,
    ) -> Result<(), Error> {
        delivery::Entity::update_many()
            .col_expr(
                delivery::Column::Status,
                Expr::value(DeliveryStatus::Failed.as_str()),
            )
            .col_expr(
                delivery::Column::NextAttemptAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(delivery::Column::Error, Expr::value(why))
            .filter(delivery::Column::EndpointId.eq(endpoint_id))
            .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Pending deliveries (of any organization) whose attempt is due, soonest first.
    pub async fn due_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        delivery::Entity::find()
            .filter(delivery::Column::NextAttemptAt.lte(to_micros(now)))
            .order_by_asc(delivery::Column::NextAttemptAt)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(delivery_from_model)
            .collect()
    }

    /// Claims due deliveries for sending (see [`Conn::claim_due`]).
    pub async fn claim_webhook_deliveries(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, Error> {
        self.claim_due::<delivery::Entity>(
            delivery::Column::Id,
            delivery::Column::NextAttemptAt,
            ids,
            now,
            lease_until,
        )
        .await
    }

    /// Deliveries newest first, before `before_id`.
    pub async fn list_webhook_deliveries(
        &self,
        organization_id: Uuid,
        filter: &DeliveryFilter,
        before_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let mut query = scoped::<delivery::Entity>(organization_id)?;
        if let Some(id) = filter.endpoint_id {
            query = query.filter(delivery::Column::EndpointId.eq(id));
        }
        if let Some(id) = filter.event_id {
            query = query.filter(delivery::Column::EventId.eq(id));
        }
        if let Some(status) = filter.status {
            query = query.filter(delivery::Column::Status.eq(status.as_str()));
        }
        self.keyset_page(
            query,
            before_id,
            Order::NewestFirst,
            limit,
            delivery_from_model,
        )
        .await
    }

    /// One event by id.
    pub async fn find_event(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Event>, Error> {
        event::Entity::find_by_id(id)
            .filter(event::Column::OrganizationId.eq(organization_id))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(super::events::event_from_model)
            .transpose()
    }
}

fn endpoint_model(e: &WebhookEndpoint) -> endpoint::Model {
    endpoint::Model {
        id: e.id,
        organization_id: e.organization_id,
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: serde_json::to_string(&e.event_types).unwrap_or_else(|_| "[]".into()),
        secret: e.secret.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        consecutive_failures: e.consecutive_failures,
        cursor: e.cursor,
        created_at: to_micros(e.created_at),
        updated_at: to_micros(e.updated_at),
    }
}

fn endpoint_from_model(m: endpoint::Model) -> Result<WebhookEndpoint, Error> {
    Ok(WebhookEndpoint {
        id: m.id,
        organization_id: m.organization_id,
        url: m.url,
        description: m.description,
        event_types: serde_json::from_str(&m.event_types)
            .map_err(|e| corrupt("webhook event types", e))?,
        secret: m.secret,
        enabled: m.enabled,
        disabled_reason: m.disabled_reason,
        consecutive_failures: m.consecutive_failures,
        cursor: m.cursor,
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
    })
}

fn delivery_model(d: &WebhookDelivery) -> delivery::Model {
    delivery::Model {
        id: d.id,
        organization_id: d.organization_id,
        endpoint_id: d.endpoint_id,
        event_id: d.event_id,
        event_sequence: d.event_sequence,
        event_type: d.event_type.clone(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        response_status_code: d.response_status_code,
        latency_ms: d.latency_ms,
        error: d.error.clone(),
        next_attempt_at: d.next_attempt_at.map(to_micros),
        last_attempt_at: d.last_attempt_at.map(to_micros),
        created_at: to_micros(d.created_at),
    }
}

fn delivery_from_model(m: delivery::Model) -> Result<WebhookDelivery, Error> {
    Ok(WebhookDelivery {
        id: m.id,
        organization_id: m.organization_id,
        endpoint_id: m.endpoint_id,
        event_id: m.event_id,
        event_sequence: m.event_sequence,
        event_type: m.event_type,
        status: DeliveryStatus::parse(&m.status)
            .ok_or_else(|| corrupt("webhook delivery status", &m.status))?,
        attempts: m.attempts,
        response_status_code: m.response_status_code,
        latency_ms: m.latency_ms,
        error: m.error,
        next_attempt_at: m.next_attempt_at.map(from_micros),
        last_attempt_at: m.last_attempt_at.map(from_micros),
        created_at: from_micros(m.created_at),
    })
}
