//! What the collections report reads, copied onto the rows it aggregates, so that each figure
//! of a period is one index range without a lookup per row (on 1,000,000 invoices the lookups
//! were most of the report's time):
//! - a payment keeps its invoice's overdue instant as it was when paid (the "payments on
//!   overdue invoices" figure), and the process it is attributed to (open on the invoice when
//!   it was paid) with the last step that process had run by then (-1: none yet), for the
//!   amounts recovered per step;
//! - an `invoice.written_off` event keeps the currency and amount written off.
//!
//! The open-invoice index leads with the customer within a currency, so that counting overdue
//! customers streams through it instead of hashing every overdue invoice; the aging reads it
//! too. The `(id, overdue_at)` index only served the lookup the copy replaces.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Attributes the payments not attributed yet: the process holding the invoice that was open
/// when it was paid, and the last step it had executed by then (a superseded step did not
/// execute). `storage::invoices::attribute_payment` applies the same rule to a payment being
/// recorded.
pub const ATTRIBUTE_PAYMENTS: [&str; 2] = [
    "UPDATE payments SET process_id = (SELECT p.id FROM process_invoices pi JOIN processes p ON \
     p.id = pi.process_id WHERE pi.invoice_id = payments.invoice_id AND p.started_at <= \
     payments.paid_at AND (p.ended_at IS NULL OR payments.paid_at <= p.ended_at) ORDER BY \
     p.started_at DESC LIMIT 1) WHERE process_id IS NULL",
    "UPDATE payments SET process_step_index = COALESCE((SELECT sr.step_index FROM step_runs sr \
     WHERE sr.process_id = payments.process_id AND sr.executed_at <= payments.paid_at AND \
     sr.outcomes NOT LIKE '%\"detail\":\"superseded by step %' ORDER BY sr.executed_at DESC, \
     sr.step_index DESC LIMIT 1), -1) WHERE process_id IS NOT NULL AND process_step_index IS \
     NULL",
];

const UP: &[&str] = &[
    "ALTER TABLE payments ADD COLUMN invoice_overdue_at BIGINT NULL",
    "UPDATE payments SET invoice_overdue_at = (SELECT i.overdue_at FROM invoices i WHERE i.id = \
     payments.invoice_id)",
    "ALTER TABLE payments ADD COLUMN process_step_index INTEGER NULL",
    "ALTER TABLE events ADD COLUMN currency_code VARCHAR NULL",
    "ALTER TABLE events ADD COLUMN amount_minor BIGINT NULL",
    "UPDATE events SET currency_code = (SELECT i.currency_code FROM invoices i WHERE i.id = \
     events.invoice_id), amount_minor = (SELECT i.amount_due_minor FROM invoices i WHERE i.id = \
     events.invoice_id) WHERE event_type = 'invoice.written_off'",
    "DROP INDEX ix_payments_report",
    "DROP INDEX ix_events_report",
    "DROP INDEX ix_invoices_report_open",
    "DROP INDEX ix_invoices_id_overdue",
    "DROP INDEX ix_invoices_report_paid",
    // The invoices paid in the period with their ids (joined to their processes for the days
    // to pay), from the index alone.
    "CREATE INDEX ix_invoices_report_paid ON invoices (organization_id, paid_at, currency_code, \
     overdue_at, id) WHERE state = 'PAID'",
    // What was paid while each process was open (the cohort's recovered amount).
    "CREATE INDEX ix_payments_process ON payments (process_id, amount_minor) WHERE process_id IS \
     NOT NULL",
    "CREATE INDEX ix_payments_report ON payments (organization_id, paid_at, invoice_overdue_at, \
     currency_code, amount_minor, process_id, process_step_index)",
    "CREATE INDEX ix_events_report ON events (organization_id, occurred_at, event_type, \
     currency_code, amount_minor, process_id) WHERE event_type IN ('invoice.written_off', \
     'process.exhausted', 'process.escalated')",
    "CREATE INDEX ix_invoices_report_open ON invoices (organization_id, currency_code, \
     customer_id, overdue_at, amount_due_minor) WHERE state = 'OPEN' AND disputed = false AND \
     amount_due_minor > 0",
];

const DOWN: &[&str] = &[
    "DROP INDEX ix_payments_process",
    "DROP INDEX ix_invoices_report_paid",
    "CREATE INDEX ix_invoices_report_paid ON invoices (organization_id, paid_at, currency_code, \
     overdue_at) WHERE state = 'PAID'",
    "DROP INDEX ix_payments_report",
    "DROP INDEX ix_events_report",
    "DROP INDEX ix_invoices_report_open",
    "CREATE INDEX ix_invoices_id_overdue ON invoices (id, overdue_at)",
    "CREATE INDEX ix_payments_report ON payments (organization_id, paid_at, invoice_id, \
     amount_minor, currency_code)",
    "CREATE INDEX ix_events_report ON events (organization_id, occurred_at) WHERE event_type IN \
     ('invoice.written_off', 'process.exhausted', 'process.escalated')",
    "CREATE INDEX ix_invoices_report_open ON invoices (organization_id, currency_code, \
     overdue_at, amount_due_minor, customer_id) WHERE state = 'OPEN' AND disputed = false",
    "ALTER TABLE payments DROP COLUMN invoice_overdue_at",
    "ALTER TABLE payments DROP COLUMN process_id",
    "ALTER TABLE payments DROP COLUMN process_step_index",
    "ALTER TABLE events DROP COLUMN currency_code",
    "ALTER TABLE events DROP COLUMN amount_minor",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A UUID column is declared as each backend stores the other ids.
        manager
            .alter_table(
                Table::alter()
                    .table(Payments::Table)
                    .add_column(ColumnDef::new(Payments::ProcessId).uuid().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in UP.iter().chain(&ATTRIBUTE_PAYMENTS) {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in DOWN {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    ProcessId,
}
