//! The statement handed to a collection agency with an escalation: a CSV of the invoices
//! (amounts due, fees and interest booked) and the dunning history, so that the agency can
//! take the case over without asking.

use super::state::{Charge, ChargeKind, OutcomeStatus, StepRun};
use crate::domain::invoice::Invoice;
use crate::domain::money::Money;

/// Quotes a CSV field when it holds a separator, a quote or a line break (RFC 4180).
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn row(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn outcome_name(status: OutcomeStatus) -> &'static str {
    status.as_str()
}

/// The invoices with what was booked on each, then every action of every step run.
pub fn escalation_csv(invoices: &[Invoice], charges: &[Charge], history: &[StepRun]) -> String {
    let mut out = row(&[
        "invoice_number",
        "invoice_external_id",
        "issue_date",
        "due_date",
        "currency",
        "total",
        "amount_due",
        "fees",
        "interest",
    ]);
    for invoice in invoices {
        let booked = |kind: ChargeKind| {
            let minor: i64 = charges
                .iter()
                .filter(|c| c.invoice_id == invoice.id && c.kind == kind)
                .map(|c| c.amount_minor)
                .sum();
            Money::new(invoice.currency, minor).to_string()
        };
        out.push_str(&row(&[
            &invoice.number,
            &invoice.external_id,
            &invoice.issue_date.to_string(),
            &invoice.due_date.to_string(),
            invoice.currency.code(),
            &Money::new(invoice.currency, invoice.total_minor).to_string(),
            &invoice.amount_due().to_string(),
            &booked(ChargeKind::Fee),
            &booked(ChargeKind::Interest),
        ]));
    }
    out.push_str("\r\n");
    out.push_str(&row(&["date", "step", "action", "outcome", "detail"]));
    for run in history {
        for outcome in &run.outcomes {
            out.push_str(&row(&[
                &run.executed_at.format("%Y-%m-%d").to_string(),
                &run.step_name,
                outcome.action_type.as_str(),
                outcome_name(outcome.status),
                &outcome.detail,
            ]));
        }
    }
    out
}

/// The dunning history as emails show it (hand-over, sales notification): one line per step
/// run that did something, with the local date it ran and what its actions did, e.g.
/// "Step 2 (Firm reminder): send reminder succeeded; apply fee succeeded".
pub fn history_lines(history: &[StepRun], tz: chrono_tz::Tz) -> Vec<(chrono::NaiveDate, String)> {
    history
        .iter()
        .filter(|run| {
            run.outcomes
                .iter()
                .any(|o| o.status != OutcomeStatus::Skipped)
        })
        .map(|run| {
            let actions = run
                .outcomes
                .iter()
                .filter(|o| o.status != OutcomeStatus::Skipped)
                .map(|o| {
                    format!(
                        "{} {}",
                        o.action_type.as_str().replace('_', " ").to_lowercase(),
                        outcome_name(o.status).to_lowercase()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            (
                run.executed_at.with_timezone(&tz).date_naive(),
                format!("Step {} ({}): {actions}", run.step_index + 1, run.step_name),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(row(&["x", "y\nz"]), "x,\"y\nz\"\r\n");
    }

    #[test]
    fn history_lines_say_what_each_step_did_on_its_local_date() {
        use crate::domain::policy::ActionType;
        use crate::domain::process::state::{ActionOutcome, StepTrigger};
        let run = |index: usize, name: &str, outcomes: Vec<ActionOutcome>| StepRun {
            id: uuid::Uuid::from_u128(index as u128),
            organization_id: uuid::Uuid::nil(),
            process_id: uuid::Uuid::nil(),
            step_index: index,
            attempt: 1,
            step_name: name.into(),
            policy_version: 1,
            trigger: StepTrigger::Scheduled,
            executed_at: "2026-11-30T23:30:00Z".parse().unwrap(),
            outcomes,
            waiting_from: None,
            payment_request_id: None,
            payment_failed: false,
        };
        let history = [
            run(
                0,
                "Friendly",
                vec![ActionOutcome::new(
                    ActionType::SendReminder,
                    OutcomeStatus::Skipped,
                    "superseded by step 2 (Firm)",
                )],
            ),
            run(
                1,
                "Firm",
                vec![
                    ActionOutcome::new(ActionType::SendReminder, OutcomeStatus::Succeeded, ""),
                    ActionOutcome::new(ActionType::ApplyFee, OutcomeStatus::Succeeded, ""),
                    ActionOutcome::new(ActionType::RetryPayment, OutcomeStatus::Skipped, ""),
                ],
            ),
        ];
        assert_eq!(
            history_lines(&history, chrono_tz::Europe::Berlin),
            vec![(
                "2026-12-01".parse().unwrap(),
                "Step 2 (Firm): send reminder succeeded; apply fee succeeded".to_owned()
            )]
        );
    }
}
