//! Dunning processes: which policy an invoice follows, whether it may be dunned, and when a
//! process's steps are due (DESIGN.md §9). Pure rules; the engine and the simulation share them.

pub mod command;
pub mod payment_plan;
pub mod plan;
pub mod schedule;
pub mod state;
pub mod statement;

use super::customer::Customer;
use super::invoice::{CollectionMethod, Invoice, InvoiceState};
use super::policy::{PolicyDefinition, PolicyScope};

/// The policy code an invoice follows: its own override, else its customer's, else the
/// organization's default; `None` = the invoice is not dunned.
pub fn resolve_policy_code<'a>(
    invoice: &'a Invoice,
    customer: &'a Customer,
    organization_default: &'a str,
) -> Option<&'a str> {
    [
        invoice.policy_code.as_str(),
        customer.details.policy_code.as_str(),
        organization_default,
    ]
    .into_iter()
    .find(|code| !code.is_empty())
}

/// Why an invoice is not dunned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDunnable {
    NotOpen,
    NothingDue,
    Disputed,
    DunningBlocked,
    CustomerExcluded,
    CustomerDeleted,
    ManualCollection,
}

impl NotDunnable {
    /// Why, in words (simulation and logs).
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotOpen => "the invoice is not open",
            Self::NothingDue => "nothing is due",
            Self::Disputed => "the invoice is disputed",
            Self::DunningBlocked => "dunning is blocked for the invoice",
            Self::CustomerExcluded => "the customer is excluded from dunning",
            Self::CustomerDeleted => "the customer was deleted",
            Self::ManualCollection => "manual collection method not included by the policy",
        }
    }
}

/// Whether an invoice may be dunned under a policy: OPEN, something due, not disputed, not
/// blocked, its customer neither excluded nor deleted, and AUTOMATIC or the policy includes
/// manual invoices.
pub fn check_dunnable(
    invoice: &Invoice,
    customer: &Customer,
    policy: &PolicyDefinition,
) -> Result<(), NotDunnable> {
    if invoice.state != InvoiceState::Open {
        return Err(NotDunnable::NotOpen);
    }
    if invoice.amount_due_minor() <= 0 {
        return Err(NotDunnable::NothingDue);
    }
    if invoice.disputed {
        return Err(NotDunnable::Disputed);
    }
    if invoice.dunning_blocked {
        return Err(NotDunnable::DunningBlocked);
    }
    if customer.is_deleted() {
        return Err(NotDunnable::CustomerDeleted);
    }
    if customer.details.dunning_excluded {
        return Err(NotDunnable::CustomerExcluded);
    }
    if invoice.collection_method == CollectionMethod::Manual && !policy.include_manual_invoices {
        return Err(NotDunnable::ManualCollection);
    }
    Ok(())
}

/// The key that makes a process unique among open ones: the invoice for INVOICE scope, the
/// customer and currency for CUSTOMER_BALANCE.
pub fn scope_key(scope: PolicyScope, invoice: &Invoice) -> String {
    match scope {
        PolicyScope::Invoice => invoice.id.to_string(),
        PolicyScope::CustomerBalance => {
            format!("{}:{}", invoice.customer_id, invoice.currency.code())
        }
    }
}

/// What a change of its invoices or customer means for an open process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Unchanged,
    /// Nothing is left due: the process resolved.
    Resolved,
    /// A dispute, dunning block or exclusion now holds it.
    Paused(state::PauseReason),
    /// The cause of its pause was cleared.
    Resumed,
}

