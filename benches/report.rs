//! Collections report benchmark: `GetCollectionsReport` over gRPC on an organization with
//! 1,000,000 invoices (100,000 customers × 10) and 100,000 processes with their step runs,
//! payments, charges and events, on SQLite and PostgreSQL.
//!
//!     cargo bench --bench report
//!     DUNNING_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench report
//!     DUNNING_BENCH_INVOICES=100000 cargo bench --bench report     # a shorter run
//!
//! The rows are seeded with bulk SQL (`INSERT … SELECT` over a generated series, copying one
//! template row of each table that the service itself wrote), then `ANALYZE`d. Reports, per
//! database and period (the default 30 days, and 365 days):
//! - GetCollectionsReport over gRPC: p50 / p99 of 20 calls after 2 warm-up calls;
//! - the ceiling: the same statements (`storage::collections_report_statements`) run on a bare
//!   database connection, no service and no gRPC, p50 of 20 runs, and the ratio;
//! - the slowest statement of the ceiling run.
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
    Action, ActionCondition, ActionType, CurrencyAmount, FeeSettings, PolicyDefinition,
    PolicyScope, Step, StepAnchor,
};
use dunning::domain::report::{ReportPeriod, ReportQuery};
use dunning::domain::template::TemplateKind;
use dunning::proto;
use dunning::proto::dunning_service_client::DunningServiceClient;
use dunning::service::invoices::NewPayment;
use dunning::service::{Caller, InvoiceRef, Services};
use dunning::storage::{Backend, POSTGRES_REPORT_SETTINGS, collections_report_statements};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use std::time::Instant;
use tonic::metadata::MetadataValue;

const CALLS: usize = 20;
const DAY: i64 = 86_400_000_000;

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

async fn sql(db: &DatabaseConnection, text: &str) {
    db.execute_unprepared(text)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"));
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn columns(db: &DatabaseConnection, table: &str) -> Vec<String> {
    let query = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => format!(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = \
             '{table}' ORDER BY ordinal_position"
        ),
        _ => format!("SELECT name FROM pragma_table_info('{table}')"),
    };
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        query,
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get_by_index::<String>(0).unwrap())
    .collect()
}

/// SQL fragments that differ between the two databases.
struct Dialect {
    postgres: bool,
    /// Today, midnight UTC (micros) and as a date.
    today0: i64,
    today: chrono::NaiveDate,
    /// An hour before now (micros): nothing seeded lies in the future of the benchmark.
    before_now: i64,
}

impl Dialect {
    /// A deterministic id: table tag and row number, so rows can refer to each other.
    fn uid(&self, tag: u32, n: &str) -> String {
        if self.postgres {
            format!("CAST(lpad(to_hex({tag}), 8, '0') || lpad(to_hex({n}), 24, '0') AS uuid)")
        } else {
            format!("unhex(printf('%08x%024x', {tag}, {n}))")
        }
    }

    fn least(&self, a: &str, b: &str) -> String {
        if self.postgres {
            format!("LEAST({a}, {b})")
        } else {
            format!("MIN({a}, {b})")
        }
    }

    /// Today plus `days` (an integer expression), as a date column value.
    fn date_plus(&self, days: &str) -> String {
        if self.postgres {
            format!("(DATE '{}' + CAST({days} AS INTEGER))", self.today)
        } else {
            format!("date('{}', ({days}) || ' days')", self.today)
        }
    }

