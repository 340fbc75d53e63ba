//! Operator commands through the gRPC API: each is checked against the process's state,
//! recorded in its history with the caller's key, appended as an event, idempotent where it
//! takes a request id, and safe against a step the engine runs at the same moment. Emails
//! are counted at a real SMTP server.

use crate::common::engine::*;
use crate::common::policy::{fixed_fee, reminder, step};
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, assert_error, bad_fields, customer};
use dunning::clock::new_id;
use dunning::proto::{
    self, CommandType, PauseReason, PolicyScope, ProcessState, StepAnchor, StepTrigger,
    TemplateKind,
};
use tonic::Code;

/// The actor the test's key is recorded as.
async fn my_actor(s: &TestServer) -> String {
    let caller = s
        .server()
        .services()
        .auth
        .authenticate(&s.key)
        .await
        .unwrap();
    caller.actor.to_string()
}

async fn advance(
    s: &TestServer,
    id: &str,
    request_id: &str,
) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .advance_process(proto::AdvanceProcessRequest {
            id: id.into(),
            request_id: request_id.into(),
        })
        .await?
        .into_inner()
        .process
        .unwrap())
}

async fn pause(s: &TestServer, id: &str, note: &str) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .pause_process(proto::PauseProcessRequest {
            id: id.into(),
            note: note.into(),
        })
        .await?
        .into_inner()
        .process
        .unwrap())
}

async fn resume(s: &TestServer, id: &str) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .resume_process(proto::ResumeProcessRequest { id: id.into() })
        .await?
        .into_inner()
        .process
        .unwrap())
}

async fn cancel(s: &TestServer, id: &str, reason: &str) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .cancel_process(proto::CancelProcessRequest {
            id: id.into(),
            reason: reason.into(),
        })
        .await?
        .into_inner()
        .process
        .unwrap())
}

async fn reset(
    s: &TestServer,
    id: &str,
    request_id: &str,
) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .reset_process(proto::ResetProcessRequest {
            id: id.into(),
            request_id: request_id.into(),
        })
        .await?
        .into_inner()
        .process
        .unwrap())
}

async fn inform_sales(
    s: &TestServer,
    id: &str,
    note: &str,
    request_id: &str,
) -> Result<proto::InformSalesResponse, tonic::Status> {
    Ok(s.dunning()
        .inform_sales(proto::InformSalesRequest {
            process_id: id.into(),
            note: note.into(),
            request_id: request_id.into(),
        })
        .await?
        .into_inner())
}

async fn escalate(
    s: &TestServer,
    id: &str,
    note: &str,
) -> Result<proto::EscalateProcessResponse, tonic::Status> {
    Ok(s.dunning()
        .escalate_process(proto::EscalateProcessRequest {
            id: id.into(),
            note: note.into(),
        })
        .await?
        .into_inner())
}

fn commands(p: &proto::Process) -> Vec<(i32, i32, i32, String)> {
    p.commands
        .iter()
        .map(|c| (c.command, c.previous_state, c.state, c.comment.clone()))
        .collect()
}

const ACTIVE: i32 = ProcessState::Active as i32;
const PAUSED: i32 = ProcessState::Paused as i32;
const CANCELLED: i32 = ProcessState::Cancelled as i32;
const EXHAUSTED: i32 = ProcessState::Exhausted as i32;
const ESCALATED: i32 = ProcessState::Escalated as i32;

/// An email's text with quoted-printable soft line breaks removed.
fn unwrapped(data: &str) -> String {
    data.replace("=\r\n", "")
}

