//! Payment requests through the gRPC API: rules, supersede, charges through the sandbox and
//! through a real HTTP payments service, emails to a real SMTP server, and the event log.

use crate::common::payments::{self, PaymentsServer};
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, assert_error, bad_fields, customer, invoice};
use chrono::Duration;
use dunning::proto::{self, create_payment_request_request::Customer as Who};
use tonic::Code;

const PENDING: i32 = proto::PaymentRequestStatus::Pending as i32;
const PROCESSING: i32 = proto::PaymentRequestStatus::Processing as i32;
const SUCCEEDED: i32 = proto::PaymentRequestStatus::Succeeded as i32;
const FAILED: i32 = proto::PaymentRequestStatus::Failed as i32;
const CANCELED: i32 = proto::PaymentRequestStatus::Canceled as i32;
const SUPERSEDED: i32 = proto::PaymentRequestStatus::Superseded as i32;

/// A customer with these invoices (external id, amount, currency, due date).
async fn setup(
    s: &TestServer,
    mut c: proto::Customer,
    method: Option<(&str, &str)>,
    invoices: &[(&str, &str, &str, &str)],
) {
    c.payment_method = method.map(|(provider, token)| proto::PaymentMethod {
        provider: provider.into(),
        token: token.into(),
    });
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap();
    for (ext, amount, currency, due) in invoices {
        let mut inv = invoice(ext, &c.external_id);
        inv.total_amount = amount.to_string();
        inv.currency_code = currency.to_string();
        inv.due_date = due.to_string();
        inv.issue_date = "2026-10-01".into();
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(inv) })
            .await
            .unwrap();
    }
}

const OVERDUE: &str = "2026-11-10";
const NOT_DUE: &str = "2026-12-10";

fn create_request(
    customer: &str,
    currency: &str,
    invoices: &[&str],
    request_id: &str,
) -> proto::CreatePaymentRequestRequest {
    proto::CreatePaymentRequestRequest {
        customer: Some(Who::CustomerExternalId(customer.into())),
        currency_code: currency.into(),
        invoice_external_ids: invoices.iter().map(|s| s.to_string()).collect(),
        invoice_ids: vec![],
        request_id: request_id.into(),
    }
}

async fn create(
    s: &TestServer,
    customer: &str,
    currency: &str,
    invoices: &[&str],
) -> proto::PaymentRequest {
    s.payment_requests()
        .create_payment_request(create_request(customer, currency, invoices, ""))
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap()
}

async fn get(s: &TestServer, id: &str) -> proto::PaymentRequest {
    s.payment_requests()
        .get_payment_request(proto::GetPaymentRequestRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap()
}

async fn invoice_state(s: &TestServer, ext: &str) -> (i32, String) {
    let i = s
        .invoices()
        .get_invoice(proto::GetInvoiceRequest {
            invoice: Some(proto::get_invoice_request::Invoice::ExternalId(ext.into())),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    (i.state, i.amount_due)
}

fn result(
    id: &str,
    outcome: proto::PaymentOutcome,
    request_id: &str,
) -> proto::RecordPaymentResultRequest {
    proto::RecordPaymentResultRequest {
        payment_request_id: id.into(),
        outcome: outcome as i32,
        decline_code: String::new(),
        decline_message: String::new(),
        hard_decline: false,
        provider_reference: "psp_123".into(),
        request_id: request_id.into(),
    }
}

async fn use_http_provider(s: &TestServer, url: &str, minimum: Option<(&str, &str)>) {
    use_provider(s, "http", url, minimum).await
}

async fn use_provider(s: &TestServer, provider: &str, url: &str, minimum: Option<(&str, &str)>) {
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                payment_provider: Some(proto::PaymentProviderSettings {
                    provider: provider.into(),
                    http_url: url.into(),
                    http_secret: payments::SECRET.into(),
                    minimum_charge_amounts: minimum
                        .map(|(c, a)| (c.to_string(), a.to_string()))
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["payment_provider".into()],
            }),
        })
        .await
        .unwrap();
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|t| *t == wanted).count()
}

