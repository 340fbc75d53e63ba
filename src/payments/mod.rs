//! Payment providers: what charges a customer's stored payment method. `sandbox` answers
//! deterministically by token (demos and tests); `http` asks the organization's own payments
//! service. Every charge carries an idempotency key that stays the same across retries, so a
//! provider charges a request at most once however often it is asked.

mod http;
mod sandbox;

pub use http::HttpProvider;
pub use sandbox::Sandbox;

use crate::domain::customer::PaymentMethod;
use crate::domain::money::Currency;
use crate::domain::organization::PaymentProviderSettings;
use crate::domain::payment_request::{ChargeTarget, Decline};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub organization_id: Uuid,
    pub payment_request_id: Uuid,
    pub customer_external_id: String,
    pub payment_method_token: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub invoice_external_ids: Vec<String>,
    /// The service's clock, for the request signature's timestamp.
    pub now: DateTime<Utc>,
    /// A repeated call about the same charge (the earlier outcome is unknown).
    pub retry: bool,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        reference: String,
    },
    Declined {
        decline: Decline,
        reference: String,
    },
    /// Accepted; the result arrives later through RecordPaymentResult.
    Pending {
        reference: String,
    },
    /// No answer we can trust (timeout, connection error, 5xx): the charge may or may not have
    /// happened, so it is retried with the same idempotency key.
    Unknown {
        reason: String,
    },
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name as organizations and payment methods spell it.
    fn name(&self) -> &'static str;
    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome;
}

/// Builds the provider an organization's settings name; holds the shared HTTP client.
#[derive(Clone)]
pub struct Providers {
    client: crate::outbound::Outbound,
}

impl Providers {
    /// `timeout` bounds one call to an organization's payments service.
    pub fn new(
        timeout: Duration,
        targets: crate::domain::target::TargetPolicy,
    ) -> Result<Self, String> {
        Ok(Self {
            client: crate::outbound::Outbound::new(timeout, "payments", targets)?,
        })
    }

    /// Where a charge of this payment method would go for an organization with these
    /// settings, or `None` when the organization charges nothing, or with another provider.
    pub fn target_for(
        &self,
        settings: &PaymentProviderSettings,
        method: &PaymentMethod,
    ) -> Option<ChargeTarget> {
        let usable = settings.provider == method.provider
            && match settings.provider.as_str() {
                "sandbox" => true,
                "http" => !settings.http_url.is_empty(),
                _ => false,
            };
        usable.then(|| ChargeTarget {
            provider: settings.provider.clone(),
            url: settings.http_url.clone(),
            token: method.token.clone(),
        })
    }

    /// The provider that charges `target`; an `http` target is signed with the organization's
    /// current secret.
    pub fn provider(
        &self,
        settings: &PaymentProviderSettings,
        target: &ChargeTarget,
    ) -> Option<Arc<dyn PaymentProvider>> {
        match target.provider.as_str() {
            "sandbox" => Some(Arc::new(Sandbox)),
            "http" if !target.url.is_empty() => Some(Arc::new(HttpProvider::new(
                self.client.clone(),
                target.url.clone(),
                settings.http_secret.clone(),
            ))),
            _ => None,
        }
    }
}
