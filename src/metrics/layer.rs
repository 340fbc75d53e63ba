//! A tower layer that counts every RPC by service, method and gRPC status code and observes
//! its latency. The code is read from the response headers: tonic sends a failed unary call's
//! status there (a "trailers-only" response); a response without one succeeded, or is a
//! stream whose final status comes later in its trailers.

use super::Metrics;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl RpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let metrics = self.metrics.clone();
        metrics.rpc_started(&path);
        // Measures the call's duration; no rule reads it as a time.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            let elapsed = started.elapsed();
            metrics.rpc_handled(&path, code, elapsed.as_secs_f64());
            let span = tracing::Span::current();
            span.record("code", format!("{code:?}"));
            span.record("latency_ms", elapsed.as_millis() as u64);
            // A server fault was logged at error where it happened (grpc::status), once.
            if !matches!(
                code,
                tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
            ) {
                tracing::info!(path = %path, code = ?code, latency_ms = elapsed.as_millis() as u64,
                    "rpc answered");
            }
            response
        })
    }
}
