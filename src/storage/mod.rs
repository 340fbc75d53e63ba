//! Persistence: the only module that sees sea-orm. Repositories are methods on [`Conn`], which
//! wraps either the pool (single statements) or a transaction (a use case's unit of work).

mod customers;
mod entity;
mod events;
mod gauges;
mod idempotency;
mod invoices;
mod notifications;
mod organizations;
mod payment_requests;
mod policies;
mod processes;
mod report;
mod webhooks;

pub use events::EventWakeup;
pub use invoices::InvoiceKey;
pub use organizations::ApiKeyRecord;
pub use report::{POSTGRES_REPORT_SETTINGS, collections_report_statements};

use crate::error::Error;
use crate::error::Reason;
use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    Iterable, RuntimeErr, SqlErr, TransactionTrait,
};
use std::ops::Deref;
use std::time::Duration;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection handle: the pool (`Store`) or an open transaction (`Tx`).
pub struct Conn<C> {
    conn: C,
    /// Wakes event readers of this process when events are committed.
    wakeup: EventWakeup,
    /// Whether this transaction appended events (so its commit wakes readers).
    appended_events: std::sync::atomic::AtomicBool,
    /// The URL connected to (PostgreSQL readers LISTEN on their own connection).
    url: std::sync::Arc<str>,
    /// Background jobs to wake once this transaction has committed (`None` on the pool:
    /// there, a statement is committed when it returns, so they are woken at once).
    wake_on_commit: Option<std::sync::Mutex<Vec<std::sync::Arc<tokio::sync::Notify>>>>,
}

/// Anything repositories can run on: the pool or a transaction. Services use it to be generic
/// over both without naming sea-orm.
pub trait Connection: ConnectionTrait {}
impl<T: ConnectionTrait> Connection for T {}

/// The connection pool.
pub type Store = Conn<DatabaseConnection>;
/// An open transaction; dropped without `commit` it rolls back.
pub type Tx = Conn<DatabaseTransaction>;

impl Clone for Store {
    fn clone(&self) -> Self {
        Conn {
            conn: self.conn.clone(),
            wakeup: self.wakeup.clone(),
            appended_events: Default::default(),
            url: self.url.clone(),
            wake_on_commit: None,
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let store = Self::connect_without_migrating(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without touching the schema.
    pub async fn connect_without_migrating(url: &str) -> Result<Store, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // SQLite allows one writer; one connection serialises writers instead of letting
            // two deferred transactions deadlock on their lock upgrade.
            options
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    o.busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                });
        } else {
            options.max_connections(20).min_connections(1);
        }
        let conn = Database::connect(options)
            .await
            .map_err(|e| cannot_connect(url, db_error(e)))?;
        Ok(Conn {
            conn,
            wakeup: EventWakeup::default(),
            appended_events: Default::default(),
            url: url.into(),
            wake_on_commit: None,
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), Error> {
        Migrator::up(&self.conn, None).await.map_err(db_error)
    }

    /// Starts a unit of work.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let conn = self.conn.begin().await.map_err(db_error)?;
        Ok(Conn {
            conn,
            wakeup: self.wakeup.clone(),
            appended_events: Default::default(),
            url: self.url.clone(),
            wake_on_commit: Some(Default::default()),
        })
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), Error> {
        let appended = self
            .appended_events
            .load(std::sync::atomic::Ordering::Relaxed);
        let wakeup = self.wakeup.clone();
        let woken = self
            .wake_on_commit
            .map(|w| w.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default();
        self.conn.commit().await.map_err(db_error)?;
        if appended {
            wakeup.wake();
        }
        // Only now: a job woken before the commit could look, find nothing, and sleep.
        for signal in woken {
            signal.notify_one();
        }
        Ok(())
    }
}

impl<C: ConnectionTrait> Conn<C> {
    /// Wakes a background job once what this connection wrote is committed: at commit for a
    /// transaction (never if it rolls back), at once on the pool.
    pub fn wake_after_commit(&self, signal: &std::sync::Arc<tokio::sync::Notify>) {
        match &self.wake_on_commit {
            Some(pending) => {
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                if !pending.iter().any(|s| std::sync::Arc::ptr_eq(s, signal)) {
                    pending.push(signal.clone());
                }
            }
            None => signal.notify_one(),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => Backend::Sqlite,
            _ => Backend::Postgres,
        }
    }

