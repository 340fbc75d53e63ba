//! The outbound rule where URLs are stored: a webhook endpoint, the http payments provider's
//! URL (whatever the provider) and the payment link template are refused, naming the field,
//! when they point into the network or at a cloud metadata service, in any spelling. With
//! `DUNNING_ALLOW_PRIVATE_TARGETS` (on-premises, and these tests' receivers) private addresses
//! pass, the metadata service never.

use crate::common::{Backend, TestServer, assert_error, bad_fields};
use dunning::proto;
use prost_types::FieldMask;
use tonic::{Code, Status};

async fn create_endpoint(s: &TestServer, url: &str) -> Result<(), Status> {
    s.webhooks()
        .create_webhook_endpoint(proto::CreateWebhookEndpointRequest {
            webhook_endpoint: Some(proto::WebhookEndpoint {
                url: url.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map(|_| ())
}

async fn update_organization(
    s: &TestServer,
    organization: proto::Organization,
    path: &str,
) -> Result<(), Status> {
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(organization),
            update_mask: Some(FieldMask {
                paths: vec![path.into()],
            }),
        })
        .await
        .map(|_| ())
}

fn provider_at(provider: &str, url: &str) -> proto::Organization {
    proto::Organization {
        payment_provider: Some(proto::PaymentProviderSettings {
            provider: provider.into(),
            http_url: url.into(),
            http_secret: "s3cret".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn link_template(template: &str) -> proto::Organization {
    proto::Organization {
        payment_link_template: template.into(),
        ..Default::default()
    }
}

/// Refused as INVALID_ARGUMENT naming `field`, the description saying `why`.
#[track_caller]
fn refused(answer: Result<(), Status>, field: &str, why: &str) {
    let status = assert_error(answer, Code::InvalidArgument, "VALIDATION_FAILED");
    assert_eq!(bad_fields(&status), vec![field.to_owned()], "{status:?}");
    assert!(status.message().contains(why), "{why}: {status:?}");
}

#[tokio::test]
async fn urls_into_the_network_are_refused_where_they_are_stored() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.allow_private_targets = false).await;
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://hooks.example.com/dunning", "https"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://2852039166/", "metadata"),
        ("https://[::ffff:169.254.169.254]/", "metadata"),
        ("https://metadata.google.internal/", "metadata"),
        ("https://[fe80::1]/", "link-local"),
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://10.0.0.7/hook", "private"),
        ("https://localhost/hook", "inside the network"),
        ("https://user:pw@hooks.example.com/", "user name"),
    ] {
        refused(create_endpoint(&s, url).await, "webhook_endpoint.url", why);
        refused(
            update_organization(&s, provider_at("http", url), "payment_provider").await,
            "organization.payment_provider.http_url",
            why,
        );
    }
    // Checked whatever the provider: a sandbox organization stores no garbage either.
    refused(
        update_organization(
            &s,
            provider_at("sandbox", "javascript:alert(1)"),
            "payment_provider",
        )
        .await,
        "organization.payment_provider.http_url",
        "https",
    );
    refused(
        update_organization(
            &s,
            link_template("https://169.254.169.254/pay/{payment_request_id}"),
            "payment_link_template",
        )
        .await,
        "organization.payment_link_template",
        "metadata",
    );
    create_endpoint(&s, "https://hooks.example.com/dunning")
        .await
        .unwrap();
    update_organization(
        &s,
        provider_at("http", "https://payments.example.com/charge"),
        "payment_provider",
    )
    .await
    .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn private_targets_when_allowed_but_never_the_metadata_service() {
    // The test server allows private targets (its receivers listen on 127.0.0.1).
    let s = TestServer::start(Backend::Sqlite).await;
    create_endpoint(&s, "http://127.0.0.1:8080/hook")
        .await
        .unwrap();
    create_endpoint(&s, "http://receiver.billing.svc/hook")
        .await
        .unwrap();
    refused(
        create_endpoint(&s, "http://0xa9fea9fe/").await,
        "webhook_endpoint.url",
        "metadata",
    );
    refused(
        update_organization(
            &s,
            provider_at("http", "http://169.254.170.2/v2/credentials"),
            "payment_provider",
        )
        .await,
        "organization.payment_provider.http_url",
        "metadata",
    );
    s.stop().await;
}
