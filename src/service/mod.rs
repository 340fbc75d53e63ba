//! Use cases. Each one validates business rules, owns its transaction, appends its events in
//! that transaction, and returns domain types.

pub mod auth;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod notifications;
pub mod organizations;
pub mod overdue;
pub mod paging;
pub mod payment_requests;
pub mod policies;
pub mod processes;
pub mod webhooks;

use crate::clock::Clock;
use crate::storage::Store;
use std::sync::Arc;
use uuid::Uuid;

/// The authenticated caller: every use case is scoped to its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub organization_id: Uuid,
}

/// Everything the use cases need: the store and the clock.
#[derive(Clone)]
pub struct Services {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Wakes the outbox worker when a notification is queued.
    outbox_signal: Arc<tokio::sync::Notify>,
    /// Wakes the payment worker when a payment request is created.
    payment_signal: Arc<tokio::sync::Notify>,
    /// Wakes the dunning engine when a commit left work for it (an invoice or customer
    /// change to look at, a charge outcome a step waits for, a process to run now).
    engine_signal: Arc<tokio::sync::Notify>,
    /// Set when the server shuts down: event streams end so clients can resume elsewhere.
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
    /// The live fan-out of the event log to this process's subscribers.
    feed: Arc<crate::events::feed::EventFeed>,
    /// How long claimed work (a due step, a customer to look at, an email being sent) stays
    /// with this replica before another may take it.
    claim_lease: chrono::Duration,
}

impl Services {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        let shutdown = Arc::new(tokio::sync::watch::channel(false).0);
        let feed = crate::events::feed::EventFeed::new(store.clone(), shutdown.subscribe());
        Self {
            store,
            clock,
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
            payment_signal: Arc::new(tokio::sync::Notify::new()),
            engine_signal: Arc::new(tokio::sync::Notify::new()),
            feed,
            shutdown,
            claim_lease: chrono::Duration::minutes(5),
        }
    }

    /// Sets how long claimed work stays with this replica.
    pub fn with_claim_lease(mut self, lease: std::time::Duration) -> Self {
        self.claim_lease = chrono::Duration::from_std(lease).unwrap_or(self.claim_lease);
        self
    }

    /// Ends every event stream with UNAVAILABLE (the server is going away).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Completes when a notification was queued since the last call (or immediately if one
    /// was queued while nobody waited).
    pub async fn outbox_changed(&self) {
        self.outbox_signal.notified().await;
    }

    /// Completes when a commit left work for the dunning engine.
    pub async fn engine_changed(&self) {
        self.engine_signal.notified().await;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Addresses a customer by server id or by the caller's external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRef {
    Id(Uuid),
    ExternalId(String),
}

/// Addresses an invoice by server id or by the caller's external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceRef {
    Id(Uuid),
    ExternalId(String),
}
