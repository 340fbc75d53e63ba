//! The caller's own organization and its settings.

use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::organization::Organization;
use crate::domain::organization::OrganizationField;
use crate::domain::organization::OrganizationSettings;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::PolicyHolder;
use crate::service::lookup::check_assignable_policy;
use std::sync::Arc;

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
