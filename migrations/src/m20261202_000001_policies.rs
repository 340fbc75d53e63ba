//! Dunning policies: one row per version. A version is written once (unique organization,
//! code and version); `is_latest` marks the newest version of a code (unique per code).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Policies as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(ColumnDef::new(P::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(P::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(P::Code).text().not_null())
                    .col(ColumnDef::new(P::Version).integer().not_null())
                    .col(ColumnDef::new(P::Definition).text().not_null())
                    .col(ColumnDef::new(P::Archived).boolean().not_null())
                    .col(ColumnDef::new(P::IsLatest).boolean().not_null())
                    .col(ColumnDef::new(P::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(P::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_policies_version")
                    .table(P::Table)
                    .col(P::OrganizationId)
                    .col(P::Code)
                    .col(P::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_policies_latest ON policies (organization_id, code) \
                 WHERE is_latest",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Policies::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    OrganizationId,
    Code,
    Version,
    Definition,
    Archived,
    IsLatest,
    CreatedAt,
    UpdatedAt,
}
