//! DunningService handlers. Events are readable now; policies, processes and notifications
//! arrive with the dunning engine and notifications capabilities.

use super::events::{EventFilterInput, event_filter, event_to_proto};
use super::later::service_with_later_rpcs;
use super::{Api, authenticate, convert};
use crate::error::Error;
use crate::proto;
use crate::service::{CustomerRef, InvoiceRef};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

service_with_later_rpcs! {
    impl proto::dunning_service_server::DunningService for Api {
        later("the dunning engine (policies and processes)") {
            create_policy(CreatePolicyRequest) -> CreatePolicyResponse;
            get_policy(GetPolicyRequest) -> GetPolicyResponse;
            list_policies(ListPoliciesRequest) -> ListPoliciesResponse;
            update_policy(UpdatePolicyRequest) -> UpdatePolicyResponse;
            archive_policy(ArchivePolicyRequest) -> ArchivePolicyResponse;
            assign_policy(AssignPolicyRequest) -> AssignPolicyResponse;
            simulate_policy(SimulatePolicyRequest) -> SimulatePolicyResponse;
            get_process(GetProcessRequest) -> GetProcessResponse;
            list_processes(ListProcessesRequest) -> ListProcessesResponse;
            pause_process(PauseProcessRequest) -> PauseProcessResponse;
            resume_process(ResumeProcessRequest) -> ResumeProcessResponse;
            cancel_process(CancelProcessRequest) -> CancelProcessResponse;
            reset_process(ResetProcessRequest) -> ResetProcessResponse;
            advance_process(AdvanceProcessRequest) -> AdvanceProcessResponse;
            escalate_process(EscalateProcessRequest) -> EscalateProcessResponse;
            inform_sales(InformSalesRequest) -> InformSalesResponse;
            record_promise_to_pay(RecordPromiseToPayRequest) -> RecordPromiseToPayResponse;
            get_collections_report(GetCollectionsReportRequest) -> GetCollectionsReportResponse;
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
            authenticate(&self.services, &request).await?;
            Err(Error::Unimplemented(
                "watch_events is not available yet: it arrives with the event streaming capability; \
                 use ListEvents with after_sequence meanwhile"
                    .into(),
            )
            .into())
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
            let (mut filter, customer_external_id, invoice_external_id) =
                event_filter(&EventFilterInput {
                    customer_id: &req.customer_id,
                    customer_external_id: &req.customer_external_id,
                    invoice_id: &req.invoice_id,
                    invoice_external_id: &req.invoice_external_id,
                    process_id: &req.process_id,
                    types: &req.types,
                })?;
            if let Some(ext) = customer_external_id {
                let customer = self.services.get_customer(caller, &CustomerRef::ExternalId(ext)).await?;
                filter.customer_id = Some(customer.id);
            }
            if let Some(ext) = invoice_external_id {
                let invoice = self.services.get_invoice(caller, &InvoiceRef::ExternalId(ext)).await?;
                filter.invoice_id = Some(invoice.invoice.id);
            }
            let (events, next_page_token) = self
                .services
                .list_events(caller, &filter, req.after_sequence, &page)
                .await?;
            Ok(Response::new(proto::ListEventsResponse {
                events: events.into_iter().map(event_to_proto).collect(),
                next_page_token,
            }))
        }
    }
}