/// "Next Dunning" runs the next step now (trigger ADVANCED) through the engine's executor,
/// schedules the following one from now, records who did it, and a retry with the same
/// request id runs nothing more.
async fn advance_runs_the_next_step_now(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_adv").await;
    let actor = my_actor(s).await;
    let advanced = advance(s, &p.id, "adv-1").await.unwrap();
    assert_eq!(advanced.current_step_index, 2);
    let last = advanced.history.last().unwrap();
    assert_eq!(
        (last.step_index, last.trigger),
        (1, StepTrigger::Advanced as i32)
    );
    // The final notice counts from now (a previous-step delay of ten days).
    assert_eq!(
        advanced.next_step_time.unwrap().seconds,
        at("2026-12-04T12:00:00Z").timestamp()
    );
    assert_eq!(advanced.charges.len(), 1);
    assert_eq!(advanced.charges[0].amount, "10.00");
    // The retry returns the process as it is: no second run of step 2.
    let retried = advance(s, &p.id, "adv-1").await.unwrap();
    assert_eq!(retried.history.len(), 2);
    assert_eq!(retried.current_step_index, 2);
    run_everything(s).await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1]
            .header("Subject")
            .unwrap()
            .to_lowercase()
            .contains("reminder"),
        "{:?}",
        mails[1].header("Subject")
    );
    // The firm step's own date (day 15) passes: it already ran, nothing runs again.
    live_until(s, at("2026-12-03T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 2);
    let done = advance(s, &p.id, "").await.unwrap();
    assert_eq!(done.state, EXHAUSTED);
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 3);
    assert_error(
        advance(s, &p.id, "").await,
        Code::FailedPrecondition,
        "PROCESS_NOT_ACTIVE",
    );
    let p = get(s, &p.id).await;
    let advance_type = CommandType::Advance as i32;
    assert_eq!(
        commands(&p),
        vec![
            (advance_type, ACTIVE, ACTIVE, String::new()),
            (advance_type, ACTIVE, EXHAUSTED, String::new())
        ]
    );
    assert!(p.commands.iter().all(|c| c.actor == actor), "{p:#?}");
    let events = process_events(s).await;
    let advanced_at = events.iter().position(|e| e == "process.advanced").unwrap();
    assert_eq!(
        events[advanced_at + 1..advanced_at + 3],
        ["fee.booked 10.00", "process.step_executed 1"]
    );
    let advanced_event = s
        .events()
        .await
        .into_iter()
        .find(|e| e.r#type == "process.advanced")
        .unwrap();
    match advanced_event.payload {
        Some(proto::event::Payload::Process(payload)) => assert_eq!(payload.actor, actor),
        other => panic!("unexpected payload {other:?}"),
    }
}

/// Pause, resume and cancel follow the state machine: a manual pause holds every step until
/// the resume runs the overdue one at once; a dispute's pause is not resumed by command; a
/// cancelled process stays cancelled, its invoice unpaid, and no new process starts for it.
async fn pause_resume_and_cancel(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_pause").await;
    let paused = pause(s, &p.id, "customer called").await.unwrap();
    assert_eq!(paused.state, PAUSED);
    assert_eq!(paused.pause_reason, PauseReason::Manual as i32);
    assert_eq!(paused.note, "customer called");
    assert!(paused.next_step_time.is_none());
    // Pausing again changes nothing and records nothing.
    assert_eq!(pause(s, &p.id, "again").await.unwrap().commands.len(), 1);
    // The firm step's day passes while paused.
    live_until(s, at("2026-12-08T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 1);
    let resumed = resume(s, &p.id).await.unwrap();
    assert_eq!(resumed.state, ACTIVE);
    assert_eq!(resume(s, &p.id).await.unwrap().commands.len(), 2);
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 2, "the overdue step runs at once");
    // A dispute pauses it; only clearing the dispute resumes it.
    upsert(
        s,
        proto::Invoice {
            disputed: true,
            ..invoice_of("inv_cus_pause", "cus_pause", "100.00", "EUR", "2026-11-20")
        },
    )
    .await;
    assert_error(
        resume(s, &p.id).await,
        Code::FailedPrecondition,
        "PAUSE_CAUSE_ACTIVE",
    );
    let cancelled = cancel(s, &p.id, "settled in the ERP").await.unwrap();
    assert_eq!(cancelled.state, CANCELLED);
    assert_eq!(cancelled.note, "settled in the ERP");
    assert_eq!(cancelled.amount_due, "100.00", "the invoice stays unpaid");
    assert_eq!(
        cancel(s, &p.id, "twice").await.unwrap().commands.len(),
        3,
        "cancelling a CANCELLED process records nothing"
    );
    assert_error(
        reset(s, &p.id, "").await,
        Code::FailedPrecondition,
        "PROCESS_CLOSED",
    );
    assert_error(
        pause(s, &p.id, "").await,
        Code::FailedPrecondition,
        "PROCESS_NOT_ACTIVE",
    );
    assert_error(
        resume(s, &p.id).await,
        Code::FailedPrecondition,
        "PROCESS_NOT_PAUSED",
    );
    live_until(s, at("2026-12-20T12:00:00Z")).await;
    assert_eq!(processes(s, "cus_pause").await.len(), 1);
    assert_eq!(smtp.received().len(), 2);
    let p = get(s, &p.id).await;
    assert_eq!(
        commands(&p),
        vec![
            (
                CommandType::Pause as i32,
                ACTIVE,
                PAUSED,
                "customer called".into()
            ),
            (CommandType::Resume as i32, PAUSED, ACTIVE, String::new()),
            (
                CommandType::Cancel as i32,
                PAUSED,
                CANCELLED,
                "settled in the ERP".into()
            ),
        ]
    );
    let events = process_events(s).await;
    for expected in ["process.paused", "process.resumed", "process.cancelled"] {
        assert!(events.iter().any(|e| e == expected), "{events:?}");
    }
}

/// A reset starts a new attempt at the first step: the catch-up rule runs only the latest
/// due step (the earlier one superseded), a fee booked for a step is not booked again, and
/// a retried reset does not reset twice.
async fn reset_starts_a_new_attempt(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_reset").await;
    live_until(s, at("2026-12-06T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 2);
    let was_reset = reset(s, &p.id, "reset-1").await.unwrap();
    assert_eq!(was_reset.state, ACTIVE);
    assert_eq!(was_reset.current_step_index, 0);
    assert_eq!(reset(s, &p.id, "reset-1").await.unwrap().commands.len(), 1);
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 3, "one email: the latest due step");
    let p = get(s, &p.id).await;
    let runs: Vec<(i32, i32, i32)> = p
        .history
        .iter()
        .map(|r| (r.step_index, r.attempt, r.action_outcomes[0].status))
        .collect();
    assert_eq!(
        runs,
        vec![
            (0, 1, SUCCEEDED),
            (1, 1, SUCCEEDED),
            (0, 2, SKIPPED),
            (1, 2, SUCCEEDED)
        ]
    );
    assert_eq!(p.charges.len(), 1, "the fee is booked once for the step");
    assert!(process_events(s).await.iter().any(|e| e == "process.reset"));
}

/// "Inform sales" emails the rep with the operator's note and the history so far; a retry
/// returns the same email. An operator's escalation hands over with the statement and the
/// note, once. Each names what is missing when it cannot be done.
async fn inform_sales_and_escalate(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_ops").await;
    let actor = my_actor(s).await;
    let informed = inform_sales(s, &p.id, "Please call them this week.", "inf-1")
        .await
        .unwrap();
    let notification = informed.notification.unwrap();
    assert_eq!(notification.to_emails, vec!["rep@acme.test".to_string()]);
    let again = inform_sales(s, &p.id, "Please call them this week.", "inf-1")
        .await
        .unwrap();
    assert_eq!(again.notification.unwrap().id, notification.id);
    assert_error(
        inform_sales(s, &p.id, "Another note", "inf-1").await,
        Code::AlreadyExists,
        "REQUEST_ID_CONFLICT",
    );
    s.deliver().await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 2);
    let to_rep = unwrapped(&mails[1].data);
    assert_eq!(mails[1].rcpt_to, vec!["rep@acme.test".to_string()]);
    assert!(to_rep.contains("Please call them this week."), "{to_rep}");
    assert!(to_rep.contains("Step 1 (Friendly)"), "{to_rep}");

    let escalated = escalate(s, &p.id, "Three calls, no answer").await.unwrap();
    assert_eq!(escalated.process.as_ref().unwrap().state, ESCALATED);
    assert_eq!(
        escalated.notification.unwrap().to_emails,
        vec!["cases@agency.test".to_string()]
    );
    let unchanged = escalate(s, &p.id, "again").await.unwrap();
    assert!(unchanged.notification.is_none());
    s.deliver().await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 3);
    let handover = unwrapped(&mails[2].data);
    assert!(handover.contains("Three calls, no answer"), "{handover}");
    assert!(
        handover.contains("filename=\"statement-cus_ops.csv\""),
        "{handover}"
    );
    let p = get(s, &p.id).await;
    assert_eq!(
        commands(&p),
        vec![
            (
                CommandType::InformSales as i32,
                ACTIVE,
                ACTIVE,
                "Please call them this week.".into()
            ),
            (
                CommandType::Escalate as i32,
                ACTIVE,
                ESCALATED,
                "Three calls, no answer".into()
            ),
        ]
    );
    for event in s.events().await {
        if ["sales.informed", "process.escalated"].contains(&event.r#type.as_str())
            && let Some(proto::event::Payload::Process(payload)) = event.payload
        {
            assert_eq!(payload.actor, actor);
            assert!(!payload.notification_id.is_empty());
        }
    }

    // Without a sales rep, or without an agency address, the command names what is missing.
    create_policy(s, three_steps("no_agency", "")).await;
    create_customer(s, customer("cus_bare")).await;
    upsert(
        s,
        proto::Invoice {
            policy_code: "no_agency".into(),
            ..invoice_of("inv_bare", "cus_bare", "50.00", "EUR", "2026-11-20")
        },
    )
    .await;
    run_everything(s).await;
    let bare = only_process(s, "cus_bare").await;
    assert_error(
        inform_sales(s, &bare.id, "", "").await,
        Code::FailedPrecondition,
        "SALES_REP_MISSING",
    );
    assert_error(
        escalate(s, &bare.id, "").await,
        Code::FailedPrecondition,
        "NO_COLLECTION_AGENCY",
    );
    assert!(get(s, &bare.id).await.commands.is_empty());
}

/// A command and a step the engine claimed at the same moment: the command wins cleanly
/// (the claim is lost), and each step runs once.
async fn a_command_and_a_claimed_step_race(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_race").await;
    s.clock.set(at("2026-12-06T12:00:00Z"));
    let jobs = s.server().engine();
    let claims = jobs.claim_due_processes(10).await.unwrap();
    assert_eq!(claims.len(), 1);
    let advanced = advance(s, &p.id, "").await.unwrap();
    assert_eq!(advanced.current_step_index, 2);
    assert!(!jobs.run_claimed_process(&claims[0]).await.unwrap());
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 2);
    let p = get(s, &p.id).await;
    let runs: Vec<(i32, i32)> = p
        .history
        .iter()
        .map(|r| (r.step_index, r.trigger))
        .collect();
    assert_eq!(
        runs,
        vec![
            (0, StepTrigger::Scheduled as i32),
            (1, StepTrigger::Advanced as i32)
        ]
    );
    // A pause between another claim and its commit: the step does not run.
    s.clock.set(at("2026-12-17T12:00:00Z"));
    let claims = jobs.claim_due_processes(10).await.unwrap();
    assert_eq!(claims.len(), 1);
    pause(s, &p.id, "").await.unwrap();
    assert!(!jobs.run_claimed_process(&claims[0]).await.unwrap());
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 2);
    assert_eq!(get(s, &p.id).await.history.len(), 2);
}

