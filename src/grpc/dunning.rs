//! DunningService: the trait's dispatch to the handlers of policies, processes, operator
//! commands, simulation, notifications, events and the collections report.

use super::events::{EventFilterInput, event_filter, event_to_proto};
use super::{Api, authenticate, convert};
use crate::domain::query::EventFilter;
use crate::error::Error;
use crate::proto;
use crate::service::CustomerRef;
use crate::service::InvoiceRef;
use crate::service::events::WatchItem;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The filter fields WatchEventsRequest and ListEventsRequest share, as one input: both RPCs
/// filter alike.
macro_rules! event_filter_input {
    ($req:expr) => {
        EventFilterInput {
            customer_id: &$req.customer_id,
            customer_external_id: &$req.customer_external_id,
            invoice_id: &$req.invoice_id,
            invoice_external_id: &$req.invoice_external_id,
            process_id: &$req.process_id,
            types: &$req.types,
        }
    };
}

#[tonic::async_trait]
impl proto::dunning_service_server::DunningService for Api {
    async fn get_collections_report(
        &self,
        request: Request<proto::GetCollectionsReportRequest>,
    ) -> Result<Response<proto::GetCollectionsReportResponse>, Status> {
        super::report::get(self, request).await
    }

    async fn simulate_policy(
        &self,
        request: Request<proto::SimulatePolicyRequest>,
    ) -> Result<Response<proto::SimulatePolicyResponse>, Status> {
        super::simulation::simulate(self, request).await
    }

    async fn pause_process(
        &self,
        request: Request<proto::PauseProcessRequest>,
    ) -> Result<Response<proto::PauseProcessResponse>, Status> {
        super::commands::pause(self, request).await
    }

    async fn resume_process(
        &self,
        request: Request<proto::ResumeProcessRequest>,
    ) -> Result<Response<proto::ResumeProcessResponse>, Status> {
        super::commands::resume(self, request).await
    }

    async fn cancel_process(
        &self,
        request: Request<proto::CancelProcessRequest>,
    ) -> Result<Response<proto::CancelProcessResponse>, Status> {
        super::commands::cancel(self, request).await
    }

    async fn reset_process(
        &self,
        request: Request<proto::ResetProcessRequest>,
    ) -> Result<Response<proto::ResetProcessResponse>, Status> {
        super::commands::reset(self, request).await
    }

    async fn advance_process(
        &self,
        request: Request<proto::AdvanceProcessRequest>,
    ) -> Result<Response<proto::AdvanceProcessResponse>, Status> {
        super::commands::advance(self, request).await
    }

    async fn escalate_process(
        &self,
        request: Request<proto::EscalateProcessRequest>,
    ) -> Result<Response<proto::EscalateProcessResponse>, Status> {
        super::commands::escalate(self, request).await
    }

    async fn inform_sales(
        &self,
        request: Request<proto::InformSalesRequest>,
    ) -> Result<Response<proto::InformSalesResponse>, Status> {
        super::commands::inform_sales(self, request).await
    }

    async fn assign_policy(
        &self,
        request: Request<proto::AssignPolicyRequest>,
    ) -> Result<Response<proto::AssignPolicyResponse>, Status> {
        super::policies::assign(self, request).await
    }

    async fn record_promise_to_pay(
        &self,
        request: Request<proto::RecordPromiseToPayRequest>,
    ) -> Result<Response<proto::RecordPromiseToPayResponse>, Status> {
        super::commands::record_promise_to_pay(self, request).await
    }

    async fn record_payment_plan(
        &self,
        request: Request<proto::RecordPaymentPlanRequest>,
    ) -> Result<Response<proto::RecordPaymentPlanResponse>, Status> {
        super::commands::record_payment_plan(self, request).await
    }

