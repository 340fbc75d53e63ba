//! The dunning engine through the gRPC API with the manual clock: processes start by
//! themselves, run every action of their policy exactly as configured, and follow what happens
//! to their invoices. Emails are counted at a real SMTP server, charges at a real HTTP
//! payments service.

use crate::common::engine::*;
use crate::common::payments::{self, PaymentsServer};
use crate::common::policy::{ladder, on_failure, plain, reminder, step};
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, customer};
use chrono::{DateTime, Utc};
use dunning::proto::{self, ActionType, PolicyScope, ProcessState, StepAnchor, TemplateKind};

/// 120 days of one invoice under an INVOICE-scope policy: every step at its time, every
/// email exactly once, the decline running the failure actions, fee and interest to the cent,
/// the events in order, and the write-off resolving the process.
async fn invoice_scope_runs_the_whole_ladder(s: &TestServer, smtp: &SmtpServer) {
    let psp = customer_with_declining_card(s, "cus_a").await;
    create_policy(s, ladder("std", PolicyScope::Invoice)).await;
    use_default_policy(s, "std").await;
    upsert(
        s,
        invoice_of("inv_1", "cus_a", "1000.00", "EUR", "2026-11-30"),
    )
    .await;

    // Nothing before the heads-up's day (Nov 27, local midnight).
    run_everything(s).await;
    assert!(processes(s, "cus_a").await.is_empty());
    live_until(s, at("2026-11-27T12:00:00Z")).await;
    let p = only_process(s, "cus_a").await;
    assert_eq!(p.state, ProcessState::Active as i32);
    assert_eq!(p.current_step_index, 1);
    assert_eq!(smtp.received().len(), 1);

    live_until(s, at("2027-03-24T12:00:00Z")).await;
    let mails = smtp.received();
    let subjects: Vec<(Vec<String>, String)> = mails
        .iter()
        .map(|m| (m.rcpt_to.clone(), m.header("Subject").unwrap_or_default()))
        .collect();
    assert_eq!(mails.len(), 6, "{subjects:#?}");
    // The outbox sends a day's emails concurrently: compare them as a set.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let customer_and_bcc = || vec!["audit@acme.test".to_string(), "cus_a@example.com".into()];
    let mut got: Vec<Vec<String>> = mails.iter().map(|m| sorted(m.rcpt_to.clone())).collect();
    got.sort();
    let mut expected = vec![
        customer_and_bcc(),
        customer_and_bcc(),
        customer_and_bcc(),
        vec!["audit@acme.test".into(), "rep@acme.test".into()],
        customer_and_bcc(),
        vec!["audit@acme.test".into(), "cases@agency.test".into()],
    ];
    expected.sort();
    assert_eq!(got, expected, "{subjects:#?}");
    // The final notice lists the fee and the interest booked before it, and the total.
    let final_notice = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .starts_with("Final notice")
        })
        .expect("final notice sent");
    let text = &final_notice.data;
    // The agency gets the statement: the invoice with its fee and interest, and the history.
    let handover = mails
        .iter()
        .find(|m| m.rcpt_to.contains(&"cases@agency.test".to_string()))
        .expect("agency email");
    assert!(
        handover
            .data
            .contains("Content-Disposition: attachment; filename=\"statement-cus_a.csv\""),
        "{}",
        handover.data
    );
    assert!(text.contains("40.00"), "{text}");
    assert!(text.contains("4.60"), "{text}");
    assert!(text.contains("1,044.60"), "{text}");

    // One charge attempt, declined: the failure actions ran.
    assert_eq!(psp.requests().len(), 1);
    assert_eq!(psp.charges_made(), 0);

    let p = only_process(s, "cus_a").await;
    assert_eq!(p.state, ProcessState::Resolved as i32, "{p:#?}");
    assert_eq!(p.history.len(), 6);
    let steps: Vec<i32> = p.history.iter().map(|r| r.step_index).collect();
    assert_eq!(steps, vec![0, 1, 2, 3, 4, 5]);
    let times: Vec<DateTime<Utc>> = p
        .history
        .iter()
        .map(|r| {
            let t = r.executed_time.as_ref().unwrap();
            DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
        })
        .collect();
    // Due-date steps on their day's first tick; previous-step steps counted from the run
    // before them.
    assert_eq!(
        times,
        vec![
            at("2026-11-27T12:00:00Z"),
            at("2026-12-01T12:00:00Z"),
            at("2026-12-07T12:00:00Z"),
            at("2026-12-21T12:00:00Z"),
            at("2027-01-20T12:00:00Z"),
            at("2027-03-21T12:00:00Z"),
        ]
    );
    assert_eq!(
        statuses(&p.history[2]),
        vec![
            (ActionType::RetryPayment as i32, FAILED),
            (ActionType::SendReminder as i32, SUCCEEDED),
            (ActionType::ApplyFee as i32, SUCCEEDED),
            (ActionType::NotifySales as i32, SUCCEEDED),
        ]
    );
    assert_eq!(p.history[2].action_outcomes[2].charge_amount, "40.00");
    assert_eq!(p.history[3].action_outcomes[0].charge_amount, "4.60");
    let charges: Vec<(i32, String, String, String)> = p
        .charges
        .iter()
        .map(|c| {
            (
                c.kind,
                c.amount.clone(),
                c.interest_from_date.clone(),
                c.interest_to_date.clone(),
            )
        })
        .collect();
    assert_eq!(
        charges,
        vec![
            (
                proto::ChargeKind::Fee as i32,
                "40.00".into(),
                String::new(),
                String::new()
            ),
            (
                proto::ChargeKind::Interest as i32,
                "4.60".into(),
                "2026-12-01".into(),
                "2026-12-21".into()
            ),
        ]
    );
    assert_eq!(
        process_events(s).await,
        vec![
            "process.started",
            "process.step_executed 0",
            "process.step_executed 1",
            "process.step_executed 2",
            "fee.booked 40.00",
            "sales.informed",
            "process.step_executed 2",
            "interest.booked 4.60",
            "suspension.requested",
            "process.step_executed 3",
            "process.escalated",
            "process.step_executed 4",
            "invoice.written_off",
            "process.resolved",
            "suspension.lift_requested",
            "process.step_executed 5",
        ]
    );
}

