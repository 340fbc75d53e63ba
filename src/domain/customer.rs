//! Customers: who owes money, how to reach them, and how they pay.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A stored payment method: provider name and the provider's opaque token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub provider: String,
    pub token: String,
}

/// The fields a caller sets on a customer (create, or every field of an update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDetails {
    pub name: String,
    pub email: String,
    pub cc_emails: Vec<String>,
    pub bcc_emails: Vec<String>,
    pub locale: String,
    pub timezone: Tz,
    pub sales_rep_email: String,
    pub payment_method: Option<PaymentMethod>,
    pub policy_code: String,
    pub dunning_excluded: bool,
    pub dunning_excluded_reason: String,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A customer of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub external_id: String,
    pub details: CustomerDetails,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set once the customer was deleted: personal data is erased, financial history kept.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A field of a customer that an update can change; names match the API's mask paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CustomerField {
    Name,
    Email,
    CcEmails,
    BccEmails,
    Locale,
    Timezone,
    SalesRepEmail,
    PaymentMethod,
    PolicyCode,
    DunningExcluded,
    DunningExcludedReason,
    Tags,
    Metadata,
}

impl CustomerField {
    pub const ALL: [CustomerField; 13] = [
        Self::Name,
        Self::Email,
        Self::CcEmails,
        Self::BccEmails,
        Self::Locale,
        Self::Timezone,
        Self::SalesRepEmail,
        Self::PaymentMethod,
        Self::PolicyCode,
        Self::DunningExcluded,
        Self::DunningExcludedReason,
        Self::Tags,
        Self::Metadata,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Email => "email",
            Self::CcEmails => "cc_emails",
            Self::BccEmails => "bcc_emails",
            Self::Locale => "locale",
            Self::Timezone => "timezone",
            Self::SalesRepEmail => "sales_rep_email",
            Self::PaymentMethod => "payment_method",
            Self::PolicyCode => "policy_code",
            Self::DunningExcluded => "dunning_excluded",
            Self::DunningExcludedReason => "dunning_excluded_reason",
            Self::Tags => "tags",
            Self::Metadata => "metadata",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl Customer {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Copies the listed fields from `update`, returning the ones whose value changed.
    pub fn apply(
        &mut self,
        update: &CustomerDetails,
        fields: &[CustomerField],
    ) -> Vec<CustomerField> {
        let mut changed = Vec::new();
        let d = &mut self.details;
        for &field in fields {
            let did_change = match field {
                CustomerField::Name => replace(&mut d.name, &update.name),
                CustomerField::Email => replace(&mut d.email, &update.email),
                CustomerField::CcEmails => replace(&mut d.cc_emails, &update.cc_emails),
                CustomerField::BccEmails => replace(&mut d.bcc_emails, &update.bcc_emails),
                CustomerField::Locale => replace(&mut d.locale, &update.locale),
                CustomerField::Timezone => replace(&mut d.timezone, &update.timezone),
                CustomerField::SalesRepEmail => {
                    replace(&mut d.sales_rep_email, &update.sales_rep_email)
                }
                CustomerField::PaymentMethod => {
                    replace(&mut d.payment_method, &update.payment_method)
                }
                CustomerField::PolicyCode => replace(&mut d.policy_code, &update.policy_code),
                CustomerField::DunningExcluded => {
                    replace(&mut d.dunning_excluded, &update.dunning_excluded)
                }
                CustomerField::DunningExcludedReason => replace(
                    &mut d.dunning_excluded_reason,
                    &update.dunning_excluded_reason,
                ),
                CustomerField::Tags => replace(&mut d.tags, &update.tags),
                CustomerField::Metadata => replace(&mut d.metadata, &update.metadata),
            };
            if did_change && !changed.contains(&field) {
                changed.push(field);
            }
        }
        changed
    }

    /// Erases personal data (a deletion request) while keeping the id and external id that the
    /// financial history refers to.
    pub fn erase(&mut self, now: DateTime<Utc>) {
        let d = &mut self.details;
        d.name.clear();
        d.email.clear();
        d.cc_emails.clear();
        d.bcc_emails.clear();
        d.sales_rep_email.clear();
        d.payment_method = None;
        d.tags.clear();
        d.metadata.clear();
        d.dunning_excluded = true;
        d.dunning_excluded_reason = "customer deleted".into();
        self.deleted_at = Some(now);
        self.updated_at = now;
    }
}

fn replace<T: PartialEq + Clone>(slot: &mut T, value: &T) -> bool {
    if slot == value {
        false
    } else {
        *slot = value.clone();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Customer {
        let now = DateTime::UNIX_EPOCH;
        Customer {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            external_id: "cus_1".into(),
            details: CustomerDetails {
                name: "Ada".into(),
                email: "ada@example.com".into(),
                cc_emails: vec!["cc@example.com".into()],
                bcc_emails: vec![],
                locale: "en".into(),
                timezone: chrono_tz::UTC,
                sales_rep_email: "rep@example.com".into(),
                payment_method: Some(PaymentMethod {
                    provider: "sandbox".into(),
                    token: "tok_success".into(),
                }),
                policy_code: String::new(),
                dunning_excluded: false,
                dunning_excluded_reason: String::new(),
                tags: vec!["vip".into()],
                metadata: BTreeMap::from([("k".into(), "v".into())]),
            },
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    #[test]
    fn apply_reports_only_changed_fields() {
        let mut c = customer();
        let mut update = c.details.clone();
        update.email = "new@example.com".into();
        update.name = "Ignored".into();
        let changed = c.apply(&update, &[CustomerField::Email, CustomerField::Locale]);
        assert_eq!(changed, vec![CustomerField::Email]);
        assert_eq!(c.details.email, "new@example.com");
        assert_eq!(
            c.details.name, "Ada",
            "fields outside the mask are untouched"
        );
    }

    #[test]
    fn erase_removes_personal_data_but_keeps_identity() {
        let mut c = customer();
        c.erase(DateTime::UNIX_EPOCH);
        assert!(c.is_deleted());
        assert_eq!(c.external_id, "cus_1");
        assert!(c.details.email.is_empty() && c.details.name.is_empty());
        assert!(c.details.payment_method.is_none());
        assert!(c.details.metadata.is_empty());
    }

    #[test]
    fn field_names_round_trip() {
        for f in CustomerField::ALL {
            assert_eq!(CustomerField::from_name(f.name()), Some(f));
        }
        assert_eq!(CustomerField::from_name("id"), None);
    }
}
