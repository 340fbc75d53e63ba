//! CustomerService handlers.

use super::convert::{self, timestamp};
use super::{Api, authenticate};
use crate::domain::customer::{Customer, CustomerDetails, CustomerField, PaymentMethod};
use crate::domain::profile::PaymentProfile;
use crate::domain::query::CustomerFilter;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::proto::customer_service_server::CustomerService;
use crate::service::customers::CustomerBalance;
use chrono_tz::Tz;
use tonic::{Request, Response, Status};

/// Payment providers a payment method may name.
const PROVIDERS: [&str; 2] = ["sandbox", "http"];

/// A wire customer as validated details plus the optional time zone (empty = organization's).
fn customer_details(c: &proto::Customer, v: &mut Violations) -> (CustomerDetails, Option<Tz>) {
    let name = v
        .check("name", validation::text(&c.name))
        .unwrap_or_default();
    let email = v
        .check("email", validation::optional_email(&c.email))
        .unwrap_or_default();
    let cc_emails = validation::email_list("cc_emails", &c.cc_emails, v);
    let bcc_emails = validation::email_list("bcc_emails", &c.bcc_emails, v);
    let locale = if c.locale.is_empty() {
        "en".to_owned()
    } else {
        v.check("locale", validation::locale(&c.locale))
            .unwrap_or_default()
    };
    let timezone = if c.timezone.is_empty() {
        None
    } else {
        v.check("timezone", validation::timezone(&c.timezone))
    };
    let sales_rep_email = v
        .check(
            "sales_rep_email",
            validation::optional_email(&c.sales_rep_email),
        )
        .unwrap_or_default();
    let payment_method = c.payment_method.as_ref().map(|pm| {
        if !PROVIDERS.contains(&pm.provider.as_str()) {
            v.add(
                "payment_method.provider",
                format!("must be one of {}", PROVIDERS.join(", ")),
            );
        }
        if pm.token.is_empty() || pm.token.len() > 512 || pm.token.chars().any(char::is_control) {
            v.add(
                "payment_method.token",
                "is required, at most 512 characters",
            );
        }
        PaymentMethod {
            provider: pm.provider.clone(),
            token: pm.token.clone(),
        }
    });
    let policy_code = if c.policy_code.is_empty() {
        String::new()
    } else {
        v.check("policy_code", validation::external_id(&c.policy_code))
            .unwrap_or_default()
    };
    let reason = v
        .check(
            "dunning_excluded_reason",
            validation::text(&c.dunning_excluded_reason),
        )
        .unwrap_or_default();
    let tags = validation::tags("tags", &c.tags, v);
    validation::metadata("metadata", c.metadata.iter(), v);
    let details = CustomerDetails {
        name,
        email,
        cc_emails,
        bcc_emails,
        locale,
        timezone: timezone.unwrap_or(chrono_tz::UTC),
        sales_rep_email,
        payment_method,
        policy_code,
        dunning_excluded: c.dunning_excluded,
        dunning_excluded_reason: reason,
        tags,
        metadata: c
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    (details, timezone)
}

pub fn customer_to_proto(c: Customer) -> proto::Customer {
    let d = c.details;
    proto::Customer {
        id: c.id.to_string(),
        external_id: c.external_id,
        name: d.name,
        email: d.email,
        cc_emails: d.cc_emails,
        bcc_emails: d.bcc_emails,
        locale: d.locale,
        timezone: d.timezone.name().to_owned(),
        sales_rep_email: d.sales_rep_email,
        payment_method: d.payment_method.map(|p| proto::PaymentMethod {
            provider: p.provider,
            token: p.token,
        }),
        policy_code: d.policy_code,
        dunning_excluded: d.dunning_excluded,
        dunning_excluded_reason: d.dunning_excluded_reason,
        tags: d.tags,
        metadata: d.metadata.into_iter().collect(),
        deleted: c.deleted_at.is_some(),
        create_time: timestamp(c.created_at),
        update_time: timestamp(c.updated_at),
        delete_time: convert::optional_timestamp(c.deleted_at),
    }
}

fn balance_to_proto(b: CustomerBalance) -> proto::GetOverdueBalanceResponse {
    proto::GetOverdueBalanceResponse {
        customer_id: b.customer.id.to_string(),
        customer_external_id: b.customer.external_id,
        balances: b
            .balances
            .into_iter()
            .map(|o| proto::OverdueBalance {
                currency_code: o.currency.code().to_owned(),
                amount_due: o.currency.format(o.amount_due_minor),
                invoice_count: o.invoice_count as i32,
                oldest_due_date: o.oldest_due_date.to_string(),
            })
            .collect(),
        as_of_time: timestamp(b.as_of),
    }
}

/// Keeps the violations of fields an update touches: the others are not being changed.
fn violations_within(
    violations: Violations,
    prefix: &str,
    fields: &[CustomerField],
) -> Result<(), Error> {
    let kept: Vec<_> = violations
        .into_vec()
        .into_iter()
        .filter(|v| {
            fields.iter().any(|f| {
                let field = v.field.as_str();
                field == f.name()
                    || field.starts_with(&format!("{}.", f.name()))
                    || field.starts_with(&format!("{}[", f.name()))
            })
        })
        .map(|mut v| {
            v.field = format!("{prefix}{}", v.field);
            v
        })
        .collect();
    if kept.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(kept))
    }
}

