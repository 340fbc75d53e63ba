use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub process_id: Option<Uuid>,
    pub payment_request_id: Option<Uuid>,
    pub invoice_external_ids: String,
    pub kind: String,
    pub state: String,
    pub locale: String,
    pub from_name: String,
    pub from_email: String,
    pub reply_to_email: String,
    pub to_emails: String,
    pub cc_emails: String,
    pub bcc_emails: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// `Attachment`s as JSON.
    pub attachments: String,
    pub message_id: String,
    pub attempts: i32,
    pub last_error: String,
    pub suppressed_reason: String,
    pub server_response: String,
    pub next_attempt_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
