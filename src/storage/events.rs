//! The event log.
//!
//! Sequences come from a per-organization counter on the organization row, incremented inside
//! the transaction that appends the events. The row lock is held until that transaction ends,
//! so transactions appending events for one organization commit in sequence order: a reader
//! can never see sequence N+1 committed while N is still in flight, and a rolled-back
//! transaction releases its numbers to the next writer (no gaps). SQLite has one writer at a
//! time, which gives the same guarantee.

use super::entity::{event, organization};
use super::{Conn, corrupt, db_error, from_micros, to_micros};
use crate::clock::new_id;
use crate::domain::event::{Event, EventPayload, NewEvent};
use crate::domain::query::EventFilter;
use crate::error::Error;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Iterable, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

/// PostgreSQL channel on which every replica hears that events were committed.
const EVENTS_CHANNEL: &str = "dunning_events";

/// Wakes this process's event readers when events were committed (here, or — on PostgreSQL —
/// by another replica). A counter, not a queue: readers re-read the log from their cursor, so a
/// wakeup can never be lost or reorder anything.
#[derive(Clone)]
pub struct EventWakeup {
    sender: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for EventWakeup {
    fn default() -> Self {
        Self {
            sender: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl EventWakeup {
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sender.subscribe()
    }

    pub(crate) fn wake(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl super::Store {
    /// Subscribes to "events were committed" of this process and (PostgreSQL) all replicas.
    pub fn event_wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wakeup.subscribe()
    }

    /// On PostgreSQL, listens for other replicas' commits and wakes local readers; runs until
    /// the task is dropped, reconnecting after failures (and waking readers then, since
    /// notifications may have been missed meanwhile). On SQLite there are no other replicas.
    pub async fn relay_other_replicas_events(&self) {
        if self.backend() != super::Backend::Postgres {
            return std::future::pending().await;
        }
        loop {
            match sea_orm::sqlx::postgres::PgListener::connect(&self.url).await {
                Ok(mut listener) => {
                    if listener.listen(EVENTS_CHANNEL).await.is_ok() {
                        self.wakeup.wake();
                        while listener.recv().await.is_ok() {
                            self.wakeup.wake();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for events; retrying"),
            }
            self.wakeup.wake();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

impl<C: ConnectionTrait> Conn<C> {
    /// Appends events in order, assigning the organization's next sequences.
    pub async fn append_events(
        &self,
        organization_id: Uuid,
        events: &[NewEvent],
    ) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len() as i64;
        let column = organization::Column::LastEventSequence;
        let statement = Query::update()
            .table(organization::Entity)
            .value(column, Expr::col(column).add(count))
            .and_where(Expr::col(organization::Column::Id).eq(organization_id))
            .returning_col(column)
            .to_owned();
        let row = self
            .conn
            .query_one(&statement)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::Internal(format!("organization {organization_id} vanished")))?;
        let last: i64 = row.try_get("", "last_event_sequence").map_err(db_error)?;
        let first = last - count + 1;

        let models = events.iter().enumerate().map(|(i, e)| {
            let reported = e.reported_amount();
            event::Model {
                id: new_id(),
                organization_id,
                sequence: first + i as i64,
                event_type: e.event_type.as_str().to_owned(),
                occurred_at: to_micros(e.occurred_at),
                customer_id: e.customer_id,
                customer_external_id: e.customer_external_id.clone(),
                invoice_id: e.invoice_id,
                invoice_external_id: e.invoice_external_id.clone(),
                process_id: e.process_id,
                payload: serde_json::to_string(&e.payload).unwrap_or_else(|_| "{}".into()),
                currency_code: reported.map(|m| m.currency().code().to_owned()),
                amount_minor: reported.map(|m| m.minor()),
            }
            .into_active_model()
        });
        let models: Vec<_> = models.collect();
        self.appended_events
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.backend() == super::Backend::Postgres {
            // Delivered to every listening replica when (and only if) this transaction commits.
            self.conn
                .execute_unprepared(&format!("NOTIFY {EVENTS_CHANNEL}"))
                .await
                .map_err(db_error)?;
        }
        for chunk in models.chunks(super::rows_per_statement(event::Column::iter().count())) {
            event::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&self.conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// The organization's latest event sequence (0 before the first event).
    /// How many events of each of `types` the customer's log holds from (`since`, `until`],
    /// over the (customer_id, sequence) index.
    pub async fn count_customer_events(
        &self,
        customer_id: Uuid,
        types: &[&str],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, Error> {
        event::Entity::find()
            .select_only()
            .column(event::Column::EventType)
            .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
            .filter(event::Column::CustomerId.eq(customer_id))
            .filter(event::Column::EventType.is_in(types.iter().copied()))
            .filter(event::Column::OccurredAt.gt(to_micros(since)))
            .filter(event::Column::OccurredAt.lte(to_micros(until)))
            .group_by(event::Column::EventType)
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(db_error)
    }

    pub async fn last_event_sequence(&self, organization_id: Uuid) -> Result<i64, Error> {
        Ok(organization::Entity::find_by_id(organization_id)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(|o| o.last_event_sequence)
            .unwrap_or(0))
    }

    /// Events after `after_sequence` (and before `before_sequence`, if given), oldest first.
    pub async fn list_events(
        &self,
        organization_id: Uuid,
        filter: &EventFilter,
        after_sequence: i64,
        before_sequence: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Event>, Error> {
        let mut query = event::Entity::find()
            .filter(event::Column::OrganizationId.eq(organization_id))
            .filter(event::Column::Sequence.gt(after_sequence));
        if let Some(before) = before_sequence {
            query = query.filter(event::Column::Sequence.lt(before));
        }
        if let Some(id) = filter.customer_id {
            query = query.filter(event::Column::CustomerId.eq(id));
        }
        if let Some(id) = filter.invoice_id {
            query = query.filter(event::Column::InvoiceId.eq(id));
        }
        if let Some(id) = filter.process_id {
            query = query.filter(event::Column::ProcessId.eq(id));
        }
        if !filter.event_types.is_empty() {
            query = query.filter(event::Column::EventType.is_in(filter.event_types.clone()));
        }
        query
            .order_by_asc(event::Column::Sequence)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(event_from_model)
            .collect()
    }
}

pub(super) fn event_from_model(m: event::Model) -> Result<Event, Error> {
    let payload: EventPayload =
        serde_json::from_str(&m.payload).map_err(|e| corrupt("event payload", e))?;
    Ok(Event {
        id: m.id,
        organization_id: m.organization_id,
        sequence: m.sequence,
        event_type: m.event_type,
        occurred_at: from_micros(m.occurred_at),
        customer_id: m.customer_id,
        customer_external_id: m.customer_external_id,
        invoice_id: m.invoice_id,
        invoice_external_id: m.invoice_external_id,
        process_id: m.process_id,
        payload,
    })
}
