//! Dunning policies: versioned schemes of steps, each step a delay from an anchor and a list of
//! actions with conditions. A stored version never changes; an edit writes the next version.

use super::money::Currency;
use super::template::TemplateKind;
use super::validation::Violations;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// At most this many steps per policy.
pub const MAX_STEPS: usize = 50;
/// At most this many actions per step.
pub const MAX_ACTIONS_PER_STEP: usize = 20;
/// At most this many BCC addresses per policy.
pub const MAX_BCC_EMAILS: usize = 20;
/// Step delays, in days.
pub const MIN_DELAY_DAYS: i32 = -365;
pub const MAX_DELAY_DAYS: i32 = 3650;

/// What one process covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyScope {
    /// One process per dunnable invoice.
    Invoice,
    /// One process per customer and currency over all its dunnable invoices.
    CustomerBalance,
}

impl PolicyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "INVOICE",
            Self::CustomerBalance => "CUSTOMER_BALANCE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Invoice, Self::CustomerBalance]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What a step's delay counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepAnchor {
    /// The (earliest) due date of the process's invoices, at the start of the day in the
    /// customer's time zone.
    DueDate,
    /// The time the previous step ran (the process start for the first step).
    PreviousStep,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionType {
    SendReminder,
    RetryPayment,
    RequestPayment,
    ApplyFee,
    AccrueInterest,
    NotifySales,
    RequestSuspension,
    Escalate,
    WriteOff,
}

impl ActionType {
    pub const ALL: [ActionType; 9] = [
        Self::SendReminder,
        Self::RetryPayment,
        Self::RequestPayment,
        Self::ApplyFee,
        Self::AccrueInterest,
        Self::NotifySales,
        Self::RequestSuspension,
        Self::Escalate,
        Self::WriteOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendReminder => "SEND_REMINDER",
            Self::RetryPayment => "RETRY_PAYMENT",
            Self::RequestPayment => "REQUEST_PAYMENT",
            Self::ApplyFee => "APPLY_FEE",
            Self::AccrueInterest => "ACCRUE_INTEREST",
            Self::NotifySales => "NOTIFY_SALES",
            Self::RequestSuspension => "REQUEST_SUSPENSION",
            Self::Escalate => "ESCALATE",
            Self::WriteOff => "WRITE_OFF",
        }
    }

    /// Whether the action charges the customer's payment method, so that the actions after it
    /// in its step wait for the charge's outcome.
    pub fn charges(self) -> bool {
        matches!(self, Self::RetryPayment | Self::RequestPayment)
    }
}

/// When an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionCondition {
    Always,
    /// Only when a charge earlier in the step failed or could not be attempted.
    OnPaymentFailure,
}

/// Day count convention for interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayCount {
    Act365,
    Act360,
}

impl DayCount {
    /// Days in the year the annual rate is divided by.
    pub fn basis(self) -> Decimal {
        match self {
            Self::Act365 => Decimal::from(365),
            Self::Act360 => Decimal::from(360),
        }
    }
}

/// An amount of money in one currency, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyAmount {
    pub currency: Currency,
    pub minor: i64,
}

/// A fixed fee that applies from an amount due upwards (UK late-payment compensation: 40 GBP
/// up to 999.99, 70 GBP up to 9,999.99, 100 GBP from 10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeBand {
    pub currency: Currency,
    /// The band applies to an amount due at least this large (minor units).
    pub min_amount_due_minor: i64,
    /// Fixed fee of the band (minor units); replaces `fixed_amounts` for the currency.
    pub fee_minor: i64,
}

/// How a late fee is computed per invoice.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeeSettings {
    pub fixed_amounts: Vec<CurrencyAmount>,
    /// Percent of the invoice's amount due (1.5 = 1.5 %).
    pub percentage: Option<Decimal>,
    pub caps: Vec<CurrencyAmount>,
    pub bands: Vec<FeeBand>,
}

/// One entry of a reference rate table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRate {
    pub period_start: NaiveDate,
    pub rate_percent: Decimal,
}

/// How interest is computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestSettings {
    /// Annual rate in percent; used unless `statutory`.
    pub annual_rate_percent: Decimal,
    pub day_count: DayCount,
    pub statutory: bool,
    pub statutory_margin_percent: Decimal,
    pub reference_rates: Vec<ReferenceRate>,
}

