//! Announcing invoices that became overdue: `invoice.overdue`, once per invoice.

use super::Jobs;
use crate::domain::event::{EventType, NewEvent};
use crate::domain::invoice::Invoice;
use crate::error::Error;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Invoices handled per transaction.
const BATCH: u64 = 500;

impl Jobs {
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
