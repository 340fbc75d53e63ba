//! Which policy version booked a charge: a fee is booked once per invoice and step of that
//! version, so a process moved to another policy books the fees of the new policy's steps
//! (a reset, on the same version, still books nothing again).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new(Charges::PolicyCode)
                .text()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Charges::PolicyVersion)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
        ];
        // One column per statement: SQLite adds one at a time.
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Charges::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        for statement in [
            "UPDATE charges SET \
             policy_code = (SELECT p.policy_code FROM processes p WHERE p.id = charges.process_id), \
             policy_version = (SELECT r.policy_version FROM step_runs r WHERE r.id = charges.step_run_id)",
            "DROP INDEX ux_charges_fee_once",
            "CREATE UNIQUE INDEX ux_charges_fee_once ON charges (process_id, invoice_id, \
             policy_code, policy_version, step_index) WHERE kind = 'FEE'",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ux_charges_fee_once")
            .await?;
        for column in [Charges::PolicyCode, Charges::PolicyVersion] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Charges::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_charges_fee_once ON charges (process_id, invoice_id, \
             step_index) WHERE kind = 'FEE'",
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Charges {
    Table,
    PolicyCode,
    PolicyVersion,
}
