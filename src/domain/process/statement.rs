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
    match status {
        OutcomeStatus::Succeeded => "SUCCEEDED",
        OutcomeStatus::Pending => "PENDING",
        OutcomeStatus::Failed => "FAILED",
        OutcomeStatus::Skipped => "SKIPPED",
    }
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
}
