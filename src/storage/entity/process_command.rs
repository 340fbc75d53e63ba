use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "process_commands")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    /// As `CommandKind::as_str`.
    pub command: String,
    pub actor: String,
    pub comment: String,
    /// As `ProcessState::as_str`, before and after the command.
    pub previous_state: String,
    pub state: String,
    /// The process's current step index after the command.
    pub step_index: i32,
    /// The email the command queued (escalation, sales), if any.
    pub notification_id: Option<Uuid>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
