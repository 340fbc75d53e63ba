//! Roles across real OS processes on one PostgreSQL database: a `dunning serve` with the api
//! role alone serves the API and does no background work; one with the engine role alone
//! serves only health (reporting `dunning.engine`) and does the work: the step the API
//! process's data made due reaches the SMTP server from the engine process.

use crate::common::policy::{default_policy_at_any_hour, one_reminder};
use crate::common::smtp::SmtpServer;
use crate::common::{Backend, TestServer, customer, invoice};
use dunning::proto;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

async fn health(addr: &str, service: &str) -> Result<i32, tonic::Code> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|status| status.code())
}

#[tokio::test]
async fn api_and_engine_processes_split_the_work() {
    let s = TestServer::start(Backend::Postgres).await;
    let smtp = SmtpServer::start().await;
    let settings = |roles: &str| {
        vec![
            ("DUNNING_ROLES", roles.to_owned()),
            ("DUNNING_SMTP_URL", smtp.url()),
        ]
    };
    let api = crate::common::spawn_serve(s.database_url(), &settings("api")).await;
    assert_eq!(
        health(&api.addr, "dunning.v1.DunningService").await,
        Ok(ServingStatus::Serving as i32)
    );
    assert_eq!(
        health(&api.addr, dunning::grpc::ENGINE_HEALTH_SERVICE).await,
        Err(tonic::Code::NotFound),
        "no background work in an API process"
    );

    // A policy with one reminder due long ago, set up through the API process.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", api.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let key: tonic::metadata::MetadataValue<_> = format!("Bearer {}", s.key).parse().unwrap();
    let auth = move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", key.clone());
        Ok(request)
    };
    let mut dunning = proto::dunning_service_client::DunningServiceClient::with_interceptor(
        channel.clone(),
        auth.clone(),
    );
    let mut organizations =
        proto::organization_service_client::OrganizationServiceClient::with_interceptor(
            channel.clone(),
            auth.clone(),
        );
    let mut customers = proto::customer_service_client::CustomerServiceClient::with_interceptor(
        channel.clone(),
        auth.clone(),
    );
    let mut invoices =
        proto::invoice_service_client::InvoiceServiceClient::with_interceptor(channel, auth);
    dunning.create_policy(one_reminder("one")).await.unwrap();
    organizations
        .update_organization(default_policy_at_any_hour("one"))
        .await
        .unwrap();
    customers
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_roles")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    invoices
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(proto::Invoice {
                collection_method: proto::CollectionMethod::Automatic as i32,
                ..invoice("inv_roles", "cus_roles")
            }),
        })
        .await
        .unwrap();

    let engine = crate::common::spawn_serve(s.database_url(), &settings("engine")).await;
    assert_eq!(
        health(&engine.addr, dunning::grpc::ENGINE_HEALTH_SERVICE).await,
        Ok(ServingStatus::Serving as i32)
    );
    assert_eq!(
        health(&engine.addr, "dunning.v1.DunningService").await,
        Err(tonic::Code::NotFound),
        "no API in an engine process"
    );
    let mut engine_api = proto::dunning_service_client::DunningServiceClient::connect(format!(
        "http://{}",
        engine.addr
    ))
    .await
    .unwrap();
    let refused = engine_api
        .list_processes(proto::ListProcessesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(
        refused.message().contains("engine role only"),
        "{}",
        refused.message()
    );
    // The engine process runs the step: its reminder arrives, once.
    let received = smtp.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["cus_roles@example.com"]);
    let processes = dunning
        .list_processes(proto::ListProcessesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .processes;
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].current_step_index, 1);
}

/// While a process migrates its database it already answers health, NOT_SERVING, and API
/// calls UNAVAILABLE `SERVER_STARTING`; once migrated it reports SERVING and serves. The
/// migration is held back by a lock on its bookkeeping table, taken by the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_process_is_not_serving_until_migrated() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let s = TestServer::start(Backend::Postgres).await;
    let db = Database::connect(s.database_url()).await.unwrap();
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE seaql_migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut serve = crate::common::spawn_serve_starting(s.database_url(), &[]).await;
    let api_service = "dunning.v1.CustomerService";
    assert_eq!(
        health(&serve.addr, api_service).await,
        Ok(ServingStatus::NotServing as i32)
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", serve.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut customers = proto::customer_service_client::CustomerServiceClient::with_interceptor(
        channel,
        s.auth(&s.key),
    );
    crate::common::assert_error(
        customers
            .list_customers(proto::ListCustomersRequest::default())
            .await,
        tonic::Code::Unavailable,
        "SERVER_STARTING",
    );
    lock.rollback().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while health(&serve.addr, api_service).await != Ok(ServingStatus::Serving as i32) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("SERVING once migrated");
    customers
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap();
    serve.kill().await;
    db.close().await.unwrap();
    s.stop().await;
}
