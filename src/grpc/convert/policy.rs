//! Policies on the wire and in the domain: every field converted with a field violation for
//! each bad one (so one answer names every bad field), and back.

use super::{self as convert, timestamp};
use super::{kind_from_proto, kind_to_proto};
use crate::domain::policy::{
    Action, ActionCondition, ActionType, CurrencyAmount, DayCount, FeeBand, FeeSettings,
    InterestSettings, MAX_ACTIONS_PER_STEP, MAX_BCC_EMAILS, MAX_DELAY_DAYS, MAX_STEPS,
    MIN_DELAY_DAYS, Policy, PolicyDefinition, PolicyScope, ReferenceRate, Step, StepAnchor,
};
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::service::policies::PolicyField;
use rust_decimal::Decimal;

/// Longest policy and step name, and description.
const MAX_NAME_LEN: usize = 200;
const MAX_DESCRIPTION_LEN: usize = 2000;
/// Most fee bands per fee.
const MAX_FEE_BANDS: usize = 20;

/// A policy code: 1 to 64 characters of a-z, 0-9, `-` and `_`.
pub fn policy_code(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err("may contain only a-z, 0-9, - and _".into());
    }
    Ok(value.to_owned())
}

/// A decimal written plainly (`"1.5"`, `"-0.25"`), within `min..=max`.
pub(crate) fn decimal(
    field: &str,
    text: &str,
    min: Decimal,
    max: Decimal,
    v: &mut Violations,
) -> Option<Decimal> {
    let plain = !text.is_empty()
        && text
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && !text.trim_start_matches('-').starts_with('.');
    let parsed = plain.then(|| text.parse::<Decimal>().ok()).flatten();
    match parsed {
        None => {
            v.add(
                field,
                format!("`{text}` is not a decimal number such as \"1.5\""),
            );
            None
        }
        Some(d) if d < min || d > max => {
            v.add(field, format!("must be between {min} and {max}"));
            None
        }
        Some(d) => Some(d.normalize()),
    }
}

/// A list of amounts, at most one per currency.
pub(crate) fn currency_amounts(
    field: &str,
    items: &[proto::CurrencyAmount],
    allow_zero: bool,
    v: &mut Violations,
) -> Vec<CurrencyAmount> {
    let mut out: Vec<CurrencyAmount> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let currency_field = format!("{field}[{i}].currency_code");
        let Some(currency) = convert::currency(&currency_field, &item.currency_code, v) else {
            continue;
        };
        if out.iter().any(|a| a.currency == currency) {
            v.add(
                currency_field,
                format!("{} is listed twice", currency.code()),
            );
            continue;
        }
        let amount_field = format!("{field}[{i}].amount");
        let Some(minor) = convert::amount(&amount_field, &item.amount, Some(currency), v) else {
            continue;
        };
        if minor == 0 && !allow_zero {
            v.add(amount_field, "must be greater than 0");
            continue;
        }
        out.push(CurrencyAmount { currency, minor });
    }
    out
}

pub(crate) fn currency_amounts_to_proto(items: &[CurrencyAmount]) -> Vec<proto::CurrencyAmount> {
    items
        .iter()
        .map(|a| proto::CurrencyAmount {
            currency_code: a.currency.code().to_owned(),
            amount: a.currency.format(a.minor),
        })
        .collect()
}

