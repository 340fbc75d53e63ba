//! Work a request leaves for the engine keeps the request's W3C trace context, so the step it
//! causes joins the request's trace: a customer to look at, and a process made due.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Processes::Table)
                    .add_column(ColumnDef::new(Processes::TraceContext).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DunningChecks::Table)
                    .add_column(ColumnDef::new(DunningChecks::TraceContext).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Processes::Table)
                    .drop_column(Processes::TraceContext)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DunningChecks::Table)
                    .drop_column(DunningChecks::TraceContext)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Processes {
    Table,
    TraceContext,
}

#[derive(DeriveIden, Clone, Copy)]
enum DunningChecks {
    Table,
    TraceContext,
}
