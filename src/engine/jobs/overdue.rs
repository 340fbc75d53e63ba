//! Announces invoices that became overdue (`invoice.overdue`, once per invoice).

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::service::Jobs;
use std::sync::Arc;
use std::time::Duration;

pub struct OverdueScanner {
    pub jobs: Jobs,
    pub metrics: Arc<Metrics>,
    /// How often to look: invoices become overdue with time, not with a commit.
    pub interval: Duration,
}

#[async_trait::async_trait]
impl Job for OverdueScanner {
    fn name(&self) -> &'static str {
        "overdue scanner"
    }

    async fn round(&self) -> Result<usize, Error> {
        match self.jobs.announce_overdue_invoices().await {
            Ok(n) => {
                if n > 0 {
                    self.metrics.count_overdue_announced(n);
                    tracing::info!(announced = n, "invoices became overdue");
                }
                Ok(n)
            }
            Err(e) => {
                self.metrics.count_overdue_scan_failure();
                Err(e)
            }
        }
    }

    fn tick(&self) -> Duration {
        self.interval
    }
}
