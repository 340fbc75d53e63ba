use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub invoice_id: Uuid,
    pub external_id: String,
    pub currency_code: String,
    pub amount_minor: i64,
    pub paid_at: i64,
    pub reference: String,
    pub created_at: i64,
    /// The invoice's overdue instant when the payment was recorded (the collections report
    /// counts payments on overdue invoices without looking each invoice up).
    pub invoice_overdue_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
