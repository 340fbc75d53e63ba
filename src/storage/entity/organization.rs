use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub default_policy_code: Option<String>,
    pub sender_from_name: String,
    pub sender_from_email: String,
    pub sender_reply_to_email: String,
    pub payment_link_template: String,
    pub quiet_hours_enabled: bool,
    pub quiet_hours_start: String,
    pub quiet_hours_end: String,
    pub payment_provider: String,
    pub payment_http_url: String,
    pub payment_http_secret: String,
    pub minimum_charge_amounts: String,
    /// Days a customer's payment profile looks back.
    pub profile_window_days: i32,
    pub last_event_sequence: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
