//! When steps are due (DESIGN.md §9 "Step times" and "Catch-up"): a due-date step runs at the
//! start of `due_date + delay_days` in the customer's time zone, a previous-step step
//! `delay_days` after the previous step ran; when several steps are due at once only the
//! latest runs and the earlier ones are superseded, so a customer never gets a burst.

use crate::domain::invoice::{overdue_instant, start_of_day};
use crate::domain::policy::{Step, StepAnchor};
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

/// When a step is due. `anchor_date` is the due date (for a customer's balance, the earliest
/// due date of its invoices at the start); `previous_run_at` is when the previous step ran, or
/// the process start for the first step.
pub fn step_time(
    step: &Step,
    anchor_date: NaiveDate,
    tz: Tz,
    previous_run_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match step.anchor {
        StepAnchor::DueDate => {
            let days = Days::new(u64::from(step.delay_days.unsigned_abs()));
            let day = if step.delay_days < 0 {
                anchor_date.checked_sub_days(days)
            } else {
                anchor_date.checked_add_days(days)
            }
            .unwrap_or(anchor_date);
            start_of_day(day, tz)
        }
        StepAnchor::PreviousStep => previous_run_at + Duration::days(i64::from(step.delay_days)),
    }
}

/// When dunning of an invoice due on `due_date` may start: the first step's time for a
/// due-date first step (before the due date for a pre-due reminder), otherwise the moment the
/// invoice becomes overdue (the first step then counts its delay from there). `None` for a
/// policy without steps.
pub fn start_time(steps: &[Step], due_date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let overdue_at = overdue_instant(due_date, tz);
    let first = steps.first()?;
    Some(match first.anchor {
        StepAnchor::DueDate => step_time(first, due_date, tz, overdue_at),
        StepAnchor::PreviousStep => overdue_at,
    })
}

/// The step to run now, and the earlier ones it supersedes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueStep {
    /// Index of the step that runs.
    pub run: usize,
    /// When it was due.
    pub due_at: DateTime<Utc>,
    /// Indexes of the steps recorded SKIPPED ("superseded by step `run`"), oldest first.
    pub superseded: Vec<usize>,
}

/// Which step runs at `now` for a process whose next step `next` is due at `next_at`: the
/// latest step whose time has come. A superseded step counts as run at its scheduled time for
/// the step after it. `None` while step `next` is not due yet (or no step is left).
pub fn due_step(
    steps: &[Step],
    next: usize,
    next_at: DateTime<Utc>,
    anchor_date: NaiveDate,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DueStep> {
    if next >= steps.len() || next_at > now {
        return None;
    }
    let (mut run, mut due_at) = (next, next_at);
    while let Some(following) = steps.get(run + 1) {
        let at = step_time(following, anchor_date, tz, due_at);
        if at > now {
            break;
        }
        (run, due_at) = (run + 1, at);
    }
    Some(DueStep {
        run,
        due_at,
        superseded: (next..run).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::{Action, ActionCondition, ActionType};

    fn step(delay_days: i32, anchor: StepAnchor) -> Step {
        Step {
            name: String::new(),
            delay_days,
            anchor,
            actions: vec![Action {
                action_type: ActionType::SendReminder,
                condition: ActionCondition::Always,
                template_kind: None,
                fee: None,
                interest: None,
            }],
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn due_date_steps_start_at_local_midnight_also_before_the_due_date() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let pre_due = [step(-3, StepAnchor::DueDate), step(7, StepAnchor::DueDate)];
        // Berlin is UTC+1 in November: local midnight of Nov 7 is 23:00 UTC on Nov 6.
        assert_eq!(
            start_time(&pre_due, date("2026-11-10"), berlin),
            Some(at("2026-11-06T23:00:00Z"))
        );
        assert_eq!(
            step_time(
                &pre_due[1],
                date("2026-11-10"),
                berlin,
                at("2000-01-01T00:00:00Z")
            ),
            at("2026-11-16T23:00:00Z")
        );
    }

    #[test]
    fn a_previous_step_first_step_counts_from_the_overdue_moment() {
        let utc: Tz = "UTC".parse().unwrap();
        let steps = [step(2, StepAnchor::PreviousStep)];
        let start = start_time(&steps, date("2026-11-10"), utc).unwrap();
        assert_eq!(start, at("2026-11-11T00:00:00Z"));
        assert_eq!(
            step_time(&steps[0], date("2026-11-10"), utc, start),
            at("2026-11-13T00:00:00Z")
        );
        assert_eq!(start_time(&[], date("2026-11-10"), utc), None);
    }

    #[test]
    fn catch_up_runs_only_the_latest_due_step() {
        let utc: Tz = "UTC".parse().unwrap();
        let due = date("2026-09-01");
        let steps = [
            step(0, StepAnchor::DueDate),
            step(7, StepAnchor::DueDate),
            step(30, StepAnchor::DueDate),
            step(14, StepAnchor::PreviousStep),
            step(30, StepAnchor::PreviousStep),
        ];
        let first_at = at("2026-09-01T00:00:00Z");
        // 60 days after the due date: step 3 (due + 30 + 14) is the latest due.
        let now = at("2026-10-31T12:00:00Z");
        assert_eq!(
            due_step(&steps, 0, first_at, due, utc, now),
            Some(DueStep {
                run: 3,
                due_at: at("2026-10-15T00:00:00Z"),
                superseded: vec![0, 1, 2],
            })
        );
        // On time: only the step that is due runs.
        assert_eq!(
            due_step(&steps, 0, first_at, due, utc, at("2026-09-01T08:00:00Z")),
            Some(DueStep {
                run: 0,
                due_at: first_at,
                superseded: vec![],
            })
        );
        assert_eq!(
            due_step(&steps, 0, first_at, due, utc, at("2026-08-31T23:59:59Z")),
            None
        );
        assert_eq!(due_step(&steps, 5, first_at, due, utc, now), None);
    }
}
