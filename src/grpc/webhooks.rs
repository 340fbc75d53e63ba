//! WebhookService handlers.

use super::convert::{self, optional_timestamp, timestamp};
use super::{Api, authenticate};
use crate::domain::query::DeliveryFilter;
use crate::domain::target::TargetPolicy;
use crate::domain::validation::{self, Violations};
use crate::domain::webhook::{DeliveryStatus, KNOWN_EVENT_TYPES, WebhookDelivery, WebhookEndpoint};
use crate::error::Error;
use crate::proto;
use crate::proto::webhook_service_server::WebhookService;
use crate::service::webhooks::{EndpointField, EndpointSettings};
use tonic::{Request, Response, Status};

/// Most event types one endpoint may list.
const MAX_EVENT_TYPES: usize = 100;

/// The wire form of an endpoint; the secret only when `with_secret` (create and rotate).
fn endpoint_to_proto(e: WebhookEndpoint, with_secret: bool) -> proto::WebhookEndpoint {
    proto::WebhookEndpoint {
        id: e.id.to_string(),
        url: e.url,
        description: e.description,
        event_types: e.event_types,
        enabled: e.enabled,
        secret: if with_secret { e.secret } else { String::new() },
        consecutive_failures: e.consecutive_failures,
        disabled_reason: e.disabled_reason,
        create_time: timestamp(e.created_at),
        update_time: timestamp(e.updated_at),
    }
}

fn status_to_proto(status: DeliveryStatus) -> proto::WebhookDeliveryStatus {
    match status {
        DeliveryStatus::Pending => proto::WebhookDeliveryStatus::Pending,
        DeliveryStatus::Succeeded => proto::WebhookDeliveryStatus::Succeeded,
        DeliveryStatus::Failed => proto::WebhookDeliveryStatus::Failed,
    }
}

fn delivery_to_proto(d: WebhookDelivery) -> proto::WebhookDelivery {
    proto::WebhookDelivery {
        id: d.id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_id: d.event_id.to_string(),
        event_sequence: d.event_sequence,
        attempt: d.attempts,
        status: status_to_proto(d.status) as i32,
        response_status_code: d.response_status_code,
        latency_ms: d.latency_ms,
        error: d.error,
        next_attempt_time: optional_timestamp(d.next_attempt_at),
        create_time: timestamp(d.created_at),
        event_type: d.event_type,
        last_attempt_time: optional_timestamp(d.last_attempt_at),
    }
}

/// Validates the settable fields of a wire endpoint; `fields` limits the check to the fields
/// being set (all of them on create).
fn endpoint_settings(
    e: &proto::WebhookEndpoint,
    fields: &[EndpointField],
    targets: TargetPolicy,
) -> Result<EndpointSettings, Error> {
    let mut v = Violations::new();
    let prefix = "webhook_endpoint.";
    if fields.contains(&EndpointField::Url)
        && let Err(e) = targets.check_url(&e.url)
    {
        v.add(format!("{prefix}url"), e);
    }
    if fields.contains(&EndpointField::Description) {
        v.check(
            &format!("{prefix}description"),
            validation::text_up_to(&e.description, 1000),
        );
    }
    if fields.contains(&EndpointField::EventTypes) {
        if e.event_types.len() > MAX_EVENT_TYPES {
            v.add(
                format!("{prefix}event_types"),
                format!("must list at most {MAX_EVENT_TYPES} types"),
            );
        }
        for (i, t) in e.event_types.iter().enumerate() {
            if !KNOWN_EVENT_TYPES.contains(&t.as_str()) {
                v.add(
                    format!("{prefix}event_types[{i}]"),
                    format!("`{t}` is not a known event type"),
                );
            }
        }
    }
    v.finish()?;
    let mut event_types = e.event_types.clone();
    event_types.sort();
    event_types.dedup();
    Ok(EndpointSettings {
        url: e.url.clone(),
        description: e.description.clone(),
        event_types,
        enabled: e.enabled,
    })
}

fn endpoint_field(path: &str) -> Option<EndpointField> {
    Some(match path {
        "url" => EndpointField::Url,
        "description" => EndpointField::Description,
        "event_types" => EndpointField::EventTypes,
        "enabled" => EndpointField::Enabled,
        _ => return None,
    })
}

