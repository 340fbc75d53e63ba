//! What operators did to processes (pause, resume, cancel, reset, advance, escalate, inform
//! sales, promise to pay): who, when, with which note, and the state before and after. The
//! process history shows these next to its step runs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ProcessCommands as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(ColumnDef::new(P::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(P::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(P::ProcessId).uuid().not_null())
                    .col(ColumnDef::new(P::Command).text().not_null())
                    .col(ColumnDef::new(P::Actor).text().not_null())
                    .col(ColumnDef::new(P::Comment).text().not_null())
                    .col(ColumnDef::new(P::PreviousState).text().not_null())
                    .col(ColumnDef::new(P::State).text().not_null())
                    .col(ColumnDef::new(P::StepIndex).integer().not_null())
                    .col(ColumnDef::new(P::NotificationId).uuid().null())
                    .col(ColumnDef::new(P::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_process_commands_process ON process_commands (process_id, \
                 created_at)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProcessCommands::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ProcessCommands {
    Table,
    Id,
    OrganizationId,
    ProcessId,
    Command,
    Actor,
    Comment,
    PreviousState,
    State,
    StepIndex,
    NotificationId,
    CreatedAt,
}
