//! Following a running payment plan with the payments recorded on its invoices.

use crate::domain::process::state::Process;
use crate::error::Error;
use crate::storage::Conn;
use crate::storage::Connection;
use chrono::DateTime;
use chrono::Utc;

/// Settles the running payment plan of `p` with the payments recorded on its invoices since
/// the plan was made (see `PaymentPlan::settle`); returns whether anything changed.
pub(crate) async fn settle_plan<C: Connection>(
    conn: &Conn<C>,
    p: &mut Process,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let Some(made_at) = p
        .payment_plan
        .as_ref()
        .filter(|plan| plan.is_active())
        .map(|plan| plan.made_at)
    else {
        return Ok(false);
    };
    // Every invoice it held: one a payment settled counts too.
    let invoice_ids: Vec<_> = p.invoices.iter().map(|i| i.invoice_id).collect();
    let payments = conn.payments_recorded_since(&invoice_ids, made_at).await?;
    let Some(plan) = p.payment_plan.as_mut() else {
        return Ok(false);
    };
    let paid_before = plan.paid_minor;
    let changed = !plan.settle(&payments, now).is_empty() || plan.paid_minor != paid_before;
    Ok(changed)
}
