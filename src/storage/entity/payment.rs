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
    /// The process open on the invoice when it was paid, and the last step it had executed
    /// by then (-1: none yet): where the report counts the payment as recovered.
    pub process_id: Option<Uuid>,
    pub process_step_index: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