    async fn create_policy(
        &self,
        request: Request<proto::CreatePolicyRequest>,
    ) -> Result<Response<proto::CreatePolicyResponse>, Status> {
        super::policies::create(self, request).await
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::GetPolicyResponse>, Status> {
        super::policies::get(self, request).await
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        super::policies::list(self, request).await
    }

    async fn update_policy(
        &self,
        request: Request<proto::UpdatePolicyRequest>,
    ) -> Result<Response<proto::UpdatePolicyResponse>, Status> {
        super::policies::update(self, request).await
    }

    async fn archive_policy(
        &self,
        request: Request<proto::ArchivePolicyRequest>,
    ) -> Result<Response<proto::ArchivePolicyResponse>, Status> {
        super::policies::archive(self, request).await
    }

    async fn get_process(
        &self,
        request: Request<proto::GetProcessRequest>,
    ) -> Result<Response<proto::GetProcessResponse>, Status> {
        super::processes::get(self, request).await
    }

    async fn list_processes(
        &self,
        request: Request<proto::ListProcessesRequest>,
    ) -> Result<Response<proto::ListProcessesResponse>, Status> {
        super::processes::list(self, request).await
    }

    async fn preview_notification(
        &self,
        request: Request<proto::PreviewNotificationRequest>,
    ) -> Result<Response<proto::PreviewNotificationResponse>, Status> {
        super::notifications::preview(self, request).await
    }

    async fn list_notifications(
        &self,
        request: Request<proto::ListNotificationsRequest>,
    ) -> Result<Response<proto::ListNotificationsResponse>, Status> {
        super::notifications::list(self, request).await
    }

    type WatchEventsStream =
        Pin<Box<dyn Stream<Item = Result<proto::WatchEventsResponse, Status>> + Send + 'static>>;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        if req.after_sequence < 0 {
            return Err(Error::field("after_sequence", "must not be negative").into());
        }
        if req.from_now && req.after_sequence > 0 {
            return Err(Error::field("from_now", "cannot be combined with after_sequence").into());
        }
        let filter = self.event_filter(caller, event_filter_input!(req)).await?;
        let start = (!req.from_now).then_some(req.after_sequence);
        let items = self.live.watch_events(caller, filter, start).await?;
        let stream = ReceiverStream::new(items).map(|item| match item {
            Ok(WatchItem::Event(event)) => Ok(proto::WatchEventsResponse {
                event: Some(event_to_proto(&event)),
                heartbeat_time: None,
            }),
            Ok(WatchItem::Heartbeat(at)) => Ok(proto::WatchEventsResponse {
                event: None,
                heartbeat_time: convert::timestamp(at),
            }),
            Err(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Result<Response<proto::ListEventsResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        if req.after_sequence < 0 {
            return Err(Error::field("after_sequence", "must not be negative").into());
        }
        let filter = self.event_filter(caller, event_filter_input!(req)).await?;
        let (events, next_page_token) = self
            .services
            .events
            .list_events(caller, &filter, req.after_sequence, &page)
            .await?;
        Ok(Response::new(proto::ListEventsResponse {
            events: events.iter().map(event_to_proto).collect(),
            next_page_token,
        }))
    }
}

impl Api {
    /// A validated event filter with external ids resolved to the caller's resources.
    async fn event_filter(
        &self,
        caller: crate::service::Caller,
        input: EventFilterInput<'_>,
    ) -> Result<EventFilter, Error> {
        let (mut filter, customer_external_id, invoice_external_id) = event_filter(&input)?;
        if let Some(ext) = customer_external_id {
            let customer = self
                .services
                .customers
                .get_customer(caller, &CustomerRef::ExternalId(ext))
                .await?;
            filter.customer_id = Some(customer.id);
        }
        if let Some(ext) = invoice_external_id {
            let invoice = self
                .services
                .invoices
                .get_invoice(caller, &InvoiceRef::ExternalId(ext))
                .await?;
            filter.invoice_id = Some(invoice.invoice.id);
        }
        Ok(filter)
    }
}
