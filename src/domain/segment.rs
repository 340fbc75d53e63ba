//! Segment conditions: one comparison over a customer's payment profile or tags, written as
//! text (`late_invoices >= 3`, `max_days_late > 30`, `paid_amount[EUR] >= 50000`,
//! `tag = "vip"`), parsed once when a rule is written (refused with the reason) and evaluated
//! against a profile. Pure.

use crate::domain::money::Currency;
use crate::domain::profile::PaymentProfile;
use rust_decimal::Decimal;

/// What a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    OverdueInvoices,
    LateInvoices,
    OnTimeInvoices,
    MaxDaysLate,
    AverageDaysLate,
    OnTimeRatio,
    EscalatedProcesses,
    WrittenOffInvoices,
    BrokenPromises,
    PaidAmount(Currency),
    OverdueAmount(Currency),
    Tag,
}

/// The profile fields a condition may name, as written (amounts take a currency).
pub const FIELDS: [&str; 12] = [
    "overdue_invoices",
    "late_invoices",
    "on_time_invoices",
    "max_days_late",
    "average_days_late",
    "on_time_ratio",
    "escalated_processes",
    "written_off_invoices",
    "broken_promises",
    "paid_amount[CUR]",
    "overdue_amount[CUR]",
    "tag",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Number(Decimal),
    Text(String),
}

/// One comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    pub value: Operand,
}

impl Condition {
    /// Parses `field op value`; the error says what is wrong, in the caller's terms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let at = text.find(['<', '>', '=', '!']).ok_or_else(|| {
            "must be `field operator value`, like `late_invoices >= 3`".to_owned()
        })?;
        let (name, rest) = text.split_at(at);
        let (op, value) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|v| (op, v.trim())))
        .ok_or_else(|| "the operator must be one of = != < <= > >=".to_owned())?;
        let field = parse_field(name.trim())?;
        let value = match field {
            Field::Tag => {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return Err("a tag compares with = or != only".into());
                }
                let tag = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .filter(|t| {
                        !t.is_empty() && !t.contains('"') && !t.chars().any(char::is_control)
                    })
                    .ok_or_else(|| "a tag is written in double quotes, like \"vip\"".to_owned())?;
                Operand::Text(tag.to_owned())
            }
            Field::PaidAmount(currency) | Field::OverdueAmount(currency) => {
                let minor = currency.parse_amount(value).map_err(|e| {
                    format!("`{value}` is not an amount in {}: {e}", currency.code())
                })?;
                Operand::Number(Decimal::new(minor, currency.minor_units()))
            }
            _ => Operand::Number(plain_number(value)?),
        };
        Ok(Self { field, op, value })
    }

    /// Whether a customer with `profile` and `tags` meets the condition.
    pub fn matches(&self, profile: &PaymentProfile, tags: &[String]) -> bool {
        let number = |n: u32| Decimal::from(n);
        let amount = |minor: Option<i64>, currency: Currency| {
            Decimal::new(minor.unwrap_or(0), currency.minor_units())
        };
        let actual = match self.field {
            Field::Tag => {
                let Operand::Text(tag) = &self.value else {
                    return false;
                };
                let has = tags.iter().any(|t| t == tag);
                return if self.op == Op::Eq { has } else { !has };
            }
            Field::OverdueInvoices => number(profile.overdue_invoices),
            Field::LateInvoices => number(profile.paid_late_invoices),
            Field::OnTimeInvoices => number(profile.paid_on_time_invoices),
            Field::MaxDaysLate => number(profile.max_days_late),
            Field::AverageDaysLate => profile.average_days_late,
            // No invoice paid: no ratio, and no comparison holds.
            Field::OnTimeRatio => match profile.on_time_ratio {
                Some(ratio) => ratio,
                None => return false,
            },
            Field::EscalatedProcesses => number(profile.history.escalated_processes),
            Field::WrittenOffInvoices => number(profile.history.written_off_invoices),
            Field::BrokenPromises => number(profile.history.broken_promises),
            Field::PaidAmount(c) => amount(profile.paid_minor.get(&c).copied(), c),
            Field::OverdueAmount(c) => amount(
                profile
                    .overdue_now
                    .iter()
                    .find(|b| b.currency == c)
                    .map(|b| b.amount_due_minor),
                c,
            ),
        };
        let Operand::Number(wanted) = &self.value else {
            return false;
        };
        match self.op {
            Op::Eq => actual == *wanted,
            Op::Ne => actual != *wanted,
            Op::Lt => actual < *wanted,
            Op::Le => actual <= *wanted,
            Op::Gt => actual > *wanted,
            Op::Ge => actual >= *wanted,
        }
    }
}

