//! A process's promise to pay: when it is kept or broken (the end of the promised day in the
//! customer's time zone) and what was due when it was made.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [Processes::PromiseDeadlineAt, Processes::PromiseOwedMinor] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Processes::Table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Processes::PromiseDeadlineAt, Processes::PromiseOwedMinor] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Processes::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Processes {
    Table,
    PromiseDeadlineAt,
    PromiseOwedMinor,
}
