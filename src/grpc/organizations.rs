//! OrganizationService handlers.

use super::convert::{self, timestamp};
use super::{Api, authenticate};
use crate::domain::money::Currency;
use crate::domain::organization::MAX_PROFILE_WINDOW_DAYS;
use crate::domain::organization::{
    Organization, OrganizationField, OrganizationSettings, QuietHours,
    validate_payment_link_template,
};
use crate::domain::target::TargetPolicy;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use chrono::NaiveTime;
use tonic::{Request, Response, Status};

fn organization_to_proto(org: Organization) -> proto::Organization {
    let s = org.settings;
    let p = s.payment_provider;
    proto::Organization {
        id: org.id.to_string(),
        name: s.name,
        timezone: s.timezone.name().to_owned(),
        default_policy_code: s.default_policy_code,
        sender: Some(proto::SenderIdentity {
            from_name: s.sender.from_name,
            from_email: s.sender.from_email,
            reply_to_email: s.sender.reply_to_email,
        }),
        payment_link_template: s.payment_link_template,
        profile_window_days: s.profile_window_days,
        quiet_hours: Some(proto::QuietHours {
            enabled: s.quiet_hours.enabled,
            start_time: s.quiet_hours.start.format("%H:%M").to_string(),
            end_time: s.quiet_hours.end.format("%H:%M").to_string(),
        }),
        payment_provider: Some(proto::PaymentProviderSettings {
            provider: p.provider,
            http_url: p.http_url,
            // The secret is write-only.
            http_secret: String::new(),
            http_secret_set: !p.http_secret.is_empty(),
            minimum_charge_amounts: p
                .minimum_charge_minor
                .iter()
                .map(|(c, minor)| (c.code().to_owned(), c.format(*minor)))
                .collect(),
        }),
        create_time: timestamp(org.created_at),
        update_time: timestamp(org.updated_at),
    }
}

fn clock_time(field: &str, text: &str, v: &mut Violations) -> Option<NaiveTime> {
    let parsed = NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .filter(|_| text.len() == 5);
    if parsed.is_none() {
        v.add(field, format!("`{text}` is not a time written HH:MM"));
    }
    parsed
}

/// The settings named by `fields`, validated, on top of the current ones.
fn settings_update(
    org: &proto::Organization,
    fields: &[OrganizationField],
    current: &OrganizationSettings,
    targets: TargetPolicy,
) -> Result<OrganizationSettings, Error> {
    let mut v = Violations::new();
    let mut s = current.clone();
    let sender = org.sender.clone().unwrap_or_default();
    for field in fields {
        match field {
            OrganizationField::Name => {
                s.name = v
                    .check("organization.name", validation::required_text(&org.name))
                    .unwrap_or_default()
            }
            OrganizationField::Timezone => {
                if let Some(tz) =
                    v.check("organization.timezone", validation::timezone(&org.timezone))
                {
                    s.timezone = tz;
                }
            }
            OrganizationField::DefaultPolicyCode => {
                s.default_policy_code = if org.default_policy_code.is_empty() {
                    String::new()
                } else {
                    v.check(
                        "organization.default_policy_code",
                        validation::external_id(&org.default_policy_code),
                    )
                    .unwrap_or_default()
                }
            }
            OrganizationField::SenderFromName => {
                s.sender.from_name = v
                    .check(
                        "organization.sender.from_name",
                        validation::text(&sender.from_name),
                    )
                    .unwrap_or_default()
            }
            OrganizationField::SenderFromEmail => {
                s.sender.from_email = v
                    .check(
                        "organization.sender.from_email",
                        validation::email(&sender.from_email),
                    )
                    .unwrap_or_default()
            }
            OrganizationField::SenderReplyToEmail => {
                s.sender.reply_to_email = v
                    .check(
                        "organization.sender.reply_to_email",
                        validation::optional_email(&sender.reply_to_email),
                    )
                    .unwrap_or_default()
            }
            OrganizationField::PaymentLinkTemplate => {
                v.check(
                    "organization.payment_link_template",
                    validate_payment_link_template(&org.payment_link_template, targets),
                );
                s.payment_link_template = org.payment_link_template.clone();
            }
            OrganizationField::ProfileWindowDays => {
                if (1..=MAX_PROFILE_WINDOW_DAYS).contains(&org.profile_window_days) {
                    s.profile_window_days = org.profile_window_days;
                } else {
                    v.add(
                        "organization.profile_window_days",
                        format!("must be 1 to {MAX_PROFILE_WINDOW_DAYS} days"),
                    );
                }
            }
            OrganizationField::QuietHours => {
                let q = org.quiet_hours.clone().unwrap_or_default();
                // A time left out keeps the current one: {"enabled": false} alone turns the
                // window off.
                let start = if q.start_time.is_empty() {
                    Some(current.quiet_hours.start)
                } else {
                    clock_time("organization.quiet_hours.start_time", &q.start_time, &mut v)
                };
                let end = if q.end_time.is_empty() {
                    Some(current.quiet_hours.end)
                } else {
                    clock_time("organization.quiet_hours.end_time", &q.end_time, &mut v)
                };
                if let (Some(start), Some(end)) = (start, end) {
                    if start >= end {
                        v.add(
                            "organization.quiet_hours.end_time",
                            "must be after start_time",
                        );
                    }
                    s.quiet_hours = QuietHours {
                        enabled: q.enabled,
                        start,
                        end,
                    };
                }
            }
            OrganizationField::PaymentProvider => {
                let p = org.payment_provider.clone().unwrap_or_default();
                let prefix = "organization.payment_provider";
                if !["sandbox", "http"].contains(&p.provider.as_str()) {
                    v.add(format!("{prefix}.provider"), "must be sandbox or http");
                }
                if p.provider == "http" && p.http_url.is_empty() {
                    v.add(
                        format!("{prefix}.http_url"),
                        "is required for the http provider",
                    );
                } else if !p.http_url.is_empty()
                    && let Err(e) = targets.check_url(&p.http_url)
                {
                    v.add(format!("{prefix}.http_url"), e);
                }
                if p.provider == "http"
                    && p.http_secret.is_empty()
                    && current.payment_provider.http_secret.is_empty()
                {
                    v.add(
                        format!("{prefix}.http_secret"),
                        "is required for the http provider",
                    );
                }
                let mut minimums = std::collections::BTreeMap::new();
                for (code, amount) in &p.minimum_charge_amounts {
                    let field = format!("{prefix}.minimum_charge_amounts[{code}]");
                    match Currency::from_code(code) {
                        None => v.add(field, format!("`{code}` is not an ISO 4217 currency code")),
                        Some(c) => match c.parse_amount(amount) {
                            Ok(minor) => {
                                minimums.insert(c, minor);
                            }
                            Err(e) => v.add(field, e.to_string()),
                        },
                    }
                }
                s.payment_provider = crate::domain::organization::PaymentProviderSettings {
                    provider: p.provider,
                    http_url: p.http_url,
                    http_secret: p.http_secret,
                    minimum_charge_minor: minimums,
                };
            }
        }
    }
    v.finish()?;
    Ok(s)
}

