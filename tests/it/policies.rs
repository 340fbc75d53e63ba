//! Dunning policies through the gRPC API: create, read, list, versioned update, archive, the
//! validation of every field, and the checks on policy codes given elsewhere.

use crate::common::policy::{amount, plain, reminder, step};
use crate::common::{TestServer, assert_error, bad_fields, customer, invoice};
use dunning::proto::{self, ActionCondition, ActionType, PolicyScope, StepAnchor, TemplateKind};
use prost_types::FieldMask;
use tonic::Code;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

/// A policy using every kind of setting.
fn full_policy(code: &str) -> proto::Policy {
    proto::Policy {
        code: code.into(),
        name: "Standard B2B".into(),
        scope: PolicyScope::Invoice as i32,
        thresholds: vec![amount("EUR", "10")],
        bcc_emails: vec!["audit@acme.test".into()],
        collection_agency_email: "cases@agency.test".into(),
        steps: vec![
            step(
                "Heads-up",
                -3,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::PreDueReminder)],
            ),
            step(
                "Friendly",
                7,
                StepAnchor::DueDate,
                vec![
                    reminder(TemplateKind::FriendlyReminder),
                    proto::Action {
                        r#type: ActionType::ApplyFee as i32,
                        fee: Some(proto::FeeSettings {
                            fixed_amounts: vec![amount("EUR", "5")],
                            percentage: "1.50".into(),
                            caps: vec![amount("EUR", "50")],
                            bands: vec![
                                proto::FeeBand {
                                    currency_code: "GBP".into(),
                                    min_amount_due: "0".into(),
                                    fee_amount: "40".into(),
                                },
                                proto::FeeBand {
                                    currency_code: "GBP".into(),
                                    min_amount_due: "1000".into(),
                                    fee_amount: "70.00".into(),
                                },
                            ],
                        }),
                        ..Default::default()
                    },
                ],
            ),
            step(
                "Retry",
                14,
                StepAnchor::PreviousStep,
                vec![
                    plain(ActionType::RetryPayment),
                    proto::Action {
                        condition: ActionCondition::OnPaymentFailure as i32,
                        ..reminder(TemplateKind::FinalNotice)
                    },
                    proto::Action {
                        r#type: ActionType::AccrueInterest as i32,
                        interest: Some(proto::InterestSettings {
                            statutory: true,
                            statutory_margin_percent: "9".into(),
                            reference_rates: vec![proto::ReferenceRate {
                                period_start_date: "2026-07-01".into(),
                                rate_percent: "2.15".into(),
                            }],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ],
            ),
            step(
                "Agency",
                30,
                StepAnchor::PreviousStep,
                vec![plain(ActionType::Escalate)],
            ),
        ],
        ..Default::default()
    }
}

/// A minimal valid policy.
fn simple_policy(code: &str, scope: PolicyScope) -> proto::Policy {
    proto::Policy {
        code: code.into(),
        name: format!("Policy {code}"),
        scope: scope as i32,
        steps: vec![step(
            "Remind",
            3,
            StepAnchor::DueDate,
            vec![reminder(TemplateKind::FriendlyReminder)],
        )],
        ..Default::default()
    }
}

async fn create(s: &TestServer, policy: proto::Policy) -> Result<proto::Policy, tonic::Status> {
    s.dunning()
        .create_policy(proto::CreatePolicyRequest {
            policy: Some(policy),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().policy.unwrap())
}

async fn get(s: &TestServer, code: &str, version: i32) -> Result<proto::Policy, tonic::Status> {
    s.dunning()
        .get_policy(proto::GetPolicyRequest {
            code: code.into(),
            version,
        })
        .await
        .map(|r| r.into_inner().policy.unwrap())
}

async fn update(
    s: &TestServer,
    policy: proto::Policy,
    paths: &[&str],
) -> Result<proto::Policy, tonic::Status> {
    s.dunning()
        .update_policy(proto::UpdatePolicyRequest {
            policy: Some(policy),
            update_mask: mask(paths),
        })
        .await
        .map(|r| r.into_inner().policy.unwrap())
}

async fn set_default_policy(
    s: &TestServer,
    code: &str,
) -> Result<proto::Organization, tonic::Status> {
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                default_policy_code: code.into(),
                ..Default::default()
            }),
            update_mask: mask(&["default_policy_code"]),
        })
        .await
        .map(|r| r.into_inner().organization.unwrap())
}

