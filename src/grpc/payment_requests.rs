//! PaymentRequestService handlers.

use super::convert::{self, optional_timestamp, timestamp};
use super::invoices::invoice_to_proto;
use super::{Api, authenticate};
use crate::domain::payment_request::{Decline, PaymentRequest, PaymentRequestStatus};
use crate::domain::query::PaymentRequestFilter;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::proto::payment_request_service_server::PaymentRequestService;
use crate::service::InvoiceRef;
use crate::service::payment_requests::{
    ListedInvoice, MAX_INVOICES, NewPaymentRequest, PaymentRequestQuery, PaymentResult,
    ReportedOutcome,
};
use tonic::{Request, Response, Status};

pub fn status_to_proto(status: PaymentRequestStatus) -> proto::PaymentRequestStatus {
    match status {
        PaymentRequestStatus::Pending => proto::PaymentRequestStatus::Pending,
        PaymentRequestStatus::Processing => proto::PaymentRequestStatus::Processing,
        PaymentRequestStatus::Succeeded => proto::PaymentRequestStatus::Succeeded,
        PaymentRequestStatus::Failed => proto::PaymentRequestStatus::Failed,
        PaymentRequestStatus::Canceled => proto::PaymentRequestStatus::Canceled,
        PaymentRequestStatus::Superseded => proto::PaymentRequestStatus::Superseded,
    }
}

fn status_from_proto(value: i32, v: &mut Violations) -> Option<PaymentRequestStatus> {
    match proto::PaymentRequestStatus::try_from(value) {
        Ok(proto::PaymentRequestStatus::Unspecified) => None,
        Ok(known) => PaymentRequestStatus::ALL
            .into_iter()
            .find(|s| status_to_proto(*s) == known),
        Err(_) => {
            v.add("status", "is not a known payment request status");
            None
        }
    }
}

pub fn payment_request_to_proto(r: PaymentRequest) -> proto::PaymentRequest {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    let decline = r.last_decline.unwrap_or_default();
    proto::PaymentRequest {
        id: r.id.to_string(),
        customer_id: r.customer_id.to_string(),
        customer_external_id: r.customer_external_id,
        currency_code: r.currency.code().to_owned(),
        amount: r.currency.format(r.amount_minor),
        invoice_ids: r
            .invoices
            .iter()
            .map(|i| i.invoice_id.to_string())
            .collect(),
        invoice_external_ids: r.invoices.into_iter().map(|i| i.external_id).collect(),
        status: status_to_proto(r.status) as i32,
        payment_link: r.payment_link,
        superseded_by_id: id(r.superseded_by),
        last_decline_code: decline.code,
        last_decline_message: decline.message,
        last_decline_hard: decline.hard,
        attempt_count: r.attempt_count,
        provider_reference: r.provider_reference,
        email_notification_id: id(r.email_notification_id),
        create_time: timestamp(r.created_at),
        update_time: timestamp(r.updated_at),
        settle_time: optional_timestamp(r.settled_at),
        process_id: id(r.process_id),
        cancel_reason: r.cancel_reason,
    }
}

fn new_payment_request(
    req: proto::CreatePaymentRequestRequest,
) -> Result<NewPaymentRequest, Error> {
    use proto::create_payment_request_request::Customer;
    let (id, ext) = match &req.customer {
        Some(Customer::CustomerId(id)) => (Some(id.as_str()), None),
        Some(Customer::CustomerExternalId(ext)) => (None, Some(ext.as_str())),
        None => (None, None),
    };
    let mut v = Violations::new();
    let customer = match convert::customer_ref(id, ext, "customer_") {
        Ok(c) => Some(c),
        Err(Error::InvalidArgument(violations)) => {
            for f in violations {
                v.add(f.field, f.description);
            }
            None
        }
        Err(other) => return Err(other),
    };
    let currency = if req.currency_code.is_empty() {
        v.add("currency_code", "is required");
        None
    } else {
        convert::currency("currency_code", &req.currency_code, &mut v)
    };
    if req.invoice_external_ids.len() + req.invoice_ids.len() > MAX_INVOICES {
        v.add(
            "invoice_external_ids",
            format!("together with invoice_ids at most {MAX_INVOICES} invoices"),
        );
    }
    let mut invoices = Vec::new();
    for (i, ext) in req.invoice_external_ids.iter().enumerate() {
        let field = format!("invoice_external_ids[{i}]");
        if let Some(ext) = v.check(&field, validation::external_id(ext)) {
            invoices.push(ListedInvoice {
                key: InvoiceRef::ExternalId(ext),
                field,
            });
        }
    }
    for (i, id) in req.invoice_ids.iter().enumerate() {
        let field = format!("invoice_ids[{i}]");
        match convert::uuid(&field, id) {
            Ok(id) => invoices.push(ListedInvoice {
                key: InvoiceRef::Id(id),
                field,
            }),
            Err(_) => v.add(field, "must be a UUID"),
        }
    }
    let request_id = convert::request_id(&req.request_id, &mut v);
    v.finish()?;
    Ok(NewPaymentRequest {
        customer: customer.ok_or_else(|| Error::Internal("customer checked above".into()))?,
        currency: currency.ok_or_else(|| Error::Internal("currency checked above".into()))?,
        invoices,
        request_id,
    })
}

