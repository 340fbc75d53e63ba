//! Webhooks: endpoints, dispatching the event log to them, delivering with retries, and
//! disabling endpoints that keep failing.

use super::customers::request_id_conflict;
use super::paging::{PageRequest, fingerprint};
use super::{Caller, Jobs, Services};
use crate::domain::event::NewEvent;
use crate::domain::query::{DeliveryFilter, EventFilter};
use crate::domain::webhook::{DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use crate::error::Error;
use crate::events::webhooks::WebhookSender;
use chrono::Duration;
use futures_util::StreamExt;
use rand::RngCore;
use std::collections::BTreeMap;
use uuid::Uuid;

const CREATE_OPERATION: &str = "CreateWebhookEndpoint";
/// Events turned into deliveries per endpoint and dispatch round.
const DISPATCH_BATCH: u64 = 500;
/// Deliveries attempted per round, and at the same time.
const DELIVERY_BATCH: u64 = 200;
const DELIVERY_CONCURRENCY: usize = 16;
/// How long a claimed delivery is reserved for the worker sending it.
const DELIVERY_LEASE: Duration = Duration::minutes(5);

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
        "WEBHOOK_ENDPOINT_NOT_FOUND",
        format!("no webhook endpoint with id {id}"),
    )
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

impl Services {
    /// Creates an endpoint that receives the events appended from now on; returns it with its
    /// secret. A retry with the same request_id returns the same endpoint and secret.
    pub async fn create_webhook_endpoint(
        &self,
        caller: Caller,
        settings: &EndpointSettings,
        request_id: Option<&str>,
    ) -> Result<WebhookEndpoint, Error> {
        let tx = self.store.begin().await?;
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
        let now = self.now();
        let endpoint = WebhookEndpoint {
            id: Uuid::now_v7(),
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
        self.store
            .find_webhook_endpoint(caller.organization_id, id, false)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list_webhook_endpoints(
        &self,
        caller: Caller,
        page: &PageRequest,
    ) -> Result<(Vec<WebhookEndpoint>, String), Error> {
        let after = page.after_id(&())?;
        let rows = self
            .store
            .list_webhook_endpoints(caller.organization_id, after, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(), |e| e.id.to_string()))
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
        let tx = self.store.begin().await?;
        let mut endpoint = tx
            .find_webhook_endpoint(caller.organization_id, id, true)
            .await?
            .ok_or_else(|| not_found(id))?;
        let before = endpoint.clone();
        change(&mut endpoint);
        if endpoint != before {
            endpoint.updated_at = self.now();
            tx.update_webhook_endpoint(&endpoint).await?;
            tx.commit().await?;
        }
        Ok(endpoint)
    }

    /// Deletes an endpoint; its pending deliveries fail.
    pub async fn delete_webhook_endpoint(&self, caller: Caller, id: Uuid) -> Result<(), Error> {
        let tx = self.store.begin().await?;
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
        let before = page.after_id(filter)?;
        let rows = self
            .store
            .list_webhook_deliveries(caller.organization_id, filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, filter, |d| d.id.to_string()))
    }
}

impl Jobs {
    /// One webhook round: turns newly appended events into deliveries for every enabled
    /// endpoint, then attempts every due delivery. Returns the work done (deliveries created
    /// plus attempts made). Safe on several replicas at once: cursors move by
    /// compare-and-set and deliveries are claimed before they are sent.
    pub async fn deliver_due_webhooks(&self, sender: &WebhookSender) -> Result<usize, Error> {
        let created = self.dispatch_events_to_webhooks().await?;
        let now = self.now();
        let due = self
            .store
            .due_webhook_deliveries(now, DELIVERY_BATCH)
            .await?;
        let ids: Vec<Uuid> = due.iter().map(|d| d.id).collect();
        let claimed = self
            .store
            .claim_webhook_deliveries(&ids, now, now + DELIVERY_LEASE)
            .await?;
        let attempts = due
            .into_iter()
            .filter(|d| claimed.contains(&d.id))
            .collect::<Vec<_>>();
        let count = attempts.len();
        let mut work = futures_util::stream::iter(attempts)
            .map(|delivery| async move {
                let id = delivery.id;
                if let Err(e) = self.attempt_delivery(sender, delivery).await {
                    // The claim expires and the delivery is attempted again.
                    tracing::warn!(delivery = %id, error = %e, "webhook attempt not recorded");
                }
            })
            .buffer_unordered(DELIVERY_CONCURRENCY);
        while work.next().await.is_some() {}
        Ok(created + count)
    }

