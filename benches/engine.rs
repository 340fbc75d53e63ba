//! Engine benchmark: 100,000 dunning processes due at once, each running a reminder step
//! (email rendered into the outbox, step run, events), on SQLite and PostgreSQL.
//!
//!     cargo bench --bench engine
//!     DUNNING_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench engine
//!     DUNNING_BENCH_PROCESSES=20000 cargo bench --bench engine     # a shorter run
//!
//! Reports, per database:
//! - the burst: steps per second with `DUNNING_BENCH_WORKERS` (default 2) engine loops, the
//!   time from the burst's start to each step's execution (p50 / p99), and `GetCustomer`
//!   latency over gRPC while the burst runs;
//! - the ceiling: the same rows (step runs, outbox rows, events, process updates) written by
//!   plain batched SQL copying rows of the burst, with no service in between, and the ratio;
//! - steady load: 100 steps falling due per second, run by the engine's real background loop,
//!   and the lag from each step's due time to its execution (p50 / p99).
//!
//! Not a test: it prints figures (copy them into BENCHMARKS.md) and asserts nothing.
// A benchmark measures wall time and dates its seed data by the real clock.
#![allow(clippy::disallowed_methods)]

mod support;

use chrono::{DateTime, Utc};
use dunning::domain::customer::CustomerDetails;
use dunning::domain::invoice::{CollectionMethod, InvoiceSync};
use dunning::domain::money::Currency;
use dunning::domain::organization::{OrganizationField, QuietHours};
use dunning::domain::policy::{
    Action, ActionCondition, ActionType, PolicyDefinition, PolicyScope, Step, StepAnchor,
};
use dunning::domain::template::TemplateKind;
use dunning::engine::jobs::DunningEngine;
use dunning::engine::runtime;
use dunning::proto::customer_service_client::CustomerServiceClient;
use dunning::proto::{self, get_customer_request};
use dunning::service::{Caller, Services};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;

const INVOICES_PER_CUSTOMER: usize = 10;
const ROWS_PER_CEILING_BATCH: usize = 1000;
const STEADY_RATE: usize = 100;
const STEADY_SECONDS: usize = 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn setup(services: &Services, caller: Caller, processes: usize) {
    let mut settings = services
        .organizations
        .get_organization(caller)
        .await
        .unwrap()
        .settings;
    settings.quiet_hours = QuietHours {
        enabled: false,
        ..QuietHours::default()
    };
    settings.default_policy_code = "bench".into();
    let definition = PolicyDefinition {
        name: "Bench".into(),
        description: String::new(),
        scope: PolicyScope::Invoice,
        thresholds: vec![],
        include_manual_invoices: false,
        bcc_emails: vec![],
        collection_agency_email: String::new(),
        steps: vec![Step {
            name: "Friendly".into(),
            delay_days: 1,
            anchor: StepAnchor::DueDate,
            actions: vec![Action {
                action_type: ActionType::SendReminder,
                condition: ActionCondition::Always,
                template_kind: Some(TemplateKind::FriendlyReminder),
                fee: None,
                interest: None,
            }],
        }],
    };
    services
        .policies
        .create_policy(caller, "bench".into(), definition, None)
        .await
        .unwrap();
    services
        .organizations
        .update_organization(
            caller,
            &settings,
            &[
                OrganizationField::QuietHours,
                OrganizationField::DefaultPolicyCode,
            ],
        )
        .await
        .unwrap();
    let customers = processes.div_ceil(INVOICES_PER_CUSTOMER);
    let eur = Currency::from_code("EUR").unwrap();
    for c in 0..customers {
        let details = CustomerDetails {
            name: format!("Customer {c}"),
            email: format!("ap{c}@bench.test"),
            cc_emails: vec![],
            bcc_emails: vec![],
            locale: "en".into(),
            timezone: chrono_tz::UTC,
            sales_rep_email: String::new(),
            payment_method: None,
            policy_code: String::new(),
            dunning_excluded: false,
            dunning_excluded_reason: String::new(),
            tags: vec![],
            metadata: Default::default(),
        };
        services
            .customers
            .create_customer(caller, format!("cus_{c}"), details, None, None)
            .await
            .unwrap();
    }
    let syncs: Vec<InvoiceSync> = (0..processes)
        .map(|i| InvoiceSync {
            external_id: format!("inv_{i}"),
            customer_external_id: format!("cus_{}", i / INVOICES_PER_CUSTOMER),
            number: format!("2026-{i:06}"),
            currency: eur,
            total_minor: 10_000 + (i as i64 % 90_000),
            credited_minor: 0,
            issue_date: "2026-01-01".parse().unwrap(),
            due_date: "2026-02-01".parse().unwrap(),
            collection_method: Some(CollectionMethod::Automatic),
            disputed: false,
            dunning_blocked: false,
            dunning_block_reason: String::new(),
            policy_code: String::new(),
            metadata: Default::default(),
            void: false,
        })
        .collect();
    for chunk in syncs.chunks(1000) {
        services
            .invoices
            .upsert_invoices(caller, chunk, &|i| format!("invoices[{i}]"))
            .await
            .unwrap();
    }
}

