//! The dunning engine: starts processes for customers whose invoices changed or became due,
//! and runs due steps. It reads "now" from the injected clock every round and ticks every
//! second, so due work is noticed within a second of its time, also when the clock jumps.

use crate::engine::Engine;
use crate::engine::runtime::Job;
use crate::error::Error;
use std::time::Duration;

pub struct DunningEngine {
    pub engine: Engine,
}

#[async_trait::async_trait]
impl Job for DunningEngine {
    fn name(&self) -> &'static str {
        "engine"
    }

    async fn round(&self) -> Result<usize, Error> {
        let looked_at = self.engine.start_due_processes().await?;
        let stepped = self.engine.run_due_steps().await?;
        Ok(looked_at + stepped)
    }

    async fn woken(&self) {
        self.engine.engine_changed().await
    }

    /// Until the next step falls due when that is within the tick, so that a step runs on
    /// time rather than up to a tick late; never longer than the tick (the clock may move).
    async fn idle_wait(&self) -> Duration {
        let tick = self.tick();
        match self.engine.engine_work_due_in().await {
            Ok(Some(wait)) => wait.min(tick),
            _ => tick,
        }
    }
}