#[tonic::async_trait]
impl WebhookService for Api {
    async fn create_webhook_endpoint(
        &self,
        request: Request<proto::CreateWebhookEndpointRequest>,
    ) -> Result<Response<proto::CreateWebhookEndpointResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let Some(endpoint) = req.webhook_endpoint else {
            return Err(Error::field("webhook_endpoint", "is required").into());
        };
        let all = [
            EndpointField::Url,
            EndpointField::Description,
            EndpointField::EventTypes,
        ];
        let settings = endpoint_settings(&endpoint, &all, self.services.targets)?;
        let mut v = Violations::new();
        let request_id = convert::request_id(&req.request_id, &mut v);
        v.finish().map_err(Error::from)?;
        let created = self
            .services
            .webhooks
            .create_webhook_endpoint(caller, &settings, request_id.as_deref())
            .await?;
        Ok(Response::new(proto::CreateWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint_to_proto(created, true)),
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<proto::GetWebhookEndpointRequest>,
    ) -> Result<Response<proto::GetWebhookEndpointResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let id = convert::uuid("id", &request.get_ref().id)?;
        let endpoint = self
            .services
            .webhooks
            .get_webhook_endpoint(caller, id)
            .await?;
        Ok(Response::new(proto::GetWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint_to_proto(endpoint, false)),
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<proto::ListWebhookEndpointsRequest>,
    ) -> Result<Response<proto::ListWebhookEndpointsResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        let (rows, next_page_token) = self
            .services
            .webhooks
            .list_webhook_endpoints(caller, &page)
            .await?;
        Ok(Response::new(proto::ListWebhookEndpointsResponse {
            webhook_endpoints: rows
                .into_iter()
                .map(|e| endpoint_to_proto(e, false))
                .collect(),
            next_page_token,
        }))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<proto::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<proto::UpdateWebhookEndpointResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let Some(endpoint) = req.webhook_endpoint else {
            return Err(Error::field("webhook_endpoint", "is required").into());
        };
        let id = convert::uuid("webhook_endpoint.id", &endpoint.id)?;
        let mut fields = Vec::new();
        for path in convert::mask_paths(req.update_mask.as_ref())? {
            match endpoint_field(&path) {
                Some(field) => fields.push(field),
                None => {
                    return Err(Error::field(
                        "update_mask",
                        format!("`{path}` is not an updatable webhook endpoint field"),
                    )
                    .into());
                }
            }
        }
        let settings = endpoint_settings(&endpoint, &fields, self.services.targets)?;
        let updated = self
            .services
            .webhooks
            .update_webhook_endpoint(caller, id, &settings, &fields)
            .await?;
        Ok(Response::new(proto::UpdateWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint_to_proto(updated, false)),
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<proto::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<proto::DeleteWebhookEndpointResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let id = convert::uuid("id", &request.get_ref().id)?;
        self.services
            .webhooks
            .delete_webhook_endpoint(caller, id)
            .await?;
        Ok(Response::new(proto::DeleteWebhookEndpointResponse {}))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<proto::RotateWebhookSecretRequest>,
    ) -> Result<Response<proto::RotateWebhookSecretResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let id = convert::uuid("id", &request.get_ref().id)?;
        let endpoint = self
            .services
            .webhooks
            .rotate_webhook_secret(caller, id)
            .await?;
        Ok(Response::new(proto::RotateWebhookSecretResponse {
            webhook_endpoint: Some(endpoint_to_proto(endpoint, true)),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<proto::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<proto::ListWebhookDeliveriesResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        let status = match proto::WebhookDeliveryStatus::try_from(req.status) {
            Ok(proto::WebhookDeliveryStatus::Unspecified) => None,
            Ok(proto::WebhookDeliveryStatus::Pending) => Some(DeliveryStatus::Pending),
            Ok(proto::WebhookDeliveryStatus::Succeeded) => Some(DeliveryStatus::Succeeded),
            Ok(proto::WebhookDeliveryStatus::Failed) => Some(DeliveryStatus::Failed),
            Err(_) => {
                return Err(Error::field("status", "is not a known delivery status").into());
            }
        };
        let filter = DeliveryFilter {
            endpoint_id: convert::optional_uuid("endpoint_id", &req.endpoint_id)?,
            event_id: convert::optional_uuid("event_id", &req.event_id)?,
            status,
        };
        let (rows, next_page_token) = self
            .services
            .webhooks
            .list_webhook_deliveries(caller, &filter, &page)
            .await?;
        Ok(Response::new(proto::ListWebhookDeliveriesResponse {
            webhook_deliveries: rows.into_iter().map(delivery_to_proto).collect(),
            next_page_token,
        }))
    }
}
