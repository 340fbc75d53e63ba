//! Payment requests and the invoices each one covers.
//!
//! `payment_request_invoices.is_open` mirrors whether the request is still live (PENDING,
//! PROCESSING or FAILED); a partial unique index on it makes "an invoice is in at most one
//! open request" a database guarantee, not only a rule the service follows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PaymentRequests as P;
        let text = |c: P| ColumnDef::new(c).text().not_null().to_owned();
        let bigint = |c: P| ColumnDef::new(c).big_integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(ColumnDef::new(P::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(P::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(P::CustomerId).uuid().not_null())
                    .col(text(P::CustomerExternalId))
                    .col(text(P::CurrencyCode))
                    .col(bigint(P::AmountMinor))
                    .col(text(P::Status))
                    .col(text(P::PaymentLink))
                    .col(ColumnDef::new(P::SupersededById).uuid())
                    .col(text(P::LastDeclineCode))
                    .col(text(P::LastDeclineMessage))
                    .col(ColumnDef::new(P::LastDeclineHard).boolean().not_null())
                    .col(ColumnDef::new(P::AttemptCount).integer().not_null())
                    .col(text(P::ProviderReference))
                    .col(text(P::ChargeIdempotencyKey))
                    .col(text(P::ChargeProvider))
                    .col(text(P::ChargeUrl))
                    .col(text(P::ChargeToken))
                    .col(ColumnDef::new(P::EmailNotificationId).uuid())
                    .col(ColumnDef::new(P::ProcessId).uuid())
                    .col(text(P::CancelReason))
                    .col(ColumnDef::new(P::NextActionAt).big_integer())
                    .col(bigint(P::CreatedAt))
                    .col(bigint(P::UpdatedAt))
                    .col(ColumnDef::new(P::SettledAt).big_integer())
                    .to_owned(),
            )
            .await?;
        // The payment worker: due requests are an index range on next_action_at, which is
        // only set while the request has a charge or an email to make.
        manager
            .create_index(
                Index::create()
                    .name("ix_payment_requests_due")
                    .table(P::Table)
                    .col(P::NextActionAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_payment_requests_org")
                    .table(P::Table)
                    .col(P::OrganizationId)
                    .col(P::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_payment_requests_customer")
                    .table(P::Table)
                    .col(P::OrganizationId)
                    .col(P::CustomerId)
                    .col(P::Id)
                    .to_owned(),
            )
            .await?;

        use PaymentRequestInvoices as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(ColumnDef::new(L::PaymentRequestId).uuid().not_null())
                    .col(ColumnDef::new(L::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(L::InvoiceExternalId).text().not_null())
                    .col(ColumnDef::new(L::Position).integer().not_null())
                    .col(ColumnDef::new(L::IsOpen).boolean().not_null())
                    .primary_key(Index::create().col(L::PaymentRequestId).col(L::InvoiceId))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_payment_request_invoices_open \
                 ON payment_request_invoices (invoice_id) WHERE is_open",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(PaymentRequestInvoices::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(PaymentRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentRequests {
    Table,
    Id,
    OrganizationId,
    CustomerId,
    CustomerExternalId,
    CurrencyCode,
    AmountMinor,
    Status,
    PaymentLink,
    SupersededById,
    LastDeclineCode,
    LastDeclineMessage,
    LastDeclineHard,
    AttemptCount,
    ProviderReference,
    ChargeIdempotencyKey,
    ChargeProvider,
    ChargeUrl,
    ChargeToken,
    EmailNotificationId,
    ProcessId,
    CancelReason,
    NextActionAt,
    CreatedAt,
    UpdatedAt,
    SettledAt,
}

#[derive(DeriveIden)]
enum PaymentRequestInvoices {
    Table,
    PaymentRequestId,
    InvoiceId,
    InvoiceExternalId,
    Position,
    IsOpen,
}
