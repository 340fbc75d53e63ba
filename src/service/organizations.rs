//! The caller's own organization and its settings.

use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::notification::next_send_time;
use crate::domain::organization::Organization;
use crate::domain::organization::OrganizationField;
use crate::domain::organization::OrganizationSettings;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::PolicyHolder;
use crate::service::lookup::check_assignable_policy;
use crate::storage::Tx;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The caller's own organization and its settings.
#[derive(Clone)]
pub struct Organizations {
    core: Arc<Core>,
}

impl Organizations {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

impl Organizations {
    pub async fn get_organization(&self, caller: Caller) -> Result<Organization, Error> {
        load_organization(&self.core.store, caller).await
    }

    /// Changes the listed settings.
    pub async fn update_organization(
        &self,
        caller: Caller,
        update: &OrganizationSettings,
        fields: &[OrganizationField],
    ) -> Result<Organization, Error> {
        let tx = self.core.store.begin().await?;
        let mut org = load_organization(&tx, caller).await?;
        let before = org.settings.clone();
        org.settings.apply(update, fields);
        if org.settings != before {
            if org.settings.default_policy_code != before.default_policy_code {
                check_assignable_policy(
                    &tx,
                    caller,
                    &org.settings.default_policy_code,
                    &before.default_policy_code,
                    PolicyHolder::Organization,
                )
                .await?;
            }
            if org.settings.name != before.name
                && tx
                    .find_organization_by_name(&org.settings.name)
                    .await?
                    .is_some()
            {
                return Err(Error::already_exists(
                    Reason::OrganizationAlreadyExists,
                    format!(
                        "an organization named `{}` already exists",
                        org.settings.name
                    ),
                ));
            }
            org.updated_at = self.core.now();
            tx.update_organization(&org).await?;
            if org.settings.quiet_hours != before.quiet_hours {
                self.reschedule_waiting_emails(&tx, &org).await?;
            }
            if org.settings.default_policy_code != before.default_policy_code {
                // Every customer may now follow another policy.
                tx.request_dunning_checks_of_organization(caller.organization_id, org.updated_at)
                    .await?;
                tx.wake_after_commit(&self.core.wake.engine);
            }
            tx.commit().await?;
        }
        Ok(org)
    }
}

impl Organizations {
    /// Emails held for the old sending window go out in the new one: at once when quiet
    /// hours were turned off, else at the new window's next opening in each customer's time
    /// zone. Retries keep their backoff.
    async fn reschedule_waiting_emails(&self, tx: &Tx, org: &Organization) -> Result<(), Error> {
        let now = self.core.now();
        let waiting = tx.notifications_waiting_for_window(org.id, now).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let mut customer_ids: Vec<Uuid> = waiting.iter().map(|n| n.customer_id).collect();
        customer_ids.sort();
        customer_ids.dedup();
        let zones: HashMap<Uuid, chrono_tz::Tz> = tx
            .find_customers_by_ids(org.id, &customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c.details.timezone))
            .collect();
        for mut n in waiting {
            let tz = zones.get(&n.customer_id).copied().unwrap_or(chrono_tz::UTC);
            n.next_attempt_at = Some(next_send_time(now, tz, &org.settings.quiet_hours));
            n.updated_at = now;
            tx.update_notification(&n).await?;
        }
        self.core.wake_outbox_after_commit(tx);
        Ok(())
    }
}
