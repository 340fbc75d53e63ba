//! What operators do to a process ("Next Dunning", pause, cancel...): which states each
//! command accepts, what it changes, and the record it leaves in the process history. Pure:
//! the service locks the process, applies one of these and saves the result.

use super::payment_plan::PaymentPlan;
use super::state::{PauseReason, Process, ProcessState, Promise};
use crate::error::reason::Reason;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Pause,
    Resume,
    Cancel,
    Reset,
    Advance,
    Escalate,
    InformSales,
    PromiseToPay,
    PaymentPlan,
}

impl CommandKind {
    pub const ALL: [Self; 9] = [
        Self::Pause,
        Self::Resume,
        Self::Cancel,
        Self::Reset,
        Self::Advance,
        Self::Escalate,
        Self::InformSales,
        Self::PromiseToPay,
        Self::PaymentPlan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "PAUSE",
            Self::Resume => "RESUME",
            Self::Cancel => "CANCEL",
            Self::Reset => "RESET",
            Self::Advance => "ADVANCE",
            Self::Escalate => "ESCALATE",
            Self::InformSales => "INFORM_SALES",
            Self::PromiseToPay => "PROMISE_TO_PAY",
            Self::PaymentPlan => "PAYMENT_PLAN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// An operator command as recorded in the process history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCommand {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    pub kind: CommandKind,
    /// Who gave it: `api_key:<id>` of the calling key.
    pub actor: String,
    /// The operator's note or reason; may be empty.
    pub comment: String,
    pub previous_state: ProcessState,
    pub state: ProcessState,
    /// The process's current step index after the command.
    pub step_index: usize,
    /// The email the command queued (escalation, sales notification).
    pub notification_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Why a command does not apply to a process in its current state; the reason is the
/// `ErrorInfo` reason the API answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Reason,
    pub message: String,
}

impl Refused {
    fn new(reason: Reason, p: &Process, what: &str) -> Self {
        Self {
            reason,
            message: format!("the process is {}: {what}", p.state.as_str()),
        }
    }
}

/// Whether a command changes the process or leaves it as it is (the command was already
/// in effect: pausing a PAUSED process, cancelling a CANCELLED one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    AlreadyInEffect,
}

fn closed(p: &Process, what: &str) -> Refused {
    Refused::new(Reason::ProcessClosed, p, what)
}

/// Pause an ACTIVE process until an operator resumes it.
pub fn pause(p: &mut Process, note: &str, now: DateTime<Utc>) -> Result<Applied, Refused> {
    match p.state {
        ProcessState::Paused => Ok(Applied::AlreadyInEffect),
        ProcessState::Active => {
            p.pause(PauseReason::Manual, now);
            p.note = note.to_owned();
            Ok(Applied::Changed)
        }
        _ => Err(Refused::new(
            Reason::ProcessNotActive,
            p,
            "only an ACTIVE process can be paused",
        )),
    }
}

/// Resume a process an operator, a promise or a payment plan paused (the promise or plan
/// ends); its next step keeps its time (a step whose time has passed runs at once). A pause
/// from a dispute, block or exclusion ends when that is cleared, not by command.
pub fn resume(p: &mut Process, now: DateTime<Utc>) -> Result<Applied, Refused> {
    match (p.state, p.pause_reason) {
        (ProcessState::Active, _) => Ok(Applied::AlreadyInEffect),
        (ProcessState::Paused, Some(reason)) if reason.follows_a_cause() => Err(Refused {
            reason: Reason::PauseCauseActive,
            message: format!(
                "the process is paused by {} which is still in place: clear that instead",
                reason.as_str()
            ),
        }),
        (ProcessState::Paused, _) => {
            p.resume(now);
            p.end_arrangements(now);
            Ok(Applied::Changed)
        }
        _ => Err(Refused::new(
            Reason::ProcessNotPaused,
            p,
            "only a PAUSED process can be resumed",
        )),
    }
}

/// End an open process without collecting: its invoices stay unpaid.
pub fn cancel(p: &mut Process, reason: &str, now: DateTime<Utc>) -> Result<Applied, Refused> {
    match p.state {
        ProcessState::Cancelled => Ok(Applied::AlreadyInEffect),
        ProcessState::Resolved => Err(closed(p, "a resolved process cannot be cancelled")),
        _ => {
            p.cancel(now);
            p.note = reason.to_owned();
            Ok(Applied::Changed)
        }
    }
}