/// One action of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub action_type: ActionType,
    pub condition: ActionCondition,
    /// SEND_REMINDER only.
    pub template_kind: Option<TemplateKind>,
    /// APPLY_FEE only.
    pub fee: Option<FeeSettings>,
    /// ACCRUE_INTEREST only.
    pub interest: Option<InterestSettings>,
}

impl Action {
    /// The email this action sends when it runs and has someone to send it to: its reminder,
    /// the sales notification, the agency hand-over, or the payment request (whose link is
    /// emailed when the charge fails or cannot be made).
    pub fn email_kind(&self) -> Option<TemplateKind> {
        match self.action_type {
            ActionType::SendReminder => {
                Some(self.template_kind.unwrap_or(TemplateKind::FriendlyReminder))
            }
            ActionType::NotifySales => Some(TemplateKind::SalesNotification),
            ActionType::Escalate => Some(TemplateKind::CollectionAgencyHandover),
            ActionType::RequestPayment => Some(TemplateKind::PaymentRequest),
            ActionType::RetryPayment
            | ActionType::ApplyFee
            | ActionType::AccrueInterest
            | ActionType::RequestSuspension
            | ActionType::WriteOff => None,
        }
    }
}

/// The first email the steps from `from` on send (the process's next email).
pub fn next_email_kind(steps: &[Step], from: usize) -> Option<TemplateKind> {
    steps
        .iter()
        .skip(from)
        .flat_map(|step| &step.actions)
        .find_map(Action::email_kind)
}

/// One step of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub delay_days: i32,
    pub anchor: StepAnchor,
    pub actions: Vec<Action>,
}

/// What a policy version says (everything an update may change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDefinition {
    pub name: String,
    pub description: String,
    pub scope: PolicyScope,
    pub thresholds: Vec<CurrencyAmount>,
    pub include_manual_invoices: bool,
    pub bcc_emails: Vec<String>,
    pub collection_agency_email: String,
    pub steps: Vec<Step>,
}

/// One stored version of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub code: String,
    pub version: i32,
    pub definition: PolicyDefinition,
    pub archived: bool,
    /// When version 1 was created.
    pub created_at: DateTime<Utc>,
    /// When this version was created.
    pub updated_at: DateTime<Utc>,
}

impl PolicyDefinition {
    /// The minimum amount due that starts dunning in `currency` (zero when none is set: any
    /// positive amount starts it).
    pub fn threshold_minor(&self, currency: Currency) -> i64 {
        self.thresholds
            .iter()
            .find(|t| t.currency == currency)
            .map_or(0, |t| t.minor)
    }

    /// Whether `amount_due` reaches the threshold for its currency.
    pub fn reaches_threshold(&self, currency: Currency, amount_due_minor: i64) -> bool {
        amount_due_minor > 0 && amount_due_minor >= self.threshold_minor(currency)
    }
}

