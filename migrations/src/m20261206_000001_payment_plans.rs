//! A process's payment plan (RecordPaymentPlan): its instalments, their deadlines, reminders
//! and progress, as one JSON document on the process row. It is read and written with the
//! process under the process's lock and never queried by its parts, so a document keeps the
//! engine's one read per process; the plan's events carry what reports need.

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
                    .add_column(ColumnDef::new(Processes::PaymentPlan).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Processes::Table)
                    .drop_column(Processes::PaymentPlan)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Processes {
    Table,
    PaymentPlan,
}
