//! What a simulation runs over: copies of the stored invoices and hypothetical ones, a
//! simulated customer, and the stand-ins that keep the copies' ids out of what it shows.

use super::{Copy, SimulationRequest};
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::customer::{Customer, CustomerDetails, PaymentMethod};
use crate::domain::invoice::{CollectionMethod, Invoice, InvoiceSync};
use crate::domain::money::Currency;
use crate::domain::notification::Notification;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::Tx;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The simulated customer: a copy of the stored one the request names (or of its stored
/// invoices' customer), else a placeholder.
pub(super) async fn simulated_customer(
    engine: &Core,
    tx: &Tx,
    caller: Caller,
    request: &SimulationRequest,
    stored_invoices: &[Invoice],
) -> Result<(Customer, String), Error> {
    let org = load_organization(tx, caller).await?;
    let stored = match &request.customer_external_id {
        Some(external_id) => Some(
            tx.find_customer_by_external_id(caller.organization_id, external_id)
                .await?
                .filter(|c| !c.is_deleted())
                .ok_or_else(|| {
                    Error::not_found(
                        Reason::CustomerNotFound,
                        format!("no customer with external_id `{external_id}`"),
                    )
                })?,
        ),
        None => customer_of_invoices(tx, caller, stored_invoices).await?,
    };
    let shown_id = stored.as_ref().map_or_else(
        || "simulated-customer".to_owned(),
        |c| c.external_id.clone(),
    );
    let mut details = match stored {
        Some(c) => c.details,
        None => CustomerDetails {
            name: "Simulated customer".into(),
            email: "customer@example.invalid".into(),
            cc_emails: Vec::new(),
            bcc_emails: Vec::new(),
            locale: String::new(),
            timezone: org.settings.timezone,
            sales_rep_email: String::new(),
            payment_method: None,
            policy_code: String::new(),
            dunning_excluded: false,
            dunning_excluded_reason: String::new(),
            tags: Vec::new(),
            metadata: BTreeMap::new(),
        },
    };
    if let Some(tz) = request.timezone {
        details.timezone = tz;
    }
    if request.has_payment_method && details.payment_method.is_none() {
        details.payment_method = Some(PaymentMethod {
            provider: "simulation".into(),
            token: "simulated".into(),
        });
    }
    // A simulation shows what the policy would do: an exclusion would hide all of it.
    details.dunning_excluded = false;
    let now = engine.now();
    let customer = Customer {
        id: new_id(),
        organization_id: caller.organization_id,
        external_id: format!("{STAND_IN_PREFIX}{}", new_id()),
        details,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    tx.insert_customer(&customer).await?;
    Ok((customer, shown_id))
}

/// Copies of the stored invoices and the hypothetical ones, owed by the simulated
/// customer.
pub(super) async fn simulated_invoices(
    engine: &Core,
    tx: &Tx,
    caller: Caller,
    customer: &Customer,
    request: &SimulationRequest,
    stored: &[Invoice],
) -> Result<Vec<Copy>, Error> {
    let now = engine.now();
    let tz = customer.details.timezone;
    let suffix = customer.external_id.clone();
    debug_assert!(suffix.starts_with(STAND_IN_PREFIX));
    let mut syncs: Vec<(String, InvoiceSync)> = Vec::new();
    for invoice in stored {
        syncs.push((
            invoice.external_id.clone(),
            InvoiceSync {
                // As if its amount due had been owed since the due date.
                total_minor: invoice.amount_due_minor(),
                credited_minor: 0,
                number: invoice.number.clone(),
                issue_date: invoice.issue_date,
                collection_method: Some(invoice.collection_method),
                metadata: invoice.metadata.clone(),
                ..hypothetical_sync(&invoice.external_id, invoice.currency, invoice.due_date)
            },
        ));
    }
    for invoice in &request.invoices {
        syncs.push((
            invoice.label.clone(),
            InvoiceSync {
                total_minor: invoice.amount_due_minor,
                collection_method: Some(invoice.collection_method),
                ..hypothetical_sync(&invoice.label, invoice.currency, invoice.due_date)
            },
        ));
    }
    let mut copies = Vec::with_capacity(syncs.len());
    for (label, mut sync) in syncs {
        // Unique beside the stored invoices; the label is what the timeline shows.
        sync.external_id = format!("{label}~{suffix}");
        let invoice = Invoice::create(
            new_id(),
            caller.organization_id,
            customer.id,
            tz,
            &sync,
            now,
        )
        .map_err(|e| Error::field("invoices", e.to_string()))?;
        copies.push(Copy { invoice, label });
    }
    let rows: Vec<Invoice> = copies.iter().map(|c| c.invoice.clone()).collect();
    tx.save_invoices(&rows, &[]).await?;
    Ok(copies)
}

/// The external ids of the simulated customer and invoices start with this (they must be
/// unique beside the stored rows they copy).
pub(super) const STAND_IN_PREFIX: &str = "simulation-";

/// The stand-in external ids of a simulation and the ids the caller knows: emails render
/// the stand-ins, and show the caller's ids once restored.
pub(super) struct StandIns {
    /// Longest first: an invoice's stand-in contains the customer's.
    replacements: Vec<(String, String)>,
}

impl StandIns {
    pub(super) fn new(customer: &Customer, shown_id: String, copies: &[Copy]) -> Self {
        let mut replacements: Vec<(String, String)> = copies
            .iter()
            .map(|c| (c.invoice.external_id.clone(), c.label.clone()))
            .collect();
        replacements.push((customer.external_id.clone(), shown_id));
        Self { replacements }
    }

    pub(super) fn restore(&self, mut email: Notification) -> Notification {
        for text in [
            &mut email.subject,
            &mut email.text_body,
            &mut email.html_body,
            &mut email.customer_external_id,
        ] {
            if text.contains(STAND_IN_PREFIX) {
                for (stand_in, shown) in &self.replacements {
                    *text = text.replace(stand_in.as_str(), shown);
                }
            }
        }
        for id in &mut email.invoice_external_ids {
            if let Some((_, shown)) = self.replacements.iter().find(|(s, _)| s == id) {
                *id = shown.clone();
            }
        }
        email
    }
}

/// The stored invoices to copy, in the order given (NOT_FOUND naming a missing one).
pub(super) async fn stored_invoices(
    tx: &Tx,
    caller: Caller,
    external_ids: &[String],
) -> Result<Vec<Invoice>, Error> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = tx
        .find_invoices_by_external_ids(caller.organization_id, external_ids, false)
        .await?;
    external_ids
        .iter()
        .map(|external_id| {
            let at = found
                .iter()
                .position(|i| &i.external_id == external_id)
                .ok_or_else(|| {
                    Error::not_found(
                        Reason::InvoiceNotFound,
                        format!("no invoice with external_id `{external_id}`"),
                    )
                })?;
            Ok(found.swap_remove(at))
        })
        .collect()
}

/// The one customer `invoices` belong to, if there are any.
pub(super) async fn customer_of_invoices(
    tx: &Tx,
    caller: Caller,
    invoices: &[Invoice],
) -> Result<Option<Customer>, Error> {
    let mut owners: Vec<Uuid> = invoices.iter().map(|i| i.customer_id).collect();
    owners.sort();
    owners.dedup();
    match owners.as_slice() {
        [] => Ok(None),
        [one] => Ok(tx
            .find_customers_by_ids(caller.organization_id, &[*one])
            .await?
            .into_iter()
            .next()
            .filter(|c| !c.is_deleted())),
        _ => Err(Error::field(
            "invoice_external_ids",
            "the invoices belong to more than one customer; simulate them apart",
        )),
    }
}

/// An invoice sync for a simulated invoice: what is not said is the plain default.
pub(super) fn hypothetical_sync(
    label: &str,
    currency: Currency,
    due_date: NaiveDate,
) -> InvoiceSync {
    InvoiceSync {
        external_id: label.to_owned(),
        customer_external_id: String::new(),
        number: label.to_owned(),
        currency,
        total_minor: 0,
        credited_minor: 0,
        issue_date: due_date,
        due_date,
        collection_method: Some(CollectionMethod::Automatic),
        disputed: false,
        dunning_blocked: false,
        dunning_block_reason: String::new(),
        policy_code: String::new(),
        metadata: BTreeMap::new(),
        void: false,
    }
}
