//! Invoices, payments, overdue balances and the overdue scanner through the gRPC API.

use crate::common::{TestServer, assert_error, bad_fields, customer, invoice};
use chrono::Duration;
use dunning::proto::{
    self, get_invoice_request, get_overdue_balance_request, record_payment_request,
};
use prost_types::FieldMask;
use tonic::Code;

async fn create_customer(s: &TestServer, c: proto::Customer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

async fn upsert(s: &TestServer, i: proto::Invoice) -> proto::UpsertInvoiceResponse {
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(i) })
        .await
        .unwrap()
        .into_inner()
}

async fn get(s: &TestServer, external_id: &str) -> proto::Invoice {
    s.invoices()
        .get_invoice(proto::GetInvoiceRequest {
            invoice: Some(get_invoice_request::Invoice::ExternalId(external_id.into())),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
}

fn payment(invoice: &str, id: &str, amount: &str, currency: &str) -> proto::RecordPaymentRequest {
    proto::RecordPaymentRequest {
        invoice: Some(record_payment_request::Invoice::InvoiceExternalId(
            invoice.into(),
        )),
        payment_external_id: id.into(),
        amount: amount.into(),
        currency_code: currency.into(),
        ..Default::default()
    }
}

async fn balance(s: &TestServer, customer: &str) -> Vec<(String, String, i32, String)> {
    s.customers()
        .get_overdue_balance(proto::GetOverdueBalanceRequest {
            customer: Some(get_overdue_balance_request::Customer::ExternalId(
                customer.into(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .balances
        .into_iter()
        .map(|b| {
            (
                b.currency_code,
                b.amount_due,
                b.invoice_count,
                b.oldest_due_date,
            )
        })
        .collect()
}

async fn invoice_lifecycle(s: &TestServer) {
    create_customer(s, customer("cus_1")).await;
    let first = upsert(s, invoice("inv_1", "cus_1")).await;
    assert!(first.created);
    let inv = first.invoice.unwrap();
    assert_eq!(
        (inv.amount_due.as_str(), inv.paid_amount.as_str()),
        ("100.00", "0.00")
    );
    assert_eq!(inv.state, proto::InvoiceState::Open as i32);
    assert_eq!(
        inv.collection_method,
        proto::CollectionMethod::Manual as i32
    );
    assert!(inv.overdue, "due 2026-11-10, now 2026-11-24");
    assert_eq!(inv.days_overdue, 14);

    // Same content again: unchanged, no event. Changed content: updated.
    assert!(!upsert(s, invoice("inv_1", "cus_1")).await.created);
    let mut changed = invoice("inv_1", "cus_1");
    changed.total_amount = "120.00".into();
    changed.credited_amount = "20.00".into();
    let updated = upsert(s, changed.clone()).await.invoice.unwrap();
    assert_eq!(updated.amount_due, "100.00");

    // Partial, idempotent, over- and mis-currency payments.
    let mut api = s.invoices();
    let paid = api
        .record_payment(payment("inv_1", "pay_1", "30.00", "EUR"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.invoice.as_ref().unwrap().amount_due, "70.00");
    let retry = api
        .record_payment(payment("inv_1", "pay_1", "30.00", "EUR"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        retry.payment, paid.payment,
        "a retried payment is the same payment"
    );
    assert_eq!(
        retry.invoice.unwrap().amount_due,
        "70.00",
        "and is not applied twice"
    );
    assert_error(
        api.record_payment(payment("inv_1", "pay_1", "31.00", "EUR"))
            .await,
        Code::AlreadyExists,
        "PAYMENT_ALREADY_EXISTS",
    );
    assert_error(
        api.record_payment(payment("inv_1", "pay_2", "70.01", "EUR"))
            .await,
        Code::FailedPrecondition,
        "OVERPAYMENT",
    );
    let status = assert_error(
        api.record_payment(payment("inv_1", "pay_2", "10.00", "USD"))
            .await,
        Code::InvalidArgument,
        "CURRENCY_MISMATCH",
    );
    assert_eq!(bad_fields(&status), vec!["currency_code"]);
    // Lowering the total below what is settled is refused.
    let mut too_low = changed.clone();
    too_low.total_amount = "40.00".into();
    assert_error(
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(too_low),
            })
            .await,
        Code::FailedPrecondition,
        "AMOUNT_BELOW_SETTLED",
    );
    let settled = api
        .record_payment(payment("inv_1", "pay_2", "70.00", "EUR"))
        .await
        .unwrap()
        .into_inner();
    let settled = settled.invoice.unwrap();
    assert_eq!(settled.state, proto::InvoiceState::Paid as i32);
    assert!(!settled.overdue);
    assert!(settled.paid_time.is_some());
    assert_error(
        api.record_payment(payment("inv_1", "pay_3", "1.00", "EUR"))
            .await,
        Code::FailedPrecondition,
        "INVOICE_NOT_OPEN",
    );
    let payments = api
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
    assert_eq!(
        payments
            .iter()
            .map(|p| p.amount.as_str())
            .collect::<Vec<_>>(),
        vec!["30.00", "70.00"]
    );

    // Void, flags.
    upsert(s, invoice("inv_2", "cus_1")).await;
    let flagged = api
        .update_invoice(proto::UpdateInvoiceRequest {
            invoice: Some(proto::Invoice {
                external_id: "inv_2".into(),
                disputed: true,
                dunning_blocked: true,
                dunning_block_reason: "customer called".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec![
                    "disputed".into(),
                    "dunning_blocked".into(),
                    "dunning_block_reason".into(),
                ],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert!(flagged.disputed && flagged.dunning_blocked);
    assert!(!flagged.overdue, "disputed invoices are not overdue");
    let voided = api
        .void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_2".into(),
            )),
            reason: "duplicate".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(voided.state, proto::InvoiceState::Void as i32);
    match &s.events().await.last().unwrap().payload {
        Some(proto::event::Payload::Invoice(p)) => assert_eq!(p.reason, "duplicate"),
        other => panic!("unexpected payload {other:?}"),
    }
    let mut revive = invoice("inv_2", "cus_1");
    revive.total_amount = "5.00".into();
    assert_error(
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(revive),
            })
            .await,
        Code::FailedPrecondition,
        "INVOICE_NOT_OPEN",
    );
    assert_error(
        api.void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_1".into(),
            )),
            reason: String::new(),
        })
        .await,
        Code::FailedPrecondition,
        "INVOICE_NOT_OPEN",
    );

    assert_eq!(
        s.event_types().await,
        vec![
            "customer.created",
            "invoice.created",
            "invoice.updated",
            "payment.recorded",
            "payment.recorded",
            "invoice.paid",
            "invoice.created",
            "invoice.updated",
            "invoice.voided",
        ]
    );
}

async fn list_filters(s: &TestServer) {
    create_customer(s, customer("cus_1")).await;
    create_customer(s, customer("cus_2")).await;
    let mut usd = invoice("inv_usd", "cus_1");
    usd.currency_code = "USD".into();
    usd.due_date = "2026-12-31".into();
    upsert(s, usd).await;
    upsert(s, invoice("inv_eur", "cus_1")).await;
    upsert(s, invoice("inv_other", "cus_2")).await;
    let mut api = s.invoices();
    let ids = |r: proto::ListInvoicesResponse| {
        r.invoices
            .into_iter()
            .map(|i| i.external_id)
            .collect::<Vec<_>>()
    };
    let list = |req: proto::ListInvoicesRequest| {
        let mut api = api.clone();
        async move { api.list_invoices(req).await.unwrap().into_inner() }
    };
    assert_eq!(
        ids(list(proto::ListInvoicesRequest {
            customer_external_id: "cus_1".into(),
            ..Default::default()
        })
        .await),
        vec!["inv_usd", "inv_eur"]
    );
    assert_eq!(
        ids(list(proto::ListInvoicesRequest {
            currency_code: "USD".into(),
            ..Default::default()
        })
        .await),
        vec!["inv_usd"]
    );
    assert_eq!(
        ids(list(proto::ListInvoicesRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await),
        vec!["inv_eur", "inv_other"]
    );
    assert_eq!(
        ids(list(proto::ListInvoicesRequest {
            due_date_from: "2026-12-01".into(),
            due_date_to: "2026-12-31".into(),
            ..Default::default()
        })
        .await),
        vec!["inv_usd"]
    );
    let page = api
        .list_invoices(proto::ListInvoicesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.invoices.len(), 2);
    let rest = api
        .list_invoices(proto::ListInvoicesRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(rest.clone()), vec!["inv_other"]);
    assert!(rest.next_page_token.is_empty());
    assert_error(
        api.list_invoices(proto::ListInvoicesRequest {
            customer_external_id: "nobody".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
}

async fn overdue_balance_per_currency(s: &TestServer) {
    create_customer(s, customer("cus_1")).await;
    // Overdue EUR 100 + EUR 250.50 (of which 50.50 paid and 20 credited) = EUR 280.00.
    upsert(s, invoice("eur_1", "cus_1")).await;
    let mut eur_2 = invoice("eur_2", "cus_1");
    eur_2.total_amount = "250.50".into();
    eur_2.credited_amount = "20.00".into();
    eur_2.due_date = "2026-11-01".into();
    upsert(s, eur_2).await;
    s.invoices()
        .record_payment(payment("eur_2", "p1", "50.50", "EUR"))
        .await
        .unwrap();
    // Not overdue: due in the future, disputed, paid, void, or fully credited.
    let mut future = invoice("eur_future", "cus_1");
    future.due_date = "2026-11-24".into();
    upsert(s, future).await;
    let mut disputed = invoice("eur_disputed", "cus_1");
    disputed.disputed = true;
    upsert(s, disputed).await;
    let mut void = invoice("eur_void", "cus_1");
    void.state = proto::InvoiceState::Void as i32;
    upsert(s, void).await;
    let mut credited = invoice("eur_credited", "cus_1");
    credited.credited_amount = "100.00".into();
    upsert(s, credited).await;
    upsert(s, invoice("eur_paid", "cus_1")).await;
    s.invoices()
        .record_payment(payment("eur_paid", "p2", "100.00", "EUR"))
        .await
        .unwrap();
    // JPY and KWD are never added to EUR.
    let mut jpy = invoice("jpy_1", "cus_1");
    jpy.currency_code = "JPY".into();
    jpy.total_amount = "12000".into();
    upsert(s, jpy).await;
    let mut kwd = invoice("kwd_1", "cus_1");
    kwd.currency_code = "KWD".into();
    kwd.total_amount = "10.125".into();
    kwd.issue_date = "2026-09-01".into();
    kwd.due_date = "2026-10-01".into();
    upsert(s, kwd).await;

    assert_eq!(
        balance(s, "cus_1").await,
        vec![
            ("EUR".into(), "280.00".into(), 2, "2026-11-01".into()),
            ("JPY".into(), "12000".into(), 1, "2026-11-10".into()),
            ("KWD".into(), "10.125".into(), 1, "2026-10-01".into()),
        ]
    );
    // Resolving the dispute brings the invoice into the balance at once.
    s.invoices()
        .update_invoice(proto::UpdateInvoiceRequest {
            invoice: Some(proto::Invoice {
                external_id: "eur_disputed".into(),
                disputed: false,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disputed".into()],
            }),
        })
        .await
        .unwrap();
    assert_eq!(
        balance(s, "cus_1").await[0],
        ("EUR".into(), "380.00".into(), 3, "2026-11-01".into())
    );
    // The balance and the overdue list agree: one definition.
    let listed = s
        .invoices()
        .list_invoices(proto::ListInvoicesRequest {
            customer_external_id: "cus_1".into(),
            overdue_only: true,
            currency_code: "EUR".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoices;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|i| i.overdue));
}

async fn overdue_follows_the_customer_time_zone(s: &TestServer) {
    let mut auckland = customer("cus_akl");
    auckland.timezone = "Pacific/Auckland".into();
    create_customer(s, auckland).await;
    let mut la = customer("cus_la");
    la.timezone = "America/Los_Angeles".into();
    create_customer(s, la).await;
    let mut due_today = invoice("akl_1", "cus_akl");
    due_today.due_date = "2026-11-24".into();
    upsert(s, due_today).await;
    let mut due_today = invoice("la_1", "cus_la");
    due_today.due_date = "2026-11-24".into();
    upsert(s, due_today).await;

    // 2026-11-24 12:00 UTC is already 2026-11-25 01:00 in Auckland (NZDT, UTC+13), so its
    // invoice is overdue; in Los Angeles it is still the 24th.
    assert_eq!(balance(s, "cus_akl").await.len(), 1);
    assert!(balance(s, "cus_la").await.is_empty());
    assert_eq!(s.announce_overdue().await, 1);
    // Midnight in Los Angeles (PST, UTC-8) on the 25th is 08:00 UTC.
    s.clock.set("2026-11-25T07:59:59Z".parse().unwrap());
    assert!(balance(s, "cus_la").await.is_empty());
    assert_eq!(s.announce_overdue().await, 0);
    s.clock.set("2026-11-25T08:00:00Z".parse().unwrap());
    assert_eq!(balance(s, "cus_la").await.len(), 1);
    assert_eq!(s.announce_overdue().await, 1);
    assert_eq!(s.announce_overdue().await, 0, "announced once");

    // Moving the customer to another zone moves the overdue instant of open invoices.
    let mut later = invoice("la_2", "cus_la");
    later.due_date = "2026-11-25".into();
    upsert(s, later).await;
    s.customers()
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(proto::Customer {
                external_id: "cus_la".into(),
                timezone: "Pacific/Kiritimati".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["timezone".into()],
            }),
        })
        .await
        .unwrap();
    // Kiritimati is UTC+14: its 26th begins at 2026-11-25 10:00 UTC.
    s.clock.set("2026-11-25T10:00:00Z".parse().unwrap());
    assert_eq!(balance(s, "cus_la").await[0].2, 2);

    let overdue: Vec<_> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e.r#type == "invoice.overdue")
        .collect();
    let ids: Vec<_> = overdue
        .iter()
        .map(|e| e.invoice_external_id.as_str())
        .collect();
    assert_eq!(ids, vec!["akl_1", "la_1"]);
    assert_eq!(overdue[0].customer_external_id, "cus_akl");
    s.clock.advance(Duration::minutes(1));
    assert_eq!(s.announce_overdue().await, 1);
}

async fn batch_upsert_is_all_or_nothing(s: &TestServer) {
    create_customer(s, customer("cus_1")).await;
    let good: Vec<_> = (0..5)
        .map(|i| invoice(&format!("inv_{i}"), "cus_1"))
        .collect();
    let mut bad = good.clone();
    bad[1].currency_code = "EURO".into();
    bad[3].due_date = "2026-13-01".into();
    bad[4].total_amount = "1.001".into();
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices: bad })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        bad_fields(&status),
        vec![
            "invoices[1].currency_code",
            "invoices[3].due_date",
            "invoices[4].total_amount"
        ]
    );
    let mut missing_customer = good.clone();
    missing_customer[2].customer_external_id = "ghost".into();
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest {
                invoices: missing_customer,
            })
            .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    assert!(
        status.message().contains("invoices[2]"),
        "{}",
        status.message()
    );
    assert!(
        s.invoices()
            .list_invoices(proto::ListInvoicesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .invoices
            .is_empty(),
        "nothing of a refused batch is stored"
    );

    let done = s
        .invoices()
        .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest {
            invoices: good.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (done.created_count, done.updated_count, done.unchanged_count),
        (5, 0, 0)
    );
    assert_eq!(
        done.invoices
            .iter()
            .map(|i| i.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inv_0", "inv_1", "inv_2", "inv_3", "inv_4"]
    );
    let events_before = s.events().await.len();
    let again = s
        .invoices()
        .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest {
            invoices: good.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            again.created_count,
            again.updated_count,
            again.unchanged_count
        ),
        (0, 0, 5)
    );
    assert_eq!(
        s.events().await.len(),
        events_before,
        "an identical re-sync appends nothing"
    );

    // A refused change names the item; the other items of the batch are not applied either.
    s.invoices()
        .void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_3".into(),
            )),
            reason: String::new(),
        })
        .await
        .unwrap();
    let mut changes = good.clone();
    for c in &mut changes {
        c.total_amount = "500.00".into();
    }
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices: changes })
            .await,
        Code::FailedPrecondition,
        "INVOICE_NOT_OPEN",
    );
    use tonic_types::StatusExt;
    let failure = status
        .get_error_details()
        .precondition_failure()
        .cloned()
        .unwrap();
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(failure.violations[0].subject, "invoices[3]");
    assert_eq!(get(s, "inv_0").await.total_amount, "100.00");

    let duplicate = vec![invoice("x", "cus_1"), invoice("x", "cus_1")];
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest {
                invoices: duplicate,
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["invoices[1].external_id"]);
    let too_many: Vec<_> = (0..1001)
        .map(|i| invoice(&format!("n_{i}"), "cus_1"))
        .collect();
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices: too_many })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["invoices"]);
}