/// Back to the first step of the process's policy version as a new attempt: ACTIVE, step 0
/// due at `first_step_at` (computed from now; the engine's catch-up rule applies when
/// several steps are due by then). Booked charges stay, and are not booked again.
pub fn reset(
    p: &mut Process,
    first_step_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Applied, Refused> {
    if !p.state.is_open() {
        return Err(closed(p, "only an open process can be reset"));
    }
    p.state = ProcessState::Active;
    p.pause_reason = None;
    p.current_step_index = 0;
    p.attempt += 1;
    p.last_step_at = Some(now);
    p.next_step_at = Some(first_step_at);
    p.due_at = Some(first_step_at);
    p.waiting_step_run_id = None;
    p.end_arrangements(now);
    p.updated_at = now;
    Ok(Applied::Changed)
}

/// Whether an open process moves when its customer is assigned another policy: ACTIVE,
/// PAUSED or EXHAUSTED (an escalated one stays with the agency).
pub fn moves_with_customer_policy(p: &Process) -> bool {
    matches!(
        p.state,
        ProcessState::Active | ProcessState::Paused | ProcessState::Exhausted
    )
}

/// Moves a process to another policy version and restarts it at its first step as a new
/// attempt, due at `first_step_at` (the catch-up rule applies). A paused process stays
/// paused, keeping the new schedule for its resume.
pub fn move_to_policy(
    p: &mut Process,
    policy_code: &str,
    policy_version: i32,
    first_step_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    p.policy_code = policy_code.to_owned();
    p.policy_version = policy_version;
    p.current_step_index = 0;
    p.attempt += 1;
    p.last_step_at = Some(now);
    p.next_step_at = Some(first_step_at);
    p.waiting_step_run_id = None;
    p.updated_at = now;
    if p.state == ProcessState::Paused {
        // Waits as it did: for its cause, an operator, a promise's deadline or its plan.
        p.due_at = p.work_due_at();
    } else {
        p.state = ProcessState::Active;
        p.due_at = Some(first_step_at);
    }
}

/// Whether "Next Dunning" may run the next step of a process with `steps` steps now.
pub fn check_advance(p: &Process, steps: usize) -> Result<(), Refused> {
    if p.state != ProcessState::Active {
        return Err(Refused::new(
            Reason::ProcessNotActive,
            p,
            "only an ACTIVE process can be advanced",
        ));
    }
    if p.current_step_index >= steps {
        return Err(Refused {
            reason: Reason::NoNextStep,
            message: format!("the last of the policy's {steps} steps has run"),
        });
    }
    Ok(())
}

/// Whether an operator may hand the process over to the collection agency now (ACTIVE,
/// PAUSED or EXHAUSTED; an ESCALATED one already was).
pub fn check_escalate(p: &Process, has_agency_email: bool) -> Result<Applied, Refused> {
    match p.state {
        ProcessState::Escalated => Ok(Applied::AlreadyInEffect),
        ProcessState::Resolved | ProcessState::Cancelled => {
            Err(closed(p, "a closed process cannot be escalated"))
        }
        _ if !has_agency_email => Err(Refused {
            reason: Reason::NoCollectionAgency,
            message: "the process's policy has no collection_agency_email".into(),
        }),
        _ => Ok(Applied::Changed),
    }
}

/// Whether the customer's sales rep may be told about the process now.
pub fn check_inform_sales(p: &Process, has_sales_rep: bool) -> Result<(), Refused> {
    if !p.state.is_open() {
        return Err(closed(p, "the process is closed"));
    }
    if !has_sales_rep {
        return Err(Refused {
            reason: Reason::SalesRepMissing,
            message: "the customer has no sales_rep_email".into(),
        });
    }
    Ok(())
}

/// Pause the process until the customer's promised date (ACTIVE, or PAUSED by an operator
/// or an earlier promise, which this one replaces). The engine looks at it again at the
/// promise's deadline.
pub fn promise_to_pay(
    p: &mut Process,
    promise: Promise,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Applied, Refused> {
    check_promise(p)?;
    p.pause(PauseReason::PromiseToPay, now);
    p.due_at = Some(promise.deadline);
    p.promise = Some(promise);
    p.note = note.to_owned();
    Ok(Applied::Changed)
}

/// Whether a promise to pay may be recorded on the process as it is (not while a payment
/// plan runs: that is the agreement in force; resume the process first).
pub fn check_promise(p: &Process) -> Result<(), Refused> {
    let allowed = match (p.state, p.pause_reason) {
        (ProcessState::Active, _) => true,
        (ProcessState::Paused, Some(PauseReason::PaymentPlan)) => false,
        (ProcessState::Paused, Some(reason)) => !reason.follows_a_cause(),
        _ => false,
    };
    if !allowed {
        return Err(Refused::new(
            Reason::ProcessNotActive,
            p,
            "a promise can be recorded on an ACTIVE process, or one paused by an operator or \
             an earlier promise",
        ));
    }
    Ok(())
}

/// Pause the process for a payment plan (ACTIVE, or PAUSED by an operator, a promise or an
/// earlier plan, which this one replaces). The engine looks at it again at each
/// instalment's deadline and reminder.
pub fn record_payment_plan(
    p: &mut Process,
    plan: PaymentPlan,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Applied, Refused> {
    check_payment_plan(p)?;
    p.end_arrangements(now);
    p.pause(PauseReason::PaymentPlan, now);
    p.payment_plan = Some(plan);
    p.due_at = p.work_due_at();
    p.note = note.to_owned();
    Ok(Applied::Changed)
}

/// Whether a payment plan may be agreed for the process as it is.
pub fn check_payment_plan(p: &Process) -> Result<(), Refused> {
    let allowed = match (p.state, p.pause_reason) {
        (ProcessState::Active, _) => true,
        (ProcessState::Paused, Some(reason)) => !reason.follows_a_cause(),
        _ => false,
    };
    if !allowed {
        return Err(Refused::new(
            Reason::ProcessNotActive,
            p,
            "a payment plan can be agreed for an ACTIVE process, or one paused by an \
             operator, a promise or an earlier plan",
        ));
    }
    Ok(())
}

/// How far ahead a promise may be.
pub const MAX_PROMISE_DAYS: u64 = 365;

/// The promise a customer makes for a process that owes `owed_minor`: by `date` (from today
/// to `MAX_PROMISE_DAYS` ahead in the customer's time zone), `amount_minor` or, when `None`,
/// everything due. Kept or broken at the end of that day. Violations name `promised_date` and
/// `amount`.
pub fn make_promise(
    date: NaiveDate,
    amount_minor: Option<i64>,
    owed_minor: i64,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<Promise, Vec<crate::domain::validation::FieldViolation>> {
    let mut v = crate::domain::validation::Violations::new();
    let today = now.with_timezone(&tz).date_naive();
    if date < today {
        v.add(
            "promised_date",
            format!("is in the past (today is {today} in the customer's time zone)"),
        );
    } else if date > today + chrono::Days::new(MAX_PROMISE_DAYS) {
        v.add(
            "promised_date",
            format!("is more than {MAX_PROMISE_DAYS} days ahead"),
        );
    }
    match amount_minor {
        Some(minor) if minor <= 0 => v.add("amount", "must be positive"),
        Some(minor) if minor > owed_minor => {
            v.add("amount", "is more than the process's amount due")
        }
        _ => {}
    }
    v.finish()?;
    let next_day = date.succ_opt().unwrap_or(date);
    Ok(Promise {
        date,
        amount_minor,
        deadline: crate::domain::invoice::start_of_day(next_day, tz),
        owed_minor,
        made_at: now,
    })
}

/// What became of a promise whose deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromiseOutcome {
    Kept,
    Broken,
}

/// At or after the deadline of the promise the process waits for: the promise is kept or
/// broken, and the process runs again either way (a step whose time passed runs at once).
/// `None` while the process does not wait for a promise or its deadline is still ahead.
pub fn settle_promise(
    p: &mut Process,
    owed_now_minor: i64,
    paid_since_minor: i64,
    now: DateTime<Utc>,
) -> Option<(Promise, PromiseOutcome)> {
    if p.state != ProcessState::Paused || p.pause_reason != Some(PauseReason::PromiseToPay) {
        return None;
    }
    let promise = p.promise.clone()?;
    if now < promise.deadline {
        return None;
    }
    let outcome = if promise.kept(owed_now_minor, paid_since_minor) {
        PromiseOutcome::Kept
    } else {
        PromiseOutcome::Broken
    };
    p.resume(now);
    p.promise = None;
    Some((promise, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use crate::domain::policy::PolicyScope;
    use crate::domain::process::state::ProcessInvoice;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn process(state: ProcessState, pause_reason: Option<PauseReason>) -> Process {
        let next: DateTime<Utc> = "2026-12-05T00:00:00Z".parse().unwrap();
        Process {
            id: Uuid::from_u128(1),
            organization_id: Uuid::nil(),
            customer_id: Uuid::from_u128(2),
            customer_external_id: "cus_1".into(),
            currency: Currency::from_code("EUR").unwrap(),
            policy_code: "std".into(),
            policy_version: 1,
            scope: PolicyScope::Invoice,
            scope_key: "k".into(),
            state,
            pause_reason,
            current_step_index: 2,
            attempt: 1,
            anchor_date: "2026-11-20".parse().unwrap(),
            next_step_at: Some(next),
            last_step_at: Some(now()),
            due_at: (state == ProcessState::Active).then_some(next),
            waiting_step_run_id: Some(Uuid::from_u128(9)),
            promise: None,
            payment_plan: None,
            note: String::new(),
            payment_retries_blocked: false,
            suspension_requested: false,
            started_at: now(),
            ended_at: None,
            updated_at: now(),
            invoices: vec![ProcessInvoice {
                invoice_id: Uuid::from_u128(3),
                external_id: "inv_1".into(),
                is_open: true,
            }],
            trace_context: None,
        }
    }

    fn promise(amount_minor: Option<i64>) -> Promise {
        Promise {
            date: "2026-12-10".parse().unwrap(),
            amount_minor,
            deadline: "2026-12-11T00:00:00Z".parse().unwrap(),
            owed_minor: 10_000,
            made_at: now(),
        }
    }

    #[test]
    fn a_promise_waits_for_its_deadline_then_is_kept_or_broken() {
        let mut p = process(ProcessState::Active, None);
        let deadline = promise(Some(4_000)).deadline;
        assert_eq!(
            promise_to_pay(&mut p, promise(Some(4_000)), "by phone", now()),
            Ok(Applied::Changed)
        );
        assert_eq!(p.pause_reason, Some(PauseReason::PromiseToPay));
        assert_eq!(p.due_at, Some(deadline));
        assert_eq!(
            settle_promise(&mut p, 6_000, 4_000, now()),
            None,
            "before the deadline"
        );
        let settled = settle_promise(&mut p, 6_000, 4_000, deadline).unwrap();
        assert_eq!(settled.1, PromiseOutcome::Kept, "40.00 of 100.00 was paid");
        assert_eq!(p.state, ProcessState::Active);
        assert_eq!(p.promise, None);
        let mut q = process(ProcessState::Active, None);
        promise_to_pay(&mut q, promise(Some(4_000)), "", now()).unwrap();
        assert_eq!(
            settle_promise(&mut q, 6_001, 3_999, deadline).unwrap().1,
            PromiseOutcome::Broken
        );
        // Without an amount, only paying everything keeps it.
        assert!(!promise(None).kept(1, 9_999));
        assert!(promise(None).kept(0, 0));
        // What was paid counts, not how the amount due moved: an invoice joining the
        // balance after a payment of the promised amount does not break the promise.
        assert!(promise(Some(4_000)).kept(16_000, 4_000));
        assert!(!promise(Some(4_000)).kept(0, 0));
        // A dispute's pause cannot be turned into a promise.
        let mut disputed = process(ProcessState::Paused, Some(PauseReason::Dispute));
        assert_eq!(
            promise_to_pay(&mut disputed, promise(None), "", now())
                .unwrap_err()
                .reason,
            Reason::ProcessNotActive
        );
    }

    #[test]
    fn a_promise_is_for_today_to_a_year_ahead_and_at_most_what_is_due() {
        let tz = chrono_tz::Europe::Berlin;
        // 23:30 UTC on 1 December is already 2 December in Berlin.
        let late: DateTime<Utc> = "2026-12-01T23:30:00Z".parse().unwrap();
        let fields = |r: Result<Promise, Vec<crate::domain::validation::FieldViolation>>| {
            r.unwrap_err()
                .into_iter()
                .map(|v| v.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(make_promise(
                "2026-12-01".parse().unwrap(),
                Some(0),
                100,
                tz,
                late
            )),
            vec!["promised_date", "amount"]
        );
        assert_eq!(
            fields(make_promise(
                "2027-12-03".parse().unwrap(),
                Some(101),
                100,
                tz,
                late
            )),
            vec!["promised_date", "amount"]
        );
        let promise = make_promise("2026-12-02".parse().unwrap(), None, 100, tz, late).unwrap();
        // Kept or broken at the end of the promised day, Berlin time.
        assert_eq!(
            promise.deadline,
            "2026-12-02T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(promise.owed_minor, 100);
    }

    #[test]
    fn pause_holds_an_active_process_and_resume_keeps_its_schedule() {
        let mut p = process(ProcessState::Active, None);
        assert_eq!(pause(&mut p, "called", now()), Ok(Applied::Changed));
        assert_eq!(
            (p.state, p.pause_reason, p.due_at),
            (ProcessState::Paused, Some(PauseReason::Manual), None)
        );
        assert_eq!(p.note, "called");
        assert_eq!(pause(&mut p, "again", now()), Ok(Applied::AlreadyInEffect));
        assert_eq!(p.note, "called");
        assert_eq!(resume(&mut p, now()), Ok(Applied::Changed));
        assert_eq!(p.state, ProcessState::Active);
        // It waited for a charge's outcome: looked at again now.
        assert_eq!(p.due_at, Some(now()));
        assert_eq!(resume(&mut p, now()), Ok(Applied::AlreadyInEffect));
    }

    #[test]
    fn a_resumed_process_waiting_for_a_charge_is_looked_at_again_at_once() {
        let mut p = process(ProcessState::Paused, Some(PauseReason::Manual));
        assert!(p.waiting_step_run_id.is_some());
        assert_eq!(resume(&mut p, now()), Ok(Applied::Changed));
        assert_eq!(p.due_at, Some(now()));
        let mut q = process(ProcessState::Paused, Some(PauseReason::Manual));
        q.waiting_step_run_id = None;
        resume(&mut q, now()).unwrap();
        assert_eq!(q.due_at, q.next_step_at);
    }

    #[test]
    fn a_pause_with_a_cause_is_not_resumed_by_command() {
        let mut p = process(ProcessState::Paused, Some(PauseReason::Dispute));
        assert_eq!(
            resume(&mut p, now()).unwrap_err().reason,
            Reason::PauseCauseActive
        );
        let mut promised = process(ProcessState::Paused, Some(PauseReason::PromiseToPay));
        promised.promise = Some(promise(Some(4_000)));
        assert_eq!(resume(&mut promised, now()), Ok(Applied::Changed));
        assert_eq!(promised.promise, None);
    }

    #[test]
    fn commands_name_the_state_they_refuse() {
        let mut ended = process(ProcessState::Resolved, None);
        let refused = pause(&mut ended, "", now()).unwrap_err();
        assert_eq!(refused.reason, Reason::ProcessNotActive);
        assert!(refused.message.contains("RESOLVED"), "{}", refused.message);
        assert_eq!(
            cancel(&mut ended, "", now()).unwrap_err().reason,
            Reason::ProcessClosed
        );
        assert_eq!(
            reset(&mut ended, now(), now()).unwrap_err().reason,
            Reason::ProcessClosed
        );
        assert_eq!(
            resume(&mut process(ProcessState::Exhausted, None), now())
                .unwrap_err()
                .reason,
            Reason::ProcessNotPaused
        );
        assert_eq!(
            check_escalate(&process(ProcessState::Active, None), false)
                .unwrap_err()
                .reason,
            Reason::NoCollectionAgency
        );
        assert_eq!(
            check_escalate(&process(ProcessState::Escalated, None), false),
            Ok(Applied::AlreadyInEffect)
        );
        assert_eq!(
            check_inform_sales(&process(ProcessState::Active, None), false)
                .unwrap_err()
                .reason,
            Reason::SalesRepMissing
        );
    }

    #[test]
    fn advance_needs_an_active_process_with_a_step_left() {
        let p = process(ProcessState::Active, None);
        assert_eq!(check_advance(&p, 3), Ok(()));
        assert_eq!(check_advance(&p, 2).unwrap_err().reason, Reason::NoNextStep);
        let paused = process(ProcessState::Paused, Some(PauseReason::Manual));
        assert_eq!(
            check_advance(&paused, 3).unwrap_err().reason,
            Reason::ProcessNotActive
        );
    }

    #[test]
    fn cancel_ends_the_process_and_releases_its_invoices() {
        let mut p = process(ProcessState::Paused, Some(PauseReason::Manual));
        assert_eq!(
            cancel(&mut p, "settled elsewhere", now()),
            Ok(Applied::Changed)
        );
        assert_eq!(p.state, ProcessState::Cancelled);
        assert_eq!(p.ended_at, Some(now()));
        assert!(p.open_invoice_ids().is_empty());
        assert_eq!(cancel(&mut p, "again", now()), Ok(Applied::AlreadyInEffect));
    }

    #[test]
    fn reset_is_a_new_attempt_at_the_first_step() {
        let mut p = process(ProcessState::Exhausted, None);
        let first: DateTime<Utc> = "2026-11-21T00:00:00Z".parse().unwrap();
        assert_eq!(reset(&mut p, first, now()), Ok(Applied::Changed));
        assert_eq!(p.state, ProcessState::Active);
        assert_eq!(p.current_step_index, 0);
        assert_eq!(p.attempt, 2);
        assert_eq!(p.due_at, Some(first));
        assert_eq!(p.waiting_step_run_id, None);
        assert_eq!(p.last_step_at, Some(now()));
    }
}
