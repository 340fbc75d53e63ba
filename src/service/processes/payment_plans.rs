//! Payment plans of processes (RecordPaymentPlan): making one from an operator's terms, and
//! the events of what becomes of it. The engine follows a plan in `steps::payment_plans`.

use super::Processes;
use crate::clock::new_id;
use crate::core::Caller;
use crate::domain::money::Money;
use crate::domain::process::payment_plan::InstalmentTerms;
use crate::domain::process::payment_plan::PaymentPlan;
use crate::domain::process::payment_plan::PlanTerms;
use crate::domain::process::payment_plan::make_plan;
use crate::domain::process::state::Process;
use crate::error::Error;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::NaiveDate;

/// A payment plan as the operator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlanTerms {
    /// Each instalment's date (or why the text given is not one) and decimal amount.
    pub instalments: Vec<(Result<NaiveDate, String>, String)>,
    pub grace_days: u32,
    pub reminder_days_before: u32,
}

impl Processes {
    /// The plan `terms` make for a process owing `owed` (INVALID_ARGUMENT naming
    /// `instalments[i].date`, `instalments[i].amount`, `instalments`, `grace_days` or
    /// `reminder_days_before`).
    pub(crate) async fn plan_of<C: Connection>(
        &self,
        conn: &Conn<C>,
        caller: Caller,
        p: &Process,
        terms: &PaymentPlanTerms,
        owed: Money,
    ) -> Result<PaymentPlan, Error> {
        let customer = conn
            .find_customer(caller.organization_id, p.customer_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("process {} has no customer", p.id)))?;
        let terms = PlanTerms {
            instalments: terms
                .instalments
                .iter()
                .map(|(date, amount)| InstalmentTerms {
                    date: date.clone(),
                    amount_minor: p.currency.parse_amount(amount).map_err(|e| e.to_string()),
                })
                .collect(),
            grace_days: terms.grace_days,
            reminder_days_before: terms.reminder_days_before,
        };
        Ok(make_plan(
            new_id(),
            &terms,
            owed.minor(),
            |minor| p.currency.format(minor),
            customer.details.timezone,
            self.core.now(),
        )?)
    }
}
