//! Composition root: builds the store, use cases, gRPC server and background tasks, runs them,
//! and shuts them down in order.

use crate::clock::Clock;
use crate::config::Config;
use crate::core::Core;
use crate::domain::target::TargetPolicy;
use crate::engine::Engine;
use crate::engine::jobs;
use crate::engine::runtime::{self, Job};
use crate::error::Error;
use crate::events::webhooks::WebhookSender;
use crate::metrics::{Metrics, RpcMetricsLayer, ScrapeSources};
use crate::notify::transport::{FileMailer, Mailer, SmtpMailer};
use crate::payments::Providers;
use crate::service::{LiveEvents, Services};
use crate::storage::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server: its address, its use cases (for tests and tools) and a way to stop it.
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    services: Services,
    engine: Engine,
    live: LiveEvents,
    mailer: Arc<dyn Mailer>,
    providers: Providers,
    webhooks: WebhookSender,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The background jobs: told to stop, they finish the round they are in.
    background: Vec<JoinHandle<()>>,
    /// Tasks without work of their own to finish (metrics, the event relay): aborted.
    helpers: Vec<JoinHandle<()>>,
    health: crate::grpc::Health,
    /// What `/readyz` answers: true while serving, false from the start of the drain.
    ready: Arc<AtomicBool>,
    drain_timeout: Duration,
}

impl RunningServer {
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The engine the background jobs run (tests step it by hand).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The transport the outbox delivers through.
    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.mailer
    }

    /// The payment providers payment requests are charged through.
    pub fn payment_providers(&self) -> &Providers {
        &self.providers
    }

    /// The sender webhook deliveries go through.
    pub fn webhook_sender(&self) -> &WebhookSender {
        &self.webhooks
    }

    /// Drains: health turns NOT_SERVING, event streams end (UNAVAILABLE, resumable from the
    /// last sequence), no new connection is accepted while in-flight requests finish, and each
    /// background job finishes the round it is in (committing what it claimed, so no lease is
    /// left to expire) and claims nothing more. What has not finished within the drain
    /// timeout is abandoned (its transactions roll back; its leases expire as after a crash).
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Relaxed);
        self.health.draining().await;
        self.live.begin_shutdown();
        let _ = self.stop.send(true);
        for helper in &self.helpers {
            helper.abort();
        }
        let mut server = self.server;
        let mut background = self.background;
        let drained = tokio::time::timeout(self.drain_timeout, async {
            let _ = (&mut server).await;
            for task in &mut background {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                timeout = ?self.drain_timeout,
                "drain timed out: unfinished requests and background rounds are abandoned"
            );
            server.abort();
            for task in &background {
                task.abort();
            }
        }
        for helper in self.helpers {
            let _ = helper.await;
        }
        self.services.store().clone().close().await;
        tracing::info!(drained = drained.is_ok(), "stopped");
    }
}

/// How a server is started.
pub struct StartOptions {
    /// Run the overdue scanner and the outbox worker in the background (tests step them by
    /// hand instead).
    pub background_tasks: bool,
    /// Serve `/metrics` on `config.metrics_addr`.
    pub metrics: bool,
}

