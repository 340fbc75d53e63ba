//! Loading what a caller addresses, scoped to its organization, or answering NOT_FOUND.

use crate::core::Caller;
use crate::core::CustomerRef;
use crate::core::InvoiceRef;
use crate::domain::customer::Customer;
use crate::domain::invoice::Invoice;
use crate::domain::organization::Organization;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::Conn;
use crate::storage::Connection;
use crate::storage::InvoiceKey;

pub(crate) fn customer_not_found(key: &CustomerRef) -> Error {
    let shown = match key {
        CustomerRef::Id(id) => format!("id {id}"),
        CustomerRef::ExternalId(ext) => format!("external_id `{ext}`"),
    };
    Error::not_found(
        Reason::CustomerNotFound,
        format!("no customer with {shown}"),
    )
}

/// Loads a customer of the caller's organization or answers NOT_FOUND.
pub(crate) async fn load_customer<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    key: &CustomerRef,
) -> Result<Customer, Error> {
    let found = match key {
        CustomerRef::Id(id) => conn.find_customer(caller.organization_id, *id).await?,
        CustomerRef::ExternalId(ext) => {
            conn.find_customer_by_external_id(caller.organization_id, ext)
                .await?
        }
    };
    found.ok_or_else(|| customer_not_found(key))
}

pub(crate) fn invoice_not_found(key: &InvoiceRef) -> Error {
    let shown = match key {
        InvoiceRef::Id(id) => format!("id {id}"),
        InvoiceRef::ExternalId(ext) => format!("external_id `{ext}`"),
    };
    Error::not_found(Reason::InvoiceNotFound, format!("no invoice with {shown}"))
}

/// Loads an invoice of the caller's organization or answers NOT_FOUND; with `lock`, holds it
/// for the rest of the transaction.
pub(crate) async fn load_invoice<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    key: &InvoiceRef,
    lock: bool,
) -> Result<Invoice, Error> {
    let storage_key = match key {
        InvoiceRef::Id(id) => InvoiceKey::Id(*id),
        InvoiceRef::ExternalId(ext) => InvoiceKey::ExternalId(ext),
    };
    conn.find_invoice(caller.organization_id, storage_key, lock)
        .await?
        .ok_or_else(|| invoice_not_found(key))
}

/// The caller's organization (gone only if it was deleted under a live key).
pub(crate) async fn load_organization<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
) -> Result<Organization, Error> {
    conn.find_organization(caller.organization_id)
        .await?
        .ok_or_else(|| Error::not_found(Reason::OrganizationNotFound, "organization not found"))
}

/// FAILED_PRECONDITION `CUSTOMER_DELETED` for a customer whose personal data was erased: it
/// keeps its financial history but takes no new work.
pub(crate) fn check_not_deleted(customer: &Customer) -> Result<(), Error> {
    if customer.is_deleted() {
        return Err(Error::precondition(
            Reason::CustomerDeleted,
            format!("customer `{}` was deleted", customer.external_id),
        ));
    }
    Ok(())
}

/// A customer of the caller's organization that was not deleted (NOT_FOUND or
/// CUSTOMER_DELETED otherwise).
pub(crate) async fn load_live_customer<C: Connection>(
    conn: &Conn<C>,
    caller: Caller,
    key: &CustomerRef,
) -> Result<Customer, Error> {
    let customer = load_customer(conn, caller, key).await?;
    check_not_deleted(&customer)?;
    Ok(customer)
}
