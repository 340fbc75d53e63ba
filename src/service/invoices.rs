//! Invoices: idempotent sync from the billing system, payments, voids and dunning flags.

use super::paging::PageRequest;
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::InvoiceRef;
use crate::core::lookup::load_customer;
use crate::core::lookup::load_invoice;
pub use crate::core::payments::NewPayment;
use crate::core::payments::pay_invoice;
use crate::core::payments::{rule_error, rule_reason};
use crate::domain::customer::Customer;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::invoice::Invoice;
use crate::domain::invoice::InvoiceRuleError;
use crate::domain::invoice::InvoiceState;
use crate::domain::invoice::InvoiceSync;
use crate::domain::invoice::Payment;
use crate::domain::invoice::SyncOutcome;
use crate::domain::query::InvoiceFilter;
use crate::domain::validation::FieldViolation;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::PolicyHolder;
use crate::service::lookup::check_assignable;
use crate::service::lookup::check_assignable_policy;
use crate::service::lookup::policies_named;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Invoices: sync from the billing system, payments, voids and dunning flags.
#[derive(Clone)]
pub struct Invoices {
    core: Arc<Core>,
}

/// Invoices with what callers see alongside them, as of `now` (their customers read at once).
pub(crate) async fn invoice_views<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    invoices: Vec<Invoice>,
    now: DateTime<Utc>,
) -> Result<Vec<InvoiceView>, Error> {
    let mut ids: Vec<Uuid> = invoices.iter().map(|i| i.customer_id).collect();
    ids.sort();
    ids.dedup();
    let customers: HashMap<Uuid, Customer> = conn
        .find_customers_by_ids(caller.organization_id, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    invoices
        .into_iter()
        .map(|invoice| {
            let customer = customers.get(&invoice.customer_id).ok_or_else(|| {
                Error::Internal(format!("invoice {} has no customer", invoice.id))
            })?;
            Ok(InvoiceView::new(invoice, customer, now))
        })
        .collect()
}

impl Invoices {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

/// An invoice with what callers see alongside it: its customer's external id, and whether it
/// is overdue as of the moment it was read (in the customer's time zone).
#[derive(Debug, Clone)]
pub struct InvoiceView {
    pub invoice: Invoice,
    pub customer_external_id: String,
    pub customer_timezone: Tz,
    pub as_of: DateTime<Utc>,
}

impl InvoiceView {
    pub(crate) fn new(invoice: Invoice, customer: &Customer, as_of: DateTime<Utc>) -> Self {
        Self {
            invoice,
            customer_external_id: customer.external_id.clone(),
            customer_timezone: customer.details.timezone,
            as_of,
        }
    }

    pub fn is_overdue(&self) -> bool {
        self.invoice.is_overdue(self.as_of)
    }

    pub fn days_overdue(&self) -> i64 {
        self.invoice
            .days_overdue(self.as_of, self.customer_timezone)
    }
}

/// What one upsert did.
#[derive(Debug, Clone)]
pub struct UpsertedInvoice {
    pub view: InvoiceView,
    pub outcome: SyncOutcome,
}

/// The flags UpdateInvoice may change.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFlags {
    pub disputed: Option<bool>,
    pub dunning_blocked: Option<bool>,
    pub dunning_block_reason: Option<String>,
    pub policy_code: Option<String>,
}

/// List filters as the caller gives them (customer by external id or id).
#[derive(Debug, Clone, Default)]
pub struct InvoiceQuery {
    pub customer: Option<CustomerRef>,
    pub filter: InvoiceFilter,
}

/// Events that a change from `before` to `after` calls for.
fn change_events(
    before: Option<&Invoice>,
    after: &Invoice,
    customer_external_id: &str,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let was = before.map(|b| b.state);
    let became = |state| after.state == state && was != Some(state);
    let mut events = Vec::new();
    if before.is_none() {
        events.push(NewEvent::invoice(
            EventType::InvoiceCreated,
            after,
            customer_external_id,
            now,
        ));
    }
    if became(InvoiceState::Paid) {
        events.push(NewEvent::invoice(
            EventType::InvoicePaid,
            after,
            customer_external_id,
            now,
        ));
    } else if became(InvoiceState::Void) {
        events.push(NewEvent::invoice(
            EventType::InvoiceVoided,
            after,
            customer_external_id,
            now,
        ));
    } else if before.is_some() {
        events.push(NewEvent::invoice(
            EventType::InvoiceUpdated,
            after,
            customer_external_id,
            now,
        ));
    }
    events
}

impl Invoices {
    /// Applies a batch of invoice syncs all-or-nothing. `path(i)` names item `i` in errors
    /// (`invoice` or `invoices[3]`).
    pub async fn upsert_invoices(
        &self,
        caller: Caller,
        syncs: &[InvoiceSync],
        path: &(dyn Fn(usize) -> String + Sync),
    ) -> Result<Vec<UpsertedInvoice>, Error> {
        let tx = self.core.store.begin().await?;
        let org_id = caller.organization_id;

        let mut customer_ids: Vec<String> = syncs
            .iter()
            .map(|s| s.customer_external_id.clone())
            .collect();
        customer_ids.sort();
        customer_ids.dedup();
        let customers: HashMap<String, Customer> = tx
            .find_customers_by_external_ids(org_id, &customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.external_id.clone(), c))
            .collect();
        let invoice_ids: Vec<String> = syncs.iter().map(|s| s.external_id.clone()).collect();
        let mut existing: HashMap<String, Invoice> = tx
            .find_invoices_by_external_ids(org_id, &invoice_ids, true)
            .await?
            .into_iter()
            .map(|i| (i.external_id.clone(), i))
            .collect();

        let policies =
            policies_named(&tx, caller, syncs.iter().map(|s| s.policy_code.as_str())).await?;

        let now = self.core.now();
        let mut missing = Vec::new();
        let mut refused = Vec::new();
        let mut results = Vec::with_capacity(syncs.len());
        let mut created = Vec::new();
        let mut updated = Vec::new();
        let mut events = Vec::new();
        for (index, sync) in syncs.iter().enumerate() {
            let Some(customer) = customers.get(&sync.customer_external_id) else {
                missing.push(format!(
                    "{}.customer_external_id `{}`",
                    path(index),
                    sync.customer_external_id
                ));
                continue;
            };
            if customer.is_deleted() {
                refused.push((
                    Reason::CustomerDeleted,
                    FieldViolation {
                        field: format!("{}.customer_external_id", path(index)),
                        description: format!("customer `{}` was deleted", customer.external_id),
                    },
                ));
                continue;
            }
            let current_policy = existing
                .get(&sync.external_id)
                .map_or("", |i| i.policy_code.as_str());
            check_assignable(
                policies.get(&sync.policy_code),
                &sync.policy_code,
                current_policy,
                PolicyHolder::Invoice {
                    field: &format!("{}.policy_code", path(index)),
                },
            )?;
            let tz = customer.details.timezone;
            let (invoice, outcome, before) = match existing.remove(&sync.external_id) {
                Some(mut invoice) => {
                    let before = invoice.clone();
                    match invoice.sync(customer.id, tz, sync, now) {
                        Ok(outcome) => (invoice, outcome, Some(before)),
                        Err(e) => {
                            refused.push((
                                rule_reason(&e),
                                FieldViolation {
                                    field: path(index),
                                    description: e.to_string(),
                                },
                            ));
                            continue;
                        }
                    }
                }
                None => {
                    let invoice = Invoice::create(new_id(), org_id, customer.id, tz, sync, now)
                        .map_err(rule_error)?;
                    (invoice, SyncOutcome::Created, None)
                }
            };
            if outcome != SyncOutcome::Unchanged {
                events.extend(change_events(
                    before.as_ref(),
                    &invoice,
                    &customer.external_id,
                    now,
                ));
                match outcome {
                    SyncOutcome::Created => created.push(invoice.clone()),
                    _ => updated.push(invoice.clone()),
                }
            }
            results.push(UpsertedInvoice {
                view: InvoiceView::new(invoice, customer, now),
                outcome,
            });
        }
        if !missing.is_empty() {
            return Err(Error::not_found(
                Reason::CustomerNotFound,
                format!("no customer for {}", missing.join(", ")),
            ));
        }
        if !refused.is_empty() {
            let reason = if refused.iter().all(|(r, _)| *r == refused[0].0) {
                refused[0].0
            } else {
                Reason::InvoiceChangeRefused
            };
            let violations: Vec<FieldViolation> = refused.into_iter().map(|(_, v)| v).collect();
            let message = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::PreconditionFailures {
                reason,
                message,
                violations,
            });
        }
        if !created.is_empty() || !updated.is_empty() {
            tx.save_invoices(&created, &updated).await?;
            events.extend(
                self.core
                    .reconcile_payment_requests(&tx, caller, &updated)
                    .await?,
            );
            let changed: Vec<Invoice> = created.iter().chain(&updated).cloned().collect();
            events.extend(self.core.invoices_changed(&tx, caller, &changed).await?);
            tx.append_events(org_id, &events).await?;
            tx.commit().await?;
        }
        Ok(results)
    }

    pub async fn get_invoice(
        &self,
        caller: Caller,
        key: &InvoiceRef,
    ) -> Result<InvoiceView, Error> {
        let invoice = load_invoice(&self.core.store, caller, key, false).await?;
        self.view(&self.core.store, caller, invoice).await
    }

    async fn view<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        invoice: Invoice,
    ) -> Result<InvoiceView, Error> {
        let customer = load_customer(conn, caller, &CustomerRef::Id(invoice.customer_id)).await?;
        Ok(InvoiceView::new(invoice, &customer, self.core.now()))
    }

    /// A page of invoices in creation order.
    pub async fn list_invoices(
        &self,
        caller: Caller,
        query: &InvoiceQuery,
        page: &PageRequest,
    ) -> Result<(Vec<InvoiceView>, String), Error> {
        let mut filter = query.filter.clone();
        if let Some(customer) = &query.customer {
            filter.customer_id = Some(load_customer(&self.core.store, caller, customer).await?.id);
        }
        let after = page.after_id(&(caller.organization_id, &filter))?;
        let rows = self
            .core
            .store
            .list_invoices(
                caller.organization_id,
                &filter,
                self.core.now(),
                after,
                page.fetch_limit(),
            )
            .await?;
        let (rows, token) = page.finish(rows, &(caller.organization_id, &filter), |i| {
            i.id.to_string()
        });
        Ok((
            invoice_views(&self.core.store, caller, rows, self.core.now()).await?,
            token,
        ))
    }

    /// Records a payment. The payment's external id makes retries harmless: recording the same
    /// payment again returns it without paying twice.
    pub async fn record_payment(
        &self,
        caller: Caller,
        key: &InvoiceRef,
        payment: NewPayment,
    ) -> Result<(InvoiceView, Payment), Error> {
        let tx = self.core.store.begin().await?;
        let mut invoice = load_invoice(&tx, caller, key, true).await?;
        if let Some(existing) = tx
            .find_payment_by_external_id(caller.organization_id, &payment.external_id)
            .await?
        {
            let same = existing.invoice_id == invoice.id
                && existing.amount_minor == payment.amount_minor
                && existing.currency == payment.currency;
            if !same {
                return Err(Error::already_exists(
                    Reason::PaymentAlreadyExists,
                    format!(
                        "payment `{}` was already recorded with other details",
                        payment.external_id
                    ),
                ));
            }
            return Ok((self.view(&tx, caller, invoice).await?, existing));
        }
        let now = self.core.now();
        let customer = load_customer(&tx, caller, &CustomerRef::Id(invoice.customer_id)).await?;
        let (recorded, mut events) =
            pay_invoice(&tx, &mut invoice, &customer.external_id, payment, now).await?;
        events.extend(
            self.core
                .reconcile_payment_requests(&tx, caller, std::slice::from_ref(&invoice))
                .await?,
        );
        events.extend(
            self.core
                .invoices_changed(&tx, caller, std::slice::from_ref(&invoice))
                .await?,
        );
        let view = InvoiceView::new(invoice, &customer, now);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok((view, recorded))
    }

    /// Voids an open invoice, recording `reason` in its `invoice.voided` event; voiding a void
    /// invoice returns it unchanged.
    pub async fn void_invoice(
        &self,
        caller: Caller,
        key: &InvoiceRef,
        reason: &str,
    ) -> Result<InvoiceView, Error> {
        self.change_invoice(caller, key, reason, |invoice, now| {
            invoice.void(now).map_err(rule_error)
        })
        .await
    }

    /// Changes the dunning flags of an invoice.
    pub async fn update_invoice_flags(
        &self,
        caller: Caller,
        key: &InvoiceRef,
        flags: &InvoiceFlags,
    ) -> Result<InvoiceView, Error> {
        if let Some(code) = &flags.policy_code {
            let current = load_invoice(&self.core.store, caller, key, false).await?;
            check_assignable_policy(
                &self.core.store,
                caller,
                code,
                &current.policy_code,
                PolicyHolder::Invoice {
                    field: "invoice.policy_code",
                },
            )
            .await?;
        }
        self.change_invoice(caller, key, "", |invoice, now| {
            if invoice.state.is_final() {
                return Err(rule_error(InvoiceRuleError::NotOpen(
                    invoice.state.as_str(),
                )));
            }
            if let Some(disputed) = flags.disputed {
                invoice.disputed = disputed;
            }
            if let Some(blocked) = flags.dunning_blocked {
                invoice.dunning_blocked = blocked;
            }
            if let Some(reason) = &flags.dunning_block_reason {
                invoice.dunning_block_reason = reason.clone();
            }
            if let Some(code) = &flags.policy_code {
                invoice.policy_code = code.clone();
            }
            invoice.updated_at = now;
            Ok(())
        })
        .await
    }

    /// Loads, changes, saves and records an invoice in one transaction; appends events only if
    /// something changed.
    async fn change_invoice(
        &self,
        caller: Caller,
        key: &InvoiceRef,
        reason: &str,
        change: impl FnOnce(&mut Invoice, DateTime<Utc>) -> Result<(), Error>,
    ) -> Result<InvoiceView, Error> {
        let tx = self.core.store.begin().await?;
        let mut invoice = load_invoice(&tx, caller, key, true).await?;
        let before = invoice.clone();
        let now = self.core.now();
        change(&mut invoice, now)?;
        let mut unchanged = invoice.clone();
        unchanged.updated_at = before.updated_at;
        if unchanged == before {
            return self.view(&tx, caller, before).await;
        }
        tx.save_invoices(&[], std::slice::from_ref(&invoice))
            .await?;
        let view = self.view(&tx, caller, invoice).await?;
        let mut events = change_events(
            Some(&before),
            &view.invoice,
            &view.customer_external_id,
            now,
        )
        .into_iter()
        .map(|e| e.with_reason(reason))
        .collect::<Vec<_>>();
        events.extend(
            self.core
                .reconcile_payment_requests(&tx, caller, std::slice::from_ref(&view.invoice))
                .await?,
        );
        events.extend(
            self.core
                .invoices_changed(&tx, caller, std::slice::from_ref(&view.invoice))
                .await?,
        );
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Payments recorded against an invoice, oldest first.
    pub async fn list_payments(
        &self,
        caller: Caller,
        key: &InvoiceRef,
        page: &PageRequest,
    ) -> Result<(Vec<Payment>, String), Error> {
        let invoice = load_invoice(&self.core.store, caller, key, false).await?;
        let after = page.after_id(&(caller.organization_id, &invoice.id))?;
        let rows = self
            .core
            .store
            .list_payments(invoice.id, after, page.fetch_limit())
            .await?;
        Ok(
            page.finish(rows, &(caller.organization_id, &invoice.id), |p| {
                p.id.to_string()
            }),
        )
    }
}
