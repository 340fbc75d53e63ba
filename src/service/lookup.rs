//! Loaders that more than one request use case needs: a policy (latest or a given version),
//! whether a policy code may be given to an organization, customer or invoice, and the
//! request-id conflict. Loading a customer, an invoice or the organization is `core::lookup`
//! (the engine loads them too).

use crate::core::Caller;
use crate::domain::policy::{Policy, PolicyScope};
use crate::error::Error;
use crate::error::Reason;
use crate::storage::{Conn, Connection};
use std::collections::HashMap;

pub(crate) fn policy_not_found(code: &str) -> Error {
    Error::not_found(Reason::PolicyNotFound, format!("no policy `{code}`"))
}

pub(crate) fn policy_archived(code: &str) -> Error {
    Error::precondition(
        Reason::PolicyArchived,
        format!("policy `{code}` is archived"),
    )
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

/// A policy at `version`, or its latest version.
pub(crate) async fn load_policy_version<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    code: &str,
    version: Option<i32>,
) -> Result<Policy, Error> {
    let Some(version) = version else {
        return load_policy(conn, caller, code, false).await;
    };
    if let Some(policy) = conn
        .find_policy(caller.organization_id, code, Some(version), false)
        .await?
    {
        return Ok(policy);
    }
    let latest = load_policy(conn, caller, code, false).await?;
    Err(Error::not_found(
        Reason::PolicyVersionNotFound,
        format!(
            "policy `{code}` has no version {version} (latest: {})",
            latest.version
        ),
    ))
}

pub(crate) fn request_id_conflict(request_id: &str) -> Error {
    Error::already_exists(
        Reason::RequestIdConflict,
        format!("request_id `{request_id}` was already used for a different request"),
    )
}