/// Runs `work` on `workers` tasks until a round finds nothing.
async fn drain<F, Fut>(workers: usize, work: F)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let work = work.clone();
            tokio::spawn(async move { while work().await > 0 {} })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn sql(db: &DatabaseConnection, text: &str) {
    db.execute_unprepared(text)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"));
}

async fn micros_column(db: &DatabaseConnection, query: &str) -> Vec<i64> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), query))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).unwrap())
        .collect()
}

async fn columns(db: &DatabaseConnection, table: &str) -> Vec<String> {
    let query = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => format!(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = \
             '{table}' ORDER BY ordinal_position"
        ),
        _ => format!("SELECT name FROM pragma_table_info('{table}')"),
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), query))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// `INSERT INTO table SELECT ... FROM table, n copies` of the row `template_where` selects,
/// with some columns replaced by expressions of `g.n` (1..=n).
async fn copy_rows(
    db: &DatabaseConnection,
    table: &str,
    template_where: &str,
    overrides: &[(&str, String)],
    n: usize,
) {
    let postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let new_id = if postgres {
        "gen_random_uuid()"
    } else {
        "randomblob(16)"
    };
    let columns = columns(db, table).await;
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            if c == "id" {
                new_id.to_owned()
            } else if let Some((_, e)) = overrides.iter().find(|(name, _)| name == c) {
                e.clone()
            } else {
                format!("src.{c}")
            }
        })
        .collect();
    let series = if postgres {
        format!("generate_series(1, {n}) AS g(n)")
    } else {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT n FROM s) AS g"
        )
    };
    sql(
        db,
        &format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} AS src CROSS JOIN {series} WHERE {}",
            columns.join(", "),
            exprs.join(", "),
            template_where
        ),
    )
    .await;
}

/// The rows of `steps` reminder steps written with plain batched SQL: per batch of 1,000, one
/// transaction copying 1,000 step runs, 1,000 outbox rows and 2,000 events (step executed,
/// exhausted) from the burst's own rows, bumping the event sequence and updating 1,000
/// processes.
async fn ceiling(db: &DatabaseConnection, org: uuid::Uuid, steps: usize) -> f64 {
    let postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let org_literal = if postgres {
        format!("'{org}'")
    } else {
        format!("X'{}'", org.simple())
    };
    let max_sequence = micros_column(
        db,
        &format!("SELECT MAX(sequence) FROM events WHERE organization_id = {org_literal}"),
    )
    .await[0];
    let started = Instant::now();
    let mut done = 0;
    let mut batch = 0usize;
    while done < steps {
        let n = ROWS_PER_CEILING_BATCH.min(steps - done);
        sql(db, "BEGIN").await;
        copy_rows(
            db,
            "step_runs",
            "src.id = (SELECT id FROM step_runs LIMIT 1)",
            &[("attempt", format!("src.attempt + {} + g.n", 10 + batch * n))],
            n,
        )
        .await;
        copy_rows(
            db,
            "notifications",
            "src.id = (SELECT id FROM notifications LIMIT 1)",
            &[],
            n,
        )
        .await;
        let base = max_sequence + 10 + (batch * 2 * n) as i64;
        sql(
            db,
            &format!(
                "UPDATE organizations SET last_event_sequence = last_event_sequence + {} WHERE \
                 id = {org_literal}",
                2 * n
            ),
        )
        .await;
        for (event_type, offset) in [("process.step_executed", 0), ("process.exhausted", 1)] {
            copy_rows(
                db,
                "events",
                &format!(
                    "src.id = (SELECT id FROM events WHERE event_type = '{event_type}' LIMIT 1)"
                ),
                &[("sequence", format!("{base} + 2 * g.n + {offset}"))],
                n,
            )
            .await;
        }
        sql(
            db,
            &format!(
                "UPDATE processes SET due_at = NULL, updated_at = updated_at + 1 WHERE id IN \
                 (SELECT id FROM processes ORDER BY id LIMIT {n} OFFSET {done})"
            ),
        )
        .await;
        sql(db, "COMMIT").await;
        done += n;
        batch += 1;
    }
    steps as f64 / started.elapsed().as_secs_f64()
}

