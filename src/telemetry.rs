//! Logs and traces. Every command logs through one `tracing` subscriber; when an OTLP endpoint
//! is set, the same spans are exported as OpenTelemetry traces over OTLP/gRPC. W3C trace
//! context (`traceparent`) is read from incoming gRPC metadata, passed on to the HTTP calls the
//! service makes (payments provider, webhooks), and kept with the work a request leaves for
//! the engine (a customer to look at, a process made due), so a step joins the trace of the
//! request that caused it.

use crate::config::LogFormat;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::collections::HashMap;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The name spans are exported under (`service.name`).
const SERVICE_NAME: &str = "dunning";
/// The W3C header that carries a span's trace and id.
const TRACEPARENT: &str = "traceparent";
/// How long one export to the collector may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed subscriber; [`Telemetry::shutdown`] sends the spans still buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process-wide subscriber: `DUNNING_LOG` filters (a sensible default
    /// without it), `format` shapes each line, colours only at a terminal; spans are exported
    /// to `otlp_endpoint` (an OTLP/gRPC collector, `http://host:4317`) when given. Must run
    /// inside the Tokio runtime (the exporter's connection lives there).
    pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Self, String> {
        let filter = tracing_subscriber::EnvFilter::try_from_env("DUNNING_LOG")
            .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn".into());
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let traces = otlp_endpoint.map(tracer_provider).transpose()?;
        let otel = traces.as_ref().map(|provider| {
            tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
        });
        let registry = tracing_subscriber::registry().with(filter).with(otel);
        let result = match format {
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_ansi(false)
                        .with_writer(std::io::stderr),
                )
                .try_init(),
            LogFormat::Text => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(std::io::stderr),
                )
                .try_init(),
        };
        result.map_err(|e| format!("cannot install the log subscriber: {e}"))?;
        Ok(Self { traces })
    }

    /// Exports the spans still buffered (at most the export timeout) and stops exporting.
    pub async fn shutdown(self) {
        if let Some(provider) = self.traces {
            // Blocks until the exporter's thread has sent the last batch; that send runs on
            // this runtime, so the wait must not hold one of its workers.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// A tracer provider exporting in batches to an OTLP/gRPC collector at `endpoint`.
fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("DUNNING_OTLP_ENDPOINT={endpoint}: {e}"))?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the OTLP exporter needs a Tokio runtime".to_owned())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(OnRuntime {
            inner: exporter,
            runtime,
        })
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE_NAME)
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// An exporter whose calls run inside the service's Tokio runtime: the batch processor calls
/// it from a thread of its own, where the gRPC connection would find no reactor.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: E,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let runtime = self.runtime.clone();
        let mut export = Box::pin(self.inner.export(batch));
        std::future::poll_fn(move |cx| {
            let _entered = runtime.enter();
            export.as_mut().poll(cx)
        })
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.runtime.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.runtime.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Makes `span` part of the trace an incoming request names in its `traceparent` header (a
/// request without one starts a trace). Call before the span is entered.
pub fn continue_trace_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if let Some(value) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
        continue_trace(span, value);
    }
}

/// Makes `span` part of the trace a stored `traceparent` names (see [`current_trace`]). Call
/// before the span is entered.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&Carrier(carrier));
    if parent.span().span_context().is_valid() {
        // Without the OpenTelemetry layer (no OTLP endpoint) there is nothing to join.
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of the current span, to store with work the engine does later; `None`
/// when traces are not exported.
pub fn current_trace() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier(HashMap::new());
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.0.remove(TRACEPARENT)
}

/// An outgoing HTTP call that passes the current span's trace on (unchanged when traces are
/// not exported).
pub fn with_trace(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_trace() {
        Some(traceparent) => request.header(TRACEPARENT, traceparent),
        None => request,
    }
}

struct Carrier(HashMap<String, String>);

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