impl PolicyDefinition {
    /// The rules across fields that make a policy runnable, with paths relative to the policy
    /// (`steps[2].delay_days`). Field formats (required values, amounts, enums) are checked
    /// where the input is converted; these are the rules between them.
    pub fn check_rules(&self, violations: &mut Violations) {
        // The engine starts a process at the first step: a policy without one cannot run.
        if self.steps.is_empty() {
            violations.add("steps", "needs at least one step");
        }
        let mut last_due_date_delay: Option<(usize, i32)> = None;
        for (i, step) in self.steps.iter().enumerate() {
            match step.anchor {
                StepAnchor::DueDate => {
                    if let Some((before, delay)) = last_due_date_delay
                        && step.delay_days < delay
                    {
                        violations.add(
                            format!("steps[{i}].delay_days"),
                            format!(
                                "steps anchored on the due date must be in time order: {} days \
                                 comes before step {before}'s {delay} days",
                                step.delay_days
                            ),
                        );
                    }
                    last_due_date_delay = Some((i, step.delay_days));
                }
                StepAnchor::PreviousStep if step.delay_days < 0 => violations.add(
                    format!("steps[{i}].delay_days"),
                    "must be at least 0 with anchor PREVIOUS_STEP (only a due-date step may run \
                     before the due date)",
                ),
                StepAnchor::PreviousStep => {}
            }
            let mut charge_before = false;
            for (j, action) in step.actions.iter().enumerate() {
                if action.condition == ActionCondition::OnPaymentFailure && !charge_before {
                    violations.add(
                        format!("steps[{i}].actions[{j}].condition"),
                        "ON_PAYMENT_FAILURE needs a RETRY_PAYMENT or REQUEST_PAYMENT action \
                         before it in the same step",
                    );
                }
                charge_before |= action.action_type.charges();
                if action.action_type == ActionType::Escalate
                    && self.collection_agency_email.is_empty()
                {
                    violations.add(
                        "collection_agency_email",
                        format!(
                            "is required: steps[{i}].actions[{j}] escalates to the collection \
                             agency"
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(action_type: ActionType, condition: ActionCondition) -> Action {
        Action {
            action_type,
            condition,
            template_kind: Some(TemplateKind::FriendlyReminder),
            fee: None,
            interest: None,
        }
    }

    fn step(delay_days: i32, anchor: StepAnchor, actions: Vec<Action>) -> Step {
        Step {
            name: String::new(),
            delay_days,
            anchor,
            actions,
        }
    }

    fn definition(steps: Vec<Step>) -> PolicyDefinition {
        PolicyDefinition {
            name: "p".into(),
            description: String::new(),
            scope: PolicyScope::Invoice,
            thresholds: vec![],
            include_manual_invoices: false,
            bcc_emails: vec![],
            collection_agency_email: String::new(),
            steps,
        }
    }

    fn bad_fields(def: &PolicyDefinition) -> Vec<String> {
        let mut v = Violations::new();
        def.check_rules(&mut v);
        v.into_vec().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_policy_needs_a_step() {
        assert_eq!(bad_fields(&definition(vec![])), vec!["steps".to_owned()]);
    }

    #[test]
    fn due_date_steps_must_be_in_time_order_across_previous_step_steps() {
        let remind = || vec![action(ActionType::SendReminder, ActionCondition::Always)];
        let def = definition(vec![
            step(-3, StepAnchor::DueDate, remind()),
            step(5, StepAnchor::PreviousStep, remind()),
            step(-5, StepAnchor::DueDate, remind()),
            step(-5, StepAnchor::DueDate, remind()),
        ]);
        assert_eq!(bad_fields(&def), vec!["steps[2].delay_days"]);
    }

    #[test]
    fn previous_step_delays_are_not_negative() {
        let def = definition(vec![step(
            -1,
            StepAnchor::PreviousStep,
            vec![action(ActionType::SendReminder, ActionCondition::Always)],
        )]);
        assert_eq!(bad_fields(&def), vec!["steps[0].delay_days"]);
    }

    #[test]
    fn payment_failure_actions_need_a_charge_before_them() {
        let def = definition(vec![step(
            0,
            StepAnchor::DueDate,
            vec![
                action(ActionType::SendReminder, ActionCondition::OnPaymentFailure),
                action(ActionType::RetryPayment, ActionCondition::Always),
                action(ActionType::SendReminder, ActionCondition::OnPaymentFailure),
            ],
        )]);
        assert_eq!(bad_fields(&def), vec!["steps[0].actions[0].condition"]);
    }

    #[test]
    fn escalation_needs_an_agency() {
        let mut def = definition(vec![step(
            0,
            StepAnchor::DueDate,
            vec![action(ActionType::Escalate, ActionCondition::Always)],
        )]);
        assert_eq!(bad_fields(&def), vec!["collection_agency_email"]);
        def.collection_agency_email = "agency@example.com".into();
        assert!(bad_fields(&def).is_empty());
    }

    #[test]
    fn thresholds_default_to_any_positive_amount() {
        let eur = Currency::from_code("EUR").unwrap();
        let mut def = definition(vec![]);
        assert!(def.reaches_threshold(eur, 1));
        assert!(!def.reaches_threshold(eur, 0));
        def.thresholds.push(CurrencyAmount {
            currency: eur,
            minor: 1000,
        });
        assert!(!def.reaches_threshold(eur, 999));
        assert!(def.reaches_threshold(eur, 1000));
    }
}
