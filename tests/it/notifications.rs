//! Notifications: templated emails through the outbox to a real SMTP server over TCP.

use crate::common::smtp::{Mode, SmtpServer};
use crate::common::{TestServer, assert_error, bad_fields, customer, invoice};
use chrono::Duration;
use dunning::notify::templates::TemplateKind;
use dunning::proto::{self, preview_notification_request};
use dunning::service::notifications::EmailRequest;
use dunning::service::{Caller, CustomerRef};
use tonic::Code;

async fn setup(s: &TestServer, c: proto::Customer, invoices: &[&str]) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap();
    for (i, ext) in invoices.iter().enumerate() {
        let mut inv = invoice(ext, &c.external_id);
        inv.total_amount = format!("{}.50", 100 * (i + 1));
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(inv) })
            .await
            .unwrap();
    }
}

async fn caller(s: &TestServer) -> Caller {
    let key = s.key.clone();
    s.server().services().auth.authenticate(&key).await.unwrap()
}

fn email(kind: TemplateKind, customer: &str, invoices: &[&str]) -> EmailRequest {
    EmailRequest {
        invoice_external_ids: invoices.iter().map(|s| s.to_string()).collect(),
        extra_bcc: vec!["audit@acme.test".into()],
        ..EmailRequest::new(kind, CustomerRef::ExternalId(customer.into()))
    }
}

