//! Secrets stay secret: a webhook endpoint's signing secret, the payments provider's
//! `http_secret` and the API key are shown once where they are created (or never) and then
//! appear in no answer (Get, List, events, errors) and nowhere in the log of a real
//! `dunning serve` that handled them all.

use crate::common::{Backend, TestServer};
use dunning::proto;
use dunning::proto::dunning_service_client::DunningServiceClient;
use dunning::proto::organization_service_client::OrganizationServiceClient;
use dunning::proto::webhook_service_client::WebhookServiceClient;
use prost_types::FieldMask;

/// A successful answer as text, to search.
fn answer<T: std::fmt::Debug>(answer: Result<tonic::Response<T>, tonic::Status>) -> String {
    format!("{:?}", answer.expect("answered").into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_answer_and_no_log_line() {
    let s = TestServer::start(Backend::Postgres).await;
    let mut serve = crate::common::spawn_serve(
        s.database_url(),
        &[(
            "DUNNING_LOG",
            "debug,sqlx=warn,h2=info,hyper=info,tower=info".into(),
        )],
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", serve.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut webhooks = WebhookServiceClient::with_interceptor(channel.clone(), s.auth(&s.key));
    let mut organizations =
        OrganizationServiceClient::with_interceptor(channel.clone(), s.auth(&s.key));
    let mut dunning = DunningServiceClient::with_interceptor(channel, s.auth(&s.key));
    let mut answers = Vec::new();

    let created = webhooks
        .create_webhook_endpoint(proto::CreateWebhookEndpointRequest {
            webhook_endpoint: Some(proto::WebhookEndpoint {
                url: "https://hooks.example.com/dunning".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    let first_secret = created.secret.clone();
    let endpoint_id = created.id;
    let rotated = webhooks
        .rotate_webhook_secret(proto::RotateWebhookSecretRequest {
            id: endpoint_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap()
        .secret;
    let http_secret = format!("http-secret-{}", uuid::Uuid::new_v4().simple());
    let provider = |url: &str| proto::UpdateOrganizationRequest {
        organization: Some(proto::Organization {
            payment_provider: Some(proto::PaymentProviderSettings {
                provider: "http".into(),
                http_url: url.into(),
                http_secret: http_secret.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["payment_provider".into()],
        }),
    };
    answers.push(answer(
        organizations
            .update_organization(provider("https://payments.example.com/charge"))
            .await,
    ));
    // A refused update that carries the secret does not echo it.
    answers.push(format!(
        "{:?}",
        organizations
            .update_organization(provider("ftp://payments.example.com"))
            .await
            .unwrap_err()
    ));
    answers.push(answer(
        organizations
            .get_organization(proto::GetOrganizationRequest::default())
            .await,
    ));
    answers.push(answer(
        webhooks
            .get_webhook_endpoint(proto::GetWebhookEndpointRequest {
                id: endpoint_id.clone(),
            })
            .await,
    ));
    answers.push(answer(
        webhooks
            .list_webhook_endpoints(proto::ListWebhookEndpointsRequest::default())
            .await,
    ));
    answers.push(answer(
        webhooks
            .list_webhook_deliveries(proto::ListWebhookDeliveriesRequest::default())
            .await,
    ));
    answers.push(answer(
        dunning
            .list_events(proto::ListEventsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await,
    ));
    // Everything the process logged, up to its stop.
    serve.terminate().await;
    let mut log = Vec::new();
    while let Some(line) = serve.logs.recv().await {
        log.push(line.to_string());
    }
    assert!(
        log.iter().any(|l| l.contains("UpdateOrganization")),
        "the calls were logged"
    );

    for (name, secret) in [
        ("the first webhook secret", &first_secret),
        ("the rotated webhook secret", &rotated),
        ("the http_secret", &http_secret),
        ("the API key", &s.key),
    ] {
        assert!(secret.len() >= 16, "{name} is a real secret");
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "{name} in an answer: {answer}"
            );
        }
        for line in &log {
            assert!(!line.contains(secret.as_str()), "{name} in the log: {line}");
        }
    }
}