async fn get_customer_latencies(
    addr: std::net::SocketAddr,
    key: String,
    customers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<f64> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CustomerServiceClient::new(channel);
    let mut latencies = Vec::new();
    let mut i = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut request = tonic::Request::new(proto::GetCustomerRequest {
            customer: Some(get_customer_request::Customer::ExternalId(format!(
                "cus_{}",
                i % customers
            ))),
        });
        let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
        let started = Instant::now();
        client.get_customer(request).await.unwrap();
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn to_utc(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap()
}

async fn run(label: &str, database_url: String) {
    let processes = env_usize("DUNNING_BENCH_PROCESSES", 100_000);
    let workers = env_usize("DUNNING_BENCH_WORKERS", 2);
    let server = support::start_server(database_url.clone(), |_| {}).await;
    let services = server.services().clone();
    let (_, key) = services.auth.create_organization("bench").await.unwrap();
    let caller: Caller = services.auth.authenticate(&key.plain_text).await.unwrap();
    let setup_started = Instant::now();
    setup(&services, caller, processes).await;
    let setup_time = setup_started.elapsed();

    let start_started = Instant::now();
    let jobs = server.engine().clone();
    let starter = jobs.clone();
    drain(1, move || {
        let s = starter.clone();
        async move { s.start_due_processes().await.unwrap() }
    })
    .await;
    let start_rate = processes as f64 / start_started.elapsed().as_secs_f64();

    // The burst, with an API client reading customers meanwhile.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn(get_customer_latencies(
        server.grpc_addr,
        key.plain_text.clone(),
        processes.div_ceil(INVOICES_PER_CUSTOMER),
        stop.clone(),
    ));
    let burst_start = Utc::now();
    let started = Instant::now();
    let runner = jobs.clone();
    drain(workers, move || {
        let s = runner.clone();
        async move { s.run_due_steps().await.unwrap() }
    })
    .await;
    let burst = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let api = reader.await.unwrap();

    let db = Database::connect(&database_url).await.unwrap();
    let mut lags: Vec<f64> = micros_column(&db, "SELECT executed_at FROM step_runs")
        .await
        .into_iter()
        .map(|t| (to_utc(t) - burst_start).num_microseconds().unwrap() as f64 / 1e6)
        .collect();
    lags.sort_by(f64::total_cmp);
    let steps = lags.len();
    let rate = steps as f64 / burst.as_secs_f64();

    // Steady load: processes falling due at 100 per second, run by the real engine loop.
    let steady = (STEADY_RATE * STEADY_SECONDS).min(processes);
    let first_due = Utc::now() + chrono::Duration::seconds(2);
    let step_micros = 1_000_000 / STEADY_RATE as i64;
    let due_expr = format!(
        "{} + (ROW_NUMBER() OVER (ORDER BY id) - 1) * {step_micros}",
        first_due.timestamp_micros()
    );
    sql(
        &db,
        &format!(
            "UPDATE processes SET state = 'ACTIVE', current_step_index = 0, attempt = 2, \
         next_step_at = d.due, due_at = d.due FROM (SELECT id AS pid, {due_expr} AS due FROM \
         processes ORDER BY id LIMIT {steady}) AS d WHERE processes.id = d.pid"
        ),
    )
    .await;
    let (stop_engine, stopped) = tokio::sync::watch::channel(false);
    let engine = runtime::spawn(
        Arc::new(DunningEngine {
            engine: jobs.clone(),
        }),
        Arc::new(dunning::metrics::Metrics::default()),
        stopped,
    );
    tokio::time::sleep(Duration::from_secs(STEADY_SECONDS as u64 + 4)).await;
    stop_engine.send_replace(true);
    engine.await.unwrap();
    let due: Vec<i64> = micros_column(
        &db,
        &format!(
            "SELECT s.executed_at - p.next_step_at_was FROM step_runs s JOIN (SELECT id, {due_expr} \
             AS next_step_at_was FROM processes ORDER BY id LIMIT {steady}) AS p ON p.id = \
             s.process_id WHERE s.attempt = 2"
        ),
    )
    .await;
    let mut steady_lags: Vec<f64> = due.into_iter().map(|d| d as f64 / 1e6).collect();
    steady_lags.sort_by(f64::total_cmp);

    let ceiling_rate = ceiling(&db, caller.organization_id, steps).await;
    println!(
        "| {label} | {steps} | {:.1} s | **{rate:.0} steps/s** | {:.2} s / {:.2} s | {:.0} rows-of-a-step/s | **{:.0} %** | {} of {steady}: {:.3} s / {:.3} s | {} calls: {:.1} ms / {:.1} ms | setup {:.0} s, start {start_rate:.0} processes/s |",
        burst.as_secs_f64(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        ceiling_rate,
        100.0 * rate / ceiling_rate,
        steady_lags.len(),
        percentile(&steady_lags, 0.5),
        percentile(&steady_lags, 0.99),
        api.len(),
        percentile(&api, 0.5),
        percentile(&api, 0.99),
        setup_time.as_secs_f64(),
    );
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    println!(
        "| database | steps | burst | rate | burst start → execution p50 / p99 | ceiling (plain SQL) | rate / ceiling | steady 100/s lag p50 / p99 | GetCustomer during the burst p50 / p99 | setup |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for database in support::databases("bench_engine").await {
        run(database.label(), database.url()).await;
        database.remove().await;
    }
}