async fn preview(
    s: &TestServer,
    kind: proto::TemplateKind,
    customer: &str,
    locale: &str,
) -> proto::PreviewNotificationResponse {
    s.dunning()
        .preview_notification(proto::PreviewNotificationRequest {
            kind: kind as i32,
            locale: locale.into(),
            customer: Some(preview_notification_request::Customer::CustomerExternalId(
                customer.into(),
            )),
            invoice_external_ids: vec![],
            currency_code: "EUR".into(),
            process_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn notifications(s: &TestServer) -> Vec<proto::Notification> {
    s.dunning()
        .list_notifications(proto::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications
}

fn text_part(data: &str) -> bool {
    data.contains("Content-Type: text/plain")
}

async fn delivered_exactly_as_previewed(s: &TestServer, smtp: &SmtpServer) {
    let mut c = customer("cus_1");
    c.cc_emails = vec!["finance@cus1.test".into(), "CUS_1@example.com".into()];
    c.bcc_emails = vec!["archive@cus1.test".into()];
    setup(s, c, &["inv_1", "inv_2"]).await;
    let shown = preview(s, proto::TemplateKind::FriendlyReminder, "cus_1", "").await;
    assert_eq!(shown.to_emails, vec!["cus_1@example.com"]);
    assert_eq!(
        shown.cc_emails,
        vec!["finance@cus1.test"],
        "the customer's own address is not repeated in cc"
    );
    assert_eq!(shown.bcc_emails, vec!["archive@cus1.test"]);
    assert!(shown.text_body.contains("N-inv_1") && shown.text_body.contains("N-inv_2"));
    assert!(!shown.template_overridden);

    let queued = s
        .server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_1", &["inv_1", "inv_2"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    let received = smtp.wait_for(1).await;
    let message = &received[0];
    let mut rcpt = message.rcpt_to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        vec![
            "archive@cus1.test",
            "audit@acme.test",
            "cus_1@example.com",
            "finance@cus1.test"
        ]
    );
    assert_eq!(message.header("To").as_deref(), Some("cus_1@example.com"));
    assert_eq!(message.header("Cc").as_deref(), Some("finance@cus1.test"));
    assert_eq!(
        message.header("Bcc"),
        None,
        "bcc recipients are not disclosed"
    );
    assert_eq!(
        message.header("Message-ID"),
        Some(queued.message_id.clone())
    );
    assert_eq!(
        message.header("Subject").as_deref(),
        Some(shown.subject.as_str())
    );
    assert!(text_part(&message.data) && message.data.contains("Content-Type: text/html"));
    assert!(message.data.contains("N-inv_2"));

    let listed = notifications(s).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, proto::NotificationState::Sent as i32);
    assert_eq!(listed[0].attempts, 1);
    assert_eq!(listed[0].subject, shown.subject);
    assert!(
        s.event_types()
            .await
            .ends_with(&["notification.sent".to_string()])
    );
    assert_eq!(
        s.deliver().await,
        0,
        "a sent notification is not sent again"
    );
}

async fn locale_follows_the_customer_with_fallback(s: &TestServer, _smtp: &SmtpServer) {
    let mut german = customer("cus_de");
    german.locale = "de-AT".into();
    setup(s, german, &["inv_de"]).await;
    setup(s, customer("cus_en"), &["inv_en"]).await;
    let de = preview(s, proto::TemplateKind::FirmReminder, "cus_de", "").await;
    let en = preview(s, proto::TemplateKind::FirmReminder, "cus_en", "").await;
    let fr = preview(s, proto::TemplateKind::FirmReminder, "cus_en", "fr").await;
    let pt = preview(s, proto::TemplateKind::FirmReminder, "cus_en", "pt-BR").await;
    assert_eq!(de.locale, "de");
    assert_eq!(fr.locale, "fr");
    assert_eq!(pt.locale, "en");
    assert_ne!(de.subject, en.subject);
    assert_ne!(fr.subject, en.subject);
    assert!(
        de.text_body.contains("100,50"),
        "German amounts: {}",
        de.text_body
    );
    assert!(
        en.text_body.contains("100.50"),
        "English amounts: {}",
        en.text_body
    );
}

/// An email to a customer in New York queued at 2026-11-24 12:00 UTC, 07:00 there: before the
/// 08:00 opening of the sending window.
async fn email_before_the_window(s: &TestServer) -> dunning::domain::notification::Notification {
    let mut c = customer("cus_ny");
    c.timezone = "America/New_York".into();
    setup(s, c, &["inv_1"]).await;
    s.server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_ny", &["inv_1"]),
        )
        .await
        .unwrap()
}

async fn quiet_hours_hold_until_the_window_opens(s: &TestServer, smtp: &SmtpServer) {
    let n = email_before_the_window(s).await;
    assert_eq!(
        n.next_attempt_at,
        Some("2026-11-24T13:00:00Z".parse().unwrap())
    );
    assert_eq!(s.deliver().await, 0);
    s.clock.set("2026-11-24T12:59:59Z".parse().unwrap());
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty());
    s.clock.set("2026-11-24T13:00:00Z".parse().unwrap());
    assert_eq!(s.deliver().await, 1);
    smtp.wait_for(1).await;

    // Without quiet hours it goes at once.
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                quiet_hours: Some(proto::QuietHours {
                    enabled: false,
                    start_time: "08:00".into(),
                    end_time: "20:00".into(),
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["quiet_hours".into()],
            }),
        })
        .await
        .unwrap();
    s.clock.set("2026-11-25T04:00:00Z".parse().unwrap());
    s.server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_ny", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    smtp.wait_for(2).await;
}

async fn permanent_rejection_is_not_retried(s: &TestServer, smtp: &SmtpServer) {
    setup(s, customer("cus_1"), &["inv_1"]).await;
    smtp.set_mode(Mode::RejectPermanently);
    s.server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FinalNotice, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    let listed = notifications(s).await;
    assert_eq!(listed[0].state, proto::NotificationState::Failed as i32);
    assert!(
        listed[0].last_error.contains("550")
            || listed[0].last_error.to_lowercase().contains("refused"),
        "{}",
        listed[0].last_error
    );
    s.clock.advance(Duration::hours(5));
    smtp.set_mode(Mode::Accept);
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty());
    assert!(
        s.event_types()
            .await
            .ends_with(&["notification.failed".to_string()])
    );
}

