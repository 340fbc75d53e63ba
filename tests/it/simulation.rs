//! SimulatePolicy through gRPC: the timeline is what the engine does. A real process runs over
//! the same invoices with the manual clock, moved to each simulated step's time, and its
//! history, charges and emails are compared with the simulation step by step; the
//! simulation itself writes nothing.

use crate::common::engine::*;
use crate::common::policy::{amount, fixed_fee, ladder, on_failure};
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, assert_error, bad_fields};
use chrono::{DateTime, Duration, Utc};
use dunning::proto::{self, ActionOutcomeStatus, ActionType, PolicyScope, ProcessState};
use std::collections::HashMap;

/// The 120-day ladder without the suspension and the write-off, and a threshold.
fn policy() -> proto::Policy {
    let mut policy = ladder("sim", PolicyScope::Invoice);
    policy.name = "Simulated".into();
    policy.thresholds = vec![amount("EUR", "50.00")];
    policy.steps.truncate(5);
    policy.steps[3].actions.truncate(2);
    policy
}

fn time(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a time");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn simulate(
    s: &TestServer,
    req: proto::SimulatePolicyRequest,
) -> proto::SimulatePolicyResponse {
    s.dunning().simulate_policy(req).await.unwrap().into_inner()
}

async fn the_simulation_is_what_a_real_process_does(s: &TestServer, _smtp: &SmtpServer) {
    let psp = customer_with_declining_card(s, "cus_s").await;
    create_policy(s, policy()).await;
    use_default_policy(s, "sim").await;
    upsert(
        s,
        invoice_of("inv_1", "cus_s", "1000.00", "EUR", "2026-11-30"),
    )
    .await;
    upsert(
        s,
        invoice_of("inv_2", "cus_s", "250.00", "EUR", "2026-12-05"),
    )
    .await;
    upsert(
        s,
        invoice_of("inv_small", "cus_s", "10.00", "EUR", "2026-12-01"),
    )
    .await;
    let events_before = s.events().await.len();

    let simulated = simulate(
        s,
        proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::PolicyCode(
                "sim".into(),
            )),
            invoice_external_ids: vec!["inv_1".into(), "inv_2".into(), "inv_small".into()],
            ..Default::default()
        },
    )
    .await;
    // Nothing was written: no process, no event, no email, no charge attempt.
    assert!(processes(s, "cus_s").await.is_empty());
    assert_eq!(s.events().await.len(), events_before);
    assert_eq!(psp.requests().len(), 0);

    assert_eq!(
        simulated.skipped_invoices.len(),
        1,
        "{:?}",
        simulated.skipped_invoices
    );
    assert_eq!(simulated.skipped_invoices[0].external_id, "inv_small");
    assert!(simulated.skipped_invoices[0].reason.contains("threshold"));
    let timeline = &simulated.timeline;
    assert_eq!(timeline.len(), 10, "{timeline:#?}");
    // The first step of inv_1: local midnight three days before the due date; its email
    // waits for the sending window (08:00).
    let first = &timeline[0];
    assert_eq!(first.invoice_external_ids, vec!["inv_1".to_string()]);
    assert_eq!(time(&first.scheduled_time), at("2026-11-27T00:00:00Z"));
    let email = first.actions[0].email.as_ref().expect("heads-up email");
    assert_eq!(time(&email.send_time), at("2026-11-27T08:00:00Z"));
    assert_eq!(
        sorted(email.to.iter().chain(&email.bcc).cloned().collect()),
        vec!["audit@acme.test".to_string(), "cus_s@example.com".into()]
    );
    // The retry is declined: the firm reminder and the fee run, the sales rep hears.
    let retry = timeline
        .iter()
        .find(|e| e.step_index == 2 && e.invoice_external_ids == ["inv_1"])
        .unwrap();
    let executed: Vec<bool> = retry.actions.iter().map(|a| a.executed).collect();
    assert_eq!(executed, vec![true, true, true, true], "{retry:#?}");
    assert_eq!(retry.actions[2].charge_amount, "40.00");
    assert_eq!(retry.charges.len(), 1);
    assert_eq!(retry.charges[0].invoice_external_id, "inv_1");
    assert_eq!(
        retry.actions[3].email.as_ref().unwrap().to,
        vec!["rep@acme.test".to_string()]
    );
    let last = timeline
        .iter()
        .rfind(|e| e.invoice_external_ids == ["inv_1"])
        .unwrap();
    assert_eq!(last.state_after, ProcessState::Escalated as i32);
    assert_eq!(last.amount_due, "1000.00");

    // The real thing, at the simulated times.
    let mut times: Vec<DateTime<Utc>> = timeline.iter().map(|e| time(&e.scheduled_time)).collect();
    times.dedup();
    for t in &times {
        s.clock.set(*t - Duration::seconds(1));
        run_everything(s).await;
        s.clock.set(*t);
        run_everything(s).await;
    }
    s.clock.set(*times.last().unwrap() + Duration::days(90));
    run_everything(s).await;

    let notifications: HashMap<String, proto::Notification> = s
        .dunning()
        .list_notifications(proto::ListNotificationsRequest {
            customer_external_id: "cus_s".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    let real = processes(s, "cus_s").await;
    assert_eq!(real.len(), 2, "the small invoice was not dunned: {real:#?}");
    let mut compared = 0;
    for listed in real {
        let p = s
            .dunning()
            .get_process(proto::GetProcessRequest { id: listed.id })
            .await
            .unwrap()
            .into_inner()
            .process
            .unwrap();
        let invoice = p.invoice_external_ids[0].clone();
        let expected: Vec<&proto::TimelineEntry> = timeline
            .iter()
            .filter(|e| e.invoice_external_ids == [invoice.clone()])
            .collect();
        assert_eq!(p.history.len(), expected.len(), "{invoice}: {p:#?}");
        for (run, sim) in p.history.iter().zip(&expected) {
            let what = format!("{invoice} step {}", run.step_index);
            assert_eq!(run.step_index, sim.step_index, "{what}");
            assert_eq!(
                time(&run.executed_time),
                time(&sim.scheduled_time),
                "{what}"
            );
            assert_eq!(run.action_outcomes.len(), sim.actions.len(), "{what}");
            for (outcome, action) in run.action_outcomes.iter().zip(&sim.actions) {
                assert_eq!(outcome.action_type, action.r#type, "{what}");
                let ran = outcome.status != ActionOutcomeStatus::Skipped as i32;
                assert_eq!(ran, action.executed, "{what}: {outcome:?} vs {action:?}");
                // A charge's detail is the provider's decline message, an email's its
                // delivery since (GetProcess reads it live); the email is compared below.
                if outcome.action_type != ActionType::RetryPayment as i32 && action.email.is_none()
                {
                    assert_eq!(outcome.detail, action.detail, "{what}");
                }
                match (notifications.get(&outcome.notification_id), &action.email) {
                    (Some(n), Some(e)) => {
                        assert_eq!(n.subject, e.subject, "{what}");
                        assert_eq!(n.to_emails, e.to, "{what}");
                        assert_eq!(n.cc_emails, e.cc, "{what}");
                        assert_eq!(n.bcc_emails, e.bcc, "{what}");
                        assert_eq!(n.kind, e.template_kind, "{what}");
                    }
                    (None, None) => {}
                    (n, e) => panic!("{what}: real email {n:?}, simulated {e:?}"),
                }
            }
            let charges: Vec<(i32, String)> = p
                .charges
                .iter()
                .filter(|c| c.step_index == run.step_index)
                .map(|c| (c.kind, c.amount.clone()))
                .collect();
            let simulated_charges: Vec<(i32, String)> = sim
                .charges
                .iter()
                .map(|c| (c.kind, c.amount.clone()))
                .collect();
            assert_eq!(charges, simulated_charges, "{what}");
            compared += 1;
        }
        assert_eq!(p.state, expected.last().unwrap().state_after, "{invoice}");
    }
    assert_eq!(compared, 10);
}

/// An inline policy over hypothetical invoices of two currencies as a customer balance: one
/// process per currency, catch-up from a late start, manual invoices left out.
async fn an_inline_policy_over_hypothetical_invoices(s: &TestServer, _smtp: &SmtpServer) {
    let mut inline = policy();
    inline.code = String::new();
    inline.scope = PolicyScope::CustomerBalance as i32;
    inline.thresholds = vec![];
    inline.steps[2].actions[2] = on_failure(fixed_fee("EUR", "40"));
    let hypothetical =
        |label: &str, currency: &str, due: &str, manual: bool| proto::SimulationInvoice {
            external_id: label.into(),
            currency_code: currency.into(),
            amount_due: "100.00".into(),
            due_date: due.into(),
            collection_method: if manual {
                proto::CollectionMethod::Manual as i32
            } else {
                proto::CollectionMethod::Unspecified as i32
            },
        };
    let simulated = simulate(
        s,
        proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::Policy(inline)),
            invoices: vec![
                hypothetical("a", "EUR", "2026-11-10", false),
                hypothetical("b", "EUR", "2026-11-20", false),
                hypothetical("c", "USD", "2026-11-20", false),
                hypothetical("m", "EUR", "2026-11-10", true),
            ],
            // Two weeks after a's due date: heads-up and friendly are superseded.
            start_time: Some(prost_types::Timestamp {
                seconds: at("2026-11-24T12:00:00Z").timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(simulated.skipped_invoices.len(), 1);
    assert_eq!(simulated.skipped_invoices[0].external_id, "m");
    assert!(simulated.skipped_invoices[0].reason.contains("manual"));
    let eur: Vec<&proto::TimelineEntry> = simulated
        .timeline
        .iter()
        .filter(|e| e.currency_code == "EUR")
        .collect();
    // Catch-up: the first run is the retry; the two before it are superseded, sending nothing.
    assert_eq!(eur[0].step_index, 0);
    assert!(
        eur[0]
            .actions
            .iter()
            .all(|a| !a.executed && a.email.is_none())
    );
    assert!(
        eur[0].actions[0].detail.contains("superseded"),
        "{:?}",
        eur[0]
    );
    assert_eq!(eur[2].step_index, 2);
    assert_eq!(time(&eur[2].scheduled_time), at("2026-11-24T12:00:00Z"));
    // b joined the balance before the retry ran; without a payment method the retry cannot
    // charge and the failure actions run: a fee on each invoice.
    assert_eq!(
        eur[2].invoice_external_ids,
        vec!["a".to_string(), "b".into()]
    );
    assert_eq!(eur[2].amount_due, "200.00");
    assert_eq!(eur[2].charges.len(), 2);
    assert_eq!(eur[2].total_charges, "80.00");
    let usd: Vec<&proto::TimelineEntry> = simulated
        .timeline
        .iter()
        .filter(|e| e.currency_code == "USD")
        .collect();
    assert_ne!(usd[0].process_number, eur[0].process_number);
    assert_eq!(usd[0].invoice_external_ids, vec!["c".to_string()]);
    // No EUR fee in USD: the fee is configured in EUR only.
    assert!(usd.iter().all(|e| {
        e.charges
            .iter()
            .all(|c| c.kind != proto::ChargeKind::Fee as i32)
    }));
}

async fn bad_requests_name_the_fields(s: &TestServer, _smtp: &SmtpServer) {
    let err = s
        .dunning()
        .simulate_policy(proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::PolicyCode(
                "sim".into(),
            )),
            policy_version: -1,
            invoices: vec![proto::SimulationInvoice {
                external_id: "x".into(),
                currency_code: "EURO".into(),
                amount_due: "-1".into(),
                due_date: "2026-13-01".into(),
                collection_method: 0,
            }],
            timezone: "Mars/Olympus".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(
        Err::<(), _>(err.clone()),
        tonic::Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    let fields = bad_fields(&err);
    for field in [
        "policy_version",
        "invoices[0].currency_code",
        "invoices[0].due_date",
        "timezone",
    ] {
        assert!(fields.contains(&field.to_string()), "{field} in {fields:?}");
    }
    let err = s
        .dunning()
        .simulate_policy(proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::PolicyCode(
                "nope".into(),
            )),
            invoices: vec![proto::SimulationInvoice {
                currency_code: "EUR".into(),
                amount_due: "1.00".into(),
                due_date: "2026-12-01".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
    assert_error(err, tonic::Code::NotFound, "POLICY_NOT_FOUND");
    create_policy(s, policy()).await;
    let err = s
        .dunning()
        .simulate_policy(proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::PolicyCode(
                "sim".into(),
            )),
            invoice_external_ids: vec!["missing".into()],
            ..Default::default()
        })
        .await;
    assert_error(err, tonic::Code::NotFound, "INVOICE_NOT_FOUND");
    let err = s
        .dunning()
        .simulate_policy(proto::SimulatePolicyRequest {
            policy_source: Some(proto::simulate_policy_request::PolicySource::PolicyCode(
                "sim".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["invoices".to_string()]);
}

on_both_backends_with_smtp!(
    the_simulation_is_what_a_real_process_does,
    an_inline_policy_over_hypothetical_invoices,
    bad_requests_name_the_fields,
);
