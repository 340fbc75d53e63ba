//! Which invoices a new payment request covers: the ones listed (or all overdue ones in the
//! currency), locked, and checked against the rules with each offending invoice named.

use super::PaymentRequests;
use super::{ListedInvoice, MAX_INVOICES, NewPaymentRequest};
use crate::core::Caller;
use crate::core::InvoiceRef;
use crate::domain::customer::Customer;
use crate::domain::invoice::Invoice;
use crate::domain::query::InvoiceFilter;
use crate::domain::validation::FieldViolation;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::Tx;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

impl PaymentRequests {
    /// The invoices a new request covers, locked, checked against the rules: the customer's,
    /// in the request's currency, overdue.
    pub(super) async fn invoices_to_request(
        &self,
        tx: &Tx,
        caller: Caller,
        customer: &Customer,
        new: &NewPaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, Error> {
        let org_id = caller.organization_id;
        if new.invoices.is_empty() {
            let filter = InvoiceFilter {
                customer_id: Some(customer.id),
                overdue_only: true,
                currency_code: Some(new.currency.code().to_owned()),
                ..Default::default()
            };
            let found = tx
                .list_invoices(org_id, &filter, now, None, MAX_INVOICES as u64 + 1)
                .await?;
            if found.len() > MAX_INVOICES {
                return Err(Error::InvalidRequest {
                    reason: Reason::TooManyInvoices,
                    field: "invoice_external_ids".into(),
                    message: format!(
                        "customer `{}` has more than {MAX_INVOICES} overdue invoices in {}; \
                         list the invoices to include",
                        customer.external_id,
                        new.currency.code()
                    ),
                });
            }
            let ids: Vec<Uuid> = found.iter().map(|i| i.id).collect();
            let mut locked = tx.find_invoices_by_ids(org_id, &ids, true).await?;
            locked.retain(|i| i.is_overdue(now));
            if locked.is_empty() {
                return Err(Error::precondition(
                    Reason::NoOverdueInvoices,
                    format!(
                        "customer `{}` has no overdue invoices in {}",
                        customer.external_id,
                        new.currency.code()
                    ),
                ));
            }
            return Ok(locked);
        }

        // Resolve what was listed, then lock by id (in id order) and check the locked rows.
        let external: Vec<String> = new
            .invoices
            .iter()
            .filter_map(|i| match &i.key {
                InvoiceRef::ExternalId(ext) => Some(ext.clone()),
                InvoiceRef::Id(_) => None,
            })
            .collect();
        let by_external: HashMap<String, Uuid> = tx
            .find_invoices_by_external_ids(org_id, &external, false)
            .await?
            .into_iter()
            .map(|i| (i.external_id, i.id))
            .collect();
        let mut wanted: Vec<(Uuid, &ListedInvoice)> = Vec::new();
        let mut seen = HashSet::new();
        for listed in &new.invoices {
            let id = match &listed.key {
                InvoiceRef::Id(id) => Some(*id),
                InvoiceRef::ExternalId(ext) => by_external.get(ext).copied(),
            };
            match id {
                Some(id) => {
                    if seen.insert(id) {
                        wanted.push((id, listed));
                    }
                }
                // Ids not found at all are reported after the lookup below.
                None => wanted.push((Uuid::nil(), listed)),
            }
        }
        let mut ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        ids.sort();
        ids.dedup();
        let locked: HashMap<Uuid, Invoice> = tx
            .find_invoices_by_ids(org_id, &ids, true)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();

        let shown = |listed: &ListedInvoice| match &listed.key {
            InvoiceRef::Id(id) => format!("invoice {id}"),
            InvoiceRef::ExternalId(ext) => format!("invoice `{ext}`"),
        };
        let mut missing = Vec::new();
        let mut foreign = Vec::new();
        let mut other_currency = Vec::new();
        let mut not_overdue = Vec::new();
        let mut invoices = Vec::new();
        for (id, listed) in wanted {
            let Some(invoice) = locked.get(&id) else {
                missing.push(format!("{} ({})", shown(listed), listed.field));
                continue;
            };
            if invoice.customer_id != customer.id {
                foreign.push(format!("{} ({})", shown(listed), listed.field));
            } else if invoice.currency != new.currency {
                other_currency.push(format!(
                    "{} ({}) is in {}",
                    shown(listed),
                    listed.field,
                    invoice.currency.code()
                ));
            } else if !invoice.is_overdue(now) {
                not_overdue.push(FieldViolation {
                    field: listed.field.clone(),
                    description: format!(
                        "{} is not overdue (state {}, amount due {}, due {})",
                        shown(listed),
                        invoice.state.as_str(),
                        invoice.currency.format(invoice.amount_due_minor()),
                        invoice.due_date
                    ),
                });
            } else {
                invoices.push(invoice.clone());
            }
        }
        if !missing.is_empty() {
            return Err(Error::not_found(
                Reason::InvoiceNotFound,
                format!("no such invoice: {}", missing.join(", ")),
            ));
        }
        if !foreign.is_empty() {
            return Err(Error::InvalidRequest {
                reason: Reason::InvoiceOfOtherCustomer,
                field: "invoice_external_ids".into(),
                message: format!(
                    "not invoices of customer `{}`: {}",
                    customer.external_id,
                    foreign.join(", ")
                ),
            });
        }
        if !other_currency.is_empty() {
            return Err(Error::InvalidRequest {
                reason: Reason::MixedCurrencies,
                field: "invoice_external_ids".into(),
                message: format!(
                    "every invoice must be in {}: {}",
                    new.currency.code(),
                    other_currency.join(", ")
                ),
            });
        }
        if !not_overdue.is_empty() {
            let message = not_overdue
                .iter()
                .map(|v| v.description.clone())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::PreconditionFailures {
                reason: Reason::InvoiceNotOverdue,
                message,
                violations: not_overdue,
            });
        }
        Ok(invoices)
    }
}
