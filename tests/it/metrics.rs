//! The operations endpoints, scraped over HTTP after real RPCs and a real step: RPCs by
//! service, method and code with latency histograms, the step by action and outcome with its
//! lag, the email's delivery, gauges read at scrape time, and Prometheus naming.

use crate::common::{Backend, TestServer, invoice};
use dunning::proto;

async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let addr = server.server().metrics_addr.expect("metrics are served");
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the sample `line_start` (a metric name with its labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

async fn scrape_after_rpcs_and_a_step(backend: Backend) {
    let s = TestServer::start_observed(backend).await;
    s.use_one_reminder_policy().await;
    s.create_customer("cus_m").await;
    let missing = s
        .customers()
        .get_customer(proto::GetCustomerRequest {
            customer: Some(proto::get_customer_request::Customer::ExternalId(
                "nobody".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(proto::Invoice {
                collection_method: proto::CollectionMethod::Automatic as i32,
                ..invoice("inv_m", "cus_m")
            }),
        })
        .await
        .unwrap();
    assert!(s.run_engine().await > 0, "the reminder step runs");
    assert_eq!(s.deliver().await, 1, "its email is delivered");

    let (status, text) = get(&s, "/metrics").await;
    assert_eq!(status, 200);
    let get_customer = "service=\"dunning.v1.CustomerService\",method=\"GetCustomer\"";
    assert_eq!(
        sample(
            &text,
            &format!("dunning_grpc_server_handled_total{{{get_customer},code=\"NotFound\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "dunning_grpc_server_handling_seconds_count{service=\"dunning.v1.CustomerService\",method=\"CreateCustomer\",code=\"Ok\"}"
        ),
        Some(1.0)
    );
    assert!(text.contains(
        "dunning_grpc_server_handling_seconds_bucket{le=\"+Inf\",service=\"dunning.v1.InvoiceService\",method=\"UpsertInvoice\",code=\"Ok\"} 1"
    ));
    assert_eq!(
        sample(
            &text,
            "dunning_engine_actions_total{action=\"send_reminder\",outcome=\"pending\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dunning_engine_step_lag_seconds_count"),
        Some(1.0)
    );
    // Due at the start of the day after the due date; the test clock is hours past it.
    assert!(sample(&text, "dunning_engine_step_lag_seconds_sum").unwrap() > 0.0);
    assert_eq!(
        sample(&text, "dunning_outbox_deliveries_total{outcome=\"sent\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "dunning_engine_due_backlog"), Some(0.0));
    assert_eq!(
        sample(&text, "dunning_outbox_depth{channel=\"email\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "dunning_watch_events_streams"), Some(0.0));
    assert!(sample(&text, "dunning_db_pool_connections{state=\"idle\"}").is_some());
    assert!(text.contains("dunning_build_info{version=\""));
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(&text, "process_open_fds").unwrap() > 0.0);
    assert!(sample(&text, "process_cpu_seconds_total").is_some());
    // Prometheus naming: counters end in _total, histograms of time are in seconds.
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let samples = text
                .lines()
                .filter(|l| !l.starts_with('#') && l.starts_with(name))
                .collect::<Vec<_>>();
            match kind {
                "counter" => assert!(
                    samples
                        .iter()
                        .all(|l| l.starts_with(&format!("{name}_total"))),
                    "{name}"
                ),
                "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
                _ => {}
            }
        }
    }
    assert_eq!(get(&s, "/healthz").await.0, 200);
    assert_eq!(get(&s, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(get(&s, "/nothing").await.0, 404);
    s.stop().await;
}

/// Each RPC is logged once answered, inside a span naming its service, method, organization,
/// code and latency (a real `dunning serve` process writing JSON logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_is_logged_with_its_span() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut serve = crate::common::spawn_serve(s.database_url(), &[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", serve.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut customers = proto::customer_service_client::CustomerServiceClient::with_interceptor(
        channel,
        s.auth(&s.key),
    );
    customers
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let log = serve.logs.recv().await.expect("the process logs");
            if log["fields"]["message"] == "rpc answered"
                && log["span"]["method"] == "ListCustomers"
            {
                return log;
            }
        }
    })
    .await
    .expect("the RPC is logged");
    let span = &line["span"];
    assert_eq!(span["name"], "rpc");
    assert_eq!(span["service"], "dunning.v1.CustomerService");
    assert_eq!(span["code"], "Ok", "{line}");
    assert!(
        uuid::Uuid::parse_str(span["organization"].as_str().unwrap_or_default()).is_ok(),
        "{line}"
    );
    assert!(span["latency_ms"].is_number(), "{line}");
    assert_eq!(line["level"], "INFO");
    serve.kill().await;
    s.stop().await;
}

on_each_backend!(scrape_after_rpcs_and_a_step,);