fn parse_field(name: &str) -> Result<Field, String> {
    let amount = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
    };
    if let Some(code) = amount("paid_amount").or_else(|| amount("overdue_amount")) {
        let currency = Currency::from_code(code)
            .ok_or_else(|| format!("`{code}` is not an ISO 4217 currency code such as EUR"))?;
        return Ok(if name.starts_with("paid") {
            Field::PaidAmount(currency)
        } else {
            Field::OverdueAmount(currency)
        });
    }
    Ok(match name {
        "overdue_invoices" => Field::OverdueInvoices,
        "late_invoices" => Field::LateInvoices,
        "on_time_invoices" => Field::OnTimeInvoices,
        "max_days_late" => Field::MaxDaysLate,
        "average_days_late" => Field::AverageDaysLate,
        "on_time_ratio" => Field::OnTimeRatio,
        "escalated_processes" => Field::EscalatedProcesses,
        "written_off_invoices" => Field::WrittenOffInvoices,
        "broken_promises" => Field::BrokenPromises,
        "tag" => Field::Tag,
        other => {
            return Err(format!(
                "`{other}` is not a profile field (one of {})",
                FIELDS.join(", ")
            ));
        }
    })
}

/// A plain non-negative decimal ("3", "0.75"): no sign, exponent or spaces.
fn plain_number(text: &str) -> Result<Decimal, String> {
    let plain = !text.is_empty()
        && !text.starts_with('.')
        && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    plain
        .then(|| text.parse::<Decimal>().ok())
        .flatten()
        .ok_or_else(|| format!("`{text}` is not a number such as 3 or 0.75"))
}

/// How a rule's conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Every condition holds.
    All,
    /// At least one holds.
    Any,
}

/// A segment of an organization's customers: the customers its conditions match, unless an
/// earlier rule matched them first, or they are pinned to another segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRule {
    pub code: String,
    pub name: String,
    pub combine: Combine,
    pub conditions: Vec<Condition>,
    /// The policy its customers are dunned with (empty: the organization's default).
    pub policy_code: String,
}

impl SegmentRule {
    /// Whether a customer with `profile` and `tags` is in this segment by its conditions.
    pub fn matches(&self, profile: &PaymentProfile, tags: &[String]) -> bool {
        let holds = |c: &Condition| c.matches(profile, tags);
        match self.combine {
            Combine::All => self.conditions.iter().all(holds),
            Combine::Any => self.conditions.iter().any(holds),
        }
    }
}

/// Why a customer is in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The caller pinned the customer to it (`segment_code` on the customer).
    Pinned,
    /// Its conditions match, and no earlier rule's do.
    Matched,
}

/// A customer's segment: the one it is pinned to (when that segment exists), else the first
/// of the ordered `rules` whose conditions match; `None` when neither.
pub fn segment_of<'a>(
    rules: &'a [SegmentRule],
    pinned: Option<&str>,
    profile: &PaymentProfile,
    tags: &[String],
) -> Option<(&'a SegmentRule, Reason)> {
    if let Some(rule) = pinned.and_then(|code| rules.iter().find(|r| r.code == code)) {
        return Some((rule, Reason::Pinned));
    }
    rules
        .iter()
        .find(|r| r.matches(profile, tags))
        .map(|r| (r, Reason::Matched))
}