/// No payment method: one email with the payment link, the request stays PENDING; only the
/// overdue invoices in the request's currency are included.
async fn no_payment_method_emails_the_link_once(s: &TestServer, smtp: &SmtpServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "250.50", "EUR", OVERDUE),
            ("inv_usd", "70.00", "USD", OVERDUE),
            ("inv_later", "10.00", "EUR", NOT_DUE),
        ],
    )
    .await;
    let created = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(created.status, PENDING);
    assert_eq!(created.amount, "350.50");
    assert_eq!(created.invoice_external_ids, vec!["inv_1", "inv_2"]);
    assert_eq!(
        created.payment_link,
        format!("https://pay.example.com/r/{}", created.id)
    );

    assert_eq!(s.process_payments().await, 1);
    assert_eq!(s.process_payments().await, 0, "nothing left to do");
    assert_eq!(s.deliver().await, 1);
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].rcpt_to, vec!["cus_1@example.com"]);
    assert!(
        mail[0].data.contains(&created.payment_link),
        "link in the email"
    );
    assert!(mail[0].data.contains("350.50") || mail[0].data.contains("350,50"));

    let after = get(s, &created.id).await;
    assert_eq!(after.status, PENDING);
    assert_eq!(after.attempt_count, 0);
    assert!(!after.email_notification_id.is_empty());
    let types = s.event_types().await;
    assert_eq!(count(&types, "payment_request.created"), 1);
    assert_eq!(count(&types, "notification.sent"), 1);
    assert_eq!(count(&types, "payment.attempted"), 0);
    assert_eq!(s.deliver().await, 0);
    assert_eq!(smtp.received().len(), 1, "exactly one email");
}

/// A request superseded before its email went out withdraws the email: the customer gets only
/// the newer request's link.
async fn superseded_request_withdraws_its_email(s: &TestServer, smtp: &SmtpServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[("inv_1", "100.00", "EUR", OVERDUE)],
    )
    .await;
    let older = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    let newer = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(get(s, &older.id).await.status, SUPERSEDED);
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(s.deliver().await, 1);
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].data.contains(&newer.payment_link));
    assert!(!mail[0].data.contains(&older.payment_link));
    let types = s.event_types().await;
    assert_eq!(count(&types, "notification.suppressed"), 1);
    assert_eq!(count(&types, "notification.sent"), 1);
}

/// The sandbox pays `tok_success`: every invoice settled, no email.
async fn sandbox_success_settles_every_invoice(s: &TestServer, smtp: &SmtpServer) {
    setup(
        s,
        customer("cus_1"),
        Some(("sandbox", "tok_success")),
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "50.25", "EUR", OVERDUE),
        ],
    )
    .await;
    let created = create(s, "cus_1", "EUR", &["inv_1", "inv_2"]).await;
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &created.id).await;
    assert_eq!(after.status, SUCCEEDED);
    assert_eq!(after.attempt_count, 1);
    assert!(after.provider_reference.starts_with("sandbox_payreq_"));
    assert!(after.settle_time.is_some());
    for ext in ["inv_1", "inv_2"] {
        assert_eq!(
            invoice_state(s, ext).await,
            (proto::InvoiceState::Paid as i32, "0.00".into())
        );
    }
    let types = s.event_types().await;
    for (t, n) in [
        ("payment.attempted", 1),
        ("payment.succeeded", 1),
        ("payment.recorded", 2),
        ("invoice.paid", 2),
        ("payment_request.settled", 1),
        ("payment.failed", 0),
    ] {
        assert_eq!(count(&types, t), n, "{t} in {types:?}");
    }
    let events = s.events().await;
    let attempt = events
        .iter()
        .find(|e| e.r#type == "payment.succeeded")
        .unwrap();
    match &attempt.payload {
        Some(proto::event::Payload::PaymentAttempt(p)) => {
            assert_eq!(p.amount, "150.25");
            assert_eq!(p.provider, "sandbox");
            assert_eq!(
                p.idempotency_key,
                format!("payreq_{}", created.id.replace('-', ""))
            );
        }
        other => panic!("unexpected payload {other:?}"),
    }
    assert_eq!(s.deliver().await, 0, "no email after a successful charge");
    assert!(smtp.received().is_empty());
}

