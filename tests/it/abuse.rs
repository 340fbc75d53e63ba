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
