//! Announces invoices that became overdue (`invoice.overdue`, once per invoice).

use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::invoice::Invoice;
use crate::engine::Engine;
use crate::engine::runtime::Job;
use crate::error::Error;
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub struct OverdueScanner {
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    /// How often to look: invoices become overdue with time, not with a commit.
    pub interval: Duration,
}

#[async_trait::async_trait]
impl Job for OverdueScanner {
    fn name(&self) -> &'static str {
        "overdue_scan"
    }

    async fn round(&self) -> Result<usize, Error> {
        match self.engine.announce_overdue_invoices().await {
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

/// Invoices handled per transaction.
const BATCH: u64 = 500;

impl Engine {
    /// Appends `invoice.overdue` for every invoice that became overdue by now and was not
    /// announced yet. Safe to run on several replicas at once: the conditional update that
    /// marks an invoice lets exactly one of them announce it. Returns how many it announced.
    pub async fn announce_overdue_invoices(&self) -> Result<usize, Error> {
        let mut announced = 0;
        loop {
            let now = self.now();
            let tx = self.store.begin().await?;
            let due = tx.invoices_to_announce_overdue(now, BATCH).await?;
            let fetched = due.len();
            // One customer lookup and one event append per organization, not per invoice.
            let mut by_organization: BTreeMap<Uuid, Vec<Invoice>> = BTreeMap::new();
            for invoice in due {
                by_organization
                    .entry(invoice.organization_id)
                    .or_default()
                    .push(invoice);
            }
            for (organization_id, invoices) in by_organization {
                let customer_ids: Vec<Uuid> = invoices.iter().map(|i| i.customer_id).collect();
                let external_ids: HashMap<Uuid, String> = tx
                    .find_customers_by_ids(organization_id, &customer_ids)
                    .await?
                    .into_iter()
                    .map(|c| (c.id, c.external_id))
                    .collect();
                let mut events = Vec::new();
                for invoice in invoices {
                    if tx.mark_overdue_announced(invoice.id).await? {
                        let customer_external_id = external_ids
                            .get(&invoice.customer_id)
                            .map(String::as_str)
                            .unwrap_or_default();
                        events.push(NewEvent::invoice(
                            EventType::InvoiceOverdue,
                            &invoice,
                            customer_external_id,
                            now,
                        ));
                    }
                }
                announced += events.len();
                tx.append_events(organization_id, &events).await?;
            }
            tx.commit().await?;
            if (fetched as u64) < BATCH {
                return Ok(announced);
            }
        }
    }
}
