//! What each action of a step does, decided without touching anything: the engine executes
//! the plan, and the simulation returns it. Fees and interest come out exact here; the
//! executor only books them.

use super::state::{Charge, ChargeKind};
use crate::domain::charges::{DatedPayment, accrue_interest, fee_minor, interest_to_book};
use crate::domain::invoice::Invoice;
use crate::domain::policy::{Action, ActionCondition, ActionType, FeeSettings, InterestSettings};
use crate::domain::template::TemplateKind;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::collections::HashMap;
use uuid::Uuid;

/// A fee or interest amount to book on one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCharge {
    pub invoice_id: Uuid,
    pub invoice_external_id: String,
    pub kind: ChargeKind,
    pub amount_minor: i64,
    pub interest_period: Option<(NaiveDate, NaiveDate)>,
    pub annual_rate_percent: Option<Decimal>,
}

/// What an action will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedAction {
    /// Queue an email of this kind (reminder, sales notification, agency hand-over).
    Email(TemplateKind),
    /// Book these charges (none may be left to book: then the action succeeds with zero).
    Book(Vec<PlannedCharge>),
    /// Charge the customer's payment method for the balance (RETRY_PAYMENT) or open a
    /// payment request that charges it or emails the link (REQUEST_PAYMENT).
    Charge,
    /// Emit `suspension.requested`.
    RequestSuspension,
    /// Email the agency and set the process ESCALATED.
    Escalate,
    /// Write the invoices off.
    WriteOff,
    /// Do nothing, for this reason. `failed_charge` = the action was a charge that could not
    /// be attempted (its ON_PAYMENT_FAILURE actions then run).
    Skip { detail: String, failed_charge: bool },
}

/// What the planner knows about the process when a step runs.
#[derive(Debug, Clone)]
pub struct StepFacts<'a> {
    /// The process's open, dunnable invoices, in the process's order.
    pub invoices: &'a [Invoice],
    /// Payments recorded on those invoices, by invoice (for interest).
    pub payments: &'a HashMap<Uuid, Vec<DatedPayment>>,
    /// Everything the process booked so far.
    pub booked: &'a [Charge],
    /// The policy version running, and the index of its step.
    pub policy_code: &'a str,
    pub policy_version: i32,
    pub step_index: usize,
    /// The step's date in the customer's time zone (interest accrues through it).
    pub local_date: NaiveDate,
    pub has_sales_rep: bool,
    pub has_agency_email: bool,
    /// Why the customer's payment method cannot be charged now, if it cannot.
    pub cannot_charge: Option<&'static str>,
    pub payment_retries_blocked: bool,
}

/// Whether an action's condition holds, given whether an earlier charge of the step failed
/// (`None`: no charge ran before it in the step).
pub fn condition_met(action: &Action, payment_failed: Option<bool>) -> Result<(), &'static str> {
    match action.condition {
        ActionCondition::Always => Ok(()),
        ActionCondition::OnPaymentFailure => match payment_failed {
            Some(true) => Ok(()),
            Some(false) => Err("the payment succeeded"),
            None => Err("no payment was attempted in this step"),
        },
    }
}

fn skip(detail: &str) -> PlannedAction {
    PlannedAction::Skip {
        detail: detail.to_owned(),
        failed_charge: false,
    }
}

/// What `action` does for a process in the state `facts` describes.
pub fn plan_action(action: &Action, facts: &StepFacts<'_>) -> PlannedAction {
    if facts.invoices.is_empty() {
        return skip("nothing is due");
    }
    match action.action_type {
        ActionType::SendReminder => PlannedAction::Email(
            action
                .email_kind()
                .unwrap_or(TemplateKind::FriendlyReminder),
        ),
        ActionType::NotifySales if !facts.has_sales_rep => skip("the customer has no sales rep"),
        ActionType::NotifySales => PlannedAction::Email(TemplateKind::SalesNotification),
        ActionType::RetryPayment => {
            let why = if facts.payment_retries_blocked {
                Some("payment retries are blocked after a hard decline")
            } else {
                facts.cannot_charge
            };
            match why {
                Some(detail) => PlannedAction::Skip {
                    detail: detail.to_owned(),
                    failed_charge: true,
                },
                None => PlannedAction::Charge,
            }
        }
        ActionType::RequestPayment => PlannedAction::Charge,
        ActionType::ApplyFee => {
            let settings = action.fee.clone().unwrap_or_default();
            PlannedAction::Book(plan_fees(&settings, facts))
        }
        ActionType::AccrueInterest => match &action.interest {
            Some(settings) => PlannedAction::Book(plan_interest(settings, facts)),
            None => skip("no interest settings"),
        },
        ActionType::RequestSuspension => PlannedAction::RequestSuspension,
        ActionType::Escalate if !facts.has_agency_email => {
            skip("the policy has no collection agency email")
        }
        ActionType::Escalate => PlannedAction::Escalate,
        ActionType::WriteOff => PlannedAction::WriteOff,
    }
}

/// The fee of each invoice not charged a fee by this step of this policy version before (a
/// reset does not book it again; a process moved to another policy books its steps' fees);
/// zero fees are left out.
pub fn plan_fees(settings: &FeeSettings, facts: &StepFacts<'_>) -> Vec<PlannedCharge> {
    facts
        .invoices
        .iter()
        .filter(|invoice| {
            !facts.booked.iter().any(|c| {
                c.kind == ChargeKind::Fee
                    && c.invoice_id == invoice.id
                    && c.step_index == facts.step_index
                    && c.policy_version == facts.policy_version
                    && c.policy_code == facts.policy_code
            })
        })
        .filter_map(|invoice| {
            let amount = fee_minor(settings, invoice.currency, invoice.amount_due_minor());
            (amount > 0).then(|| PlannedCharge {
                invoice_id: invoice.id,
                invoice_external_id: invoice.external_id.clone(),
                kind: ChargeKind::Fee,
                amount_minor: amount,
                interest_period: None,
                annual_rate_percent: None,
            })
        })
        .collect()
}

/// Interest of each invoice accrued through the step's date, less what was booked before.
pub fn plan_interest(settings: &InterestSettings, facts: &StepFacts<'_>) -> Vec<PlannedCharge> {
    facts
        .invoices
        .iter()
        .filter_map(|invoice| {
            let base = invoice.total_minor - invoice.credited_minor;
            let payments = facts
                .payments
                .get(&invoice.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let accrual = accrue_interest(
                settings,
                invoice.currency,
                invoice.due_date,
                facts.local_date,
                base,
                payments,
            )?;
            let booked: i64 = facts
                .booked
                .iter()
                .filter(|c| c.kind == ChargeKind::Interest && c.invoice_id == invoice.id)
                .map(|c| c.amount_minor)
                .sum();
            let amount = interest_to_book(invoice.currency, accrual.accrued, booked);
            // The period starts after what earlier bookings covered.
            let from = facts
                .booked
                .iter()
                .filter(|c| c.kind == ChargeKind::Interest && c.invoice_id == invoice.id)
                .filter_map(|c| c.interest_period.map(|(_, to)| to))
                .max()
                .and_then(|to| to.succ_opt())
                .unwrap_or(accrual.from);
            (amount > 0).then(|| PlannedCharge {
                invoice_id: invoice.id,
                invoice_external_id: invoice.external_id.clone(),
                kind: ChargeKind::Interest,
                amount_minor: amount,
                interest_period: Some((from, accrual.to)),
                annual_rate_percent: Some(accrual.last_rate_percent),
            })
        })
        .collect()
}
