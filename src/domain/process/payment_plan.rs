//! Payment plans (seed 002, "payment plans and instalments"): the customer agrees to pay what
//! a process owes in instalments; the process pauses while they are met. Pure rules: the
//! terms a plan may have, and what becomes of it as payments arrive and deadlines pass.
//!
//! An instalment is met once the payments recorded on the process's invoices since the plan
//! was made, and before the instalment's deadline, reach the sum of the instalments up to and
//! including it (so paying early or paying two at once counts). It is missed when its deadline
//! passes unmet: the end of its date plus the plan's grace days, in the customer's time zone.
//! A missed instalment ends the plan and dunning resumes; the last one met completes it.

use crate::domain::invoice::start_of_day;
use crate::domain::validation::{FieldViolation, Violations};
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most instalments in a plan.
pub const MAX_INSTALMENTS: usize = 60;
/// How far ahead the last instalment may be.
pub const MAX_PLAN_DAYS: u64 = 731;
/// Most grace days after an instalment's date.
pub const MAX_GRACE_DAYS: u32 = 30;
/// Most days before an instalment's date its reminder may go out.
pub const MAX_REMINDER_DAYS: u32 = 30;
/// Reminders go out at this hour of their day in the customer's time zone, so that nobody is
/// written to at midnight.
const REMINDER_HOUR: u32 = 9;

/// 09:00 of `day` in `tz` (the first such instant when clocks go back; an hour after the start
/// of the day when 09:00 does not exist).
fn reminder_time(day: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    day.and_hms_opt(REMINDER_HOUR, 0, 0)
        .and_then(|local| tz.from_local_datetime(&local).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| start_of_day(day, tz) + Duration::hours(i64::from(REMINDER_HOUR)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlanState {
    /// Instalments are being paid; the process is paused for the plan.
    Active,
    /// Every instalment was met.
    Completed,
    /// An instalment was missed; dunning resumed.
    Missed,
    /// Ended by an operator (resume, cancel, reset, escalation, a new plan) or because the
    /// process ended otherwise.
    Cancelled,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Completed => "COMPLETED",
            Self::Missed => "MISSED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Completed, Self::Missed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstalmentState {
    Pending,
    Met,
    Missed,
    /// The plan ended (cancelled) before the instalment was due.
    Dropped,
}

impl InstalmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Met => "MET",
            Self::Missed => "MISSED",
            Self::Dropped => "DROPPED",
        }
    }
}

/// One agreed instalment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instalment {
    /// The date it is to be paid by.
    pub date: NaiveDate,
    /// Minor units of the process's currency.
    pub amount_minor: i64,
    /// When it is missed if unmet: the end of `date` plus the grace days, customer's time.
    pub deadline: DateTime<Utc>,
    /// When its reminder goes out; `None` without reminders, or when that time had passed
    /// when the plan was made.
    pub remind_at: Option<DateTime<Utc>>,
    /// When its reminder was queued.
    pub reminded_at: Option<DateTime<Utc>>,
    pub state: InstalmentState,
    /// When it was found met or missed.
    pub settled_at: Option<DateTime<Utc>>,
}

/// A payment plan of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPlan {
    pub id: Uuid,
    pub state: PlanState,
    pub made_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub grace_days: u32,
    pub reminder_days_before: u32,
    /// What was due when the plan was made (the instalments add up to it).
    pub total_minor: i64,
    /// Payments on the process's invoices since the plan was made, as last looked at.
    pub paid_minor: i64,
    pub instalments: Vec<Instalment>,
}

/// One instalment as agreed: its date and decimal amount in the process's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalmentTerms {
    /// The date, or why the given text is not one.
    pub date: Result<NaiveDate, String>,
    /// The amount in minor units, or why the given text is not one.
    pub amount_minor: Result<i64, String>,
}

/// The terms of a plan as an operator gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTerms {
    pub instalments: Vec<InstalmentTerms>,
    pub grace_days: u32,
    pub reminder_days_before: u32,
}

