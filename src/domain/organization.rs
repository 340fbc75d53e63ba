//! Organizations (tenants) and their settings.

use super::money::Currency;
use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The window in which emails may be sent, in the customer's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub enabled: bool,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self {
            enabled: true,
            start: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(20, 0, 0).expect("valid time"),
        }
    }
}

/// Who dunning emails come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderIdentity {
    pub from_name: String,
    pub from_email: String,
    pub reply_to_email: String,
}

/// How the organization's charges are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentProviderSettings {
    /// `sandbox` or `http`.
    pub provider: String,
    pub http_url: String,
    pub http_secret: String,
    /// Below these amounts (minor units per currency) a charge is not attempted.
    pub minimum_charge_minor: BTreeMap<Currency, i64>,
}

impl Default for PaymentProviderSettings {
    fn default() -> Self {
        Self {
            provider: "sandbox".into(),
            http_url: String::new(),
            http_secret: String::new(),
            minimum_charge_minor: BTreeMap::new(),
        }
    }
}

/// The organization's settings that callers may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSettings {
    pub name: String,
    pub timezone: Tz,
    pub default_policy_code: String,
    pub sender: SenderIdentity,
    pub payment_link_template: String,
    pub quiet_hours: QuietHours,
    pub payment_provider: PaymentProviderSettings,
    /// Days a customer's payment profile looks back (1 to 3,660).
    pub profile_window_days: u32,
}

/// The longest payment-profile window an organization may choose (ten years).
pub const MAX_PROFILE_WINDOW_DAYS: u32 = 3_660;

impl OrganizationSettings {
    /// Settings of a new organization.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            timezone: chrono_tz::UTC,
            default_policy_code: String::new(),
            sender: SenderIdentity {
                from_name: name.to_owned(),
                from_email: "billing@example.com".into(),
                reply_to_email: String::new(),
            },
            payment_link_template: "https://pay.example.com/r/{payment_request_id}".into(),
            quiet_hours: QuietHours::default(),
            payment_provider: PaymentProviderSettings::default(),
            profile_window_days: crate::domain::profile::DEFAULT_WINDOW_DAYS,
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub settings: OrganizationSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A field of the organization that UpdateOrganization can change (mask paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationField {
    Name,
    Timezone,
    DefaultPolicyCode,
    SenderFromName,
    SenderFromEmail,
    SenderReplyToEmail,
    PaymentLinkTemplate,
    QuietHours,
    PaymentProvider,
    ProfileWindowDays,
}

impl OrganizationField {
    /// Resolves a mask path; `sender` stands for all three sender fields.
    pub fn from_path(path: &str) -> Option<Vec<Self>> {
        use OrganizationField::*;
        Some(match path {
            "name" => vec![Name],
            "timezone" => vec![Timezone],
            "default_policy_code" => vec![DefaultPolicyCode],
            "sender" => vec![SenderFromName, SenderFromEmail, SenderReplyToEmail],
            "sender.from_name" => vec![SenderFromName],
            "sender.from_email" => vec![SenderFromEmail],
            "sender.reply_to_email" => vec![SenderReplyToEmail],
            "payment_link_template" => vec![PaymentLinkTemplate],
            "quiet_hours" => vec![QuietHours],
            "payment_provider" => vec![PaymentProvider],
            "profile_window_days" => vec![ProfileWindowDays],
            _ => return None,
        })
    }
}

impl OrganizationSettings {
    /// Copies the listed fields from `update`. An empty HTTP secret keeps the stored one, so a
    /// caller can change the URL without resending the secret.
    pub fn apply(&mut self, update: &OrganizationSettings, fields: &[OrganizationField]) {
        for field in fields {
            match field {
                OrganizationField::Name => self.name = update.name.clone(),
                OrganizationField::Timezone => self.timezone = update.timezone,
                OrganizationField::DefaultPolicyCode => {
                    self.default_policy_code = update.default_policy_code.clone()
                }
                OrganizationField::SenderFromName => {
                    self.sender.from_name = update.sender.from_name.clone()
                }
                OrganizationField::SenderFromEmail => {
                    self.sender.from_email = update.sender.from_email.clone()
                }
                OrganizationField::SenderReplyToEmail => {
                    self.sender.reply_to_email = update.sender.reply_to_email.clone()
                }
                OrganizationField::PaymentLinkTemplate => {
                    self.payment_link_template = update.payment_link_template.clone()
                }
                OrganizationField::QuietHours => self.quiet_hours = update.quiet_hours,
                OrganizationField::ProfileWindowDays => {
                    self.profile_window_days = update.profile_window_days
                }
                OrganizationField::PaymentProvider => {
                    let secret = if update.payment_provider.http_secret.is_empty() {
                        self.payment_provider.http_secret.clone()
                    } else {
                        update.payment_provider.http_secret.clone()
                    };
                    self.payment_provider = update.payment_provider.clone();
                    self.payment_provider.http_secret = secret;
                }
            }
        }
    }
}

/// Checks a payment link template: a URL customers may be sent to (the outbound rule, with a
/// payment request id in place) containing `{payment_request_id}`.
pub fn validate_payment_link_template(
    template: &str,
    targets: crate::domain::target::TargetPolicy,
) -> Result<(), String> {
    if !template.contains("{payment_request_id}") {
        return Err("must contain the placeholder {payment_request_id}".into());
    }
    let example = template.replace("{payment_request_id}", &uuid::Uuid::nil().to_string());
    targets.check_url(&example).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secret_keeps_stored_secret() {
        let mut current = OrganizationSettings::new("acme");
        current.payment_provider.http_secret = "s3cret".into();
        let mut update = current.clone();
        update.payment_provider.http_url = "https://pay.internal/charge".into();
        update.payment_provider.http_secret.clear();
        current.apply(&update, &[OrganizationField::PaymentProvider]);
        assert_eq!(current.payment_provider.http_secret, "s3cret");
        assert_eq!(
            current.payment_provider.http_url,
            "https://pay.internal/charge"
        );
    }

    #[test]
    fn link_template_rules() {
        assert!(
            validate_payment_link_template(
                "https://pay.example.com/r/{payment_request_id}",
                Default::default()
            )
            .is_ok()
        );
        let strict = Default::default();
        assert!(validate_payment_link_template("ftp://x/{payment_request_id}", strict).is_err());
        assert!(validate_payment_link_template("https://pay.example.com/r/", strict).is_err());
        assert!(
            validate_payment_link_template("https://169.254.169.254/{payment_request_id}", strict)
                .is_err()
        );
    }

    #[test]
    fn sender_path_expands() {
        assert_eq!(OrganizationField::from_path("sender").unwrap().len(), 3);
        assert!(OrganizationField::from_path("id").is_none());
    }
}
