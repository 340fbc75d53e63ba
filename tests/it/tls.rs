//! TLS on the gRPC server, with certificates the test makes (rcgen): only TLS clients that
//! trust the server's CA get through; a renewed certificate written over the files is served
//! to the next connection without a restart; with a client CA, a client needs a certificate
//! from it, and the certificate's common name must be the API key's organization.

use crate::common::{Backend, TestServer};
use dunning::proto;
use dunning::proto::customer_service_client::CustomerServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate authority for the test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and 127.0.0.1 with common name `common_name`, as (cert
    /// PEM, key PEM).
    fn issue(&self, common_name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A folder of PEM files, removed afterwards.
struct Files(PathBuf);

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("dunning-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.0.join(name);
        // Written whole, then renamed over the old one, as certificate managers do.
        let partial = self.0.join(format!("{name}.partial"));
        std::fs::write(&partial, pem).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server serving TLS from `files` (`server.pem`, `server.key`, and `clients.pem` as the
/// client CA when `client_ca`).
async fn start(files: &Files, client_ca: bool) -> TestServer {
    let (cert, key, clients) = (
        files.path("server.pem"),
        files.path("server.key"),
        files.path("clients.pem"),
    );
    TestServer::start_with(Backend::Sqlite, move |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = client_ca.then_some(clients);
    })
    .await
}

/// Lists customers over a new TLS connection trusting `ca`, presenting `identity` (cert, key)
/// when given; the error as text (a refused handshake or a refused call).
async fn list_customers(
    s: &TestServer,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://{}", s.server().grpc_addr))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut request = tonic::Request::new(proto::ListCustomersRequest::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", s.key).parse().unwrap(),
    );
    CustomerServiceClient::new(channel)
        .list_customers(request)
        .await
        .map(|_| ())
        .map_err(|status| {
            let reason = tonic_types::StatusExt::get_error_details(&status)
                .error_info()
                .map(|i| i.reason.clone())
                .unwrap_or_default();
            format!("{:?} {reason}: {}", status.code(), status.message())
        })
}

fn write_server_files(files: &Files, ca: &TestCa) -> (PathBuf, PathBuf) {
    let (cert, key) = ca.issue("localhost");
    (
        files.write("server.pem", &cert),
        files.write("server.key", &key),
    )
}

#[tokio::test]
async fn tls_is_served_and_a_renewed_certificate_is_picked_up() {
    let files = Files::new();
    let first = TestCa::new("first CA");
    write_server_files(&files, &first);
    let s = start(&files, false).await;

    assert_eq!(list_customers(&s, &first.pem(), None).await, Ok(()));
    let other = TestCa::new("a CA the server does not use");
    assert!(
        list_customers(&s, &other.pem(), None).await.is_err(),
        "a client that does not trust the server's CA does not get through"
    );
    let plain = s
        .customers()
        .list_customers(proto::ListCustomersRequest::default())
        .await;
    assert!(plain.is_err(), "plain text is not served: {plain:?}");

    // The certificate is renewed (by another CA, so the test can tell which one is served).
    let renewed = TestCa::new("renewing CA");
    write_server_files(&files, &renewed);
    assert_eq!(
        list_customers(&s, &renewed.pem(), None).await,
        Ok(()),
        "the next connection gets the renewed certificate"
    );
    assert!(list_customers(&s, &first.pem(), None).await.is_err());

    // A renewal that cannot be used (a key that does not match) keeps the last good one.
    let (_, wrong_key) = renewed.issue("localhost");
    files.write("server.key", &wrong_key);
    assert_eq!(list_customers(&s, &renewed.pem(), None).await, Ok(()));
    s.stop().await;
}

#[tokio::test]
async fn client_certificates_name_the_organization_of_the_key() {
    let files = Files::new();
    let servers = TestCa::new("server CA");
    write_server_files(&files, &servers);
    let clients = TestCa::new("client CA");
    files.write("clients.pem", &clients.pem());
    let s = start(&files, true).await;

    // The test server's organization is "acme".
    assert_eq!(
        list_customers(&s, &servers.pem(), Some(&clients.issue("acme"))).await,
        Ok(())
    );
    let mismatch = list_customers(&s, &servers.pem(), Some(&clients.issue("globex")))
        .await
        .unwrap_err();
    assert!(
        mismatch.starts_with("PermissionDenied CERTIFICATE_ORGANIZATION_MISMATCH")
            && mismatch.contains("globex"),
        "{mismatch}"
    );
    assert!(
        list_customers(&s, &servers.pem(), None).await.is_err(),
        "no client certificate, no call"
    );
    let stranger = TestCa::new("someone else's CA");
    assert!(
        list_customers(&s, &servers.pem(), Some(&stranger.issue("acme")))
            .await
            .is_err(),
        "a certificate from another CA is refused"
    );
    s.stop().await;
}

#[tokio::test]
async fn unusable_tls_settings_are_refused_at_start_naming_the_setting() {
    let files = Files::new();
    let config = |cert: &Path, key: &Path| dunning::config::Config {
        database_url: "sqlite::memory:".into(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        tls_cert: Some(cert.to_owned()),
        tls_key: Some(key.to_owned()),
        ..Default::default()
    };
    let missing = dunning::app::start(
        &config(&files.path("none.pem"), &files.path("none.key")),
        std::sync::Arc::new(dunning::clock::ManualClock::new(crate::common::start_time())),
        dunning::app::StartOptions {
            background_tasks: false,
            metrics: false,
        },
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(
        missing.contains("none.pem") && missing.contains("DUNNING_TLS_CERT"),
        "{missing}"
    );
}
