use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "step_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    pub step_index: i32,
    pub attempt: i32,
    pub step_name: String,
    pub policy_version: i32,
    pub trigger: String,
    pub executed_at: i64,
    /// The `ActionOutcome`s as JSON.
    pub outcomes: String,
    pub waiting_from: Option<i32>,
    pub payment_request_id: Option<Uuid>,
    pub payment_failed: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
