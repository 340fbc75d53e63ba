//! Charges due payment requests and emails their payment links.

use crate::core::Caller;
use crate::core::CustomerRef;
use crate::core::charging::load_request;
use crate::core::charging::lock_request;
use crate::core::charging::minimum_charge;
use crate::core::lookup::load_customer;
use crate::core::lookup::load_organization;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::payment_request::ChargeTarget;
use crate::domain::payment_request::Decline;
use crate::domain::payment_request::NextAction;
use crate::domain::payment_request::PaymentRequestStatus;
use crate::engine::Engine;
use crate::engine::runtime::Job;
use crate::error::Error;
use crate::payments::ChargeOutcome;
use crate::payments::ChargeRequest;
use crate::payments::PaymentProvider;
use crate::payments::Providers;
use chrono::Duration;
use futures_util::StreamExt;
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

pub struct PaymentRequests {
    pub engine: Engine,
    pub providers: Providers,
}

#[async_trait::async_trait]
impl Job for PaymentRequests {
    fn name(&self) -> &'static str {
        "payment_requests"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.engine
            .process_due_payment_requests(&self.providers)
            .await
    }

    async fn woken(&self) {
        self.engine.payment_requests_changed().await
    }
}

/// How long a claimed request is reserved for the worker charging it; a worker that dies
/// mid-charge leaves it to be charged again (same key) after this. Well above the longest
/// payment timeout (300 s), so a live call is never duplicated.
const CHARGE_LEASE: Duration = Duration::minutes(10);
/// Requests worked on per round, and at the same time.
const WORK_BATCH: u64 = 200;
const WORK_CONCURRENCY: usize = 16;

impl Engine {
    /// Charges or emails every payment request with work due; returns how many were worked
    /// on. Safe on several replicas at once: each request is claimed before it is worked on.
    pub async fn process_due_payment_requests(
        &self,
        providers: &Providers,
    ) -> Result<usize, Error> {
        let now = self.now();
        let due = self.store.due_payment_requests(now, WORK_BATCH).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for (organization_id, id) in due {
            if self
                .store
                .claim_payment_request(id, now, now + CHARGE_LEASE)
                .await?
            {
                claimed.push((Caller::system(organization_id), id));
            }
        }
        let count = claimed.len();
        let mut work = futures_util::stream::iter(claimed)
            .map(|(caller, id)| async move {
                if let Err(e) = self.work_on_payment_request(providers, caller, id).await {
                    // The claim expires and the request is worked on again (same key).
                    tracing::warn!(payment_request = %id, error = %e, "payment request work failed");
                }
            })
            .buffer_unordered(WORK_CONCURRENCY);
        while work.next().await.is_some() {}
        Ok(count)
    }

    async fn work_on_payment_request(
        &self,
        providers: &Providers,
        caller: Caller,
        id: Uuid,
    ) -> Result<(), Error> {
        let request = load_request(&self.store, caller, id, false).await?;
        let org = load_organization(&self.store, caller).await?;
        let customer =
            load_customer(&self.store, caller, &CustomerRef::Id(request.customer_id)).await?;
        // A charge in flight goes where its first call went; a new one to the customer's
        // current payment method.
        let target = match &request.charge_target {
            Some(target) => Some(target.clone()),
            None => customer
                .details
                .payment_method
                .as_ref()
                .filter(|_| !customer.is_deleted())
                .and_then(|m| providers.target_for(&org.settings.payment_provider, m)),
        };
        let provider = target.as_ref().and_then(|t| {
            providers
                .provider(&org.settings.payment_provider, t)
                .map(|p| (p, t.clone()))
        });
        let minimum = minimum_charge(&org, &request);
        let email_link = match (request.next_action(provider.is_some(), minimum), provider) {
            (NextAction::Charge, Some((provider, target))) => {
                return self.charge(caller, id, provider, target).await;
            }
            (NextAction::Email { why }, _) => {
                tracing::info!(payment_request = %id, why, "emailing the payment link");
                true
            }
            (NextAction::Charge | NextAction::Nothing, _) => false,
        };
        let tx = self.store.begin().await?;
        let events = self
            .work_without_charge(&tx, caller, id, email_link)
            .await?;
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await
    }