async fn temporary_rejection_is_retried_with_backoff(s: &TestServer, smtp: &SmtpServer) {
    setup(s, customer("cus_1"), &["inv_1"]).await;
    smtp.set_mode(Mode::RejectTemporarily);
    s.server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    let n = &notifications(s).await[0];
    assert_eq!(n.state, proto::NotificationState::Queued as i32);
    assert_eq!(n.attempts, 1);
    assert!(!n.last_error.is_empty());
    assert_eq!(s.deliver().await, 0, "not before the backoff");
    smtp.set_mode(Mode::Accept);
    s.clock.advance(Duration::seconds(40));
    assert_eq!(s.deliver().await, 1);
    smtp.wait_for(1).await;
    let n = &notifications(s).await[0];
    assert_eq!(
        (n.state, n.attempts),
        (proto::NotificationState::Sent as i32, 2)
    );
}

async fn no_email_address_is_suppressed(s: &TestServer, smtp: &SmtpServer) {
    let mut c = customer("cus_mute");
    c.email = String::new();
    setup(s, c, &["inv_1"]).await;
    let n = s
        .server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_mute", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(n.suppressed_reason, "the customer has no email address");
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty());
    let listed = notifications(s).await;
    assert_eq!(listed[0].state, proto::NotificationState::Suppressed as i32);
    let events = s.events().await;
    let last = events.last().unwrap();
    assert_eq!(last.r#type, "notification.suppressed");
    match &last.payload {
        Some(proto::event::Payload::Notification(p)) => {
            assert_eq!(p.suppressed_reason, "the customer has no email address")
        }
        other => panic!("unexpected payload {other:?}"),
    }
}

async fn template_overrides_are_validated_and_used(s: &TestServer, smtp: &SmtpServer) {
    setup(s, customer("cus_1"), &["inv_1"]).await;
    let mut api = s.organizations();
    let broken = proto::TemplateOverride {
        kind: proto::TemplateKind::FriendlyReminder as i32,
        locale: "en".into(),
        subject: "Reminder".into(),
        text_body: "Hello\n\n{% if customer.name %}\nunclosed".into(),
        html_body: String::new(),
        update_time: None,
    };
    let status = assert_error(
        api.set_template_override(proto::SetTemplateOverrideRequest {
            template_override: Some(broken),
        })
        .await,
        Code::InvalidArgument,
        "TEMPLATE_INVALID",
    );
    assert_eq!(bad_fields(&status), vec!["template_override.text_body"]);
    assert!(status.message().contains("line"), "{}", status.message());
    assert_error(
        api.get_template_override(proto::GetTemplateOverrideRequest {
            kind: proto::TemplateKind::FriendlyReminder as i32,
            locale: "en".into(),
        })
        .await,
        Code::NotFound,
        "TEMPLATE_OVERRIDE_NOT_FOUND",
    );

    let good = proto::TemplateOverride {
        kind: proto::TemplateKind::FriendlyReminder as i32,
        locale: "en".into(),
        subject: "Psst, {{ customer.name }}".into(),
        text_body: "{% for i in invoices %}{{ i.number }} {% endfor %}".into(),
        html_body: "<p>{{ customer.name }}</p>".into(),
        update_time: None,
    };
    api.set_template_override(proto::SetTemplateOverrideRequest {
        template_override: Some(good),
    })
    .await
    .unwrap();
    let listed = api
        .list_template_overrides(proto::ListTemplateOverridesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.template_overrides.len(), 1);
    let shown = preview(s, proto::TemplateKind::FriendlyReminder, "cus_1", "").await;
    assert!(shown.template_overridden);
    assert_eq!(shown.subject, "Psst, Customer cus_1");
    s.server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    s.deliver().await;
    let received = smtp.wait_for(1).await;
    assert_eq!(
        received[0].header("Subject").as_deref(),
        Some("Psst, Customer cus_1")
    );

    api.delete_template_override(proto::DeleteTemplateOverrideRequest {
        kind: proto::TemplateKind::FriendlyReminder as i32,
        locale: "en".into(),
    })
    .await
    .unwrap();
    assert!(
        !preview(s, proto::TemplateKind::FriendlyReminder, "cus_1", "")
            .await
            .template_overridden
    );
}