    /// `query` taking row locks held until the transaction ends (`FOR UPDATE`) when `lock`, on
    /// PostgreSQL; SQLite has one writer at a time, so its transactions need none.
    pub(crate) fn for_update<Q: sea_orm::QuerySelect>(&self, query: Q, lock: bool) -> Q {
        if lock && self.backend() == Backend::Postgres {
            query.lock_exclusive()
        } else {
            query
        }
    }
}

/// Why the database at `url` could not be opened, naming where it is (without a password)
/// and the setting that chose it.
fn cannot_connect(url: &str, cause: Error) -> Error {
    let cause = match cause {
        Error::Unavailable(detail) | Error::Internal(detail) => detail,
        other => other.to_string(),
    };
    let place = match url::Url::parse(url) {
        Ok(u) if u.scheme().starts_with("postgres") => format!(
            "PostgreSQL at host {}, port {}, database `{}`",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path().trim_start_matches('/')
        ),
        _ => format!("the database `{}`", url.split('?').next().unwrap_or(url)),
    };
    Error::Setup(format!(
        "cannot open {place}: {cause}; check that it runs and accepts connections, or change \
         DUNNING_DATABASE_URL (database_url)"
    ))
}

/// Maps a database error: an unreachable or overloaded database is `Unavailable` (retryable);
/// anything else is a server fault.
pub(crate) fn db_error(err: DbErr) -> Error {
    if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
        return Error::already_exists(Reason::AlreadyExists, format!("duplicate: {detail}"));
    }
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Error::Unavailable(err.to_string()),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            use sea_orm::sqlx::Error as Sqlx;
            match e.deref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => Error::Unavailable(err.to_string()),
                Sqlx::Database(db) if is_transient(db.code().as_deref()) => {
                    Error::Unavailable(err.to_string())
                }
                // A NUL (or a character PostgreSQL cannot store) that no field's rule refused
                // first: still the caller's input, never a fault of ours.
                Sqlx::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                    tracing::warn!(error = %err, "a text value reached the database unchecked");
                    Error::field(
                        "",
                        "a text value contains a character that cannot be stored (NUL)",
                    )
                }
                _ => Error::Internal(err.to_string()),
            }
        }
        _ => Error::Internal(err.to_string()),
    }
}

/// SQLSTATE / SQLite codes that mean "try again": serialization failures, deadlocks, a busy
/// or locked SQLite database, PostgreSQL shutting down or out of connections.
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "5" | "6" | "517")
    )
}

/// Like [`db_error`], but a unique violation becomes the caller's specific ALREADY_EXISTS.
pub(crate) fn db_error_or_duplicate(err: DbErr, reason: Reason, message: String) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::already_exists(reason, message),
        _ => db_error(err),
    }
}

/// Which way a keyset list runs: resources in creation order (after a cursor), logs newest
/// first (before a cursor). Ids are UUIDv7, so id order is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    OldestFirst,
    NewestFirst,
}

/// The column of entity `E` named `name` (every organization-scoped table has
/// `organization_id` and `id`; the caller-addressed ones `external_id`).
fn column_of<E: sea_orm::EntityTrait>(name: &str) -> Result<E::Column, Error> {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| Error::Internal(format!("{} has no {name}", E::default().table_name())))
}

/// The rows of `E` in one organization, for a query to filter further.
pub(crate) fn scoped<E: sea_orm::EntityTrait>(
    organization_id: uuid::Uuid,
) -> Result<sea_orm::Select<E>, Error> {
    use sea_orm::{ColumnTrait, QueryFilter};
    Ok(E::find().filter(column_of::<E>("organization_id")?.eq(organization_id)))
}