pub(crate) fn fee_settings(
    field: &str,
    fee: &proto::FeeSettings,
    v: &mut Violations,
) -> FeeSettings {
    let fixed_amounts = currency_amounts(
        &format!("{field}.fixed_amounts"),
        &fee.fixed_amounts,
        false,
        v,
    );
    let caps = currency_amounts(&format!("{field}.caps"), &fee.caps, false, v);
    let percentage = (!fee.percentage.is_empty())
        .then(|| {
            decimal(
                &format!("{field}.percentage"),
                &fee.percentage,
                Decimal::ZERO,
                Decimal::ONE_HUNDRED,
                v,
            )
        })
        .flatten();
    let mut bands: Vec<FeeBand> = Vec::new();
    if fee.bands.len() > MAX_FEE_BANDS {
        v.add(
            format!("{field}.bands"),
            format!("must have at most {MAX_FEE_BANDS} entries"),
        );
    }
    for (i, band) in fee.bands.iter().enumerate().take(MAX_FEE_BANDS) {
        let path = format!("{field}.bands[{i}]");
        let Some(currency) =
            convert::currency(&format!("{path}.currency_code"), &band.currency_code, v)
        else {
            continue;
        };
        let min = convert::amount(
            &format!("{path}.min_amount_due"),
            &band.min_amount_due,
            Some(currency),
            v,
        );
        let amount = convert::amount(
            &format!("{path}.fee_amount"),
            &band.fee_amount,
            Some(currency),
            v,
        );
        let (Some(min_amount_due_minor), Some(fee_minor)) = (min, amount) else {
            continue;
        };
        if fee_minor == 0 {
            v.add(format!("{path}.fee_amount"), "must be greater than 0");
            continue;
        }
        if bands
            .iter()
            .any(|b| b.currency == currency && b.min_amount_due_minor == min_amount_due_minor)
        {
            v.add(
                format!("{path}.min_amount_due"),
                "another band of the currency starts at the same amount",
            );
            continue;
        }
        bands.push(FeeBand {
            currency,
            min_amount_due_minor,
            fee_minor,
        });
    }
    if fee.fixed_amounts.is_empty() && fee.percentage.is_empty() && fee.bands.is_empty() {
        v.add(field, "needs fixed_amounts, bands or a percentage");
    }
    FeeSettings {
        fixed_amounts,
        percentage,
        caps,
        bands,
    }
}

pub(crate) fn interest_settings(
    field: &str,
    interest: &proto::InterestSettings,
    v: &mut Violations,
) -> InterestSettings {
    let hundred = Decimal::ONE_HUNDRED;
    let day_count = match proto::DayCount::try_from(interest.day_count) {
        Ok(proto::DayCount::Unspecified | proto::DayCount::Act365) => DayCount::Act365,
        Ok(proto::DayCount::Act360) => DayCount::Act360,
        Err(_) => {
            v.add(
                format!("{field}.day_count"),
                "must be one of the DAY_COUNT_* values",
            );
            DayCount::Act365
        }
    };
    let mut settings = InterestSettings {
        annual_rate_percent: Decimal::ZERO,
        day_count,
        statutory: interest.statutory,
        statutory_margin_percent: Decimal::ZERO,
        reference_rates: Vec::new(),
    };
    if !interest.statutory {
        if interest.annual_rate_percent.is_empty() {
            v.add(
                format!("{field}.annual_rate_percent"),
                "is required unless statutory is true",
            );
        } else if let Some(rate) = decimal(
            &format!("{field}.annual_rate_percent"),
            &interest.annual_rate_percent,
            Decimal::ZERO,
            hundred,
            v,
        ) {
            settings.annual_rate_percent = rate;
        }
        return settings;
    }
    if interest.statutory_margin_percent.is_empty() {
        v.add(
            format!("{field}.statutory_margin_percent"),
            "is required when statutory is true",
        );
    } else if let Some(margin) = decimal(
        &format!("{field}.statutory_margin_percent"),
        &interest.statutory_margin_percent,
        -hundred,
        hundred,
        v,
    ) {
        settings.statutory_margin_percent = margin;
    }
    if interest.reference_rates.is_empty() {
        v.add(
            format!("{field}.reference_rates"),
            "needs at least one entry when statutory is true",
        );
    }
    for (i, rate) in interest.reference_rates.iter().enumerate() {
        let path = format!("{field}.reference_rates[{i}]");
        let start = v.check(
            &format!("{path}.period_start_date"),
            validation::date(&rate.period_start_date),
        );
        let percent = decimal(
            &format!("{path}.rate_percent"),
            &rate.rate_percent,
            -hundred,
            hundred,
            v,
        );
        if let (Some(period_start), Some(rate_percent)) = (start, percent) {
            if settings
                .reference_rates
                .iter()
                .any(|r| r.period_start == period_start)
            {
                v.add(format!("{path}.period_start_date"), "is listed twice");
                continue;
            }
            settings.reference_rates.push(ReferenceRate {
                period_start,
                rate_percent,
            });
        }
    }
    settings.reference_rates.sort_by_key(|r| r.period_start);
    settings
}

