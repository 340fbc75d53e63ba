//! The engine across real OS processes on one PostgreSQL database: three `dunning serve`
//! replicas racing over the same 1,000 due processes, and a replica killed with SIGKILL
//! between the claim and the commit of a batch of steps. Exactly once is counted from the outside: at the SMTP server.

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, TestServer, customer, invoice};
use dunning::proto;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use std::collections::HashSet;
use std::time::Duration;
use tonic::Streaming;

const CUSTOMERS: usize = 100;
const INVOICES_PER_CUSTOMER: usize = 10;
const PROCESSES: usize = CUSTOMERS * INVOICES_PER_CUSTOMER;

/// An INVOICE-scope policy with one reminder step, due long ago for every invoice, emails at
/// any hour: 1,000 processes due at once.
async fn burst(s: &TestServer) {
    s.use_one_reminder_policy().await;
    let mut invoices = Vec::new();
    for c in 0..CUSTOMERS {
        let external_id = format!("cus_{c}");
        s.customers()
            .create_customer(proto::CreateCustomerRequest {
                customer: Some(customer(&external_id)),
                request_id: String::new(),
            })
            .await
            .unwrap();
        for i in 0..INVOICES_PER_CUSTOMER {
            invoices.push(proto::Invoice {
                collection_method: proto::CollectionMethod::Automatic as i32,
                ..invoice(&format!("inv_{c}_{i}"), &external_id)
            });
        }
    }
    s.invoices()
        .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices })
        .await
        .unwrap();
}

fn settings(smtp: &SmtpServer) -> Vec<(&'static str, String)> {
    vec![
        ("DUNNING_SMTP_URL", smtp.url()),
        ("DUNNING_CLAIM_LEASE_SECONDS", "3".into()),
    ]
}

async fn sent_events(s: &TestServer) -> Streaming<proto::WatchEventsResponse> {
    events_of_type(s, "notification.sent").await
}