/// Soft and hard declines: FAILED with the decline, one email each; a later reported result
/// never sends a second email, and a success still settles the request.
async fn declines_email_once_and_can_still_be_paid(s: &TestServer, smtp: &SmtpServer) {
    setup(
        s,
        customer("cus_soft"),
        Some(("sandbox", "tok_insufficient_funds")),
        &[("inv_soft", "80.00", "EUR", OVERDUE)],
    )
    .await;
    setup(
        s,
        customer("cus_hard"),
        Some(("sandbox", "tok_stolen_card")),
        &[("inv_hard", "90.00", "EUR", OVERDUE)],
    )
    .await;
    let soft = create(s, "cus_soft", "EUR", &[]).await;
    let hard = create(s, "cus_hard", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 2);
    let soft = get(s, &soft.id).await;
    let hard = get(s, &hard.id).await;
    assert_eq!(soft.status, FAILED);
    assert_eq!(soft.last_decline_code, "insufficient_funds");
    assert!(!soft.last_decline_hard);
    assert_eq!(hard.status, FAILED);
    assert_eq!(hard.last_decline_code, "stolen_card");
    assert!(hard.last_decline_hard);
    assert_eq!(s.deliver().await, 2);
    let mail = smtp.wait_for(2).await;
    let to: Vec<_> = mail.iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert!(to.contains(&"cus_soft@example.com".to_string()));
    assert!(to.contains(&"cus_hard@example.com".to_string()));

    // The payments service reports another failure: recorded, but no second email.
    let mut failed_again = result(&soft.id, proto::PaymentOutcome::Failed, "");
    failed_again.decline_code = "card_declined".into();
    let after = s
        .payment_requests()
        .record_payment_result(failed_again)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.payment_request.unwrap().last_decline_code,
        "card_declined"
    );
    assert_eq!(s.deliver().await, 0);

    // The customer pays through the link: the FAILED request settles.
    let paid = s
        .payment_requests()
        .record_payment_result(result(&soft.id, proto::PaymentOutcome::Succeeded, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.payment_request.unwrap().status, SUCCEEDED);
    assert_eq!(paid.invoices.len(), 1);
    assert_eq!(paid.invoices[0].state, proto::InvoiceState::Paid as i32);
    assert_eq!(smtp.received().len(), 2);

    let events = s.events().await;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.r#type == "payment.failed")
        .filter_map(|e| match &e.payload {
            Some(proto::event::Payload::PaymentAttempt(p)) => {
                Some((p.decline_code.clone(), p.hard_decline))
            }
            _ => None,
        })
        .collect();
    assert!(failures.contains(&("insufficient_funds".into(), false)));
    assert!(failures.contains(&("stolen_card".into(), true)));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.r#type == "payment_request.failed")
            .count(),
        3
    );
}

/// `tok_timeout`: the outcome stays unknown; the charge is asked again with the same key after
/// a backoff, at most 8 times; meanwhile the request can be neither canceled nor superseded.
async fn unknown_outcome_is_retried_then_waits_for_the_result(s: &TestServer) {
    setup(
        s,
        customer("cus_1"),
        Some(("sandbox", "tok_timeout")),
        &[("inv_1", "100.00", "EUR", OVERDUE)],
    )
    .await;
    let created = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &created.id).await;
    assert_eq!(after.status, PROCESSING);
    assert_eq!(after.attempt_count, 1);
    assert_eq!(
        s.process_payments().await,
        0,
        "the retry waits for its backoff"
    );

    assert_error(
        s.payment_requests()
            .cancel_payment_request(proto::CancelPaymentRequestRequest {
                id: created.id.clone(),
                reason: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "PAYMENT_REQUEST_NOT_CANCELABLE",
    );
    assert_error(
        s.payment_requests()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_1"], ""))
            .await,
        Code::FailedPrecondition,
        "PAYMENT_IN_PROGRESS",
    );

    for call in 2..=8 {
        s.clock.advance(Duration::hours(2));
        assert_eq!(s.process_payments().await, 1, "call {call}");
        assert_eq!(get(s, &created.id).await.attempt_count, call);
    }
    s.clock.advance(Duration::hours(2));
    assert_eq!(s.process_payments().await, 0, "retries exhausted");
    let after = get(s, &created.id).await;
    assert_eq!(after.status, PROCESSING);
    let events = s.events().await;
    let keys: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(proto::event::Payload::PaymentAttempt(p)) => Some((
                e.r#type.clone(),
                p.idempotency_key.clone(),
                p.decline_code.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0].0, "payment.attempted");
    assert_eq!(
        (keys[1].0.as_str(), keys[1].2.as_str()),
        ("payment.failed", "unknown")
    );
    assert_eq!(keys[0].1, keys[1].1, "one key for every call");

    // The payments service learns the outcome and reports it.
    let settled = s
        .payment_requests()
        .record_payment_result(result(&created.id, proto::PaymentOutcome::Succeeded, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settled.payment_request.unwrap().status, SUCCEEDED);
    assert_eq!(
        invoice_state(s, "inv_1").await.0,
        proto::InvoiceState::Paid as i32
    );
}

/// The http provider: a signed JSON POST with an Idempotency-Key; a call that times out after
/// the charge was made is asked again with the same key and the customer is charged once; a
/// 500 is retried too.
async fn http_provider_charges_once_across_unknown_outcomes(s: &TestServer, smtp: &SmtpServer) {
    let psp = PaymentsServer::start().await;
    use_http_provider(s, &psp.url, None).await;
    setup(
        s,
        customer("cus_1"),
        Some(("http", "pm_visa_4242")),
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "20.10", "EUR", OVERDUE),
        ],
    )
    .await;
    psp.set_mode(payments::Mode::ChargeThenHang);
    let created = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(
        psp.charges_made(),
        1,
        "the service charged, the answer was lost"
    );
    assert_eq!(get(s, &created.id).await.status, PROCESSING);

    psp.set_mode(payments::Mode::Succeed);
    s.clock.advance(Duration::minutes(2));
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &created.id).await;
    assert_eq!(after.status, SUCCEEDED);
    assert_eq!(after.provider_reference, "ch_1");
    assert_eq!(after.attempt_count, 2);
    assert_eq!(psp.charges_made(), 1, "exactly one successful charge");
    let calls = psp.requests();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.signature_valid));
    assert_eq!(calls[0].idempotency_key, calls[1].idempotency_key);
    assert_eq!(calls[0].body["amount"], "120.10");
    assert_eq!(calls[0].body["amount_minor"], 12010);
    assert_eq!(calls[0].body["currency_code"], "EUR");
    assert_eq!(calls[0].body["payment_method_token"], "pm_visa_4242");
    assert_eq!(calls[0].body["payment_request_id"], created.id.as_str());

    // A 500 is an unknown outcome too: retried, then paid.
    setup(
        s,
        customer("cus_2"),
        Some(("http", "pm_mc_5555")),
        &[("inv_3", "30.00", "EUR", OVERDUE)],
    )
    .await;
    psp.set_mode(payments::Mode::ServerError);
    let second = create(s, "cus_2", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(get(s, &second.id).await.status, PROCESSING);
    psp.set_mode(payments::Mode::Succeed);
    s.clock.advance(Duration::minutes(2));
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(get(s, &second.id).await.status, SUCCEEDED);
    assert_eq!(psp.charges_made(), 2);
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty(), "paid requests send no email");
}