/// A customer's balance: invoices that become overdue later join the running process, the
/// reminders list them all, and a payment that settles everything resolves the process in
/// its own transaction (no later step runs).
async fn customer_balance_joins_and_resolves_on_payment(s: &TestServer, smtp: &SmtpServer) {
    create_policy(
        s,
        proto::Policy {
            code: "bal".into(),
            name: "Balance".into(),
            scope: PolicyScope::CustomerBalance as i32,
            steps: vec![
                step(
                    "Friendly",
                    1,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FriendlyReminder)],
                ),
                step(
                    "Firm",
                    10,
                    StepAnchor::PreviousStep,
                    vec![reminder(TemplateKind::FirmReminder)],
                ),
                step(
                    "Final",
                    10,
                    StepAnchor::PreviousStep,
                    vec![reminder(TemplateKind::FinalNotice)],
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "bal").await;
    create_customer(s, customer("cus_b")).await;
    upsert(
        s,
        invoice_of("inv_1", "cus_b", "100.00", "EUR", "2026-11-24"),
    )
    .await;
    upsert(
        s,
        invoice_of("inv_2", "cus_b", "50.00", "EUR", "2026-11-28"),
    )
    .await;
    live_until(s, at("2026-11-25T12:00:00Z")).await;
    let p = only_process(s, "cus_b").await;
    assert_eq!(p.invoice_external_ids, vec!["inv_1"]);
    assert_eq!(p.amount_due, "100.00");
    assert_eq!(smtp.received().len(), 1);

    // inv_2 is overdue from Nov 29 and joins before the firm reminder (Dec 5).
    live_until(s, at("2026-12-05T12:00:00Z")).await;
    let p = only_process(s, "cus_b").await;
    assert_eq!(p.invoice_external_ids, vec!["inv_1", "inv_2"]);
    assert_eq!(p.amount_due, "150.00");
    let mails = smtp.received();
    assert_eq!(mails.len(), 2);
    assert!(mails[1].data.contains("150.00"), "{}", mails[1].data);

    // Paid in full between two steps: resolved at once, nothing more is sent.
    pay(s, "inv_1", "pay_1", "100.00").await;
    let p = only_process(s, "cus_b").await;
    assert_eq!(p.state, ProcessState::Active as i32);
    pay(s, "inv_2", "pay_2", "50.00").await;
    let p = only_process(s, "cus_b").await;
    assert_eq!(p.state, ProcessState::Resolved as i32);
    assert!(p.end_time.is_some());
    live_until(s, at("2027-01-05T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 2);
    let types = process_events(s).await;
    assert_eq!(
        types,
        vec![
            "process.started",
            "process.step_executed 0",
            "process.invoice_joined",
            "process.step_executed 1",
            "process.resolved",
        ]
    );
}

/// A process started on a long-overdue invoice runs only the latest due step; the earlier
/// ones are recorded as superseded and send nothing.
async fn catch_up_runs_only_the_latest_due_step(s: &TestServer, smtp: &SmtpServer) {
    create_policy(
        s,
        proto::Policy {
            code: "std".into(),
            name: "Standard".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![
                step(
                    "D1",
                    1,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FriendlyReminder)],
                ),
                step(
                    "D15",
                    15,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FirmReminder)],
                ),
                step(
                    "D45",
                    45,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FinalNotice)],
                ),
                step(
                    "D90",
                    90,
                    StepAnchor::DueDate,
                    vec![plain(ActionType::Escalate)],
                ),
            ],
            collection_agency_email: "cases@agency.test".into(),
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "std").await;
    create_customer(s, customer("cus_c")).await;
    // Due 60 days before the test's start.
    upsert(
        s,
        invoice_of("inv_old", "cus_c", "80.00", "EUR", "2026-09-25"),
    )
    .await;
    run_everything(s).await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]
            .header("Subject")
            .unwrap()
            .to_lowercase()
            .contains("final"),
        "{:?}",
        mails[0].header("Subject")
    );
    let p = only_process(s, "cus_c").await;
    assert_eq!(p.current_step_index, 3);
    let skipped: Vec<(i32, i32, String)> = p
        .history
        .iter()
        .map(|r| {
            (
                r.step_index,
                r.action_outcomes[0].status,
                r.action_outcomes[0].detail.clone(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            (0, SKIPPED, "superseded by step 3 (D45)".into()),
            (1, SKIPPED, "superseded by step 3 (D45)".into()),
            (2, SUCCEEDED, "email sent".into()),
        ]
    );
    // The next step keeps its date: day 90 after the due date.
    assert_eq!(
        p.next_step_time.unwrap().seconds,
        at("2026-12-24T00:00:00Z").timestamp()
    );
}

/// Thresholds per currency: below the EUR threshold nothing starts; at it, it starts; a
/// currency without a threshold starts with any amount due.
async fn thresholds_per_currency(s: &TestServer, _smtp: &SmtpServer) {
    create_policy(
        s,
        proto::Policy {
            code: "thr".into(),
            name: "Threshold".into(),
            scope: PolicyScope::Invoice as i32,
            thresholds: vec![crate::common::policy::amount("EUR", "50")],
            steps: vec![step(
                "D1",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            )],
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "thr").await;
    create_customer(s, customer("cus_t")).await;
    upsert(
        s,
        invoice_of("below", "cus_t", "49.99", "EUR", "2026-11-10"),
    )
    .await;
    upsert(s, invoice_of("at", "cus_t", "50.00", "EUR", "2026-11-10")).await;
    upsert(s, invoice_of("usd", "cus_t", "0.01", "USD", "2026-11-10")).await;
    run_everything(s).await;
    let mut covered: Vec<String> = processes(s, "cus_t")
        .await
        .into_iter()
        .flat_map(|p| p.invoice_external_ids)
        .collect();
    covered.sort();
    assert_eq!(covered, vec!["at", "usd"]);
}

/// A dispute pauses the process; clearing it resumes it and the missed step runs at once.
async fn dispute_pauses_and_clearing_resumes(s: &TestServer, smtp: &SmtpServer) {
    create_policy(s, ladder("std", PolicyScope::Invoice)).await;
    use_default_policy(s, "std").await;
    create_customer(s, customer("cus_d")).await;
    upsert(
        s,
        invoice_of("inv_d", "cus_d", "10.00", "EUR", "2026-11-30"),
    )
    .await;
    live_until(s, at("2026-11-28T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 1);
    let flag = |disputed: bool| proto::UpdateInvoiceRequest {
        invoice: Some(proto::Invoice {
            external_id: "inv_d".into(),
            disputed,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["disputed".into()],
        }),
    };
    s.invoices().update_invoice(flag(true)).await.unwrap();
    let p = only_process(s, "cus_d").await;
    assert_eq!(p.state, ProcessState::Paused as i32);
    assert_eq!(p.pause_reason, proto::PauseReason::Dispute as i32);
    live_until(s, at("2026-12-03T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 1, "nothing is sent while disputed");
    s.invoices().update_invoice(flag(false)).await.unwrap();
    run_everything(s).await;
    let p = only_process(s, "cus_d").await;
    assert_eq!(p.state, ProcessState::Active as i32);
    assert_eq!(
        p.current_step_index, 2,
        "the friendly reminder ran on resume"
    );
    assert_eq!(smtp.received().len(), 2);
}

/// A payment that arrives after the engine claimed a due step but before it ran: the step
/// does not run, nothing is sent.
async fn payment_between_claim_and_commit(s: &TestServer, smtp: &SmtpServer) {
    create_policy(s, ladder("std", PolicyScope::Invoice)).await;
    use_default_policy(s, "std").await;
    create_customer(s, customer("cus_e")).await;
    upsert(
        s,
        invoice_of("inv_e", "cus_e", "10.00", "EUR", "2026-11-30"),
    )
    .await;
    live_until(s, at("2026-11-27T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 1);
    s.clock.set(at("2026-12-01T12:00:00Z"));
    let jobs = s.server().engine();
    let claims = jobs.claim_due_processes(10).await.unwrap();
    assert_eq!(claims.len(), 1);
    pay(s, "inv_e", "pay_e", "10.00").await;
    assert!(!jobs.run_claimed_process(&claims[0]).await.unwrap());
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 1);
    let p = only_process(s, "cus_e").await;
    assert_eq!(p.state, ProcessState::Resolved as i32);
    assert_eq!(p.history.len(), 1);
}

/// A hard decline blocks later retries until the customer's payment method changes; a
/// success skips the failure actions.
async fn hard_decline_blocks_retries_until_the_method_changes(s: &TestServer, smtp: &SmtpServer) {
    let psp = PaymentsServer::start().await;
    psp.set_mode(payments::Mode::Decline {
        code: "stolen_card".into(),
        hard: true,
    });
    use_http_provider(s, &psp.url).await;
    let retry = |name: &str, delay| {
        step(
            name,
            delay,
            StepAnchor::DueDate,
            vec![
                plain(ActionType::RetryPayment),
                on_failure(reminder(TemplateKind::FirmReminder)),
            ],
        )
    };
    create_policy(
        s,
        proto::Policy {
            code: "retry".into(),
            name: "Retries".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![retry("R1", 1), retry("R2", 5), retry("R3", 9)],
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "retry").await;
    let method = |token: &str| proto::PaymentMethod {
        provider: "http".into(),
        token: token.into(),
    };
    create_customer(
        s,
        proto::Customer {
            payment_method: Some(method("pm_stolen")),
            ..customer("cus_h")
        },
    )
    .await;
    upsert(
        s,
        invoice_of("inv_h", "cus_h", "25.00", "EUR", "2026-11-24"),
    )
    .await;
    live_until(s, at("2026-11-25T12:00:00Z")).await;
    assert_eq!(psp.requests().len(), 1);
    let p = only_process(s, "cus_h").await;
    assert!(p.payment_retries_blocked);
    assert_eq!(
        statuses(&p.history[0])[0],
        (ActionType::RetryPayment as i32, FAILED)
    );
    // R2: blocked, no charge attempted; the failure reminder still goes out.
    live_until(s, at("2026-11-29T12:00:00Z")).await;
    assert_eq!(psp.requests().len(), 1);
    let p = only_process(s, "cus_h").await;
    assert_eq!(
        statuses(&p.history[1]),
        vec![
            (ActionType::RetryPayment as i32, SKIPPED),
            (ActionType::SendReminder as i32, SUCCEEDED),
        ]
    );
    // A new payment method lifts the block; R3 charges it and succeeds.
    s.customers()
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(proto::Customer {
                external_id: "cus_h".into(),
                payment_method: Some(method("pm_new")),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["payment_method".into()],
            }),
        })
        .await
        .unwrap();
    assert!(!only_process(s, "cus_h").await.payment_retries_blocked);
    psp.set_mode(payments::Mode::Succeed);
    live_until(s, at("2026-12-03T12:00:00Z")).await;
    assert_eq!(psp.requests().len(), 2);
    assert_eq!(psp.charges_made(), 1);
    let p = only_process(s, "cus_h").await;
    assert_eq!(p.state, ProcessState::Resolved as i32);
    // Two firm reminders (after R1 and R2), none after the success.
    assert_eq!(smtp.received().len(), 2);
}

fn two_reminders(code: &str, kind: TemplateKind) -> proto::Policy {
    proto::Policy {
        code: code.into(),
        name: format!("Policy {code}"),
        scope: PolicyScope::Invoice as i32,
        steps: vec![
            step("First", 1, StepAnchor::DueDate, vec![reminder(kind)]),
            step("Later", 60, StepAnchor::DueDate, vec![reminder(kind)]),
        ],
        ..Default::default()
    }
}

async fn update_customer(s: &TestServer, c: proto::Customer, paths: &[&str]) {
    s.customers()
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(c),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        })
        .await
        .unwrap();
}

/// The invoice's policy before the customer's before the organization's; manual invoices only
/// with `include_manual_invoices`; a customer's exclusion pauses its processes and lifting it
/// resumes them; deleting a customer cancels them.
async fn precedence_manual_invoices_exclusion_and_deletion(s: &TestServer, _smtp: &SmtpServer) {
    for (code, kind) in [
        ("org", TemplateKind::FriendlyReminder),
        ("cus", TemplateKind::FirmReminder),
        ("inv", TemplateKind::FinalNotice),
    ] {
        create_policy(s, two_reminders(code, kind)).await;
    }
    use_default_policy(s, "org").await;
    create_customer(
        s,
        proto::Customer {
            policy_code: "cus".into(),
            ..customer("cus_p")
        },
    )
    .await;
    create_customer(s, customer("cus_q")).await;
    upsert(
        s,
        proto::Invoice {
            policy_code: "inv".into(),
            ..invoice_of("p_own", "cus_p", "10.00", "EUR", "2026-11-10")
        },
    )
    .await;
    upsert(
        s,
        invoice_of("p_plain", "cus_p", "10.00", "EUR", "2026-11-10"),
    )
    .await;
    upsert(
        s,
        invoice_of("q_plain", "cus_q", "10.00", "EUR", "2026-11-10"),
    )
    .await;
    upsert(
        s,
        proto::Invoice {
            collection_method: proto::CollectionMethod::Manual as i32,
            ..invoice_of("q_manual", "cus_q", "10.00", "EUR", "2026-11-10")
        },
    )
    .await;
    run_everything(s).await;
    let mut followed: Vec<(String, String)> = processes(s, "cus_p")
        .await
        .into_iter()
        .chain(processes(s, "cus_q").await)
        .map(|p| (p.invoice_external_ids[0].clone(), p.policy_code))
        .collect();
    followed.sort();
    assert_eq!(
        followed,
        vec![
            ("p_own".to_string(), "inv".to_string()),
            ("p_plain".into(), "cus".into()),
            ("q_plain".into(), "org".into()),
        ]
    );

    let excluded = |on: bool| proto::Customer {
        external_id: "cus_p".into(),
        dunning_excluded: on,
        ..Default::default()
    };
    update_customer(s, excluded(true), &["dunning_excluded"]).await;
    for p in processes(s, "cus_p").await {
        assert_eq!(p.state, ProcessState::Paused as i32);
        assert_eq!(p.pause_reason, proto::PauseReason::CustomerExcluded as i32);
    }
    update_customer(s, excluded(false), &["dunning_excluded"]).await;
    for p in processes(s, "cus_p").await {
        assert_eq!(p.state, ProcessState::Active as i32, "{p:?}");
    }

    s.customers()
        .delete_customer(proto::DeleteCustomerRequest {
            customer: Some(proto::delete_customer_request::Customer::ExternalId(
                "cus_q".into(),
            )),
        })
        .await
        .unwrap();
    let q = processes(s, "cus_q").await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].state, ProcessState::Cancelled as i32);
    assert_eq!(q[0].note, "the customer was deleted");
}

/// A policy edited while a process runs: the process keeps its version; a process started
/// after the edit follows the new one.
async fn editing_a_policy_keeps_running_processes_on_their_version(
    s: &TestServer,
    smtp: &SmtpServer,
) {
    let two_steps = |second: TemplateKind| proto::Policy {
        code: "std".into(),
        name: "Standard".into(),
        scope: PolicyScope::Invoice as i32,
        steps: vec![
            step(
                "D1",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            ),
            step("D10", 10, StepAnchor::DueDate, vec![reminder(second)]),
        ],
        ..Default::default()
    };
    create_policy(s, two_steps(TemplateKind::FirmReminder)).await;
    use_default_policy(s, "std").await;
    create_customer(s, customer("cus_v")).await;
    upsert(s, invoice_of("old", "cus_v", "10.00", "EUR", "2026-11-23")).await;
    live_until(s, at("2026-11-25T12:00:00Z")).await;
    s.dunning()
        .update_policy(proto::UpdatePolicyRequest {
            policy: Some(two_steps(TemplateKind::FinalNotice)),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["steps".into()],
            }),
        })
        .await
        .unwrap();
    upsert(s, invoice_of("new", "cus_v", "10.00", "EUR", "2026-11-23")).await;
    live_until(s, at("2026-12-04T12:00:00Z")).await;
    let mut versions: Vec<(String, i32)> = processes(s, "cus_v")
        .await
        .into_iter()
        .map(|p| (p.invoice_external_ids[0].clone(), p.policy_version))
        .collect();
    versions.sort();
    assert_eq!(versions, vec![("new".to_string(), 2), ("old".into(), 1)]);
    let mut subjects: Vec<String> = smtp
        .received()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Second reminder: invoice N-old")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Final notice: invoice N-new")),
        "{subjects:?}"
    );
}

