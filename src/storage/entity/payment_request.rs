use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub currency_code: String,
    pub amount_minor: i64,
    pub status: String,
    pub payment_link: String,
    pub superseded_by_id: Option<Uuid>,
    pub last_decline_code: String,
    pub last_decline_message: String,
    pub last_decline_hard: bool,
    pub attempt_count: i32,
    pub provider_reference: String,
    pub charge_idempotency_key: String,
    pub charge_provider: String,
    pub charge_url: String,
    pub charge_token: String,
    pub email_notification_id: Option<Uuid>,
    pub process_id: Option<Uuid>,
    /// RETRY_PAYMENT (a dunning step's charge: never emails a link) or REQUEST_PAYMENT.
    pub purpose: String,
    pub cancel_reason: String,
    pub next_action_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub settled_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
