//! The operations HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the process
//! answers) and `/readyz` (it serves: started, not draining), for plain HTTP probes.

use super::Metrics;
use crate::clock::Clock;
use crate::storage::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a scrape waits for the database before it leaves the counts it reads out.
const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What a scrape reads besides the counters: the database for backlogs and the pool, and
/// whether the process is ready.
#[derive(Clone)]
pub struct ScrapeSources {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// True once the server serves, false again while it drains.
    pub ready: Arc<AtomicBool>,
}

/// The values read at scrape time (`None`: could not be read now).
pub(super) struct Scraped {
    pub(super) engine_backlog: Option<i64>,
    pub(super) outbox_depth: Option<i64>,
    /// Connections (in use, idle): the pool knows them without a query.
    pub(super) pool: (i64, i64),
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    sources: ScrapeSources,
}

/// Binds the operations listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the operations endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, sources: ScrapeSources) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, sources });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics server stopped");
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.sources.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or draining\n",
        )
    }
}

/// What `read` gives within the scrape's time for database reads (`None`: not now).
async fn within<T>(read: impl Future<Output = Result<T, crate::error::Error>>) -> Option<T> {
    tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, read)
        .await
        .ok()?
        .ok()
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let store = &state.sources.store;
    let now = state.sources.clock.now();
    let scraped = Scraped {
        engine_backlog: within(store.due_process_count(now)).await,
        outbox_depth: within(store.queued_notification_count()).await,
        pool: store.pool_connections(),
    };
    state.metrics.set_scraped(&scraped);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
