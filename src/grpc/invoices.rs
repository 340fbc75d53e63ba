//! InvoiceService handlers.

use super::convert::{self, timestamp};
use super::{Api, authenticate};
use crate::domain::invoice::{CollectionMethod, InvoiceState, InvoiceSync, Payment, SyncOutcome};
use crate::domain::query::InvoiceFilter;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::proto::invoice_service_server::InvoiceService;
use crate::service::invoices::NewPayment;
use crate::service::invoices::{InvoiceFlags, InvoiceQuery, InvoiceView};
use std::collections::HashMap;
use tonic::{Request, Response, Status};

/// Most invoices in one BatchUpsertInvoices call.
pub const MAX_BATCH: usize = 1000;

/// A wire invoice as a validated sync; violations are named relative to the invoice.
fn invoice_sync(i: &proto::Invoice, v: &mut Violations) -> Option<InvoiceSync> {
    let external_id = v.check("external_id", validation::external_id(&i.external_id));
    let customer = v.check(
        "customer_external_id",
        validation::external_id(&i.customer_external_id),
    );
    let number = v.check("number", validation::text(&i.number));
    let currency = convert::currency("currency_code", &i.currency_code, v);
    let total = convert::amount("total_amount", &i.total_amount, currency, v);
    let credited = if i.credited_amount.is_empty() {
        Some(0)
    } else {
        convert::amount("credited_amount", &i.credited_amount, currency, v)
    };
    if let (Some(total), Some(credited)) = (total, credited)
        && credited > total
    {
        v.add("credited_amount", "must not exceed total_amount");
    }
    let due_date = v.check("due_date", validation::date(&i.due_date));
    let issue_date = if i.issue_date.is_empty() {
        due_date
    } else {
        v.check("issue_date", validation::date(&i.issue_date))
    };
    if let (Some(issue), Some(due)) = (issue_date, due_date)
        && due < issue
    {
        v.add("due_date", "must not be before issue_date");
    }
    let void = match proto::InvoiceState::try_from(i.state) {
        Ok(proto::InvoiceState::Unspecified | proto::InvoiceState::Open) => false,
        Ok(proto::InvoiceState::Void) => true,
        _ => {
            v.add(
                "state",
                "may only be OPEN or VOID on input (payments settle invoices)",
            );
            false
        }
    };
    let collection_method = match proto::CollectionMethod::try_from(i.collection_method) {
        Ok(proto::CollectionMethod::Unspecified) => None,
        Ok(proto::CollectionMethod::Automatic) => Some(CollectionMethod::Automatic),
        Ok(proto::CollectionMethod::Manual) => Some(CollectionMethod::Manual),
        Err(_) => {
            v.add("collection_method", "is not a known collection method");
            None
        }
    };
    let reason = v.check(
        "dunning_block_reason",
        validation::text(&i.dunning_block_reason),
    );
    let policy_code = if i.policy_code.is_empty() {
        Some(String::new())
    } else {
        v.check("policy_code", validation::external_id(&i.policy_code))
    };
    validation::metadata("metadata", i.metadata.iter(), v);
    Some(InvoiceSync {
        external_id: external_id?,
        customer_external_id: customer?,
        number: number?,
        currency: currency?,
        total_minor: total?,
        credited_minor: credited?,
        issue_date: issue_date?,
        due_date: due_date?,
        collection_method,
        disputed: i.disputed,
        dunning_blocked: i.dunning_blocked,
        dunning_block_reason: reason?,
        policy_code: policy_code?,
        metadata: i
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        void,
    })
}

fn state_to_proto(state: InvoiceState) -> proto::InvoiceState {
    match state {
        InvoiceState::Open => proto::InvoiceState::Open,
        InvoiceState::Paid => proto::InvoiceState::Paid,
        InvoiceState::Void => proto::InvoiceState::Void,
        InvoiceState::WrittenOff => proto::InvoiceState::WrittenOff,
    }
}