/// The plan `terms` make for a process owing `owed_minor` (formatted by `format` in
/// messages), made `now` for a customer in `tz`. Violations name `instalments`,
/// `instalments[i].date`, `instalments[i].amount`, `grace_days` and `reminder_days_before`:
/// dates from today, strictly increasing, at most two years ahead; positive amounts adding up
/// exactly to what is due.
pub fn make_plan(
    id: Uuid,
    terms: &PlanTerms,
    owed_minor: i64,
    format: impl Fn(i64) -> String,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<PaymentPlan, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let today = now.with_timezone(&tz).date_naive();
    if terms.instalments.is_empty() {
        v.add("instalments", "at least one instalment is required");
    } else if terms.instalments.len() > MAX_INSTALMENTS {
        v.add(
            "instalments",
            format!("at most {MAX_INSTALMENTS} instalments are allowed"),
        );
    }
    if terms.grace_days > MAX_GRACE_DAYS {
        v.add("grace_days", format!("must be at most {MAX_GRACE_DAYS}"));
    }
    if terms.reminder_days_before > MAX_REMINDER_DAYS {
        v.add(
            "reminder_days_before",
            format!("must be at most {MAX_REMINDER_DAYS}"),
        );
    }
    let mut previous: Option<NaiveDate> = None;
    let mut sum: Option<i64> = Some(0);
    for (i, instalment) in terms.instalments.iter().enumerate() {
        match instalment.date {
            Err(ref why) => v.add(format!("instalments[{i}].date"), why.clone()),
            Ok(date) if date < today => v.add(
                format!("instalments[{i}].date"),
                format!("is in the past (today is {today} in the customer's time zone)"),
            ),
            Ok(date) if date > today + Days::new(MAX_PLAN_DAYS) => v.add(
                format!("instalments[{i}].date"),
                format!("is more than {MAX_PLAN_DAYS} days ahead"),
            ),
            Ok(date) if previous.is_some_and(|p| date <= p) => v.add(
                format!("instalments[{i}].date"),
                format!("must be after instalments[{}].date", i - 1),
            ),
            Ok(_) => {}
        }
        previous = instalment.date.clone().ok().or(previous);
        match &instalment.amount_minor {
            Ok(minor) if *minor <= 0 => {
                v.add(format!("instalments[{i}].amount"), "must be positive");
                sum = None;
            }
            Ok(minor) => match sum.map(|s| s.checked_add(*minor)) {
                Some(None) => {
                    v.add("instalments", "the amounts add up to more than can be owed");
                    sum = None;
                }
                added => sum = added.flatten(),
            },
            Err(why) => {
                v.add(format!("instalments[{i}].amount"), why.clone());
                sum = None;
            }
        }
    }
    if let Some(sum) = sum
        && !terms.instalments.is_empty()
        && sum != owed_minor
    {
        v.add(
            "instalments",
            format!(
                "add up to {}, but the process's amount due is {}: the instalments must add \
                 up to it exactly",
                format(sum),
                format(owed_minor)
            ),
        );
    }
    v.finish()?;
    let instalments = terms
        .instalments
        .iter()
        .filter_map(|t| Some((t.date.clone().ok()?, t.amount_minor.clone().ok()?)))
        .map(|(date, amount_minor)| {
            let after_grace = date + Days::new(u64::from(terms.grace_days) + 1);
            let remind_at = (terms.reminder_days_before > 0)
                .then(|| reminder_time(date - Days::new(u64::from(terms.reminder_days_before)), tz))
                .filter(|at| *at >= now);
            Instalment {
                date,
                amount_minor,
                deadline: start_of_day(after_grace, tz),
                remind_at,
                reminded_at: None,
                state: InstalmentState::Pending,
                settled_at: None,
            }
        })
        .collect();
    Ok(PaymentPlan {
        id,
        state: PlanState::Active,
        made_at: now,
        ended_at: None,
        grace_days: terms.grace_days,
        reminder_days_before: terms.reminder_days_before,
        total_minor: owed_minor,
        paid_minor: 0,
        instalments,
    })
}

/// What became of a plan when it was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChange {
    /// Instalment `i` (0-based) is met.
    Met(usize),
    /// Instalment `i` was missed: the plan ended, dunning resumes.
    Missed(usize),
    /// Every instalment is met.
    Completed,
    /// The plan was ended before its instalments were.
    Cancelled,
}

impl PaymentPlan {
    pub fn is_active(&self) -> bool {
        self.state == PlanState::Active
    }

    /// The sum of the instalments up to and including `index`.
    pub fn cumulative_minor(&self, index: usize) -> i64 {
        self.instalments[..=index]
            .iter()
            .map(|i| i.amount_minor)
            .sum()
    }