pub(crate) fn action_type(value: i32) -> Option<ActionType> {
    use proto::ActionType as P;
    Some(match P::try_from(value).ok()? {
        P::Unspecified => return None,
        P::SendReminder => ActionType::SendReminder,
        P::RetryPayment => ActionType::RetryPayment,
        P::RequestPayment => ActionType::RequestPayment,
        P::ApplyFee => ActionType::ApplyFee,
        P::AccrueInterest => ActionType::AccrueInterest,
        P::NotifySales => ActionType::NotifySales,
        P::RequestSuspension => ActionType::RequestSuspension,
        P::Escalate => ActionType::Escalate,
        P::WriteOff => ActionType::WriteOff,
    })
}

pub(crate) fn action_type_to_proto(t: ActionType) -> proto::ActionType {
    use proto::ActionType as P;
    match t {
        ActionType::SendReminder => P::SendReminder,
        ActionType::RetryPayment => P::RetryPayment,
        ActionType::RequestPayment => P::RequestPayment,
        ActionType::ApplyFee => P::ApplyFee,
        ActionType::AccrueInterest => P::AccrueInterest,
        ActionType::NotifySales => P::NotifySales,
        ActionType::RequestSuspension => P::RequestSuspension,
        ActionType::Escalate => P::Escalate,
        ActionType::WriteOff => P::WriteOff,
    }
}