/// While a charge is in flight: a retry goes to the payment method of the first call even if
/// the customer's changed; a success books exactly the amount charged even if an invoice grew
/// meanwhile; a decline after the invoices were voided closes the request without an email.
async fn changes_during_a_charge(s: &TestServer, smtp: &SmtpServer) {
    let psp = PaymentsServer::start().await;
    use_http_provider(s, &psp.url, None).await;
    setup(
        s,
        customer("cus_1"),
        Some(("http", "pm_old")),
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "50.00", "EUR", OVERDUE),
        ],
    )
    .await;
    psp.set_mode(payments::Mode::ServerError);
    let charged = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(get(s, &charged.id).await.status, PROCESSING);

    // The customer's card changes and inv_2 grows while the outcome is unknown.
    let mut changed = customer("cus_1");
    changed.payment_method = Some(proto::PaymentMethod {
        provider: "http".into(),
        token: "pm_new".into(),
    });
    s.customers()
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(changed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["payment_method".into()],
            }),
        })
        .await
        .unwrap();
    let mut grown = invoice("inv_2", "cus_1");
    grown.total_amount = "80.00".into();
    grown.issue_date = "2026-10-01".into();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(grown),
        })
        .await
        .unwrap();
    assert_eq!(
        get(s, &charged.id).await.amount,
        "150.00",
        "fixed while charging"
    );

    psp.set_mode(payments::Mode::Succeed);
    s.clock.advance(Duration::minutes(2));
    assert_eq!(s.process_payments().await, 1);
    let calls = psp.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["payment_method_token"], "pm_old");
    assert_eq!(calls[1].body["amount"], "150.00");
    assert_eq!(get(s, &charged.id).await.status, SUCCEEDED);
    assert_eq!(
        invoice_state(s, "inv_1").await,
        (proto::InvoiceState::Paid as i32, "0.00".into())
    );
    assert_eq!(
        invoice_state(s, "inv_2").await,
        (proto::InvoiceState::Open as i32, "30.00".into()),
        "only what was charged is booked"
    );

    // A decline that arrives after every invoice was voided: nothing to ask for any more.
    setup(
        s,
        customer("cus_2"),
        Some(("http", "pm_2")),
        &[("inv_3", "20.00", "EUR", OVERDUE)],
    )
    .await;
    psp.set_mode(payments::Mode::ServerError);
    let voided = create(s, "cus_2", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    s.invoices()
        .void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_3".into(),
            )),
            reason: "duplicate".into(),
        })
        .await
        .unwrap();
    assert_eq!(get(s, &voided.id).await.status, PROCESSING);
    psp.set_mode(payments::Mode::Decline {
        code: "card_declined".into(),
        hard: false,
    });
    s.clock.advance(Duration::minutes(2));
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &voided.id).await;
    assert_eq!(after.status, CANCELED);
    assert_eq!(after.last_decline_code, "card_declined");
    assert!(after.email_notification_id.is_empty());
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty());
}

