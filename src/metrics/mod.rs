//! Prometheus metrics (`prometheus-client`), served with `/healthz` and `/readyz` by a small
//! HTTP server (`http`). Names follow Prometheus conventions: counters end in `_total`,
//! durations are `_seconds` histograms, labels take bounded values (known RPCs or `unknown`,
//! job names, action types, outcomes).

mod http;
mod layer;
mod process;

pub use http::{ScrapeSources, bind, serve};
pub use layer::RpcMetricsLayer;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;

/// Buckets for latencies: 1 ms to about 33 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Buckets for lags (due time to run, event to delivery): 10 ms to about 11 hours.
fn lag_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    service: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCallLabels {
    service: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The service's metrics. Cheap to update from any task; the registry is only read when
/// scraped.
pub struct Metrics {
    registry: Registry,
    /// The RPCs the label `method` may name; anything else is `unknown`.
    known_rpcs: HashSet<String>,
    rpc_handled: Family<RpcLabels, Counter>,
    rpc_duration: HistogramFamily<RpcLabels>,
    rpc_started: Family<RpcCallLabels, Counter>,
    job_items: Family<JobLabels, Counter>,
    job_failures: Family<JobLabels, Counter>,
    job_round_duration: HistogramFamily<JobLabels>,
    overdue_announced: Counter,
    overdue_scan_failures: Counter,
    steps: Family<StepLabels, Counter>,
    step_lag: Histogram,
    claims_lost: Counter,
    engine_backlog: Gauge,
    outbox_depth: Family<ChannelLabels, Gauge>,
    deliveries: Family<OutcomeLabels, Counter>,
    send_duration: Histogram,
    payment_attempts: Family<ProviderLabels, Counter>,
    payment_duration: Histogram,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_lag: Histogram,
    watch_streams: Gauge,
    db_pool: Family<PoolLabels, Gauge>,
    process: process::ProcessMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(std::iter::empty::<String>())
    }
}

