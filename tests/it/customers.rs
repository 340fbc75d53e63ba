//! Customers, organizations, authentication and tenancy through the gRPC API.

use crate::common::{TestServer, assert_error, bad_fields, customer, invoice};
use dunning::proto::{self, get_customer_request, get_overdue_balance_request};
use prost_types::FieldMask;
use tonic::Code;

fn by_external_id(id: &str) -> proto::GetCustomerRequest {
    proto::GetCustomerRequest {
        customer: Some(get_customer_request::Customer::ExternalId(id.into())),
    }
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn customer_lifecycle(s: &TestServer) {
    let mut api = s.customers();
    let mut input = customer("cus_1");
    input.cc_emails = vec!["cc@example.com".into(), "CC@example.com".into()];
    input.locale = "de_de".into();
    input.timezone = String::new();
    input.tags = vec!["vip".into()];
    input.metadata = [("crm".to_string(), "42".to_string())].into();
    input.payment_method = Some(proto::PaymentMethod {
        provider: "sandbox".into(),
        token: "tok_success".into(),
    });
    let created = api
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(input),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(
        created.cc_emails,
        vec!["cc@example.com"],
        "cc list de-duplicated"
    );
    assert_eq!(created.locale, "de-DE");
    assert_eq!(
        created.timezone, "UTC",
        "defaults to the organization's time zone"
    );
    assert!(!created.id.is_empty());

    let by_id = api
        .get_customer(proto::GetCustomerRequest {
            customer: Some(get_customer_request::Customer::Id(created.id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(by_id, created);

    let duplicate = api
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_1")),
            request_id: String::new(),
        })
        .await;
    assert_error(duplicate, Code::AlreadyExists, "CUSTOMER_ALREADY_EXISTS");

    // Only masked fields change.
    let update = proto::Customer {
        external_id: "cus_1".into(),
        email: "billing@example.com".into(),
        name: "ignored because not in the mask".into(),
        timezone: "Europe/Berlin".into(),
        ..Default::default()
    };
    let updated = api
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(update),
            update_mask: mask(&["email", "timezone"]),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(updated.email, "billing@example.com");
    assert_eq!(updated.timezone, "Europe/Berlin");
    assert_eq!(updated.name, created.name);
    assert_eq!(updated.tags, vec!["vip"]);

    // A bad update changes nothing.
    let bad = proto::Customer {
        external_id: "cus_1".into(),
        email: "not-an-email".into(),
        ..Default::default()
    };
    let status = assert_error(
        api.update_customer(proto::UpdateCustomerRequest {
            customer: Some(bad),
            update_mask: mask(&["email"]),
        })
        .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["customer.email"]);
    let unchanged = api
        .get_customer(by_external_id("cus_1"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(unchanged.email, "billing@example.com");

    // Delete erases personal data but keeps invoices and history.
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_1", "cus_1")),
        })
        .await
        .unwrap();
    let deleted = api
        .delete_customer(proto::DeleteCustomerRequest {
            customer: Some(proto::delete_customer_request::Customer::ExternalId(
                "cus_1".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert!(deleted.deleted);
    assert!(deleted.email.is_empty() && deleted.name.is_empty() && deleted.cc_emails.is_empty());
    assert!(deleted.payment_method.is_none() && deleted.metadata.is_empty());
    assert_eq!(deleted.external_id, "cus_1");
    let kept = s
        .invoices()
        .get_invoice(proto::GetInvoiceRequest {
            invoice: Some(proto::get_invoice_request::Invoice::ExternalId(
                "inv_1".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(kept.total_amount, "100.00");
    assert_error(
        api.update_customer(proto::UpdateCustomerRequest {
            customer: Some(proto::Customer {
                external_id: "cus_1".into(),
                name: "x".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await,
        Code::FailedPrecondition,
        "CUSTOMER_DELETED",
    );
    let listed = api
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.customers.is_empty(),
        "deleted customers are hidden by default"
    );
    let listed = api
        .list_customers(proto::ListCustomersRequest {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers.len(), 1);

    let types = s.event_types().await;
    assert_eq!(
        types,
        vec![
            "customer.created",
            "customer.updated",
            "invoice.created",
            "customer.deleted"
        ]
    );
    let events = s.events().await;
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![1, 2, 3, 4], "contiguous per organization");
    match &events[1].payload {
        Some(proto::event::Payload::Customer(p)) => {
            assert_eq!(p.changed_fields, vec!["email", "timezone"])
        }
        other => panic!("unexpected payload {other:?}"),
    }
}

async fn create_is_idempotent_by_request_id(s: &TestServer) {
    let mut api = s.customers();
    let request = proto::CreateCustomerRequest {
        customer: Some(customer("cus_r")),
        request_id: "req-1".into(),
    };
    let first = api
        .create_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let retry = api
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(first, retry);
    let mut other = customer("cus_other");
    other.name = "Someone else".into();
    assert_error(
        api.create_customer(proto::CreateCustomerRequest {
            customer: Some(other),
            request_id: "req-1".into(),
        })
        .await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );
    assert_eq!(
        s.event_types().await,
        vec!["customer.created"],
        "the retry appended nothing"
    );
}

async fn pagination_is_stable_under_concurrent_inserts(s: &TestServer) {
    let mut api = s.customers();
    for i in 0..25 {
        api.create_customer(proto::CreateCustomerRequest {
            customer: Some(customer(&format!("cus_{i:02}"))),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    let writer = {
        let mut api = s.customers();
        tokio::spawn(async move {
            for i in 0..25 {
                api.create_customer(proto::CreateCustomerRequest {
                    customer: Some(customer(&format!("late_{i:02}"))),
                    request_id: String::new(),
                })
                .await
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = api
            .list_customers(proto::ListCustomersRequest {
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.customers.len() <= 4);
        seen.extend(page.customers.into_iter().map(|c| c.external_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    writer.await.unwrap();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no customer twice");
    for i in 0..25 {
        assert!(seen.contains(&format!("cus_{i:02}")), "cus_{i:02} missing");
    }
    let first_existing: Vec<_> = seen
        .iter()
        .filter(|e| e.starts_with("cus_"))
        .cloned()
        .collect();
    let mut sorted = first_existing.clone();
    sorted.sort();
    assert_eq!(first_existing, sorted, "creation order");

    // A token is tied to its filters.
    let page = api
        .list_customers(proto::ListCustomersRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = assert_error(
        api.list_customers(proto::ListCustomersRequest {
            page_size: 2,
            page_token: page.next_page_token,
            tag: "vip".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_eq!(bad_fields(&status), vec!["page_token"]);
}

async fn list_filters(s: &TestServer) {
    let mut api = s.customers();
    let mut tagged = customer("cus_tagged");
    tagged.tags = vec!["enterprise".into()];
    api.create_customer(proto::CreateCustomerRequest {
        customer: Some(tagged),
        request_id: String::new(),
    })
    .await
    .unwrap();
    api.create_customer(proto::CreateCustomerRequest {
        customer: Some(customer("cus_plain")),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let by_tag = api
        .list_customers(proto::ListCustomersRequest {
            tag: "enterprise".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_tag
            .customers
            .iter()
            .map(|c| c.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["cus_tagged"]
    );
    let by_email = api
        .list_customers(proto::ListCustomersRequest {
            email: "cus_plain@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_email.customers.len(), 1);
    assert_eq!(by_email.customers[0].external_id, "cus_plain");
}

async fn tenants_are_isolated(s: &TestServer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_a")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let created = s
        .customers()
        .get_customer(by_external_id("cus_a"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_a", "cus_a")),
        })
        .await
        .unwrap();

    let other_key = s.other_organization("globex").await;
    let mut other = s.customers_as(&other_key);
    assert_error(
        other.get_customer(by_external_id("cus_a")).await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    assert_error(
        other
            .get_customer(proto::GetCustomerRequest {
                customer: Some(get_customer_request::Customer::Id(created.id.clone())),
            })
            .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    assert_error(
        other
            .get_overdue_balance(proto::GetOverdueBalanceRequest {
                customer: Some(get_overdue_balance_request::Customer::Id(created.id)),
            })
            .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    assert!(
        other
            .list_customers(proto::ListCustomersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .customers
            .is_empty()
    );
    let mut other_invoices = s.invoices_as(&other_key);
    assert_error(
        other_invoices
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(invoice("inv_b", "cus_a")),
            })
            .await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
    assert_error(
        other_invoices
            .get_invoice(proto::GetInvoiceRequest {
                invoice: Some(proto::get_invoice_request::Invoice::ExternalId(
                    "inv_a".into(),
                )),
            })
            .await,
        Code::NotFound,
        "INVOICE_NOT_FOUND",
    );
    // The same external id is free in another organization, and the event logs are separate.
    other
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_a")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let other_events = s
        .dunning()
        .list_events(proto::ListEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(other_events.len(), 2, "acme sees only its own two events");
}

async fn authentication(s: &TestServer) {
    assert_error(
        s.anonymous_customers()
            .list_customers(proto::ListCustomersRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
    );
    assert_error(
        s.customers_as("dun_not-a-real-key")
            .list_customers(proto::ListCustomersRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_INVALID",
    );
    let services = s.server().services();
    let key = services.auth.create_api_key("acme").await.unwrap();
    s.customers_as(&key.plain_text)
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap();
    services.auth.revoke_api_key(key.record.id).await.unwrap();
    assert_error(
        s.customers_as(&key.plain_text)
            .list_customers(proto::ListCustomersRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_REVOKED",
    );
    // The original key still works.
    s.customers()
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap();
}

async fn organization_settings(s: &TestServer) {
    let mut api = s.organizations();
    let org = api
        .get_organization(proto::GetOrganizationRequest {})
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(org.name, "acme");
    assert_eq!(org.timezone, "UTC");
    let quiet = org.quiet_hours.clone().unwrap();
    assert!(quiet.enabled);
    assert_eq!(
        (quiet.start_time.as_str(), quiet.end_time.as_str()),
        ("08:00", "20:00")
    );

    let update = proto::Organization {
        timezone: "Europe/Paris".into(),
        sender: Some(proto::SenderIdentity {
            from_name: "Acme Billing".into(),
            from_email: "billing@acme.test".into(),
            reply_to_email: String::new(),
        }),
        payment_provider: Some(proto::PaymentProviderSettings {
            provider: "http".into(),
            http_url: "https://payments.internal/charge".into(),
            http_secret: "s3cret".into(),
            http_secret_set: false,
            minimum_charge_amounts: [("USD".to_string(), "0.50".to_string())].into(),
        }),
        ..Default::default()
    };
    let updated = api
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(update),
            update_mask: mask(&["timezone", "sender", "payment_provider"]),
        })
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(updated.timezone, "Europe/Paris");
    assert_eq!(updated.sender.unwrap().from_email, "billing@acme.test");
    let provider = updated.payment_provider.unwrap();
    assert!(
        provider.http_secret.is_empty(),
        "the secret is never returned"
    );
    assert!(provider.http_secret_set);
    assert_eq!(
        provider
            .minimum_charge_amounts
            .get("USD")
            .map(String::as_str),
        Some("0.50")
    );

    let status = assert_error(
        api.update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                timezone: "Mars/Olympus".into(),
                payment_link_template: "https://pay.example.com/no-placeholder".into(),
                quiet_hours: Some(proto::QuietHours {
                    enabled: true,
                    start_time: "21:00".into(),
                    end_time: "7".into(),
                }),
                ..Default::default()
            }),
            update_mask: mask(&["timezone", "payment_link_template", "quiet_hours"]),
        })
        .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        bad_fields(&status),
        vec![
            "organization.timezone",
            "organization.payment_link_template",
            "organization.quiet_hours.end_time"
        ]
    );
    assert_error(
        api.update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization::default()),
            update_mask: mask(&["id"]),
        })
        .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    let after = api
        .get_organization(proto::GetOrganizationRequest {})
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(
        after.timezone, "Europe/Paris",
        "the refused update changed nothing"
    );

    // New customers default to the organization's time zone.
    let mut c = customer("cus_tz");
    c.timezone = String::new();
    let created = s
        .customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(created.timezone, "Europe/Paris");
}

/// GetCustomer's payment profile against a hand-built history in New York time: one invoice
/// paid the day before its due date, one paid in two parts, the last on the evening of the
/// third day after (already the fourth day in UTC), and one still open.
async fn the_payment_profile_counts_late_and_on_time_payments(s: &TestServer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(proto::Customer {
                timezone: "America/New_York".into(),
                ..customer("cus_p")
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    for (id, due) in [
        ("inv_a", "2026-10-01"),
        ("inv_b", "2026-10-01"),
        ("inv_c", "2026-11-10"),
    ] {
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(proto::Invoice {
                    due_date: due.into(),
                    issue_date: "2026-09-01".into(),
                    ..invoice(id, "cus_p")
                }),
            })
            .await
            .unwrap();
    }
    for (invoice, payment, amount, paid) in [
        ("inv_a", "pay_a", "100.00", "2026-09-30T15:00:00Z"),
        ("inv_b", "pay_b1", "40.00", "2026-10-02T12:00:00Z"),
        ("inv_b", "pay_b2", "60.00", "2026-10-05T03:00:00Z"),
    ] {
        let paid: chrono::DateTime<chrono::Utc> = paid.parse().unwrap();
        s.invoices()
            .record_payment(proto::RecordPaymentRequest {
                invoice: Some(proto::record_payment_request::Invoice::InvoiceExternalId(
                    invoice.into(),
                )),
                payment_external_id: payment.into(),
                amount: amount.into(),
                currency_code: "EUR".into(),
                paid_time: Some(prost_types::Timestamp {
                    seconds: paid.timestamp(),
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let profile = s.payment_profile("cus_p").await;
    assert_eq!(
        (
            profile.overdue_invoices,
            profile.paid_late_invoices,
            profile.paid_on_time_invoices,
            profile.max_days_late,
        ),
        (2, 1, 1, 3),
        "{profile:?}"
    );
    assert_eq!(profile.average_days_late, "3");
    assert_eq!(profile.on_time_ratio, "0.5");
    assert_eq!(
        profile
            .paid_amounts
            .iter()
            .map(|a| (a.currency_code.as_str(), a.amount.as_str()))
            .collect::<Vec<_>>(),
        vec![("EUR", "200.00")]
    );
    assert_eq!(
        profile
            .overdue_amounts
            .iter()
            .map(|a| (a.currency_code.as_str(), a.amount.as_str()))
            .collect::<Vec<_>>(),
        vec![("EUR", "100.00")],
        "inv_c is overdue"
    );
    assert_eq!(
        (
            profile.escalated_processes,
            profile.written_off_invoices,
            profile.broken_promises
        ),
        (0, 0, 0)
    );

    // A 30-day window keeps only the invoice that fell overdue on 2026-11-11.
    let window = |days: u32| proto::UpdateOrganizationRequest {
        organization: Some(proto::Organization {
            profile_window_days: days,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["profile_window_days".into()],
        }),
    };
    let refused = assert_error(
        s.organizations().update_organization(window(0)).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        bad_fields(&refused),
        vec!["organization.profile_window_days"]
    );
    let updated = s
        .organizations()
        .update_organization(window(30))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(updated.profile_window_days, 30);
    let recent = s.payment_profile("cus_p").await;
    assert_eq!(
        (
            recent.overdue_invoices,
            recent.paid_late_invoices,
            recent.paid_on_time_invoices
        ),
        (1, 0, 0),
        "{recent:?}"
    );
    assert!(
        recent.paid_amounts.is_empty(),
        "no payment in the last 30 days"
    );
    assert_eq!(recent.on_time_ratio, "");
}

on_both_backends!(
    the_payment_profile_counts_late_and_on_time_payments,
    customer_lifecycle,
    create_is_idempotent_by_request_id,
    pagination_is_stable_under_concurrent_inserts,
    list_filters,
    tenants_are_isolated,
    authentication,
    organization_settings,
);
