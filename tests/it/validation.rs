//! Malformed requests get INVALID_ARGUMENT (or the documented code) naming the bad field, and
//! change nothing; the API surface around them: health, reflection, UNIMPLEMENTED, UNAVAILABLE.

use crate::common::raw::RawCodec;
use crate::common::{Backend, TestServer, assert_error, bad_fields, customer, invoice};
use dunning::proto::{self, get_customer_request, get_invoice_request, record_payment_request};
use futures_util::future::BoxFuture;
use prost_types::FieldMask;
use tonic::{Code, Status};

type Call = BoxFuture<'static, Result<(), Status>>;

struct Case {
    name: &'static str,
    code: Code,
    reason: &'static str,
    /// The field the BadRequest must name (first violation), when there is one.
    field: Option<&'static str>,
    call: Call,
}

fn case(
    name: &'static str,
    code: Code,
    reason: &'static str,
    field: Option<&'static str>,
    call: Call,
) -> Case {
    Case {
        name,
        code,
        reason,
        field,
        call,
    }
}

fn create_customer_call(s: &TestServer, c: proto::Customer, request_id: &str) -> Call {
    let mut api = s.customers();
    let request_id = request_id.to_owned();
    Box::pin(async move {
        api.create_customer(proto::CreateCustomerRequest {
            customer: Some(c),
            request_id,
        })
        .await
        .map(|_| ())
    })
}

fn upsert_call(s: &TestServer, i: proto::Invoice) -> Call {
    let mut api = s.invoices();
    Box::pin(async move {
        api.upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(i) })
            .await
            .map(|_| ())
    })
}

fn payment_call(s: &TestServer, amount: &str, currency: &str, id: &str) -> Call {
    let mut api = s.invoices();
    let request = proto::RecordPaymentRequest {
        invoice: Some(record_payment_request::Invoice::InvoiceExternalId(
            "inv_ok".into(),
        )),
        payment_external_id: id.into(),
        amount: amount.into(),
        currency_code: currency.into(),
        ..Default::default()
    };
    Box::pin(async move { api.record_payment(request).await.map(|_| ()) })
}

fn with<T>(base: T, change: impl FnOnce(&mut T)) -> T {
    let mut value = base;
    change(&mut value);
    value
}

