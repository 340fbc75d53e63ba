//! Conversions between wire values and domain values that every service shares. Input
//! conversions record problems as field violations instead of failing on the first one.

pub mod policy;

use crate::domain::money::Currency;
use crate::domain::template::TemplateKind;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::service::CustomerRef;
use crate::service::InvoiceRef;
use crate::service::paging::PageRequest;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use uuid::Uuid;

pub fn timestamp(t: DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

pub fn optional_timestamp(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.and_then(timestamp)
}

/// Seconds of protobuf's timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A wire timestamp as an instant, or a violation (outside protobuf's range included, which
/// other clients could not read back).
pub fn instant(field: &str, t: &Timestamp, violations: &mut Violations) -> Option<DateTime<Utc>> {
    let parsed = ((0..1_000_000_000).contains(&t.nanos) && TIMESTAMP_SECONDS.contains(&t.seconds))
        .then(|| DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .flatten();
    if parsed.is_none() {
        violations.add(
            field,
            "is not a valid timestamp (years 0001 to 9999, nanos 0 to 999,999,999)",
        );
    }
    parsed
}

/// A server id (UUID).
pub fn uuid(field: &str, value: &str) -> Result<Uuid, Error> {
    value
        .parse::<Uuid>()
        .map_err(|_| Error::field(field, format!("`{value}` is not an id (UUID)")))
}

/// An optional id: empty = none.
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, Error> {
    (!value.is_empty()).then(|| uuid(field, value)).transpose()
}

/// A create request's optional idempotency key (`request_id`): empty = none.
pub fn request_id(value: &str, violations: &mut Violations) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    violations.check("request_id", validation::external_id(value))
}

/// A currency code, or a violation.
pub fn currency(field: &str, code: &str, violations: &mut Violations) -> Option<Currency> {
    if code.is_empty() {
        violations.add(field, "is required (ISO 4217 code such as EUR)");
        return None;
    }
    let found = Currency::from_code(code);
    if found.is_none() {
        violations.add(
            field,
            format!("`{code}` is not an ISO 4217 currency code such as EUR"),
        );
    }
    found
}

/// An amount in `currency`, as minor units, or a violation.
pub fn amount(
    field: &str,
    text: &str,
    currency: Option<Currency>,
    violations: &mut Violations,
) -> Option<i64> {
    // Without a valid currency the scale is unknown; the currency field is already reported.
    let currency = currency?;
    match currency.parse_amount(text) {
        Ok(minor) => Some(minor),
        Err(e) => {
            violations.add(field, e.to_string());
            None
        }
    }
}

/// `page_size` and `page_token` of a list request.
pub fn page(page_size: i32, page_token: String) -> Result<PageRequest, Error> {
    if page_size < 0 {
        return Err(Error::field("page_size", "must not be negative"));
    }
    if page_token.len() > 1024 {
        return Err(Error::field("page_token", "is too long"));
    }
    Ok(PageRequest::new(page_size as u64, page_token))
}

/// A customer addressed by a `oneof { id, external_id }`.
pub fn customer_ref(
    id: Option<&str>,
    external_id: Option<&str>,
    field_prefix: &str,
) -> Result<CustomerRef, Error> {
    resource_ref(id, external_id, field_prefix).map(|key| match key {
        Key::Id(id) => CustomerRef::Id(id),
        Key::External(ext) => CustomerRef::ExternalId(ext),
    })
}

/// An invoice addressed by a `oneof { id, external_id }`.
pub fn invoice_ref(
    id: Option<&str>,
    external_id: Option<&str>,
    field_prefix: &str,
) -> Result<InvoiceRef, Error> {
    resource_ref(id, external_id, field_prefix).map(|key| match key {
        Key::Id(id) => InvoiceRef::Id(id),
        Key::External(ext) => InvoiceRef::ExternalId(ext),
    })
}

/// The optional customer filter of a list request (`customer_id` or `customer_external_id`).
pub fn customer_filter(id: &str, external_id: &str) -> Result<Option<CustomerRef>, Error> {
    if id.is_empty() && external_id.is_empty() {
        return Ok(None);
    }
    customer_ref(Some(id), Some(external_id), "customer_").map(Some)
}

enum Key {
    Id(Uuid),
    External(String),
}

fn resource_ref(id: Option<&str>, external_id: Option<&str>, prefix: &str) -> Result<Key, Error> {
    let name = |f: &str| format!("{prefix}{f}");
    match (
        id.filter(|s| !s.is_empty()),
        external_id.filter(|s| !s.is_empty()),
    ) {
        (Some(id), _) => uuid(&name("id"), id).map(Key::Id),
        (None, Some(ext)) => validation::external_id(ext)
            .map(Key::External)
            .map_err(|e| Error::field(name("external_id"), e)),
        (None, None) => Err(Error::field(
            name("external_id"),
            "either id or external_id is required",
        )),
    }
}

/// The paths of an update mask, or a violation if it is missing.
pub fn mask_paths(mask: Option<&prost_types::FieldMask>) -> Result<Vec<String>, Error> {
    match mask {
        Some(m) if !m.paths.is_empty() => Ok(m.paths.clone()),
        _ => Err(Error::field(
            "update_mask",
            "is required and must list the fields to change",
        )),
    }
}

/// A request's `oneof { id, external_id }` that addresses one resource.
pub trait OneofKey {
    fn parts(&self) -> (Option<&str>, Option<&str>);
}

macro_rules! oneof_key {
    ($($ty:ty => $id:ident, $ext:ident;)*) => {
        $(impl OneofKey for $ty {
            fn parts(&self) -> (Option<&str>, Option<&str>) {
                match self {
                    Self::$id(id) => (Some(id.as_str()), None),
                    Self::$ext(ext) => (None, Some(ext.as_str())),
                }
            }
        })*
    };
}

oneof_key! {
    crate::proto::get_customer_request::Customer => Id, ExternalId;
    crate::proto::delete_customer_request::Customer => Id, ExternalId;
    crate::proto::get_overdue_balance_request::Customer => Id, ExternalId;
    crate::proto::get_invoice_request::Invoice => Id, ExternalId;
    crate::proto::void_invoice_request::Invoice => Id, ExternalId;
    crate::proto::record_payment_request::Invoice => InvoiceId, InvoiceExternalId;
    crate::proto::list_payments_request::Invoice => InvoiceId, InvoiceExternalId;
    crate::proto::assign_policy_request::Customer => CustomerId, CustomerExternalId;
}

/// The customer a oneof addresses.
pub fn customer_key(key: Option<&impl OneofKey>) -> Result<CustomerRef, Error> {
    let (id, ext) = key.map(OneofKey::parts).unwrap_or_default();
    customer_ref(id, ext, "")
}

/// The invoice a oneof addresses; `prefix` names its fields (`invoice_` for RecordPayment).
pub fn invoice_key(key: Option<&impl OneofKey>, prefix: &str) -> Result<InvoiceRef, Error> {
    let (id, ext) = key.map(OneofKey::parts).unwrap_or_default();
    invoice_ref(id, ext, prefix)
}

pub fn kind_from_proto(field: &str, value: i32) -> Result<TemplateKind, Error> {
    use proto::TemplateKind as P;
    Ok(match P::try_from(value) {
        Ok(P::FriendlyReminder) => TemplateKind::FriendlyReminder,
        Ok(P::FirmReminder) => TemplateKind::FirmReminder,
        Ok(P::FinalNotice) => TemplateKind::FinalNotice,
        Ok(P::PreDueReminder) => TemplateKind::PreDueReminder,
        Ok(P::PaymentRequest) => TemplateKind::PaymentRequest,
        Ok(P::SalesNotification) => TemplateKind::SalesNotification,
        Ok(P::CollectionAgencyHandover) => TemplateKind::CollectionAgencyHandover,
        Ok(P::InstalmentReminder) => TemplateKind::InstalmentReminder,
        Ok(P::Unspecified) | Err(_) => {
            return Err(Error::field(
                field,
                "is required: one of the TEMPLATE_KIND_* values",
            ));
        }
    })
}

pub fn kind_to_proto(kind: &str) -> proto::TemplateKind {
    use proto::TemplateKind as P;
    match TemplateKind::parse(kind) {
        Some(TemplateKind::FriendlyReminder) => P::FriendlyReminder,
        Some(TemplateKind::FirmReminder) => P::FirmReminder,
        Some(TemplateKind::FinalNotice) => P::FinalNotice,
        Some(TemplateKind::PreDueReminder) => P::PreDueReminder,
        Some(TemplateKind::PaymentRequest) => P::PaymentRequest,
        Some(TemplateKind::SalesNotification) => P::SalesNotification,
        Some(TemplateKind::CollectionAgencyHandover) => P::CollectionAgencyHandover,
        Some(TemplateKind::InstalmentReminder) => P::InstalmentReminder,
        None => P::Unspecified,
    }
}