#[tonic::async_trait]
impl proto::organization_service_server::OrganizationService for Api {
    async fn set_template_override(
        &self,
        request: Request<proto::SetTemplateOverrideRequest>,
    ) -> Result<Response<proto::SetTemplateOverrideResponse>, Status> {
        super::notifications::set_template(self, request).await
    }

    async fn get_template_override(
        &self,
        request: Request<proto::GetTemplateOverrideRequest>,
    ) -> Result<Response<proto::GetTemplateOverrideResponse>, Status> {
        super::notifications::get_template(self, request).await
    }

    async fn list_template_overrides(
        &self,
        request: Request<proto::ListTemplateOverridesRequest>,
    ) -> Result<Response<proto::ListTemplateOverridesResponse>, Status> {
        super::notifications::list_templates(self, request).await
    }

    async fn delete_template_override(
        &self,
        request: Request<proto::DeleteTemplateOverrideRequest>,
    ) -> Result<Response<proto::DeleteTemplateOverrideResponse>, Status> {
        super::notifications::delete_template(self, request).await
    }

    async fn get_organization(
        &self,
        request: Request<proto::GetOrganizationRequest>,
    ) -> Result<Response<proto::GetOrganizationResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let org = self.services.organizations.get_organization(caller).await?;
        Ok(Response::new(proto::GetOrganizationResponse {
            organization: Some(organization_to_proto(org)),
        }))
    }

    async fn update_organization(
        &self,
        request: Request<proto::UpdateOrganizationRequest>,
    ) -> Result<Response<proto::UpdateOrganizationResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let org = req.organization.unwrap_or_default();
        let mut fields = Vec::new();
        for path in convert::mask_paths(req.update_mask.as_ref())? {
            let resolved = OrganizationField::from_path(&path).ok_or_else(|| {
                Error::field(
                    "update_mask",
                    format!("`{path}` is not an updatable organization field"),
                )
            })?;
            fields.extend(resolved);
        }
        let current = self.services.organizations.get_organization(caller).await?;
        let update = settings_update(&org, &fields, &current.settings, self.services.targets)?;
        let updated = self
            .services
            .organizations
            .update_organization(caller, &update, &fields)
            .await?;
        Ok(Response::new(proto::UpdateOrganizationResponse {
            organization: Some(organization_to_proto(updated)),
        }))
    }
}
