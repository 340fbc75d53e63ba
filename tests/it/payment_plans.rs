//! Payment plans through the gRPC API: instalments agreed for a process pause it while they
//! are met, each met or missed instalment is an event, a miss resumes dunning after the grace
//! days, the last one met completes the plan; reminders arrive at a real SMTP server before
//! each date, once.

use crate::common::engine::*;
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, assert_error, bad_fields};
use dunning::proto::{self, CommandType, InstalmentState, PauseReason, PaymentPlanState};
use tonic::Code;

const PAUSED: i32 = proto::ProcessState::Paused as i32;
const ACTIVE: i32 = proto::ProcessState::Active as i32;
const RESOLVED: i32 = proto::ProcessState::Resolved as i32;

fn plan_request(
    process_id: &str,
    instalments: &[(&str, &str)],
    grace_days: i32,
    reminder_days_before: i32,
) -> proto::RecordPaymentPlanRequest {
    proto::RecordPaymentPlanRequest {
        process_id: process_id.into(),
        instalments: instalments
            .iter()
            .map(|(date, amount)| proto::InstalmentTerms {
                date: (*date).into(),
                amount: (*amount).into(),
            })
            .collect(),
        grace_days,
        reminder_days_before,
        note: "agreed by phone".into(),
        request_id: String::new(),
    }
}

async fn record(
    s: &TestServer,
    request: proto::RecordPaymentPlanRequest,
) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .record_payment_plan(request)
        .await?
        .into_inner()
        .process
        .unwrap())
}

/// Records a plan that must be accepted.
async fn agree(s: &TestServer, request: proto::RecordPaymentPlanRequest) -> proto::Process {
    record(s, request).await.unwrap()
}

/// The payment plan events of the log: type and instalment number.
async fn plan_events(s: &TestServer) -> Vec<(String, i32)> {
    s.events()
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(proto::event::Payload::PaymentPlan(p)) => Some((e.r#type, p.instalment_number)),
            _ => None,
        })
        .collect()
}

fn plan(p: &proto::Process) -> &proto::PaymentPlan {
    p.payment_plan.as_ref().expect("the process has a plan")
}

fn instalment_states(p: &proto::Process) -> Vec<i32> {
    plan(p).instalments.iter().map(|i| i.state).collect()
}

const PENDING_I: i32 = InstalmentState::Pending as i32;
const MET: i32 = InstalmentState::Met as i32;