/// Connects to the database, binds the listeners and serves: health NOT_SERVING and API calls
/// UNAVAILABLE (`SERVER_STARTING`) while the database is migrated, then SERVING with the
/// background jobs started.
pub async fn start(
    config: &Config,
    clock: Arc<dyn Clock>,
    options: StartOptions,
) -> Result<RunningServer, Error> {
    let store = Store::connect_without_migrating(&config.database_url).await?;
    let targets = TargetPolicy {
        allow_private: config.allow_private_targets,
    };
    let core = Core::new(store.clone(), clock.clone());
    let services = Services::with_core(
        core.clone(),
        crate::service::throttle::Limits {
            auth_failures_per_minute: config.auth_failures_per_minute,
            key_requests_per_minute: config.key_requests_per_minute,
        },
        targets,
    );
    services.set_started(false);
    let metrics = Arc::new(Metrics::new(crate::grpc::rpc_paths()));
    let engine = Engine::new(core, config.claim_lease, metrics.clone());
    let live = LiveEvents::new(store, clock.clone(), metrics.clone());
    let mailer = mailer(config)?;
    let providers = Providers::new(config.payment_timeout, targets).map_err(Error::Unavailable)?;
    let webhooks = WebhookSender::new(
        config.webhook_timeout,
        config.webhook_failures_before_disable,
        targets,
    )
    .map_err(Error::Unavailable)?;
    let tls_files = config.tls().map_err(|e| Error::Setup(e.to_string()))?;
    let tls = tls_files
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()
        .map_err(|e| Error::Setup(format!("TLS: {e}")))?;
    let listener = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|e| cannot_listen(config.grpc_addr, "DUNNING_GRPC_ADDR", &e))?;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = watch::channel(false);

    let mut background = Vec::new();
    let mut helpers = Vec::new();
    let mut metrics_addr = None;
    if options.metrics {
        let metrics_listener = crate::metrics::bind(config.metrics_addr)
            .await
            .map_err(|e| cannot_listen(config.metrics_addr, "DUNNING_METRICS_ADDR", &e))?;
        metrics_addr = metrics_listener.local_addr().ok();
        helpers.push(tokio::spawn(crate::metrics::serve(
            metrics_listener,
            metrics.clone(),
            ScrapeSources {
                store: services.store().clone(),
                clock: clock.clone(),
                ready: ready.clone(),
            },
        )));
    }
    let (routes, health) = crate::grpc::routes(
        services.clone(),
        live.clone(),
        config.roles,
        config.max_request_bytes,
    )
    .await;
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(60))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        .trace_fn(|request| {
            let path = request.uri().path();
            let (service, method) = path
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or(("unknown", path));
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let span = tracing::info_span!(
                "rpc",
                service,
                method,
                request_id,
                organization = tracing::field::Empty,
                code = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            );
            crate::telemetry::continue_trace_from_headers(&span, request.headers());
            span
        })
        .layer(RpcMetricsLayer::new(metrics.clone()))
        .layer(crate::grpc::OversizeLayer)
        .layer(crate::grpc::KeyConcurrencyLayer::new(
            config.key_concurrency,
        ))
        .add_routes(routes);
    let max_connections = config.max_connections;
    let (server, accepting) = match tls {
        None => {
            let (incoming, accepting) =
                crate::listener::incoming(listener, max_connections, crate::listener::plain);
            let serving =
                router.serve_with_incoming_shutdown(incoming, wait_for_stop(stopped.clone()));
            (tokio::spawn(serving), accepting)
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let (incoming, accepting) =
                crate::listener::incoming(listener, max_connections, move |socket| {
                    crate::tls::handshake(acceptor.clone(), socket)
                });
            let serving =
                router.serve_with_incoming_shutdown(incoming, wait_for_stop(stopped.clone()));
            (tokio::spawn(serving), accepting)
        }
    };
    helpers.push(accepting);
    tracing::info!(%grpc_addr, "starting: migrating the database");
    if let Err(e) = services.store().migrate().await {
        let _ = stop.send(true);
        let _ = server.await;
        return Err(e);
    }
    services.set_started(true);
    health.serving().await;
    ready.store(true, Ordering::Relaxed);
    // Other replicas' events wake this process's event streams (PostgreSQL LISTEN/NOTIFY).
    let relay = services.clone();
    helpers.push(tokio::spawn(async move {
        relay.store().relay_other_replicas_events().await
    }));
    // The engine role does the background work; a process with the api role alone leaves it
    // to the engine processes on the same database.
    if options.background_tasks && config.roles.engine {
        let jobs: [Arc<dyn Job>; 5] = [
            Arc::new(jobs::DunningEngine {
                engine: engine.clone(),
            }),
            Arc::new(jobs::OverdueScanner {
                engine: engine.clone(),
                metrics: metrics.clone(),
                interval: config.overdue_scan_interval,
            }),
            Arc::new(jobs::OutboxDelivery {
                engine: engine.clone(),
                mailer: mailer.clone(),
            }),
            Arc::new(jobs::PaymentRequests {
                engine: engine.clone(),
                providers: providers.clone(),
            }),
            Arc::new(jobs::WebhookDeliveries {
                engine: engine.clone(),
                sender: webhooks.clone(),
            }),
        ];
        for job in jobs {
            background.push(runtime::spawn(job, metrics.clone(), stopped.clone()));
        }
    }

    tracing::info!(
        %grpc_addr,
        metrics = %metrics_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        database = %without_password(&config.database_url),
        email = %config
            .smtp_url
            .as_deref()
            .map_or_else(|| format!("files in {}", config.outbox_dir.display()), without_password),
        roles = config.roles.as_text(),
        tls = match &tls_files {
            None => "off",
            Some(files) if files.client_ca.is_some() => "on, client certificates required",
            Some(_) => "on",
        },
        traces = config.otlp_endpoint.as_deref().unwrap_or("off"),
        "serving"
    );
    Ok(RunningServer {
        grpc_addr,
        metrics_addr,
        services,
        engine,
        live,
        mailer,
        providers,
        webhooks,
        stop,
        server,
        background,
        helpers,
        health,
        ready,
        drain_timeout: config.drain_timeout,
    })
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// SMTP when `smtp_url` is set, otherwise `.eml` files in `outbox_dir`.
fn mailer(config: &Config) -> Result<Arc<dyn Mailer>, Error> {
    Ok(match &config.smtp_url {
        Some(url) => {
            Arc::new(SmtpMailer::from_url(url, config.smtp_pool_size).map_err(Error::Unavailable)?)
        }
        None => Arc::new(FileMailer::new(config.outbox_dir.clone())),
    })
}

/// Why a listener could not be bound, naming the address and the setting that chose it.
fn cannot_listen(addr: SocketAddr, setting: &str, e: &std::io::Error) -> Error {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => "address in use (another process listens there)".into(),
        std::io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (a port below 1024?)".into(),
        _ => e.to_string(),
    };
    Error::Setup(format!("cannot listen on {addr}: {why}; change {setting}"))
}

/// A connection URL to show in a log: its password replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
