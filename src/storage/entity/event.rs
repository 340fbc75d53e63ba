use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub occurred_at: i64,
    pub customer_id: Option<Uuid>,
    pub customer_external_id: String,
    pub invoice_id: Option<Uuid>,
    pub invoice_external_id: String,
    pub process_id: Option<Uuid>,
    pub payload: String,
    /// The money the event is about, for the collections report (`NewEvent::reported_amount`);
    /// NULL for other events.
    pub currency_code: Option<String>,
    pub amount_minor: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
