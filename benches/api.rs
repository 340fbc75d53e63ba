//! API benchmark: the real server over TCP, driven by gRPC clients.
//!
//! Measures `BatchUpsertInvoices` throughput (1,000 invoices per call, `DUNNING_BENCH_CALLERS`
//! concurrent callers, default 4) and `GetOverdueBalance` latency for a customer with 10,000 overdue invoices, on
//! SQLite and on PostgreSQL.
//!
//!     cargo bench --bench api
//!     DUNNING_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench api
//!
//! Not a test: it prints figures (copy them into BENCHMARKS.md) and asserts nothing.
// A benchmark measures wall time and dates its seed data by the real clock.
#![allow(clippy::disallowed_methods)]

mod support;

use sea_orm::{ConnectionTrait, Database};

use dunning::proto::customer_service_client::CustomerServiceClient;
use dunning::proto::invoice_service_client::InvoiceServiceClient;
use dunning::proto::{self, get_overdue_balance_request};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const BATCH: usize = 1000;
const BATCHES: usize = 60;
const BALANCE_INVOICES: usize = 10_000;
const BALANCE_CALLS: usize = 2000;

fn invoice(external_id: String, customer: &str, i: usize) -> proto::Invoice {
    proto::Invoice {
        external_id,
        customer_external_id: customer.into(),
        number: format!("N-{i}"),
        currency_code: if i.is_multiple_of(5) { "USD" } else { "EUR" }.into(),
        total_amount: format!("{}.{:02}", 10 + i % 990, i % 100),
        issue_date: "2026-01-01".into(),
        due_date: format!("2026-{:02}-{:02}", 1 + i % 10, 1 + i % 28),
        ..Default::default()
    }
}

/// Batch `b` of the spread load: invoices `inv_<n>` over customers `cus_0..cus_99`.
fn spread_batch(b: usize) -> Vec<proto::Invoice> {
    (0..BATCH)
        .map(|i| {
            let n = b * BATCH + i;
            invoice(format!("inv_{n}"), &format!("cus_{}", n % 100), n)
        })
        .collect()
}

/// Upserts one batch, panicking on error (a benchmark, not a test).
async fn upsert(
    client: &mut InvoiceServiceClient<Channel>,
    key: &str,
    invoices: Vec<proto::Invoice>,
) {
    client
        .batch_upsert_invoices(with_key(
            key,
            proto::BatchUpsertInvoicesRequest { invoices },
        ))
        .await
        .unwrap();
}

fn with_key<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

async fn create_customer(channel: &Channel, key: &str, external_id: &str) {
    CustomerServiceClient::new(channel.clone())
        .create_customer(with_key(
            key,
            proto::CreateCustomerRequest {
                customer: Some(proto::Customer {
                    external_id: external_id.into(),
                    email: "ap@example.com".into(),
                    timezone: "Europe/Berlin".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(label: &str, database_url: String) {
    let vacuum_url = database_url.clone();
    let server = support::start_server(database_url, |_| {}).await;
    let (_, key) = server
        .services()
        .auth
        .create_organization("bench")
        .await
        .unwrap();
    let key = key.plain_text;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Throughput: BATCHES calls of BATCH new invoices, CONCURRENT_CALLERS at a time, spread over
    // 100 customers.
    for c in 0..100 {
        create_customer(&channel, &key, &format!("cus_{c}")).await;
    }
    let started = Instant::now();
    let mut callers = Vec::new();
    let callers_count: usize = std::env::var("DUNNING_BENCH_CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for caller in 0..callers_count {
        let channel = channel.clone();
        let key = key.clone();
        callers.push(tokio::spawn(async move {
            let mut client = InvoiceServiceClient::new(channel).max_decoding_message_size(64 << 20);
            for b in (caller..BATCHES).step_by(callers_count) {
                upsert(&mut client, &key, spread_batch(b)).await;
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = (BATCH * BATCHES) as f64 / elapsed.as_secs_f64();

    // Re-sync of unchanged invoices (the common steady state of a billing sync).
    let mut client = InvoiceServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let resync_started = Instant::now();
    for b in 0..10 {
        upsert(&mut client, &key, spread_batch(b)).await;
    }
    let resync_rate = (10 * BATCH) as f64 / resync_started.elapsed().as_secs_f64();

    // Latency: one customer with BALANCE_INVOICES overdue invoices.
    create_customer(&channel, &key, "cus_big").await;
    for b in 0..BALANCE_INVOICES / BATCH {
        let invoices = (0..BATCH)
            .map(|i| invoice(format!("big_{}", b * BATCH + i), "cus_big", b * BATCH + i))
            .collect();
        upsert(&mut client, &key, invoices).await;
    }
    let mut customers = CustomerServiceClient::new(channel.clone());
    let request = proto::GetOverdueBalanceRequest {
        customer: Some(get_overdue_balance_request::Customer::ExternalId(
            "cus_big".into(),
        )),
    };
    for _ in 0..50 {
        customers
            .get_overdue_balance(with_key(&key, request.clone()))
            .await
            .unwrap();
    }
    let measure = |mut customers: CustomerServiceClient<Channel>,
                   key: String,
                   request: proto::GetOverdueBalanceRequest| async move {
        let mut latencies = Vec::with_capacity(BALANCE_CALLS);
        let mut counted = 0;
        for _ in 0..BALANCE_CALLS {
            let t = Instant::now();
            let balances = customers
                .get_overdue_balance(with_key(&key, request.clone()))
                .await
                .unwrap()
                .into_inner()
                .balances;
            latencies.push(t.elapsed());
            counted = balances.iter().map(|b| b.invoice_count).sum::<i32>();
        }
        latencies.sort();
        let ms = |p| percentile(&latencies, p).as_secs_f64() * 1e3;
        (
            counted,
            format!(
                "p50 **{:.2} ms**, p90 {:.2} ms, p99 {:.2} ms",
                ms(0.50),
                ms(0.90),
                ms(0.99)
            ),
        )
    };
    let (counted, fresh) = measure(customers.clone(), key.clone(), request.clone()).await;
    // PostgreSQL right after a bulk load has no statistics and no visibility map yet; autovacuum
    // provides both within a minute or so. Measure that steady state too.
    let settled = if vacuum_url.starts_with("postgres") {
        let db = Database::connect(&vacuum_url).await.unwrap();
        db.execute_unprepared("VACUUM ANALYZE").await.unwrap();
        measure(customers.clone(), key.clone(), request.clone())
            .await
            .1
    } else {
        "same (no autovacuum)".to_owned()
    };
    println!(
        "| {label} | {} invoices in {:.2} s | **{:.0} invoices/s** | {:.0} invoices/s | {counted} | {fresh} | {settled} |",
        BATCH * BATCHES,
        elapsed.as_secs_f64(),
        rate,
        resync_rate,
    );
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    println!(
        "| database | BatchUpsertInvoices (new) | throughput | re-sync (unchanged) | overdue invoices counted | GetOverdueBalance right after the load ({BALANCE_CALLS} calls) | GetOverdueBalance after VACUUM ANALYZE |"
    );
    println!("|---|---|---|---|---|---|---|");
    for database in support::databases("bench_api").await {
        run(database.label(), database.url()).await;
        database.remove().await;
    }
}