async fn malformed_requests_are_refused_with_the_field_named(s: &TestServer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_ok")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_ok", "cus_ok")),
        })
        .await
        .unwrap();
    let events_before = s.events().await.len();
    let c = || customer("cus_new");
    let i = || invoice("inv_new", "cus_ok");
    use Code::{FailedPrecondition as Pre, InvalidArgument as Bad, NotFound};
    const V: &str = "VALIDATION_FAILED";
    let cases = vec![
        case(
            "empty external_id",
            Bad,
            V,
            Some("customer.external_id"),
            create_customer_call(s, with(c(), |c| c.external_id.clear()), ""),
        ),
        case(
            "external_id with spaces",
            Bad,
            V,
            Some("customer.external_id"),
            create_customer_call(s, with(c(), |c| c.external_id = "a b".into()), ""),
        ),
        case(
            "external_id too long",
            Bad,
            V,
            Some("customer.external_id"),
            create_customer_call(s, with(c(), |c| c.external_id = "x".repeat(129)), ""),
        ),
        case(
            "bad email",
            Bad,
            V,
            Some("customer.email"),
            create_customer_call(s, with(c(), |c| c.email = "@nowhere".into()), ""),
        ),
        case(
            "bad cc email",
            Bad,
            V,
            Some("customer.cc_emails[1]"),
            create_customer_call(
                s,
                with(c(), |c| c.cc_emails = vec!["a@b.co".into(), "nope".into()]),
                "",
            ),
        ),
        case(
            "bad bcc email",
            Bad,
            V,
            Some("customer.bcc_emails[0]"),
            create_customer_call(s, with(c(), |c| c.bcc_emails = vec!["x@".into()]), ""),
        ),
        case(
            "unknown time zone",
            Bad,
            V,
            Some("customer.timezone"),
            create_customer_call(s, with(c(), |c| c.timezone = "Europe/Atlantis".into()), ""),
        ),
        case(
            "bad locale",
            Bad,
            V,
            Some("customer.locale"),
            create_customer_call(s, with(c(), |c| c.locale = "klingon".into()), ""),
        ),
        case(
            "bad sales rep email",
            Bad,
            V,
            Some("customer.sales_rep_email"),
            create_customer_call(s, with(c(), |c| c.sales_rep_email = "rep".into()), ""),
        ),
        case(
            "unknown payment provider",
            Bad,
            V,
            Some("customer.payment_method.provider"),
            create_customer_call(
                s,
                with(c(), |c| {
                    c.payment_method = Some(proto::PaymentMethod {
                        provider: "paypal".into(),
                        token: "t".into(),
                    })
                }),
                "",
            ),
        ),
        case(
            "empty payment token",
            Bad,
            V,
            Some("customer.payment_method.token"),
            create_customer_call(
                s,
                with(c(), |c| {
                    c.payment_method = Some(proto::PaymentMethod {
                        provider: "sandbox".into(),
                        token: String::new(),
                    })
                }),
                "",
            ),
        ),
        case(
            "name too long",
            Bad,
            V,
            Some("customer.name"),
            create_customer_call(s, with(c(), |c| c.name = "n".repeat(600)), ""),
        ),
        case(
            "too many tags",
            Bad,
            V,
            Some("customer.tags"),
            create_customer_call(
                s,
                with(c(), |c| c.tags = (0..51).map(|i| i.to_string()).collect()),
                "",
            ),
        ),
        case(
            "metadata value too long",
            Bad,
            V,
            Some("customer.metadata[k]"),
            create_customer_call(
                s,
                with(c(), |c| {
                    c.metadata = [("k".to_string(), "v".repeat(513))].into()
                }),
                "",
            ),
        ),
        case(
            "request_id with spaces",
            Bad,
            V,
            Some("request_id"),
            create_customer_call(s, c(), "not ok"),
        ),
        case("missing customer", Bad, V, Some("customer"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.create_customer(proto::CreateCustomerRequest::default())
                    .await
                    .map(|_| ())
            })
        }),
        case("get without id", Bad, V, Some("external_id"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.get_customer(proto::GetCustomerRequest { customer: None })
                    .await
                    .map(|_| ())
            })
        }),
        case("get with malformed id", Bad, V, Some("id"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.get_customer(proto::GetCustomerRequest {
                    customer: Some(get_customer_request::Customer::Id("123".into())),
                })
                .await
                .map(|_| ())
            })
        }),
        case("update without mask", Bad, V, Some("update_mask"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.update_customer(proto::UpdateCustomerRequest {
                    customer: Some(customer("cus_ok")),
                    update_mask: None,
                })
                .await
                .map(|_| ())
            })
        }),
        case("update unknown mask path", Bad, V, Some("update_mask"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.update_customer(proto::UpdateCustomerRequest {
                    customer: Some(customer("cus_ok")),
                    update_mask: Some(FieldMask {
                        paths: vec!["external_id".into()],
                    }),
                })
                .await
                .map(|_| ())
            })
        }),
        case("negative page size", Bad, V, Some("page_size"), {
            let mut api = s.customers();
            Box::pin(async move {
                api.list_customers(proto::ListCustomersRequest {
                    page_size: -1,
                    ..Default::default()
                })
                .await
                .map(|_| ())
            })
        }),
        case(
            "garbage page token",
            Bad,
            "INVALID_PAGE_TOKEN",
            Some("page_token"),
            {
                let mut api = s.customers();
                Box::pin(async move {
                    api.list_customers(proto::ListCustomersRequest {
                        page_token: "!!".into(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                })
            },
        ),
        case(
            "unknown currency",
            Bad,
            V,
            Some("invoice.currency_code"),
            upsert_call(s, with(i(), |i| i.currency_code = "XYZ".into())),
        ),
        case(
            "lower-case currency",
            Bad,
            V,
            Some("invoice.currency_code"),
            upsert_call(s, with(i(), |i| i.currency_code = "eur".into())),
        ),
        case(
            "negative total",
            Bad,
            V,
            Some("invoice.total_amount"),
            upsert_call(s, with(i(), |i| i.total_amount = "-5.00".into())),
        ),
        case(
            "too many decimals for EUR",
            Bad,
            V,
            Some("invoice.total_amount"),
            upsert_call(s, with(i(), |i| i.total_amount = "10.001".into())),
        ),
        case(
            "decimals for JPY",
            Bad,
            V,
            Some("invoice.total_amount"),
            upsert_call(
                s,
                with(i(), |i| {
                    i.currency_code = "JPY".into();
                    i.total_amount = "10.5".into()
                }),
            ),
        ),
        case(
            "amount as exponent",
            Bad,
            V,
            Some("invoice.total_amount"),
            upsert_call(s, with(i(), |i| i.total_amount = "1e3".into())),
        ),
        case(
            "absurd amount",
            Bad,
            V,
            Some("invoice.total_amount"),
            upsert_call(
                s,
                with(i(), |i| i.total_amount = "99999999999999999".into()),
            ),
        ),
        case(
            "credit above total",
            Bad,
            V,
            Some("invoice.credited_amount"),
            upsert_call(s, with(i(), |i| i.credited_amount = "100.01".into())),
        ),
        case(
            "impossible due date",
            Bad,
            V,
            Some("invoice.due_date"),
            upsert_call(s, with(i(), |i| i.due_date = "2026-02-30".into())),
        ),
        case(
            "missing due date",
            Bad,
            V,
            Some("invoice.due_date"),
            upsert_call(s, with(i(), |i| i.due_date.clear())),
        ),
        case(
            "due before issue",
            Bad,
            V,
            Some("invoice.due_date"),
            upsert_call(s, with(i(), |i| i.issue_date = "2026-12-01".into())),
        ),
        case(
            "state PAID on input",
            Bad,
            V,
            Some("invoice.state"),
            upsert_call(s, with(i(), |i| i.state = proto::InvoiceState::Paid as i32)),
        ),
        case(
            "unknown enum value",
            Bad,
            V,
            Some("invoice.collection_method"),
            upsert_call(s, with(i(), |i| i.collection_method = 42)),
        ),
        case(
            "missing customer reference",
            Bad,
            V,
            Some("invoice.customer_external_id"),
            upsert_call(s, with(i(), |i| i.customer_external_id.clear())),
        ),
        case(
            "unknown customer",
            NotFound,
            "CUSTOMER_NOT_FOUND",
            None,
            upsert_call(s, with(i(), |i| i.customer_external_id = "ghost".into())),
        ),
        case(
            "customer cannot change",
            Pre,
            "INVOICE_CUSTOMER_IMMUTABLE",
            None,
            {
                let mut api = s.customers();
                let mut invoices = s.invoices();
                Box::pin(async move {
                    api.create_customer(proto::CreateCustomerRequest {
                        customer: Some(customer("cus_two")),
                        request_id: String::new(),
                    })
                    .await?;
                    invoices
                        .upsert_invoice(proto::UpsertInvoiceRequest {
                            invoice: Some(invoice("inv_ok", "cus_two")),
                        })
                        .await
                        .map(|_| ())
                })
            },
        ),
        case(
            "zero payment",
            Bad,
            V,
            Some("amount"),
            payment_call(s, "0", "EUR", "p_zero"),
        ),
        case(
            "payment without id",
            Bad,
            V,
            Some("payment_external_id"),
            payment_call(s, "1.00", "EUR", ""),
        ),
        case(
            "payment amount too precise",
            Bad,
            V,
            Some("amount"),
            payment_call(s, "1.005", "EUR", "p_x"),
        ),
        case(
            "payment in another currency",
            Bad,
            "CURRENCY_MISMATCH",
            Some("currency_code"),
            payment_call(s, "1.00", "GBP", "p_gbp"),
        ),
        case(
            "overpayment",
            Pre,
            "OVERPAYMENT",
            None,
            payment_call(s, "100.01", "EUR", "p_over"),
        ),
        case(
            "payment for unknown invoice",
            NotFound,
            "INVOICE_NOT_FOUND",
            None,
            {
                let mut api = s.invoices();
                Box::pin(async move {
                    api.record_payment(proto::RecordPaymentRequest {
                        invoice: Some(record_payment_request::Invoice::InvoiceExternalId(
                            "nope".into(),
                        )),
                        payment_external_id: "p".into(),
                        amount: "1.00".into(),
                        currency_code: "EUR".into(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                })
            },
        ),
        case("invalid paid_time", Bad, V, Some("paid_time"), {
            let mut api = s.invoices();
            Box::pin(async move {
                api.record_payment(proto::RecordPaymentRequest {
                    invoice: Some(record_payment_request::Invoice::InvoiceExternalId(
                        "inv_ok".into(),
                    )),
                    payment_external_id: "p_time".into(),
                    amount: "1.00".into(),
                    currency_code: "EUR".into(),
                    paid_time: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    ..Default::default()
                })
                .await
                .map(|_| ())
            })
        }),
        case(
            "invoice update unknown path",
            Bad,
            V,
            Some("update_mask"),
            {
                let mut api = s.invoices();
                Box::pin(async move {
                    api.update_invoice(proto::UpdateInvoiceRequest {
                        invoice: Some(proto::Invoice {
                            external_id: "inv_ok".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["total_amount".into()],
                        }),
                    })
                    .await
                    .map(|_| ())
                })
            },
        ),
        case(
            "list with reversed date range",
            Bad,
            V,
            Some("due_date_to"),
            {
                let mut api = s.invoices();
                Box::pin(async move {
                    api.list_invoices(proto::ListInvoicesRequest {
                        due_date_from: "2026-12-01".into(),
                        due_date_to: "2026-01-01".into(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                })
            },
        ),
        case("list with bad currency", Bad, V, Some("currency_code"), {
            let mut api = s.invoices();
            Box::pin(async move {
                api.list_invoices(proto::ListInvoicesRequest {
                    currency_code: "EU".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
            })
        }),
        case("events with bad type", Bad, V, Some("types[0]"), {
            let mut api = s.dunning();
            Box::pin(async move {
                api.list_events(proto::ListEventsRequest {
                    types: vec!["DROP TABLE".into()],
                    ..Default::default()
                })
                .await
                .map(|_| ())
            })
        }),
        case(
            "events with negative cursor",
            Bad,
            V,
            Some("after_sequence"),
            {
                let mut api = s.dunning();
                Box::pin(async move {
                    api.list_events(proto::ListEventsRequest {
                        after_sequence: -1,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                })
            },
        ),
    ];
    assert!(cases.len() >= 30);
    for case in cases {
        let result = case.call.await;
        let status = match result {
            Ok(()) => panic!(
                "{}: expected {:?}, the call succeeded",
                case.name, case.code
            ),
            Err(status) => status,
        };
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
        use tonic_types::StatusExt;
        let reason = status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone());
        assert_eq!(reason.as_deref(), Some(case.reason), "{}", case.name);
        if let Some(field) = case.field {
            assert_eq!(
                bad_fields(&status).first().map(String::as_str),
                Some(field),
                "{}: {status:?}",
                case.name
            );
        }
    }
    // None of it changed anything.
    assert_eq!(
        s.events().await.len(),
        events_before + 1,
        "only the second customer was created"
    );
    let kept = s
        .invoices()
        .get_invoice(proto::GetInvoiceRequest {
            invoice: Some(get_invoice_request::Invoice::ExternalId("inv_ok".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(
        (kept.customer_external_id.as_str(), kept.amount_due.as_str()),
        ("cus_ok", "100.00")
    );
}

async fn dunning_rpcs_authenticate_first(s: &TestServer) {
    let mut anonymous =
        dunning::proto::dunning_service_client::DunningServiceClient::new(s.channel.clone());
    assert_error(
        anonymous
            .simulate_policy(proto::SimulatePolicyRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
    );
    assert_error(
        anonymous
            .get_collections_report(proto::GetCollectionsReportRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
    );
    assert_error(
        anonymous
            .record_payment_plan(proto::RecordPaymentPlanRequest::default())
            .await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
    );
}

async fn health_and_reflection_need_no_key(s: &TestServer) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut health = HealthClient::new(s.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "dunning.v1.InvoiceService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(s.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "dunning.v1.OrganizationService",
        "dunning.v1.CustomerService",
        "dunning.v1.InvoiceService",
        "dunning.v1.PaymentRequestService",
        "dunning.v1.DunningService",
        "dunning.v1.WebhookService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    // The error details every status carries are described, so that standard clients decode
    // them instead of printing base64.
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.PreconditionFailure",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut responses = reflection
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        assert!(
            matches!(
                response.message_response,
                Some(MessageResponse::FileDescriptorResponse(ref files))
                    if !files.file_descriptor_proto.is_empty()
            ),
            "{symbol}: {:?}",
            response.message_response
        );
    }
}

/// A key does what its scopes allow and nothing else (PERMISSION_DENIED naming the scope
/// needed); an expired key stops working at once (the clock passes its expiry).
async fn keys_are_limited_to_their_scopes_and_expire(s: &TestServer) {
    use dunning::clock::Clock;
    use dunning::domain::access::Scopes;
    let services = s.server().services();
    let reader = services
        .auth
        .create_scoped_api_key("acme", Scopes::parse("read").unwrap(), None)
        .await
        .unwrap()
        .plain_text;
    assert_eq!(reader.len(), s.key.len());
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_scoped")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let listed = s
        .customers_as(&reader)
        .list_customers(proto::ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers.len(), 1);
    let denied = assert_error(
        s.invoices_as(&reader)
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(invoice("inv_scoped", "cus_scoped")),
            })
            .await,
        Code::PermissionDenied,
        "SCOPE_MISSING",
    );
    assert!(denied.message().contains("`write`"), "{}", denied.message());
    assert!(
        denied.message().contains("UpsertInvoice"),
        "{}",
        denied.message()
    );
    let writer = services
        .auth
        .create_scoped_api_key(
            "acme",
            Scopes::parse("write").unwrap(),
            Some(s.clock.now() + chrono::Duration::days(1)),
        )
        .await
        .unwrap()
        .plain_text;
    s.invoices_as(&writer)
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_scoped", "cus_scoped")),
        })
        .await
        .unwrap();
    assert_error(
        s.invoices_as(&writer)
            .get_invoice(proto::GetInvoiceRequest {
                invoice: Some(get_invoice_request::Invoice::ExternalId(
                    "inv_scoped".into(),
                )),
            })
            .await,
        Code::PermissionDenied,
        "SCOPE_MISSING",
    );
    s.clock.advance(chrono::Duration::days(1));
    assert_error(
        s.invoices_as(&writer)
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(invoice("inv_scoped", "cus_scoped")),
            })
            .await,
        Code::Unauthenticated,
        "API_KEY_EXPIRED",
    );
    // The default key has every scope.
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(invoice("inv_scoped", "cus_scoped")),
        })
        .await
        .unwrap();
}

on_both_backends!(
    malformed_requests_are_refused_with_the_field_named,
    dunning_rpcs_authenticate_first,
    health_and_reflection_need_no_key,
    keys_are_limited_to_their_scopes_and_expire,
    undecodable_requests_are_invalid_arguments,
    error_answers_are_bounded,
    page_tokens_are_bound_to_their_list_and_organization,
);

/// ListCustomers with `key`: the cheapest call, for the limits below.
async fn list_customers_as(
    s: &TestServer,
    key: &str,
) -> Result<tonic::Response<proto::ListCustomersResponse>, Status> {
    s.customers_as(key)
        .list_customers(proto::ListCustomersRequest::default())
        .await
}

/// A client address that keeps sending wrong keys is refused before any key is looked up,
/// while the allowance lasts: RESOURCE_EXHAUSTED naming the wait, then a well-behaved call
/// from the same address is held off too until the allowance comes back.
async fn a_flood_of_wrong_keys_is_throttled(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.auth_failures_per_minute = 3).await;
    for _ in 0..3 {
        assert_error(
            list_customers_as(&s, "dun_wrong").await,
            Code::Unauthenticated,
            "API_KEY_INVALID",
        );
    }
    let refused = assert_error(
        list_customers_as(&s, "dun_wrong").await,
        Code::ResourceExhausted,
        "TOO_MANY_FAILED_AUTHENTICATIONS",
    );
    assert!(refused.message().contains("retry in"), "{refused:?}");
    assert_error(
        list_customers_as(&s, &s.key).await,
        Code::ResourceExhausted,
        "TOO_MANY_FAILED_AUTHENTICATIONS",
    );
    s.stop().await;
}

/// A key past its rate waits (another key does not), and a request larger than the setting
/// is refused before it is decoded.
async fn keys_are_rate_limited_and_requests_size_limited(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.key_requests_per_minute = 3;
        c.max_request_bytes = 4096;
    })
    .await;
    let other = s.other_organization("other").await;
    for _ in 0..3 {
        list_customers_as(&s, &s.key).await.unwrap();
    }
    let limited = assert_error(
        list_customers_as(&s, &s.key).await,
        Code::ResourceExhausted,
        "KEY_RATE_LIMITED",
    );
    assert!(limited.message().contains("retry in"), "{limited:?}");
    list_customers_as(&s, &other).await.unwrap();
    let mut big = customer("cus_big");
    big.name = "x".repeat(8000);
    let refused = assert_error(
        s.customers_as(&other)
            .create_customer(proto::CreateCustomerRequest {
                customer: Some(big),
                request_id: String::new(),
            })
            .await,
        Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
    );
    assert!(
        refused.message().contains("4096")
            && refused.message().contains("DUNNING_MAX_REQUEST_BYTES"),
        "{refused:?}"
    );
    s.stop().await;
}

/// A key with as many calls in flight as allowed (an open WatchEvents stream counts) is
/// refused at once; another key is not; when the stream ends, the key may call again.
async fn calls_in_flight_are_limited_per_key(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.key_concurrency = 1).await;
    let other = s.other_organization("other").await;
    let stream = s
        .dunning()
        .watch_events(proto::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_error(
        list_customers_as(&s, &s.key).await,
        Code::ResourceExhausted,
        "KEY_CONCURRENCY_LIMITED",
    );
    list_customers_as(&s, &other).await.unwrap();
    drop(stream);
    // The server lets go of the stream's permit once it sees the stream cancelled.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while list_customers_as(&s, &s.key).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the key may call again once its stream ended");
    s.stop().await;
}

on_each_backend!(
    a_flood_of_wrong_keys_is_throttled,
    keys_are_rate_limited_and_requests_size_limited,
    calls_in_flight_are_limited_per_key,
);

/// Bytes that are no protobuf message (a field tag with an invalid wire type) are the
/// caller's fault on every RPC of the contract: INVALID_ARGUMENT, MALFORMED_MESSAGE.
async fn undecodable_requests_are_invalid_arguments(s: &TestServer) {
    let paths: Vec<String> = dunning::grpc::rpc_paths()
        .into_iter()
        .filter(|p| p.starts_with("/dunning.v1."))
        .collect();
    assert!(paths.len() > 50, "{paths:?}");
    for path in paths {
        let mut grpc = tonic::client::Grpc::new(s.channel.clone());
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(vec![0x0f, 0xff, 0xff, 0xff]);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", s.key).parse().unwrap(),
        );
        let answer = grpc.unary(request, path.parse().unwrap(), RawCodec).await;
        let status = assert_error(answer, Code::InvalidArgument, "MALFORMED_MESSAGE");
        assert!(status.message().contains("protobuf"), "{path}: {status:?}");
    }
}

/// What a refusal weighs on the wire: its message and its details.
fn answer_bytes(status: &Status) -> usize {
    status.message().len() + status.details().len()
}

/// A 100,000-character id is quoted in part and thousands of bad items are counted, not all
/// listed: every refusal stays under 8 KB, which default clients read.
async fn error_answers_are_bounded(s: &TestServer) {
    let huge = "x".repeat(100_000);
    let missing = assert_error(
        s.customers()
            .get_customer(proto::GetCustomerRequest {
                customer: Some(get_customer_request::Customer::ExternalId(huge.clone())),
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert!(answer_bytes(&missing) < 8_000, "{}", answer_bytes(&missing));
    // 1,000 invoices with three bad fields each.
    let bad = (0..1_000)
        .map(|i| proto::Invoice {
            currency_code: "EURO".into(),
            total_amount: "lots".into(),
            due_date: format!("the {i}th"),
            ..invoice(&format!("inv_{i}"), "cus_1")
        })
        .collect();
    let refused = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest { invoices: bad })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert!(answer_bytes(&refused) < 8_000, "{}", answer_bytes(&refused));
    let fields = bad_fields(&refused);
    assert!(fields.len() <= 101, "{}", fields.len());
    let listed = tonic_types::StatusExt::get_details_bad_request(&refused)
        .unwrap()
        .field_violations;
    assert!(
        listed
            .last()
            .unwrap()
            .description
            .contains("more bad fields"),
        "{:?}",
        listed.last()
    );
}

/// A page token works only for the list, the organization and the filters it was issued for.
async fn page_tokens_are_bound_to_their_list_and_organization(s: &TestServer) {
    for id in ["cus_a", "cus_b"] {
        s.create_customer(id).await;
    }
    let token = s
        .customers()
        .list_customers(proto::ListCustomersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let other = s.other_organization("other").await;
    assert_error(
        s.customers_as(&other)
            .list_customers(proto::ListCustomersRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_error(
        s.invoices()
            .list_invoices(proto::ListInvoicesRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    let second = s
        .customers()
        .list_customers(proto::ListCustomersRequest {
            page_size: 1,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.customers.len(), 1);
}
