//! Idempotency keys: a caller's `request_id` remembered with what it created.

use super::entity::idempotency_key;
use super::{Conn, db_error, to_micros};
use crate::error::Error;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    /// The fingerprint and resource remembered for a request id, if any.
    pub async fn find_idempotency_key(
        &self,
        organization_id: Uuid,
        operation: &str,
        request_id: &str,
    ) -> Result<Option<(String, Uuid)>, Error> {
        Ok(idempotency_key::Entity::find_by_id((
            organization_id,
            operation.to_owned(),
            request_id.to_owned(),
        ))
        .one(&self.conn)
        .await
        .map_err(db_error)?
        .map(|m| (m.fingerprint, m.resource_id)))
    }

    pub async fn insert_idempotency_key(
        &self,
        organization_id: Uuid,
        operation: &str,
        request_id: &str,
        fingerprint: &str,
        resource_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let model = idempotency_key::Model {
            organization_id,
            operation: operation.to_owned(),
            request_id: request_id.to_owned(),
            fingerprint: fingerprint.to_owned(),
            resource_id,
            created_at: to_micros(now),
        };
        idempotency_key::Entity::insert(model.into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| match super::db_error(e) {
                // The same request_id is being handled by a call that committed first: retrying
                // this one returns that call's result.
                Error::AlreadyExists { .. } => Error::Aborted(format!(
                    "request_id `{request_id}` is being used by a concurrent call; retry to get \
                     its result"
                )),
                other => other,
            })?;
        Ok(())
    }
}
