//! Resources under abuse, measured on a real `dunning serve` process from outside (its
//! `/proc` entry): event streams opened and abandoned by the thousand leave no task, file
//! descriptor or memory behind, and a thousand idle connections do not stop it answering
//! others.

use crate::common::{Backend, TestServer};
use dunning::proto;
use dunning::proto::dunning_service_client::DunningServiceClient;
use futures_util::StreamExt;
use std::time::Duration;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits (at most 30 s) until the process holds at most `fds` file descriptors.
async fn settle_fds(pid: u32, fds: usize) -> usize {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let now = open_fds(pid);
            if now <= fds {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| open_fds(pid))
}

async fn open_and_abandon(client: &DunningServiceClient<crate::common::Authed>, streams: usize) {
    futures_util::stream::iter(0..streams)
        .for_each_concurrent(50, |_| {
            let mut client = client.clone();
            async move {
                let stream = client
                    .watch_events(proto::WatchEventsRequest::default())
                    .await
                    .expect("the stream opens");
                drop(stream);
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_streams_and_idle_connections_leave_nothing_behind() {
    let s = TestServer::start(Backend::Postgres).await;
    let serve = crate::common::spawn_serve(s.database_url(), &[]).await;
    let pid = serve.child.id().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", serve.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = DunningServiceClient::with_interceptor(channel, s.auth(&s.key));
    // Warm up (database pool, allocator arenas), then measure.
    open_and_abandon(&client, 200).await;
    let fds_before = settle_fds(pid, usize::MAX).await;
    let rss_before = rss_kib(pid);
    open_and_abandon(&client, 10_000).await;
    let fds_after = settle_fds(pid, fds_before + 2).await;
    let rss_after = rss_kib(pid);
    eprintln!(
        "10,000 abandoned streams: fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(fds_after <= fds_before + 2, "{fds_before} -> {fds_after}");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );

    // A thousand connections that never speak: the service still answers a new client.
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        idle.push(tokio::net::TcpStream::connect(&serve.addr).await.unwrap());
    }
    let fresh = tonic::transport::Endpoint::from_shared(format!("http://{}", serve.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("a new client connects");
    DunningServiceClient::with_interceptor(fresh, s.auth(&s.key))
        .list_events(proto::ListEventsRequest::default())
        .await
        .expect("and is answered");
    drop(idle);
    assert!(
        settle_fds(pid, fds_before + 4).await <= fds_before + 4,
        "closed idle connections are let go"
    );
}

/// A gRPC client on a new connection to `s` lists customers.
async fn answered_on_a_new_connection(s: &TestServer) -> bool {
    let Ok(channel) =
        tonic::transport::Endpoint::from_shared(format!("http://{}", s.server().grpc_addr))
            .unwrap()
            .timeout(Duration::from_secs(2))
            .connect()
            .await
    else {
        return false;
    };
    dunning::proto::customer_service_client::CustomerServiceClient::with_interceptor(
        channel,
        s.auth(&s.key),
    )
    .list_customers(proto::ListCustomersRequest::default())
    .await
    .is_ok()
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start_with(Backend::Sqlite, |c| c.max_connections = 3).await;
    let addr = s.server().grpc_addr;
    // The test server's own client holds one connection; two idle ones take the rest.
    let mut idle = vec![
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    let mut refused = tokio::net::TcpStream::connect(addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut [0; 16]))
        .await
        .expect("the server closes it at once");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    s.customers()
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .expect("connections within the limit are served");
    // An idle connection goes; its place is free again.
    idle.pop();
    let freed = tokio::time::timeout(Duration::from_secs(10), async {
        while !answered_on_a_new_connection(&s).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        freed.is_ok(),
        "a closed connection's place is given to a new one"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_deadline() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut incoming, _accepting) =
        dunning::listener::incoming(listener, 10, dunning::listener::plain);
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut speaking = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut speaking, b"PRI * HTTP/2.0")
        .await
        .unwrap();
    let handed = incoming.next().await.expect("the speaking one is served");
    assert!(handed.is_ok());
    // Measures how long the silent connection was kept; no rule reads it as a time.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(
        dunning::listener::FIRST_BYTES_TIMEOUT + Duration::from_secs(5),
        silent.read(&mut [0; 8]),
    )
    .await
    .expect("the silent one is closed at the deadline");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= dunning::listener::FIRST_BYTES_TIMEOUT - Duration::from_secs(1),
        "kept until the deadline, not closed at once"
    );
}