    /// Brings the instalments up to date with `payments` (when each payment on the process's
    /// invoices was recorded since the plan was made, and its amount) at `now`: each one
    /// covered by what was recorded before its deadline is met; the first one past its
    /// deadline uncovered is missed, which ends the plan (the later ones are dropped). Returns
    /// what changed, in order; reminders are [`due_reminders`](Self::due_reminders).
    pub fn settle(
        &mut self,
        payments: &[(DateTime<Utc>, i64)],
        now: DateTime<Utc>,
    ) -> Vec<PlanChange> {
        let mut changes = Vec::new();
        if !self.is_active() {
            return changes;
        }
        self.paid_minor = payments.iter().map(|(_, amount)| amount).sum();
        let mut cumulative = 0i64;
        let mut missed = None;
        for (index, instalment) in self.instalments.iter_mut().enumerate() {
            cumulative = cumulative.saturating_add(instalment.amount_minor);
            if instalment.state != InstalmentState::Pending {
                continue;
            }
            let in_time: i64 = payments
                .iter()
                .filter(|(at, _)| *at < instalment.deadline)
                .map(|(_, amount)| amount)
                .sum();
            if in_time >= cumulative {
                instalment.state = InstalmentState::Met;
                instalment.settled_at = Some(now);
                changes.push(PlanChange::Met(index));
                continue;
            }
            if now >= instalment.deadline {
                instalment.state = InstalmentState::Missed;
                instalment.settled_at = Some(now);
                changes.push(PlanChange::Missed(index));
                missed = Some(index);
            }
            // Not covered yet (so no later one is either).
            break;
        }
        if let Some(index) = missed {
            for later in &mut self.instalments[index + 1..] {
                later.state = InstalmentState::Dropped;
            }
            self.end(PlanState::Missed, now);
        } else if self
            .instalments
            .iter()
            .all(|i| i.state == InstalmentState::Met)
        {
            self.end(PlanState::Completed, now);
            changes.push(PlanChange::Completed);
        }
        changes
    }

    /// The instalments whose reminder is due at `now` (still pending, not reminded yet),
    /// marked as reminded.
    pub fn due_reminders(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        if !self.is_active() {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (index, instalment) in self.instalments.iter_mut().enumerate() {
            if instalment.state == InstalmentState::Pending
                && instalment.reminded_at.is_none()
                && instalment.remind_at.is_some_and(|at| now >= at)
            {
                instalment.reminded_at = Some(now);
                due.push(index);
            }
        }
        due
    }

    /// Ends an active plan before its instalments were all met or one was missed.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Vec<PlanChange> {
        if !self.is_active() {
            return Vec::new();
        }
        for instalment in &mut self.instalments {
            if instalment.state == InstalmentState::Pending {
                instalment.state = InstalmentState::Dropped;
            }
        }
        self.end(PlanState::Cancelled, now);
        vec![PlanChange::Cancelled]
    }

    fn end(&mut self, state: PlanState, now: DateTime<Utc>) {
        self.state = state;
        self.ended_at = Some(now);
    }