pub fn invoice_to_proto(view: InvoiceView) -> proto::Invoice {
    let overdue = view.is_overdue();
    let days_overdue = view.days_overdue() as i32;
    let i = view.invoice;
    let c = i.currency;
    proto::Invoice {
        id: i.id.to_string(),
        external_id: i.external_id.clone(),
        customer_id: i.customer_id.to_string(),
        customer_external_id: view.customer_external_id,
        number: i.number.clone(),
        currency_code: c.code().to_owned(),
        total_amount: c.format(i.total_minor),
        paid_amount: c.format(i.paid_minor),
        credited_amount: c.format(i.credited_minor),
        amount_due: c.format(i.amount_due_minor()),
        issue_date: i.issue_date.to_string(),
        due_date: i.due_date.to_string(),
        state: state_to_proto(i.state) as i32,
        collection_method: match i.collection_method {
            CollectionMethod::Automatic => proto::CollectionMethod::Automatic,
            CollectionMethod::Manual => proto::CollectionMethod::Manual,
        } as i32,
        disputed: i.disputed,
        dunning_blocked: i.dunning_blocked,
        dunning_block_reason: i.dunning_block_reason,
        policy_code: i.policy_code,
        overdue,
        days_overdue,
        metadata: i.metadata.into_iter().collect(),
        create_time: timestamp(i.created_at),
        update_time: timestamp(i.updated_at),
        paid_time: convert::optional_timestamp(i.paid_at),
    }
}

fn payment_to_proto(p: Payment, invoice_external_id: &str) -> proto::Payment {
    proto::Payment {
        id: p.id.to_string(),
        external_id: p.external_id,
        invoice_id: p.invoice_id.to_string(),
        invoice_external_id: invoice_external_id.to_owned(),
        amount: p.currency.format(p.amount_minor),
        currency_code: p.currency.code().to_owned(),
        paid_time: timestamp(p.paid_at),
        reference: p.reference,
        create_time: timestamp(p.created_at),
    }
}

/// Validates a batch, naming each bad field `invoices[i].field`; duplicates are refused
/// because the order in which two versions of one invoice apply would be a guess.
fn batch_syncs(
    invoices: &[proto::Invoice],
    path: &(dyn Fn(usize) -> String + Sync),
) -> Result<Vec<InvoiceSync>, Error> {
    let mut all = Violations::new();
    let mut syncs = Vec::with_capacity(invoices.len());
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (index, invoice) in invoices.iter().enumerate() {
        let mut v = Violations::new();
        if let Some(first) = first_index.insert(invoice.external_id.as_str(), index) {
            v.add("external_id", format!("duplicates {}", path(first)));
        }
        let sync = invoice_sync(invoice, &mut v);
        all.extend_prefixed(&path(index), v);
        syncs.extend(sync);
    }
    all.finish()?;
    Ok(syncs)
}

