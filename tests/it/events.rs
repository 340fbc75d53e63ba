//! The event log through WatchEvents and ListEvents: gap-free, ordered, resumable, live across
//! replicas.

use crate::common::{Backend, TestServer, assert_error, customer};
use dunning::proto::{self, dunning_service_client::DunningServiceClient};
use std::time::Duration;
use tonic::{Code, Streaming};

async fn create_customers(s: &TestServer, prefix: &str, count: usize) {
    let mut api = s.customers();
    for i in 0..count {
        api.create_customer(proto::CreateCustomerRequest {
            customer: Some(customer(&format!("{prefix}{i:03}"))),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
}

async fn watch(
    client: &mut DunningServiceClient<crate::common::Authed>,
    request: proto::WatchEventsRequest,
) -> Streaming<proto::WatchEventsResponse> {
    client.watch_events(request).await.unwrap().into_inner()
}

/// The next event (skipping heartbeats), waiting at most five seconds.
async fn next_event(stream: &mut Streaming<proto::WatchEventsResponse>) -> proto::Event {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event within 5 s")
            .expect("stream healthy")
            .expect("stream open");
        if let Some(event) = item.event {
            return event;
        }
    }
}

async fn replay_then_live_then_resume(s: &TestServer) {
    create_customers(s, "a", 3).await;
    let mut client = s.dunning();
    let mut stream = watch(&mut client, proto::WatchEventsRequest::default()).await;
    for expected in 1..=3 {
        assert_eq!(
            next_event(&mut stream).await.sequence,
            expected,
            "replayed in order"
        );
    }
    create_customers(s, "b", 2).await;
    let live = next_event(&mut stream).await;
    assert_eq!(
        (live.sequence, live.r#type.as_str()),
        (4, "customer.created")
    );
    assert_eq!(live.customer_external_id, "b000");
    drop(stream);

    // Disconnected; more happens; resume from the last sequence received.
    create_customers(s, "c", 2).await;
    let mut resumed = watch(
        &mut client,
        proto::WatchEventsRequest {
            after_sequence: 4,
            ..Default::default()
        },
    )
    .await;
    let sequences: Vec<i64> = [
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
    ]
    .iter()
    .map(|e| e.sequence)
    .collect();
    assert_eq!(sequences, vec![5, 6, 7]);

    // From now: only what comes after.
    let mut from_now = watch(
        &mut client,
        proto::WatchEventsRequest {
            from_now: true,
            ..Default::default()
        },
    )
    .await;
    create_customers(s, "d", 1).await;
    assert_eq!(next_event(&mut from_now).await.sequence, 8);
}

async fn filters_apply_to_the_stream(s: &TestServer) {
    create_customers(s, "x", 2).await;
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(crate::common::invoice("inv_1", "x001")),
        })
        .await
        .unwrap();
    let mut client = s.dunning();
    let mut by_type = watch(
        &mut client,
        proto::WatchEventsRequest {
            types: vec!["invoice.created".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next_event(&mut by_type).await.invoice_external_id, "inv_1");
    let mut by_customer = watch(
        &mut client,
        proto::WatchEventsRequest {
            customer_external_id: "x001".into(),
            ..Default::default()
        },
    )
    .await;
    let first = next_event(&mut by_customer).await;
    let second = next_event(&mut by_customer).await;
    assert_eq!(
        (first.r#type.as_str(), second.r#type.as_str()),
        ("customer.created", "invoice.created")
    );
    assert!(first.sequence < second.sequence);
    assert_error(
        client
            .watch_events(proto::WatchEventsRequest {
                after_sequence: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
}

async fn concurrent_writers_give_a_contiguous_stream(s: &TestServer) {
    let mut client = s.dunning();
    let mut stream = watch(&mut client, proto::WatchEventsRequest::default()).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut api = s.customers();
            tokio::spawn(async move {
                for i in 0..25 {
                    api.create_customer(proto::CreateCustomerRequest {
                        customer: Some(customer(&format!("w{w}_{i:02}"))),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(next_event(&mut stream).await.sequence);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<i64>>(),
        "every sequence once, in order"
    );
}

async fn a_slow_subscriber_loses_nothing(s: &TestServer) {
    let mut client = s.dunning();
    let mut stream = watch(&mut client, proto::WatchEventsRequest::default()).await;
    // Write far more than the subscriber's buffer while it reads nothing.
    create_customers(s, "s", 150).await;
    for expected in 1..=150 {
        assert_eq!(next_event(&mut stream).await.sequence, expected);
    }
    create_customers(s, "t", 1).await;
    assert_eq!(next_event(&mut stream).await.sequence, 151);
}

/// A subscriber that reads nothing while thousands of events are committed falls behind the
/// live broadcast (4,096 events) and catches up from the log: every matching event arrives
/// once, in order.
async fn a_subscriber_behind_the_broadcast_catches_up_from_the_log(s: &TestServer) {
    create_customers(s, "c", 1).await;
    let mut client = s.dunning();
    let mut stream = watch(
        &mut client,
        proto::WatchEventsRequest {
            types: vec!["invoice.created".into()],
            ..Default::default()
        },
    )
    .await;
    for batch in 0..20 {
        let invoices = (0..1000)
            .map(|i| crate::common::invoice(&format!("inv_{batch}_{i:04}"), "c000"))
            .collect();
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices })
            .await
            .unwrap();
    }
    for expected in 2..=20001 {
        let event = next_event(&mut stream).await;
        assert_eq!(
            (event.sequence, event.r#type.as_str()),
            (expected, "invoice.created")
        );
    }
    create_customers(s, "d", 1).await;
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(crate::common::invoice("inv_last", "d000")),
        })
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await.sequence,
        20003,
        "live again, filter applied"
    );
}

async fn shutdown_ends_streams_with_a_resumable_status(s: &TestServer) {
    create_customers(s, "z", 1).await;
    let (replica, channel) = s.second_replica().await;
    let mut client = DunningServiceClient::with_interceptor(channel, s.auth(&s.key));
    let mut stream = watch(&mut client, proto::WatchEventsRequest::default()).await;
    assert_eq!(next_event(&mut stream).await.sequence, 1);
    let shutdown = tokio::spawn(replica.shutdown());
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends promptly");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("after_sequence = 1"),
        "{}",
        status.message()
    );
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
}

on_both_backends!(
    replay_then_live_then_resume,
    filters_apply_to_the_stream,
    concurrent_writers_give_a_contiguous_stream,
    a_slow_subscriber_loses_nothing,
    a_subscriber_behind_the_broadcast_catches_up_from_the_log,
    shutdown_ends_streams_with_a_resumable_status,
);

/// An event written through one server process reaches a subscriber of another one (LISTEN /
/// NOTIFY), promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_replicas_on_postgres() {
    let s = TestServer::start(Backend::Postgres).await;
    let (replica, channel) = s.second_replica().await;
    let mut on_replica = DunningServiceClient::with_interceptor(channel, s.auth(&s.key));
    let mut stream = watch(
        &mut on_replica,
        proto::WatchEventsRequest {
            from_now: true,
            ..Default::default()
        },
    )
    .await;
    create_customers(&s, "r", 3).await;
    // Measures how long the live events took to arrive.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    for expected in 1..=3 {
        let event = tokio::time::timeout(Duration::from_secs(1), next_event(&mut stream))
            .await
            .expect("within a second");
        assert_eq!(event.sequence, expected);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(stream);
    replica.shutdown().await;
    s.stop().await;
}

/// A server running as its own OS process (`dunning serve`) on the same PostgreSQL database:
/// events written through this test's server reach a subscriber of that process within a
/// second, woken by LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_server_processes_on_postgres() {
    let s = TestServer::start(Backend::Postgres).await;
    let mut child = crate::common::spawn_serve(s.database_url(), &[]).await;
    let addr = child.addr.clone();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut other_process = DunningServiceClient::with_interceptor(channel, s.auth(&s.key));
    let mut stream = watch(
        &mut other_process,
        proto::WatchEventsRequest {
            from_now: true,
            ..Default::default()
        },
    )
    .await;
    create_customers(&s, "p", 3).await;
    for expected in 1..=3 {
        let event = tokio::time::timeout(Duration::from_secs(1), next_event(&mut stream))
            .await
            .expect("within a second");
        assert_eq!(event.sequence, expected);
    }
    drop(stream);
    child.kill().await;
    s.stop().await;
}