/// Bad input names the bad fields; an unknown process is NOT_FOUND.
async fn bad_commands_name_their_fields(s: &TestServer, _smtp: &SmtpServer) {
    let status = assert_error(
        pause(s, "nope", &"x".repeat(1001)).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["id", "note"]);
    let status = assert_error(
        inform_sales(s, "", "", &"r".repeat(300)).await,
        Code::InvalidArgument,
        "VALIDATION_FAILED",
    );
    assert_eq!(bad_fields(&status), vec!["process_id", "request_id"]);
    assert_error(
        advance(s, &new_id().to_string(), "").await,
        Code::NotFound,
        "PROCESS_NOT_FOUND",
    );
}

async fn promise(
    s: &TestServer,
    id: &str,
    date: &str,
    amount: &str,
) -> Result<proto::Process, tonic::Status> {
    Ok(s.dunning()
        .record_promise_to_pay(proto::RecordPromiseToPayRequest {
            process_id: id.into(),
            promised_date: date.into(),
            amount: amount.into(),
            note: "promised by phone".into(),
        })
        .await?
        .into_inner()
        .process
        .unwrap())
}

/// A promise pauses the process until the end of the promised day: paid as promised, it is
/// kept; unpaid, it is broken and the process resumes by itself, running the step that is
/// due; paying everything before the date resolves the process at once, the promise kept.
async fn promises_to_pay_are_kept_or_broken(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_prom").await;
    let promised = promise(s, &p.id, "2026-11-28", "40.00").await.unwrap();
    assert_eq!(promised.state, PAUSED);
    assert_eq!(promised.pause_reason, PauseReason::PromiseToPay as i32);
    assert_eq!(
        (
            promised.promised_date.as_str(),
            promised.promised_amount.as_str()
        ),
        ("2026-11-28", "40.00")
    );
    live_until(s, at("2026-11-26T12:00:00Z")).await;
    pay(s, "inv_cus_prom", "pay_1", "40.00").await;
    live_until(s, at("2026-11-30T12:00:00Z")).await;
    let kept = get(s, &p.id).await;
    assert_eq!(kept.state, ACTIVE, "kept at the end of 28 November");
    assert_eq!(kept.promised_date, "");
    assert_eq!(
        smtp.received().len(),
        1,
        "the firm step is not due before 5 December"
    );

    // Broken: nothing paid by the end of 10 December; the firm step (due since the 5th) runs.
    promise(s, &p.id, "2026-12-10", "").await.unwrap();
    live_until(s, at("2026-12-10T12:00:00Z")).await;
    assert_eq!(smtp.received().len(), 1);
    live_until(s, at("2026-12-11T12:00:00Z")).await;
    let broken = get(s, &p.id).await;
    assert_eq!(broken.state, ACTIVE);
    assert_eq!(broken.current_step_index, 2);
    assert_eq!(smtp.received().len(), 2);

    // Paying everything before the date resolves the process in the payment's transaction.
    promise(s, &p.id, "2026-12-18", "").await.unwrap();
    pay(s, "inv_cus_prom", "pay_2", "60.00").await;
    let resolved = get(s, &p.id).await;
    assert_eq!(resolved.state, ProcessState::Resolved as i32);
    let promises: Vec<String> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e.r#type.starts_with("promise.") || e.r#type == "process.resolved")
        .map(|e| e.r#type)
        .collect();
    assert_eq!(
        promises,
        [
            "promise.recorded",
            "promise.kept",
            "promise.recorded",
            "promise.broken",
            "promise.recorded",
            "promise.kept",
            "process.resolved"
        ]
    );
    let recorded = s
        .events()
        .await
        .into_iter()
        .find(|e| e.r#type == "promise.recorded")
        .unwrap();
    match recorded.payload {
        Some(proto::event::Payload::Promise(payload)) => {
            assert_eq!(payload.promised_date, "2026-11-28");
            assert_eq!(payload.amount, "40.00");
            assert_eq!(payload.note, "promised by phone");
        }
        other => panic!("unexpected payload {other:?}"),
    }
    assert_error(
        promise(s, &p.id, "2026-12-30", "").await,
        Code::FailedPrecondition,
        "PROCESS_NOT_ACTIVE",
    );
}

/// A promise in the past, too far ahead, above the amount due or badly written is refused,
/// naming the field, and changes nothing.
async fn bad_promises_name_their_fields(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_badprom").await;
    for (date, amount, fields) in [
        ("2026-11-23", "10.00", vec!["promised_date"]),
        ("2027-11-25", "100.01", vec!["promised_date", "amount"]),
        ("2026-11-30", "10.001", vec!["amount"]),
        ("30/11/2026", "", vec!["promised_date"]),
    ] {
        let status = assert_error(
            promise(s, &p.id, date, amount).await,
            Code::InvalidArgument,
            "VALIDATION_FAILED",
        );
        assert_eq!(bad_fields(&status), fields, "{date} {amount}");
    }
    let unchanged = get(s, &p.id).await;
    assert_eq!(unchanged.state, ACTIVE);
    assert!(unchanged.commands.is_empty());
}

async fn assign(
    s: &TestServer,
    customer: &str,
    code: &str,
    apply: bool,
) -> Result<proto::AssignPolicyResponse, tonic::Status> {
    Ok(s.dunning()
        .assign_policy(proto::AssignPolicyRequest {
            customer: Some(proto::assign_policy_request::Customer::CustomerExternalId(
                customer.into(),
            )),
            policy_code: code.into(),
            apply_to_open_processes: apply,
        })
        .await?
        .into_inner())
}

/// "Update Setting": without apply_to_open_processes only new processes use the policy; with
/// it, the customer's open processes move to its latest version and restart at its first
/// step (the catch-up rule runs the latest due one), except those whose invoice names its
/// own policy; a process of the other scope refuses the move and nothing changes.
async fn assign_policy_moves_open_processes_on_request(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_asg").await;
    create_policy(
        s,
        proto::Policy {
            code: "gentle".into(),
            name: "Gentle".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![
                step(
                    "Gentle nudge",
                    2,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FriendlyReminder)],
                ),
                step(
                    "Gentle reminder",
                    30,
                    StepAnchor::DueDate,
                    vec![reminder(TemplateKind::FirmReminder)],
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    // An invoice naming its own policy keeps it whatever the customer's is.
    upsert(
        s,
        proto::Invoice {
            policy_code: "ops".into(),
            ..invoice_of("inv_own", "cus_asg", "30.00", "EUR", "2026-11-20")
        },
    )
    .await;
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 2);
    let kept_alone = processes(s, "cus_asg")
        .await
        .into_iter()
        .find(|q| q.id != p.id)
        .unwrap();

    let only_new = assign(s, "cus_asg", "gentle", false).await.unwrap();
    assert_eq!(only_new.customer.unwrap().policy_code, "gentle");
    assert!(only_new.processes.is_empty());
    assert_eq!(get(s, &p.id).await.policy_code, "ops");

    let moved = assign(s, "cus_asg", "gentle", true).await.unwrap();
    assert_eq!(moved.processes.len(), 1);
    let m = &moved.processes[0];
    assert_eq!(
        (m.id.as_str(), m.policy_code.as_str(), m.policy_version),
        (p.id.as_str(), "gentle", 1)
    );
    assert_eq!((m.state, m.current_step_index), (ACTIVE, 0));
    run_everything(s).await;
    assert_eq!(smtp.received().len(), 3, "the gentle nudge, once");
    let after = get(s, &p.id).await;
    let last = after.history.last().unwrap();
    assert_eq!(
        (last.step_index, last.attempt, last.step_name.as_str()),
        (0, 2, "Gentle nudge")
    );
    assert_eq!(get(s, &kept_alone.id).await.policy_code, "ops");
    let assigned: Vec<proto::PolicyAssignedEventPayload> = s
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(proto::event::Payload::PolicyAssigned(a)) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(assigned.len(), 2);
    assert_eq!(assigned[1].moved_process_ids, vec![p.id.clone()]);
    assert_eq!(assigned[1].previous_policy_code, "gentle");
    assert!(process_events(s).await.iter().any(|e| e == "process.reset"));

    // A balance policy cannot take over invoice processes: refused, nothing changed.
    create_policy(
        s,
        proto::Policy {
            scope: PolicyScope::CustomerBalance as i32,
            ..three_steps("balance", "")
        },
    )
    .await;
    assert_error(
        assign(s, "cus_asg", "balance", true).await,
        Code::FailedPrecondition,
        "POLICY_SCOPE_MISMATCH",
    );
    assert_eq!(get(s, &p.id).await.policy_code, "gentle");
    assert_error(
        assign(s, "cus_asg", "nope", false).await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    assert_error(
        assign(s, "cus_nobody", "gentle", false).await,
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
    );
}

async fn preview(
    s: &TestServer,
    process_id: &str,
    kind: TemplateKind,
) -> Result<proto::PreviewNotificationResponse, tonic::Status> {
    Ok(s.dunning()
        .preview_notification(proto::PreviewNotificationRequest {
            process_id: process_id.into(),
            kind: kind as i32,
            ..Default::default()
        })
        .await?
        .into_inner())
}

/// A preview with a process renders its next email exactly as the step then queues it, a
/// sales notification with the history so far, and says when no email is left to send.
async fn preview_renders_the_next_email_of_a_process(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_prev").await;
    let next = preview(s, &p.id, TemplateKind::Unspecified).await.unwrap();
    advance(s, &p.id, "").await.unwrap();
    let queued = s
        .dunning()
        .list_notifications(proto::ListNotificationsRequest {
            process_id: p.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    let firm = queued
        .iter()
        .find(|n| n.kind == TemplateKind::FirmReminder as i32)
        .expect("the firm reminder was queued");
    assert!(queued.len() > 1, "the friendly and the firm reminder");
    let only_firm = s
        .dunning()
        .list_notifications(proto::ListNotificationsRequest {
            process_id: p.id.clone(),
            kind: TemplateKind::FirmReminder as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(
        only_firm.iter().map(|n| &n.id).collect::<Vec<_>>(),
        vec![&firm.id],
        "the kind filter"
    );
    assert_eq!(next.subject, firm.subject);
    assert_eq!(next.to_emails, firm.to_emails);
    assert_eq!(next.bcc_emails, firm.bcc_emails);
    let sales = preview(s, &p.id, TemplateKind::SalesNotification)
        .await
        .unwrap();
    assert_eq!(sales.to_emails, vec!["rep@acme.test".to_string()]);
    assert!(
        sales.text_body.contains("Step 2 (Firm)"),
        "{}",
        sales.text_body
    );
    advance(s, &p.id, "").await.unwrap();
    assert_error(
        preview(s, &p.id, TemplateKind::Unspecified).await,
        Code::FailedPrecondition,
        "NO_NEXT_EMAIL",
    );
    assert_error(
        preview(s, &new_id().to_string(), TemplateKind::Unspecified).await,
        Code::NotFound,
        "PROCESS_NOT_FOUND",
    );
}

/// An operator escalates from PAUSED and from EXHAUSTED too (the agency gets the hand-over
/// once each); a closed process cannot be escalated.
async fn escalate_from_paused_and_exhausted(s: &TestServer, smtp: &SmtpServer) {
    let paused = running_process(s, smtp, "cus_esc_p").await;
    pause(s, &paused.id, "").await.unwrap();
    let from_paused = escalate(s, &paused.id, "").await.unwrap().process.unwrap();
    assert_eq!(from_paused.state, ESCALATED);
    assert_eq!(from_paused.pause_reason, PauseReason::Unspecified as i32);
    s.deliver().await;
    let exhausted = running_process(s, smtp, "cus_esc_x").await;
    advance(s, &exhausted.id, "").await.unwrap();
    assert_eq!(
        advance(s, &exhausted.id, "").await.unwrap().state,
        EXHAUSTED
    );
    let from_exhausted = escalate(s, &exhausted.id, "").await.unwrap();
    assert_eq!(from_exhausted.process.unwrap().state, ESCALATED);
    run_everything(s).await;
    let to_agency = smtp
        .received()
        .iter()
        .filter(|m| m.rcpt_to.contains(&"cases@agency.test".to_string()))
        .count();
    assert_eq!(to_agency, 2);
    // The customers' payment profiles count the hand-overs of the last year.
    for (customer, escalated) in [("cus_esc_p", 1), ("cus_esc_x", 1)] {
        let profile = s.payment_profile(customer).await;
        assert_eq!(profile.escalated_processes, escalated, "{customer}");
        assert_eq!(profile.broken_promises, 0);
    }
    let closed = running_process(s, smtp, "cus_esc_c").await;
    cancel(s, &closed.id, "").await.unwrap();
    assert_error(
        escalate(s, &closed.id, "").await,
        Code::FailedPrecondition,
        "PROCESS_CLOSED",
    );
}

/// A customer excluded from dunning while a promise runs: when the promise ends the process
/// is held by the exclusion, and nothing is sent.
async fn an_exclusion_during_a_promise_holds_the_process(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_promx").await;
    promise(s, &p.id, "2026-11-28", "").await.unwrap();
    exclude_customer(s, "cus_promx").await;
    live_until(s, at("2026-12-10T12:00:00Z")).await;
    let held = get(s, &p.id).await;
    assert_eq!(held.state, PAUSED);
    assert_eq!(held.pause_reason, PauseReason::CustomerExcluded as i32);
    assert_eq!(
        smtp.received().len(),
        1,
        "nothing after the friendly reminder"
    );
    let events = s.event_types().await;
    assert!(events.iter().any(|e| e == "promise.broken"), "{events:?}");
}

/// A fee is booked once per invoice and step of a policy version: a reset books step 2's fee
/// nothing again, but a process moved to another policy books the fee of that policy's step 2.
async fn a_moved_process_books_the_new_policys_fees(s: &TestServer, smtp: &SmtpServer) {
    let p = running_process(s, smtp, "cus_mvf").await;
    advance(s, &p.id, "").await.unwrap();
    let fees = |p: &proto::Process| -> Vec<String> {
        p.charges.iter().map(|c| c.amount.clone()).collect()
    };
    assert_eq!(fees(&get(s, &p.id).await), vec!["10.00".to_string()]);
    // Reset: step 1 and 2 of the same version again, no second fee.
    s.dunning()
        .reset_process(proto::ResetProcessRequest {
            id: p.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    run_everything(s).await;
    advance(s, &p.id, "").await.unwrap();
    assert_eq!(fees(&get(s, &p.id).await), vec!["10.00".to_string()]);

    let mut stricter = three_steps("stricter", "cases@agency.test");
    stricter.steps[1].actions[1] = fixed_fee("EUR", "25");
    create_policy(s, stricter).await;
    assign(s, "cus_mvf", "stricter", true).await.unwrap();
    run_everything(s).await;
    let moved = get(s, &p.id).await;
    assert_eq!(moved.policy_code, "stricter");
    assert_eq!(moved.current_step_index, 1, "{moved:#?}");
    advance(s, &p.id, "").await.unwrap();
    let after = get(s, &p.id).await;
    assert_eq!(fees(&after), vec!["10.00".to_string(), "25.00".into()]);
    let fee_steps: Vec<i32> = after.charges.iter().map(|c| c.step_index).collect();
    assert_eq!(fee_steps, vec![1, 1]);
}

/// A promise is kept by what was paid, not by how the amount due moved: an invoice joining
/// the customer's balance while the promise runs does not break a promise that was paid.
async fn a_paid_promise_is_kept_when_an_invoice_joins(s: &TestServer, _smtp: &SmtpServer) {
    create_policy(
        s,
        proto::Policy {
            scope: PolicyScope::CustomerBalance as i32,
            ..three_steps("bal", "")
        },
    )
    .await;
    create_customer(
        s,
        proto::Customer {
            policy_code: "bal".into(),
            ..customer("cus_pj")
        },
    )
    .await;
    upsert(
        s,
        invoice_of("inv_pj_1", "cus_pj", "100.00", "EUR", "2026-11-20"),
    )
    .await;
    run_everything(s).await;
    let p = only_process(s, "cus_pj").await;
    promise(s, &p.id, "2026-11-28", "40.00").await.unwrap();
    upsert(
        s,
        invoice_of("inv_pj_2", "cus_pj", "100.00", "EUR", "2026-11-25"),
    )
    .await;
    live_until(s, at("2026-11-26T12:00:00Z")).await;
    pay(s, "inv_pj_1", "pay_pj", "40.00").await;
    let joined = get(s, &p.id).await;
    assert_eq!(joined.invoice_external_ids.len(), 2, "{joined:#?}");
    assert_eq!(joined.state, PAUSED);
    live_until(s, at("2026-11-29T12:00:00Z")).await;
    let types: Vec<String> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e.r#type.starts_with("promise."))
        .map(|e| e.r#type)
        .collect();
    assert_eq!(types, ["promise.recorded", "promise.kept"]);
    assert_eq!(get(s, &p.id).await.state, ACTIVE);
}

on_both_backends_with_smtp!(
    advance_runs_the_next_step_now,
    pause_resume_and_cancel,
    reset_starts_a_new_attempt,
    inform_sales_and_escalate,
    a_command_and_a_claimed_step_race,
    bad_commands_name_their_fields,
    promises_to_pay_are_kept_or_broken,
    bad_promises_name_their_fields,
    assign_policy_moves_open_processes_on_request,
    preview_renders_the_next_email_of_a_process,
    escalate_from_paused_and_exhausted,
    an_exclusion_during_a_promise_holds_the_process,
    a_moved_process_books_the_new_policys_fees,
    a_paid_promise_is_kept_when_an_invoice_joins,
);
