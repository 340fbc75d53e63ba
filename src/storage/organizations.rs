//! Organizations and their API keys.

use super::entity::{api_key, organization};
use super::{Conn, corrupt, db_error, db_error_or_duplicate, from_micros, to_micros};
use crate::domain::access::Scopes;
use crate::domain::money::Currency;
use crate::domain::organization::{
    Organization, OrganizationSettings, PaymentProviderSettings, QuietHours, SenderIdentity,
};
use crate::error::Error;
use crate::error::Reason;
use chrono::{DateTime, NaiveTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// An API key as stored: never the key itself, only its hash and a short prefix to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the key may call.
    pub scopes: Scopes,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl<C: ConnectionTrait> Conn<C> {
    pub async fn insert_organization(&self, org: &Organization) -> Result<(), Error> {
        let model = org_to_model(org, 0).into_active_model();
        organization::Entity::insert(model)
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| {
                db_error_or_duplicate(
                    e,
                    Reason::OrganizationAlreadyExists,
                    format!(
                        "an organization named `{}` already exists",
                        org.settings.name
                    ),
                )
            })?;
        Ok(())
    }

    pub async fn find_organization(&self, id: Uuid) -> Result<Option<Organization>, Error> {
        organization::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(org_from_model)
            .transpose()
    }

    pub async fn find_organization_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Organization>, Error> {
        organization::Entity::find()
            .filter(organization::Column::Name.eq(name))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(org_from_model)
            .transpose()
    }

    /// Every organization, oldest first.
    pub async fn list_organizations(&self) -> Result<Vec<Organization>, Error> {
        use sea_orm::QueryOrder;
        organization::Entity::find()
            .order_by_asc(organization::Column::CreatedAt)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(org_from_model)
            .collect()
    }

    pub async fn count_organizations(&self) -> Result<u64, Error> {
        use sea_orm::PaginatorTrait;
        organization::Entity::find()
            .count(&self.conn)
            .await
            .map_err(db_error)
    }

    /// Saves the settings of an existing organization (never its event counter).
    pub async fn update_organization(&self, org: &Organization) -> Result<(), Error> {
        let mut model = org_to_model(org, 0).into_active_model().reset_all();
        model.last_event_sequence = sea_orm::ActiveValue::NotSet;
        model.created_at = sea_orm::ActiveValue::NotSet;
        model.update(&self.conn).await.map_err(db_error)?;
        Ok(())
    }

    pub async fn insert_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Result<(), Error> {
        let model = api_key::Model {
            id: key.id,
            organization_id: key.organization_id,
            prefix: key.prefix.clone(),
            key_hash: key_hash.to_owned(),
            created_at: to_micros(key.created_at),
            revoked_at: key.revoked_at.map(to_micros),
            scopes: key.scopes.to_text(),
            expires_at: key.expires_at.map(to_micros),
        };
        api_key::Entity::insert(model.into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_api_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, Error> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(key_hash))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(key_from_model))
    }

    pub async fn list_api_keys(&self, organization_id: Uuid) -> Result<Vec<ApiKeyRecord>, Error> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .order_by_asc(api_key::Column::CreatedAt)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(key_from_model)
            .collect())
    }

    /// Marks a key revoked; returns false when no unrevoked key has that id.
    pub async fn revoke_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
        let result = api_key::Entity::update_many()
            .col_expr(
                api_key::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(to_micros(now)),
            )
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected == 1)
    }
}

fn key_from_model(m: api_key::Model) -> ApiKeyRecord {
    ApiKeyRecord {
        id: m.id,
        organization_id: m.organization_id,
        prefix: m.prefix,
        created_at: from_micros(m.created_at),
        revoked_at: m.revoked_at.map(from_micros),
        // A key whose scopes cannot be read may do nothing rather than everything.
        scopes: Scopes::parse(&m.scopes).unwrap_or(Scopes::NONE),
        expires_at: m.expires_at.map(from_micros),
    }
}

fn org_to_model(org: &Organization, last_event_sequence: i64) -> organization::Model {
    let s = &org.settings;
    let minimums: BTreeMap<&str, i64> = s
        .payment_provider
        .minimum_charge_minor
        .iter()
        .map(|(c, v)| (c.code(), *v))
        .collect();
    organization::Model {
        id: org.id,
        name: s.name.clone(),
        timezone: s.timezone.name().to_owned(),
        default_policy_code: Some(s.default_policy_code.clone()).filter(|c| !c.is_empty()),
        sender_from_name: s.sender.from_name.clone(),
        sender_from_email: s.sender.from_email.clone(),
        sender_reply_to_email: s.sender.reply_to_email.clone(),
        payment_link_template: s.payment_link_template.clone(),
        quiet_hours_enabled: s.quiet_hours.enabled,
        quiet_hours_start: s.quiet_hours.start.format("%H:%M").to_string(),
        quiet_hours_end: s.quiet_hours.end.format("%H:%M").to_string(),
        payment_provider: s.payment_provider.provider.clone(),
        payment_http_url: s.payment_provider.http_url.clone(),
        payment_http_secret: s.payment_provider.http_secret.clone(),
        minimum_charge_amounts: serde_json::to_string(&minimums).unwrap_or_else(|_| "{}".into()),
        profile_window_days: i32::try_from(s.profile_window_days).unwrap_or(i32::MAX),
        last_event_sequence,
        created_at: to_micros(org.created_at),
        updated_at: to_micros(org.updated_at),
    }
}

fn org_from_model(m: organization::Model) -> Result<Organization, Error> {
    let time =
        |t: &str| NaiveTime::parse_from_str(t, "%H:%M").map_err(|e| corrupt("quiet hours", e));
    let minimums: BTreeMap<String, i64> =
        serde_json::from_str(&m.minimum_charge_amounts).map_err(|e| corrupt("minimums", e))?;
    let minimum_charge_minor = minimums
        .into_iter()
        .filter_map(|(code, v)| Currency::from_code(&code).map(|c| (c, v)))
        .collect();
    Ok(Organization {
        id: m.id,
        settings: OrganizationSettings {
            name: m.name,
            timezone: m.timezone.parse().map_err(|e| corrupt("time zone", e))?,
            default_policy_code: m.default_policy_code.unwrap_or_default(),
            sender: SenderIdentity {
                from_name: m.sender_from_name,
                from_email: m.sender_from_email,
                reply_to_email: m.sender_reply_to_email,
            },
            payment_link_template: m.payment_link_template,
            quiet_hours: QuietHours {
                enabled: m.quiet_hours_enabled,
                start: time(&m.quiet_hours_start)?,
                end: time(&m.quiet_hours_end)?,
            },
            payment_provider: PaymentProviderSettings {
                provider: m.payment_provider,
                http_url: m.payment_http_url,
                http_secret: m.payment_http_secret,
                minimum_charge_minor,
            },
            profile_window_days: u32::try_from(m.profile_window_days)
                .map_err(|e| corrupt("profile window", e))?,
        },
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
    })
}