/// The http provider declines (email with the link) or answers pending (the result arrives
/// later through RecordPaymentResult).
async fn http_provider_decline_and_pending(s: &TestServer, smtp: &SmtpServer) {
    let psp = PaymentsServer::start().await;
    use_http_provider(s, &psp.url, None).await;
    setup(
        s,
        customer("cus_1"),
        Some(("http", "pm_1")),
        &[("inv_1", "100.00", "EUR", OVERDUE)],
    )
    .await;
    setup(
        s,
        customer("cus_2"),
        Some(("http", "pm_2")),
        &[("inv_2", "40.00", "EUR", OVERDUE)],
    )
    .await;
    psp.set_mode(payments::Mode::Decline {
        code: "do_not_honor".into(),
        hard: true,
    });
    let declined = create(s, "cus_1", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &declined.id).await;
    assert_eq!(after.status, FAILED);
    assert_eq!(after.last_decline_code, "do_not_honor");
    assert!(after.last_decline_hard);
    assert_eq!(s.deliver().await, 1);
    let mail = smtp.wait_for(1).await;
    assert!(mail[0].data.contains(&declined.payment_link));

    psp.set_mode(payments::Mode::Pending);
    let pending = create(s, "cus_2", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    let after = get(s, &pending.id).await;
    assert_eq!(after.status, PROCESSING);
    assert_eq!(after.provider_reference, "ch_pending");
    s.clock.advance(Duration::hours(3));
    assert_eq!(
        s.process_payments().await,
        0,
        "pending waits for the reported result"
    );
    let settled = s
        .payment_requests()
        .record_payment_result(result(
            &pending.id,
            proto::PaymentOutcome::Succeeded,
            "res-1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settled.payment_request.unwrap().status, SUCCEEDED);
    assert_eq!(s.deliver().await, 0);
    assert_eq!(smtp.received().len(), 1);
}

/// Below the provider's minimum for the currency the charge is not attempted; the customer is
/// emailed instead. At or above it, the charge is made.
async fn below_minimum_is_emailed_not_charged(s: &TestServer, smtp: &SmtpServer) {
    use_provider(s, "sandbox", "", Some(("EUR", "0.50"))).await;
    setup(
        s,
        customer("cus_small"),
        Some(("sandbox", "tok_success")),
        &[("inv_small", "0.49", "EUR", OVERDUE)],
    )
    .await;
    setup(
        s,
        customer("cus_edge"),
        Some(("sandbox", "tok_success")),
        &[("inv_edge", "0.50", "EUR", OVERDUE)],
    )
    .await;
    let small = create(s, "cus_small", "EUR", &[]).await;
    let edge = create(s, "cus_edge", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 2);
    let small = get(s, &small.id).await;
    assert_eq!(small.status, PENDING);
    assert_eq!(small.attempt_count, 0);
    assert!(!small.email_notification_id.is_empty());
    assert_eq!(get(s, &edge.id).await.status, SUCCEEDED);
    assert_eq!(s.deliver().await, 1);
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail[0].rcpt_to, vec!["cus_small@example.com"]);
}

/// A customer without an email and without a payment method: the email is suppressed (and
/// says why in an event); nothing is charged.
async fn customer_without_email(s: &TestServer, smtp: &SmtpServer) {
    let mut c = customer("cus_quiet");
    c.email = String::new();
    setup(s, c, None, &[("inv_1", "10.00", "EUR", OVERDUE)]).await;
    let created = create(s, "cus_quiet", "EUR", &[]).await;
    assert_eq!(s.process_payments().await, 1);
    assert_eq!(get(s, &created.id).await.status, PENDING);
    assert_eq!(s.deliver().await, 0);
    assert!(smtp.received().is_empty());
    let types = s.event_types().await;
    assert_eq!(count(&types, "notification.suppressed"), 1);
}

/// Every rule of CreatePaymentRequest, with the offending invoices named.
async fn create_rules(s: &TestServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_later", "10.00", "EUR", NOT_DUE),
            ("inv_usd", "70.00", "USD", OVERDUE),
        ],
    )
    .await;
    setup(
        s,
        customer("cus_2"),
        None,
        &[("inv_other", "5.00", "EUR", OVERDUE)],
    )
    .await;
    setup(s, customer("cus_empty"), None, &[]).await;
    let prs = s.payment_requests();

    let status = assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_1", "inv_later"], ""))
            .await,
        Code::FailedPrecondition,
        "INVOICE_NOT_OVERDUE",
    );
    assert!(status.message().contains("inv_later"), "{status:?}");
    let status = assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_1", "inv_usd"], ""))
            .await,
        Code::InvalidArgument,
        "MIXED_CURRENCIES",
    );
    assert!(status.message().contains("inv_usd"));
    let status = assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_other"], ""))
            .await,
        Code::InvalidArgument,
        "INVOICE_OF_OTHER_CUSTOMER",
    );
    assert!(status.message().contains("inv_other"));
    let status = assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_1", "nope"], ""))
            .await,
        Code::NotFound,
        "INVOICE_NOT_FOUND",
    );
    assert!(status.message().contains("nope"));
    assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_empty", "EUR", &[], ""))
            .await,
        Code::FailedPrecondition,
        "NO_OVERDUE_INVOICES",
    );
    assert_error(
        prs.clone()
            .create_payment_request(create_request("ghost", "EUR", &[], ""))
            .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    let mut bad = create_request("cus_1", "", &[""], "");
    bad.invoice_ids = vec!["not-a-uuid".into()];
    let status = assert_error(
        prs.clone().create_payment_request(bad).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    let fields = bad_fields(&status);
    for f in ["currency_code", "invoice_external_ids[0]", "invoice_ids[0]"] {
        assert!(fields.contains(&f.to_string()), "{f} in {fields:?}");
    }
    let mut no_customer = create_request("x", "EUR", &[], "");
    no_customer.customer = None;
    let status = assert_error(
        prs.clone().create_payment_request(no_customer).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["customer_external_id"]);
    assert!(
        s.event_types()
            .await
            .iter()
            .all(|t| !t.starts_with("payment_request"))
    );

    // Deleted customers get no requests; other organizations see none of ours.
    let created = create(s, "cus_1", "EUR", &[]).await;
    let other = s.other_organization("globex").await;
    let foreign = dunning::proto::payment_request_service_client::PaymentRequestServiceClient::with_interceptor(
        s.channel.clone(),
        s.auth(&other),
    );
    assert_error(
        foreign
            .clone()
            .get_payment_request(proto::GetPaymentRequestRequest {
                id: created.id.clone(),
            })
            .await,
        Code::NotFound,
        "PAYMENT_REQUEST_NOT_FOUND",
    );
    s.customers()
        .delete_customer(proto::DeleteCustomerRequest {
            customer: Some(proto::delete_customer_request::Customer::ExternalId(
                "cus_1".into(),
            )),
        })
        .await
        .unwrap();
    assert_eq!(
        get(s, &created.id).await.status,
        CANCELED,
        "deleting cancels"
    );
    assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &[], ""))
            .await,
        Code::FailedPrecondition,
        "CUSTOMER_DELETED",
    );
}

