//! WatchEvents fan-out: 1,000 concurrent subscribers on one `dunning serve` process while 500
//! events/s are written. Measures delivery latency (commit-side `event_time` to receipt by the
//! subscriber, same machine clock), checks every subscriber got every event exactly once and in
//! order, and reads the server's resident memory from /proc.
//!
//! `cargo bench --bench watch` (SQLite; PostgreSQL too with `DUNNING_BENCH_POSTGRES_URL`).
//! `WATCH_SUBSCRIBERS`, `WATCH_EVENTS_PER_SECOND` and `WATCH_SECONDS` change the load.
// A benchmark measures wall time and dates its seed data by the real clock.
#![allow(clippy::disallowed_methods)]

mod support;

use dunning::proto::{self, dunning_service_client::DunningServiceClient};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Subscribers per HTTP/2 connection (servers commonly allow 100-200 concurrent streams).
const STREAMS_PER_CONNECTION: usize = 100;
/// Events per write: a billing system syncing invoices in small batches.
const EVENTS_PER_WRITE: usize = 25;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field).map(|rest| {
                rest.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dunning(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dunning"));
    command
        .env("DUNNING_DATABASE_URL", database_url)
        .env("DUNNING_LOG", "warn")
        .env(
            "DUNNING_OUTBOX_DIR",
            std::env::temp_dir().join("dunning-watch-bench-outbox"),
        );
    command
}

async fn start_server(database_url: &str) -> (Server, String) {
    let output = dunning(database_url)
        .args(["org", "create", "bench"])
        .output()
        .expect("dunning org create");
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = dunning(database_url)
        .arg("serve")
        .env("DUNNING_GRPC_ADDR", &addr)
        .env("DUNNING_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("dunning serve");
    let server = Server { child, addr };
    for _ in 0..100 {
        if Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .is_ok()
        {
            return (server, key);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

fn with_key<T>(auth: &MetadataValue<tonic::metadata::Ascii>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

async fn run(label: &str, database_url: String) {
    let subscribers = env_or("WATCH_SUBSCRIBERS", 1000);
    let rate = env_or("WATCH_EVENTS_PER_SECOND", 500);
    let seconds = env_or("WATCH_SECONDS", 20);
    let (server, key) = start_server(&database_url).await;
    let pid = server.child.id();
    let idle_rss = rss_kib(pid, "VmRSS:");
    let auth: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();

    let mut channels = Vec::new();
    for _ in 0..subscribers.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(
            Channel::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let total_events = rate * seconds;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let channel = channels[i / STREAMS_PER_CONNECTION].clone();
        let auth = auth.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = DunningServiceClient::new(channel);
            let mut request = tonic::Request::new(proto::WatchEventsRequest {
                from_now: true,
                ..Default::default()
            });
            request.metadata_mut().insert("authorization", auth);
            let mut stream = client.watch_events(request).await.unwrap().into_inner();
            ready.send(()).await.unwrap();
            let mut latencies = Vec::with_capacity(total_events);
            let mut last = None;
            while latencies.len() < total_events {
                let item = stream.message().await.unwrap().expect("stream open");
                let Some(event) = item.event else { continue };
                let sent = event.event_time.unwrap();
                let sent =
                    chrono::DateTime::from_timestamp(sent.seconds, sent.nanos as u32).unwrap();
                let latency = chrono::Utc::now() - sent;
                latencies.push(latency.num_microseconds().unwrap_or(0).max(0) as u64);
                if let Some(previous) = last {
                    assert_eq!(event.sequence, previous + 1, "gap-free and in order");
                }
                last = Some(event.sequence);
            }
            latencies
        }));
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.unwrap();
    }
    let connected_rss = rss_kib(pid, "VmRSS:");

    // The writer: customers, then invoices in batches at the target event rate.
    let writer_channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut customers =
        proto::customer_service_client::CustomerServiceClient::new(writer_channel.clone());
    // The customer's creation is one event too: count it in.
    customers
        .create_customer(with_key(
            &auth,
            proto::CreateCustomerRequest {
                customer: Some(proto::Customer {
                    external_id: "cus_bench".into(),
                    name: "Bench".into(),
                    email: "bench@example.com".into(),
                    timezone: "UTC".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let mut invoices = proto::invoice_service_client::InvoiceServiceClient::new(writer_channel);
    let writes = (total_events - 1).div_ceil(EVENTS_PER_WRITE);
    let interval = Duration::from_secs_f64(EVENTS_PER_WRITE as f64 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    let started = Instant::now();
    let mut peak_rss = connected_rss;
    let mut written = 1;
    for w in 0..writes {
        ticker.tick().await;
        let count = EVENTS_PER_WRITE.min(total_events - written);
        let batch = (0..count)
            .map(|i| proto::Invoice {
                external_id: format!("inv_{w}_{i}"),
                customer_external_id: "cus_bench".into(),
                number: format!("N-{w}-{i}"),
                currency_code: "EUR".into(),
                total_amount: "100.00".into(),
                issue_date: "2026-10-01".into(),
                due_date: "2026-10-31".into(),
                ..Default::default()
            })
            .collect();
        invoices
            .batch_upsert_invoices(with_key(
                &auth,
                proto::BatchUpsertInvoicesRequest { invoices: batch },
            ))
            .await
            .unwrap();
        written += count;
        if w % 20 == 0 {
            peak_rss = peak_rss.max(rss_kib(pid, "VmRSS:"));
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    let mut all = Vec::with_capacity(subscribers * total_events);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let delivered_secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let high_water = rss_kib(pid, "VmHWM:");
    println!(
        "| {label} | {subscribers} | {rate}/s ({:.0}/s achieved) | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {} / {} / {} MiB |",
        written as f64 / write_secs,
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
        idle_rss / 1024,
        connected_rss / 1024,
        peak_rss.max(high_water) / 1024,
    );
    eprintln!("{label}: all delivered {delivered_secs:.1} s after the first write");
    drop(server);
}

#[tokio::main]
async fn main() {
    println!(
        "| database | subscribers | events written | deliveries checked | p50 | p99 | p99.9 | max | server RSS idle / 1,000 connected / peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for database in support::databases("bench_watch").await {
        run(database.label(), database.url()).await;
        database.remove().await;
    }
}
