//! Request use cases. Each one validates business rules, owns its transaction, appends its
//! events in that transaction, and returns domain types. What the engine writes too is in
//! `core`; a request that runs the engine's own executor calls `engine::steps`.

pub mod auth;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod notifications;
pub mod organizations;
pub mod paging;
pub mod payment_requests;
pub mod policies;
pub mod processes;
pub mod report;
pub mod webhooks;

use crate::clock::Clock;
use crate::core::Core;
pub use crate::core::{Actor, Caller, CustomerRef, InvoiceRef};
use crate::storage::Store;
pub use events::LiveEvents;
use std::ops::Deref;
use std::sync::Arc;

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

impl Services {
    /// The request use cases over `core`.
    pub fn with_core(core: Core) -> Self {
        Self { core }
    }

    /// The request use cases alone (the command line's key management needs no engine).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::with_core(Core::new(store, clock))
    }
}
