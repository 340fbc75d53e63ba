//! Policies: create, read, list, version on update, archive; and the check that a policy
//! code given to an organization, customer or invoice names a policy that may be assigned.

use super::paging::{PageRequest, fingerprint};
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::policy::{Policy, PolicyDefinition};
use crate::domain::validation::Violations;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::request_id_conflict;
use crate::service::lookup::{load_policy, load_policy_version, policy_archived, policy_not_found};
use std::sync::Arc;

/// Dunning policies and their versions.
#[derive(Clone)]
pub struct Policies {
    core: Arc<Core>,
}

impl Policies {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

const CREATE_OPERATION: &str = "CreatePolicy";

/// A field of a policy that UpdatePolicy may change; names match the API's mask paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    Name,
    Description,
    Scope,
    Thresholds,
    IncludeManualInvoices,
    BccEmails,
    CollectionAgencyEmail,
    Steps,
}

impl PolicyField {
    pub const ALL: [PolicyField; 8] = [
        Self::Name,
        Self::Description,
        Self::Scope,
        Self::Thresholds,
        Self::IncludeManualInvoices,
        Self::BccEmails,
        Self::CollectionAgencyEmail,
        Self::Steps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::Scope => "scope",
            Self::Thresholds => "thresholds",
            Self::IncludeManualInvoices => "include_manual_invoices",
            Self::BccEmails => "bcc_emails",
            Self::CollectionAgencyEmail => "collection_agency_email",
            Self::Steps => "steps",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Copies this field from `from` into `to`.
    fn copy(self, from: &PolicyDefinition, to: &mut PolicyDefinition) {
        match self {
            Self::Name => to.name = from.name.clone(),
            Self::Description => to.description = from.description.clone(),
            Self::Scope => to.scope = from.scope,
            Self::Thresholds => to.thresholds = from.thresholds.clone(),
            Self::IncludeManualInvoices => {
                to.include_manual_invoices = from.include_manual_invoices
            }
            Self::BccEmails => to.bcc_emails = from.bcc_emails.clone(),
            Self::CollectionAgencyEmail => {
                to.collection_agency_email = from.collection_agency_email.clone()
            }
            Self::Steps => to.steps = from.steps.clone(),
        }
    }
}

/// The rules between a policy's fields, reported under `policy.`.
fn check_rules(definition: &PolicyDefinition) -> Result<(), Error> {
    let mut rules = Violations::new();
    definition.check_rules(&mut rules);
    let mut violations = Violations::new();
    violations.extend_prefixed("policy", rules);
    violations.finish().map_err(Error::from)
}

impl Policies {
    /// Creates version 1 of a policy.
    pub async fn create_policy(
        &self,
        caller: Caller,
        code: String,
        definition: PolicyDefinition,
        request_id: Option<String>,
    ) -> Result<Policy, Error> {
        check_rules(&definition)?;
        let tx = self.core.store.begin().await?;
        let request_fingerprint = fingerprint(&(&code, &definition));
        if let Some(request_id) = &request_id
            && let Some((stored, resource_id)) = tx
                .find_idempotency_key(caller.organization_id, CREATE_OPERATION, request_id)
                .await?
        {
            if stored != request_fingerprint {
                return Err(request_id_conflict(request_id));
            }
            return tx
                .find_policy_by_id(caller.organization_id, resource_id)
                .await?
                .ok_or_else(|| policy_not_found(&code));
        }
        let now = self.core.now();
        let policy = Policy {
            id: new_id(),
            organization_id: caller.organization_id,
            code,
            version: 1,
            definition,
            archived: false,
            created_at: now,
            updated_at: now,
        };
        if let Some(request_id) = &request_id {
            tx.insert_idempotency_key(
                caller.organization_id,
                CREATE_OPERATION,
                request_id,
                &request_fingerprint,
                policy.id,
                now,
            )
            .await?;
        }
        tx.insert_policy_version(&policy).await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// The latest version of a policy, or the given one.
    pub async fn get_policy(
        &self,
        caller: Caller,
        code: &str,
        version: Option<i32>,
    ) -> Result<Policy, Error> {
        load_policy_version(&self.core.store, caller, code, version).await
    }

    /// The latest version of each policy, by code.
    pub async fn list_policies(
        &self,
        caller: Caller,
        include_archived: bool,
        page: &PageRequest,
    ) -> Result<(Vec<Policy>, String), Error> {
        let filter = ("policies", include_archived);
        let after = page.after_text(&(caller.organization_id, &filter))?;
        let rows = self
            .core
            .store
            .list_policies(
                caller.organization_id,
                include_archived,
                after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, &filter), |p| p.code.clone()))
    }

    /// Writes a new version with the listed fields changed; returns the latest version
    /// unchanged when the values are the same.
    pub async fn update_policy(
        &self,
        caller: Caller,
        code: &str,
        update: &PolicyDefinition,
        fields: &[PolicyField],
    ) -> Result<Policy, Error> {
        let tx = self.core.store.begin().await?;
        let latest = load_policy(&tx, caller, code, true).await?;
        if latest.archived {
            return Err(policy_archived(code));
        }
        let mut definition = latest.definition.clone();
        for field in fields {
            field.copy(update, &mut definition);
        }
        if definition == latest.definition {
            return Ok(latest);
        }
        check_rules(&definition)?;
        let next = Policy {
            id: new_id(),
            version: latest.version + 1,
            definition,
            updated_at: self.core.now(),
            ..latest
        };
        tx.insert_policy_version(&next).await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Archives a policy (every version); archiving an archived policy returns it unchanged.
    pub async fn archive_policy(&self, caller: Caller, code: &str) -> Result<Policy, Error> {
        let tx = self.core.store.begin().await?;
        let mut policy = load_policy(&tx, caller, code, true).await?;
        if policy.archived {
            return Ok(policy);
        }
        let org = load_organization(&tx, caller).await?;
        if org.settings.default_policy_code == code {
            return Err(Error::precondition(
                Reason::PolicyIsDefault,
                format!(
                    "policy `{code}` is the organization's default policy; choose another \
                     default first"
                ),
            ));
        }
        tx.archive_policy(caller.organization_id, code).await?;
        tx.commit().await?;
        policy.archived = true;
        Ok(policy)
    }
}
