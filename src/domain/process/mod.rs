//! Dunning processes: which policy an invoice follows, whether it may be dunned, and when a
//! process's steps are due (DESIGN.md §9). Pure rules; the engine and the simulation share them.

pub mod schedule;

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
