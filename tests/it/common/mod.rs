//! Test harness: the real server on 127.0.0.1:0 with a manual clock, a fresh database per test
//! (SQLite file or PostgreSQL database), and tonic clients over TCP.
#![allow(dead_code)]

pub mod engine;
pub mod http;
pub mod payments;
pub mod policy;
pub mod raw;
pub mod smtp;

use chrono::{DateTime, Utc};
use dunning::app::{RunningServer, StartOptions};
use dunning::clock::ManualClock;
use dunning::config::Config;
use dunning::proto::customer_service_client::CustomerServiceClient;
use dunning::proto::dunning_service_client::DunningServiceClient;
use dunning::proto::invoice_service_client::InvoiceServiceClient;
use dunning::proto::organization_service_client::OrganizationServiceClient;
use dunning::proto::payment_request_service_client::PaymentRequestServiceClient;
use dunning::proto::webhook_service_client::WebhookServiceClient;
use sea_orm::{ConnectionTrait, Database};
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Auth>;

/// The PostgreSQL server to test against: `DUNNING_TEST_POSTGRES_URL`, or the local server.
/// PostgreSQL tests always run: a test that could not reach its database fails instead of
/// reporting a pass for work it did not do.
pub fn postgres_admin_url() -> String {
    match std::env::var("DUNNING_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".into(),
    }
}

/// A database that exists for one test and is dropped afterwards.
struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; a separate thread gets its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(db) = Database::connect(&admin_url).await {
                            let _ = db
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

async fn test_database(backend: Backend) -> TestDatabase {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("dunning-test-{id}.db"));
            TestDatabase {
                url: format!("sqlite://{}?mode=rwc", path.display()),
                cleanup: Cleanup::File(path),
            }
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let name = format!("dunning_test_{id}");
            let admin = Database::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is unreachable: {e}"));
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let _ = admin.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            TestDatabase {
                url: format!("{base}/{name}"),
                cleanup: Cleanup::Postgres { admin_url, name },
            }
        }
    }
}

/// One running server with its own database, clock and organization.
pub struct TestServer {
    pub backend: Backend,
    pub clock: ManualClock,
    pub key: String,
    pub channel: Channel,
    server: Option<RunningServer>,
    database: TestDatabase,
    /// Where the embedded mail transport writes `.eml` files for this test.
    pub outbox_dir: std::path::PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outbox_dir);
    }
}

/// The instant tests start at: a Tuesday, noon UTC.
pub fn start_time() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

