//! Announcing invoices that became overdue: `invoice.overdue`, once per invoice.

use super::Services;
use crate::domain::event::{EventType, NewEvent};
use crate::error::Error;
use std::collections::HashMap;

/// Invoices handled per transaction.
const BATCH: u64 = 500;

impl Services {
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
            let mut customer_ids: Vec<_> = due
                .iter()
                .map(|i| (i.organization_id, i.customer_id))
                .collect();
            customer_ids.sort();
            customer_ids.dedup();
            let mut external_ids = HashMap::new();
            for (organization_id, customer_id) in customer_ids {
                if let Some(c) = tx.find_customer(organization_id, customer_id).await? {
                    external_ids.insert(customer_id, c.external_id);
                }
            }
            for invoice in due {
                if tx.mark_overdue_announced(invoice.id).await? {
                    let customer_external_id = external_ids
                        .get(&invoice.customer_id)
                        .map(String::as_str)
                        .unwrap_or_default();
                    let event = NewEvent::invoice(
                        EventType::InvoiceOverdue,
                        &invoice,
                        customer_external_id,
                        now,
                    );
                    tx.append_events(invoice.organization_id, &[event]).await?;
                    announced += 1;
                }
            }
            tx.commit().await?;
            if (fetched as u64) < BATCH {
                return Ok(announced);
            }
        }
    }
}
