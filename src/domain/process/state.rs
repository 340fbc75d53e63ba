//! A dunning process and what it records: its state machine (as drawn in `process.proto`),
//! its step runs with each action's outcome, and the fees and interest it booked.

use crate::domain::money::Currency;
use crate::domain::notification::{Notification, NotificationState};
use crate::domain::policy::{ActionType, PolicyScope};
use crate::domain::process::payment_plan::PaymentPlan;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long the actions after a charge in a policy's last step wait for its outcome before
/// they are skipped (a later step's time ends the wait otherwise).
pub const OUTCOME_WAIT: chrono::Duration = chrono::Duration::days(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessState {
    Active,
    Paused,
    Resolved,
    Exhausted,
    Escalated,
    Cancelled,
}

impl ProcessState {
    pub const ALL: [Self; 6] = [
        Self::Active,
        Self::Paused,
        Self::Resolved,
        Self::Exhausted,
        Self::Escalated,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Resolved => "RESOLVED",
            Self::Exhausted => "EXHAUSTED",
            Self::Escalated => "ESCALATED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Open states hold their invoices and their scope key; a settling payment resolves them.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Resolved | Self::Cancelled)
    }
}

/// Why a process is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseReason {
    Manual,
    Dispute,
    PromiseToPay,
    DunningBlocked,
    CustomerExcluded,
    PaymentPlan,
}

impl PauseReason {
    pub const ALL: [Self; 6] = [
        Self::Manual,
        Self::Dispute,
        Self::PromiseToPay,
        Self::DunningBlocked,
        Self::CustomerExcluded,
        Self::PaymentPlan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::Dispute => "DISPUTE",
            Self::PromiseToPay => "PROMISE_TO_PAY",
            Self::DunningBlocked => "DUNNING_BLOCKED",
            Self::CustomerExcluded => "CUSTOMER_EXCLUDED",
            Self::PaymentPlan => "PAYMENT_PLAN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A pause that comes from the invoices or the customer: it ends when its cause is
    /// cleared, not by an operator.
    pub fn follows_a_cause(self) -> bool {
        matches!(
            self,
            Self::Dispute | Self::DunningBlocked | Self::CustomerExcluded
        )
    }
}

/// One invoice a process covers (ever joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInvoice {
    pub invoice_id: Uuid,
    pub external_id: String,
    /// Still held by the process (false once the process ended).
    pub is_open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub currency: Currency,
    pub policy_code: String,
    pub policy_version: i32,
    pub scope: PolicyScope,
    pub scope_key: String,
    pub state: ProcessState,
    pub pause_reason: Option<PauseReason>,
    /// The step that runs next; equal to the number of steps once the last one ran.
    pub current_step_index: usize,
    /// 1, and one more after each reset (a step run's key is (process, step, attempt)).
    pub attempt: i32,
    /// Due-date steps count from this date (the earliest due date at the start).
    pub anchor_date: NaiveDate,
    /// When the next step is due (kept while paused, so a resume keeps the schedule).
    pub next_step_at: Option<DateTime<Utc>>,
    /// When the last step ran (or was superseded); previous-step delays count from it.
    pub last_step_at: Option<DateTime<Utc>>,
    /// When the engine has work for the process: the next step, or the rest of a step that
    /// waits for a charge's outcome. `None` while nothing is due (paused, ended, exhausted).
    pub due_at: Option<DateTime<Utc>>,
    /// The step run whose remaining actions wait for a charge's outcome.
    pub waiting_step_run_id: Option<Uuid>,
    /// The customer's open promise to pay, while the process is paused for it.
    pub promise: Option<Promise>,
    /// The process's payment plan: the one it is paused for, or the last one it had (kept,
    /// ended, so that the process shows how it went).
    pub payment_plan: Option<PaymentPlan>,
    pub note: String,
    pub payment_retries_blocked: bool,
    pub suspension_requested: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub invoices: Vec<ProcessInvoice>,
    /// The W3C trace context of the request that last made the process due (opened it, or
    /// gave a command), so the step it caused joins that request's trace; cleared when the
    /// step runs. Opaque here; `None` while traces are not exported.
    pub trace_context: Option<String>,
}

impl Process {
    /// Ends the process as RESOLVED: its invoices are settled.
    pub fn resolve(&mut self, now: DateTime<Utc>) {
        self.end(ProcessState::Resolved, now);
    }