async fn a_resend_after_a_crash_keeps_the_message_id(s: &TestServer, smtp: &SmtpServer) {
    setup(s, customer("cus_1"), &["inv_1"]).await;
    let n = s
        .server()
        .services()
        .notifications
        .send_email(
            caller(s).await,
            &email(TemplateKind::FriendlyReminder, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    // A worker sent it and died before recording the outcome.
    s.server().mailer().send(&n).await.unwrap();
    // Another worker finds it still queued and sends it again.
    assert_eq!(s.deliver().await, 1);
    let received = smtp.wait_for(2).await;
    assert_eq!(
        received[0].header("Message-ID"),
        received[1].header("Message-ID")
    );
    assert_eq!(received[0].header("Message-ID"), Some(n.message_id));
}

/// A preview for a customer with nothing due is refused, not rendered as "0 invoices".
async fn a_preview_about_nothing_is_refused(s: &TestServer, _smtp: &SmtpServer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_none")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let refused = s
        .dunning()
        .preview_notification(proto::PreviewNotificationRequest {
            kind: proto::TemplateKind::FriendlyReminder as i32,
            locale: String::new(),
            customer: Some(preview_notification_request::Customer::CustomerExternalId(
                "cus_none".into(),
            )),
            invoice_external_ids: vec![],
            currency_code: "EUR".into(),
            process_id: String::new(),
        })
        .await;
    assert_error(refused, Code::FailedPrecondition, "NOTHING_DUE");
}

/// Turning the window off with `{"enabled": false}` alone releases the email waiting for it:
/// it goes out at the next delivery, without waiting for the old window to open.
async fn turning_quiet_hours_off_releases_waiting_emails(s: &TestServer, smtp: &SmtpServer) {
    let n = email_before_the_window(s).await;
    assert!(n.next_attempt_at.unwrap() > crate::common::start_time());
    assert_eq!(s.deliver().await, 0);
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                quiet_hours: Some(proto::QuietHours {
                    enabled: false,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["quiet_hours".into()],
            }),
        })
        .await
        .unwrap();
    let org = s
        .organizations()
        .get_organization(proto::GetOrganizationRequest {})
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let quiet = org.quiet_hours.unwrap();
    assert!(!quiet.enabled);
    assert_eq!(
        (quiet.start_time.as_str(), quiet.end_time.as_str()),
        ("08:00", "20:00")
    );
    assert_eq!(s.deliver().await, 1, "released at once");
    assert_eq!(smtp.wait_for(1).await.len(), 1);
}

on_both_backends_with_smtp!(
    turning_quiet_hours_off_releases_waiting_emails,
    a_preview_about_nothing_is_refused,
    delivered_exactly_as_previewed,
    locale_follows_the_customer_with_fallback,
    quiet_hours_hold_until_the_window_opens,
    permanent_rejection_is_not_retried,
    temporary_rejection_is_retried_with_backoff,
    no_email_address_is_suppressed,
    template_overrides_are_validated_and_used,
    a_resend_after_a_crash_keeps_the_message_id,
    deleting_the_customer_stops_and_erases_its_emails,
);

