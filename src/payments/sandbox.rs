//! The sandbox provider: the payment-method token decides the outcome, so demos and tests can
//! walk every path without a real PSP.
//!
//! | token                    | outcome                                   |
//! |--------------------------|-------------------------------------------|
//! | `tok_success`            | paid                                      |
//! | `tok_insufficient_funds` | soft decline `insufficient_funds`         |
//! | `tok_stolen_card`        | hard decline `stolen_card`                |
//! | `tok_timeout`            | unknown outcome (as if the call timed out) |
//! | anything else            | hard decline `invalid_payment_method`     |

use super::{ChargeOutcome, ChargeRequest, PaymentProvider};
use crate::domain::payment_request::Decline;

pub struct Sandbox;

#[async_trait::async_trait]
impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        // The same key always yields the same reference, as a real PSP's idempotency would.
        let reference = format!("sandbox_{}", request.idempotency_key);
        let decline = |code: &str, message: &str, hard: bool| ChargeOutcome::Declined {
            decline: Decline {
                code: code.into(),
                message: message.into(),
                hard,
            },
            reference: reference.clone(),
        };
        match request.payment_method_token.as_str() {
            "tok_success" => ChargeOutcome::Succeeded {
                reference: reference.clone(),
            },
            "tok_insufficient_funds" => decline(
                "insufficient_funds",
                "The card has insufficient funds.",
                false,
            ),
            "tok_stolen_card" => decline("stolen_card", "The card was reported stolen.", true),
            "tok_timeout" => ChargeOutcome::Unknown {
                reason: "sandbox: simulated timeout".into(),
            },
            _ => decline(
                "invalid_payment_method",
                "The sandbox does not know this payment method token.",
                true,
            ),
        }
    }
}