async fn large_batch_round_trip(s: &TestServer) {
    create_customer(s, customer("cus_big")).await;
    let batch: Vec<_> = (0..1000)
        .map(|i| {
            let mut inv = invoice(&format!("big_{i:04}"), "cus_big");
            inv.total_amount = format!("{}.{:02}", i + 1, i % 100);
            inv
        })
        .collect();
    let done = s
        .invoices()
        .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices: batch })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.created_count, 1000);
    // Sum of (i+1) + (i%100)/100 for i in 0..1000 = 500500 + 10 * 49.50 = 500995.00.
    assert_eq!(
        balance(s, "cus_big").await,
        vec![("EUR".into(), "500995.00".into(), 1000, "2026-11-10".into())]
    );
    let events = s.events().await;
    assert_eq!(events.len(), 1001);
    assert!(
        events
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1)
    );
}

async fn concurrent_payments_never_overpay(s: &TestServer) {
    create_customer(s, customer("cus_1")).await;
    upsert(s, invoice("inv_1", "cus_1")).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut api = s.invoices();
        tasks.push(tokio::spawn(async move {
            api.record_payment(payment("inv_1", &format!("p{i}"), "30.00", "EUR"))
                .await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(status) => assert!(
                matches!(status.code(), Code::FailedPrecondition),
                "unexpected {status:?}"
            ),
        }
    }
    assert_eq!(accepted, 3, "3 x 30.00 fit in 100.00, a 4th would overpay");
    assert_eq!(get(s, "inv_1").await.amount_due, "10.00");
}

/// Payment times a later read could not return, or that no bank booked, are refused; so is
/// an amount that is not written exactly as documented.
async fn payments_must_be_plausible(s: &TestServer) {
    s.create_customer("cus_1").await;
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_1", "cus_1")),
        })
        .await
        .unwrap();
    let now = dunning::clock::Clock::now(&s.clock);
    for (seconds, why) in [
        (253_402_300_800, "valid timestamp"),
        (-62_135_596_801, "valid timestamp"),
        ((now + Duration::days(2)).timestamp(), "a day ahead"),
        ((now - Duration::days(4_000)).timestamp(), "ten years"),
    ] {
        let refused = assert_error(
            s.invoices()
                .record_payment(proto::RecordPaymentRequest {
                    paid_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                    ..payment("inv_1", "pay_1", "10.00", "EUR")
                })
                .await,
            Code::InvalidArgument,
            "VALIDATION_FAILED",
        );
        assert_eq!(bad_fields(&refused), vec!["paid_time"]);
        assert!(refused.message().contains(why), "{refused:?}");
    }
    let spaced = assert_error(
        s.invoices()
            .record_payment(payment("inv_1", "pay_1", " 10.00 ", "EUR"))
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&spaced), vec!["amount"]);
    s.invoices()
        .record_payment(proto::RecordPaymentRequest {
            paid_time: Some(prost_types::Timestamp {
                seconds: (now - Duration::days(30)).timestamp(),
                nanos: 0,
            }),
            ..payment("inv_1", "pay_1", "10.00", "EUR")
        })
        .await
        .unwrap();
}

on_both_backends!(
    payments_must_be_plausible,
    invoice_lifecycle,
    list_filters,
    overdue_balance_per_currency,
    overdue_follows_the_customer_time_zone,
    batch_upsert_is_all_or_nothing,
    large_batch_round_trip,
    concurrent_payments_never_overpay,
);
