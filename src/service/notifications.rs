//! Notifications as requests see them: previews, one-off emails, the outbox list and template
//! overrides.

use super::paging::PageRequest;
use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
pub use crate::core::compose::EmailRequest;
pub use crate::core::compose::{
    BookedCharge, ComposedEmail, HistoryEntry, InstalmentLine, PlanLines,
};
use crate::core::lookup::load_customer;
use crate::domain::notification::Notification;
use crate::domain::notification::StoredTemplate;
use crate::domain::query::NotificationFilter;
use crate::error::Error;
use crate::error::Reason;
use crate::notify::templates;
use crate::notify::templates::TemplateKind;
use crate::notify::templates::TemplateSource;
use std::sync::Arc;

/// Notifications: previews, one-off emails, the outbox list and template overrides.
#[derive(Clone)]
pub struct Notifications {
    core: Arc<Core>,
}

impl Notifications {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn template_not_found(kind: TemplateKind, locale: &str) -> Error {
    Error::not_found(
        Reason::TemplateOverrideNotFound,
        format!("no override of {} for locale {locale}", kind.as_str()),
    )
}

impl Notifications {
    /// What an email would look like, without sending anything.
    pub async fn preview_email(
        &self,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<ComposedEmail, Error> {
        let composed = self.core.compose(&self.core.store, caller, request).await?;
        // An email about nothing ("0 invoices are still open") is never what a caller wants
        // to see; a step would not send it either.
        if composed.invoices.iter().all(|i| i.amount_due_minor() <= 0) {
            return Err(Error::precondition(
                Reason::NothingDue,
                format!(
                    "customer `{}` has nothing due on the invoices this email would list",
                    composed.customer.external_id
                ),
            ));
        }
        Ok(composed)
    }

    /// Queues an email about a customer's invoices in its own transaction.
    pub async fn send_email(
        &self,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<Notification, Error> {
        let tx = self.core.store.begin().await?;
        let n = self.core.queue_email(&tx, caller, request).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// A page of notifications, newest first.
    pub async fn list_notifications(
        &self,
        caller: Caller,
        customer: Option<CustomerRef>,
        mut filter: NotificationFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Notification>, String), Error> {
        if let Some(customer) = customer {
            filter.customer_id = Some(load_customer(&self.core.store, caller, &customer).await?.id);
        }
        let before = page.after_id(&(caller.organization_id, &filter))?;
        let rows = self
            .core
            .store
            .list_notifications(caller.organization_id, &filter, before, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, &filter), |n| {
            n.id.to_string()
        }))
    }

    /// Stores an override after checking that it parses and renders.
    pub async fn set_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
        source: TemplateSource,
    ) -> Result<StoredTemplate, Error> {
        templates::validate(&source).map_err(|e| Error::InvalidRequest {
            reason: Reason::TemplateInvalid,
            field: format!("template_override.{}", e.part),
            message: e.to_string(),
        })?;
        let stored = StoredTemplate {
            kind: kind.as_str().to_owned(),
            locale: locale.to_owned(),
            subject: source.subject,
            text_body: source.text_body,
            html_body: source.html_body,
            updated_at: self.core.now(),
        };
        self.core
            .store
            .upsert_template(caller.organization_id, &stored)
            .await?;
        Ok(stored)
    }

    pub async fn get_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
    ) -> Result<StoredTemplate, Error> {
        self.core
            .store
            .find_template(caller.organization_id, kind.as_str(), locale)
            .await?
            .ok_or_else(|| template_not_found(kind, locale))
    }

    pub async fn list_templates(
        &self,
        caller: Caller,
        kind: Option<TemplateKind>,
    ) -> Result<Vec<StoredTemplate>, Error> {
        self.core
            .store
            .list_templates(caller.organization_id, kind.map(TemplateKind::as_str))
            .await
    }

    pub async fn delete_template(
        &self,
        caller: Caller,
        kind: TemplateKind,
        locale: &str,
    ) -> Result<(), Error> {
        if self
            .core
            .store
            .delete_template(caller.organization_id, kind.as_str(), locale)
            .await?
        {
            Ok(())
        } else {
            Err(template_not_found(kind, locale))
        }
    }
}