/// Two instalments, reminders three days before each: the first reminder arrives on the
/// 27th, the first payment meets the first instalment as soon as it is recorded, the firm
/// step due on 5 December does not run while the plan holds, and the last payment resolves
/// the process and completes the plan. Each reminder reaches the SMTP server once.
async fn instalments_are_met_and_the_last_one_resolves(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_plan").await;
    let recorded = agree(
        s,
        plan_request(
            &p.id,
            &[("2026-11-30", "40.00"), ("2026-12-15", "60.00")],
            2,
            3,
        ),
    )
    .await;
    assert_eq!(recorded.state, PAUSED);
    assert_eq!(recorded.pause_reason, PauseReason::PaymentPlan as i32);
    let shown = plan(&recorded);
    assert_eq!(shown.state, PaymentPlanState::Active as i32);
    assert_eq!(
        (shown.total_amount.as_str(), shown.paid_amount.as_str()),
        ("100.00", "0.00")
    );
    assert_eq!(
        shown
            .instalments
            .iter()
            .map(|i| (
                i.date.as_str(),
                i.amount.as_str(),
                i.cumulative_amount.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("2026-11-30", "40.00", "40.00"),
            ("2026-12-15", "60.00", "100.00")
        ]
    );
    // Missed at the end of 2 December (30 November plus two grace days), customer's time.
    assert_eq!(
        shown.instalments[0].deadline_time.unwrap().seconds,
        at("2026-12-03T00:00:00Z").timestamp()
    );
    assert_eq!(
        shown.instalments[0].reminder_time.unwrap().seconds,
        at("2026-11-27T09:00:00Z").timestamp()
    );
    let last = recorded.commands.last().unwrap();
    assert_eq!(last.command, CommandType::PaymentPlan as i32);
    assert_eq!(last.comment, "agreed by phone");

    live_until(s, at("2026-11-27T12:00:00Z")).await;
    let received = smtp.wait_for(2).await;
    assert_eq!(
        received.len(),
        2,
        "the first step's email and the first reminder"
    );
    let subject = received[1].header("Subject").unwrap();
    assert!(subject.contains("instalment 1 of 2"), "{subject}");
    assert!(subject.contains("due 30 November 2026"), "{subject}");
    assert_eq!(received[1].rcpt_to, ["cus_plan@example.com"]);

    pay(s, "inv_cus_plan", "pay_plan_1", "40.00").await;
    run_everything(s).await;
    let met = get(s, &p.id).await;
    assert_eq!(met.state, PAUSED);
    assert_eq!(instalment_states(&met), [MET, PENDING_I]);
    assert_eq!(plan(&met).paid_amount, "40.00");

    // The firm step is due on 5 December; the plan holds the process past it.
    live_until(s, at("2026-12-12T12:00:00Z")).await;
    let held = get(s, &p.id).await;
    assert_eq!(held.state, PAUSED);
    assert_eq!(held.current_step_index, 1, "no step ran");
    let received = smtp.wait_for(3).await;
    assert_eq!(received.len(), 3, "the second reminder, on 12 December");
    assert!(
        received[2]
            .header("Subject")
            .unwrap()
            .contains("instalment 2 of 2")
    );

    pay(s, "inv_cus_plan", "pay_plan_2", "60.00").await;
    let resolved = get(s, &p.id).await;
    assert_eq!(resolved.state, RESOLVED);
    assert_eq!(plan(&resolved).state, PaymentPlanState::Completed as i32);
    assert_eq!(instalment_states(&resolved), [MET, MET]);
    assert_eq!(
        plan_events(s).await,
        [
            ("payment_plan.recorded".to_owned(), 0),
            ("payment_plan.instalment_met".to_owned(), 1),
            ("payment_plan.instalment_met".to_owned(), 2),
            ("payment_plan.completed".to_owned(), 0),
        ]
    );
    live_until(s, at("2026-12-20T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 3, "nothing more is sent");
}

/// Too little paid: the instalment is missed only after its grace days, then dunning resumes
/// by itself and the firm step runs on its date (5 December).
async fn a_missed_instalment_resumes_dunning(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_miss").await;
    agree(
        s,
        plan_request(
            &p.id,
            &[("2026-11-30", "40.00"), ("2026-12-20", "60.00")],
            2,
            0,
        ),
    )
    .await;
    pay(s, "inv_cus_miss", "pay_miss", "39.99").await;
    live_until(s, at("2026-12-02T12:00:00Z")).await;
    assert_eq!(get(s, &p.id).await.state, PAUSED, "within the grace days");
    live_until(s, at("2026-12-03T12:00:00Z")).await;
    let resumed = get(s, &p.id).await;
    assert_eq!(resumed.state, ACTIVE);
    assert_eq!(plan(&resumed).state, PaymentPlanState::Missed as i32);
    assert_eq!(
        instalment_states(&resumed),
        [
            InstalmentState::Missed as i32,
            InstalmentState::Dropped as i32
        ]
    );
    assert_eq!(
        plan_events(s).await,
        [
            ("payment_plan.recorded".to_owned(), 0),
            ("payment_plan.instalment_missed".to_owned(), 1),
        ]
    );
    assert_eq!(smtp.received().len(), 1, "no reminders were asked for");
    live_until(s, at("2026-12-05T12:00:00Z")).await;
    let firm = get(s, &p.id).await;
    assert_eq!(firm.current_step_index, 2, "the firm step ran");
    assert_eq!(smtp.wait_for(2).await.len(), 2);
}

/// A payment ahead of time meets the first instalment at once; an operator's resume ends
/// the plan (its pending instalments dropped); a new plan must add up to what is left and
/// replaces an earlier one; a promise is refused while a plan runs; a retried request is
/// answered without a second plan.
async fn commands_end_and_replace_plans(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_cmd").await;
    agree(
        s,
        plan_request(
            &p.id,
            &[("2026-12-01", "50.00"), ("2026-12-10", "50.00")],
            0,
            0,
        ),
    )
    .await;
    pay(s, "inv_cus_cmd", "pay_cmd", "50.00").await;
    run_everything(s).await;
    assert_eq!(instalment_states(&get(s, &p.id).await), [MET, PENDING_I]);
    assert_error(
        s.dunning()
            .record_promise_to_pay(proto::RecordPromiseToPayRequest {
                process_id: p.id.clone(),
                promised_date: "2026-12-01".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "PROCESS_NOT_ACTIVE",
    );
    let resumed = s
        .dunning()
        .resume_process(proto::ResumeProcessRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    assert_eq!(resumed.state, ACTIVE);
    assert_eq!(plan(&resumed).state, PaymentPlanState::Cancelled as i32);
    assert_eq!(
        instalment_states(&resumed),
        [MET, InstalmentState::Dropped as i32]
    );

    // 50.00 is left: a plan for the original 100.00 no longer adds up.
    let status = assert_error(
        record(s, plan_request(&p.id, &[("2026-12-10", "100.00")], 0, 0)).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), ["instalments"]);
    let mut first = plan_request(&p.id, &[("2026-12-10", "50.00")], 0, 0);
    first.request_id = "plan-1".into();
    let one = record(s, first.clone()).await.unwrap();
    let again = record(s, first.clone()).await.unwrap();
    assert_eq!(
        plan(&again).id,
        plan(&one).id,
        "a retry records nothing new"
    );
    let mut other_terms = first.clone();
    other_terms.instalments[0].date = "2026-12-11".into();
    assert_error(
        record(s, other_terms).await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );
    let replacing = agree(
        s,
        plan_request(
            &p.id,
            &[("2026-12-05", "20.00"), ("2026-12-12", "30.00")],
            1,
            0,
        ),
    )
    .await;
    assert_ne!(plan(&replacing).id, plan(&one).id);
    let plans: Vec<i32> = replacing
        .commands
        .iter()
        .filter(|c| c.command == CommandType::PaymentPlan as i32)
        .map(|c| c.previous_state)
        .collect();
    assert_eq!(plans, [ACTIVE, ACTIVE, PAUSED]);
    assert_eq!(
        plan_events(s).await,
        [
            ("payment_plan.recorded".to_owned(), 0),
            ("payment_plan.instalment_met".to_owned(), 1),
            ("payment_plan.cancelled".to_owned(), 0),
            ("payment_plan.recorded".to_owned(), 0),
            ("payment_plan.cancelled".to_owned(), 0),
            ("payment_plan.recorded".to_owned(), 0),
        ]
    );
}

/// A payment recorded after an instalment's deadline does not meet it, even when the engine
/// looks late; voiding the invoice resolves the process without counting its instalments as
/// paid: the plan is cancelled, not completed.
async fn late_payments_and_voids_are_not_instalments_met(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_late").await;
    agree(
        s,
        plan_request(
            &p.id,
            &[("2026-11-25", "40.00"), ("2026-12-20", "60.00")],
            0,
            0,
        ),
    )
    .await;
    // The deadline is the end of 25 November; the payment is recorded on the 26th, before
    // the engine looked.
    s.clock.advance(chrono::Duration::days(2));
    pay(s, "inv_cus_late", "pay_late", "40.00").await;
    run_everything(s).await;
    let late = get(s, &p.id).await;
    assert_eq!(late.state, ACTIVE);
    assert_eq!(plan(&late).state, PaymentPlanState::Missed as i32);
    assert_eq!(plan(&late).paid_amount, "40.00");

    let q = running_process(s, smtp, "cus_void").await;
    agree(
        s,
        plan_request(
            &q.id,
            &[("2026-12-10", "50.00"), ("2026-12-20", "50.00")],
            0,
            0,
        ),
    )
    .await;
    s.invoices()
        .void_invoice(proto::VoidInvoiceRequest {
            invoice: Some(proto::void_invoice_request::Invoice::ExternalId(
                "inv_cus_void".into(),
            )),
            reason: "issued in error".into(),
        })
        .await
        .unwrap();
    let voided = get(s, &q.id).await;
    assert_eq!(voided.state, RESOLVED);
    assert_eq!(plan(&voided).state, PaymentPlanState::Cancelled as i32);
    assert_eq!(plan(&voided).paid_amount, "0.00");
    assert!(
        !plan_events(s)
            .await
            .iter()
            .any(|(t, _)| t == "payment_plan.instalment_met" || t == "payment_plan.completed"),
        "nothing was paid"
    );
}

/// A customer excluded from dunning during a plan gets no instalment reminder; once the
/// instalment is missed the exclusion holds the process, and nothing is sent.
async fn an_excluded_customer_gets_no_reminders(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_planx").await;
    agree(
        s,
        plan_request(
            &p.id,
            &[("2026-11-30", "40.00"), ("2026-12-20", "60.00")],
            0,
            3,
        ),
    )
    .await;
    exclude_customer(s, "cus_planx").await;
    live_until(s, at("2026-12-03T12:00:00Z")).await;
    let held = get(s, &p.id).await;
    assert_eq!(plan(&held).state, PaymentPlanState::Missed as i32);
    assert_eq!(held.state, PAUSED);
    assert_eq!(held.pause_reason, PauseReason::CustomerExcluded as i32);
    assert_eq!(smtp.received().len(), 1, "only the first step's email");
}

/// Bad terms are refused naming each bad field, and nothing is recorded.
async fn bad_plans_name_their_fields(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_badplan").await;
    for (instalments, grace, reminder, fields) in [
        (vec![("2026-12-01", "40.00")], 0, 0, vec!["instalments"]),
        (vec![], 0, 0, vec!["instalments"]),
        (
            vec![("2026-11-23", "50.00"), ("2026-12-01", "50.00")],
            0,
            0,
            vec!["instalments[0].date"],
        ),
        (
            vec![("2026-12-05", "50.00"), ("2026-12-01", "50.00")],
            0,
            0,
            vec!["instalments[1].date"],
        ),
        (
            vec![("01/12/2026", "50.00"), ("2026-12-09", "fifty")],
            0,
            0,
            vec!["instalments[0].date", "instalments[1].amount"],
        ),
        (
            vec![("2026-12-01", "-50.00"), ("2026-12-09", "150.00")],
            0,
            0,
            vec!["instalments[0].amount"],
        ),
        (vec![("2026-12-01", "100.00")], -1, 0, vec!["grace_days"]),
        (
            vec![("2026-12-01", "100.00")],
            31,
            31,
            vec!["grace_days", "reminder_days_before"],
        ),
    ] {
        let status = assert_error(
            record(s, plan_request(&p.id, &instalments, grace, reminder)).await,
            Code::InvalidArgument,
            "VALIDATION_FAILED",
        );
        assert_eq!(bad_fields(&status), fields, "{instalments:?}");
    }
    let unchanged = get(s, &p.id).await;
    assert_eq!(unchanged.state, ACTIVE);
    assert!(unchanged.payment_plan.is_none());
    assert!(unchanged.commands.is_empty());
    assert!(plan_events(s).await.is_empty());
}

on_both_backends_with_smtp!(
    instalments_are_met_and_the_last_one_resolves,
    a_missed_instalment_resumes_dunning,
    commands_end_and_replace_plans,
    late_payments_and_voids_are_not_instalments_met,
    an_excluded_customer_gets_no_reminders,
    bad_plans_name_their_fields,
);
