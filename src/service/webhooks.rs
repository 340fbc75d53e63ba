//! Webhooks: endpoints, dispatching the event log to them, delivering with retries, and
//! disabling endpoints that keep failing.

use super::paging::PageRequest;
use super::paging::fingerprint;
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::domain::query::DeliveryFilter;
use crate::domain::webhook::WebhookDelivery;
use crate::domain::webhook::WebhookEndpoint;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::request_id_conflict;
use rand::RngCore;
use std::sync::Arc;
use uuid::Uuid;

/// Webhook endpoints and their delivery log.
#[derive(Clone)]
pub struct Webhooks {
    core: Arc<Core>,
}

impl Webhooks {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

const CREATE_OPERATION: &str = "CreateWebhookEndpoint";

/// The fields of an endpoint a caller sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSettings {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

/// A field UpdateWebhookEndpoint may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointField {
    Url,
    Description,
    EventTypes,
    Enabled,
}

fn not_found(id: Uuid) -> Error {
    Error::not_found(
        Reason::WebhookEndpointNotFound,
        format!("no webhook endpoint with id {id}"),
    )
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

impl Webhooks {
    /// Creates an endpoint that receives the events appended from now on; returns it with its
    /// secret. A retry with the same request_id returns the same endpoint and secret.
    pub async fn create_webhook_endpoint(
        &self,
        caller: Caller,
        settings: &EndpointSettings,
        request_id: Option<&str>,
    ) -> Result<WebhookEndpoint, Error> {
        let tx = self.core.store.begin().await?;
        let request_fingerprint = fingerprint(settings);
        if let Some(request_id) = request_id
            && let Some((stored, id)) = tx
                .find_idempotency_key(caller.organization_id, CREATE_OPERATION, request_id)
                .await?
        {
            if stored != request_fingerprint {
                return Err(request_id_conflict(request_id));
            }
            return tx
                .find_webhook_endpoint(caller.organization_id, id, false)
                .await?
                .ok_or_else(|| not_found(id));
        }
        let now = self.core.now();
        let endpoint = WebhookEndpoint {
            id: new_id(),
            organization_id: caller.organization_id,
            url: settings.url.clone(),
            description: settings.description.clone(),
            event_types: settings.event_types.clone(),
            secret: new_secret(),
            enabled: true,
            disabled_reason: String::new(),
            consecutive_failures: 0,
            cursor: tx.last_event_sequence(caller.organization_id).await?,
            created_at: now,
            updated_at: now,
        };
        tx.insert_webhook_endpoint(&endpoint).await?;
        if let Some(request_id) = request_id {
            tx.insert_idempotency_key(
                caller.organization_id,
                CREATE_OPERATION,
                request_id,
                &request_fingerprint,
                endpoint.id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(endpoint)
    }

    pub async fn get_webhook_endpoint(
        &self,
        caller: Caller,
        id: Uuid,
    ) -> Result<WebhookEndpoint, Error> {
        self.core
            .store
            .find_webhook_endpoint(caller.organization_id, id, false)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list_webhook_endpoints(
        &self,
        caller: Caller,
        page: &PageRequest,
    ) -> Result<(Vec<WebhookEndpoint>, String), Error> {
        let after = page.after_id(&(caller.organization_id, &()))?;
        let rows = self
            .core
            .store
            .list_webhook_endpoints(caller.organization_id, after, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, &()), |e| e.id.to_string()))
    }

    /// Changes the listed fields.
    pub async fn update_webhook_endpoint(
        &self,
        caller: Caller,
        id: Uuid,
        update: &EndpointSettings,
        fields: &[EndpointField],
    ) -> Result<WebhookEndpoint, Error> {
        self.change_webhook_endpoint(caller, id, |endpoint| {
            for field in fields {
                match field {
                    EndpointField::Url => endpoint.url = update.url.clone(),
                    EndpointField::Description => endpoint.description = update.description.clone(),
                    EndpointField::EventTypes => endpoint.event_types = update.event_types.clone(),
                    EndpointField::Enabled => endpoint.set_enabled(update.enabled),
                }
            }
        })
        .await
    }

    /// Replaces the signing secret; returns the endpoint with the new one.
    pub async fn rotate_webhook_secret(
        &self,
        caller: Caller,
        id: Uuid,
    ) -> Result<WebhookEndpoint, Error> {
        self.change_webhook_endpoint(caller, id, |endpoint| endpoint.secret = new_secret())
            .await
    }

    async fn change_webhook_endpoint(
        &self,
        caller: Caller,
        id: Uuid,
        change: impl FnOnce(&mut WebhookEndpoint),
    ) -> Result<WebhookEndpoint, Error> {
        let tx = self.core.store.begin().await?;
        let mut endpoint = tx
            .find_webhook_endpoint(caller.organization_id, id, true)
            .await?
            .ok_or_else(|| not_found(id))?;
        let before = endpoint.clone();
        change(&mut endpoint);
        if endpoint != before {
            endpoint.updated_at = self.core.now();
            tx.update_webhook_endpoint(&endpoint).await?;
            tx.commit().await?;
        }
        Ok(endpoint)
    }

    /// Deletes an endpoint; its pending deliveries fail.
    pub async fn delete_webhook_endpoint(&self, caller: Caller, id: Uuid) -> Result<(), Error> {
        let tx = self.core.store.begin().await?;
        tx.find_webhook_endpoint(caller.organization_id, id, true)
            .await?
            .ok_or_else(|| not_found(id))?;
        tx.fail_pending_webhook_deliveries(id, "the endpoint was deleted")
            .await?;
        tx.delete_webhook_endpoint(id).await?;
        tx.commit().await
    }

    /// A page of deliveries, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        caller: Caller,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<(Vec<WebhookDelivery>, String), Error> {
        if let Some(id) = filter.endpoint_id {
            self.get_webhook_endpoint(caller, id).await?;
        }
        let before = page.after_id(&(caller.organization_id, filter))?;
        let rows = self
            .core
            .store
            .list_webhook_deliveries(caller.organization_id, filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, filter), |d| {
            d.id.to_string()
        }))
    }
}