    /// Creates deliveries for the events after each enabled endpoint's cursor.
    async fn dispatch_events_to_webhooks(&self) -> Result<usize, Error> {
        // Endpoints of one organization at the same position share one read of the log.
        let mut groups: BTreeMap<(Uuid, i64), Vec<WebhookEndpoint>> = BTreeMap::new();
        for endpoint in self.store.enabled_webhook_endpoints().await? {
            groups
                .entry((endpoint.organization_id, endpoint.cursor))
                .or_default()
                .push(endpoint);
        }
        let mut created = 0;
        for ((organization_id, cursor), endpoints) in groups {
            let tx = self.store.begin().await?;
            let events = tx
                .list_events(
                    organization_id,
                    &EventFilter::default(),
                    cursor,
                    None,
                    DISPATCH_BATCH,
                )
                .await?;
            let Some(last) = events.last().map(|e| e.sequence) else {
                continue;
            };
            let now = self.now();
            let mut deliveries = Vec::new();
            for endpoint in &endpoints {
                // Not moved: another replica dispatched these events to it.
                if tx.advance_webhook_cursor(endpoint.id, cursor, last).await? {
                    deliveries.extend(events.iter().filter(|e| endpoint.wants(&e.event_type)).map(
                        |e| WebhookDelivery::new(endpoint, e.id, e.sequence, &e.event_type, now),
                    ));
                }
            }
            tx.insert_webhook_deliveries(&deliveries).await?;
            tx.commit().await?;
            created += deliveries.len();
        }
        Ok(created)
    }

    /// Sends one claimed delivery and records the outcome; disables the endpoint when its run
    /// of failures reaches the limit.
    async fn attempt_delivery(
        &self,
        sender: &WebhookSender,
        mut delivery: WebhookDelivery,
    ) -> Result<(), Error> {
        let caller = Caller::system(delivery.organization_id);
        let endpoint = self
            .store
            .find_webhook_endpoint(caller.organization_id, delivery.endpoint_id, false)
            .await?;
        let endpoint = match endpoint {
            Some(e) if e.enabled => e,
            other => {
                let why = if other.is_some() {
                    "the endpoint is disabled"
                } else {
                    "the endpoint was deleted"
                };
                delivery.give_up(why);
                return self.store.update_webhook_delivery(&delivery).await;
            }
        };
        let event = self
            .store
            .find_event(caller.organization_id, delivery.event_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("event {} vanished", delivery.event_id)))?;
        let outcome = sender
            .send(&endpoint.url, &endpoint.secret, &event, self.now())
            .await;

        let now = self.now();
        delivery.record(&outcome, now, rand::random::<f64>());
        let tx = self.store.begin().await?;
        // Locked first, so attempts on one endpoint record one after the other and see a
        // disable made by the attempt before.
        let current = tx
            .find_webhook_endpoint(caller.organization_id, endpoint.id, true)
            .await?
            .filter(|e| e.enabled);
        let still_enabled = current.is_some();
        if !still_enabled && delivery.status == DeliveryStatus::Pending {
            // Disabled or deleted while this attempt was in flight: no retry.
            delivery.give_up("the endpoint was disabled");
        }
        tx.update_webhook_delivery(&delivery).await?;
        let failures = tx
            .count_webhook_attempt(endpoint.id, outcome.succeeded())
            .await?;
        // The endpoint is locked and still enabled, so only one attempt disables it; changes
        // made while the request was in flight (a rotated secret) are kept.
        if let Some(mut endpoint) = current
            && !outcome.succeeded()
            && failures >= sender.failures_before_disable
        {
            endpoint.enabled = false;
            endpoint.consecutive_failures = failures;
            endpoint.disabled_reason = format!(
                "{failures} consecutive failed attempts (last: {})",
                outcome.error
            );
            endpoint.updated_at = now;
            tx.update_webhook_endpoint(&endpoint).await?;
            tx.fail_pending_webhook_deliveries(endpoint.id, "the endpoint was disabled")
                .await?;
            tx.append_events(
                caller.organization_id,
                &[NewEvent::webhook_endpoint_disabled(&endpoint, now)],
            )
            .await?;
            tracing::warn!(endpoint = %endpoint.id, failures, "webhook endpoint disabled");
        }
        tx.commit().await
    }
}