impl<C: ConnectionTrait> Conn<C> {
    /// One keyset page of `query` (already filtered): ordered by id in `order`, past `cursor`
    /// (after it oldest first, before it newest first), at most `limit` rows, converted.
    pub(crate) async fn keyset_page<E, T>(
        &self,
        query: sea_orm::Select<E>,
        cursor: Option<uuid::Uuid>,
        order: Order,
        limit: u64,
        convert: impl Fn(E::Model) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error>
    where
        E: sea_orm::EntityTrait,
        E::Model: sea_orm::FromQueryResult + Send + Sync,
    {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
        let id = column_of::<E>("id")?;
        let query = match (order, cursor) {
            (Order::OldestFirst, Some(after)) => query.filter(id.gt(after)),
            (Order::NewestFirst, Some(before)) => query.filter(id.lt(before)),
            (_, None) => query,
        };
        let query = match order {
            Order::OldestFirst => query.order_by_asc(id),
            Order::NewestFirst => query.order_by_desc(id),
        };
        query
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(convert)
            .collect()
    }

    /// The row of `E` in one organization with this `external_id`, converted.
    pub(crate) async fn by_external_id<E, T>(
        &self,
        organization_id: uuid::Uuid,
        external_id: &str,
        convert: impl Fn(E::Model) -> Result<T, Error>,
    ) -> Result<Option<T>, Error>
    where
        E: sea_orm::EntityTrait,
        E::Model: sea_orm::FromQueryResult + Send + Sync,
    {
        use sea_orm::{ColumnTrait, QueryFilter};
        scoped::<E>(organization_id)?
            .filter(column_of::<E>("external_id")?.eq(external_id))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(convert)
            .transpose()
    }

    /// The rows of entity `E` in one organization whose `external_id` is in `external_ids`
    /// (locked for this transaction on PostgreSQL when `lock`).
    ///
    /// On PostgreSQL the ids are looked up as one unique-index probe each (a LATERAL join): a
    /// plain `external_id IN (...)` lets the planner prefer the (organization_id, id) index
    /// and filter every row of the organization whenever the table's statistics are stale
    /// (right after a bulk load, before autovacuum analyses it): 900 ms instead of 2 ms for
    /// 500 ids. The LATERAL form gives it an equality on both columns of the unique index,
    /// which it always takes.
    pub(crate) async fn models_by_external_ids<E>(
        &self,
        organization_id: uuid::Uuid,
        external_ids: &[String],
        lock: bool,
    ) -> Result<Vec<E::Model>, Error>
    where
        E: sea_orm::EntityTrait,
        E::Model: sea_orm::FromQueryResult + Send + Sync,
    {
        use sea_orm::{ColumnTrait, QueryFilter};
        let (organization_column, external_id_column) = (
            column_of::<E>("organization_id")?,
            column_of::<E>("external_id")?,
        );
        // Locks are taken in external id order everywhere, so that two transactions locking
        // overlapping sets of rows cannot deadlock.
        let mut sorted;
        let external_ids = if lock {
            sorted = external_ids.to_vec();
            sorted.sort();
            &sorted[..]
        } else {
            external_ids
        };
        let mut out = Vec::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(rows_per_statement(1)) {
            let models = if self.backend() == Backend::Postgres {
                let keys = (0..chunk.len())
                    .map(|i| format!("(${}::text)", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                let lock = if lock { " FOR UPDATE" } else { "" };
                let sql = format!(
                    "SELECT row.* FROM (VALUES {keys}) AS k(external_id) CROSS JOIN LATERAL \
                     (SELECT * FROM \"{}\" t WHERE t.organization_id = $1 \
                     AND t.external_id = k.external_id{lock}) AS row",
                    E::default().table_name()
                );
                let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() + 1);
                values.push(organization_id.into());
                values.extend(chunk.iter().map(|id| id.clone().into()));
                let statement = sea_orm::Statement::from_sql_and_values(
                    sea_orm::DatabaseBackend::Postgres,
                    sql,
                    values,
                );
                E::find().from_raw_sql(statement).all(&self.conn).await
            } else {
                E::find()
                    .filter(organization_column.eq(organization_id))
                    .filter(external_id_column.is_in(chunk.iter().cloned()))
                    .all(&self.conn)
                    .await
            }
            .map_err(db_error)?;
            out.extend(models);
        }
        Ok(out)
    }
}

impl<C: ConnectionTrait> Conn<C> {
    /// Claims due work (outbox rows, payment requests, webhook deliveries): moves the `due`
    /// column of the rows `ids` to `lease_until`, only where it is still due at `now` — a
    /// compare-and-set, so a row another worker or replica claimed meanwhile is no longer due.
    /// Returns the ids claimed. A claim never settled (a crash mid-work) expires at
    /// `lease_until` and the work is picked up again.
    pub(crate) async fn claim_due<E: sea_orm::EntityTrait>(
        &self,
        id: E::Column,
        due: E::Column,
        ids: &[uuid::Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<uuid::Uuid>, Error> {
        use sea_orm::sea_query::{Expr, ExprTrait, Query};
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = Query::update()
            .table(E::default())
            .value(due, to_micros(lease_until))
            .and_where(Expr::col(id).is_in(ids.iter().copied()))
            .and_where(Expr::col(due).lte(to_micros(now)))
            .returning_col(id)
            .to_owned();
        let rows = self.conn.query_all(&statement).await.map_err(db_error)?;
        let id_column = sea_orm::IdenStatic::as_str(&id);
        rows.iter()
            .map(|row| row.try_get::<uuid::Uuid>("", id_column).map_err(db_error))
            .collect()
    }
}

impl<C: ConnectionTrait> Conn<C> {
    /// Inserts rows of one table in multi-row statements of at most `rows_per_statement`
    /// rows each; an empty list writes nothing.
    pub(crate) async fn insert_rows<A>(&self, rows: Vec<A>) -> Result<(), DbErr>
    where
        A: sea_orm::ActiveModelTrait + Send,
    {
        let columns = <<A::Entity as sea_orm::EntityTrait>::Column as Iterable>::iter().count();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<A> = rows.by_ref().take(rows_per_statement(columns)).collect();
            <A::Entity as sea_orm::EntityTrait>::insert_many(chunk)
                .exec_without_returning(&self.conn)
                .await?;
        }
        Ok(())
    }
}

/// Bound parameters one statement may carry: below SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_STATEMENT_PARAMS: usize = 30_000;

/// Rows per multi-row statement for a table with `columns` columns: as many as fit, so a batch
/// of 1,000 invoices is one statement.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_STATEMENT_PARAMS / columns.max(1)).max(1)
}

pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Internal(format!("stored {what} is unreadable: {detail}"))
}