async fn events_of_type(s: &TestServer, event_type: &str) -> Streaming<proto::WatchEventsResponse> {
    s.dunning()
        .watch_events(proto::WatchEventsRequest {
            types: vec![event_type.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits for `count` more events of the stream, at most two minutes.
async fn await_events(stream: &mut Streaming<proto::WatchEventsResponse>, count: usize) {
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(120), async {
        while seen < count {
            let item = stream.message().await.unwrap().expect("stream open");
            if item.event.is_some() {
                seen += 1;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {seen} of {count} events arrived"));
}

/// Every process ran its step exactly once and every notification was sent; the SMTP server
/// received each message (by Message-ID) and, at most for the ones in flight when a replica
/// was killed, a second copy with the same Message-ID.
async fn assert_exactly_once(s: &TestServer, smtp: &SmtpServer, in_flight_at_kill: usize) {
    let mut token = String::new();
    let mut processes = 0;
    loop {
        let page = s
            .dunning()
            .list_processes(proto::ListProcessesRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for p in &page.processes {
            processes += 1;
            assert_eq!(p.state, proto::ProcessState::Exhausted as i32, "{p:?}");
            assert_eq!(p.current_step_index, 1, "{p:?}");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // One step run per process, as its events say.
    let step_events: Vec<String> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e.r#type == "process.step_executed")
        .map(|e| e.process_id)
        .collect();
    let steps = step_events.len();
    let distinct: HashSet<&String> = step_events.iter().collect();
    assert_eq!(distinct.len(), PROCESSES);
    assert_eq!((processes, steps), (PROCESSES, PROCESSES));
    let notifications = s
        .dunning()
        .list_notifications(proto::ListNotificationsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(notifications.notifications.len(), PROCESSES);
    assert!(notifications.next_page_token.is_empty());
    let received = smtp.received();
    let ids: HashSet<String> = received
        .iter()
        .map(|m| m.header("Message-ID").expect("Message-ID"))
        .collect();
    assert_eq!(ids.len(), PROCESSES, "each step's email arrived");
    assert!(
        received.len() <= PROCESSES + in_flight_at_kill,
        "{} messages for {PROCESSES} emails",
        received.len()
    );
}

/// Processes claimed by a replica and not committed: their `due_at` holds a lease in the
/// future (a committed one-step process has none; an unclaimed one is due in the past).
async fn leases_held(db: &DatabaseConnection) -> i64 {
    // The replicas run on the system clock: their leases are compared with it.
    #[allow(clippy::disallowed_methods)]
    let now = chrono::Utc::now().timestamp_micros();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS held FROM processes WHERE due_at > {now}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "held").unwrap()
}

/// SIGTERM in the middle of the burst: the replica drains (finishes the batches and emails it
/// holds, claims nothing more) and exits cleanly, leaving no lease behind; a replica started
/// after it completes the rest within a time far below the lease (300 s), every step and
/// email exactly once, with no second copy at the SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_replica_drains_and_the_next_completes_the_rest() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start(Backend::Postgres).await;
    burst(&s).await;
    let mut sent = sent_events(&s).await;
    let url = s.database_url().to_owned();
    let settings = vec![
        ("DUNNING_SMTP_URL", smtp.url()),
        ("DUNNING_CLAIM_LEASE_SECONDS", "300".into()),
    ];
    let mut steps = events_of_type(&s, "process.step_executed").await;
    let db = Database::connect(&url).await.unwrap();
    let mut replica = crate::common::spawn_serve(&url, &settings).await;
    await_events(&mut steps, 150).await;
    let status = replica.terminate().await;
    assert!(
        status.success(),
        "a drained process exits cleanly: {status}"
    );
    assert_eq!(leases_held(&db).await, 0, "no lease is left to expire");
    let ran_before = s
        .events()
        .await
        .iter()
        .filter(|e| e.r#type == "process.step_executed")
        .count();
    assert!(ran_before < PROCESSES, "SIGTERM came after the burst");
    let next = crate::common::spawn_serve(&url, &settings).await;
    await_events(&mut sent, PROCESSES).await;
    assert_exactly_once(&s, &smtp, 0).await;
    drop(next);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_run_each_step_exactly_once() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start(Backend::Postgres).await;
    burst(&s).await;
    let mut sent = sent_events(&s).await;
    let url = s.database_url().to_owned();
    let settings = settings(&smtp);
    let (a, b, c) = tokio::join!(
        crate::common::spawn_serve(&url, &settings),
        crate::common::spawn_serve(&url, &settings),
        crate::common::spawn_serve(&url, &settings),
    );
    await_events(&mut sent, PROCESSES).await;
    assert_exactly_once(&s, &smtp, 0).await;
    drop((a, b, c));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_of_a_killed_replica_is_completed_once_by_the_next() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start(Backend::Postgres).await;
    burst(&s).await;
    let mut sent = sent_events(&s).await;
    let url = s.database_url().to_owned();
    let settings = settings(&smtp);
    let mut steps = events_of_type(&s, "process.step_executed").await;
    let db = Database::connect(&url).await.unwrap();
    // Killed while it holds claims it has not committed: a replica runs a batch of 100
    // claimed steps in one transaction, so after some batches committed the kill almost
    // always falls inside one; the leases left in the table prove it did. If one kill fell
    // between two batches, the next replica goes on and is killed in turn.
    let mut claims_left = 0;
    for _ in 0..5 {
        let mut replica = crate::common::spawn_serve(&url, &settings).await;
        await_events(&mut steps, 150).await;
        replica.kill().await;
        claims_left = leases_held(&db).await;
        if claims_left > 0 {
            break;
        }
    }
    assert!(claims_left > 0, "no kill fell between claim and commit");
    let ran_before_kill = s
        .events()
        .await
        .iter()
        .filter(|e| e.r#type == "process.step_executed")
        .count();
    assert!(ran_before_kill < PROCESSES, "the kill came after the burst");
    let second = crate::common::spawn_serve(&url, &settings).await;
    await_events(&mut sent, PROCESSES).await;
    // Emails the killed replica had sent but not yet recorded may arrive twice, with the
    // same Message-ID (SMTP is at-least-once; receivers deduplicate by Message-ID): at most
    // one outbox claim's worth (200).
    assert_exactly_once(&s, &smtp, 200).await;
    drop(second);
    s.stop().await;
}
