//! Delivers due emails from the outbox.

use crate::core::Caller;
use crate::core::CustomerRef;
use crate::core::lookup::load_customer;
use crate::core::outbox::notification_event;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::notification::MAX_ATTEMPTS;
use crate::domain::notification::Notification;
use crate::domain::notification::NotificationState;
use crate::domain::notification::next_send_time;
use crate::domain::notification::retry_delay;
use crate::engine::Engine;
use crate::engine::runtime::Job;
use crate::error::Error;
use crate::notify::transport::Mailer;
use crate::notify::transport::SendError;
use chrono::DateTime;
use chrono::Utc;
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

pub struct OutboxDelivery {
    pub engine: Engine,
    pub mailer: Arc<dyn Mailer>,
}

#[async_trait::async_trait]
impl Job for OutboxDelivery {
    fn name(&self) -> &'static str {
        "outbox_delivery"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.engine.deliver_due_notifications(&self.mailer).await
    }

    async fn woken(&self) {
        self.engine.outbox_changed().await
    }
}

/// Notifications claimed per delivery round.
const DELIVERY_BATCH: u64 = 200;

impl Engine {
    /// Sends every notification whose attempt is due; returns how many attempts were made.
    /// Safe on several replicas at once: each notification is claimed before it is sent.
    /// Up to `mailer.concurrency()` messages are in flight; outcomes are recorded in batches,
    /// one transaction each.
    pub async fn deliver_due_notifications(
        &self,
        mailer: &Arc<dyn Mailer>,
    ) -> Result<usize, Error> {
        let now = self.now();
        let due = self.store.due_notifications(now, DELIVERY_BATCH).await?;
        let ids: Vec<Uuid> = due.iter().map(|n| n.id).collect();
        let won = self
            .store
            .claim_notifications(&ids, now, now + self.claim_lease)
            .await?;
        let won: std::collections::HashSet<Uuid> = won.into_iter().collect();
        let claimed: Vec<Notification> = due.into_iter().filter(|n| won.contains(&n.id)).collect();
        let attempted = claimed.len();
        let concurrency = mailer.concurrency().max(1);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut pending = claimed.into_iter();
        let mut finished = Vec::new();
        loop {
            while in_flight.len() < concurrency {
                let Some(n) = pending.next() else { break };
                let mailer = mailer.clone();
                let span = tracing::info_span!("smtp_send", notification = %n.id, kind = %n.kind);
                in_flight.spawn(
                    async move {
                        // Measures the send's duration; no rule reads it as a time.
                        #[allow(clippy::disallowed_methods)]
                        let started = std::time::Instant::now();
                        let outcome = mailer.send(&n).await;
                        (n, outcome, started.elapsed().as_secs_f64())
                    }
                    .instrument(span),
                );
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            finished.push(joined.map_err(|e| Error::Internal(format!("delivery task: {e}")))?);
            if finished.len() >= concurrency || in_flight.is_empty() {
                self.record_deliveries(std::mem::take(&mut finished))
                    .await?;
            }
        }
        self.record_deliveries(finished).await?;
        Ok(attempted)
    }

    /// Records the outcomes of attempts, with their events, in one transaction.
    async fn record_deliveries(
        &self,
        outcomes: Vec<(Notification, Result<String, SendError>, f64)>,
    ) -> Result<(), Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut updated = Vec::with_capacity(outcomes.len());
        let mut events: Vec<(Uuid, NewEvent)> = Vec::new();
        for (mut n, outcome, seconds) in outcomes {
            n.attempts += 1;
            n.updated_at = now;
            match outcome {
                Ok(response) => {
                    self.metrics.count_delivery("sent", seconds);
                    tracing::info!(notification = %n.id, kind = %n.kind, attempt = n.attempts,
                        "email sent");
                    n.state = NotificationState::Sent;
                    n.sent_at = Some(now);
                    n.next_attempt_at = None;
                    n.server_response = response;
                    n.last_error.clear();
                    events.push((
                        n.organization_id,
                        notification_event(EventType::NotificationSent, &n, now),
                    ));
                }
                Err(e) if e.permanent || n.attempts >= MAX_ATTEMPTS => {
                    self.metrics.count_delivery("failed", seconds);
                    tracing::warn!(notification = %n.id, kind = %n.kind, attempt = n.attempts,
                        error = %e.message, "email failed for good");
                    n.state = NotificationState::Failed;
                    n.next_attempt_at = None;
                    n.last_error = e.message;
                    events.push((
                        n.organization_id,
                        notification_event(EventType::NotificationFailed, &n, now),
                    ));
                }
                Err(e) => {
                    self.metrics.count_delivery("retry", seconds);
                    tracing::warn!(notification = %n.id, kind = %n.kind, attempt = n.attempts,
                        error = %e.message, "email not sent; will retry");
                    n.last_error = e.message;
                    let retry_at = now + retry_delay(n.attempts, rand::random::<f64>());
                    n.next_attempt_at = Some(self.sending_window(&n, retry_at).await?);
                }
            }
            updated.push(n);
        }
        let tx = self.store.begin().await?;
        for n in &updated {
            tx.update_notification(n).await?;
        }
        // Events per organization, in the order the outcomes were recorded.
        let mut organizations: Vec<Uuid> = Vec::new();
        for (organization_id, _) in &events {
            if !organizations.contains(organization_id) {
                organizations.push(*organization_id);
            }
        }
        for organization_id in organizations {
            let of_org: Vec<NewEvent> = events
                .iter()
                .filter(|(o, _)| *o == organization_id)
                .map(|(_, e)| e.clone())
                .collect();
            tx.append_events(organization_id, &of_org).await?;
        }
        tx.commit().await
    }

    /// The first moment at or after `at` inside the customer's sending window.
    async fn sending_window(
        &self,
        n: &Notification,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        let owner = Caller::system(n.organization_id);
        let tz = load_customer(&self.store, owner, &CustomerRef::Id(n.customer_id))
            .await
            .map(|c| c.details.timezone)
            .unwrap_or(chrono_tz::UTC);
        let quiet = crate::core::lookup::load_organization(&self.store, owner)
            .await?
            .settings
            .quiet_hours;
        Ok(next_send_time(at, tz, &quiet))
    }
}
