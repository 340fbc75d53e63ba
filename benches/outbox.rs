//! Outbox benchmark: delivery rate of queued notifications to a local SMTP server over TCP,
//! through the service's pooled SMTP transport, on SQLite and PostgreSQL.
//!
//!     cargo bench --bench outbox
//!     DUNNING_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench outbox
//!
//! Not a test: it prints figures (copy them into BENCHMARKS.md) and asserts nothing.
// A benchmark measures wall time and dates its seed data by the real clock.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/common/smtp.rs"]
mod smtp;

mod support;

use dunning::domain::organization::{OrganizationField, QuietHours};
use dunning::notify::templates::TemplateKind;
use dunning::service::notifications::EmailRequest;
use dunning::service::{Caller, CustomerRef};
use std::time::Instant;

const MESSAGES: usize = 3000;

async fn run(label: &str, database_url: String) {
    let sink = smtp::SmtpServer::start().await;
    let smtp_url = sink.url();
    let server = support::start_server(database_url, |c| c.smtp_url = Some(smtp_url)).await;
    let services = server.services();
    let (_, key) = services.auth.create_organization("bench").await.unwrap();
    let caller: Caller = services.auth.authenticate(&key.plain_text).await.unwrap();
    // Send at any hour: the benchmark may run at night.
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
    services
        .organizations
        .update_organization(caller, &settings, &[OrganizationField::QuietHours])
        .await
        .unwrap();

    let details = dunning::domain::customer::CustomerDetails {
        name: "Bench Customer".into(),
        email: "ap@bench.test".into(),
        cc_emails: vec!["cc@bench.test".into()],
        bcc_emails: vec![],
        locale: "de".into(),
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
        .create_customer(caller, "cus_bench".into(), details, None, None)
        .await
        .unwrap();
    let sync = dunning::domain::invoice::InvoiceSync {
        external_id: "inv_bench".into(),
        customer_external_id: "cus_bench".into(),
        number: "2026-0001".into(),
        currency: dunning::domain::money::Currency::from_code("EUR").unwrap(),
        total_minor: 125_050,
        credited_minor: 0,
        issue_date: "2026-01-01".parse().unwrap(),
        due_date: "2026-02-01".parse().unwrap(),
        collection_method: None,
        disputed: false,
        dunning_blocked: false,
        dunning_block_reason: String::new(),
        policy_code: String::new(),
        metadata: Default::default(),
        void: false,
    };
    services
        .invoices
        .upsert_invoices(caller, &[sync], &|_| "invoice".into())
        .await
        .unwrap();

    let request = EmailRequest {
        invoice_external_ids: vec!["inv_bench".into()],
        ..EmailRequest::new(
            TemplateKind::FirmReminder,
            CustomerRef::ExternalId("cus_bench".into()),
        )
    };
    let queued_at = Instant::now();
    for _ in 0..MESSAGES {
        services
            .notifications
            .send_email(caller, &request)
            .await
            .unwrap();
    }
    let queue_rate = MESSAGES as f64 / queued_at.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut attempts = 0;
    while attempts < MESSAGES {
        attempts += server
            .engine()
            .deliver_due_notifications(server.mailer())
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    let received = sink.wait_for(MESSAGES).await.len();
    println!(
        "| {label} | {MESSAGES} | {received} | {:.2} s | **{:.0} messages/s** | {:.0} queued/s |",
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64(),
        queue_rate,
    );
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    println!(
        "| database | queued | received by the SMTP server | delivery time | delivery rate | queueing rate (render + insert, one at a time) |"
    );
    println!("|---|---|---|---|---|---|");
    for database in support::databases("bench_outbox").await {
        run(database.label(), database.url()).await;
        database.remove().await;
    }
}