/// A charge whose outcome is still unknown when the next step is due: the actions waiting for
/// it are skipped ("payment outcome unknown") and the next step runs.
async fn an_unknown_charge_outcome_gives_way_to_the_next_step(s: &TestServer, smtp: &SmtpServer) {
    let psp = PaymentsServer::start().await;
    psp.set_mode(payments::Mode::Pending);
    use_http_provider(s, &psp.url).await;
    create_policy(
        s,
        proto::Policy {
            code: "retry".into(),
            name: "Retry".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![
                step(
                    "R1",
                    1,
                    StepAnchor::DueDate,
                    vec![
                        plain(ActionType::RetryPayment),
                        on_failure(reminder(TemplateKind::FirmReminder)),
                    ],
                ),
                step(
                    "N",
                    5,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FinalNotice)],
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "retry").await;
    create_customer(
        s,
        proto::Customer {
            payment_method: Some(proto::PaymentMethod {
                provider: "http".into(),
                token: "pm_slow".into(),
            }),
            ..customer("cus_u")
        },
    )
    .await;
    upsert(
        s,
        invoice_of("inv_u", "cus_u", "30.00", "EUR", "2026-11-24"),
    )
    .await;
    live_until(s, at("2026-11-27T12:00:00Z")).await;
    let p = only_process(s, "cus_u").await;
    assert_eq!(
        statuses(&p.history[0]),
        vec![
            (ActionType::RetryPayment as i32, PENDING),
            (ActionType::SendReminder as i32, SKIPPED),
        ]
    );
    assert!(smtp.received().is_empty());
    live_until(s, at("2026-11-29T12:00:00Z")).await;
    let p = only_process(s, "cus_u").await;
    assert_eq!(p.history.len(), 2);
    assert_eq!(
        p.history[0].action_outcomes[1].detail,
        "payment outcome unknown"
    );
    assert_eq!(p.history[1].action_outcomes[0].status, SUCCEEDED);
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]
            .header("Subject")
            .unwrap()
            .starts_with("Final notice")
    );
}

