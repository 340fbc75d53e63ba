//! Customers: create, read, update, list, erase, and their overdue balance.

use super::paging::PageRequest;
use super::paging::fingerprint;
use crate::clock::new_id;
use crate::core::Caller;
use crate::core::Core;
use crate::core::CustomerRef;
use crate::core::lookup::{load_customer, load_live_customer};
use crate::domain::customer::Customer;
use crate::domain::customer::CustomerDetails;
use crate::domain::customer::CustomerField;
use crate::domain::event::EventType;
use crate::domain::event::NewEvent;
use crate::domain::overdue::OverdueBalance;
use crate::domain::profile::{CollectionsHistory, PaymentProfile, payment_profile};
use crate::domain::query::CustomerFilter;
use crate::error::Error;
use crate::error::Reason;
use crate::service::lookup::PolicyHolder;
use crate::service::lookup::check_assignable_policy;
use crate::service::lookup::request_id_conflict;
use chrono::DateTime;
use chrono::Utc;
use chrono_tz::Tz;
use std::sync::Arc;

/// Customers: create, read, update, list, erase, and their overdue balance.
#[derive(Clone)]
pub struct Customers {
    core: Arc<Core>,
}

impl Customers {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

const CREATE_OPERATION: &str = "CreateCustomer";

/// A customer's overdue balance at one instant.
#[derive(Debug, Clone)]
pub struct CustomerBalance {
    pub customer: Customer,
    pub balances: Vec<OverdueBalance>,
    pub as_of: DateTime<Utc>,
}

impl Customers {
    /// Creates a customer. With a `request_id`, a retry of the same request returns the
    /// customer created the first time.
    pub async fn create_customer(
        &self,
        caller: Caller,
        external_id: String,
        mut details: CustomerDetails,
        timezone: Option<Tz>,
        request_id: Option<String>,
    ) -> Result<Customer, Error> {
        let tx = self.core.store.begin().await?;
        let org = crate::core::lookup::load_organization(&tx, caller).await?;
        details.timezone = timezone.unwrap_or(org.settings.timezone);
        check_assignable_policy(
            &tx,
            caller,
            &details.policy_code,
            "",
            PolicyHolder::Customer,
        )
        .await?;
        let request_fingerprint = fingerprint(&(&external_id, &details));
        if let Some(request_id) = &request_id
            && let Some((stored, resource_id)) = tx
                .find_idempotency_key(caller.organization_id, CREATE_OPERATION, request_id)
                .await?
        {
            if stored != request_fingerprint {
                return Err(request_id_conflict(request_id));
            }
            return load_customer(&tx, caller, &CustomerRef::Id(resource_id)).await;
        }
        if tx
            .find_customer_by_external_id(caller.organization_id, &external_id)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(
                Reason::CustomerAlreadyExists,
                format!("a customer with external_id `{external_id}` already exists"),
            ));
        }
        let now = self.core.now();
        let customer = Customer {
            id: new_id(),
            organization_id: caller.organization_id,
            external_id,
            details,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        tx.insert_customer(&customer).await?;
        if let Some(request_id) = &request_id {
            tx.insert_idempotency_key(
                caller.organization_id,
                CREATE_OPERATION,
                request_id,
                &request_fingerprint,
                customer.id,
                now,
            )
            .await?;
        }
        tx.append_events(
            caller.organization_id,
            &[NewEvent::customer(
                EventType::CustomerCreated,
                &customer,
                vec![],
                now,
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(customer)
    }

    pub async fn get_customer(&self, caller: Caller, key: &CustomerRef) -> Result<Customer, Error> {
        load_customer(&self.core.store, caller, key).await
    }

    /// Changes the listed fields. A new time zone moves the overdue instant of the customer's
    /// open invoices.
    pub async fn update_customer(
        &self,
        caller: Caller,
        key: &CustomerRef,
        update: &CustomerDetails,
        fields: &[CustomerField],
    ) -> Result<Customer, Error> {
        let tx = self.core.store.begin().await?;
        let mut customer = load_live_customer(&tx, caller, key).await?;
        let policy_before = customer.details.policy_code.clone();
        let changed = customer.apply(update, fields);
        if changed.is_empty() {
            return Ok(customer);
        }
        if changed.contains(&CustomerField::PolicyCode) {
            check_assignable_policy(
                &tx,
                caller,
                &customer.details.policy_code,
                &policy_before,
                PolicyHolder::Customer,
            )
            .await?;
        }
        let now = self.core.now();
        customer.updated_at = now;
        tx.update_customer(&customer).await?;
        if changed.contains(&CustomerField::Timezone) {
            let mut invoices = tx.lock_open_invoices_of_customer(customer.id).await?;
            for invoice in &mut invoices {
                invoice.rezone(customer.details.timezone);
            }
            tx.save_invoices(&[], &invoices).await?;
        }
        let names = changed.iter().map(|f| f.name().to_owned()).collect();
        let mut events = vec![NewEvent::customer(
            EventType::CustomerUpdated,
            &customer,
            names,
            now,
        )];
        events.extend(
            self.core
                .customer_changed(
                    &tx,
                    &customer,
                    changed.contains(&CustomerField::PaymentMethod),
                )
                .await?,
        );
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok(customer)
    }

    /// A page of customers in creation order.
    pub async fn list_customers(
        &self,
        caller: Caller,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Customer>, String), Error> {
        let after = page.after_id(&(caller.organization_id, filter))?;
        let rows = self
            .core
            .store
            .list_customers(caller.organization_id, filter, after, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &(caller.organization_id, filter), |c| {
            c.id.to_string()
        }))
    }

    /// Erases the customer's personal data; invoices, payments and events stay. Deleting a
    /// deleted customer returns it unchanged.
    pub async fn delete_customer(
        &self,
        caller: Caller,
        key: &CustomerRef,
    ) -> Result<Customer, Error> {
        let tx = self.core.store.begin().await?;
        let found = load_customer(&tx, caller, key).await?;
        // Locked: a payment request being created for this customer finishes first, and is
        // then canceled below.
        let mut customer = tx
            .lock_customer(caller.organization_id, found.id)
            .await?
            .unwrap_or(found);
        if customer.is_deleted() {
            return Ok(customer);
        }
        let now = self.core.now();
        customer.erase(now);
        tx.update_customer(&customer).await?;
        let mut events = vec![NewEvent::customer(
            EventType::CustomerDeleted,
            &customer,
            vec![],
            now,
        )];
        events.extend(self.core.forget_notifications(&tx, &customer, now).await?);
        events.extend(
            self.core
                .cancel_payment_requests_of_customer(&tx, &customer, now)
                .await?,
        );
        events.extend(self.core.customer_changed(&tx, &customer, false).await?);
        tx.append_events(caller.organization_id, &events).await?;
        tx.commit().await?;
        Ok(customer)
    }

    /// The customer's overdue balance per currency, now.
    /// The customer with its payment behaviour over the organization's profile window.
    pub async fn customer_with_profile(
        &self,
        caller: Caller,
        key: &CustomerRef,
    ) -> Result<(Customer, PaymentProfile), Error> {
        let customer = load_customer(&self.core.store, caller, key).await?;
        let now = self.core.now();
        let window = crate::core::lookup::load_organization(&self.core.store, caller)
            .await?
            .settings
            .profile_window_days;
        let since = now - chrono::Duration::days(i64::from(window));
        let store = &self.core.store;
        let invoices = store
            .invoices_overdue_between(customer.id, since, now)
            .await?;
        let payments = store
            .payments_of_customer_between(customer.id, since, now)
            .await?;
        let mut profile =
            payment_profile(&invoices, &payments, customer.details.timezone, now, window);
        let counts = store
            .count_customer_events(customer.id, &CollectionsHistory::event_types(), since, now)
            .await?;
        profile.history = CollectionsHistory::from_counts(&counts);
        profile.overdue_now = store.overdue_balances(customer.id, now).await?;
        Ok((customer, profile))
    }

    pub async fn overdue_balance(
        &self,
        caller: Caller,
        key: &CustomerRef,
    ) -> Result<CustomerBalance, Error> {
        let customer = load_customer(&self.core.store, caller, key).await?;
        let as_of = self.core.now();
        let balances = self.core.store.overdue_balances(customer.id, as_of).await?;
        Ok(CustomerBalance {
            customer,
            balances,
            as_of,
        })
    }
}
