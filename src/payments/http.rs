//! The `http` provider: the organization's own payments service charges the customer.
//!
//! Request: `POST <http_url>` with a JSON body
//! `{"idempotency_key", "payment_request_id", "organization_id", "customer_external_id",
//! "payment_method_token", "currency_code", "amount", "amount_minor", "invoice_external_ids"}`
//! and the headers `Idempotency-Key: <key>` and
//! `Dunning-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<key>.<t>.<body>")>`.
//!
//! Response: 2xx with `{"status": "succeeded" | "failed" | "pending", "reference",
//! "decline_code", "decline_message", "hard_decline"}`. A 4xx other than 408/409/429 means the
//! service refused the request without charging (a soft decline `http_<status>`), except on a
//! retry, where the first call may have charged and the outcome stays unknown. A timeout,
//! a connection error, 408, 409 (same key still in progress), 429, a 5xx or an unreadable 2xx
//! body leave the outcome unknown: the charge is asked again later with the same key.

use super::{ChargeOutcome, ChargeRequest, PaymentProvider};
use crate::domain::payment_request::Decline;
use crate::domain::signature;
use serde::{Deserialize, Serialize};

pub struct HttpProvider {
    client: crate::outbound::Outbound,
    url: String,
    secret: String,
}

impl HttpProvider {
    pub fn new(client: crate::outbound::Outbound, url: String, secret: String) -> Self {
        Self {
            client,
            url,
            secret,
        }
    }
}

#[derive(Serialize)]
struct ChargeBody<'a> {
    idempotency_key: &'a str,
    payment_request_id: String,
    organization_id: String,
    customer_external_id: &'a str,
    payment_method_token: &'a str,
    currency_code: &'a str,
    amount: String,
    amount_minor: i64,
    invoice_external_ids: &'a [String],
}

#[derive(Deserialize)]
struct ChargeAnswer {
    status: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    decline_code: String,
    #[serde(default)]
    decline_message: String,
    #[serde(default)]
    hard_decline: bool,
}

#[async_trait::async_trait]
impl PaymentProvider for HttpProvider {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        let body = ChargeBody {
            idempotency_key: &request.idempotency_key,
            payment_request_id: request.payment_request_id.to_string(),
            organization_id: request.organization_id.to_string(),
            customer_external_id: &request.customer_external_id,
            payment_method_token: &request.payment_method_token,
            currency_code: request.currency.code(),
            amount: request.currency.format(request.amount_minor),
            amount_minor: request.amount_minor,
            invoice_external_ids: &request.invoice_external_ids,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(e) => {
                return ChargeOutcome::Unknown {
                    reason: format!("cannot encode the charge: {e}"),
                };
            }
        };
        let signature = signature::sign(
            &self.secret,
            &request.idempotency_key,
            request.now.timestamp(),
            &body,
        );
        let post = match self.client.post(&self.url) {
            Ok(post) => post,
            // Never sent, so certainly not charged.
            Err(refused) => {
                return ChargeOutcome::Declined {
                    decline: Decline {
                        code: "target_refused".into(),
                        message: format!("the payments service was {refused}"),
                        hard: false,
                    },
                    reference: String::new(),
                };
            }
        };
        let response = post
            .header("content-type", "application/json")
            .header("idempotency-key", &request.idempotency_key)
            .header("dunning-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return ChargeOutcome::Unknown {
                    reason: format!("charge request {what}: {}", crate::outbound::describe(&e)),
                };
            }
        };
        let status = response.status();
        // On a retry even a 4xx says nothing certain about the first call, which may have
        // charged: only an answer with a status counts.
        if status.is_server_error()
            || matches!(status.as_u16(), 408 | 409 | 429)
            || (request.retry && !status.is_success())
        {
            return ChargeOutcome::Unknown {
                reason: format!("payments service answered {status}"),
            };
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return ChargeOutcome::Declined {
                decline: Decline {
                    code: format!("http_{}", status.as_u16()),
                    message: format!(
                        "the payments service refused the charge request: {}",
                        text.chars().take(500).collect::<String>()
                    ),
                    hard: false,
                },
                reference: String::new(),
            };
        }
        let answer: ChargeAnswer = match response.json().await {
            Ok(a) => a,
            Err(e) => {
                return ChargeOutcome::Unknown {
                    reason: format!("unreadable answer from the payments service: {e}"),
                };
            }
        };
        match answer.status.as_str() {
            "succeeded" => ChargeOutcome::Succeeded {
                reference: answer.reference,
            },
            "pending" => ChargeOutcome::Pending {
                reference: answer.reference,
            },
            "failed" => ChargeOutcome::Declined {
                decline: Decline {
                    code: if answer.decline_code.is_empty() {
                        "declined".into()
                    } else {
                        answer.decline_code
                    },
                    message: answer.decline_message,
                    hard: answer.hard_decline,
                },
                reference: answer.reference,
            },
            other => ChargeOutcome::Unknown {
                reason: format!("payments service answered an unknown status `{other}`"),
            },
        }
    }
}