impl TestServer {
    /// Starts a server on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server with a changed configuration (SMTP, ...).
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_serving(backend, configure, false).await
    }

    /// Starts a server that also serves `/metrics`, `/healthz` and `/readyz` on its metrics
    /// address (`server().metrics_addr`).
    pub async fn start_observed(backend: Backend) -> TestServer {
        Self::start_serving(backend, |_| {}, true).await
    }

    async fn start_serving(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
        metrics: bool,
    ) -> TestServer {
        let database = test_database(backend).await;
        let clock = ManualClock::new(start_time());
        let outbox_dir = std::env::temp_dir().join(format!(
            "dunning-test-outbox-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut config = Config {
            database_url: database.url.clone(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            outbox_dir: outbox_dir.clone(),
            // The test payments service's slow answers are "unknown outcomes" well before this.
            payment_timeout: std::time::Duration::from_millis(500),
            webhook_timeout: std::time::Duration::from_millis(500),
            // A short run, so that tests can reach it.
            webhook_failures_before_disable: 3,
            // The test's payments service and webhook receivers listen on 127.0.0.1.
            allow_private_targets: true,
            ..Config::default()
        };
        configure(&mut config);
        let server = dunning::app::start(
            &config,
            Arc::new(clock.clone()),
            StartOptions {
                background_tasks: false,
                metrics,
            },
        )
        .await
        .expect("server starts");
        let (_, key) = server
            .services()
            .auth
            .create_organization("acme")
            .await
            .expect("organization");
        let endpoint = Channel::from_shared(format!("http://{}", server.grpc_addr)).unwrap();
        let channel = if config.tls_cert.is_some() {
            // A plain-text channel to a TLS server (the TLS tests make their own).
            endpoint.connect_lazy()
        } else {
            endpoint.connect().await.expect("connect")
        };
        TestServer {
            backend,
            clock,
            key: key.plain_text,
            channel,
            server: Some(server),
            database,
            outbox_dir,
        }
    }

    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Another server process on the same database (a second replica), with its own listener.
    pub async fn second_replica(&self) -> (RunningServer, Channel) {
        let config = Config {
            database_url: self.database.url.clone(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            outbox_dir: self.outbox_dir.clone(),
            allow_private_targets: true,
            ..Config::default()
        };
        let server = dunning::app::start(
            &config,
            Arc::new(self.clock.clone()),
            StartOptions {
                background_tasks: false,
                metrics: false,
            },
        )
        .await
        .expect("second replica starts");
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to second replica");
        (server, channel)
    }

    /// A second organization's key on the same server.
    pub async fn other_organization(&self, name: &str) -> String {
        self.server()
            .services()
            .auth
            .create_organization(name)
            .await
            .unwrap()
            .1
            .plain_text
    }

    pub fn auth(&self, key: &str) -> Auth {
        Auth(Some(format!("Bearer {key}").parse().unwrap()))
    }

    pub fn customers(&self) -> CustomerServiceClient<Authed> {
        self.customers_as(&self.key)
    }

    pub fn customers_as(&self, key: &str) -> CustomerServiceClient<Authed> {
        CustomerServiceClient::with_interceptor(self.channel.clone(), self.auth(key))
    }

    pub fn invoices(&self) -> InvoiceServiceClient<Authed> {
        self.invoices_as(&self.key)
    }

    pub fn invoices_as(&self, key: &str) -> InvoiceServiceClient<Authed> {
        InvoiceServiceClient::with_interceptor(self.channel.clone(), self.auth(key))
    }

    pub fn organizations(&self) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::with_interceptor(self.channel.clone(), self.auth(&self.key))
    }

    pub fn dunning(&self) -> DunningServiceClient<Authed> {
        DunningServiceClient::with_interceptor(self.channel.clone(), self.auth(&self.key))
    }

    pub fn payment_requests(&self) -> PaymentRequestServiceClient<Authed> {
        PaymentRequestServiceClient::with_interceptor(self.channel.clone(), self.auth(&self.key))
    }

    pub fn webhooks(&self) -> WebhookServiceClient<Authed> {
        WebhookServiceClient::with_interceptor(self.channel.clone(), self.auth(&self.key))
    }

    /// Clients with no key at all.
    pub fn anonymous_customers(&self) -> CustomerServiceClient<Authed> {
        CustomerServiceClient::with_interceptor(self.channel.clone(), Auth(None))
    }

    /// Runs one round of the outbox worker; returns the attempts made.
    pub async fn deliver(&self) -> usize {
        let server = self.server();
        server
            .engine()
            .deliver_due_notifications(server.mailer())
            .await
            .unwrap()
    }

    /// Runs one round of the payment request worker; returns the requests worked on.
    pub async fn process_payments(&self) -> usize {
        let server = self.server();
        server
            .engine()
            .process_due_payment_requests(server.payment_providers())
            .await
            .unwrap()
    }

    /// Runs one round of the webhook worker; returns deliveries created plus attempts made.
    pub async fn deliver_webhooks(&self) -> usize {
        let server = self.server();
        server
            .engine()
            .deliver_due_webhooks(server.webhook_sender())
            .await
            .unwrap()
    }

    /// Runs the dunning engine's rounds (dunning checks, then due steps) until nothing is left
    /// due at the clock's current time; returns the rounds' work.
    pub async fn run_engine(&self) -> usize {
        let jobs = self.server().engine();
        let mut total = 0;
        for _ in 0..20 {
            let looked_at = jobs.start_due_processes().await.unwrap();
            let stepped = jobs.run_due_steps().await.unwrap();
            if looked_at + stepped == 0 {
                return total;
            }
            total += looked_at + stepped;
        }
        panic!("the engine still had work after 20 rounds");
    }

    /// Runs the overdue scanner once, as its background task would.
    pub async fn announce_overdue(&self) -> usize {
        self.server()
            .engine()
            .announce_overdue_invoices()
            .await
            .unwrap()
    }

    /// All events of the organization, oldest first.
    pub async fn events(&self) -> Vec<dunning::proto::Event> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .dunning()
                .list_events(dunning::proto::ListEventsRequest {
                    page_size: 1000,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            out.extend(page.events);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Makes a policy with one reminder (due long ago, emailed at any hour) the organization's
    /// default.
    pub async fn use_one_reminder_policy(&self) {
        self.dunning()
            .create_policy(policy::one_reminder("one"))
            .await
            .unwrap();
        self.organizations()
            .update_organization(policy::default_policy_at_any_hour("one"))
            .await
            .unwrap();
    }

    /// The payment profile GetCustomer answers for the customer `external_id`.
    pub async fn payment_profile(&self, external_id: &str) -> dunning::proto::PaymentProfile {
        self.customers()
            .get_customer(dunning::proto::GetCustomerRequest {
                customer: Some(dunning::proto::get_customer_request::Customer::ExternalId(
                    external_id.into(),
                )),
            })
            .await
            .unwrap()
            .into_inner()
            .payment_profile
            .expect("a payment profile")
    }

    /// Creates the customer `external_id` (with an email address).
    pub async fn create_customer(&self, external_id: &str) {
        self.customers()
            .create_customer(dunning::proto::CreateCustomerRequest {
                customer: Some(customer(external_id)),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }

    pub async fn event_types(&self) -> Vec<String> {
        self.events().await.into_iter().map(|e| e.r#type).collect()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Asserts a failed call's code, `ErrorInfo` reason, and (if given) the first bad field.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("call should fail");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo present");
    assert_eq!(info.reason, reason, "unexpected reason: {status:?}");
    assert_eq!(info.domain, "dunning");
    status
}

/// The fields named by a status's BadRequest.
pub fn bad_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A customer with sensible defaults.
pub fn customer(external_id: &str) -> dunning::proto::Customer {
    dunning::proto::Customer {
        external_id: external_id.into(),
        name: format!("Customer {external_id}"),
        email: format!("{external_id}@example.com"),
        timezone: "UTC".into(),
        ..Default::default()
    }
}

/// An invoice with sensible defaults: EUR 100.00, due 2026-11-10.
pub fn invoice(external_id: &str, customer_external_id: &str) -> dunning::proto::Invoice {
    dunning::proto::Invoice {
        external_id: external_id.into(),
        customer_external_id: customer_external_id.into(),
        number: format!("N-{external_id}"),
        currency_code: "EUR".into(),
        total_amount: "100.00".into(),
        issue_date: "2026-10-10".into(),
        due_date: "2026-11-10".into(),
        ..Default::default()
    }
}

/// Runs each scenario on SQLite and on PostgreSQL (when enabled), with a fresh SMTP server
/// that the service sends to.
#[macro_export]
macro_rules! on_both_backends_with_smtp {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let smtp = $crate::common::smtp::SmtpServer::start().await;
                    let url = smtp.url();
                    let server = $crate::common::TestServer::start_with($crate::common::Backend::Sqlite, |c| c.smtp_url = Some(url)).await;
                        super::$name(&server, &smtp).await;
                        server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let smtp = $crate::common::smtp::SmtpServer::start().await;
                    let url = smtp.url();
                    let server = $crate::common::TestServer::start_with($crate::common::Backend::Postgres, |c| c.smtp_url = Some(url)).await;
                        super::$name(&server, &smtp).await;
                        server.stop().await;
                }
            )*
        }
    };
}

/// Runs each scenario that starts its own server (`async fn name(backend: Backend)`) on
/// SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Runs each scenario on SQLite and on PostgreSQL (when enabled).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await;
                        super::$name(&server).await;
                        server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Postgres).await;
                        super::$name(&server).await;
                        server.stop().await;
                }
            )*
        }
    };
}