async fn created_policies_read_back_normalised(s: &TestServer) {
    let created = create(s, full_policy("standard-b2b")).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(!created.archived);
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);
    assert_eq!(created.thresholds, vec![amount("EUR", "10.00")]);
    let fee = created.steps[1].actions[1].fee.clone().unwrap();
    assert_eq!(fee.fixed_amounts, vec![amount("EUR", "5.00")]);
    assert_eq!(fee.percentage, "1.5");
    assert_eq!(fee.caps, vec![amount("EUR", "50.00")]);
    assert_eq!(
        fee.bands
            .iter()
            .map(|b| (b.min_amount_due.as_str(), b.fee_amount.as_str()))
            .collect::<Vec<_>>(),
        vec![("0.00", "40.00"), ("1000.00", "70.00")]
    );
    // Defaults on input are spelled out on output.
    assert_eq!(
        created.steps[0].actions[0].condition,
        ActionCondition::Always as i32
    );
    assert_eq!(
        created.steps[2].actions[1].condition,
        ActionCondition::OnPaymentFailure as i32
    );
    let interest = created.steps[2].actions[2].interest.clone().unwrap();
    assert_eq!(interest.day_count, proto::DayCount::Act365 as i32);
    assert_eq!(interest.reference_rates[0].rate_percent, "2.15");
    assert_eq!(get(s, "standard-b2b", 0).await.unwrap(), created);
    assert_eq!(get(s, "standard-b2b", 1).await.unwrap(), created);
}