    fn series(&self, n: usize) -> String {
        if self.postgres {
            format!("generate_series(CAST(1 AS BIGINT), {n}) AS g(n)")
        } else {
            format!(
                "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
                 SELECT n FROM s) AS g"
            )
        }
    }

    // The invoice formulas, of invoice number `n`, shared by every table that refers to one.
    fn k(n: &str) -> String {
        format!("(({n}) % 430)")
    }
    fn overdue_at(&self, n: &str) -> String {
        format!("({} + (31 - {}) * {DAY})", self.today0, Self::k(n))
    }
    fn total(n: &str) -> String {
        format!("(1000 + (({n}) % 97) * 1013)")
    }
    fn currency(n: &str) -> String {
        format!("(CASE WHEN ({n}) % 50 = 7 THEN 'USD' ELSE 'EUR' END)")
    }
    fn paid_at(&self, n: &str) -> String {
        self.least(
            &format!("{} + ((({n}) / 10) % 40) * {DAY}", self.overdue_at(n)),
            &self.before_now.to_string(),
        )
    }
    /// The invoice a process covers: a PAID one for resolved processes, an OPEN one otherwise.
    fn process_invoice(m: &str) -> String {
        format!("(10 * (({m}) - 1) + CASE WHEN ({m}) % 6 = 2 THEN 4 ELSE 1 END)")
    }
    fn process_state(m: &str) -> String {
        format!(
            "(CASE ({m}) % 6 WHEN 0 THEN 'ACTIVE' WHEN 1 THEN 'PAUSED' WHEN 2 THEN 'RESOLVED' \
             WHEN 3 THEN 'EXHAUSTED' WHEN 4 THEN 'ESCALATED' ELSE 'CANCELLED' END)"
        )
    }
    fn started_at(&self, m: &str) -> String {
        self.least(
            &self.overdue_at(&Self::process_invoice(m)),
            &self.before_now.to_string(),
        )
    }
    fn step_at(&self, m: &str, step: &str) -> String {
        self.least(
            &format!("{} + ({step}) * 5 * {DAY}", self.started_at(m)),
            &self.before_now.to_string(),
        )
    }
}

/// `INSERT INTO table SELECT … FROM table AS src, series g WHERE src.id = template AND filter`:
/// `n` copies of the template row with the listed columns replaced by expressions of `g.n`.
async fn copy_rows(
    db: &DatabaseConnection,
    d: &Dialect,
    table: &str,
    template: &str,
    overrides: &[(&str, String)],
    n: usize,
    filter: &str,
) {
    let columns = columns(db, table).await;
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| match overrides.iter().find(|(name, _)| name == c) {
            Some((_, e)) => e.clone(),
            None => format!("src.{c}"),
        })
        .collect();
    for (name, _) in overrides {
        assert!(columns.iter().any(|c| c == name), "{table} has no {name}");
    }
    sql(
        db,
        &format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} AS src CROSS JOIN {} WHERE src.id = \
             ({template}) AND {filter}",
            columns.join(", "),
            exprs.join(", "),
            d.series(n)
        ),
    )
    .await;
}

