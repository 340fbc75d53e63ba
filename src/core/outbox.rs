//! Queueing an email in the outbox inside the caller's transaction (QUEUED in the customer's
//! sending window, or SUPPRESSED), and withdrawing or erasing queued ones: what a request and a
//! dunning step both do. Delivery is the engine's (`engine::jobs::outbox`).

use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::compose::{ComposedEmail, EmailRequest};
use crate::domain::customer::Customer;
use crate::domain::event::EventPayload;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::notification::Notification;
use crate::domain::notification::NotificationState;
use crate::domain::notification::message_id;
use crate::domain::notification::next_send_time;
use crate::domain::template::Audience;
use crate::error::Error;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;
use uuid::Uuid;

pub(crate) fn notification_event(
    event_type: EventType,
    n: &Notification,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        event_type,
        occurred_at: at,
        customer_id: Some(n.customer_id),
        customer_external_id: n.customer_external_id.clone(),
        invoice_id: None,
        invoice_external_id: String::new(),
        process_id: n.process_id,
        payload: EventPayload::Notification {
            notification_id: n.id.to_string(),
            template_kind: n.kind.clone(),
            state: n.state.as_str().to_owned(),
            message_id: n.message_id.clone(),
            attempts: n.attempts,
            error: n.last_error.clone(),
            suppressed_reason: n.suppressed_reason.clone(),
            payment_request_id: n
                .payment_request_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        },
    }
}

impl Core {
    /// Puts an email in the outbox in the caller's transaction: QUEUED for the next moment
    /// inside the customer's sending window, or SUPPRESSED (with an event) when there is nobody
    /// to send it to.
    pub(crate) async fn queue_email<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
    ) -> Result<Notification, Error> {
        let composed = self.compose(conn, caller, request).await?;
        self.queue_composed(conn, caller, request, composed).await
    }

    /// Puts a composed email in the outbox in the caller's transaction (see `queue_email`).
    pub(crate) async fn queue_composed<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        request: &EmailRequest,
        composed: ComposedEmail,
    ) -> Result<Notification, Error> {
        let (n, events) = self.outbox_row(caller, request, composed);
        conn.insert_notification(&n).await?;
        conn.append_events(caller.organization_id, &events).await?;
        conn.wake_after_commit(&self.wake.outbox);
        Ok(n)
    }

    /// The outbox row of a composed email, and the event of its suppression when there is
    /// nobody to send it to; writing them (and waking the outbox after commit) is the
    /// caller's (the engine writes a batch's rows in one statement).
    pub(crate) fn outbox_row(
        &self,
        caller: Caller,
        request: &EmailRequest,
        composed: ComposedEmail,
    ) -> (Notification, Vec<NewEvent>) {
        let org = &composed.organization;
        let now = self.now();
        let id = new_id();
        let mut n = Notification {
            id,
            organization_id: caller.organization_id,
            customer_id: composed.customer.id,
            customer_external_id: composed.customer.external_id.clone(),
            process_id: request.process_id,
            payment_request_id: request.payment_request_id,
            invoice_external_ids: composed
                .invoices
                .iter()
                .map(|i| i.external_id.clone())
                .collect(),
            kind: request.kind.as_str().to_owned(),
            state: NotificationState::Queued,
            locale: composed.locale.clone(),
            from_name: org.settings.sender.from_name.clone(),
            from_email: org.settings.sender.from_email.clone(),
            reply_to_email: org.settings.sender.reply_to_email.clone(),
            recipients: composed.recipients.clone(),
            subject: composed.rendered.subject.clone(),
            text_body: composed.rendered.text_body.clone(),
            html_body: composed.rendered.html_body.clone(),
            attachments: request.attachments.clone(),
            message_id: message_id(id, &org.settings.sender.from_email),
            attempts: 0,
            last_error: String::new(),
            suppressed_reason: String::new(),
            server_response: String::new(),
            next_attempt_at: Some(next_send_time(
                now,
                composed.customer.details.timezone,
                &org.settings.quiet_hours,
            )),
            sent_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut events = Vec::new();
        if n.recipients.to.is_empty() {
            n.state = NotificationState::Suppressed;
            n.next_attempt_at = None;
            n.suppressed_reason = match request.kind.audience() {
                Audience::Customer => "the customer has no email address".into(),
                Audience::SalesRep => "the customer has no sales rep email".into(),
                Audience::CollectionAgency => "the policy has no collection agency email".into(),
            };
            events.push(notification_event(
                EventType::NotificationSuppressed,
                &n,
                now,
            ));
        }
        (n, events)
    }

    /// Wakes the outbox worker once the caller's transaction commits (after writing rows
    /// from `outbox_row`).
    pub(crate) fn wake_outbox_after_commit<C: Connection>(&self, conn: &Conn<C>) {
        conn.wake_after_commit(&self.wake.outbox);
    }

    /// A deleted customer's notifications: queued ones are suppressed (with their events,
    /// returned for the caller's transaction) and all lose recipients and content.
    pub(crate) async fn forget_notifications<C: Connection>(
        &self,
        conn: &Conn<C>,
        customer: &Customer,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, Error> {
        let mut events = Vec::new();
        for mut n in conn
            .notifications_of_customer(customer.organization_id, customer.id)
            .await?
        {
            if n.state == NotificationState::Queued {
                n.suppress("the customer was deleted", now);
                events.push(notification_event(
                    EventType::NotificationSuppressed,
                    &n,
                    now,
                ));
            }
            n.erase_personal_data(now);
            conn.update_notification(&n).await?;
        }
        Ok(events)
    }

    /// Suppresses a notification that is still waiting to be sent (what it asks for no longer
    /// holds); returns the event to append, if it was suppressed.
    pub(crate) async fn withdraw_notification<C: Connection>(
        &self,
        conn: &Conn<C>,
        id: Uuid,
        reason: &str,
    ) -> Result<Option<NewEvent>, Error> {
        let Some(mut n) = conn.find_notification(id).await? else {
            return Ok(None);
        };
        if n.state != NotificationState::Queued {
            return Ok(None);
        }
        let now = self.now();
        n.suppress(reason, now);
        conn.update_notification(&n).await?;
        Ok(Some(notification_event(
            EventType::NotificationSuppressed,
            &n,
            now,
        )))
    }
}
