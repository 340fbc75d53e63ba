//! Customers.

use super::entity::customer;
use super::{Conn, corrupt, db_error, db_error_or_duplicate, from_micros, to_micros};
use super::{Order, scoped};
use crate::domain::customer::{Customer, CustomerDetails, PaymentMethod};
use crate::domain::query::CustomerFilter;
use crate::error::Error;
use crate::error::Reason;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    pub async fn insert_customer(&self, c: &Customer) -> Result<(), Error> {
        customer::Entity::insert(to_model(c).into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| {
                db_error_or_duplicate(
                    e,
                    Reason::CustomerAlreadyExists,
                    format!(
                        "a customer with external_id `{}` already exists",
                        c.external_id
                    ),
                )
            })?;
        Ok(())
    }

    pub async fn update_customer(&self, c: &Customer) -> Result<(), Error> {
        let model = to_model(c).into_active_model().reset_all();
        model.update(&self.conn).await.map_err(db_error)?;
        Ok(())
    }

    pub async fn find_customer(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Customer>, Error> {
        customer::Entity::find_by_id(id)
            .filter(customer::Column::OrganizationId.eq(organization_id))
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    /// A customer re-read under its row lock (PostgreSQL), held until the transaction ends:
    /// creating a payment request and deleting the customer apply one after the other.
    pub async fn lock_customer(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Customer>, Error> {
        let mut query = customer::Entity::find_by_id(id)
            .filter(customer::Column::OrganizationId.eq(organization_id));
        query = self.for_update(query, true);
        query
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    pub async fn find_customer_by_external_id(
        &self,
        organization_id: Uuid,
        external_id: &str,
    ) -> Result<Option<Customer>, Error> {
        self.by_external_id::<customer::Entity, _>(organization_id, external_id, from_model)
            .await
    }

    /// The customers with these external ids (those that exist).
    pub async fn find_customers_by_external_ids(
        &self,
        organization_id: Uuid,
        external_ids: &[String],
    ) -> Result<Vec<Customer>, Error> {
        self.models_by_external_ids::<customer::Entity>(organization_id, external_ids, false)
            .await?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// The customers with these ids (those that exist in the organization).
    pub async fn find_customers_by_ids(
        &self,
        organization_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Customer>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::rows_per_statement(1)) {
            // By primary key only (the organization is checked below), so no planner can
            // prefer scanning the organization's rows.
            let models = customer::Entity::find()
                .filter(customer::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            for m in models
                .into_iter()
                .filter(|m| m.organization_id == organization_id)
            {
                out.push(from_model(m)?);
            }
        }
        Ok(out)
    }

    /// Customers in creation order after `after_id`.
    pub async fn list_customers(
        &self,
        organization_id: Uuid,
        filter: &CustomerFilter,
        after_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Customer>, Error> {
        let mut query = scoped::<customer::Entity>(organization_id)?;
        if let Some(email) = &filter.email {
            query = query.filter(customer::Column::Email.eq(email.as_str()));
        }
        if let Some(tag) = &filter.tag {
            // Tags are a JSON array of strings; match the quoted element.
            let quoted = serde_json::to_string(tag).unwrap_or_default();
            query = query.filter(customer::Column::Tags.contains(quoted));
        }
        if !filter.include_deleted {
            query = query.filter(customer::Column::DeletedAt.is_null());
        }
        self.keyset_page(query, after_id, Order::OldestFirst, limit, from_model)
            .await
    }
}

fn to_model(c: &Customer) -> customer::Model {
    let d = &c.details;
    customer::Model {
        id: c.id,
        organization_id: c.organization_id,
        external_id: c.external_id.clone(),
        name: d.name.clone(),
        email: d.email.clone(),
        cc_emails: json(&d.cc_emails),
        bcc_emails: json(&d.bcc_emails),
        locale: d.locale.clone(),
        timezone: d.timezone.name().to_owned(),
        sales_rep_email: d.sales_rep_email.clone(),
        payment_provider: d
            .payment_method
            .as_ref()
            .map(|p| p.provider.clone())
            .unwrap_or_default(),
        payment_token: d
            .payment_method
            .as_ref()
            .map(|p| p.token.clone())
            .unwrap_or_default(),
        policy_code: d.policy_code.clone(),
        dunning_excluded: d.dunning_excluded,
        dunning_excluded_reason: d.dunning_excluded_reason.clone(),
        tags: json(&d.tags),
        metadata: json(&d.metadata),
        created_at: to_micros(c.created_at),
        updated_at: to_micros(c.updated_at),
        deleted_at: c.deleted_at.map(to_micros),
    }
}

fn from_model(m: customer::Model) -> Result<Customer, Error> {
    let list =
        |s: &str| serde_json::from_str::<Vec<String>>(s).map_err(|e| corrupt("customer list", e));
    Ok(Customer {
        id: m.id,
        organization_id: m.organization_id,
        external_id: m.external_id,
        details: CustomerDetails {
            name: m.name,
            email: m.email,
            cc_emails: list(&m.cc_emails)?,
            bcc_emails: list(&m.bcc_emails)?,
            locale: m.locale,
            timezone: m
                .timezone
                .parse()
                .map_err(|e| corrupt("customer time zone", e))?,
            sales_rep_email: m.sales_rep_email,
            payment_method: (!m.payment_provider.is_empty()).then_some(PaymentMethod {
                provider: m.payment_provider,
                token: m.payment_token,
            }),
            policy_code: m.policy_code,
            dunning_excluded: m.dunning_excluded,
            dunning_excluded_reason: m.dunning_excluded_reason,
            tags: list(&m.tags)?,
            metadata: serde_json::from_str(&m.metadata)
                .map_err(|e| corrupt("customer metadata", e))?,
        },
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
        deleted_at: m.deleted_at.map(from_micros),
    })
}

/// JSON text of a list or map column.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