/// The problems of an ordered rule set, each with the index of the rule and the field:
/// duplicate codes, and rules without conditions.
pub fn rule_set_problems(rules: &[SegmentRule]) -> Vec<(usize, &'static str, String)> {
    let mut problems = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|earlier| earlier.code == rule.code) {
            problems.push((
                i,
                "code",
                format!("`{}` is the code of an earlier rule", rule.code),
            ));
        }
        if rule.conditions.is_empty() {
            problems.push((i, "conditions", "needs at least one condition".to_owned()));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::profile::payment_profile;

    fn profile() -> PaymentProfile {
        let now = "2026-11-24T12:00:00Z".parse().unwrap();
        let mut p = payment_profile(&[], &[], chrono_tz::UTC, now, 365);
        p.paid_late_invoices = 3;
        p.max_days_late = 31;
        p.on_time_ratio = Some(Decimal::new(25, 2));
        p.paid_minor
            .insert(Currency::from_code("EUR").unwrap(), 5_000_000);
        p
    }

    fn holds(condition: &str, tags: &[&str]) -> bool {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Condition::parse(condition)
            .unwrap()
            .matches(&profile(), &tags)
    }

    #[test]
    fn conditions_over_the_profile_and_tags() {
        assert!(holds("late_invoices >= 3", &[]));
        assert!(!holds("late_invoices > 3", &[]));
        assert!(holds("max_days_late > 30", &[]));
        assert!(holds("paid_amount[EUR] >= 50000", &[]));
        assert!(!holds("paid_amount[EUR] > 50000.00", &[]));
        assert!(!holds("paid_amount[USD] >= 1", &[]), "nothing paid in USD");
        assert!(holds("on_time_ratio < 0.5", &[]));
        assert!(holds("tag = \"vip\"", &["vip", "eu"]));
        assert!(holds("tag != \"vip\"", &["eu"]));
        assert!(holds("broken_promises = 0", &[]));
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        for (text, why) in [
            ("lateness >= 3", "not a profile field"),
            ("late_invoices => 3", "not a number"),
            ("late_invoices 3", "field operator value"),
            ("late_invoices >= -1", "not a number"),
            ("late_invoices >= 1e3", "not a number"),
            ("paid_amount[XYZ] >= 1", "ISO 4217"),
            ("paid_amount[JPY] >= 10.5", "not an amount in JPY"),
            ("tag > \"vip\"", "= or != only"),
            ("tag = vip", "double quotes"),
        ] {
            let refused = Condition::parse(text).unwrap_err();
            assert!(refused.contains(why), "{text}: {refused}");
        }
    }

    fn rule(code: &str, combine: Combine, conditions: &[&str]) -> SegmentRule {
        SegmentRule {
            code: code.into(),
            name: code.into(),
            combine,
            conditions: conditions
                .iter()
                .map(|c| Condition::parse(c).unwrap())
                .collect(),
            policy_code: String::new(),
        }
    }

    #[test]
    fn the_first_matching_rule_is_the_segment_unless_one_is_pinned() {
        let rules = [
            rule(
                "key_account",
                Combine::All,
                &["paid_amount[EUR] >= 50000", "tag = \"vip\""],
            ),
            rule(
                "chronic",
                Combine::Any,
                &["late_invoices >= 3", "max_days_late > 60"],
            ),
            rule("everyone_late", Combine::All, &["late_invoices >= 1"]),
        ];
        let vip = vec!["vip".to_string()];
        let (segment, why) = segment_of(&rules, None, &profile(), &vip).unwrap();
        assert_eq!(
            (segment.code.as_str(), why),
            ("key_account", Reason::Matched)
        );
        let (segment, _) = segment_of(&rules, None, &profile(), &[]).unwrap();
        assert_eq!(
            segment.code, "chronic",
            "the first match wins over a later one"
        );
        let (segment, why) = segment_of(&rules, Some("everyone_late"), &profile(), &vip).unwrap();
        assert_eq!(
            (segment.code.as_str(), why),
            ("everyone_late", Reason::Pinned)
        );
        let (segment, why) = segment_of(&rules, Some("gone"), &profile(), &[]).unwrap();
        assert_eq!(
            (segment.code.as_str(), why),
            ("chronic", Reason::Matched),
            "a pin to a segment that no longer exists falls back to the rules"
        );
        let on_time = payment_profile(&[], &[], chrono_tz::UTC, profile().as_of, 365);
        assert!(segment_of(&rules, None, &on_time, &[]).is_none());
    }

    #[test]
    fn duplicate_codes_and_empty_rules_are_problems() {
        let rules = [
            rule("chronic", Combine::All, &["late_invoices >= 3"]),
            rule("chronic", Combine::Any, &[]),
        ];
        assert_eq!(
            rule_set_problems(&rules)
                .into_iter()
                .map(|(i, field, _)| (i, field))
                .collect::<Vec<_>>(),
            vec![(1, "code"), (1, "conditions")]
        );
    }
}
