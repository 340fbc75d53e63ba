//! The email outbox and template overrides.

use super::entity::{notification, template_override};
use super::{Conn, corrupt, db_error, from_micros, to_micros};
use super::{Order, scoped};
use crate::domain::notification::StoredTemplate;
use crate::domain::notification::{Notification, NotificationState, Recipients};
use crate::domain::query::NotificationFilter;
use crate::error::Error;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    pub async fn upsert_template(
        &self,
        organization_id: Uuid,
        t: &StoredTemplate,
    ) -> Result<(), Error> {
        let model = template_override::Model {
            organization_id,
            kind: t.kind.clone(),
            locale: t.locale.clone(),
            subject: t.subject.clone(),
            text_body: t.text_body.clone(),
            html_body: t.html_body.clone(),
            updated_at: to_micros(t.updated_at),
        };
        template_override::Entity::insert(model.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    template_override::Column::OrganizationId,
                    template_override::Column::Kind,
                    template_override::Column::Locale,
                ])
                .update_columns([
                    template_override::Column::Subject,
                    template_override::Column::TextBody,
                    template_override::Column::HtmlBody,
                    template_override::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_template(
        &self,
        organization_id: Uuid,
        kind: &str,
        locale: &str,
    ) -> Result<Option<StoredTemplate>, Error> {
        Ok(template_override::Entity::find_by_id((
            organization_id,
            kind.to_owned(),
            locale.to_owned(),
        ))
        .one(&self.conn)
        .await
        .map_err(db_error)?
        .map(template_from_model))
    }

    /// Overrides of an organization (optionally of one kind), by kind then locale.
    pub async fn list_templates(
        &self,
        organization_id: Uuid,
        kind: Option<&str>,
    ) -> Result<Vec<StoredTemplate>, Error> {
        let mut query = template_override::Entity::find()
            .filter(template_override::Column::OrganizationId.eq(organization_id));
        if let Some(kind) = kind {
            query = query.filter(template_override::Column::Kind.eq(kind));
        }
        Ok(query
            .order_by_asc(template_override::Column::Kind)
            .order_by_asc(template_override::Column::Locale)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(template_from_model)
            .collect())
    }

    pub async fn delete_template(
        &self,
        organization_id: Uuid,
        kind: &str,
        locale: &str,
    ) -> Result<bool, Error> {
        let result = template_override::Entity::delete_by_id((
            organization_id,
            kind.to_owned(),
            locale.to_owned(),
        ))
        .exec(&self.conn)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected == 1)
    }

    pub async fn insert_notification(&self, n: &Notification) -> Result<(), Error> {
        notification::Entity::insert(to_model(n).into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Inserts notifications in bounded multi-row statements.
    pub async fn insert_notifications(&self, notifications: &[Notification]) -> Result<(), Error> {
        let rows = notifications
            .iter()
            .map(|n| to_model(n).into_active_model());
        self.insert_rows(rows.collect()).await.map_err(db_error)
    }

    pub async fn update_notification(&self, n: &Notification) -> Result<(), Error> {
        to_model(n)
            .into_active_model()
            .reset_all()
            .update(&self.conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_notification(&self, id: Uuid) -> Result<Option<Notification>, Error> {
        notification::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    /// An organization's queued notifications never attempted yet and waiting past `now`:
    /// those held for the sending window.
    pub async fn notifications_waiting_for_window(
        &self,
        organization_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>, Error> {
        notification::Entity::find()
            .filter(notification::Column::OrganizationId.eq(organization_id))
            .filter(notification::Column::State.eq(NotificationState::Queued.as_str()))
            .filter(notification::Column::Attempts.eq(0))
            .filter(notification::Column::NextAttemptAt.gt(to_micros(now)))
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Every notification about a customer.
    pub async fn notifications_of_customer(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Result<Vec<Notification>, Error> {
        notification::Entity::find()
            .filter(notification::Column::OrganizationId.eq(organization_id))
            .filter(notification::Column::CustomerId.eq(customer_id))
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Queued notifications (of any organization) whose attempt is due, oldest due first.
    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Notification>, Error> {
        notification::Entity::find()
            .filter(notification::Column::NextAttemptAt.lte(to_micros(now)))
            .order_by_asc(notification::Column::NextAttemptAt)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect()
    }

    /// Claims due notifications for sending (see [`Conn::claim_due`]).
    pub async fn claim_notifications(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, Error> {
        self.claim_due::<notification::Entity>(
            notification::Column::Id,
            notification::Column::NextAttemptAt,
            ids,
            now,
            lease_until,
        )
        .await
    }

    /// Notifications newest first, before `before_id`.
    pub async fn list_notifications(
        &self,
        organization_id: Uuid,
        filter: &NotificationFilter,
        before_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Notification>, Error> {
        let mut query = scoped::<notification::Entity>(organization_id)?;
        if let Some(id) = filter.customer_id {
            query = query.filter(notification::Column::CustomerId.eq(id));
        }
        if let Some(id) = filter.process_id {
            query = query.filter(notification::Column::ProcessId.eq(id));
        }
        if let Some(state) = filter.state {
            query = query.filter(notification::Column::State.eq(state.as_str()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(notification::Column::Kind.eq(kind));
        }
        self.keyset_page(query, before_id, Order::NewestFirst, limit, from_model)
            .await
    }
}

fn template_from_model(m: template_override::Model) -> StoredTemplate {
    StoredTemplate {
        kind: m.kind,
        locale: m.locale,
        subject: m.subject,
        text_body: m.text_body,
        html_body: m.html_body,
        updated_at: from_micros(m.updated_at),
    }
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn to_model(n: &Notification) -> notification::Model {
    notification::Model {
        id: n.id,
        organization_id: n.organization_id,
        customer_id: n.customer_id,
        customer_external_id: n.customer_external_id.clone(),
        process_id: n.process_id,
        payment_request_id: n.payment_request_id,
        invoice_external_ids: json(&n.invoice_external_ids),
        kind: n.kind.clone(),
        state: n.state.as_str().to_owned(),
        locale: n.locale.clone(),
        from_name: n.from_name.clone(),
        from_email: n.from_email.clone(),
        reply_to_email: n.reply_to_email.clone(),
        to_emails: json(&n.recipients.to),
        cc_emails: json(&n.recipients.cc),
        bcc_emails: json(&n.recipients.bcc),
        subject: n.subject.clone(),
        text_body: n.text_body.clone(),
        html_body: n.html_body.clone(),
        attachments: serde_json::to_string(&n.attachments).unwrap_or_else(|_| "[]".into()),
        message_id: n.message_id.clone(),
        attempts: n.attempts,
        last_error: n.last_error.clone(),
        suppressed_reason: n.suppressed_reason.clone(),
        server_response: n.server_response.clone(),
        next_attempt_at: n.next_attempt_at.map(to_micros),
        sent_at: n.sent_at.map(to_micros),
        created_at: to_micros(n.created_at),
        updated_at: to_micros(n.updated_at),
    }
}

fn from_model(m: notification::Model) -> Result<Notification, Error> {
    let list = |s: &str| {
        serde_json::from_str::<Vec<String>>(s).map_err(|e| corrupt("notification list", e))
    };
    Ok(Notification {
        id: m.id,
        organization_id: m.organization_id,
        customer_id: m.customer_id,
        customer_external_id: m.customer_external_id,
        process_id: m.process_id,
        payment_request_id: m.payment_request_id,
        invoice_external_ids: list(&m.invoice_external_ids)?,
        kind: m.kind,
        state: NotificationState::parse(&m.state)
            .ok_or_else(|| corrupt("notification state", &m.state))?,
        locale: m.locale,
        from_name: m.from_name,
        from_email: m.from_email,
        reply_to_email: m.reply_to_email,
        recipients: Recipients {
            to: list(&m.to_emails)?,
            cc: list(&m.cc_emails)?,
            bcc: list(&m.bcc_emails)?,
        },
        subject: m.subject,
        text_body: m.text_body,
        html_body: m.html_body,
        attachments: serde_json::from_str(&m.attachments)
            .map_err(|e| corrupt("notification attachments", e))?,
        message_id: m.message_id,
        attempts: m.attempts,
        last_error: m.last_error,
        suppressed_reason: m.suppressed_reason,
        server_response: m.server_response,
        next_attempt_at: m.next_attempt_at.map(from_micros),
        sent_at: m.sent_at.map(from_micros),
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
    })
}
