//! Webhooks through the gRPC API against a real HTTP receiver on 127.0.0.1: signed deliveries,
//! event-type filters, retries with backoff, auto-disable, the delivery log.

use crate::common::http::{self, HttpRequest, HttpResponse};
use crate::common::{TestServer, assert_error, bad_fields, customer};
use chrono::Duration;
use dunning::proto;
use std::sync::{Arc, Mutex};
use tonic::Code;

/// A webhook receiver that verifies each request's signature with the secret it is told, and
/// answers with the next scripted status (200 once the script is used up; 0 = answer only
/// after the service's timeout).
#[derive(Clone, Default)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    script: Arc<Mutex<Vec<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature_valid: bool,
    body: serde_json::Value,
    status: u16,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let r = receiver.clone();
        let base = http::serve(Arc::new(move |request| r.answer(request))).await;
        (receiver, format!("{base}/hooks"))
    }

    fn answer(&self, request: HttpRequest) -> HttpResponse {
        let event_id = request.header("dunning-event-id");
        let secret = self.secret.lock().unwrap().clone();
        let signature_valid = dunning::domain::signature::verify(
            &secret,
            &event_id,
            &request.body,
            &request.header("dunning-signature"),
        );
        let mut script = self.script.lock().unwrap();
        let status = if !signature_valid {
            401
        } else if script.is_empty() {
            200
        } else {
            script.remove(0)
        };
        self.received.lock().unwrap().push(Received {
            event_id,
            signature_valid,
            body: serde_json::from_slice(&request.body).unwrap_or_default(),
            status,
        });
        HttpResponse {
            status: if status == 0 { 200 } else { status },
            body: "{}".into(),
            // Well past the service's webhook timeout in tests (500 ms).
            delay: (status == 0).then_some(std::time::Duration::from_secs(5)),
        }
    }

    fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = secret.to_owned();
    }

    fn fail_next(&self, statuses: &[u16]) {
        *self.script.lock().unwrap() = statuses.to_vec();
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn create_endpoint(s: &TestServer, url: &str, types: &[&str]) -> proto::WebhookEndpoint {
    s.webhooks()
        .create_webhook_endpoint(proto::CreateWebhookEndpointRequest {
            webhook_endpoint: Some(proto::WebhookEndpoint {
                url: url.into(),
                description: "test receiver".into(),
                event_types: types.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap()
}

async fn create_customer(s: &TestServer, id: &str) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer(id)),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

async fn deliveries(s: &TestServer, endpoint_id: &str) -> Vec<proto::WebhookDelivery> {
    s.webhooks()
        .list_webhook_deliveries(proto::ListWebhookDeliveriesRequest {
            endpoint_id: endpoint_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_deliveries
}

async fn endpoint(s: &TestServer, id: &str) -> proto::WebhookEndpoint {
    s.webhooks()
        .get_webhook_endpoint(proto::GetWebhookEndpointRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap()
}

/// Events appended after the endpoint was created arrive signed, with the event id header and
/// the documented body; the delivery log shows status codes and latency.
async fn signed_deliveries_of_new_events(s: &TestServer) {
    create_customer(s, "before").await;
    let (receiver, url) = Receiver::start().await;
    let created = create_endpoint(s, &url, &[]).await;
    assert!(created.secret.starts_with("whsec_"));
    assert!(created.enabled);
    receiver.set_secret(&created.secret);
    assert!(
        endpoint(s, &created.id).await.secret.is_empty(),
        "shown once"
    );

    create_customer(s, "after_1").await;
    create_customer(s, "after_2").await;
    assert_eq!(
        s.deliver_webhooks().await,
        4,
        "2 deliveries created, 2 attempts"
    );
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.signature_valid && r.status == 200)
    );
    let events = s.events().await;
    let mut sequences: Vec<i64> = received
        .iter()
        .map(|r| r.body["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort();
    assert_eq!(
        sequences,
        vec![2, 3],
        "only events after the endpoint was created"
    );
    for r in &received {
        let event = events
            .iter()
            .find(|e| e.id == r.event_id)
            .expect("header names the event");
        assert_eq!(r.body["id"], event.id.as_str());
        assert_eq!(r.body["type"], "customer.created");
        assert_eq!(
            r.body["customer_external_id"],
            event.customer_external_id.as_str()
        );
        assert_eq!(r.body["payload"]["kind"], "customer");
    }
    let log = deliveries(s, &created.id).await;
    assert_eq!(log.len(), 2);
    for d in &log {
        assert_eq!(d.status, proto::WebhookDeliveryStatus::Succeeded as i32);
        assert_eq!(d.attempt, 1);
        assert_eq!(d.response_status_code, 200);
        assert!(d.latency_ms >= 0 && d.latency_ms < 5_000);
        assert!(d.last_attempt_time.is_some());
        assert!(d.next_attempt_time.is_none());
        assert_eq!(d.event_type, "customer.created");
    }
    assert_eq!(s.deliver_webhooks().await, 0, "nothing delivered twice");
}

/// Only the listed event types are delivered.
async fn event_type_filter(s: &TestServer) {
    let (receiver, url) = Receiver::start().await;
    let created = create_endpoint(s, &url, &["invoice.created"]).await;
    receiver.set_secret(&created.secret);
    create_customer(s, "cus_1").await;
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(crate::common::invoice("inv_1", "cus_1")),
        })
        .await
        .unwrap();
    s.deliver_webhooks().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["type"], "invoice.created");
    assert_eq!(received[0].body["invoice_external_id"], "inv_1");
}

/// A receiver that fails for a while: the delivery is retried after a backoff with jitter
/// (never before it), then succeeds; the log shows every attempt's outcome.
async fn failures_are_retried_with_backoff(s: &TestServer) {
    let (receiver, url) = Receiver::start().await;
    let created = create_endpoint(s, &url, &[]).await;
    receiver.set_secret(&created.secret);
    receiver.fail_next(&[503, 0]);
    create_customer(s, "cus_1").await;
    s.deliver_webhooks().await;
    let first = deliveries(s, &created.id).await.remove(0);
    assert_eq!(first.status, proto::WebhookDeliveryStatus::Pending as i32);
    assert_eq!((first.attempt, first.response_status_code), (1, 503));
    assert_eq!(first.error, "HTTP 503");
    let next = first.next_attempt_time.unwrap().seconds - first.last_attempt_time.unwrap().seconds;
    assert!((48..=72).contains(&next), "1 minute ± 20 %: {next} s");

    assert_eq!(s.deliver_webhooks().await, 0, "not before the backoff");
    s.clock.advance(Duration::seconds(73));
    s.deliver_webhooks().await;
    let second = deliveries(s, &created.id).await.remove(0);
    assert_eq!((second.attempt, second.response_status_code), (2, 0));
    assert_eq!(second.error, "timeout");
    assert!(second.latency_ms >= 500, "{}", second.latency_ms);
    s.clock.advance(Duration::minutes(3));
    s.deliver_webhooks().await;
    let third = deliveries(s, &created.id).await.remove(0);
    assert_eq!(third.status, proto::WebhookDeliveryStatus::Succeeded as i32);
    assert_eq!((third.attempt, third.response_status_code), (3, 200));
    assert!(third.error.is_empty());
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.event_id == received[0].event_id));
    assert_eq!(endpoint(s, &created.id).await.consecutive_failures, 0);
}

/// After the configured run of failures (3 in this test) the endpoint is disabled, with an
/// event, and its pending deliveries fail; enabling it again resumes delivery.
async fn failing_endpoint_is_disabled(s: &TestServer) {
    let (receiver, url) = Receiver::start().await;
    let created = create_endpoint(s, &url, &["customer.created"]).await;
    receiver.set_secret(&created.secret);
    receiver.fail_next(&[500; 10]);
    create_customer(s, "cus_1").await;
    create_customer(s, "cus_2").await;
    s.deliver_webhooks().await;
    assert_eq!(endpoint(s, &created.id).await.consecutive_failures, 2);
    s.clock.advance(Duration::minutes(2));
    s.deliver_webhooks().await;
    let disabled = endpoint(s, &created.id).await;
    assert!(!disabled.enabled);
    assert!(
        disabled
            .disabled_reason
            .contains("3 consecutive failed attempts"),
        "{}",
        disabled.disabled_reason
    );
    let log = deliveries(s, &created.id).await;
    assert!(
        log.iter()
            .all(|d| d.status == proto::WebhookDeliveryStatus::Failed as i32)
    );
    let events = s.events().await;
    let event = events
        .iter()
        .find(|e| e.r#type == "webhook_endpoint.disabled")
        .expect("an event says so");
    match &event.payload {
        Some(proto::event::Payload::WebhookEndpoint(p)) => {
            assert_eq!(p.endpoint_id, created.id);
            assert_eq!(p.consecutive_failures, 3);
        }
        other => panic!("unexpected payload {other:?}"),
    }
    create_customer(s, "cus_3").await;
    s.clock.advance(Duration::hours(1));
    let attempts_before = receiver.received().len();
    s.deliver_webhooks().await;
    assert_eq!(
        receiver.received().len(),
        attempts_before,
        "a disabled endpoint gets nothing"
    );

    receiver.fail_next(&[]);
    let enabled = s
        .webhooks()
        .update_webhook_endpoint(proto::UpdateWebhookEndpointRequest {
            webhook_endpoint: Some(proto::WebhookEndpoint {
                id: created.id.clone(),
                enabled: true,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["enabled".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    assert!(enabled.enabled && enabled.disabled_reason.is_empty());
    assert_eq!(enabled.consecutive_failures, 0);
    s.deliver_webhooks().await;
    let last = receiver.received().pop().unwrap();
    assert_eq!(
        (last.body["customer_external_id"].as_str(), last.status),
        (Some("cus_3"), 200),
        "events appended while disabled follow once enabled"
    );
}

/// Validation, rotation, idempotent create, listing, deletion and tenancy.
async fn endpoint_management(s: &TestServer) {
    let api = s.webhooks();
    let bad = |url: &str, types: Vec<String>| proto::CreateWebhookEndpointRequest {
        webhook_endpoint: Some(proto::WebhookEndpoint {
            url: url.into(),
            event_types: types,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let status = assert_error(
        api.clone()
            .create_webhook_endpoint(bad(
                "ftp://hooks.example.com/x",
                vec!["invoice.overdue".into(), "invoice.exploded".into()],
            ))
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        bad_fields(&status),
        vec!["webhook_endpoint.url", "webhook_endpoint.event_types[1]"]
    );

    let (receiver, url) = Receiver::start().await;
    let request = proto::CreateWebhookEndpointRequest {
        webhook_endpoint: Some(proto::WebhookEndpoint {
            url: url.clone(),
            ..Default::default()
        }),
        request_id: "hook-1".into(),
    };
    let first = api
        .clone()
        .create_webhook_endpoint(request.clone())
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    let again = api
        .clone()
        .create_webhook_endpoint(request)
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    assert_eq!(
        (first.id.as_str(), first.secret.as_str()),
        (again.id.as_str(), again.secret.as_str())
    );

    let rotated = api
        .clone()
        .rotate_webhook_secret(proto::RotateWebhookSecretRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    assert_ne!(rotated.secret, first.secret);
    receiver.set_secret(&first.secret);
    create_customer(s, "cus_1").await;
    s.deliver_webhooks().await;
    assert!(
        !receiver.received()[0].signature_valid,
        "the old secret no longer signs"
    );
    receiver.set_secret(&rotated.secret);
    s.clock.advance(Duration::minutes(2));
    s.deliver_webhooks().await;
    assert!(receiver.received()[1].signature_valid);

    let status = assert_error(
        api.clone()
            .update_webhook_endpoint(proto::UpdateWebhookEndpointRequest {
                webhook_endpoint: Some(proto::WebhookEndpoint {
                    id: first.id.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["secret".into()],
                }),
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["update_mask"]);
    let second = create_endpoint(s, &url, &["invoice.overdue"]).await;
    let listed = api
        .clone()
        .list_webhook_endpoints(proto::ListWebhookEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoints;
    assert_eq!(
        listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![first.id.clone(), second.id.clone()]
    );
    assert!(listed.iter().all(|e| e.secret.is_empty()));

    let other = s.other_organization("globex").await;
    let foreign = dunning::proto::webhook_service_client::WebhookServiceClient::with_interceptor(
        s.channel.clone(),
        s.auth(&other),
    );
    assert_error(
        foreign
            .clone()
            .get_webhook_endpoint(proto::GetWebhookEndpointRequest {
                id: first.id.clone(),
            })
            .await,
        Code::NotFound,
        "WEBHOOK_ENDPOINT_NOT_FOUND",
    );
    api.clone()
        .delete_webhook_endpoint(proto::DeleteWebhookEndpointRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap();
    assert_error(
        api.clone()
            .get_webhook_endpoint(proto::GetWebhookEndpointRequest { id: first.id })
            .await,
        Code::NotFound,
        "WEBHOOK_ENDPOINT_NOT_FOUND",
    );
}

on_both_backends!(
    signed_deliveries_of_new_events,
    event_type_filter,
    failures_are_retried_with_backoff,
    failing_endpoint_is_disabled,
    endpoint_management,
);

/// Two replicas running webhook rounds at the same time on one PostgreSQL database: every
/// event is turned into one delivery and posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let s = TestServer::start(crate::common::Backend::Postgres).await;
    let (receiver, url) = Receiver::start().await;
    let created = create_endpoint(&s, &url, &[]).await;
    receiver.set_secret(&created.secret);
    for i in 0..20 {
        create_customer(&s, &format!("cus_{i}")).await;
    }
    let (replica, _) = s.second_replica().await;
    let (_, theirs) = tokio::join!(
        s.deliver_webhooks(),
        replica
            .engine()
            .deliver_due_webhooks(replica.webhook_sender())
    );
    theirs.unwrap();
    // Whatever one replica dispatched but left undelivered, the next round sends.
    s.deliver_webhooks().await;
    let mut ids: Vec<String> = receiver
        .received()
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(ids.len(), 20, "each event posted once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    assert_eq!(
        deliveries(&s, &created.id).await.len(),
        20,
        "one delivery per event"
    );
    replica.shutdown().await;
    s.stop().await;
}