/// One row of each table written by the service itself (a customer, an overdue invoice, its
/// process that ran a fee step, a payment), to copy the other columns from.
async fn template_rows(services: &Services, caller: Caller) {
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
    settings.default_policy_code = "bench0".into();
    let eur = Currency::from_code("EUR").unwrap();
    let definition = PolicyDefinition {
        name: "Bench".into(),
        description: String::new(),
        scope: PolicyScope::Invoice,
        thresholds: vec![],
        include_manual_invoices: true,
        bcc_emails: vec![],
        collection_agency_email: String::new(),
        steps: vec![Step {
            name: "Fee".into(),
            delay_days: 1,
            anchor: StepAnchor::DueDate,
            actions: vec![
                Action {
                    action_type: ActionType::SendReminder,
                    condition: ActionCondition::Always,
                    template_kind: Some(TemplateKind::FriendlyReminder),
                    fee: None,
                    interest: None,
                },
                Action {
                    action_type: ActionType::ApplyFee,
                    condition: ActionCondition::Always,
                    template_kind: None,
                    fee: Some(FeeSettings {
                        fixed_amounts: vec![CurrencyAmount {
                            currency: eur,
                            minor: 500,
                        }],
                        ..Default::default()
                    }),
                    interest: None,
                },
            ],
        }],
    };
    services
        .policies
        .create_policy(caller, "bench0".into(), definition, None)
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
    let details = CustomerDetails {
        name: "Template".into(),
        email: "ap@bench.test".into(),
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
        .create_customer(caller, "cus_template".into(), details, None, None)
        .await
        .unwrap();
    let sync = |ext: &str| InvoiceSync {
        external_id: ext.into(),
        customer_external_id: "cus_template".into(),
        number: ext.into(),
        currency: eur,
        total_minor: 10_000,
        credited_minor: 0,
        issue_date: "2025-01-01".parse().unwrap(),
        due_date: "2025-02-01".parse().unwrap(),
        collection_method: Some(CollectionMethod::Manual),
        disputed: false,
        dunning_blocked: false,
        dunning_block_reason: String::new(),
        policy_code: String::new(),
        metadata: Default::default(),
        void: false,
    };
    services
        .invoices
        .upsert_invoices(
            caller,
            &[sync("inv_template"), sync("inv_template_paid")],
            &|i| format!("invoices[{i}]"),
        )
        .await
        .unwrap();
    services
        .invoices
        .record_payment(
            caller,
            &InvoiceRef::ExternalId("inv_template_paid".into()),
            NewPayment {
                external_id: "pay_template".into(),
                currency: eur,
                amount_minor: 10_000,
                paid_at: None,
                reference: String::new(),
            },
        )
        .await
        .unwrap();
}

/// Seeds `invoices` invoices (10 per customer) and a process for every tenth one, with two
/// step runs, a fee or interest charge, payments of the paid invoices and the report's
/// events. Returns the seconds it took.
async fn seed(db: &DatabaseConnection, org: uuid::Uuid, invoices: usize) -> f64 {
    let started = Instant::now();
    let now = Utc::now();
    let today = now.date_naive();
    let d = Dialect {
        postgres: db.get_database_backend() == sea_orm::DatabaseBackend::Postgres,
        today0: today
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros(),
        today,
        before_now: now.timestamp_micros() - 3_600_000_000,
    };
    let org_literal = if d.postgres {
        format!("'{org}'")
    } else {
        format!("X'{}'", org.simple())
    };
    let customers = invoices.div_ceil(10);
    let processes = invoices / 10;
    let n = "g.n";
    let m = "g.n";
    let text = |prefix: &str, e: &str| {
        if d.postgres {
            format!("'{prefix}' || CAST({e} AS TEXT)")
        } else {
            format!("'{prefix}' || ({e})")
        }
    };
    // Each statement is one multi-row INSERT … SELECT (its own transaction).
    copy_rows(
        db,
        &d,
        "customers",
        "SELECT id FROM customers WHERE external_id = 'cus_template'",
        &[
            ("id", d.uid(1, n)),
            ("external_id", text("cus_", n)),
            ("name", text("Customer ", n)),
        ],
        customers,
        "true",
    )
    .await;
    let k = Dialect::k(n);
    let r = format!("({n} % 10)");
    let open = format!("({r} < 4)");
    let paid = format!("({r} BETWEEN 4 AND 8)");
    let total = Dialect::total(n);
    copy_rows(
        db,
        &d,
        "invoices",
        "SELECT id FROM invoices WHERE external_id = 'inv_template'",
        &[
            ("id", d.uid(2, n)),
            ("customer_id", d.uid(1, &format!("(({n} - 1) / 10 + 1)"))),
            ("external_id", text("inv_", n)),
            ("number", text("N", n)),
            ("currency_code", Dialect::currency(n)),
            ("total_minor", total.clone()),
            (
                "paid_minor",
                format!("CASE WHEN {paid} THEN {total} ELSE 0 END"),
            ),
            (
                "amount_due_minor",
                format!("CASE WHEN {paid} THEN 0 ELSE {total} END"),
            ),
            ("due_date", d.date_plus(&format!("30 - {k}"))),
            ("overdue_at", d.overdue_at(n)),
            (
                "state",
                format!(
                    "CASE WHEN {open} THEN 'OPEN' WHEN {paid} THEN 'PAID' ELSE 'WRITTEN_OFF' END"
                ),
            ),
            (
                "paid_at",
                format!("CASE WHEN {paid} THEN {} ELSE NULL END", d.paid_at(n)),
            ),
        ],
        invoices,
        "true",
    )
    .await;
    // One payment per paid invoice.
    copy_rows(
        db,
        &d,
        "payments",
        "SELECT id FROM payments WHERE external_id = 'pay_template'",
        &[
            ("id", d.uid(5, n)),
            ("invoice_id", d.uid(2, n)),
            ("external_id", text("pay_", n)),
            ("currency_code", Dialect::currency(n)),
            ("amount_minor", total.clone()),
            ("paid_at", d.paid_at(n)),
            ("created_at", d.paid_at(n)),
            ("invoice_overdue_at", d.overdue_at(n)),
            // Attributed below, once the processes and their steps exist.
            ("process_id", "NULL".into()),
            ("process_step_index", "NULL".into()),
        ],
        invoices,
        &paid,
    )
    .await;
    let inv = Dialect::process_invoice(m);
    let state = Dialect::process_state(m);
    let is_open = format!("({m} % 6 NOT IN (2, 5))");
    let ended = format!(
        "CASE {m} % 6 WHEN 2 THEN {} WHEN 5 THEN {} ELSE NULL END",
        d.paid_at(&inv),
        d.least(
            &format!("{} + 10 * {DAY}", d.started_at(m)),
            &d.before_now.to_string()
        )
    );
    copy_rows(
        db,
        &d,
        "processes",
        "SELECT id FROM processes LIMIT 1",
        &[
            ("id", d.uid(3, m)),
            ("customer_id", d.uid(1, &format!("(({inv} - 1) / 10 + 1)"))),
            (
                "customer_external_id",
                text("cus_", &format!("(({inv} - 1) / 10 + 1)")),
            ),
            ("currency_code", Dialect::currency(&inv)),
            ("policy_code", text("bench", &format!("({m} % 3)"))),
            ("policy_version", format!("(1 + {m} % 2)")),
            ("scope_key", text("inv:", &inv)),
            (
                "open_scope_key",
                format!(
                    "CASE WHEN {is_open} THEN {} ELSE NULL END",
                    text("inv:", &inv)
                ),
            ),
            ("state", state),
            ("due_at", "NULL".into()),
            ("next_step_at", "NULL".into()),
            ("started_at", d.started_at(m)),
            ("ended_at", ended),
        ],
        processes,
        "true",
    )
    .await;
    sql(
        db,
        &format!(
            "INSERT INTO process_invoices (process_id, invoice_id, invoice_external_id, position, \
             is_open) SELECT {}, {}, {}, 0, {is_open} FROM {}",
            d.uid(3, m),
            d.uid(2, &inv),
            text("inv_", &inv),
            d.series(processes)
        ),
    )
    .await;
    // Two step runs per process: q = 2m - 1 (step 0) and 2m (step 1).
    let q_m = "((g.n + 1) / 2)";
    let q_step = "(1 - g.n % 2)";
    copy_rows(
        db,
        &d,
        "step_runs",
        "SELECT id FROM step_runs WHERE outcomes NOT LIKE '%superseded%' LIMIT 1",
        &[
            ("id", d.uid(4, "g.n")),
            ("process_id", d.uid(3, q_m)),
            ("step_index", q_step.into()),
            ("attempt", "1".into()),
            ("step_name", text("Step ", q_step)),
            ("policy_version", format!("(1 + {q_m} % 2)")),
            ("executed_at", d.step_at(q_m, q_step)),
        ],
        2 * processes,
        "true",
    )
    .await;
    // A fee (or, for every fourth process, interest) booked by step 1.
    copy_rows(
        db,
        &d,
        "charges",
        "SELECT id FROM charges LIMIT 1",
        &[
            ("id", d.uid(6, m)),
            ("process_id", d.uid(3, m)),
            ("step_run_id", d.uid(4, &format!("2 * {m}"))),
            ("invoice_id", d.uid(2, &inv)),
            ("invoice_external_id", text("inv_", &inv)),
            (
                "kind",
                format!("CASE WHEN {m} % 4 = 0 THEN 'INTEREST' ELSE 'FEE' END"),
            ),
            ("amount_minor", "500".into()),
            ("currency_code", Dialect::currency(&inv)),
            ("step_index", "1".into()),
            ("booked_at", d.step_at(m, "1")),
        ],
        processes,
        "true",
    )
    .await;
    // process.exhausted for EXHAUSTED and ESCALATED processes, process.escalated for the
    // ESCALATED ones a day later, invoice.written_off for written-off invoices.
    let event_template = "SELECT id FROM events LIMIT 1";
    for (tag, event_type, at, filter) in [
        (
            7,
            "process.exhausted",
            d.step_at(m, "1"),
            format!("{m} % 6 IN (3, 4)"),
        ),
        (
            8,
            "process.escalated",
            d.least(
                &format!("{} + {DAY}", d.step_at(m, "1")),
                &d.before_now.to_string(),
            ),
            format!("{m} % 6 = 4"),
        ),
    ] {
        copy_rows(
            db,
            &d,
            "events",
            event_template,
            &[
                ("id", d.uid(tag, m)),
                ("sequence", format!("{tag}0000000 + {m}")),
                ("event_type", format!("'{event_type}'")),
                ("occurred_at", at),
                ("customer_id", d.uid(1, &format!("(({inv} - 1) / 10 + 1)"))),
                ("invoice_id", d.uid(2, &inv)),
                ("process_id", d.uid(3, m)),
                ("currency_code", "NULL".into()),
                ("amount_minor", "NULL".into()),
            ],
            processes,
            &filter,
        )
        .await;
    }
    copy_rows(
        db,
        &d,
        "events",
        event_template,
        &[
            ("id", d.uid(9, n)),
            ("sequence", format!("90000000 + {n}")),
            ("event_type", "'invoice.written_off'".into()),
            (
                "occurred_at",
                d.least(
                    &format!("{} + 60 * {DAY}", d.overdue_at(n)),
                    &d.before_now.to_string(),
                ),
            ),
            ("customer_id", d.uid(1, &format!("(({n} - 1) / 10 + 1)"))),
            ("invoice_id", d.uid(2, n)),
            ("process_id", "NULL".into()),
            ("currency_code", Dialect::currency(n)),
            ("amount_minor", total.clone()),
        ],
        invoices,
        &format!("{r} = 9"),
    )
    .await;
    sql(
        db,
        &format!(
            "UPDATE organizations SET last_event_sequence = 100000000 + {invoices} WHERE id = \
             {org_literal}"
        ),
    )
    .await;
    // The payments' processes and steps, by the rule the service applies when it records one.
    for statement in migration::ATTRIBUTE_PAYMENTS {
        sql(db, statement).await;
    }
    sql(
        db,
        if d.postgres {
            "VACUUM ANALYZE"
        } else {
            "ANALYZE"
        },
    )
    .await;
    started.elapsed().as_secs_f64()
}

/// p50 / p99 of `CALLS` GetCollectionsReport calls (ms) after two warm-up calls.
async fn over_grpc(addr: std::net::SocketAddr, key: &str, from: &str) -> (f64, f64) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    let mut client =
        DunningServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        });
    let mut times = Vec::new();
    for i in 0..CALLS + 2 {
        let started = Instant::now();
        let report = client
            .get_collections_report(proto::GetCollectionsReportRequest {
                from_date: from.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!report.currencies.is_empty());
        if i >= 2 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// p50 (ms) of the report's statements run one after the other on a bare connection, and the
/// slowest statement's index and p50.
async fn ceiling(
    db: &DatabaseConnection,
    org: uuid::Uuid,
    query: &ReportQuery,
) -> (f64, usize, f64) {
    let backend = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let statements = collections_report_statements(backend, org, query);
    let mut totals = Vec::new();
    let mut per_statement = vec![Vec::new(); statements.len()];
    for i in 0..CALLS + 2 {
        let started = Instant::now();
        // With the settings the service runs the statements with.
        let tx = db.begin().await.unwrap();
        if backend == Backend::Postgres {
            for setting in POSTGRES_REPORT_SETTINGS {
                tx.execute_unprepared(setting).await.unwrap();
            }
        }
        for (j, statement) in statements.iter().enumerate() {
            let t = Instant::now();
            tx.query_all_raw(statement.clone()).await.unwrap();
            if i >= 2 {
                per_statement[j].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        tx.commit().await.unwrap();
        if i >= 2 {
            totals.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    totals.sort_by(f64::total_cmp);
    let (slowest, time) = per_statement
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            percentile(t, 0.5)
        })
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    (percentile(&totals, 0.5), slowest, time)
}

async fn run(label: &str, database_url: String) {
    let invoices = env_usize("DUNNING_BENCH_INVOICES", 1_000_000);
    let server = support::start_server(database_url.clone(), |_| {}).await;
    let services = server.services().clone();
    let (_, key) = services.auth.create_organization("bench").await.unwrap();
    let caller: Caller = services.auth.authenticate(&key.plain_text).await.unwrap();
    template_rows(&services, caller).await;
    server.engine().start_due_processes().await.unwrap();
    server.engine().run_due_steps().await.unwrap();

    let db = Database::connect(&database_url).await.unwrap();
    let seconds = seed(&db, caller.organization_id, invoices).await;
    let (inv, proc_count, runs, pays, charges, events) = (
        count(&db, "invoices").await,
        count(&db, "processes").await,
        count(&db, "step_runs").await,
        count(&db, "payments").await,
        count(&db, "charges").await,
        count(&db, "events").await,
    );
    eprintln!(
        "{label}: seeded in {seconds:.0} s: {inv} invoices, {proc_count} processes, {runs} step \
         runs, {pays} payments, {charges} charges, {events} events"
    );
    let now: DateTime<Utc> = Utc::now();
    for days in [30u64, 365] {
        let to = now.date_naive();
        let from = to - chrono::Days::new(days - 1);
        let (p50, p99) = over_grpc(server.grpc_addr, &key.plain_text, &from.to_string()).await;
        let query = ReportQuery {
            period: ReportPeriod::new(Some(from), Some(to), chrono_tz::UTC, now).unwrap(),
            as_of: now,
            currency: None,
        };
        if std::env::var("DUNNING_BENCH_KEEP").is_ok_and(|v| v == "1") {
            for statement in collections_report_statements(
                if label == "SQLite" {
                    Backend::Sqlite
                } else {
                    Backend::Postgres
                },
                caller.organization_id,
                &query,
            ) {
                eprintln!("{statement:?}");
            }
        }
        let (bare, slowest, slowest_ms) = ceiling(&db, caller.organization_id, &query).await;
        println!(
            "| {label} | {inv} | {proc_count} | {days} days | **{p50:.0} ms** / {p99:.0} ms | \
             {bare:.0} ms | {:.0} % | statement {slowest}: {slowest_ms:.0} ms | {seconds:.0} s |",
            100.0 * bare / p50
        );
    }
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    println!(
        "| database | invoices | processes | period | GetCollectionsReport p50 / p99 | ceiling (same SQL, bare connection) p50 | ceiling / gRPC | slowest statement p50 | seeding |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // DUNNING_BENCH_KEEP=1 keeps the seeded databases (to look at query plans) and prints
    // the report's statements.
    let keep = std::env::var("DUNNING_BENCH_KEEP").is_ok_and(|v| v == "1");
    for database in support::databases("bench_report").await {
        run(database.label(), database.url()).await;
        if keep {
            eprintln!("kept {}", database.url());
        } else {
            database.remove().await;
        }
    }
}
