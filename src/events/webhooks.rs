//! Sending one event to one webhook endpoint: the JSON body, the signature headers and the
//! POST. What to send when, and what an outcome changes, is decided by
//! `Jobs::deliver_due_webhooks`.

use crate::domain::event::Event;
use crate::domain::signature;
use crate::domain::webhook::AttemptOutcome;
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::{Duration, Instant};

/// Posts events to endpoints; holds the HTTP client and the delivery policy.
#[derive(Clone)]
pub struct WebhookSender {
    client: crate::outbound::Outbound,
    /// Failed attempts in a row after which an endpoint is disabled.
    pub failures_before_disable: i32,
}

impl WebhookSender {
    pub fn new(
        timeout: Duration,
        failures_before_disable: i32,
        targets: crate::domain::target::TargetPolicy,
    ) -> Result<Self, String> {
        Ok(Self {
            client: crate::outbound::Outbound::new(timeout, "webhooks", targets)?,
            failures_before_disable,
        })
    }

    /// POSTs `event` to `url`, signed with `secret` at `now`. Never fails: a failure is an
    /// outcome to record.
    pub async fn send(
        &self,
        url: &str,
        secret: &str,
        event: &Event,
        now: DateTime<Utc>,
    ) -> AttemptOutcome {
        let body = body(event);
        let id = event.id.to_string();
        // Measures the call's duration for the delivery log; no rule reads it as a time.
        #[allow(clippy::disallowed_methods)]
        let started = Instant::now();
        let request = match self.client.post(url) {
            Ok(request) => request,
            Err(refused) => {
                return AttemptOutcome {
                    status_code: None,
                    latency_ms: 0,
                    error: refused,
                };
            }
        };
        let response = request
            .header("content-type", "application/json")
            .header("dunning-event-id", &id)
            .header(
                "dunning-signature",
                signature::sign(secret, &id, now.timestamp(), &body),
            )
            .body(body)
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as i64;
        match response {
            Ok(r) => {
                let status = r.status();
                AttemptOutcome {
                    status_code: Some(status.as_u16()),
                    latency_ms,
                    error: if status.is_success() {
                        String::new()
                    } else {
                        format!("HTTP {}", status.as_u16())
                    },
                }
            }
            Err(e) => AttemptOutcome {
                status_code: None,
                latency_ms,
                error: if e.is_timeout() {
                    "timeout".into()
                } else if e.is_connect() {
                    format!("connection failed: {}", crate::outbound::describe(&e))
                } else {
                    format!("request failed: {}", crate::outbound::describe(&e))
                },
            },
        }
    }
}

/// The JSON body of a delivery (documented in `webhook.proto`).
pub fn body(event: &Event) -> Vec<u8> {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    let value = serde_json::json!({
        "id": event.id.to_string(),
        "sequence": event.sequence,
        "type": event.event_type,
        "event_time": event.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "customer_id": id(event.customer_id),
        "customer_external_id": event.customer_external_id,
        "invoice_id": id(event.invoice_id),
        "invoice_external_id": event.invoice_external_id,
        "process_id": id(event.process_id),
        "payload": event.payload,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}
