use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub external_id: String,
    pub number: String,
    pub currency_code: String,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub credited_minor: i64,
    pub amount_due_minor: i64,
    pub issue_date: Date,
    pub due_date: Date,
    pub overdue_at: i64,
    pub overdue_announced: bool,
    pub state: String,
    pub collection_method: String,
    pub disputed: bool,
    pub dunning_blocked: bool,
    pub dunning_block_reason: String,
    pub policy_code: String,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub paid_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
