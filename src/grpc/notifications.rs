//! Notification conversions and handler bodies: PreviewNotification, ListNotifications
//! (DunningService) and the template override RPCs (OrganizationService).

use super::convert::{self, optional_timestamp, timestamp};
use super::convert::{kind_from_proto, kind_to_proto};
use super::{Api, authenticate};
use crate::domain::notification::StoredTemplate;
use crate::domain::notification::{Notification, NotificationState};
use crate::domain::query::NotificationFilter;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::notify::templates::TemplateSource;
use crate::proto;
use crate::service::notifications::EmailRequest;
use tonic::{Request, Response, Status};

/// Longest template part accepted, in bytes.
const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

pub(super) fn state_to_proto(state: NotificationState) -> proto::NotificationState {
    match state {
        NotificationState::Queued => proto::NotificationState::Queued,
        NotificationState::Sent => proto::NotificationState::Sent,
        NotificationState::Failed => proto::NotificationState::Failed,
        NotificationState::Suppressed => proto::NotificationState::Suppressed,
    }
}

pub fn state_name_to_proto(state: &str) -> proto::NotificationState {
    NotificationState::parse(state)
        .map(state_to_proto)
        .unwrap_or(proto::NotificationState::Unspecified)
}

pub fn notification_to_proto(n: Notification) -> proto::Notification {
    proto::Notification {
        id: n.id.to_string(),
        kind: kind_to_proto(&n.kind) as i32,
        state: state_to_proto(n.state) as i32,
        customer_id: n.customer_id.to_string(),
        customer_external_id: n.customer_external_id,
        process_id: n.process_id.map(|id| id.to_string()).unwrap_or_default(),
        payment_request_id: n
            .payment_request_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        invoice_external_ids: n.invoice_external_ids,
        locale: n.locale,
        subject: n.subject,
        to_emails: n.recipients.to,
        cc_emails: n.recipients.cc,
        bcc_emails: n.recipients.bcc,
        message_id: n.message_id,
        attempts: n.attempts,
        last_error: n.last_error,
        suppressed_reason: n.suppressed_reason,
        next_attempt_time: optional_timestamp(n.next_attempt_at),
        sent_time: optional_timestamp(n.sent_at),
        create_time: timestamp(n.created_at),
        update_time: timestamp(n.updated_at),
    }
}

fn template_to_proto(t: StoredTemplate) -> proto::TemplateOverride {
    proto::TemplateOverride {
        kind: kind_to_proto(&t.kind) as i32,
        locale: t.locale,
        subject: t.subject,
        text_body: t.text_body,
        html_body: t.html_body,
        update_time: timestamp(t.updated_at),
    }
}

fn locale(field: &str, value: &str) -> Result<String, Error> {
    validation::locale(value).map_err(|e| Error::field(field, e))
}

/// The email a preview without a process asks for: a kind, a customer and its invoices.
fn preview_request(
    req: &proto::PreviewNotificationRequest,
    locale: Option<String>,
) -> Result<EmailRequest, Error> {
    use proto::preview_notification_request::Customer as Key;
    let kind = kind_from_proto("kind", req.kind)?;
    let customer = match &req.customer {
        Some(Key::CustomerId(id)) => convert::customer_ref(Some(id), None, "customer_")?,
        Some(Key::CustomerExternalId(ext)) => convert::customer_ref(None, Some(ext), "customer_")?,
        None => convert::customer_ref(None, None, "customer_")?,
    };
    let mut v = Violations::new();
    for (i, ext) in req.invoice_external_ids.iter().enumerate() {
        v.check(
            &format!("invoice_external_ids[{i}]"),
            validation::external_id(ext),
        );
    }
    let currency = if req.invoice_external_ids.is_empty() {
        convert::currency("currency_code", &req.currency_code, &mut v)
    } else {
        None
    };
    v.finish().map_err(Error::from)?;
    let email = EmailRequest {
        invoice_external_ids: req.invoice_external_ids.clone(),
        currency,
        locale,
        ..EmailRequest::new(kind, customer)
    };
    Ok(email)
}

pub async fn preview(
    api: &Api,
    request: Request<proto::PreviewNotificationRequest>,
) -> Result<Response<proto::PreviewNotificationResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let locale = (!req.locale.is_empty())
        .then(|| locale("locale", &req.locale))
        .transpose()?;
    let composed = if req.process_id.is_empty() {
        let email = preview_request(&req, locale)?;
        api.services
            .notifications
            .preview_email(caller, &email)
            .await?
    } else {
        let process_id = convert::uuid("process_id", &req.process_id)?;
        let kind = (req.kind != proto::TemplateKind::Unspecified as i32)
            .then(|| kind_from_proto("kind", req.kind))
            .transpose()?;
        api.services
            .processes
            .preview_process_email(caller, process_id, kind, locale)
            .await?
    };
    let sender = &composed.organization.settings.sender;
    let from_header = if sender.from_name.is_empty() {
        sender.from_email.clone()
    } else {
        format!("{} <{}>", sender.from_name, sender.from_email)
    };
    Ok(Response::new(proto::PreviewNotificationResponse {
        subject: composed.rendered.subject,
        text_body: composed.rendered.text_body,
        html_body: composed.rendered.html_body,
        to_emails: composed.recipients.to,
        cc_emails: composed.recipients.cc,
        bcc_emails: composed.recipients.bcc,
        locale: composed.locale,
        template_overridden: composed.overridden,
        from_header,
        reply_to_email: sender.reply_to_email.clone(),
    }))
}

