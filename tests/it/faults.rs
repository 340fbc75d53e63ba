//! Dependency faults: with the database unreachable, calls answer UNAVAILABLE (never INTERNAL,
//! never a hang), nothing is half-written, and the service recovers by itself.

use crate::common::{Backend, TestServer, assert_error, customer};
use dunning::proto;
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;

/// Refuses new connections to the test database and ends the existing ones (PostgreSQL).
async fn set_database_reachable(s: &TestServer, reachable: bool) {
    let admin_url = crate::common::postgres_admin_url();
    let name = s.database_url().rsplit('/').next().unwrap().to_owned();
    let admin = Database::connect(&admin_url).await.unwrap();
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}"
        ))
        .await
        .unwrap();
    if !reachable {
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_unavailable_then_recovers() {
    let s = TestServer::start(Backend::Postgres).await;
    let mut api = s.customers();
    let create = |id: &str| proto::CreateCustomerRequest {
        customer: Some(customer(id)),
        request_id: format!("req-{id}"),
    };
    api.create_customer(create("before")).await.unwrap();

    set_database_reachable(&s, false).await;
    assert_error(
        api.create_customer(create("during")).await,
        Code::Unavailable,
        "STORAGE_UNAVAILABLE",
    );
    assert_error(
        api.list_customers(proto::ListCustomersRequest::default())
            .await,
        Code::Unavailable,
        "STORAGE_UNAVAILABLE",
    );

    set_database_reachable(&s, true).await;
    // The same request, retried, now succeeds exactly once.
    let created = api
        .create_customer(create("during"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let retried = api
        .create_customer(create("during"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(created.id, retried.id);
    let listed = api
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed
        .customers
        .iter()
        .map(|c| c.external_id.as_str())
        .collect();
    assert_eq!(ids, vec!["before", "during"]);
    assert_eq!(
        s.event_types().await,
        vec!["customer.created", "customer.created"]
    );
    s.stop().await;
}
