//! Builders of policies for tests.

use dunning::proto::{self, ActionCondition, ActionType, StepAnchor, TemplateKind};

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
