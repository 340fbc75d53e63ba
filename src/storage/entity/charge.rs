use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "charges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    pub step_run_id: Uuid,
    pub invoice_id: Uuid,
    pub invoice_external_id: String,
    /// FEE or INTEREST.
    pub kind: String,
    pub amount_minor: i64,
    pub currency_code: String,
    pub step_index: i32,
    pub booked_at: i64,
    /// Interest only (YYYY-MM-DD), else empty.
    pub interest_from: String,
    pub interest_to: String,
    pub annual_rate_percent: String,
    /// The policy version whose step booked it.
    pub policy_code: String,
    pub policy_version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