/// A new request supersedes the open one covering the same invoice; create is idempotent by
/// request_id; lists filter and page.
async fn supersede_idempotency_and_listing(s: &TestServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "200.00", "EUR", OVERDUE),
            ("inv_usd", "70.00", "USD", OVERDUE),
        ],
    )
    .await;
    let prs = s.payment_requests();
    let first = prs
        .clone()
        .create_payment_request(create_request("cus_1", "EUR", &["inv_1", "inv_2"], "req-1"))
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap();
    let again = prs
        .clone()
        .create_payment_request(create_request("cus_1", "EUR", &["inv_1", "inv_2"], "req-1"))
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap();
    assert_eq!(again.id, first.id, "a retry returns the original request");
    assert_error(
        prs.clone()
            .create_payment_request(create_request("cus_1", "EUR", &["inv_1"], "req-1"))
            .await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );

    let second = create(s, "cus_1", "EUR", &["inv_2"]).await;
    let first = get(s, &first.id).await;
    assert_eq!(first.status, SUPERSEDED);
    assert_eq!(first.superseded_by_id, second.id);
    assert!(first.settle_time.is_some());
    assert_eq!(second.amount, "200.00");
    // inv_1 is free again: a third request may take it without touching the second.
    let third = create(s, "cus_1", "EUR", &["inv_1"]).await;
    assert_eq!(get(s, &second.id).await.status, PENDING);
    let usd = create(s, "cus_1", "USD", &[]).await;

    let types = s.event_types().await;
    assert_eq!(count(&types, "payment_request.created"), 4);
    assert_eq!(count(&types, "payment_request.superseded"), 1);

    let list = |req: proto::ListPaymentRequestsRequest| {
        let prs = prs.clone();
        async move {
            prs.clone()
                .list_payment_requests(req)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let all = list(proto::ListPaymentRequestsRequest {
        customer_external_id: "cus_1".into(),
        ..Default::default()
    })
    .await;
    let ids: Vec<_> = all.payment_requests.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        vec![
            usd.id.clone(),
            third.id.clone(),
            second.id.clone(),
            first.id.clone()
        ]
    );
    let pending_eur = list(proto::ListPaymentRequestsRequest {
        status: PENDING,
        currency_code: "EUR".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(pending_eur.payment_requests.len(), 2);
    let page1 = list(proto::ListPaymentRequestsRequest {
        page_size: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(page1.payment_requests.len(), 3);
    let page2 = list(proto::ListPaymentRequestsRequest {
        page_size: 3,
        page_token: page1.next_page_token.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(page2.payment_requests.len(), 1);
    assert!(page2.next_page_token.is_empty());
    assert_error(
        prs.clone()
            .list_payment_requests(proto::ListPaymentRequestsRequest {
                status: 99,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
}

/// Invoices paid or voided by other means shrink the open request, then close it.
async fn paid_elsewhere_shrinks_then_settles(s: &TestServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "200.00", "EUR", OVERDUE),
            ("inv_void", "15.00", "EUR", OVERDUE),
        ],
    )
    .await;
    let request = create(s, "cus_1", "EUR", &["inv_1", "inv_2"]).await;
    let voidable = create(s, "cus_1", "EUR", &["inv_void"]).await;
    let pay = |ext: &str, id: &str, amount: &str| proto::RecordPaymentRequest {
        invoice: Some(proto::record_payment_request::Invoice::InvoiceExternalId(
            ext.into(),
        )),
        payment_external_id: id.into(),
        amount: amount.into(),
        currency_code: "EUR".into(),
        ..Default::default()
    };
    s.invoices()
        .record_payment(pay("inv_1", "bank-1", "40.00"))
        .await
        .unwrap();
    let after = get(s, &request.id).await;
    assert_eq!(after.amount, "260.00");
    assert_eq!(after.status, PENDING);
    s.invoices()
        .record_payment(pay("inv_1", "bank-2", "60.00"))
        .await
        .unwrap();
    // A credit note from the billing system settles the rest.
    let mut credited = invoice("inv_2", "cus_1");
    credited.total_amount = "200.00".into();
    credited.credited_amount = "200.00".into();
    credited.issue_date = "2026-10-01".into();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(credited),
        })
        .await
        .unwrap();
    let after = get(s, &request.id).await;
    assert_eq!(after.status, SUCCEEDED);
    assert!(after.settle_time.is_some());

    s.invoices()
        .void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_void".into(),
            )),
            reason: "issued in error".into(),
        })
        .await
        .unwrap();
    let voided = get(s, &voidable.id).await;
    assert_eq!(voided.status, CANCELED);
    assert_eq!(
        voided.cancel_reason,
        "nothing is left due: its invoices were voided or credited"
    );

    let types = s.event_types().await;
    assert_eq!(count(&types, "payment_request.amount_changed"), 2);
    assert_eq!(count(&types, "payment_request.settled"), 1);
    assert_eq!(count(&types, "payment_request.canceled"), 1);
    // Nothing left to charge or email for closed requests.
    assert_eq!(s.process_payments().await, 0);
    assert_eq!(s.deliver().await, 0);
}

