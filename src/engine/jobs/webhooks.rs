//! Creates webhook deliveries from the event log and posts the due ones.

use crate::clock::new_id;
use crate::core::Caller;
use crate::domain::event::NewEvent;
use crate::domain::query::EventFilter;
use crate::domain::webhook::DeliveryStatus;
use crate::domain::webhook::WebhookDelivery;
use crate::domain::webhook::WebhookEndpoint;
use crate::engine::Engine;
use crate::engine::runtime::Job;
use crate::error::Error;
use crate::events::webhooks::WebhookSender;
use chrono::Duration;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use tracing::Instrument;
use uuid::Uuid;

pub struct WebhookDeliveries {
    pub engine: Engine,
    pub sender: WebhookSender,
}

#[async_trait::async_trait]
impl Job for WebhookDeliveries {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.engine.deliver_due_webhooks(&self.sender).await
    }

    /// Webhooks deliver events: any commit of events may bring work.
    async fn woken(&self) {
        let _ = self.engine.store().event_wakeups().changed().await;
    }
}

/// Events turned into deliveries per endpoint and dispatch round.
const DISPATCH_BATCH: u64 = 500;
/// Deliveries attempted per round, and at the same time.
const DELIVERY_BATCH: u64 = 200;
const DELIVERY_CONCURRENCY: usize = 16;
/// How long a claimed delivery is reserved for the worker sending it.
const DELIVERY_LEASE: Duration = Duration::minutes(5);

impl Engine {
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
                        |e| {
                            WebhookDelivery::new(
                                new_id(),
                                endpoint,
                                e.id,
                                e.sequence,
                                &e.event_type,
                                now,
                            )
                        },
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
            .instrument(tracing::info_span!(
                "webhook_post",
                endpoint = %endpoint.id,
                event = %event.id
            ))
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
        tx.commit().await?;
        let label = if outcome.succeeded() {
            "delivered"
        } else if delivery.status == DeliveryStatus::Pending {
            "retry"
        } else {
            "failed"
        };
        let lag = outcome
            .succeeded()
            .then(|| (now - event.occurred_at).num_milliseconds() as f64 / 1000.0);
        self.metrics.count_webhook_delivery(label, lag);
        if outcome.succeeded() {
            tracing::info!(endpoint = %endpoint.id, event = %event.id, "webhook delivered");
        } else {
            tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, event = %event.id,
                attempt = delivery.attempts, error = %outcome.error, outcome = label,
                "webhook delivery failed");
        }
        Ok(())
    }
}