/// Brings an open process in line with its open invoices (`invoices`: the current rows of the
/// invoices it holds) and its customer: settled → RESOLVED, whatever step it is on; every
/// invoice still due disputed or blocked, or the customer excluded → PAUSED; the cause gone →
/// ACTIVE again. A pause by an operator or a promise is left alone.
pub fn reconcile(
    process: &mut state::Process,
    invoices: &[Invoice],
    customer: &Customer,
    now: chrono::DateTime<chrono::Utc>,
) -> Reconciled {
    use state::{PauseReason, ProcessState};
    if !process.state.is_open() {
        return Reconciled::Unchanged;
    }
    let due: Vec<&Invoice> = invoices
        .iter()
        .filter(|i| process.holds(i.id) && i.state == InvoiceState::Open)
        .filter(|i| i.amount_due_minor() > 0)
        .collect();
    if due.is_empty() {
        process.resolve(now);
        return Reconciled::Resolved;
    }
    let cause = if customer.details.dunning_excluded {
        Some(PauseReason::CustomerExcluded)
    } else if due.iter().all(|i| i.disputed || i.dunning_blocked) {
        Some(if due.iter().any(|i| i.disputed) {
            PauseReason::Dispute
        } else {
            PauseReason::DunningBlocked
        })
    } else {
        None
    };
    match (process.state, process.pause_reason, cause) {
        (ProcessState::Active, _, Some(reason)) => {
            process.pause(reason, now);
            Reconciled::Paused(reason)
        }
        (ProcessState::Paused, Some(current), Some(reason))
            if current.follows_a_cause() && current != reason =>
        {
            process.pause(reason, now);
            Reconciled::Paused(reason)
        }
        (ProcessState::Paused, Some(current), None) if current.follows_a_cause() => {
            process.resume(now);
            Reconciled::Resumed
        }
        _ => Reconciled::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::customer::CustomerDetails;
    use crate::domain::invoice::InvoiceSync;
    use crate::domain::money::Currency;
    use chrono::DateTime;

    fn customer(policy_code: &str) -> Customer {
        Customer {
            id: uuid::Uuid::from_u128(7),
            organization_id: uuid::Uuid::nil(),
            external_id: "cus_1".into(),
            details: CustomerDetails {
                name: "Ada".into(),
                email: "ada@example.com".into(),
                cc_emails: vec![],
                bcc_emails: vec![],
                locale: "en".into(),
                timezone: chrono_tz::UTC,
                sales_rep_email: String::new(),
                payment_method: None,
                policy_code: policy_code.into(),
                dunning_excluded: false,
                dunning_excluded_reason: String::new(),
                tags: vec![],
                metadata: Default::default(),
            },
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            deleted_at: None,
        }
    }

    fn invoice(policy_code: &str, method: CollectionMethod) -> Invoice {
        let sync = InvoiceSync {
            external_id: "inv_1".into(),
            customer_external_id: "cus_1".into(),
            number: "1".into(),
            currency: Currency::from_code("EUR").unwrap(),
            total_minor: 10_000,
            credited_minor: 0,
            issue_date: "2026-10-01".parse().unwrap(),
            due_date: "2026-10-31".parse().unwrap(),
            collection_method: Some(method),
            disputed: false,
            dunning_blocked: false,
            dunning_block_reason: String::new(),
            policy_code: policy_code.into(),
            metadata: Default::default(),
            void: false,
        };
        Invoice::create(
            uuid::Uuid::from_u128(1),
            uuid::Uuid::nil(),
            uuid::Uuid::from_u128(7),
            chrono_tz::UTC,
            &sync,
            DateTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    fn policy(include_manual_invoices: bool) -> PolicyDefinition {
        PolicyDefinition {
            name: "p".into(),
            description: String::new(),
            scope: PolicyScope::Invoice,
            thresholds: vec![],
            include_manual_invoices,
            bcc_emails: vec![],
            collection_agency_email: String::new(),
            steps: vec![],
        }
    }

    #[test]
    fn the_invoice_override_wins_then_the_customer_then_the_organization() {
        let auto = CollectionMethod::Automatic;
        assert_eq!(
            resolve_policy_code(&invoice("inv-p", auto), &customer("cus-p"), "org-p"),
            Some("inv-p")
        );
        assert_eq!(
            resolve_policy_code(&invoice("", auto), &customer("cus-p"), "org-p"),
            Some("cus-p")
        );
        assert_eq!(
            resolve_policy_code(&invoice("", auto), &customer(""), "org-p"),
            Some("org-p")
        );
        assert_eq!(
            resolve_policy_code(&invoice("", auto), &customer(""), ""),
            None
        );
    }

    #[test]
    fn eligibility_names_why_an_invoice_is_not_dunned() {
        let cus = customer("");
        let mut inv = invoice("", CollectionMethod::Automatic);
        assert_eq!(check_dunnable(&inv, &cus, &policy(false)), Ok(()));
        let manual = invoice("", CollectionMethod::Manual);
        assert_eq!(
            check_dunnable(&manual, &cus, &policy(false)),
            Err(NotDunnable::ManualCollection)
        );
        assert_eq!(check_dunnable(&manual, &cus, &policy(true)), Ok(()));
        inv.dunning_blocked = true;
        assert_eq!(
            check_dunnable(&inv, &cus, &policy(false)),
            Err(NotDunnable::DunningBlocked)
        );
        inv.dunning_blocked = false;
        inv.disputed = true;
        assert_eq!(
            check_dunnable(&inv, &cus, &policy(false)),
            Err(NotDunnable::Disputed)
        );
        inv.disputed = false;
        let mut excluded = customer("");
        excluded.details.dunning_excluded = true;
        assert_eq!(
            check_dunnable(&inv, &excluded, &policy(false)),
            Err(NotDunnable::CustomerExcluded)
        );
        inv.credited_minor = inv.total_minor;
        assert_eq!(
            check_dunnable(&inv, &cus, &policy(false)),
            Err(NotDunnable::NothingDue)
        );
    }

    #[test]
    fn balance_processes_are_keyed_by_customer_and_currency() {
        let inv = invoice("", CollectionMethod::Automatic);
        assert_eq!(
            scope_key(PolicyScope::Invoice, &inv),
            uuid::Uuid::from_u128(1).to_string()
        );
        assert_eq!(
            scope_key(PolicyScope::CustomerBalance, &inv),
            format!("{}:EUR", uuid::Uuid::from_u128(7))
        );
    }
}