impl Metrics {
    /// Metrics whose `method` label may name the RPCs in `known_rpcs` (`/package.Service/Method`
    /// paths).
    pub fn new(known_rpcs: impl IntoIterator<Item = String>) -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("dunning");
        let rpc_handled = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed, by service, method and gRPC status code",
            rpc_handled.clone(),
        );
        let rpc_duration: HistogramFamily<RpcLabels> =
            Family::new_with_constructor(latency_buckets);
        registry.register_with_unit(
            "grpc_server_handling",
            "Time from an RPC's arrival to its response headers, by service, method and code",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let rpc_started = Family::<RpcCallLabels, Counter>::default();
        registry.register(
            "grpc_server_started",
            "RPCs received, by service and method",
            rpc_started.clone(),
        );
        let job_items = Family::<JobLabels, Counter>::default();
        registry.register(
            "background_items",
            "Items background jobs worked on (steps, emails, payment requests, webhook deliveries), by job",
            job_items.clone(),
        );
        let job_failures = Family::<JobLabels, Counter>::default();
        registry.register(
            "background_failures",
            "Background rounds that failed and will be retried, by job",
            job_failures.clone(),
        );
        let job_round_duration: HistogramFamily<JobLabels> =
            Family::new_with_constructor(latency_buckets);
        registry.register_with_unit(
            "background_round_duration",
            "Duration of background rounds that worked on something, by job",
            Unit::Seconds,
            job_round_duration.clone(),
        );
        let overdue_announced = Counter::default();
        registry.register(
            "invoices_overdue_announced",
            "invoice.overdue events appended",
            overdue_announced.clone(),
        );
        let overdue_scan_failures = Counter::default();
        registry.register(
            "overdue_scan_failures",
            "Overdue scans that failed and will be retried",
            overdue_scan_failures.clone(),
        );
        let steps = Family::<StepLabels, Counter>::default();
        registry.register(
            "engine_actions",
            "Actions of step runs the engine committed, by action type and outcome",
            steps.clone(),
        );
        let step_lag = lag_buckets();
        registry.register_with_unit(
            "engine_step_lag",
            "Time from a step's due time to the commit of its run",
            Unit::Seconds,
            step_lag.clone(),
        );
        let claims_lost = Counter::default();
        registry.register(
            "engine_claims_lost",
            "Claimed processes whose lease was gone at commit (another replica took them over)",
            claims_lost.clone(),
        );
        let engine_backlog = Gauge::default();
        registry.register(
            "engine_due_backlog",
            "Processes whose next step is due now and not yet run (read at scrape)",
            engine_backlog.clone(),
        );
        let outbox_depth = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "outbox_depth",
            "Notifications waiting in the outbox, by channel (read at scrape)",
            outbox_depth.clone(),
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "outbox_deliveries",
            "Delivery attempts of notifications, by outcome (sent, retry, failed)",
            deliveries.clone(),
        );
        let send_duration = latency_buckets();
        registry.register_with_unit(
            "outbox_send_duration",
            "Time to hand a notification to its transport",
            Unit::Seconds,
            send_duration.clone(),
        );
        let payment_attempts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "payment_attempts",
            "Charges sent to payment providers, by provider and outcome",
            payment_attempts.clone(),
        );
        let payment_duration = latency_buckets();
        registry.register_with_unit(
            "payment_attempt_duration",
            "Time a payment provider took to answer a charge",
            Unit::Seconds,
            payment_duration.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retry, failed)",
            webhook_deliveries.clone(),
        );
        let webhook_lag = lag_buckets();
        registry.register_with_unit(
            "webhook_delivery_lag",
            "Time from an event to its successful webhook delivery",
            Unit::Seconds,
            webhook_lag.clone(),
        );
        let watch_streams = Gauge::default();
        registry.register(
            "watch_events_streams",
            "WatchEvents streams open now",
            watch_streams.clone(),
        );
        let db_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections, by state (in_use, idle; read at scrape)",
            db_pool.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "The running build: always 1, its version as a label",
            build,
        );
        // The standard process_* names, without the service prefix.
        let process = process::ProcessMetrics::register(&mut root);
        Self {
            registry: root,
            known_rpcs: known_rpcs.into_iter().collect(),
            rpc_handled,
            rpc_duration,
            rpc_started,
            job_items,
            job_failures,
            job_round_duration,
            overdue_announced,
            overdue_scan_failures,
            steps,
            step_lag,
            claims_lost,
            engine_backlog,
            outbox_depth,
            deliveries,
            send_duration,
            payment_attempts,
            payment_duration,
            webhook_deliveries,
            webhook_lag,
            watch_streams,
            db_pool,
            process,
        }
    }

    /// The bounded `service` and `method` labels of an RPC path.
    fn rpc_labels(&self, path: &str) -> RpcCallLabels {
        match path.trim_start_matches('/').split_once('/') {
            Some((service, method)) if self.known_rpcs.contains(path) => RpcCallLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            },
            _ => RpcCallLabels {
                service: "unknown".into(),
                method: "unknown".into(),
            },
        }
    }

    /// An RPC arrived.
    pub fn rpc_started(&self, path: &str) {
        self.rpc_started.get_or_create(&self.rpc_labels(path)).inc();
    }

    /// An RPC answered with `code` after `seconds`.
    pub fn rpc_handled(&self, path: &str, code: tonic::Code, seconds: f64) {
        let call = self.rpc_labels(path);
        let labels = RpcLabels {
            service: call.service,
            method: call.method,
            code: format!("{code:?}"),
        };
        self.rpc_handled.get_or_create(&labels).inc();
        self.rpc_duration.get_or_create(&labels).observe(seconds);
    }

    /// A background job's round: how many items it worked on (and how long that took), or
    /// that it failed.
    pub fn count_worker_round(&self, job: &'static str, result: Result<usize, ()>, seconds: f64) {
        let labels = JobLabels {
            worker: job.to_owned(),
        };
        match result {
            Ok(0) => {}
            Ok(n) => {
                self.job_items.get_or_create(&labels).inc_by(n as u64);
                self.job_round_duration
                    .get_or_create(&labels)
                    .observe(seconds);
            }
            Err(()) => {
                self.job_failures.get_or_create(&labels).inc();
            }
        }
    }

    pub fn count_overdue_announced(&self, n: usize) {
        self.overdue_announced.inc_by(n as u64);
    }

    pub fn count_overdue_scan_failure(&self) {
        self.overdue_scan_failures.inc();
    }

    /// An action of a committed step run ended with `outcome`.
    pub fn count_action(&self, action: &str, outcome: &str) {
        self.steps
            .get_or_create(&StepLabels {
                action: action.to_lowercase(),
                outcome: outcome.to_lowercase(),
            })
            .inc();
    }

    /// A step committed `seconds` after it fell due.
    pub fn observe_step_lag(&self, seconds: f64) {
        self.step_lag.observe(seconds.max(0.0));
    }

    /// Claims whose lease was gone at commit.
    pub fn count_claims_lost(&self, n: usize) {
        self.claims_lost.inc_by(n as u64);
    }

    /// A notification attempt ended with `outcome` after `seconds`.
    pub fn count_delivery(&self, outcome: &str, seconds: f64) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.send_duration.observe(seconds);
    }

    /// A charge sent to `provider` ended with `outcome` after `seconds`.
    pub fn count_payment_attempt(&self, provider: &str, outcome: &str, seconds: f64) {
        self.payment_attempts
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.payment_duration.observe(seconds);
    }

    /// A webhook attempt ended with `outcome`; `lag`: seconds from the event to a delivery.
    pub fn count_webhook_delivery(&self, outcome: &str, lag: Option<f64>) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(lag) = lag {
            self.webhook_lag.observe(lag.max(0.0));
        }
    }

    /// Counts a WatchEvents stream as open until the guard is dropped.
    pub fn watch_stream(self: &std::sync::Arc<Self>) -> WatchStreamGuard {
        self.watch_streams.inc();
        WatchStreamGuard {
            metrics: self.clone(),
        }
    }

    /// The exposition text (OpenMetrics), with what is read at scrape time refreshed first.
    pub fn render(&self) -> String {
        self.process.refresh();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn set_scraped(&self, scraped: &http::Scraped) {
        if let Some(backlog) = scraped.engine_backlog {
            self.engine_backlog.set(backlog);
        }
        if let Some(depth) = scraped.outbox_depth {
            self.outbox_depth
                .get_or_create(&ChannelLabels {
                    channel: "email".into(),
                })
                .set(depth);
        }
        let (in_use, idle) = scraped.pool;
        for (state, n) in [("in_use", in_use), ("idle", idle)] {
            self.db_pool
                .get_or_create(&PoolLabels {
                    state: state.into(),
                })
                .set(n);
        }
    }
}

