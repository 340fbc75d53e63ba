//! "Update Setting": assigning a customer's policy and, when asked, moving the customer's open
//! processes to it, in one transaction.

use super::ProcessView;
use super::Processes;
use crate::core::Caller;
use crate::core::CustomerRef;
use crate::core::lookup::load_live_customer;
use crate::core::lookup::load_organization;
use crate::core::process_events::ProcessChange;
use crate::core::reconcile::amount_due;
use crate::domain::customer::Customer;
use crate::domain::event::{EventPayload, EventType, NewEvent};
use crate::domain::process::command::{move_to_policy, moves_with_customer_policy};
use crate::domain::process::schedule::step_time;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::{PolicyHolder, check_assignable_policy, load_policy};

/// A customer after AssignPolicy, with the processes moved to the policy.
#[derive(Debug, Clone)]
pub struct AssignedPolicy {
    pub customer: Customer,
    pub moved: Vec<ProcessView>,
}

impl Processes {
    /// Sets the customer's policy override (`policy_code`; empty clears it, so the
    /// organization's default applies). With `apply_to_open_processes`, the customer's
    /// ACTIVE, PAUSED and EXHAUSTED processes whose invoices carry no policy of their own move
    /// to the latest version of the policy that now applies and restart at its first step (a
    /// paused one stays paused); without it only new processes follow the new policy.
    /// FAILED_PRECONDITION (POLICY_SCOPE_MISMATCH) when a process to move has the other scope.
    pub async fn assign_policy(
        &self,
        caller: Caller,
        key: &CustomerRef,
        policy_code: &str,
        apply_to_open_processes: bool,
    ) -> Result<AssignedPolicy, Error> {
        let tx = self.core.store.begin().await?;
        let mut customer = load_live_customer(&tx, caller, key).await?;
        let previous_code = customer.details.policy_code.clone();
        check_assignable_policy(
            &tx,
            caller,
            policy_code,
            &previous_code,
            PolicyHolder::Customer,
        )
        .await?;
        let now = self.core.now();
        customer.details.policy_code = policy_code.to_owned();
        customer.updated_at = now;
        tx.update_customer(&customer).await?;
        let organization = load_organization(&tx, caller).await?;
        let applying = if policy_code.is_empty() {
            organization.settings.default_policy_code.as_str()
        } else {
            policy_code
        };
        let mut moved = Vec::new();
        let mut process_events = Vec::new();
        if apply_to_open_processes && !applying.is_empty() {
            let policy = load_policy(&tx, caller, applying, false).await?;
            let first =
                policy.definition.steps.first().ok_or_else(|| {
                    Error::Internal(format!("policy {} has no steps", policy.code))
                })?;
            for mut p in tx
                .open_processes_of_customer(caller.organization_id, customer.id)
                .await?
            {
                if !moves_with_customer_policy(&p) {
                    continue;
                }
                let invoices = tx
                    .find_invoices_by_ids(caller.organization_id, &p.open_invoice_ids(), false)
                    .await?;
                // An invoice's own policy is not the customer's to change.
                if invoices.iter().any(|i| !i.policy_code.is_empty()) {
                    continue;
                }
                if p.scope != policy.definition.scope {
                    return Err(Error::precondition(
                        Reason::PolicyScopeMismatch,
                        format!(
                            "process {} has scope {} and policy `{}` has scope {}: a process \
                             cannot change scope; assign without apply_to_open_processes or \
                             cancel the process",
                            p.id,
                            p.scope.as_str(),
                            policy.code,
                            policy.definition.scope.as_str()
                        ),
                    ));
                }
                let previous = p.state;
                let first_step_at = step_time(first, p.anchor_date, customer.details.timezone, now);
                move_to_policy(&mut p, &policy.code, policy.version, first_step_at, now);
                tx.update_process(&p).await?;
                let mut change = ProcessChange::new(
                    EventType::ProcessReset,
                    Some(previous),
                    amount_due(&p, &invoices)?,
                )
                .note(format!(
                    "moved to policy {} v{}",
                    policy.code, policy.version
                ));
                change.actor = caller.actor.for_events();
                process_events.push(change.event(&p, now));
                moved.push(p.id);
            }
        }
        let mut events = vec![NewEvent {
            event_type: EventType::PolicyAssigned,
            occurred_at: now,
            customer_id: Some(customer.id),
            customer_external_id: customer.external_id.clone(),
            invoice_id: None,
            invoice_external_id: String::new(),
            process_id: None,
            payload: EventPayload::PolicyAssigned {
                policy_code: policy_code.to_owned(),
                previous_policy_code: previous_code,
                apply_to_open_processes,
                moved_process_ids: moved.iter().map(|id| id.to_string()).collect(),
            },
        }];
        events.extend(process_events);
        // The engine looks at the customer again: new processes follow the new policy.
        events.extend(self.core.customer_changed(&tx, &customer, false).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        let mut views = Vec::with_capacity(moved.len());
        for id in moved {
            views.push(self.get_process(caller, id).await?);
        }
        Ok(AssignedPolicy {
            customer,
            moved: views,
        })
    }
}