    /// Ends the process as CANCELLED.
    pub fn cancel(&mut self, now: DateTime<Utc>) {
        self.end(ProcessState::Cancelled, now);
    }

    fn end(&mut self, state: ProcessState, now: DateTime<Utc>) {
        if let Some(plan) = &mut self.payment_plan {
            // A plan still running ends with the process: its invoices were settled otherwise
            // (credited, voided) or the process was cancelled. One whose last instalment the
            // final payment met was completed before (the writer settles the plan first).
            plan.cancel(now);
        }
        self.state = state;
        self.pause_reason = None;
        self.next_step_at = None;
        self.due_at = None;
        self.waiting_step_run_id = None;
        self.ended_at = Some(now);
        self.updated_at = now;
        for invoice in &mut self.invoices {
            invoice.is_open = false;
        }
    }

    /// Pauses an ACTIVE process; nothing runs until it is resumed.
    pub fn pause(&mut self, reason: PauseReason, now: DateTime<Utc>) {
        self.state = ProcessState::Paused;
        self.pause_reason = Some(reason);
        self.due_at = None;
        self.updated_at = now;
    }

    /// Back to ACTIVE; a step whose time has passed runs at once (the catch-up rule applies),
    /// and a step waiting for a charge's outcome is looked at again now (the outcome may have
    /// arrived while the process was paused).
    pub fn resume(&mut self, now: DateTime<Utc>) {
        self.state = ProcessState::Active;
        self.pause_reason = None;
        self.due_at = if self.waiting_step_run_id.is_some() {
            Some(now)
        } else {
            self.next_step_at
        };
        self.updated_at = now;
    }

    /// Ends the customer's arrangements an operator's command overrides (resume, reset,
    /// escalation): the open promise, and the payment plan if it is still running.
    pub fn end_arrangements(&mut self, now: DateTime<Utc>) {
        self.promise = None;
        if let Some(plan) = &mut self.payment_plan {
            plan.cancel(now);
        }
    }

    /// When the engine next has work for the process: its next step while it runs (ACTIVE
    /// or ESCALATED), the end of a wait for a charge's outcome, the deadline of the promise
    /// it is paused for, or the next deadline or reminder of its payment plan.
    pub fn work_due_at(&self) -> Option<DateTime<Utc>> {
        if self.state == ProcessState::Paused {
            match self.pause_reason {
                Some(PauseReason::PromiseToPay) => {
                    return self.promise.as_ref().map(|promise| promise.deadline);
                }
                Some(PauseReason::PaymentPlan) => {
                    return self.payment_plan.as_ref().and_then(|p| p.next_due_at());
                }
                _ => {}
            }
        }
        if !matches!(self.state, ProcessState::Active | ProcessState::Escalated) {
            return None;
        }
        if self.waiting_step_run_id.is_some() {
            return Some(match self.next_step_at {
                Some(next) => next,
                None => self.last_step_at.unwrap_or(self.updated_at) + OUTCOME_WAIT,
            });
        }
        self.next_step_at
    }

    /// Whether the process holds `invoice_id` now.
    pub fn holds(&self, invoice_id: Uuid) -> bool {
        self.invoices
            .iter()
            .any(|i| i.invoice_id == invoice_id && i.is_open)
    }

    pub fn open_invoice_ids(&self) -> Vec<Uuid> {
        self.invoices
            .iter()
            .filter(|i| i.is_open)
            .map(|i| i.invoice_id)
            .collect()
    }
}

/// A customer's promise to pay by a date (RecordPromiseToPay): the process waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promise {
    pub date: NaiveDate,
    /// The promised amount, minor units; `None` = the full amount due.
    pub amount_minor: Option<i64>,
    /// The end of `date` in the customer's time zone: when the promise is kept or broken.
    pub deadline: DateTime<Utc>,
    /// What was due when the promise was made.
    pub owed_minor: i64,
    /// When it was made: payments recorded from then to the deadline keep it.
    pub made_at: DateTime<Utc>,
}

impl Promise {
    /// Whether the promise is kept: the promised amount was paid since it was made
    /// (`paid_since_minor`, payments on the process's invoices from `made_at` to the
    /// deadline) or, without an amount, nothing is due any more (`owed_now_minor`).
    pub fn kept(&self, owed_now_minor: i64, paid_since_minor: i64) -> bool {
        match self.amount_minor {
            Some(promised) => paid_since_minor >= promised,
            None => owed_now_minor <= 0,
        }
    }
}

