use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub code: String,
    pub version: i32,
    /// The version's `PolicyDefinition` as JSON.
    pub definition: String,
    /// Kept equal on every version of a code.
    pub archived: bool,
    /// True on the newest version of a code only (unique per code).
    pub is_latest: bool,
    /// When version 1 was created (copied to every version).
    pub created_at: i64,
    /// When this version was written.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
