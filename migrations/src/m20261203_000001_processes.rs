//! Dunning processes, their step runs and the fees and interest they book, and the queue of
//! customers whose dunning must be looked at.
//!
//! The database enforces what must never happen twice: one open process per scope key
//! (`open_scope_key` is set only while the process is open), an invoice in at most one open
//! process, one run per (process, step, attempt), one fee per (process, invoice, step) for the
//! life of the process.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Processes as P;
        let text = |c: P| ColumnDef::new(c).text().not_null().to_owned();
        let bigint = |c: P| ColumnDef::new(c).big_integer().not_null().to_owned();
        let int = |c: P| ColumnDef::new(c).integer().not_null().to_owned();
        let boolean = |c: P| ColumnDef::new(c).boolean().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(ColumnDef::new(P::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(P::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(P::CustomerId).uuid().not_null())
                    .col(text(P::CustomerExternalId))
                    .col(text(P::CurrencyCode))
                    .col(text(P::PolicyCode))
                    .col(int(P::PolicyVersion))
                    .col(text(P::Scope))
                    .col(text(P::ScopeKey))
                    .col(ColumnDef::new(P::OpenScopeKey).text())
                    .col(text(P::State))
                    .col(text(P::PauseReason))
                    .col(int(P::CurrentStepIndex))
                    .col(int(P::Attempt))
                    .col(text(P::AnchorDate))
                    .col(ColumnDef::new(P::NextStepAt).big_integer())
                    .col(ColumnDef::new(P::LastStepAt).big_integer())
                    .col(ColumnDef::new(P::DueAt).big_integer())
                    .col(ColumnDef::new(P::WaitingStepRunId).uuid())
                    .col(text(P::PromisedDate))
                    .col(ColumnDef::new(P::PromisedAmountMinor).big_integer())
                    .col(text(P::Note))
                    .col(boolean(P::PaymentRetriesBlocked))
                    .col(boolean(P::SuspensionRequested))
                    .col(bigint(P::StartedAt))
                    .col(ColumnDef::new(P::EndedAt).big_integer())
                    .col(bigint(P::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [
            // The engine's work queue: due steps are an index range; due_at is set only
            // while something is due (a step, or a step waiting for a charge's outcome).
            "CREATE INDEX ix_processes_due ON processes (due_at) WHERE due_at IS NOT NULL",
            "CREATE UNIQUE INDEX ux_processes_open_scope ON processes (organization_id, \
             open_scope_key) WHERE open_scope_key IS NOT NULL",
            "CREATE INDEX ix_processes_customer ON processes (organization_id, customer_id, id)",
            "CREATE INDEX ix_processes_org ON processes (organization_id, id)",
        ] {
            db.execute_unprepared(statement).await?;
        }

        use ProcessInvoices as PI;
        manager
            .create_table(
                Table::create()
                    .table(PI::Table)
                    .col(ColumnDef::new(PI::ProcessId).uuid().not_null())
                    .col(ColumnDef::new(PI::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(PI::InvoiceExternalId).text().not_null())
                    .col(ColumnDef::new(PI::Position).integer().not_null())
                    .col(ColumnDef::new(PI::IsOpen).boolean().not_null())
                    .primary_key(Index::create().col(PI::ProcessId).col(PI::InvoiceId))
                    .to_owned(),
            )
            .await?;
        for statement in [
            "CREATE UNIQUE INDEX ux_process_invoices_open ON process_invoices (invoice_id) \
             WHERE is_open",
            "CREATE INDEX ix_process_invoices_invoice ON process_invoices (invoice_id)",
        ] {
            db.execute_unprepared(statement).await?;
        }

        use StepRuns as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(ColumnDef::new(S::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(S::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(S::ProcessId).uuid().not_null())
                    .col(ColumnDef::new(S::StepIndex).integer().not_null())
                    .col(ColumnDef::new(S::Attempt).integer().not_null())
                    .col(ColumnDef::new(S::StepName).text().not_null())
                    .col(ColumnDef::new(S::PolicyVersion).integer().not_null())
                    .col(ColumnDef::new(S::Trigger).text().not_null())
                    .col(ColumnDef::new(S::ExecutedAt).big_integer().not_null())
                    .col(ColumnDef::new(S::Outcomes).text().not_null())
                    .col(ColumnDef::new(S::WaitingFrom).integer())
                    .col(ColumnDef::new(S::PaymentRequestId).uuid())
                    .col(ColumnDef::new(S::PaymentFailed).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_step_runs_key ON step_runs (process_id, step_index, attempt)",
        )
        .await?;

        use Charges as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(ColumnDef::new(C::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(C::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(C::ProcessId).uuid().not_null())
                    .col(ColumnDef::new(C::StepRunId).uuid().not_null())
                    .col(ColumnDef::new(C::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(C::InvoiceExternalId).text().not_null())
                    .col(ColumnDef::new(C::Kind).text().not_null())
                    .col(ColumnDef::new(C::AmountMinor).big_integer().not_null())
                    .col(ColumnDef::new(C::CurrencyCode).text().not_null())
                    .col(ColumnDef::new(C::StepIndex).integer().not_null())
                    .col(ColumnDef::new(C::BookedAt).big_integer().not_null())
                    .col(ColumnDef::new(C::InterestFrom).text().not_null())
                    .col(ColumnDef::new(C::InterestTo).text().not_null())
                    .col(ColumnDef::new(C::AnnualRatePercent).text().not_null())
                    .to_owned(),
            )
            .await?;
        for statement in [
            "CREATE UNIQUE INDEX ux_charges_step ON charges (step_run_id, invoice_id, kind)",
            "CREATE UNIQUE INDEX ux_charges_fee_once ON charges (process_id, invoice_id, \
             step_index) WHERE kind = 'FEE'",
            "CREATE INDEX ix_charges_process ON charges (process_id, booked_at)",
        ] {
            db.execute_unprepared(statement).await?;
        }

        // Customers whose invoices changed (or whose dunning may start at check_at): the
        // engine looks at these customers only, never at all invoices.
        use DunningChecks as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(
                        ColumnDef::new(D::CustomerId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(D::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(D::CheckAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared("CREATE INDEX ix_dunning_checks_due ON dunning_checks (check_at)")
            .await?;
        // Every customer with an open invoice is looked at once after the upgrade.
        db.execute_unprepared(
            "INSERT INTO dunning_checks (customer_id, organization_id, check_at) \
             SELECT DISTINCT customer_id, organization_id, 0 FROM invoices WHERE state = 'OPEN'",
        )
        .await?;

        // A RETRY_PAYMENT request only charges: it never emails a payment link.
        manager
            .alter_table(
                Table::alter()
                    .table(PaymentRequests::Table)
                    .add_column(
                        ColumnDef::new(PaymentRequests::Purpose)
                            .text()
                            .not_null()
                            .default("REQUEST_PAYMENT"),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "dunning_checks",
            "charges",
            "step_runs",
            "process_invoices",
            "processes",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(PaymentRequests::Table)
                    .drop_column(PaymentRequests::Purpose)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Processes {
    Table,
    Id,
    OrganizationId,
    CustomerId,
    CustomerExternalId,
    CurrencyCode,
    PolicyCode,
    PolicyVersion,
    Scope,
    ScopeKey,
    OpenScopeKey,
    State,
    PauseReason,
    CurrentStepIndex,
    Attempt,
    AnchorDate,
    NextStepAt,
    LastStepAt,
    DueAt,
    WaitingStepRunId,
    PromisedDate,
    PromisedAmountMinor,
    Note,
    PaymentRetriesBlocked,
    SuspensionRequested,
    StartedAt,
    EndedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProcessInvoices {
    Table,
    ProcessId,
    InvoiceId,
    InvoiceExternalId,
    Position,
    IsOpen,
}

#[derive(DeriveIden)]
enum StepRuns {
    Table,
    Id,
    OrganizationId,
    ProcessId,
    StepIndex,
    Attempt,
    StepName,
    PolicyVersion,
    Trigger,
    ExecutedAt,
    Outcomes,
    WaitingFrom,
    PaymentRequestId,
    PaymentFailed,
}

#[derive(DeriveIden)]
enum Charges {
    Table,
    Id,
    OrganizationId,
    ProcessId,
    StepRunId,
    InvoiceId,
    InvoiceExternalId,
    Kind,
    AmountMinor,
    CurrencyCode,
    StepIndex,
    BookedAt,
    InterestFrom,
    InterestTo,
    AnnualRatePercent,
}

#[derive(DeriveIden)]
enum DunningChecks {
    Table,
    CustomerId,
    OrganizationId,
    CheckAt,
}

#[derive(DeriveIden)]
enum PaymentRequests {
    Table,
    Purpose,
}