#[tonic::async_trait]
impl CustomerService for Api {
    async fn create_customer(
        &self,
        request: Request<proto::CreateCustomerRequest>,
    ) -> Result<Response<proto::CreateCustomerResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let Some(customer) = req.customer else {
            return Err(Error::field("customer", "is required").into());
        };
        let mut v = Violations::new();
        let external_id = v.check(
            "external_id",
            validation::external_id(&customer.external_id),
        );
        let (details, timezone) = customer_details(&customer, &mut v);
        let mut all = Violations::new();
        all.extend_prefixed("customer", v);
        let request_id = convert::request_id(&req.request_id, &mut all);
        all.finish().map_err(Error::from)?;
        let created = self
            .services
            .customers
            .create_customer(
                caller,
                external_id.unwrap_or_default(),
                details,
                timezone,
                request_id,
            )
            .await?;
        Ok(Response::new(proto::CreateCustomerResponse {
            customer: Some(customer_to_proto(created)),
        }))
    }

    async fn get_customer(
        &self,
        request: Request<proto::GetCustomerRequest>,
    ) -> Result<Response<proto::GetCustomerResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let key = convert::customer_key(request.get_ref().customer.as_ref())?;
        let (customer, profile) = self
            .services
            .customers
            .customer_with_profile(caller, &key)
            .await?;
        Ok(Response::new(proto::GetCustomerResponse {
            customer: Some(customer_to_proto(customer)),
            payment_profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn update_customer(
        &self,
        request: Request<proto::UpdateCustomerRequest>,
    ) -> Result<Response<proto::UpdateCustomerResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let Some(customer) = req.customer else {
            return Err(Error::field("customer", "is required").into());
        };
        let key =
            convert::customer_ref(Some(&customer.id), Some(&customer.external_id), "customer.")?;
        let mut fields = Vec::new();
        for path in convert::mask_paths(req.update_mask.as_ref())? {
            match CustomerField::from_name(&path) {
                Some(field) => fields.push(field),
                None => {
                    return Err(Error::field(
                        "update_mask",
                        format!("`{path}` is not an updatable customer field"),
                    )
                    .into());
                }
            }
        }
        let mut v = Violations::new();
        let (details, timezone) = customer_details(&customer, &mut v);
        if fields.contains(&CustomerField::Timezone)
            && timezone.is_none()
            && customer.timezone.is_empty()
        {
            v.add(
                "timezone",
                "is required when updated (IANA name such as Europe/Berlin)",
            );
        }
        violations_within(v, "customer.", &fields)?;
        let updated = self
            .services
            .customers
            .update_customer(caller, &key, &details, &fields)
            .await?;
        Ok(Response::new(proto::UpdateCustomerResponse {
            customer: Some(customer_to_proto(updated)),
        }))
    }

    async fn list_customers(
        &self,
        request: Request<proto::ListCustomersRequest>,
    ) -> Result<Response<proto::ListCustomersResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let req = request.into_inner();
        let page = convert::page(req.page_size, req.page_token)?;
        let mut v = Violations::new();
        let email = (!req.email.is_empty())
            .then(|| v.check("email", validation::email(&req.email)))
            .flatten();
        if req.tag.len() > validation::MAX_METADATA_KEY_LEN || req.tag.chars().any(char::is_control)
        {
            v.add(
                "tag",
                format!(
                    "must be at most {} characters without control characters",
                    validation::MAX_METADATA_KEY_LEN
                ),
            );
        }
        v.finish().map_err(Error::from)?;
        let filter = CustomerFilter {
            email,
            tag: Some(req.tag).filter(|t| !t.is_empty()),
            include_deleted: req.include_deleted,
        };
        let (customers, next_page_token) = self
            .services
            .customers
            .list_customers(caller, &filter, &page)
            .await?;
        Ok(Response::new(proto::ListCustomersResponse {
            customers: customers.into_iter().map(customer_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<proto::DeleteCustomerRequest>,
    ) -> Result<Response<proto::DeleteCustomerResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let key = convert::customer_key(request.get_ref().customer.as_ref())?;
        let customer = self
            .services
            .customers
            .delete_customer(caller, &key)
            .await?;
        Ok(Response::new(proto::DeleteCustomerResponse {
            customer: Some(customer_to_proto(customer)),
        }))
    }

    async fn get_overdue_balance(
        &self,
        request: Request<proto::GetOverdueBalanceRequest>,
    ) -> Result<Response<proto::GetOverdueBalanceResponse>, Status> {
        let caller = authenticate(&self.services, &request).await?;
        let key = convert::customer_key(request.get_ref().customer.as_ref())?;
        let balance = self
            .services
            .customers
            .overdue_balance(caller, &key)
            .await?;
        Ok(Response::new(balance_to_proto(balance)))
    }
}

fn profile_to_proto(p: &PaymentProfile) -> proto::PaymentProfile {
    proto::PaymentProfile {
        since_time: convert::timestamp(p.since),
        as_of_time: convert::timestamp(p.as_of),
        overdue_invoices: p.overdue_invoices,
        paid_late_invoices: p.paid_late_invoices,
        paid_on_time_invoices: p.paid_on_time_invoices,
        average_days_late: p.average_days_late.normalize().to_string(),
        max_days_late: p.max_days_late,
        on_time_ratio: p
            .on_time_ratio
            .map(|r| r.normalize().to_string())
            .unwrap_or_default(),
        paid_amounts: p
            .paid_minor
            .iter()
            .map(|(currency, minor)| proto::CurrencyAmount {
                currency_code: currency.code().to_owned(),
                amount: currency.format(*minor),
            })
            .collect(),
        escalated_processes: p.history.escalated_processes,
        written_off_invoices: p.history.written_off_invoices,
        broken_promises: p.history.broken_promises,
        overdue_amounts: p
            .overdue_now
            .iter()
            .map(|b| proto::CurrencyAmount {
                currency_code: b.currency.code().to_owned(),
                amount: b.currency.format(b.amount_due_minor),
            })
            .collect(),
    }
}
