//! WebhookService: the contract is final; deliveries arrive with the event streaming and
//! webhooks capability.

use super::Api;
use super::later::service_with_later_rpcs;
use crate::proto;

service_with_later_rpcs! {
    impl proto::webhook_service_server::WebhookService for Api {
        later("the webhooks capability") {
            create_webhook_endpoint(CreateWebhookEndpointRequest) -> CreateWebhookEndpointResponse;
            get_webhook_endpoint(GetWebhookEndpointRequest) -> GetWebhookEndpointResponse;
            list_webhook_endpoints(ListWebhookEndpointsRequest) -> ListWebhookEndpointsResponse;
            update_webhook_endpoint(UpdateWebhookEndpointRequest) -> UpdateWebhookEndpointResponse;
            delete_webhook_endpoint(DeleteWebhookEndpointRequest) -> DeleteWebhookEndpointResponse;
            rotate_webhook_secret(RotateWebhookSecretRequest) -> RotateWebhookSecretResponse;
            list_webhook_deliveries(ListWebhookDeliveriesRequest) -> ListWebhookDeliveriesResponse;
        }
    }
}