fn payment_result(req: &proto::RecordPaymentResultRequest) -> Result<PaymentResult, Error> {
    let mut v = Violations::new();
    v.check(
        "decline_code",
        validation::text_up_to(&req.decline_code, 200),
    );
    v.check(
        "decline_message",
        validation::text_up_to(&req.decline_message, 1000),
    );
    v.check(
        "provider_reference",
        validation::text_up_to(&req.provider_reference, 500),
    );
    let outcome = match proto::PaymentOutcome::try_from(req.outcome) {
        Ok(proto::PaymentOutcome::Succeeded) => {
            if !req.decline_code.is_empty() || !req.decline_message.is_empty() || req.hard_decline {
                v.add(
                    "decline_code",
                    "decline_code, decline_message and hard_decline are for FAILED only",
                );
            }
            Some(ReportedOutcome::Succeeded)
        }
        Ok(proto::PaymentOutcome::Failed) => Some(ReportedOutcome::Failed(Decline {
            code: if req.decline_code.is_empty() {
                "declined".into()
            } else {
                req.decline_code.clone()
            },
            message: req.decline_message.clone(),
            hard: req.hard_decline,
        })),
        _ => {
            v.add("outcome", "must be SUCCEEDED or FAILED");
            None
        }
    };
    let request_id = convert::request_id(&req.request_id, &mut v);
    v.finish()?;
    Ok(PaymentResult {
        outcome: outcome.ok_or_else(|| Error::Internal("outcome checked above".into()))?,
        provider_reference: req.provider_reference.clone(),
        request_id,
    })
}

#[tonic::async_trait]
impl PaymentRequestService for Api {
    async fn create_payment_request(
        &self,
        request: Request<proto::CreatePaymentRequestRequest>,
    ) -> Result<Response<proto::CreatePaymentRequestResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let new = new_payment_request(request.into_inner())?;
        let created = self
            .services
            .payment_requests
            .create_payment_request(caller, &new)
            .await?;
        Ok(Response::new(proto::CreatePaymentRequestResponse {
            payment_request: Some(payment_request_to_proto(created)),
        }))
    }

    async fn get_payment_request(
        &self,
        request: Request<proto::GetPaymentRequestRequest>,
    ) -> Result<Response<proto::GetPaymentRequestResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let id = convert::uuid("id", &request.get_ref().id)?;
        let found = self
            .services
            .payment_requests
            .get_payment_request(caller, id)
            .await?;
        Ok(Response::new(proto::GetPaymentRequestResponse {
            payment_request: Some(payment_request_to_proto(found)),
        }))
    }

    async fn list_payment_requests(
        &self,
        request: Request<proto::ListPaymentRequestsRequest>,
    ) -> Result<Response<proto::ListPaymentRequestsResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        let customer = convert::customer_filter(&req.customer_id, &req.customer_external_id)?;
        let mut v = Violations::new();
        let status = status_from_proto(req.status, &mut v);
        let currency_code = (!req.currency_code.is_empty())
            .then(|| convert::currency("currency_code", &req.currency_code, &mut v))
            .flatten()
            .map(|c| c.code().to_owned());
        v.finish().map_err(Error::from)?;
        let query = PaymentRequestQuery {
            customer,
            filter: PaymentRequestFilter {
                customer_id: None,
                status,
                currency_code,
            },
        };
        let (rows, next_page_token) = self
            .services
            .payment_requests
            .list_payment_requests(caller, &query, &page)
            .await?;
        Ok(Response::new(proto::ListPaymentRequestsResponse {
            payment_requests: rows.into_iter().map(payment_request_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn cancel_payment_request(
        &self,
        request: Request<proto::CancelPaymentRequestRequest>,
    ) -> Result<Response<proto::CancelPaymentRequestResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = v.check(
            "id",
            convert::uuid("id", &req.id).map_err(|_| "must be a UUID".to_owned()),
        );
        v.check("reason", validation::text_up_to(&req.reason, 1000));
        v.finish().map_err(Error::from)?;
        let Some(id) = id else {
            return Err(Error::Internal("id checked above".into()).into());
        };
        let canceled = self
            .services
            .payment_requests
            .cancel_payment_request(caller, id, &req.reason)
            .await?;
        Ok(Response::new(proto::CancelPaymentRequestResponse {
            payment_request: Some(payment_request_to_proto(canceled)),
        }))
    }

    async fn record_payment_result(
        &self,
        request: Request<proto::RecordPaymentResultRequest>,
    ) -> Result<Response<proto::RecordPaymentResultResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.get_ref();
        let id = convert::uuid("payment_request_id", &req.payment_request_id)?;
        let result = payment_result(req)?;
        let (updated, invoices) = self
            .services
            .payment_requests
            .record_payment_result(caller, id, &result)
            .await?;
        Ok(Response::new(proto::RecordPaymentResultResponse {
            payment_request: Some(payment_request_to_proto(updated)),
            invoices: invoices.into_iter().map(invoice_to_proto).collect(),
        }))
    }
}