/// The SMTP server is down when the email is due, and comes up later on the same port.
async fn smtp_outage(backend: crate::common::Backend) {
    let port = SmtpServer::unused_port().await;
    let s = TestServer::start_with(backend, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))
    })
    .await;
    setup(&s, customer("cus_1"), &["inv_1"]).await;
    s.server()
        .services()
        .notifications
        .send_email(
            caller(&s).await,
            &email(TemplateKind::FriendlyReminder, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    let n = &notifications(&s).await[0];
    assert_eq!(
        (n.state, n.attempts),
        (proto::NotificationState::Queued as i32, 1)
    );
    assert!(!n.last_error.is_empty());
    let smtp = SmtpServer::start_on(port).await;
    s.clock.advance(Duration::seconds(40));
    assert_eq!(s.deliver().await, 1);
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    assert_eq!(
        notifications(&s).await[0].state,
        proto::NotificationState::Sent as i32
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_on_sqlite() {
    smtp_outage(crate::common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_on_postgres() {
    smtp_outage(crate::common::Backend::Postgres).await;
}

/// Without SMTP, messages land as `.eml` files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_writes_eml_files() {
    let s = TestServer::start(crate::common::Backend::Sqlite).await;
    setup(&s, customer("cus_1"), &["inv_1"]).await;
    let n = s
        .server()
        .services()
        .notifications
        .send_email(
            caller(&s).await,
            &email(TemplateKind::PaymentRequest, "cus_1", &["inv_1"]),
        )
        .await
        .unwrap();
    assert_eq!(s.deliver().await, 1);
    let file = std::fs::read_to_string(s.outbox_dir.join(format!("{}.eml", n.id))).unwrap();
    assert!(file.contains(&n.message_id));
    assert!(file.contains("Bcc: audit@acme.test"));
    assert_eq!(
        notifications(&s).await[0].state,
        proto::NotificationState::Sent as i32
    );
    s.stop().await;
}

/// Deleting a customer stops its queued emails and erases recipients and content.
async fn deleting_the_customer_stops_and_erases_its_emails(s: &TestServer, smtp: &SmtpServer) {
    setup(s, customer("cus_gone"), &["inv_1"]).await;
    setup(s, customer("cus_stays"), &["inv_2"]).await;
    let services = s.server().services();
    let c = caller(s).await;
    services
        .notifications
        .send_email(
            c,
            &email(TemplateKind::FriendlyReminder, "cus_gone", &["inv_1"]),
        )
        .await
        .unwrap();
    s.deliver().await;
    smtp.wait_for(1).await;
    services
        .notifications
        .send_email(
            c,
            &email(TemplateKind::FirmReminder, "cus_gone", &["inv_1"]),
        )
        .await
        .unwrap();
    services
        .notifications
        .send_email(
            c,
            &email(TemplateKind::FirmReminder, "cus_stays", &["inv_2"]),
        )
        .await
        .unwrap();
    s.customers()
        .delete_customer(proto::DeleteCustomerRequest {
            customer: Some(proto::delete_customer_request::Customer::ExternalId(
                "cus_gone".into(),
            )),
        })
        .await
        .unwrap();
    assert_eq!(
        s.deliver().await,
        1,
        "only the other customer's email is still due"
    );
    let received = smtp.wait_for(2).await;
    assert_eq!(
        received[1].header("To").as_deref(),
        Some("cus_stays@example.com")
    );
    let gone = s
        .dunning()
        .list_notifications(proto::ListNotificationsRequest {
            customer_external_id: "cus_gone".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    let states: Vec<_> = gone.iter().map(|n| n.state).collect();
    assert_eq!(
        states,
        vec![
            proto::NotificationState::Suppressed as i32,
            proto::NotificationState::Sent as i32
        ],
        "newest first"
    );
    assert_eq!(gone[0].suppressed_reason, "the customer was deleted");
    assert!(
        gone.iter()
            .all(|n| n.to_emails.is_empty() && n.subject.is_empty())
    );
    assert_error(
        s.dunning()
            .preview_notification(proto::PreviewNotificationRequest {
                kind: proto::TemplateKind::FriendlyReminder as i32,
                customer: Some(preview_notification_request::Customer::CustomerExternalId(
                    "cus_gone".into(),
                )),
                currency_code: "EUR".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "CUSTOMER_DELETED",
    );
}