async fn codes_are_unique_and_request_ids_replay(s: &TestServer) {
    create(s, simple_policy("p", PolicyScope::Invoice))
        .await
        .unwrap();
    assert_error(
        create(s, simple_policy("p", PolicyScope::Invoice)).await,
        Code::AlreadyExists,
        "POLICY_ALREADY_EXISTS",
    );
    let with_id = |policy| proto::CreatePolicyRequest {
        policy: Some(policy),
        request_id: "req-1".into(),
    };
    let first = s
        .dunning()
        .create_policy(with_id(simple_policy("q", PolicyScope::Invoice)))
        .await
        .unwrap()
        .into_inner();
    let replay = s
        .dunning()
        .create_policy(with_id(simple_policy("q", PolicyScope::Invoice)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replay);
    assert_error(
        s.dunning()
            .create_policy(with_id(simple_policy("q", PolicyScope::CustomerBalance)))
            .await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );
}

async fn every_bad_field_is_named(s: &TestServer) {
    let check = |mutate: fn(&mut proto::Policy), field: &'static str| async move {
        let mut policy = simple_policy("bad", PolicyScope::Invoice);
        mutate(&mut policy);
        let status = assert_error(
            create(s, policy).await,
            Code::InvalidArgument,
            "VALIDATION_FAILED",
        );
        let fields = bad_fields(&status);
        assert!(
            fields.contains(&field.to_string()),
            "{field} not in {fields:?}"
        );
    };
    check(|p| p.code = String::new(), "policy.code").await;
    check(|p| p.code = "Bad Code".into(), "policy.code").await;
    check(|p| p.name = String::new(), "policy.name").await;
    check(|p| p.scope = 0, "policy.scope").await;
    check(|p| p.steps.clear(), "policy.steps").await;
    check(|p| p.steps = vec![p.steps[0].clone(); 51], "policy.steps").await;
    check(|p| p.steps[0].actions.clear(), "policy.steps[0].actions").await;
    check(
        |p| p.steps[0].actions[0].r#type = 0,
        "policy.steps[0].actions[0].type",
    )
    .await;
    check(
        |p| p.steps[0].actions[0].template_kind = 0,
        "policy.steps[0].actions[0].template_kind",
    )
    .await;
    check(
        |p| p.steps[0].actions[0].template_kind = 99,
        "policy.steps[0].actions[0].template_kind",
    )
    .await;
    check(|p| p.steps[0].anchor = 0, "policy.steps[0].anchor").await;
    check(
        |p| p.steps[0].delay_days = -400,
        "policy.steps[0].delay_days",
    )
    .await;
    check(
        |p| {
            p.steps.push(step(
                "Earlier",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FirmReminder)],
            ))
        },
        "policy.steps[1].delay_days",
    )
    .await;
    check(
        |p| {
            p.steps.push(step(
                "Back",
                -1,
                StepAnchor::PreviousStep,
                vec![reminder(TemplateKind::FirmReminder)],
            ))
        },
        "policy.steps[1].delay_days",
    )
    .await;
    check(
        |p| p.steps[0].actions[0].condition = ActionCondition::OnPaymentFailure as i32,
        "policy.steps[0].actions[0].condition",
    )
    .await;
    check(
        |p| p.steps[0].actions.push(plain(ActionType::Escalate)),
        "policy.collection_agency_email",
    )
    .await;
    check(
        |p| p.steps[0].actions.push(plain(ActionType::ApplyFee)),
        "policy.steps[0].actions[1].fee",
    )
    .await;
    check(
        |p| {
            p.steps[0].actions.push(proto::Action {
                r#type: ActionType::ApplyFee as i32,
                fee: Some(proto::FeeSettings::default()),
                ..Default::default()
            })
        },
        "policy.steps[0].actions[1].fee",
    )
    .await;
    check(
        |p| {
            p.steps[0].actions.push(proto::Action {
                r#type: ActionType::ApplyFee as i32,
                fee: Some(proto::FeeSettings {
                    percentage: "abc".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        },
        "policy.steps[0].actions[1].fee.percentage",
    )
    .await;
    check(
        |p| {
            p.steps[0].actions.push(proto::Action {
                r#type: ActionType::ApplyFee as i32,
                fee: Some(proto::FeeSettings {
                    fixed_amounts: vec![amount("EUR", "5.001")],
                    ..Default::default()
                }),
                ..Default::default()
            })
        },
        "policy.steps[0].actions[1].fee.fixed_amounts[0].amount",
    )
    .await;
    check(
        |p| p.steps[0].actions.push(plain(ActionType::AccrueInterest)),
        "policy.steps[0].actions[1].interest",
    )
    .await;
    check(
        |p| {
            p.steps[0].actions.push(proto::Action {
                r#type: ActionType::AccrueInterest as i32,
                interest: Some(proto::InterestSettings {
                    statutory: true,
                    statutory_margin_percent: "9".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        },
        "policy.steps[0].actions[1].interest.reference_rates",
    )
    .await;
    check(
        |p| p.thresholds = vec![amount("XXX", "1")],
        "policy.thresholds[0].currency_code",
    )
    .await;
    check(
        |p| p.thresholds = vec![amount("EUR", "1"), amount("EUR", "2")],
        "policy.thresholds[1].currency_code",
    )
    .await;
    check(
        |p| p.bcc_emails = vec!["nope".into()],
        "policy.bcc_emails[0]",
    )
    .await;

    // One answer names every bad field at once, format errors and rules alike.
    let mut policy = simple_policy("bad", PolicyScope::Invoice);
    policy.name = String::new();
    policy.steps[0].actions[0].condition = ActionCondition::OnPaymentFailure as i32;
    policy.steps.push(step(
        "Escalate",
        0,
        StepAnchor::DueDate,
        vec![plain(ActionType::Escalate)],
    ));
    let status = assert_error(
        create(s, policy).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    let mut fields = bad_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "policy.collection_agency_email",
            "policy.name",
            "policy.steps[0].actions[0].condition",
            "policy.steps[1].delay_days",
        ]
    );
    // Nothing was stored by the refused calls.
    assert_error(get(s, "bad", 0).await, Code::NotFound, "POLICY_NOT_FOUND");
}

async fn updates_make_versions_and_old_versions_stay(s: &TestServer) {
    let v1 = create(s, full_policy("std")).await.unwrap();
    s.clock.advance(chrono::Duration::minutes(5));
    let v2 = update(
        s,
        proto::Policy {
            code: "std".into(),
            name: "Renamed".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.name, "Renamed");
    assert_eq!(v2.steps, v1.steps, "fields outside the mask are kept");
    assert_eq!(v2.create_time, v1.create_time);
    assert_ne!(v2.update_time, v1.update_time);
    assert_eq!(get(s, "std", 1).await.unwrap(), v1);
    assert_eq!(get(s, "std", 0).await.unwrap(), v2);
    // The same values again: no new version.
    let same = update(
        s,
        proto::Policy {
            code: "std".into(),
            name: "Renamed".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    assert_eq!(same, v2);
    assert_error(
        get(s, "std", 3).await,
        Code::NotFound,
        "POLICY_VERSION_NOT_FOUND",
    );
    // A change of steps is validated against the whole policy.
    let mut bad = v2.clone();
    bad.steps.push(step(
        "Early",
        0,
        StepAnchor::DueDate,
        vec![reminder(TemplateKind::FirmReminder)],
    ));
    let status = assert_error(
        update(s, bad, &["steps"]).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["policy.steps[4].delay_days"]);
    let status = assert_error(
        update(s, v2.clone(), &["version"]).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["update_mask"]);
    assert_error(
        update(s, v2.clone(), &[]).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_error(
        update(s, simple_policy("missing", PolicyScope::Invoice), &["name"]).await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    assert_eq!(
        get(s, "std", 0).await.unwrap().version,
        2,
        "refused updates wrote nothing"
    );
}

async fn lists_page_by_code_and_hide_archived(s: &TestServer) {
    for code in ["c", "a", "b"] {
        create(s, simple_policy(code, PolicyScope::Invoice))
            .await
            .unwrap();
    }
    update(
        s,
        proto::Policy {
            code: "a".into(),
            name: "A2".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    s.dunning()
        .archive_policy(proto::ArchivePolicyRequest { code: "b".into() })
        .await
        .unwrap();
    let list = |page_token: String, include_archived| async move {
        s.dunning()
            .list_policies(proto::ListPoliciesRequest {
                page_size: 2,
                page_token,
                include_archived,
            })
            .await
            .unwrap()
            .into_inner()
    };
    let first = list(String::new(), true).await;
    assert_eq!(
        first
            .policies
            .iter()
            .map(|p| (p.code.as_str(), p.version))
            .collect::<Vec<_>>(),
        vec![("a", 2), ("b", 1)]
    );
    let second = list(first.next_page_token.clone(), true).await;
    assert_eq!(
        second
            .policies
            .iter()
            .map(|p| p.code.as_str())
            .collect::<Vec<_>>(),
        vec!["c"]
    );
    assert!(second.next_page_token.is_empty());
    let active = list(String::new(), false).await;
    assert_eq!(
        active
            .policies
            .iter()
            .map(|p| p.code.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "c"]
    );
    assert_error(
        s.dunning()
            .list_policies(proto::ListPoliciesRequest {
                page_size: 2,
                page_token: first.next_page_token,
                include_archived: false,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
}

async fn archiving_keeps_holders_and_refuses_new_ones(s: &TestServer) {
    create(s, simple_policy("inv", PolicyScope::Invoice))
        .await
        .unwrap();
    create(s, simple_policy("bal", PolicyScope::CustomerBalance))
        .await
        .unwrap();
    set_default_policy(s, "bal").await.unwrap();
    assert_error(
        s.dunning()
            .archive_policy(proto::ArchivePolicyRequest { code: "bal".into() })
            .await,
        Code::FailedPrecondition,
        "POLICY_IS_DEFAULT",
    );
    // An invoice names the INVOICE-scope policy, then it is archived.
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(customer("cus_1")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut inv = invoice("inv_1", "cus_1");
    inv.policy_code = "inv".into();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest {
            invoice: Some(inv.clone()),
        })
        .await
        .unwrap();
    let archived = s
        .dunning()
        .archive_policy(proto::ArchivePolicyRequest { code: "inv".into() })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert!(archived.archived);
    let again = s
        .dunning()
        .archive_policy(proto::ArchivePolicyRequest { code: "inv".into() })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(again, archived);
    assert_error(
        update(s, simple_policy("inv", PolicyScope::Invoice), &["name"]).await,
        Code::FailedPrecondition,
        "POLICY_ARCHIVED",
    );
    // The invoice keeps it on re-sync; a new invoice cannot take it.
    inv.total_amount = "120.00".into();
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(inv) })
        .await
        .unwrap();
    let mut other = invoice("inv_2", "cus_1");
    other.policy_code = "inv".into();
    assert_error(
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(other),
            })
            .await,
        Code::FailedPrecondition,
        "POLICY_ARCHIVED",
    );
}

async fn policy_codes_elsewhere_must_name_assignable_policies(s: &TestServer) {
    create(s, simple_policy("inv", PolicyScope::Invoice))
        .await
        .unwrap();
    create(s, simple_policy("bal", PolicyScope::CustomerBalance))
        .await
        .unwrap();
    assert_error(
        set_default_policy(s, "missing").await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    assert_eq!(
        set_default_policy(s, "bal")
            .await
            .unwrap()
            .default_policy_code,
        "bal"
    );

    let mut c = customer("cus_1");
    c.policy_code = "missing".into();
    assert_error(
        s.customers()
            .create_customer(proto::CreateCustomerRequest {
                customer: Some(c.clone()),
                request_id: String::new(),
            })
            .await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    c.policy_code = "bal".into();
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_error(
        s.customers()
            .update_customer(proto::UpdateCustomerRequest {
                customer: Some(proto::Customer {
                    external_id: "cus_1".into(),
                    policy_code: "missing".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["policy_code"]),
            })
            .await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );

    let mut inv = invoice("inv_1", "cus_1");
    inv.policy_code = "missing".into();
    assert_error(
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(inv.clone()),
            })
            .await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    inv.policy_code = "bal".into();
    let status = assert_error(
        s.invoices()
            .upsert_invoice(proto::UpsertInvoiceRequest {
                invoice: Some(inv.clone()),
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["invoice.policy_code"]);
    inv.policy_code = "inv".into();
    let stored = s
        .invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(inv) })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(stored.policy_code, "inv");
    // Batches name the item.
    let mut batch_item = invoice("inv_2", "cus_1");
    batch_item.policy_code = "bal".into();
    let status = assert_error(
        s.invoices()
            .batch_upsert_invoices(proto::BatchUpsertInvoicesRequest {
                invoices: vec![invoice("inv_3", "cus_1"), batch_item],
            })
            .await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["invoices[1].policy_code"]);
}

async fn other_organizations_do_not_see_policies(s: &TestServer) {
    create(s, simple_policy("mine", PolicyScope::Invoice))
        .await
        .unwrap();
    let key = s.other_organization("other").await;
    let mut theirs = proto::dunning_service_client::DunningServiceClient::with_interceptor(
        s.channel.clone(),
        s.auth(&key),
    );
    assert_error(
        theirs
            .get_policy(proto::GetPolicyRequest {
                code: "mine".into(),
                version: 0,
            })
            .await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    // The same code is free in another organization.
    theirs
        .create_policy(proto::CreatePolicyRequest {
            policy: Some(simple_policy("mine", PolicyScope::CustomerBalance)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        get(s, "mine", 0).await.unwrap().scope,
        PolicyScope::Invoice as i32
    );
}

on_both_backends! {
    created_policies_read_back_normalised,
    codes_are_unique_and_request_ids_replay,
    every_bad_field_is_named,
    updates_make_versions_and_old_versions_stay,
    lists_page_by_code_and_hide_archived,
    archiving_keeps_holders_and_refuses_new_ones,
    policy_codes_elsewhere_must_name_assignable_policies,
    other_organizations_do_not_see_policies,
}
