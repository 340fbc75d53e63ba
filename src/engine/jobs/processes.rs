//! The dunning engine: starts processes for customers whose invoices changed or became due,
//! and runs due steps. It reads "now" from the injected clock every round and ticks every
//! second, so due work is noticed within a second of its time, also when the clock jumps.

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::service::Services;

pub struct DunningEngine {
    pub services: Services,
}

#[async_trait::async_trait]
impl Job for DunningEngine {
    fn name(&self) -> &'static str {
        "dunning engine"
    }

    async fn round(&self) -> Result<usize, Error> {
        let looked_at = self.services.start_due_processes().await?;
        let stepped = self.services.run_due_steps().await?;
        Ok(looked_at + stepped)
    }

    async fn woken(&self) {
        self.services.engine_changed().await
    }
}