/// A `dunning serve` OS process.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    /// Its gRPC address, as it logged it.
    pub addr: String,
    outbox: std::path::PathBuf,
    /// The process's log lines (JSON), as it writes them.
    pub logs: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outbox);
    }
}

impl ServeProcess {
    /// Kills the process without warning (SIGKILL): nothing it held is released.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill");
    }

    /// Asks the process to stop (SIGTERM, as Kubernetes does) and waits for it to exit, at
    /// most a minute; returns its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the process runs");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("the process exits after SIGTERM")
            .expect("exit status")
    }
}

/// Starts `dunning serve` on `database_url` with extra `DUNNING_*` settings; returns once it
/// serves (migrated, health SERVING). Its log keeps being read, so it never blocks on a full
/// pipe.
pub async fn spawn_serve(database_url: &str, settings: &[(&str, String)]) -> ServeProcess {
    spawn_serve_until(
        database_url,
        settings,
        "serving",
        std::process::Stdio::null(),
    )
    .await
}

/// Like [`spawn_serve`], with the process's standard output (where it prints the first
/// organization's API key) written to `stdout`.
pub async fn spawn_serve_printing_to(
    database_url: &str,
    settings: &[(&str, String)],
    stdout: std::fs::File,
) -> ServeProcess {
    spawn_serve_until(database_url, settings, "serving", stdout.into()).await
}

