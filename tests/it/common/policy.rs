//! Builders of policies for tests.

use dunning::proto::{self, ActionCondition, ActionType, PolicyScope, StepAnchor, TemplateKind};

pub fn amount(currency: &str, amount: &str) -> proto::CurrencyAmount {
    proto::CurrencyAmount {
        currency_code: currency.into(),
        amount: amount.into(),
    }
}

pub fn reminder(kind: TemplateKind) -> proto::Action {
    proto::Action {
        r#type: ActionType::SendReminder as i32,
        template_kind: kind as i32,
        ..Default::default()
    }
}

pub fn plain(t: ActionType) -> proto::Action {
    proto::Action {
        r#type: t as i32,
        ..Default::default()
    }
}

/// The action, run only when a charge before it in its step failed.
pub fn on_failure(action: proto::Action) -> proto::Action {
    proto::Action {
        condition: ActionCondition::OnPaymentFailure as i32,
        ..action
    }
}

/// A fixed fee in one currency.
pub fn fixed_fee(currency: &str, fee: &str) -> proto::Action {
    proto::Action {
        r#type: ActionType::ApplyFee as i32,
        fee: Some(proto::FeeSettings {
            fixed_amounts: vec![amount(currency, fee)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Interest at a fixed annual rate, ACT/365.
pub fn interest(rate_percent: &str) -> proto::Action {
    proto::Action {
        r#type: ActionType::AccrueInterest as i32,
        interest: Some(proto::InterestSettings {
            annual_rate_percent: rate_percent.into(),
            day_count: proto::DayCount::Act365 as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn step(
    name: &str,
    delay_days: i32,
    anchor: StepAnchor,
    actions: Vec<proto::Action>,
) -> proto::Step {
    proto::Step {
        name: name.into(),
        delay_days,
        anchor: anchor as i32,
        actions,
    }
}

/// The policy of the 120-day scenarios: a pre-due heads-up, a friendly reminder, a payment
/// retry whose failure sends the firm reminder and books a fee, interest with the final
/// notice and a suspension request, the agency, and the write-off.
pub fn ladder(code: &str, scope: PolicyScope) -> proto::Policy {
    proto::Policy {
        code: code.into(),
        name: "Standard".into(),
        scope: scope as i32,
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
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            ),
            step(
                "Retry",
                7,
                StepAnchor::DueDate,
                vec![
                    plain(ActionType::RetryPayment),
                    on_failure(reminder(TemplateKind::FirmReminder)),
                    on_failure(fixed_fee("EUR", "40")),
                    plain(ActionType::NotifySales),
                ],
            ),
            step(
                "Interest",
                14,
                StepAnchor::PreviousStep,
                vec![
                    interest("8"),
                    reminder(TemplateKind::FinalNotice),
                    plain(ActionType::RequestSuspension),
                ],
            ),
            step(
                "Agency",
                30,
                StepAnchor::PreviousStep,
                vec![plain(ActionType::Escalate)],
            ),
            step(
                "Write-off",
                60,
                StepAnchor::PreviousStep,
                vec![plain(ActionType::WriteOff)],
            ),
        ],
        ..Default::default()
    }
}

/// An INVOICE-scope policy `code` with one friendly reminder a day after the due date.
pub fn one_reminder(code: &str) -> proto::CreatePolicyRequest {
    proto::CreatePolicyRequest {
        policy: Some(proto::Policy {
            code: code.into(),
            name: "One reminder".into(),
            scope: PolicyScope::Invoice as i32,
            steps: vec![step(
                "Friendly",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            )],
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Makes `code` the organization's default policy and lets emails go out at any hour.
pub fn default_policy_at_any_hour(code: &str) -> proto::UpdateOrganizationRequest {
    proto::UpdateOrganizationRequest {
        organization: Some(proto::Organization {
            default_policy_code: code.into(),
            quiet_hours: Some(proto::QuietHours {
                enabled: false,
                start_time: "08:00".into(),
                end_time: "20:00".into(),
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["default_policy_code".into(), "quiet_hours".into()],
        }),
    }
}