    /// When the engine must look at the plan next: the first pending instalment's deadline
    /// or an earlier reminder. `None` once the plan ended.
    pub fn next_due_at(&self) -> Option<DateTime<Utc>> {
        if !self.is_active() {
            return None;
        }
        let deadline = self
            .instalments
            .iter()
            .find(|i| i.state == InstalmentState::Pending)
            .map(|i| i.deadline);
        let reminder = self
            .instalments
            .iter()
            .filter(|i| i.state == InstalmentState::Pending && i.reminded_at.is_none())
            .filter_map(|i| i.remind_at)
            .min();
        match (deadline, reminder) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn terms(instalments: &[(&str, i64)]) -> PlanTerms {
        PlanTerms {
            instalments: instalments
                .iter()
                .map(|(d, m)| InstalmentTerms {
                    date: Ok(date(d)),
                    amount_minor: Ok(*m),
                })
                .collect(),
            grace_days: 2,
            reminder_days_before: 3,
        }
    }

    fn plan(instalments: &[(&str, i64)]) -> PaymentPlan {
        make_plan(
            Uuid::nil(),
            &terms(instalments),
            instalments.iter().map(|(_, m)| m).sum(),
            |m| m.to_string(),
            chrono_tz::Europe::Berlin,
            at("2026-12-01T10:00:00Z"),
        )
        .unwrap()
    }

    fn fields(result: Result<PaymentPlan, Vec<FieldViolation>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn instalments_must_add_up_to_the_amount_due_with_dates_in_order() {
        let now = at("2026-12-01T10:00:00Z");
        let berlin = chrono_tz::Europe::Berlin;
        let fmt = |m: i64| format!("{}.{:02}", m / 100, m % 100);
        let short = make_plan(
            Uuid::nil(),
            &terms(&[("2026-12-10", 4_000), ("2026-12-20", 5_000)]),
            10_000,
            fmt,
            berlin,
            now,
        )
        .unwrap_err();
        assert_eq!(short[0].field, "instalments");
        assert!(
            short[0].description.contains("90.00") && short[0].description.contains("100.00"),
            "{}",
            short[0].description
        );
        assert_eq!(
            fields(make_plan(
                Uuid::nil(),
                &terms(&[("2026-11-30", 5_000), ("2026-11-29", 5_000)]),
                10_000,
                fmt,
                berlin,
                now,
            )),
            vec!["instalments[0].date", "instalments[1].date"],
        );
        let mut bad = terms(&[("2026-12-10", 0), ("2026-12-20", 10_000)]);
        bad.instalments[1].amount_minor = Err("is not a decimal amount".into());
        bad.grace_days = 31;
        bad.reminder_days_before = 31;
        assert_eq!(
            fields(make_plan(Uuid::nil(), &bad, 10_000, fmt, berlin, now)),
            vec![
                "grace_days",
                "reminder_days_before",
                "instalments[0].amount",
                "instalments[1].amount"
            ],
        );
        assert_eq!(
            fields(make_plan(
                Uuid::nil(),
                &terms(&[]),
                10_000,
                fmt,
                berlin,
                now
            )),
            vec!["instalments"]
        );
    }

    #[test]
    fn deadlines_and_reminders_are_in_the_customers_time_zone() {
        let p = plan(&[("2026-12-03", 4_000), ("2026-12-20", 6_000)]);
        // End of 3 December plus two grace days, Berlin time (UTC+1).
        assert_eq!(p.instalments[0].deadline, at("2026-12-05T23:00:00Z"));
        // Three days before the 3rd is 30 November, before the plan was made: no reminder.
        assert_eq!(p.instalments[0].remind_at, None);
        // 17 December, 09:00 in Berlin.
        assert_eq!(p.instalments[1].remind_at, Some(at("2026-12-17T08:00:00Z")));
        assert_eq!(p.next_due_at(), Some(at("2026-12-05T23:00:00Z")));
    }

    #[test]
    fn payments_meet_instalments_in_order_and_a_miss_ends_the_plan() {
        let mut p = plan(&[
            ("2026-12-03", 4_000),
            ("2026-12-10", 3_000),
            ("2026-12-20", 3_000),
        ]);
        // Paying the first and part of the second meets only the first.
        let first = [(at("2026-12-02T10:00:00Z"), 5_000)];
        assert_eq!(
            p.settle(&first, at("2026-12-02T12:00:00Z")),
            vec![PlanChange::Met(0)]
        );
        assert_eq!(p.paid_minor, 5_000);
        // The second's reminder (7 December, 09:00 Berlin) comes before its deadline.
        assert_eq!(p.next_due_at(), Some(at("2026-12-07T08:00:00Z")));
        assert!(p.settle(&first, at("2026-12-07T08:00:00Z")).is_empty());
        assert_eq!(p.due_reminders(at("2026-12-07T08:00:00Z")), vec![1]);
        assert!(
            p.due_reminders(at("2026-12-07T09:00:00Z")).is_empty(),
            "once"
        );
        assert_eq!(p.next_due_at(), Some(at("2026-12-12T23:00:00Z")));
        // What is recorded after the deadline does not meet it: missed, the plan ends and
        // the instalments after it are dropped.
        let late = [
            (at("2026-12-02T10:00:00Z"), 5_000),
            (at("2026-12-13T01:00:00Z"), 2_000),
        ];
        assert_eq!(
            p.settle(&late, at("2026-12-13T02:00:00Z")),
            vec![PlanChange::Missed(1)]
        );
        assert_eq!(p.state, PlanState::Missed);
        assert_eq!(p.instalments[2].state, InstalmentState::Dropped);
        assert_eq!(p.next_due_at(), None);
        assert!(p.settle(&late, at("2026-12-14T00:00:00Z")).is_empty());
    }

    #[test]
    fn paying_ahead_meets_several_and_the_last_completes_the_plan() {
        let mut p = plan(&[("2026-12-03", 4_000), ("2026-12-10", 6_000)]);
        assert_eq!(
            p.settle(
                &[
                    (at("2026-12-01T11:00:00Z"), 3_000),
                    (at("2026-12-01T12:00:00Z"), 7_000)
                ],
                at("2026-12-02T00:00:00Z")
            ),
            vec![
                PlanChange::Met(0),
                PlanChange::Met(1),
                PlanChange::Completed
            ]
        );
        assert_eq!(p.state, PlanState::Completed);
        assert!(p.due_reminders(at("2026-12-07T08:00:00Z")).is_empty());
        let mut r = plan(&[("2026-12-03", 4_000), ("2026-12-10", 6_000)]);
        assert_eq!(
            r.cancel(at("2026-12-02T00:00:00Z")),
            vec![PlanChange::Cancelled]
        );
        assert_eq!(r.instalments[0].state, InstalmentState::Dropped);
        assert!(r.cancel(at("2026-12-02T00:00:00Z")).is_empty());
    }

    #[test]
    fn a_reminder_is_at_nine_local_time_also_when_the_clocks_change() {
        // 29 March 2026: Berlin goes from UTC+1 to UTC+2 at 02:00.
        assert_eq!(
            reminder_time(date("2026-03-29"), chrono_tz::Europe::Berlin),
            at("2026-03-29T07:00:00Z")
        );
    }
}
