//! Webhook endpoints and their deliveries.
//!
//! Each endpoint keeps a cursor into its organization's event log: the dispatcher turns the
//! matching events after it into deliveries and moves it, in one transaction. The log is
//! gap-free in commit order, so no event is skipped and nothing slows the writers down.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use WebhookEndpoints as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(ColumnDef::new(E::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(E::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(E::Url).text().not_null())
                    .col(ColumnDef::new(E::Description).text().not_null())
                    .col(ColumnDef::new(E::EventTypes).text().not_null())
                    .col(ColumnDef::new(E::Secret).text().not_null())
                    .col(ColumnDef::new(E::Enabled).boolean().not_null())
                    .col(ColumnDef::new(E::DisabledReason).text().not_null())
                    .col(ColumnDef::new(E::ConsecutiveFailures).integer().not_null())
                    .col(ColumnDef::new(E::Cursor).big_integer().not_null())
                    .col(ColumnDef::new(E::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(E::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoints_org")
                    .table(E::Table)
                    .col(E::OrganizationId)
                    .col(E::Id)
                    .to_owned(),
            )
            .await?;

        use WebhookDeliveries as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(ColumnDef::new(D::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(D::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(D::EndpointId).uuid().not_null())
                    .col(ColumnDef::new(D::EventId).uuid().not_null())
                    .col(ColumnDef::new(D::EventSequence).big_integer().not_null())
                    .col(ColumnDef::new(D::EventType).text().not_null())
                    .col(ColumnDef::new(D::Status).text().not_null())
                    .col(ColumnDef::new(D::Attempts).integer().not_null())
                    .col(ColumnDef::new(D::ResponseStatusCode).integer().not_null())
                    .col(ColumnDef::new(D::LatencyMs).big_integer().not_null())
                    .col(ColumnDef::new(D::Error).text().not_null())
                    .col(ColumnDef::new(D::NextAttemptAt).big_integer())
                    .col(ColumnDef::new(D::LastAttemptAt).big_integer())
                    .col(ColumnDef::new(D::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_webhook_deliveries_due", vec![D::NextAttemptAt]),
            ("ix_webhook_deliveries_org", vec![D::OrganizationId, D::Id]),
            (
                "ix_webhook_deliveries_endpoint",
                vec![D::EndpointId, D::Status],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(D::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        // One delivery per event and endpoint, however many dispatchers race.
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_deliveries_event")
                    .table(D::Table)
                    .col(D::EndpointId)
                    .col(D::EventId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    OrganizationId,
    Url,
    Description,
    EventTypes,
    Secret,
    Enabled,
    DisabledReason,
    ConsecutiveFailures,
    Cursor,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    Id,
    OrganizationId,
    EndpointId,
    EventId,
    EventSequence,
    EventType,
    Status,
    Attempts,
    ResponseStatusCode,
    LatencyMs,
    Error,
    NextAttemptAt,
    LastAttemptAt,
    CreatedAt,
}
