use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub external_id: String,
    pub name: String,
    pub email: String,
    pub cc_emails: String,
    pub bcc_emails: String,
    pub locale: String,
    pub timezone: String,
    pub sales_rep_email: String,
    pub payment_provider: String,
    pub payment_token: String,
    pub policy_code: String,
    pub dunning_excluded: bool,
    pub dunning_excluded_reason: String,
    pub tags: String,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
