//! Everything that runs without a request: one runtime loop (`runtime`) drives every
//! background job (`jobs`): the starter (`start`), the step executor (`steps`), the overdue
//! scan, outbox delivery, the payment worker and webhook delivery. The engine writes through
//! `core`; nothing here imports `service`.

pub mod jobs;
pub mod runtime;
pub mod start;
pub mod steps;

use crate::core::Core;
use crate::metrics::Metrics;
use std::ops::Deref;
use std::sync::Arc;

pub use steps::ClaimedProcess;

/// The engine's side of the shared core: rounds of due work claimed with a lease, and the
/// waits for the wake-ups that request use cases fire.
#[derive(Clone)]
pub struct Engine {
    core: Core,
    /// How long claimed work (a due step, a customer to look at, an email being sent) stays
    /// with this replica before another may take it.
    pub(crate) claim_lease: chrono::Duration,
    /// What the engine counts: steps and their lag, claims lost, deliveries, charges.
    pub(crate) metrics: Arc<Metrics>,
}

/// The engine reads the shared core's store and clock as its own.
impl Deref for Engine {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Engine {
    /// The engine over `core`; `claim_lease`: how long claimed work stays with this replica;
    /// `metrics`: where it counts what it does.
    pub fn new(core: Core, claim_lease: std::time::Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            core,
            claim_lease: chrono::Duration::from_std(claim_lease)
                .unwrap_or(chrono::Duration::minutes(5)),
            metrics,
        }
    }

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
