//! Indexes of the collections report (`GetCollectionsReport`): every figure is an aggregate
//! over an index range, either the organization's open invoices (the snapshot) or the rows of
//! one organization whose time falls in the report's period.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (name, definition). Partial indexes keep each one to the rows its query reads; the
/// conditions are repeated word for word by the queries (SQLite uses a partial index only
/// then).
const INDEXES: [(&str, &str); 11] = [
    // Overdue balance and aging of all customers: covering, so the table is not visited.
    (
        "ix_invoices_report_open",
        "invoices (organization_id, currency_code, overdue_at, amount_due_minor, customer_id) \
         WHERE state = 'OPEN' AND disputed = false",
    ),
    // Whether a payment's invoice was overdue when it was paid, read from the index alone
    // (probing the table for each payment of the period costs more than the whole query).
    ("ix_invoices_id_overdue", "invoices (id, overdue_at)"),
    // Invoices paid in the period (recovered counts, days to pay).
    (
        "ix_invoices_report_paid",
        "invoices (organization_id, paid_at, currency_code, overdue_at) WHERE state = 'PAID'",
    ),
    // Payments of the period, with what the sums read.
    (
        "ix_payments_report",
        "payments (organization_id, paid_at, invoice_id, amount_minor, currency_code)",
    ),
    (
        "ix_processes_report_started",
        "processes (organization_id, started_at)",
    ),
    (
        "ix_processes_report_ended",
        "processes (organization_id, ended_at) WHERE ended_at IS NOT NULL",
    ),
    // Open processes by state now.
    (
        "ix_processes_report_state",
        "processes (organization_id, state, currency_code)",
    ),
    (
        "ix_step_runs_report",
        "step_runs (organization_id, executed_at)",
    ),
    // The last step of a process run before a payment.
    (
        "ix_step_runs_process_time",
        "step_runs (process_id, executed_at)",
    ),
    ("ix_charges_report", "charges (organization_id, booked_at)"),
    (
        "ix_events_report",
        "events (organization_id, occurred_at) WHERE event_type IN ('invoice.written_off', \
         'process.exhausted', 'process.escalated')",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, definition) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON {definition}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
