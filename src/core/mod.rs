//! What a request and the engine both write, inside the caller's transaction: composing and
//! queueing outbox messages (`outbox`), charging and settling payment requests (`charging`),
//! recording payments (`payments`), keeping processes in line with their invoices and customer
//! (`reconcile`, `payment_plans`) and the events a process change appends
//! (`process_events`). Nothing here opens a transaction of its own unless a method says so,
//! and nothing here imports `service` or `engine`.

pub mod charging;
pub mod compose;
pub mod lookup;
pub mod outbox;
pub mod payment_plans;
pub mod payments;
pub mod process_events;
pub mod reconcile;

use crate::clock::Clock;
use crate::storage::Store;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// The authenticated caller: every use case is scoped to its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub organization_id: Uuid,
    /// Who acts: recorded with operator commands.
    pub actor: Actor,
}

impl Caller {
    /// The service itself acting for an organization (the engine, the workers).
    pub fn system(organization_id: Uuid) -> Self {
        Self {
            organization_id,
            actor: Actor::System,
        }
    }
}

/// Who gives a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A caller of the API, by the id of its key (`dunning key list` shows it).
    ApiKey(Uuid),
    /// The service itself.
    System,
}

impl Actor {
    /// How events name the actor: empty for what the service did by itself.
    pub fn for_events(self) -> String {
        match self {
            Self::System => String::new(),
            operator => operator.to_string(),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// What request use cases and background jobs share: the store, the clock, and the wake-ups a
/// commit fires for the background jobs it left work for.
#[derive(Clone)]
pub struct Core {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) wake: Wakeups,
}

/// The signals that wake background jobs once a commit left work for them.
#[derive(Clone, Default)]
pub(crate) struct Wakeups {
    /// A notification was queued.
    pub(crate) outbox: Arc<Notify>,
    /// A payment request was created.
    pub(crate) payments: Arc<Notify>,
    /// An invoice or customer change to look at, a charge outcome a step waits for, a
    /// process to run now.
    pub(crate) engine: Arc<Notify>,
}

impl Core {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            wake: Wakeups::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
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
