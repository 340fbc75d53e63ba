//! Request use cases, one struct per resource (`Customers`, `Invoices`, `Policies`,
//! `Processes`, ...), each holding the shared `Core`. Each use case validates business rules,
//! owns its transaction, appends its events in that transaction, and returns domain types. What
//! the engine writes too is in `core`; a request that runs the engine's own executor
//! (AdvanceProcess, InformSales, EscalateProcess, SimulatePolicy) calls `engine::steps`.
//! Loaders more than one use case needs are in `lookup`.

pub mod auth;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod lookup;
pub mod notifications;
pub mod organizations;
pub mod paging;
pub mod payment_requests;
pub mod policies;
pub mod processes;
pub mod report;
pub mod throttle;
pub mod webhooks;

use crate::clock::Clock;
use crate::core::Core;
pub use crate::core::{Actor, Caller, CustomerRef, InvoiceRef};
use crate::domain::target::TargetPolicy;
use crate::storage::Store;
pub use auth::Auth;
pub use customers::Customers;
pub use events::{Events, LiveEvents};
pub use invoices::Invoices;
pub use notifications::Notifications;
pub use organizations::Organizations;
pub use payment_requests::PaymentRequests;
pub use policies::Policies;
pub use processes::Processes;
pub use report::Report;
use std::sync::Arc;
pub use webhooks::Webhooks;

/// Every request use case over one core: what the gRPC services and the command line pick
/// theirs from.
#[derive(Clone)]
pub struct Services {
    pub auth: Auth,
    pub customers: Customers,
    pub events: Events,
    pub invoices: Invoices,
    pub notifications: Notifications,
    pub organizations: Organizations,
    pub payment_requests: PaymentRequests,
    pub policies: Policies,
    pub processes: Processes,
    pub report: Report,
    pub webhooks: Webhooks,
    /// Where the service may send requests or customers (DUNNING_ALLOW_PRIVATE_TARGETS).
    pub targets: TargetPolicy,
    store: Store,
    /// False while the process starts (its database is being migrated).
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl Services {
    /// The request use cases over `core`, with `limits` on callers.
    pub fn with_core(core: Core, limits: throttle::Limits, targets: TargetPolicy) -> Self {
        let store = core.store().clone();
        let core = Arc::new(core);
        Self {
            auth: Auth::new(core.clone(), limits),
            customers: Customers::new(core.clone()),
            events: Events::new(core.clone()),
            invoices: Invoices::new(core.clone()),
            notifications: Notifications::new(core.clone()),
            organizations: Organizations::new(core.clone()),
            payment_requests: PaymentRequests::new(core.clone()),
            policies: Policies::new(core.clone()),
            processes: Processes::new(core.clone()),
            report: Report::new(core.clone()),
            webhooks: Webhooks::new(core),
            targets,
            store,
            started: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// The request use cases alone (the command line's key management needs no engine).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::with_core(
            Core::new(store, clock),
            throttle::Limits::default(),
            TargetPolicy::default(),
        )
    }

    /// Whether the process has started: requests are answered only then.
    pub fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the process started or still starting (the composition root does).
    pub fn set_started(&self, started: bool) {
        self.started
            .store(started, std::sync::atomic::Ordering::Release);
    }

    /// The store the use cases share (the composition root closes it on shutdown).
    pub fn store(&self) -> &Store {
        &self.store
    }
}
