//! Webhook endpoints and the delivery of events to them.

use super::backoff;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Attempts per delivery before it is given up.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 10;

/// Every event type the service appends, or will append, as documented in `event.proto`.
pub const KNOWN_EVENT_TYPES: &[&str] = &[
    "invoice.created",
    "invoice.updated",
    "invoice.overdue",
    "invoice.paid",
    "invoice.voided",
    "invoice.written_off",
    "payment.recorded",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "process.started",
    "process.invoice_joined",
    "process.step_executed",
    "process.paused",
    "process.resumed",
    "process.reset",
    "process.advanced",
    "process.exhausted",
    "process.escalated",
    "process.resolved",
    "process.cancelled",
    "sales.informed",
    "suspension.requested",
    "suspension.lift_requested",
    "notification.sent",
    "notification.failed",
    "notification.suppressed",
    "payment.attempted",
    "payment.succeeded",
    "payment.failed",
    "payment_request.created",
    "payment_request.amount_changed",
    "payment_request.settled",
    "payment_request.failed",
    "payment_request.superseded",
    "payment_request.canceled",
    "fee.booked",
    "interest.booked",
    "promise.recorded",
    "promise.kept",
    "promise.broken",
    "payment_plan.recorded",
    "payment_plan.instalment_met",
    "payment_plan.instalment_missed",
    "payment_plan.completed",
    "payment_plan.cancelled",
    "policy.assigned",
    "webhook_endpoint.disabled",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty = every type.
    pub event_types: Vec<String>,
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub consecutive_failures: i32,
    /// Every event of the organization up to this sequence was considered for delivery.
    pub cursor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }

    /// Enables or disables at the caller's request; enabling clears the failure run.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if enabled {
            self.consecutive_failures = 0;
        }
        self.disabled_reason.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_sequence: i64,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// Of the last attempt; 0 when no response was received.
    pub response_status_code: i32,
    pub latency_ms: i64,
    pub error: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What one POST to an endpoint gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// `None` when no response arrived (timeout, connection refused).
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed; empty on success.
    pub error: String,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

impl WebhookDelivery {
    /// A delivery of an event to an endpoint, due at once.
    pub fn new(
        id: Uuid,
        endpoint: &WebhookEndpoint,
        event_id: Uuid,
        event_sequence: i64,
        event_type: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            organization_id: endpoint.organization_id,
            endpoint_id: endpoint.id,
            event_id,
            event_sequence,
            event_type: event_type.to_owned(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            response_status_code: 0,
            latency_ms: 0,
            error: String::new(),
            next_attempt_at: Some(now),
            last_attempt_at: None,
            created_at: now,
        }
    }

    /// Records an attempt: SUCCEEDED on 2xx; otherwise a retry after a backoff, or FAILED once
    /// the attempts are used up.
    pub fn record(&mut self, outcome: &AttemptOutcome, now: DateTime<Utc>, jitter: f64) {
        self.attempts += 1;
        self.response_status_code = outcome.status_code.map(i32::from).unwrap_or(0);
        self.latency_ms = outcome.latency_ms;
        self.last_attempt_at = Some(now);
        if outcome.succeeded() {
            self.status = DeliveryStatus::Succeeded;
            self.error.clear();
            self.next_attempt_at = None;
        } else {
            self.error = outcome.error.clone();
            if self.attempts >= MAX_DELIVERY_ATTEMPTS {
                self.give_up(&outcome.error);
            } else {
                self.next_attempt_at = Some(now + retry_delay(self.attempts, jitter));
            }
        }
    }

    /// No more attempts (retries used up, endpoint disabled or deleted).
    pub fn give_up(&mut self, why: &str) {
        self.status = DeliveryStatus::Failed;
        self.next_attempt_at = None;
        if self.error.is_empty() {
            self.error = why.to_owned();
        }
    }
}

/// Delay before the next attempt after `attempts` failed ones: 1 minute doubling, capped at
/// 6 hours, with jitter.
pub fn retry_delay(attempts: i32, jitter: f64) -> Duration {
    backoff::exponential(Duration::minutes(1), Duration::hours(6), attempts, jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> WebhookDelivery {
        WebhookDelivery {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            endpoint_id: Uuid::nil(),
            event_id: Uuid::nil(),
            event_sequence: 1,
            event_type: "invoice.overdue".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            response_status_code: 0,
            latency_ms: 0,
            error: String::new(),
            next_attempt_at: Some(DateTime::UNIX_EPOCH),
            last_attempt_at: None,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn failures_retry_then_give_up() {
        let now = DateTime::UNIX_EPOCH;
        let failed = AttemptOutcome {
            status_code: Some(503),
            latency_ms: 12,
            error: "HTTP 503".into(),
        };
        let mut d = delivery();
        d.record(&failed, now, 0.5);
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.next_attempt_at, Some(now + Duration::minutes(1)));
        assert_eq!(d.response_status_code, 503);
        for _ in 1..MAX_DELIVERY_ATTEMPTS {
            d.record(&failed, now, 0.5);
        }
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.next_attempt_at, None);
        let mut ok = delivery();
        ok.record(
            &AttemptOutcome {
                status_code: Some(204),
                latency_ms: 3,
                error: String::new(),
            },
            now,
            0.5,
        );
        assert_eq!(ok.status, DeliveryStatus::Succeeded);
    }
}