#[tonic::async_trait]
impl InvoiceService for Api {
    async fn upsert_invoice(
        &self,
        request: Request<proto::UpsertInvoiceRequest>,
    ) -> Result<Response<proto::UpsertInvoiceResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let Some(invoice) = request.into_inner().invoice else {
            return Err(Error::field("invoice", "is required").into());
        };
        let path = |_: usize| "invoice".to_owned();
        let syncs = batch_syncs(std::slice::from_ref(&invoice), &path)?;
        let mut done = self
            .services
            .invoices
            .upsert_invoices(caller, &syncs, &path)
            .await?;
        let upserted = done
            .pop()
            .ok_or_else(|| Error::Internal("upsert returned nothing".into()))?;
        Ok(Response::new(proto::UpsertInvoiceResponse {
            created: upserted.outcome == SyncOutcome::Created,
            invoice: Some(invoice_to_proto(upserted.view)),
        }))
    }

    async fn batch_upsert_invoices(
        &self,
        request: Request<proto::BatchUpsertInvoicesRequest>,
    ) -> Result<Response<proto::BatchUpsertInvoicesResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let invoices = request.into_inner().invoices;
        if invoices.is_empty() || invoices.len() > MAX_BATCH {
            return Err(
                Error::field("invoices", format!("must hold 1 to {MAX_BATCH} invoices")).into(),
            );
        }
        let path = |i: usize| format!("invoices[{i}]");
        let syncs = batch_syncs(&invoices, &path)?;
        let done = self
            .services
            .invoices
            .upsert_invoices(caller, &syncs, &path)
            .await?;
        let count = |o: SyncOutcome| done.iter().filter(|u| u.outcome == o).count() as i32;
        Ok(Response::new(proto::BatchUpsertInvoicesResponse {
            created_count: count(SyncOutcome::Created),
            updated_count: count(SyncOutcome::Updated),
            unchanged_count: count(SyncOutcome::Unchanged),
            invoices: done.into_iter().map(|u| invoice_to_proto(u.view)).collect(),
        }))
    }

    async fn get_invoice(
        &self,
        request: Request<proto::GetInvoiceRequest>,
    ) -> Result<Response<proto::GetInvoiceResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let key = convert::invoice_key(request.get_ref().invoice.as_ref(), "")?;
        let view = self.services.invoices.get_invoice(caller, &key).await?;
        Ok(Response::new(proto::GetInvoiceResponse {
            invoice: Some(invoice_to_proto(view)),
        }))
    }

    async fn list_invoices(
        &self,
        request: Request<proto::ListInvoicesRequest>,
    ) -> Result<Response<proto::ListInvoicesResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        let mut v = Violations::new();
        let customer = convert::customer_filter(&req.customer_id, &req.customer_external_id)?;
        let state = match proto::InvoiceState::try_from(req.state) {
            Ok(proto::InvoiceState::Unspecified) => None,
            Ok(proto::InvoiceState::Open) => Some(InvoiceState::Open),
            Ok(proto::InvoiceState::Paid) => Some(InvoiceState::Paid),
            Ok(proto::InvoiceState::Void) => Some(InvoiceState::Void),
            Ok(proto::InvoiceState::WrittenOff) => Some(InvoiceState::WrittenOff),
            Err(_) => {
                v.add("state", "is not a known invoice state");
                None
            }
        };
        let currency_code = (!req.currency_code.is_empty())
            .then(|| convert::currency("currency_code", &req.currency_code, &mut v))
            .flatten()
            .map(|c| c.code().to_owned());
        let date = |field: &str, text: &str, v: &mut Violations| {
            (!text.is_empty())
                .then(|| v.check(field, validation::date(text)))
                .flatten()
        };
        let due_date_from = date("due_date_from", &req.due_date_from, &mut v);
        let due_date_to = date("due_date_to", &req.due_date_to, &mut v);
        if let (Some(from), Some(to)) = (due_date_from, due_date_to)
            && from > to
        {
            v.add("due_date_to", "must not be before due_date_from");
        }
        v.finish().map_err(Error::from)?;
        let query = InvoiceQuery {
            customer,
            filter: InvoiceFilter {
                customer_id: None,
                state,
                overdue_only: req.overdue_only,
                currency_code,
                due_date_from,
                due_date_to,
            },
        };
        let (views, next_page_token) = self
            .services
            .invoices
            .list_invoices(caller, &query, &page)
            .await?;
        Ok(Response::new(proto::ListInvoicesResponse {
            invoices: views.into_iter().map(invoice_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn record_payment(
        &self,
        request: Request<proto::RecordPaymentRequest>,
    ) -> Result<Response<proto::RecordPaymentResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let key = convert::invoice_key(req.invoice.as_ref(), "invoice_")?;
        let mut v = Violations::new();
        let external_id = v.check(
            "payment_external_id",
            validation::external_id(&req.payment_external_id),
        );
        let currency = convert::currency("currency_code", &req.currency_code, &mut v);
        let amount = convert::amount("amount", &req.amount, currency, &mut v);
        if amount == Some(0) {
            v.add("amount", "must be greater than zero");
        }
        let paid_at = req
            .paid_time
            .as_ref()
            .and_then(|t| convert::instant("paid_time", t, &mut v));
        let reference = v.check("reference", validation::text(&req.reference));
        v.finish().map_err(Error::from)?;
        let payment = NewPayment {
            external_id: external_id.unwrap_or_default(),
            currency: currency.ok_or_else(|| Error::field("currency_code", "is required"))?,
            amount_minor: amount.unwrap_or_default(),
            paid_at,
            reference: reference.unwrap_or_default(),
        };
        let (view, payment) = self
            .services
            .invoices
            .record_payment(caller, &key, payment)
            .await?;
        let payment = payment_to_proto(payment, &view.invoice.external_id);
        Ok(Response::new(proto::RecordPaymentResponse {
            invoice: Some(invoice_to_proto(view)),
            payment: Some(payment),
        }))
    }

    async fn void_invoice(
        &self,
        request: Request<proto::VoidInvoiceRequest>,
    ) -> Result<Response<proto::VoidInvoiceResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.get_ref();
        let key = convert::invoice_key(req.invoice.as_ref(), "")?;
        let reason = validation::text(&req.reason).map_err(|e| Error::field("reason", e))?;
        let view = self
            .services
            .invoices
            .void_invoice(caller, &key, &reason)
            .await?;
        Ok(Response::new(proto::VoidInvoiceResponse {
            invoice: Some(invoice_to_proto(view)),
        }))
    }

    async fn update_invoice(
        &self,
        request: Request<proto::UpdateInvoiceRequest>,
    ) -> Result<Response<proto::UpdateInvoiceResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let Some(invoice) = req.invoice else {
            return Err(Error::field("invoice", "is required").into());
        };
        let key = convert::invoice_ref(Some(&invoice.id), Some(&invoice.external_id), "invoice.")?;
        let mut flags = InvoiceFlags::default();
        let mut v = Violations::new();
        for path in convert::mask_paths(req.update_mask.as_ref())? {
            match path.as_str() {
                "disputed" => flags.disputed = Some(invoice.disputed),
                "dunning_blocked" => flags.dunning_blocked = Some(invoice.dunning_blocked),
                "dunning_block_reason" => {
                    flags.dunning_block_reason = v.check(
                        "invoice.dunning_block_reason",
                        validation::text(&invoice.dunning_block_reason),
                    )
                }
                "policy_code" if invoice.policy_code.is_empty() => {
                    flags.policy_code = Some(String::new())
                }
                "policy_code" => {
                    flags.policy_code = v.check(
                        "invoice.policy_code",
                        validation::external_id(&invoice.policy_code),
                    )
                }
                other => v.add(
                    "update_mask",
                    format!("`{other}` is not an updatable invoice field (disputed, dunning_blocked, dunning_block_reason, policy_code)"),
                ),
            }
        }
        v.finish().map_err(Error::from)?;
        let view = self
            .services
            .invoices
            .update_invoice_flags(caller, &key, &flags)
            .await?;
        Ok(Response::new(proto::UpdateInvoiceResponse {
            invoice: Some(invoice_to_proto(view)),
        }))
    }

    async fn list_payments(
        &self,
        request: Request<proto::ListPaymentsRequest>,
    ) -> Result<Response<proto::ListPaymentsResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let key = convert::invoice_key(req.invoice.as_ref(), "invoice_")?;
        let page = convert::page(req.page_size, req.page_token)?;
        let invoice = self.services.invoices.get_invoice(caller, &key).await?;
        let (payments, next_page_token) = self
            .services
            .invoices
            .list_payments(caller, &key, &page)
            .await?;
        Ok(Response::new(proto::ListPaymentsResponse {
            payments: payments
                .into_iter()
                .map(|p| payment_to_proto(p, &invoice.invoice.external_id))
                .collect(),
            next_page_token,
        }))
    }
}