/// Keeps a WatchEvents stream counted while it lives.
pub struct WatchStreamGuard {
    metrics: std::sync::Arc<Metrics>,
}

impl Drop for WatchStreamGuard {
    fn drop(&mut self) {
        self.metrics.watch_streams.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_rounds_are_counted_per_worker() {
        let metrics = Metrics::default();
        metrics.count_worker_round("webhooks", Ok(3), 0.01);
        metrics.count_worker_round("webhooks", Ok(2), 0.01);
        metrics.count_worker_round("webhooks", Err(()), 0.01);
        metrics.count_worker_round("payment_requests", Ok(1), 0.01);
        let text = metrics.render();
        assert!(text.contains("dunning_background_items_total{worker=\"webhooks\"} 5\n"));
        assert!(text.contains("dunning_background_failures_total{worker=\"webhooks\"} 1\n"));
        assert!(text.contains("dunning_background_items_total{worker=\"payment_requests\"} 1\n"));
    }

    #[test]
    fn rpc_labels_are_bounded_to_known_methods() {
        let metrics = Metrics::new(["/dunning.v1.CustomerService/GetCustomer".to_owned()]);
        metrics.rpc_handled(
            "/dunning.v1.CustomerService/GetCustomer",
            tonic::Code::NotFound,
            0.002,
        );
        metrics.rpc_handled("/evil/$(rm -rf)", tonic::Code::Unimplemented, 0.001);
        let text = metrics.render();
        assert!(text.contains(
            "dunning_grpc_server_handled_total{service=\"dunning.v1.CustomerService\",method=\"GetCustomer\",code=\"NotFound\"} 1\n"
        ));
        assert!(text.contains(
            "dunning_grpc_server_handled_total{service=\"unknown\",method=\"unknown\",code=\"Unimplemented\"} 1\n"
        ));
        assert!(text.contains("dunning_grpc_server_handling_seconds_bucket{"));
        assert!(text.contains("dunning_build_info{version=\""));
    }
}
