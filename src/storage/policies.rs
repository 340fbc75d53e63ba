//! Policy versions. A version row is written once; `is_latest` moves to the newest version
//! and `archived` is kept equal on every version of a code.

use super::entity::policy;
use super::{Conn, corrupt, db_error, db_error_or_duplicate, from_micros, to_micros};
use crate::domain::policy::{Policy, PolicyDefinition};
use crate::error::Error;
use crate::error::Reason;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    /// Writes a new version of a policy and makes it the latest. Version 1 of a code that
    /// exists (also archived) is refused with ALREADY_EXISTS `POLICY_ALREADY_EXISTS`; a
    /// concurrent writer of the same version makes this one fail with ABORTED (retry).
    pub async fn insert_policy_version(&self, p: &Policy) -> Result<(), Error> {
        if p.version > 1 {
            policy::Entity::update_many()
                .col_expr(policy::Column::IsLatest, Expr::value(false))
                .filter(policy::Column::OrganizationId.eq(p.organization_id))
                .filter(policy::Column::Code.eq(p.code.as_str()))
                .filter(policy::Column::IsLatest.eq(true))
                .exec(&self.conn)
                .await
                .map_err(db_error)?;
        }
        let definition = serde_json::to_string(&p.definition)
            .map_err(|e| Error::Internal(format!("policy definition: {e}")))?;
        policy::Entity::insert(
            policy::Model {
                id: p.id,
                organization_id: p.organization_id,
                code: p.code.clone(),
                version: p.version,
                definition,
                archived: p.archived,
                is_latest: true,
                created_at: to_micros(p.created_at),
                updated_at: to_micros(p.updated_at),
            }
            .into_active_model(),
        )
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| {
            if p.version == 1 {
                db_error_or_duplicate(
                    e,
                    Reason::PolicyAlreadyExists,
                    format!("policy `{}` already exists", p.code),
                )
            } else {
                match db_error(e) {
                    Error::AlreadyExists { .. } => Error::Aborted(format!(
                        "policy `{}` was updated concurrently; retry",
                        p.code
                    )),
                    other => other,
                }
            }
        })?;
        Ok(())
    }

    /// A policy's latest version (`version` None) or a given one. With `lock`, the latest
    /// version's row is locked until the transaction ends (PostgreSQL), so that two updates
    /// of one policy apply one after the other.
    pub async fn find_policy(
        &self,
        organization_id: Uuid,
        code: &str,
        version: Option<i32>,
        lock: bool,
    ) -> Result<Option<Policy>, Error> {
        let mut query = policy::Entity::find()
            .filter(policy::Column::OrganizationId.eq(organization_id))
            .filter(policy::Column::Code.eq(code));
        query = match version {
            Some(v) => query.filter(policy::Column::Version.eq(v)),
            None => query.filter(policy::Column::IsLatest.eq(true)),
        };
        self.for_update(query, lock)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    /// A policy version by its row id.
    pub async fn find_policy_by_id(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Policy>, Error> {
        policy::Entity::find_by_id(id)
            .filter(policy::Column::OrganizationId.eq(organization_id))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    /// The latest version of each policy, by code, after `after_code`.
    pub async fn list_policies(
        &self,
        organization_id: Uuid,
        include_archived: bool,
        after_code: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Policy>, Error> {
        let mut query = policy::Entity::find()
            .filter(policy::Column::OrganizationId.eq(organization_id))
            .filter(policy::Column::IsLatest.eq(true));
        if !include_archived {
            query = query.filter(policy::Column::Archived.eq(false));
        }
        if let Some(after) = after_code {
            query = query.filter(policy::Column::Code.gt(after));
        }
        query
            .order_by_asc(policy::Column::Code)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Marks every version of a policy archived.
    pub async fn archive_policy(&self, organization_id: Uuid, code: &str) -> Result<(), Error> {
        policy::Entity::update_many()
            .col_expr(policy::Column::Archived, Expr::value(true))
            .filter(policy::Column::OrganizationId.eq(organization_id))
            .filter(policy::Column::Code.eq(code))
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

fn from_model(m: policy::Model) -> Result<Policy, Error> {
    let definition: PolicyDefinition =
        serde_json::from_str(&m.definition).map_err(|e| corrupt("policy", e))?;
    Ok(Policy {
        id: m.id,
        organization_id: m.organization_id,
        code: m.code,
        version: m.version,
        definition,
        archived: m.archived,
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
    })
}