/// What made a step run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTrigger {
    Scheduled,
    Advanced,
}

impl StepTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "SCHEDULED",
            Self::Advanced => "ADVANCED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Scheduled, Self::Advanced]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutcomeStatus {
    Succeeded,
    Pending,
    Failed,
    Skipped,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Pending => "PENDING",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// What one action of a step run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub action_type: ActionType,
    pub status: OutcomeStatus,
    pub detail: String,
    pub notification_id: Option<Uuid>,
    pub payment_request_id: Option<Uuid>,
    /// Fee or interest booked by the action, minor units of the process's currency.
    pub charge_minor: Option<i64>,
}

impl ActionOutcome {
    pub fn new(action_type: ActionType, status: OutcomeStatus, detail: impl Into<String>) -> Self {
        Self {
            action_type,
            status,
            detail: detail.into(),
            notification_id: None,
            payment_request_id: None,
            charge_minor: None,
        }
    }

    /// A PENDING email action brought up to date with its notification: SUCCEEDED once
    /// sent, FAILED when sending gave up, SKIPPED when it was suppressed.
    pub fn follow_email(&mut self, n: &Notification) {
        if self.status != OutcomeStatus::Pending {
            return;
        }
        let (status, detail) = match n.state {
            NotificationState::Queued => return,
            NotificationState::Sent => (OutcomeStatus::Succeeded, "email sent".to_owned()),
            NotificationState::Failed => (
                OutcomeStatus::Failed,
                format!("email not sent: {}", n.last_error),
            ),
            NotificationState::Suppressed => (
                OutcomeStatus::Skipped,
                format!("email suppressed: {}", n.suppressed_reason),
            ),
        };
        self.status = status;
        self.detail = detail;
    }

    /// A charging action with its charge's outcome, once known (`Some(Ok)` paid,
    /// `Some(Err(why))` failed); unchanged while it is not.
    pub fn follow_charge(&mut self, outcome: Option<Result<(), String>>) {
        match outcome {
            Some(Ok(())) => {
                self.status = OutcomeStatus::Succeeded;
                self.detail = "paid".into();
            }
            Some(Err(why)) => {
                self.status = OutcomeStatus::Failed;
                self.detail = why;
            }
            None => {}
        }
    }
}

/// One execution (or supersession) of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    pub step_index: usize,
    pub attempt: i32,
    pub step_name: String,
    pub policy_version: i32,
    pub trigger: StepTrigger,
    pub executed_at: DateTime<Utc>,
    /// One per action of the step, in the step's order (filled in as the actions run).
    pub outcomes: Vec<ActionOutcome>,
    /// Index of the first action still waiting for the outcome of `payment_request_id`.
    pub waiting_from: Option<usize>,
    pub payment_request_id: Option<Uuid>,
    /// Whether the last charge of the step failed (or could not be made): the
    /// ON_PAYMENT_FAILURE actions after it run.
    pub payment_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeKind {
    Fee,
    Interest,
}

impl ChargeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fee => "FEE",
            Self::Interest => "INTEREST",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Fee, Self::Interest]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A fee or interest amount booked on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub process_id: Uuid,
    pub step_run_id: Uuid,
    pub invoice_id: Uuid,
    pub invoice_external_id: String,
    pub kind: ChargeKind,
    pub amount_minor: i64,
    pub currency: Currency,
    pub step_index: usize,
    pub booked_at: DateTime<Utc>,
    /// The policy version whose step `step_index` booked it.
    pub policy_code: String,
    pub policy_version: i32,
    /// Interest only: the period and the rate of its last day.
    pub interest_period: Option<(NaiveDate, NaiveDate)>,
    pub annual_rate_percent: Option<rust_decimal::Decimal>,
}

impl Charge {
    /// The interest period as `YYYY-MM-DD` dates; empty for a fee.
    pub fn period_dates(&self) -> (String, String) {
        self.interest_period
            .map_or((String::new(), String::new()), |(from, to)| {
                (from.to_string(), to.to_string())
            })
    }

    /// The annual rate as a plain decimal string (`"12"`, `"9.12"`); empty for a fee.
    pub fn rate_text(&self) -> String {
        self.annual_rate_percent
            .map(|r| r.normalize().to_string())
            .unwrap_or_default()
    }
}