/// RecordPaymentResult is idempotent by request_id and refuses settled requests;
/// CancelPaymentRequest is idempotent and refuses settled ones.
async fn results_and_cancel_rules(s: &TestServer) {
    setup(
        s,
        customer("cus_1"),
        None,
        &[
            ("inv_1", "100.00", "EUR", OVERDUE),
            ("inv_2", "10.00", "EUR", OVERDUE),
        ],
    )
    .await;
    let paid = create(s, "cus_1", "EUR", &["inv_1"]).await;
    let prs = s.payment_requests();
    let first = prs
        .clone()
        .record_payment_result(result(&paid.id, proto::PaymentOutcome::Succeeded, "res-1"))
        .await
        .unwrap()
        .into_inner();
    let repeat = prs
        .clone()
        .record_payment_result(result(&paid.id, proto::PaymentOutcome::Succeeded, "res-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.payment_request, repeat.payment_request);
    assert_eq!(repeat.invoices[0].paid_amount, "100.00", "paid once");
    assert_error(
        prs.clone()
            .record_payment_result(result(&paid.id, proto::PaymentOutcome::Failed, "res-1"))
            .await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );
    assert_error(
        prs.clone()
            .record_payment_result(result(&paid.id, proto::PaymentOutcome::Succeeded, ""))
            .await,
        Code::FailedPrecondition,
        "PAYMENT_REQUEST_ALREADY_SETTLED",
    );
    let status = assert_error(
        prs.clone()
            .record_payment_result(result(&paid.id, proto::PaymentOutcome::Unspecified, ""))
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["outcome"]);
    assert_error(
        prs.clone()
            .cancel_payment_request(proto::CancelPaymentRequestRequest {
                id: paid.id.clone(),
                reason: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "PAYMENT_REQUEST_NOT_CANCELABLE",
    );
    let payments = s
        .invoices()
        .list_payments(proto::ListPaymentsRequest {
            invoice: Some(proto::list_payments_request::Invoice::InvoiceExternalId(
                "inv_1".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .payments;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].reference, "psp_123");

    let open = create(s, "cus_1", "EUR", &["inv_2"]).await;
    let cancel = proto::CancelPaymentRequestRequest {
        id: open.id.clone(),
        reason: "customer disputes by phone".into(),
    };
    let canceled = prs
        .clone()
        .cancel_payment_request(cancel.clone())
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap();
    assert_eq!(canceled.status, CANCELED);
    assert_eq!(canceled.cancel_reason, "customer disputes by phone");
    let again = prs
        .clone()
        .cancel_payment_request(cancel)
        .await
        .unwrap()
        .into_inner()
        .payment_request
        .unwrap();
    assert_eq!(again, canceled);
    assert_eq!(count(&s.event_types().await, "payment_request.canceled"), 1);
    // A canceled request's invoice can be requested again.
    create(s, "cus_1", "EUR", &["inv_2"]).await;
    assert_error(
        prs.clone()
            .get_payment_request(proto::GetPaymentRequestRequest { id: "x".into() })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
}

/// Two replicas working on the same due requests at once: each request is claimed by one of
/// them, so every customer is charged exactly once. PostgreSQL only: replicas share a
/// PostgreSQL database; an SQLite file belongs to one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_charge_each_request_once() {
    let server = TestServer::start(crate::common::Backend::Postgres).await;
    let s = &server;
    let psp = PaymentsServer::start().await;
    use_http_provider(s, &psp.url, None).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let cus = format!("cus_{n}");
        let inv = format!("inv_{n}");
        setup(
            s,
            customer(&cus),
            Some(("http", "pm_ok")),
            &[(inv.as_str(), "12.00", "EUR", OVERDUE)],
        )
        .await;
        ids.push(create(s, &cus, "EUR", &[]).await.id);
    }
    let (replica, _) = s.second_replica().await;
    let (mine, theirs) = tokio::join!(
        s.process_payments(),
        replica
            .engine()
            .process_due_payment_requests(replica.payment_providers())
    );
    assert_eq!(mine + theirs.unwrap(), 6, "each request worked on once");
    assert_eq!(psp.requests().len(), 6, "one call per request");
    assert_eq!(psp.charges_made(), 6);
    for id in &ids {
        assert_eq!(get(s, id).await.status, SUCCEEDED);
    }
    replica.shutdown().await;
    server.stop().await;
}

on_both_backends_with_smtp!(
    no_payment_method_emails_the_link_once,
    superseded_request_withdraws_its_email,
    sandbox_success_settles_every_invoice,
    declines_email_once_and_can_still_be_paid,
    http_provider_charges_once_across_unknown_outcomes,
    http_provider_decline_and_pending,
    changes_during_a_charge,
    below_minimum_is_emailed_not_charged,
    customer_without_email,
);

mod without_smtp {
    use super::*;
    on_both_backends!(
        unknown_outcome_is_retried_then_waits_for_the_result,
        create_rules,
        supersede_idempotency_and_listing,
        paid_elsewhere_shrinks_then_settles,
        results_and_cancel_rules,
    );
}
