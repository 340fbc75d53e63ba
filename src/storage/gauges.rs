//! What the metrics endpoint reads at scrape time: backlogs and the connection pool.

use super::{Backend, Store, db_error, to_micros};
use crate::domain::notification::NotificationState;
use crate::error::Error;
use crate::storage::entity::{notification, process};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

impl Store {
    /// Processes whose next step (or a look the engine owes them) is due at `now` and not
    /// claimed: a lease moves `due_at` into the future.
    pub async fn due_process_count(&self, now: DateTime<Utc>) -> Result<i64, Error> {
        let n = process::Entity::find()
            .filter(process::Column::DueAt.lte(to_micros(now)))
            .count(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(n as i64)
    }

    /// Notifications waiting in the outbox (QUEUED).
    pub async fn queued_notification_count(&self) -> Result<i64, Error> {
        let n = notification::Entity::find()
            .filter(notification::Column::State.eq(NotificationState::Queued.as_str()))
            .count(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(n as i64)
    }

    /// The connection pool: (in use, idle).
    pub fn pool_connections(&self) -> (i64, i64) {
        let (size, idle) = match self.backend() {
            Backend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            Backend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        let idle = idle as i64;
        (i64::from(size) - idle, idle)
    }
}