/// Interest day by day on each day's amount due: a partial payment lowers it from its date,
/// the statutory rate changes at the half-year, and a second booking adds only what accrued
/// since, so the bookings add up to the rounded exact total.
async fn interest_follows_payments_and_the_statutory_half_year(s: &TestServer, _smtp: &SmtpServer) {
    let statutory = proto::Action {
        r#type: ActionType::AccrueInterest as i32,
        interest: Some(proto::InterestSettings {
            statutory: true,
            statutory_margin_percent: "9".into(),
            day_count: proto::DayCount::Act365 as i32,
            reference_rates: vec![
                proto::ReferenceRate {
                    period_start_date: "2026-01-01".into(),
                    rate_percent: "2".into(),
                },
                proto::ReferenceRate {
                    period_start_date: "2026-07-01".into(),
                    rate_percent: "3".into(),
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    create_policy(
        s,
        proto::Policy {
            code: "int".into(),
            name: "Interest".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![
                step("I1", 150, StepAnchor::DueDate, vec![statutory.clone()]),
                step("I2", 30, StepAnchor::PreviousStep, vec![statutory]),
            ],
            ..Default::default()
        },
    )
    .await;
    use_default_policy(s, "int").await;
    create_customer(s, customer("cus_i")).await;
    upsert(
        s,
        proto::Invoice {
            issue_date: "2026-06-01".into(),
            ..invoice_of("inv_i", "cus_i", "1000.00", "EUR", "2026-06-20")
        },
    )
    .await;
    s.invoices()
        .record_payment(proto::RecordPaymentRequest {
            invoice: Some(proto::record_payment_request::Invoice::InvoiceExternalId(
                "inv_i".into(),
            )),
            payment_external_id: "partial".into(),
            amount: "400.00".into(),
            currency_code: "EUR".into(),
            paid_time: Some(prost_types::Timestamp {
                seconds: at("2026-06-30T10:00:00Z").timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    run_everything(s).await;
    live_until(s, at("2026-12-24T12:00:00Z")).await;
    let p = only_process(s, "cus_i").await;
    let charges: Vec<(String, String, String, String)> = p
        .charges
        .iter()
        .map(|c| {
            (
                c.amount.clone(),
                c.interest_from_date.clone(),
                c.interest_to_date.clone(),
                c.annual_rate_percent.clone(),
            )
        })
        .collect();
    // Jun 21-29 on 1,000.00 and Jun 30 on 600.00 at 2 + 9 %, Jul 1 - Nov 24 on 600.00 at
    // 3 + 9 %: (990 + 66 + 10,584) / 365 = 31.8904... Then Nov 25 - Dec 24: 2,160 / 365 more;
    // the total 13,800 / 365 = 37.808... rounds to 37.81, so 5.92 is booked.
    assert_eq!(
        charges,
        vec![
            (
                "31.89".to_string(),
                "2026-06-21".into(),
                "2026-11-24".into(),
                "12".into()
            ),
            (
                "5.92".to_string(),
                "2026-11-25".into(),
                "2026-12-24".into(),
                "12".into()
            ),
        ]
    );
}

/// A customer's balance over 120 days with every action: a payment request that cannot be
/// charged (no payment method) runs the failure actions, fees per invoice, interest, sales,
/// suspension, agency, and the write-off of every invoice.
async fn customer_balance_runs_every_action(s: &TestServer, smtp: &SmtpServer) {
    let mut policy = ladder("bal", PolicyScope::CustomerBalance);
    policy.steps[2].actions[0] = plain(ActionType::RequestPayment);
    create_policy(s, policy).await;
    use_default_policy(s, "bal").await;
    create_customer(
        s,
        proto::Customer {
            sales_rep_email: "rep@acme.test".into(),
            ..customer("cus_all")
        },
    )
    .await;
    upsert(s, invoice_of("a", "cus_all", "300.00", "EUR", "2026-11-30")).await;
    upsert(s, invoice_of("b", "cus_all", "200.00", "EUR", "2026-12-02")).await;
    live_until(s, at("2027-03-24T12:00:00Z")).await;
    let p = only_process(s, "cus_all").await;
    assert_eq!(p.invoice_external_ids, vec!["a", "b"]);
    assert_eq!(p.state, ProcessState::Resolved as i32, "{p:#?}");
    assert_eq!(
        statuses(&p.history[2]),
        vec![
            (ActionType::RequestPayment as i32, FAILED),
            (ActionType::SendReminder as i32, SUCCEEDED),
            (ActionType::ApplyFee as i32, SUCCEEDED),
            (ActionType::NotifySales as i32, SUCCEEDED),
        ]
    );
    let fees: Vec<(String, String)> = p
        .charges
        .iter()
        .filter(|c| c.kind == proto::ChargeKind::Fee as i32)
        .map(|c| (c.invoice_external_id.clone(), c.amount.clone()))
        .collect();
    assert_eq!(
        fees,
        vec![
            ("a".to_string(), "40.00".to_string()),
            ("b".into(), "40.00".into())
        ]
    );
    // Interest through Dec 21: a from Dec 1 (21 days on 300), b from Dec 3 (19 days on 200).
    let interest: Vec<(String, String)> = p
        .charges
        .iter()
        .filter(|c| c.kind == proto::ChargeKind::Interest as i32)
        .map(|c| (c.invoice_external_id.clone(), c.amount.clone()))
        .collect();
    assert_eq!(
        interest,
        vec![
            ("a".to_string(), "1.38".to_string()),
            ("b".into(), "0.83".into())
        ]
    );
    // Pre-due, friendly, payment link, firm, sales, final, agency.
    let mails = smtp.received();
    assert_eq!(
        mails.len(),
        7,
        "{:#?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    for ext in ["a", "b"] {
        assert_eq!(
            invoice_state(s, ext).await,
            proto::InvoiceState::WrittenOff as i32
        );
    }
}

async fn invoice_state(s: &TestServer, ext: &str) -> i32 {
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
    i.state
}

on_both_backends_with_smtp!(
    invoice_scope_runs_the_whole_ladder,
    customer_balance_joins_and_resolves_on_payment,
    catch_up_runs_only_the_latest_due_step,
    thresholds_per_currency,
    dispute_pauses_and_clearing_resumes,
    payment_between_claim_and_commit,
    hard_decline_blocks_retries_until_the_method_changes,
    precedence_manual_invoices_exclusion_and_deletion,
    editing_a_policy_keeps_running_processes_on_their_version,
    an_unknown_charge_outcome_gives_way_to_the_next_step,
    interest_follows_payments_and_the_statutory_half_year,
    customer_balance_runs_every_action,
);
