//! Payment requests and the invoices they cover.

use super::entity::{payment_request, payment_request_invoice as covered};
use super::{Conn, corrupt, db_error, db_error_or_duplicate, from_micros, to_micros};
use crate::domain::money::Currency;
use crate::domain::payment_request::{
    ChargeTarget, CoveredInvoice, Decline, PaymentRequest, PaymentRequestStatus,
};
use crate::domain::query::PaymentRequestFilter;
use crate::error::Error;
use crate::error::Reason;
use crate::storage::{Order, scoped};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

impl<C: ConnectionTrait> Conn<C> {
    /// Stores a new request and its invoices. An invoice already in another open request is
    /// refused by the database (a concurrent create won the race): ABORTED, retry.
    pub async fn insert_payment_request(&self, r: &PaymentRequest) -> Result<(), Error> {
        payment_request::Entity::insert(to_model(r).into_active_model())
            .exec_without_returning(&self.conn)
            .await
            .map_err(db_error)?;
        let links = r.invoices.iter().enumerate().map(|(i, inv)| {
            covered::Model {
                payment_request_id: r.id,
                invoice_id: inv.invoice_id,
                invoice_external_id: inv.external_id.clone(),
                position: i as i32,
                is_open: r.status.is_open(),
            }
            .into_active_model()
        });
        for chunk in links
            .collect::<Vec<_>>()
            .chunks(super::rows_per_statement(5))
        {
            covered::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&self.conn)
                .await
                .map_err(|e| {
                    match db_error_or_duplicate(e, Reason::AlreadyExists, String::new()) {
                        Error::AlreadyExists { .. } => Error::Aborted(
                            "an invoice of this request was put in another payment request \
                         concurrently; retry"
                                .into(),
                        ),
                        other => other,
                    }
                })?;
        }
        Ok(())
    }

    /// Saves a request's changed fields; a request that closed releases its invoices.
    pub async fn update_payment_request(&self, r: &PaymentRequest) -> Result<(), Error> {
        to_model(r)
            .into_active_model()
            .reset_all()
            .update(&self.conn)
            .await
            .map_err(db_error)?;
        if !r.status.is_open() {
            covered::Entity::update_many()
                .col_expr(covered::Column::IsOpen, Expr::value(false))
                .filter(covered::Column::PaymentRequestId.eq(r.id))
                .exec(&self.conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// A request of the organization; with `lock`, held until the transaction ends
    /// (PostgreSQL).
    pub async fn find_payment_request(
        &self,
        organization_id: Uuid,
        id: Uuid,
        lock: bool,
    ) -> Result<Option<PaymentRequest>, Error> {
        let mut query = payment_request::Entity::find_by_id(id)
            .filter(payment_request::Column::OrganizationId.eq(organization_id));
        query = self.for_update(query, lock);
        let Some(model) = query.one(&self.conn).await.map_err(db_error)? else {
            return Ok(None);
        };
        Ok(self.with_invoices(vec![model]).await?.pop())
    }

    /// The open requests that cover any of these invoices, locked for the rest of the
    /// transaction (PostgreSQL) in id order and read as they are once locked: a request read
    /// without its lock could have started a charge since, and overwriting it would lose that.
    pub async fn lock_open_payment_requests_covering(
        &self,
        organization_id: Uuid,
        invoice_ids: &[Uuid],
    ) -> Result<Vec<PaymentRequest>, Error> {
        let mut request_ids = Vec::new();
        for chunk in invoice_ids.chunks(super::rows_per_statement(1)) {
            let rows = covered::Entity::find()
                .filter(covered::Column::InvoiceId.is_in(chunk.iter().copied()))
                .filter(covered::Column::IsOpen.eq(true))
                .all(&self.conn)
                .await
                .map_err(db_error)?;
            request_ids.extend(rows.into_iter().map(|l| l.payment_request_id));
        }
        request_ids.sort();
        request_ids.dedup();
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = payment_request::Entity::find()
            .filter(payment_request::Column::OrganizationId.eq(organization_id))
            .filter(payment_request::Column::Id.is_in(request_ids))
            .order_by_asc(payment_request::Column::Id);
        let models = self
            .for_update(query, true)
            .all(&self.conn)
            .await
            .map_err(db_error)?;
        let mut requests = self.with_invoices(models).await?;
        // Closed by the transaction whose lock was waited for.
        requests.retain(|r| r.status.is_open());
        Ok(requests)
    }

    /// Requests newest first, before `before_id`.
    pub async fn list_payment_requests(
        &self,
        organization_id: Uuid,
        filter: &PaymentRequestFilter,
        before_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<PaymentRequest>, Error> {
        let mut query = scoped::<payment_request::Entity>(organization_id)?;
        if let Some(id) = filter.customer_id {
            query = query.filter(payment_request::Column::CustomerId.eq(id));
        }
        if let Some(status) = filter.status {
            query = query.filter(payment_request::Column::Status.eq(status.as_str()));
        }
        if let Some(code) = &filter.currency_code {
            query = query.filter(payment_request::Column::CurrencyCode.eq(code.as_str()));
        }
        let models = self
            .keyset_page(query, before_id, Order::NewestFirst, limit, Ok)
            .await?;
        self.with_invoices(models).await
    }

    /// Requests (of any organization) with work due at `now`, as (organization, request) ids,
    /// soonest first.
    pub async fn due_payment_requests(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        payment_request::Entity::find()
            .select_only()
            .column(payment_request::Column::OrganizationId)
            .column(payment_request::Column::Id)
            .filter(payment_request::Column::NextActionAt.lte(to_micros(now)))
            .order_by_asc(payment_request::Column::NextActionAt)
            .limit(limit)
            .into_tuple::<(Uuid, Uuid)>()
            .all(&self.conn)
            .await
            .map_err(db_error)
    }

    /// Claims a due request for the payment worker (see [`Conn::claim_due`]): a charge
    /// whose claim expires is made again with the same idempotency key.
    pub async fn claim_payment_request(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let claimed = self
            .claim_due::<payment_request::Entity>(
                payment_request::Column::Id,
                payment_request::Column::NextActionAt,
                &[id],
                now,
                lease_until,
            )
            .await?;
        Ok(!claimed.is_empty())
    }

    /// Attaches the covered invoices to request rows.
    async fn with_invoices(
        &self,
        models: Vec<payment_request::Model>,
    ) -> Result<Vec<PaymentRequest>, Error> {
        let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
        let mut links: HashMap<Uuid, Vec<covered::Model>> = HashMap::new();
        for chunk in ids.chunks(super::rows_per_statement(1)) {
            for link in covered::Entity::find()
                .filter(covered::Column::PaymentRequestId.is_in(chunk.iter().copied()))
                .all(&self.conn)
                .await
                .map_err(db_error)?
            {
                links.entry(link.payment_request_id).or_default().push(link);
            }
        }
        models
            .into_iter()
            .map(|m| {
                let mut covered = links.remove(&m.id).unwrap_or_default();
                covered.sort_by_key(|l| l.position);
                from_model(m, covered)
            })
            .collect()
    }
}

/// `purpose` of a dunning step's RETRY_PAYMENT request (charges only) and of any other.
const PURPOSE_RETRY: &str = "RETRY_PAYMENT";
const PURPOSE_REQUEST: &str = "REQUEST_PAYMENT";

fn to_model(r: &PaymentRequest) -> payment_request::Model {
    let decline = r.last_decline.clone().unwrap_or_default();
    payment_request::Model {
        id: r.id,
        organization_id: r.organization_id,
        customer_id: r.customer_id,
        customer_external_id: r.customer_external_id.clone(),
        currency_code: r.currency.code().to_owned(),
        amount_minor: r.amount_minor,
        status: r.status.as_str().to_owned(),
        payment_link: r.payment_link.clone(),
        superseded_by_id: r.superseded_by,
        last_decline_code: decline.code,
        last_decline_message: decline.message,
        last_decline_hard: decline.hard,
        attempt_count: r.attempt_count,
        provider_reference: r.provider_reference.clone(),
        charge_idempotency_key: r.charge_idempotency_key.clone(),
        charge_provider: r
            .charge_target
            .as_ref()
            .map(|t| t.provider.clone())
            .unwrap_or_default(),
        charge_url: r
            .charge_target
            .as_ref()
            .map(|t| t.url.clone())
            .unwrap_or_default(),
        charge_token: r
            .charge_target
            .as_ref()
            .map(|t| t.token.clone())
            .unwrap_or_default(),
        email_notification_id: r.email_notification_id,
        process_id: r.process_id,
        purpose: if r.charges_only {
            PURPOSE_RETRY
        } else {
            PURPOSE_REQUEST
        }
        .to_owned(),
        cancel_reason: r.cancel_reason.clone(),
        next_action_at: r.next_action_at.map(to_micros),
        created_at: to_micros(r.created_at),
        updated_at: to_micros(r.updated_at),
        settled_at: r.settled_at.map(to_micros),
    }
}

fn from_model(
    m: payment_request::Model,
    covered: Vec<covered::Model>,
) -> Result<PaymentRequest, Error> {
    let last_decline = (!m.last_decline_code.is_empty()).then_some(Decline {
        code: m.last_decline_code,
        message: m.last_decline_message,
        hard: m.last_decline_hard,
    });
    Ok(PaymentRequest {
        id: m.id,
        organization_id: m.organization_id,
        customer_id: m.customer_id,
        customer_external_id: m.customer_external_id,
        currency: Currency::from_code(&m.currency_code)
            .ok_or_else(|| corrupt("payment request currency", &m.currency_code))?,
        amount_minor: m.amount_minor,
        invoices: covered
            .into_iter()
            .map(|l| CoveredInvoice {
                invoice_id: l.invoice_id,
                external_id: l.invoice_external_id,
            })
            .collect(),
        status: PaymentRequestStatus::parse(&m.status)
            .ok_or_else(|| corrupt("payment request status", &m.status))?,
        payment_link: m.payment_link,
        superseded_by: m.superseded_by_id,
        last_decline,
        attempt_count: m.attempt_count,
        provider_reference: m.provider_reference,
        charge_idempotency_key: m.charge_idempotency_key,
        charge_target: (!m.charge_provider.is_empty()).then_some(ChargeTarget {
            provider: m.charge_provider,
            url: m.charge_url,
            token: m.charge_token,
        }),
        email_notification_id: m.email_notification_id,
        process_id: m.process_id,
        charges_only: m.purpose == PURPOSE_RETRY,
        cancel_reason: m.cancel_reason,
        next_action_at: m.next_action_at.map(from_micros),
        created_at: from_micros(m.created_at),
        updated_at: from_micros(m.updated_at),
        settled_at: m.settled_at.map(from_micros),
    })
}