pub async fn list(
    api: &Api,
    request: Request<proto::ListNotificationsRequest>,
) -> Result<Response<proto::ListNotificationsResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let page = convert::page(req.page_size, req.page_token)?;
    let customer = convert::customer_filter(&req.customer_id, &req.customer_external_id)?;
    let state = match proto::NotificationState::try_from(req.state) {
        Ok(proto::NotificationState::Unspecified) => None,
        Ok(proto::NotificationState::Queued) => Some(NotificationState::Queued),
        Ok(proto::NotificationState::Sent) => Some(NotificationState::Sent),
        Ok(proto::NotificationState::Failed) => Some(NotificationState::Failed),
        Ok(proto::NotificationState::Suppressed) => Some(NotificationState::Suppressed),
        Err(_) => return Err(Error::field("state", "is not a known notification state").into()),
    };
    let filter = NotificationFilter {
        customer_id: None,
        process_id: (!req.process_id.is_empty())
            .then(|| convert::uuid("process_id", &req.process_id))
            .transpose()?,
        state,
        kind: (req.kind != proto::TemplateKind::Unspecified as i32)
            .then(|| kind_from_proto("kind", req.kind))
            .transpose()?
            .map(|k| k.as_str()),
    };
    let (rows, next_page_token) = api
        .services
        .notifications
        .list_notifications(caller, customer, filter, &page)
        .await?;
    Ok(Response::new(proto::ListNotificationsResponse {
        notifications: rows.into_iter().map(notification_to_proto).collect(),
        next_page_token,
    }))
}

pub async fn set_template(
    api: &Api,
    request: Request<proto::SetTemplateOverrideRequest>,
) -> Result<Response<proto::SetTemplateOverrideResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let t = request
        .into_inner()
        .template_override
        .ok_or_else(|| Error::field("template_override", "is required"))?;
    let kind = kind_from_proto("template_override.kind", t.kind)?;
    let locale = locale("template_override.locale", &t.locale)?;
    let mut v = Violations::new();
    if t.subject.trim().is_empty() {
        v.add("template_override.subject", "is required");
    }
    // A subject is a header: one line. Bodies may break lines, nothing else.
    if t.subject.chars().any(char::is_control) {
        v.add(
            "template_override.subject",
            "must be one line without control characters",
        );
    }
    for (field, body) in [("text_body", &t.text_body), ("html_body", &t.html_body)] {
        if body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            v.add(
                format!("template_override.{field}"),
                "must not contain control characters other than line breaks and tabs",
            );
        }
    }
    if t.text_body.trim().is_empty() {
        v.add("template_override.text_body", "is required");
    }
    for (field, part) in [
        ("subject", &t.subject),
        ("text_body", &t.text_body),
        ("html_body", &t.html_body),
    ] {
        if part.len() > MAX_TEMPLATE_BYTES {
            v.add(
                format!("template_override.{field}"),
                format!("must be at most {MAX_TEMPLATE_BYTES} bytes"),
            );
        }
    }
    v.finish().map_err(Error::from)?;
    let source = TemplateSource {
        subject: t.subject,
        text_body: t.text_body,
        html_body: t.html_body,
    };
    let stored = api
        .services
        .notifications
        .set_template(caller, kind, &locale, source)
        .await?;
    Ok(Response::new(proto::SetTemplateOverrideResponse {
        template_override: Some(template_to_proto(stored)),
    }))
}

pub async fn get_template(
    api: &Api,
    request: Request<proto::GetTemplateOverrideRequest>,
) -> Result<Response<proto::GetTemplateOverrideResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let kind = kind_from_proto("kind", req.kind)?;
    let stored = api
        .services
        .notifications
        .get_template(caller, kind, &locale("locale", &req.locale)?)
        .await?;
    Ok(Response::new(proto::GetTemplateOverrideResponse {
        template_override: Some(template_to_proto(stored)),
    }))
}

pub async fn list_templates(
    api: &Api,
    request: Request<proto::ListTemplateOverridesRequest>,
) -> Result<Response<proto::ListTemplateOverridesResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    // At most 7 kinds x a handful of locales: one page always holds them all, so no page
    // token was ever handed out.
    convert::page(req.page_size, String::new())?;
    if !req.page_token.is_empty() {
        return Err(Error::field(
            "page_token",
            "is not a token of this list (it always fits in one page; send none)",
        )
        .into());
    }
    let kind = (req.kind != proto::TemplateKind::Unspecified as i32)
        .then(|| kind_from_proto("kind", req.kind))
        .transpose()?;
    let stored = api
        .services
        .notifications
        .list_templates(caller, kind)
        .await?;
    Ok(Response::new(proto::ListTemplateOverridesResponse {
        template_overrides: stored.into_iter().map(template_to_proto).collect(),
        next_page_token: String::new(),
    }))
}

pub async fn delete_template(
    api: &Api,
    request: Request<proto::DeleteTemplateOverrideRequest>,
) -> Result<Response<proto::DeleteTemplateOverrideResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let kind = kind_from_proto("kind", req.kind)?;
    api.services
        .notifications
        .delete_template(caller, kind, &locale("locale", &req.locale)?)
        .await?;
    Ok(Response::new(proto::DeleteTemplateOverrideResponse {}))
}
