//! The operator commands a process received, as its history shows them.

use crate::domain::process::command::{CommandKind, ProcessCommand};
use crate::domain::process::state::ProcessState;
use crate::error::Error;
use crate::storage::entity::process_command;
use crate::storage::{Conn, corrupt, db_error, from_micros, to_micros};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    pub async fn insert_process_command(&self, c: &ProcessCommand) -> Result<(), Error> {
        let model = process_command::Model {
            id: c.id,
            organization_id: c.organization_id,
            process_id: c.process_id,
            command: c.kind.as_str().to_owned(),
            actor: c.actor.clone(),
            comment: c.comment.clone(),
            previous_state: c.previous_state.as_str().to_owned(),
            state: c.state.as_str().to_owned(),
            step_index: c.step_index as i32,
            notification_id: c.notification_id,
            created_at: to_micros(c.created_at),
        };
        process_command::Entity::insert(model.into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_process_command(&self, id: Uuid) -> Result<Option<ProcessCommand>, Error> {
        process_command::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(command_from_model)
            .transpose()
    }

    /// A process's commands, oldest first.
    pub async fn commands_of(&self, process_id: Uuid) -> Result<Vec<ProcessCommand>, Error> {
        process_command::Entity::find()
            .filter(process_command::Column::ProcessId.eq(process_id))
            .order_by_asc(process_command::Column::CreatedAt)
            .order_by_asc(process_command::Column::Id)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(command_from_model)
            .collect()
    }
}

fn command_from_model(m: process_command::Model) -> Result<ProcessCommand, Error> {
    let state = |text: &str| {
        ProcessState::parse(text).ok_or_else(|| corrupt("process command state", text))
    };
    Ok(ProcessCommand {
        id: m.id,
        organization_id: m.organization_id,
        process_id: m.process_id,
        kind: CommandKind::parse(&m.command)
            .ok_or_else(|| corrupt("process command", &m.command))?,
        actor: m.actor,
        comment: m.comment,
        previous_state: state(&m.previous_state)?,
        state: state(&m.state)?,
        step_index: usize::try_from(m.step_index)
            .map_err(|_| corrupt("process command step", m.step_index))?,
        notification_id: m.notification_id,
        created_at: from_micros(m.created_at),
    })
}