pub(crate) fn action(field: &str, a: &proto::Action, v: &mut Violations) -> Option<Action> {
    let Some(action_type) = action_type(a.r#type) else {
        v.add(
            format!("{field}.type"),
            "is required: one of the ACTION_TYPE_* values",
        );
        return None;
    };
    let condition = match proto::ActionCondition::try_from(a.condition) {
        Ok(proto::ActionCondition::Unspecified | proto::ActionCondition::Always) => {
            ActionCondition::Always
        }
        Ok(proto::ActionCondition::OnPaymentFailure) => ActionCondition::OnPaymentFailure,
        Err(_) => {
            v.add(
                format!("{field}.condition"),
                "must be one of the ACTION_CONDITION_* values",
            );
            ActionCondition::Always
        }
    };
    let template_kind = match action_type {
        ActionType::SendReminder => {
            match kind_from_proto(&format!("{field}.template_kind"), a.template_kind) {
                Ok(kind) => Some(kind),
                Err(Error::InvalidArgument(violations)) => {
                    for violation in violations {
                        v.add(violation.field, violation.description);
                    }
                    None
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    let fee = match (action_type, &a.fee) {
        (ActionType::ApplyFee, Some(fee)) => Some(fee_settings(&format!("{field}.fee"), fee, v)),
        (ActionType::ApplyFee, None) => {
            v.add(format!("{field}.fee"), "is required for APPLY_FEE");
            None
        }
        _ => None,
    };
    let interest = match (action_type, &a.interest) {
        (ActionType::AccrueInterest, Some(i)) => {
            Some(interest_settings(&format!("{field}.interest"), i, v))
        }
        (ActionType::AccrueInterest, None) => {
            v.add(
                format!("{field}.interest"),
                "is required for ACCRUE_INTEREST",
            );
            None
        }
        _ => None,
    };
    Some(Action {
        action_type,
        condition,
        template_kind,
        fee,
        interest,
    })
}

pub(crate) fn steps(field: &str, items: &[proto::Step], v: &mut Violations) -> Vec<Step> {
    if items.len() > MAX_STEPS {
        v.add(field, format!("must have at most {MAX_STEPS} steps"));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let name = v
            .check(
                &format!("{path}.name"),
                validation::text_up_to(&s.name, MAX_NAME_LEN),
            )
            .unwrap_or_default();
        if !(MIN_DELAY_DAYS..=MAX_DELAY_DAYS).contains(&s.delay_days) {
            v.add(
                format!("{path}.delay_days"),
                format!("must be between {MIN_DELAY_DAYS} and {MAX_DELAY_DAYS}"),
            );
        }
        let anchor = match proto::StepAnchor::try_from(s.anchor) {
            Ok(proto::StepAnchor::DueDate) => Some(StepAnchor::DueDate),
            Ok(proto::StepAnchor::PreviousStep) => Some(StepAnchor::PreviousStep),
            _ => {
                v.add(
                    format!("{path}.anchor"),
                    "is required: one of the STEP_ANCHOR_* values",
                );
                None
            }
        };
        if s.actions.is_empty() {
            v.add(format!("{path}.actions"), "needs at least one action");
        }
        if s.actions.len() > MAX_ACTIONS_PER_STEP {
            v.add(
                format!("{path}.actions"),
                format!("must have at most {MAX_ACTIONS_PER_STEP} actions"),
            );
            continue;
        }
        let actions: Vec<Action> = s
            .actions
            .iter()
            .enumerate()
            .filter_map(|(j, a)| action(&format!("{path}.actions[{j}]"), a, v))
            .collect();
        if let Some(anchor) = anchor {
            out.push(Step {
                name,
                delay_days: s.delay_days,
                anchor,
                actions,
            });
        }
    }
    out
}

/// Converts one field of a wire policy into `into`, reporting violations under `policy.`.
pub(crate) fn convert_field(
    field: PolicyField,
    p: &proto::Policy,
    into: &mut PolicyDefinition,
    v: &mut Violations,
) {
    let path = format!("policy.{}", field.name());
    match field {
        PolicyField::Name => {
            let name = v.check(&path, validation::required_text(&p.name));
            if let Some(name) = name {
                if name.chars().count() > MAX_NAME_LEN {
                    v.add(&path, format!("must be at most {MAX_NAME_LEN} characters"));
                }
                into.name = name;
            }
        }
        PolicyField::Description => {
            into.description = v
                .check(
                    &path,
                    validation::text_up_to(&p.description, MAX_DESCRIPTION_LEN),
                )
                .unwrap_or_default();
        }
        PolicyField::Scope => match proto::PolicyScope::try_from(p.scope) {
            Ok(proto::PolicyScope::Invoice) => into.scope = PolicyScope::Invoice,
            Ok(proto::PolicyScope::CustomerBalance) => into.scope = PolicyScope::CustomerBalance,
            _ => v.add(
                path,
                "is required: POLICY_SCOPE_INVOICE or POLICY_SCOPE_CUSTOMER_BALANCE",
            ),
        },
        PolicyField::Thresholds => {
            into.thresholds = currency_amounts(&path, &p.thresholds, true, v);
        }
        PolicyField::IncludeManualInvoices => {
            into.include_manual_invoices = p.include_manual_invoices;
        }
        PolicyField::BccEmails => {
            if p.bcc_emails.len() > MAX_BCC_EMAILS {
                v.add(&path, format!("must have at most {MAX_BCC_EMAILS} entries"));
            } else {
                into.bcc_emails = validation::email_list(&path, &p.bcc_emails, v);
            }
        }
        PolicyField::CollectionAgencyEmail => {
            into.collection_agency_email = v
                .check(
                    &path,
                    validation::optional_email(&p.collection_agency_email),
                )
                .unwrap_or_default();
        }
        PolicyField::Steps => into.steps = steps(&path, &p.steps, v),
    }
}

/// A definition to fill field by field.
pub(crate) fn empty_definition() -> PolicyDefinition {
    PolicyDefinition {
        name: String::new(),
        description: String::new(),
        scope: PolicyScope::Invoice,
        thresholds: Vec::new(),
        include_manual_invoices: false,
        bcc_emails: Vec::new(),
        collection_agency_email: String::new(),
        steps: Vec::new(),
    }
}

pub(crate) fn fee_to_proto(f: &FeeSettings) -> proto::FeeSettings {
    proto::FeeSettings {
        fixed_amounts: currency_amounts_to_proto(&f.fixed_amounts),
        percentage: f.percentage.map(|p| p.to_string()).unwrap_or_default(),
        caps: currency_amounts_to_proto(&f.caps),
        bands: f
            .bands
            .iter()
            .map(|b| proto::FeeBand {
                currency_code: b.currency.code().to_owned(),
                min_amount_due: b.currency.format(b.min_amount_due_minor),
                fee_amount: b.currency.format(b.fee_minor),
            })
            .collect(),
    }
}

pub(crate) fn interest_to_proto(i: &InterestSettings) -> proto::InterestSettings {
    proto::InterestSettings {
        annual_rate_percent: if i.statutory {
            String::new()
        } else {
            i.annual_rate_percent.to_string()
        },
        day_count: match i.day_count {
            DayCount::Act365 => proto::DayCount::Act365,
            DayCount::Act360 => proto::DayCount::Act360,
        } as i32,
        statutory: i.statutory,
        statutory_margin_percent: if i.statutory {
            i.statutory_margin_percent.to_string()
        } else {
            String::new()
        },
        reference_rates: i
            .reference_rates
            .iter()
            .map(|r| proto::ReferenceRate {
                period_start_date: r.period_start.to_string(),
                rate_percent: r.rate_percent.to_string(),
            })
            .collect(),
    }
}

pub(crate) fn action_to_proto(a: &Action) -> proto::Action {
    proto::Action {
        r#type: action_type_to_proto(a.action_type) as i32,
        condition: match a.condition {
            ActionCondition::Always => proto::ActionCondition::Always,
            ActionCondition::OnPaymentFailure => proto::ActionCondition::OnPaymentFailure,
        } as i32,
        template_kind: a
            .template_kind
            .map(|k| kind_to_proto(k.as_str()) as i32)
            .unwrap_or_default(),
        fee: a.fee.as_ref().map(fee_to_proto),
        interest: a.interest.as_ref().map(interest_to_proto),
    }
}

pub(crate) fn scope_to_proto(scope: PolicyScope) -> proto::PolicyScope {
    match scope {
        PolicyScope::Invoice => proto::PolicyScope::Invoice,
        PolicyScope::CustomerBalance => proto::PolicyScope::CustomerBalance,
    }
}

pub fn policy_to_proto(p: Policy) -> proto::Policy {
    let d = p.definition;
    proto::Policy {
        code: p.code,
        name: d.name,
        version: p.version,
        description: d.description,
        scope: scope_to_proto(d.scope) as i32,
        thresholds: currency_amounts_to_proto(&d.thresholds),
        include_manual_invoices: d.include_manual_invoices,
        bcc_emails: d.bcc_emails,
        collection_agency_email: d.collection_agency_email,
        steps: d
            .steps
            .iter()
            .map(|s| proto::Step {
                name: s.name.clone(),
                delay_days: s.delay_days,
                anchor: match s.anchor {
                    StepAnchor::DueDate => proto::StepAnchor::DueDate,
                    StepAnchor::PreviousStep => proto::StepAnchor::PreviousStep,
                } as i32,
                actions: s.actions.iter().map(action_to_proto).collect(),
            })
            .collect(),
        archived: p.archived,
        create_time: timestamp(p.created_at),
        update_time: timestamp(p.updated_at),
    }
}

/// A whole wire policy (CreatePolicy, an inline policy): its code and definition.
pub fn policy_from_proto(
    p: &proto::Policy,
    v: &mut Violations,
    code_required: bool,
) -> (String, PolicyDefinition) {
    let code = if p.code.is_empty() && !code_required {
        String::new()
    } else {
        v.check("policy.code", policy_code(&p.code))
            .unwrap_or_default()
    };
    let mut definition = empty_definition();
    for field in PolicyField::ALL {
        convert_field(field, p, &mut definition, v);
    }
    // The rules between fields too, so that one answer names every bad field.
    let mut rules = Violations::new();
    definition.check_rules(&mut rules);
    v.extend_prefixed("policy", rules);
    (code, definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain_and_bounded() {
        let mut v = Violations::new();
        let hundred = Decimal::ONE_HUNDRED;
        assert_eq!(
            decimal("f", "1.50", Decimal::ZERO, hundred, &mut v),
            Some(Decimal::new(15, 1))
        );
        assert_eq!(decimal("f", "1e3", Decimal::ZERO, hundred, &mut v), None);
        assert_eq!(decimal("f", "101", Decimal::ZERO, hundred, &mut v), None);
        assert_eq!(decimal("f", "-1", Decimal::ZERO, hundred, &mut v), None);
        assert_eq!(
            decimal("f", "-0.5", -hundred, hundred, &mut v),
            Some(Decimal::new(-5, 1))
        );
        assert_eq!(v.into_vec().len(), 3);
    }

    #[test]
    fn codes_are_lower_case_slugs() {
        assert!(policy_code("standard-b2b_2").is_ok());
        assert!(policy_code("Bad Code").is_err());
        assert!(policy_code("").is_err());
        assert!(policy_code(&"a".repeat(65)).is_err());
    }
}