    /// One call to the provider for a request's charge: PROCESSING is committed before the
    /// call, the outcome in a second transaction after it.
    async fn charge(
        &self,
        caller: Caller,
        id: Uuid,
        provider: Arc<dyn PaymentProvider>,
        target: ChargeTarget,
    ) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        let mut request = load_request(&tx, caller, id, true).await?;
        if !matches!(
            request.status,
            PaymentRequestStatus::Pending | PaymentRequestStatus::Processing
        ) {
            return Ok(());
        }
        let now = self.now();
        let first_call = request.charge_idempotency_key.is_empty();
        request.begin_charge_call(&target, now);
        tx.update_payment_request(&request).await?;
        if first_call {
            tx.append_events(
                caller.organization_id,
                &[NewEvent::payment_attempt(
                    EventType::PaymentAttempted,
                    &request,
                    provider.name(),
                    None,
                    now,
                )],
            )
            .await?;
        }
        tx.commit().await?;

        // Measures the provider's answer time; no rule reads it as a time.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let outcome = provider
            .charge(&ChargeRequest {
                idempotency_key: request.charge_idempotency_key.clone(),
                organization_id: caller.organization_id,
                payment_request_id: id,
                customer_external_id: request.customer_external_id.clone(),
                payment_method_token: target.token.clone(),
                currency: request.currency,
                amount_minor: request.amount_minor,
                invoice_external_ids: request.invoice_external_ids(),
                now,
                retry: !first_call,
            })
            .instrument(tracing::info_span!(
                "payment_charge",
                payment_request = %id,
                provider = provider.name()
            ))
            .await;
        let label = match &outcome {
            ChargeOutcome::Succeeded { .. } => "succeeded",
            ChargeOutcome::Declined { decline, .. } if decline.hard => "declined_hard",
            ChargeOutcome::Declined { .. } => "declined",
            ChargeOutcome::Pending { .. } => "pending",
            ChargeOutcome::Unknown { .. } => "unknown",
        };
        self.metrics
            .count_payment_attempt(provider.name(), label, started.elapsed().as_secs_f64());
        if label == "unknown" {
            tracing::warn!(payment_request = %id, provider = provider.name(),
                "charge outcome unknown; it is asked again with the same idempotency key");
        } else {
            tracing::info!(payment_request = %id, provider = provider.name(), outcome = label,
                "charge attempted");
        }

        let tx = self.store.begin().await?;
        let (mut request, mut invoices) = lock_request(&tx, caller, id).await?;
        let succeeded = matches!(outcome, ChargeOutcome::Succeeded { .. });
        // The payments service may have reported a result meanwhile: a decline reported then
        // does not hide money this call collected, but nothing else overrides it.
        if !(request.status == PaymentRequestStatus::Processing
            || succeeded && request.status.is_open())
        {
            return Ok(());
        }
        let now = self.now();
        let events = match outcome {
            ChargeOutcome::Succeeded { reference } => {
                self.settle_paid(
                    &tx,
                    &mut request,
                    &mut invoices,
                    &reference,
                    provider.name(),
                    now,
                )
                .await?
            }
            ChargeOutcome::Declined { decline, reference } => {
                self.record_decline(
                    &tx,
                    caller,
                    &mut request,
                    &invoices,
                    decline,
                    &reference,
                    provider.name(),
                    now,
                )
                .await?
            }
            ChargeOutcome::Pending { reference } => {
                request.await_result(&reference, now);
                Vec::new()
            }
            ChargeOutcome::Unknown { reason } => {
                tracing::warn!(payment_request = %id, %reason, calls = request.attempt_count,
                    "charge outcome unknown");
                if request.retry_unknown(now, rand::random::<f64>()) {
                    Vec::new()
                } else {
                    // Out of retries: the payments service must report the result. No email:
                    // the money may have been taken.
                    let unknown = Decline {
                        code: "unknown".into(),
                        message: reason,
                        hard: false,
                    };
                    vec![NewEvent::payment_attempt(
                        EventType::PaymentFailed,
                        &request,
                        provider.name(),
                        Some(&unknown),
                        now,
                    )]
                }
            }
        };
        let mut events = events;
        events.extend(self.save_request(&tx, &request).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await
    }
}
