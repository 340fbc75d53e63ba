//! Traces exported over OTLP from a real `dunning serve` process to a collector in the test (a
//! gRPC server implementing the collector's trace service): an RPC that names its caller's
//! trace in `traceparent` joins it, the step that RPC caused runs in the same trace, and a
//! webhook delivery passes its trace on in the `traceparent` header.

use crate::common::http::{HttpRequest, HttpResponse, serve};
use crate::common::{Backend, TestServer, invoice};
use dunning::proto;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An exported span: its name, trace id, parent span id (hex) and attributes as text.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

struct Collector {
    spans: mpsc::UnboundedSender<Exported>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let _ = self.spans.send(Exported {
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .into_iter()
                            .map(|kv| (kv.key, format!("{:?}", kv.value)))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a collector on 127.0.0.1:0; returns its address and the spans it receives.
async fn start_collector() -> (String, mpsc::UnboundedReceiver<Exported>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (spans, received) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector { spans }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), received)
}

/// Waits (at most 30 s) until a received span matches `wanted`; keeps what it read in `seen`.
async fn await_span(
    received: &mut mpsc::UnboundedReceiver<Exported>,
    seen: &mut Vec<Exported>,
    what: &str,
    wanted: impl Fn(&Exported) -> bool,
) -> Exported {
    if let Some(span) = seen.iter().find(|s| wanted(s)) {
        return span.clone();
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let span = received.recv().await.expect("the collector runs");
            seen.push(span.clone());
            if wanted(&span) {
                return span;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} span exported; received {seen:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_and_the_step_it_caused_share_a_trace() {
    let s = TestServer::start(Backend::Postgres).await;
    let (collector, mut received) = start_collector().await;
    let (hooks, mut hook_requests) = mpsc::unbounded_channel::<HttpRequest>();
    let receiver = serve(Arc::new(move |request| {
        let _ = hooks.send(request);
        HttpResponse::json(200, "{}")
    }))
    .await;

    // Set up through the in-process server (it exports nothing).
    s.use_one_reminder_policy().await;
    s.create_customer("cus_traced").await;
    s.webhooks()
        .create_webhook_endpoint(proto::CreateWebhookEndpointRequest {
            webhook_endpoint: Some(proto::WebhookEndpoint {
                url: format!("{receiver}/hooks"),
                description: "traced receiver".into(),
                event_types: vec!["process.step_executed".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();

    let process = crate::common::spawn_serve(
        s.database_url(),
        &[
            ("DUNNING_OTLP_ENDPOINT", collector),
            // Export each batch at once rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ],
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // The caller's trace and its span, as a W3C traceparent.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(proto::UpsertInvoiceRequest {
        invoice: Some(proto::Invoice {
            collection_method: proto::CollectionMethod::Automatic as i32,
            ..invoice("inv_traced", "cus_traced")
        }),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", s.key).parse().unwrap(),
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    proto::invoice_service_client::InvoiceServiceClient::new(channel)
        .upsert_invoice(request)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let rpc = await_span(&mut received, &mut seen, "UpsertInvoice rpc", |span| {
        span.name == "rpc"
            && span
                .attributes
                .iter()
                .any(|(k, v)| k == "method" && v.contains("UpsertInvoice"))
    })
    .await;
    assert_eq!(rpc.trace_id, trace_id, "the RPC joins the caller's trace");
    assert_eq!(rpc.parent_span_id, caller_span, "under the caller's span");
    let step = await_span(&mut received, &mut seen, "step_run", |span| {
        span.name == "step_run"
    })
    .await;
    assert_eq!(step.trace_id, trace_id, "the step the RPC caused");
    let look = await_span(&mut received, &mut seen, "dunning_check", |span| {
        span.name == "dunning_check" && span.trace_id == trace_id
    })
    .await;
    assert_eq!(
        look.parent_span_id, rpc.span_id,
        "the engine's look at the customer continues the RPC"
    );

    // The webhook the step's event caused carries its delivery's trace to the receiver.
    let hook = tokio::time::timeout(Duration::from_secs(30), hook_requests.recv())
        .await
        .expect("the webhook is delivered")
        .unwrap();
    let traceparent = hook.header("traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "a W3C traceparent: {traceparent:?}");
    let post = await_span(&mut received, &mut seen, "webhook_post", |span| {
        span.name == "webhook_post" && span.trace_id == parts[1]
    })
    .await;
    assert_eq!(
        post.span_id, parts[2],
        "the receiver's parent is the delivery"
    );
}
