use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_request_invoices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub payment_request_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub invoice_id: Uuid,
    pub invoice_external_id: String,
    pub position: i32,
    /// Whether the request is open (PENDING, PROCESSING, FAILED); unique per invoice when true.
    pub is_open: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