/// Like [`spawn_serve`], but returns as soon as the process listens, while it may still be
/// migrating its database.
pub async fn spawn_serve_starting(database_url: &str, settings: &[(&str, String)]) -> ServeProcess {
    spawn_serve_until(
        database_url,
        settings,
        "starting: migrating the database",
        std::process::Stdio::null(),
    )
    .await
}

async fn spawn_serve_until(
    database_url: &str,
    settings: &[(&str, String)],
    message: &str,
    stdout: std::process::Stdio,
) -> ServeProcess {
    use tokio::io::AsyncBufReadExt;
    let outbox = std::env::temp_dir().join(format!("dunning-process-{}", uuid::Uuid::new_v4()));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dunning"));
    command
        .arg("serve")
        .env("DUNNING_DATABASE_URL", database_url)
        .env("DUNNING_GRPC_ADDR", "127.0.0.1:0")
        .env("DUNNING_METRICS_ADDR", "127.0.0.1:0")
        .env("DUNNING_OUTBOX_DIR", &outbox)
        .env("DUNNING_LOG_FORMAT", "json")
        .env("DUNNING_LOG", "info")
        .env("DUNNING_ALLOW_PRIVATE_TARGETS", "true")
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in settings {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("dunning serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if log["fields"]["message"] == message
                && let Some(addr) = log["fields"]["grpc_addr"].as_str()
            {
                return addr.to_owned();
            }
        }
        panic!("dunning serve exited");
    })
    .await
    .expect("the server process serves");
    // DUNNING_TEST_SERVE_LOG=1 shows the process's log in the test's output.
    let show = std::env::var_os("DUNNING_TEST_SERVE_LOG").is_some();
    let (log_sender, logs) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show {
                eprintln!("[serve] {line}");
            }
            if let Ok(log) = serde_json::from_str(&line) {
                let _ = log_sender.send(log);
            }
        }
    });
    ServeProcess {
        child,
        addr,
        outbox,
        logs,
    }
}
