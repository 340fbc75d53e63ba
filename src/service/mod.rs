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
pub mod report;
pub mod webhooks;

use crate::clock::Clock;
use crate::storage::Store;
pub use events::LiveEvents;
use std::ops::Deref;
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
/// commit fires for the background jobs it left work for. Helpers both sides call (composing
/// an email, reconciling a process, saving a payment request's outcome) are methods of this.
#[derive(Clone)]
pub struct Core {
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Wakeups,
}

/// The signals that wake background jobs once a commit left work for them.
#[derive(Clone, Default)]
struct Wakeups {
    /// A notification was queued.
    outbox: Arc<Notify>,
    /// A payment request was created.
    payments: Arc<Notify>,
    /// An invoice or customer change to look at, a charge outcome a step waits for, a
    /// process to run now.
    engine: Arc<Notify>,
}

impl Core {
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// The request use cases: what the gRPC handlers and the command line call.
#[derive(Clone)]
pub struct Services {
    core: Core,
}

/// Request use cases read the shared core's store and clock as their own.
impl Deref for Services {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// The background jobs' side: rounds of due work claimed with a lease, and the waits for the
/// wake-ups that request use cases fire.
#[derive(Clone)]
pub struct Jobs {
    core: Core,
    /// How long claimed work (a due step, a customer to look at, an email being sent) stays
    /// with this replica before another may take it.
    claim_lease: chrono::Duration,
}

/// Jobs read the shared core's store and clock as their own.
impl Deref for Jobs {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// How long claimed work stays with a replica unless configured otherwise.
const DEFAULT_CLAIM_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

/// The three sides of the service over one store and clock.
pub struct Wiring {
    pub services: Services,
    pub jobs: Jobs,
    pub live: LiveEvents,
}

impl Wiring {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::with_claim_lease(store, clock, DEFAULT_CLAIM_LEASE)
    }

    /// With `claim_lease`: how long claimed work stays with this replica.
    pub fn with_claim_lease(
        store: Store,
        clock: Arc<dyn Clock>,
        claim_lease: std::time::Duration,
    ) -> Self {
        let core = Core {
            store: store.clone(),
            clock: clock.clone(),
            wake: Wakeups::default(),
        };
        Self {
            services: Services { core: core.clone() },
            jobs: Jobs {
                core,
                claim_lease: chrono::Duration::from_std(claim_lease)
                    .unwrap_or(chrono::Duration::minutes(5)),
            },
            live: LiveEvents::new(store, clock),
        }
    }
}

impl Services {
    /// The request use cases alone (the command line's key management needs no jobs).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Wiring::new(store, clock).services
    }
}

impl Jobs {
    /// Completes when a notification was queued since the last call (or immediately if one
    /// was queued while nobody waited).
    pub async fn outbox_changed(&self) {
        self.wake.outbox.notified().await;
    }

    /// Completes when a commit left work for the dunning engine.
    pub async fn engine_changed(&self) {
        self.wake.engine.notified().await;
    }

    /// Completes when a payment request was created since the last call.
    pub async fn payment_requests_changed(&self) {
        self.wake.payments.notified().await;
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
