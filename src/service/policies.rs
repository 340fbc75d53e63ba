//! Policies: create, read, list, version on update, archive; and the check that a policy
//! code given to an organization, customer or invoice names a policy that may be assigned.

use super::Services;
use super::customers::request_id_conflict;
use super::paging::{PageRequest, fingerprint};
use crate::core::Caller;
use crate::core::lookup::load_organization;
use crate::domain::policy::{Policy, PolicyDefinition, PolicyScope};
use crate::domain::validation::Violations;
use crate::error::Error;
use crate::storage::{Conn, Connection};
use std::collections::HashMap;
use uuid::Uuid;

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

fn policy_not_found(code: &str) -> Error {
    Error::not_found("POLICY_NOT_FOUND", format!("no policy `{code}`"))
}

fn policy_archived(code: &str) -> Error {
    Error::precondition("POLICY_ARCHIVED", format!("policy `{code}` is archived"))
}

/// The latest version of a policy of the caller's organization.
pub(crate) async fn load_policy<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    code: &str,
    lock: bool,
) -> Result<Policy, Error> {
    conn.find_policy(caller.organization_id, code, None, lock)
        .await?
        .ok_or_else(|| policy_not_found(code))
}

/// Who a policy code is being given to: it must name a policy that exists and, unless the
/// holder already names it, is not archived; an invoice may only name an INVOICE-scope policy
/// (CUSTOMER_BALANCE policies are chosen for a customer or the organization).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PolicyHolder<'a> {
    Organization,
    Customer,
    /// An invoice, with the path of its policy_code field for errors.
    Invoice {
        field: &'a str,
    },
}

/// Checks a policy code newly given to a holder that named `current` before. An empty code
/// (clearing the override) is always accepted.
pub(crate) async fn check_assignable_policy<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    code: &str,
    current: &str,
    holder: PolicyHolder<'_>,
) -> Result<(), Error> {
    if code.is_empty() {
        return Ok(());
    }
    let policy = conn
        .find_policy(caller.organization_id, code, None, false)
        .await?;
    check_assignable(policy.as_ref(), code, current, holder)
}

/// The latest versions of the policies named by `codes` (each looked up once), for checking
/// a batch with [`check_assignable`].
pub(crate) async fn policies_named<'a, C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    codes: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Policy>, Error> {
    let mut out = HashMap::new();
    for code in codes {
        if code.is_empty() || out.contains_key(code) {
            continue;
        }
        if let Some(policy) = conn
            .find_policy(caller.organization_id, code, None, false)
            .await?
        {
            out.insert(code.to_owned(), policy);
        }
    }
    Ok(out)
}

/// The rule of [`check_assignable_policy`] for a policy already looked up (`None`: there is
/// no policy with that code).
pub(crate) fn check_assignable(
    policy: Option<&Policy>,
    code: &str,
    current: &str,
    holder: PolicyHolder<'_>,
) -> Result<(), Error> {
    if code.is_empty() {
        return Ok(());
    }
    let Some(policy) = policy else {
        return Err(policy_not_found(code));
    };
    if policy.archived && code != current {
        return Err(policy_archived(code));
    }
    if let PolicyHolder::Invoice { field } = holder
        && policy.definition.scope != PolicyScope::Invoice
    {
        return Err(Error::field(
            field,
            format!(
                "policy `{code}` has scope CUSTOMER_BALANCE, which is chosen for a customer or \
                 the organization; an invoice may only name an INVOICE-scope policy"
            ),
        ));
    }
    Ok(())
}

impl Services {
    /// Creates version 1 of a policy.
    pub async fn create_policy(
        &self,
        caller: Caller,
        code: String,
        definition: PolicyDefinition,
        request_id: Option<String>,
    ) -> Result<Policy, Error> {
        check_rules(&definition)?;
        let tx = self.store.begin().await?;
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
        let now = self.now();
        let policy = Policy {
            id: Uuid::now_v7(),
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
        let Some(version) = version else {
            return load_policy(&self.store, caller, code, false).await;
        };
        if let Some(policy) = self
            .store
            .find_policy(caller.organization_id, code, Some(version), false)
            .await?
        {
            return Ok(policy);
        }
        let latest = load_policy(&self.store, caller, code, false).await?;
        Err(Error::not_found(
            "POLICY_VERSION_NOT_FOUND",
            format!(
                "policy `{code}` has no version {version} (latest: {})",
                latest.version
            ),
        ))
    }

    /// The latest version of each policy, by code.
    pub async fn list_policies(
        &self,
        caller: Caller,
        include_archived: bool,
        page: &PageRequest,
    ) -> Result<(Vec<Policy>, String), Error> {
        let filter = ("policies", include_archived);
        let after = page.after_text(&filter)?;
        let rows = self
            .store
            .list_policies(
                caller.organization_id,
                include_archived,
                after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(rows, &filter, |p| p.code.clone()))
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
        let tx = self.store.begin().await?;
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
            id: Uuid::now_v7(),
            version: latest.version + 1,
            definition,
            updated_at: self.now(),
            ..latest
        };
        tx.insert_policy_version(&next).await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Archives a policy (every version); archiving an archived policy returns it unchanged.
    pub async fn archive_policy(&self, caller: Caller, code: &str) -> Result<Policy, Error> {
        let tx = self.store.begin().await?;
        let mut policy = load_policy(&tx, caller, code, true).await?;
        if policy.archived {
            return Ok(policy);
        }
        let org = load_organization(&tx, caller).await?;
        if org.settings.default_policy_code == code {
            return Err(Error::precondition(
                "POLICY_IS_DEFAULT",
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
