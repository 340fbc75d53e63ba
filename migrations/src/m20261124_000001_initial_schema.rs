//! Organizations, API keys, customers, invoices, payments, idempotency keys and the event log.
//!
//! Timestamps are stored as microseconds since the Unix epoch (BIGINT) so that comparisons and
//! index ranges behave identically on SQLite and PostgreSQL. Money is stored as BIGINT minor units
//! of the row's currency: exact, summable in SQL, and never a float.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(
                        ColumnDef::new(Organizations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Organizations::Name)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Organizations::Timezone).string().not_null())
                    .col(ColumnDef::new(Organizations::DefaultPolicyCode).string())
                    .col(
                        ColumnDef::new(Organizations::SenderFromName)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::SenderFromEmail)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::SenderReplyToEmail)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::PaymentLinkTemplate)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::QuietHoursEnabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::QuietHoursStart)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::QuietHoursEnd)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::PaymentProvider)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::PaymentHttpUrl)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::PaymentHttpSecret)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::MinimumChargeAmounts)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::LastEventSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Prefix).string().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::KeyHash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiKeys::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(ApiKeys::RevokedAt).big_integer())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::OrganizationId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(
                        ColumnDef::new(Customers::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Customers::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Customers::ExternalId).string().not_null())
                    .col(ColumnDef::new(Customers::Name).string().not_null())
                    .col(ColumnDef::new(Customers::Email).string().not_null())
                    .col(ColumnDef::new(Customers::CcEmails).text().not_null())
                    .col(ColumnDef::new(Customers::BccEmails).text().not_null())
                    .col(ColumnDef::new(Customers::Locale).string().not_null())
                    .col(ColumnDef::new(Customers::Timezone).string().not_null())
                    .col(ColumnDef::new(Customers::SalesRepEmail).string().not_null())
                    .col(
                        ColumnDef::new(Customers::PaymentProvider)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Customers::PaymentToken).string().not_null())
                    .col(ColumnDef::new(Customers::PolicyCode).string().not_null())
                    .col(
                        ColumnDef::new(Customers::DunningExcluded)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Customers::DunningExcludedReason)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Customers::Tags).text().not_null())
                    .col(ColumnDef::new(Customers::Metadata).text().not_null())
                    .col(
                        ColumnDef::new(Customers::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Customers::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Customers::DeletedAt).big_integer())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Customers::Table, Customers::OrganizationId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Customers::Table,
            "ux_customers_org_external_id",
            &[Customers::OrganizationId, Customers::ExternalId],
            true,
        )
        .await?;
        // Keyset pagination walks (organization_id, id); ids are UUIDv7 so this is creation order.
        create_index(
            manager,
            Customers::Table,
            "ix_customers_org_id",
            &[Customers::OrganizationId, Customers::Id],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .col(ColumnDef::new(Invoices::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Invoices::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Invoices::CustomerId).uuid().not_null())
                    .col(ColumnDef::new(Invoices::ExternalId).string().not_null())
                    .col(ColumnDef::new(Invoices::Number).string().not_null())
                    .col(ColumnDef::new(Invoices::CurrencyCode).string().not_null())
                    .col(
                        ColumnDef::new(Invoices::TotalMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Invoices::PaidMinor).big_integer().not_null())
                    .col(
                        ColumnDef::new(Invoices::CreditedMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Invoices::AmountDueMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Invoices::IssueDate).date().not_null())
                    .col(ColumnDef::new(Invoices::DueDate).date().not_null())
                    .col(ColumnDef::new(Invoices::OverdueAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(Invoices::OverdueAnnounced)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Invoices::State).string().not_null())
                    .col(
                        ColumnDef::new(Invoices::CollectionMethod)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Invoices::Disputed).boolean().not_null())
                    .col(
                        ColumnDef::new(Invoices::DunningBlocked)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Invoices::DunningBlockReason)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Invoices::PolicyCode).string().not_null())
                    .col(ColumnDef::new(Invoices::Metadata).text().not_null())
                    .col(ColumnDef::new(Invoices::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Invoices::UpdatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Invoices::PaidAt).big_integer())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invoices::Table, Invoices::OrganizationId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invoices::Table, Invoices::CustomerId)
                            .to(Customers::Table, Customers::Id),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Invoices::Table,
            "ux_invoices_org_external_id",
            &[Invoices::OrganizationId, Invoices::ExternalId],
            true,
        )
        .await?;
        create_index(
            manager,
            Invoices::Table,
            "ix_invoices_org_id",
            &[Invoices::OrganizationId, Invoices::Id],
            false,
        )
        .await?;
        // The overdue balance of one customer: an index range on (customer, OPEN, overdue_at <= now)
        // that also carries every column the aggregate reads, so it never visits the table.
        create_index(
            manager,
            Invoices::Table,
            "ix_invoices_customer_overdue",
            &[
                Invoices::CustomerId,
                Invoices::State,
                Invoices::OverdueAt,
                Invoices::Disputed,
                Invoices::AmountDueMinor,
                Invoices::CurrencyCode,
                Invoices::DueDate,
            ],
            false,
        )
        .await?;
        // The overdue scanner: invoices not yet announced whose overdue instant has passed.
        create_index(
            manager,
            Invoices::Table,
            "ix_invoices_overdue_scan",
            &[Invoices::OverdueAnnounced, Invoices::OverdueAt],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(ColumnDef::new(Payments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Payments::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Payments::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(Payments::ExternalId).string().not_null())
                    .col(ColumnDef::new(Payments::CurrencyCode).string().not_null())
                    .col(
                        ColumnDef::new(Payments::AmountMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Payments::PaidAt).big_integer().not_null())
                    .col(ColumnDef::new(Payments::Reference).string().not_null())
                    .col(ColumnDef::new(Payments::CreatedAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::InvoiceId)
                            .to(Invoices::Table, Invoices::Id),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Payments::Table,
            "ux_payments_org_external_id",
            &[Payments::OrganizationId, Payments::ExternalId],
            true,
        )
        .await?;
        create_index(
            manager,
            Payments::Table,
            "ix_payments_invoice",
            &[Payments::InvoiceId, Payments::Id],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(
                        ColumnDef::new(IdempotencyKeys::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::Operation)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::RequestId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::Fingerprint)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::ResourceId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::OrganizationId)
                            .col(IdempotencyKeys::Operation)
                            .col(IdempotencyKeys::RequestId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(ColumnDef::new(Events::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Events::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Events::Sequence).big_integer().not_null())
                    .col(ColumnDef::new(Events::EventType).string().not_null())
                    .col(ColumnDef::new(Events::OccurredAt).big_integer().not_null())
                    .col(ColumnDef::new(Events::CustomerId).uuid())
                    .col(
                        ColumnDef::new(Events::CustomerExternalId)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Events::InvoiceId).uuid())
                    .col(
                        ColumnDef::new(Events::InvoiceExternalId)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Events::ProcessId).uuid())
                    .col(ColumnDef::new(Events::Payload).text().not_null())
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Events::Table,
            "ux_events_org_sequence",
            &[Events::OrganizationId, Events::Sequence],
            true,
        )
        .await?;
        create_index(
            manager,
            Events::Table,
            "ix_events_customer",
            &[Events::CustomerId, Events::Sequence],
            false,
        )
        .await?;
        create_index(
            manager,
            Events::Table,
            "ix_events_invoice",
            &[Events::InvoiceId, Events::Sequence],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Events::Table.into_iden(),
            IdempotencyKeys::Table.into_iden(),
            Payments::Table.into_iden(),
            Invoices::Table.into_iden(),
            Customers::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_index<T, C>(
    manager: &SchemaManager<'_>,
    table: T,
    name: &str,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr>
where
    T: IntoIden + Clone,
    C: IntoIden + Clone,
{
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(column.clone());
    }
    if unique {
        index.unique();
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    Timezone,
    DefaultPolicyCode,
    SenderFromName,
    SenderFromEmail,
    SenderReplyToEmail,
    PaymentLinkTemplate,
    QuietHoursEnabled,
    QuietHoursStart,
    QuietHoursEnd,
    PaymentProvider,
    PaymentHttpUrl,
    PaymentHttpSecret,
    MinimumChargeAmounts,
    LastEventSequence,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrganizationId,
    Prefix,
    KeyHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone)]
enum Customers {
    Table,
    Id,
    OrganizationId,
    ExternalId,
    Name,
    Email,
    CcEmails,
    BccEmails,
    Locale,
    Timezone,
    SalesRepEmail,
    PaymentProvider,
    PaymentToken,
    PolicyCode,
    DunningExcluded,
    DunningExcludedReason,
    Tags,
    Metadata,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone)]
enum Invoices {
    Table,
    Id,
    OrganizationId,
    CustomerId,
    ExternalId,
    Number,
    CurrencyCode,
    TotalMinor,
    PaidMinor,
    CreditedMinor,
    AmountDueMinor,
    IssueDate,
    DueDate,
    OverdueAt,
    OverdueAnnounced,
    State,
    CollectionMethod,
    Disputed,
    DunningBlocked,
    DunningBlockReason,
    PolicyCode,
    Metadata,
    CreatedAt,
    UpdatedAt,
    PaidAt,
}

#[derive(DeriveIden, Clone)]
enum Payments {
    Table,
    Id,
    OrganizationId,
    InvoiceId,
    ExternalId,
    CurrencyCode,
    AmountMinor,
    PaidAt,
    Reference,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    OrganizationId,
    Operation,
    RequestId,
    Fingerprint,
    ResourceId,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum Events {
    Table,
    Id,
    OrganizationId,
    Sequence,
    EventType,
    OccurredAt,
    CustomerId,
    CustomerExternalId,
    InvoiceId,
    InvoiceExternalId,
    ProcessId,
    Payload,
}
