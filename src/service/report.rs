//! The collections report: figures per currency, policy version and step, computed by the
//! store's aggregate queries for a period of the organization's days.

use super::organizations::load_organization;
use super::{Caller, Services};
use crate::domain::money::Currency;
use crate::domain::report::{CollectionsReport, ReportPeriod, ReportQuery};
use crate::error::Error;
use chrono::NaiveDate;

/// What a caller asks the report for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRequest {
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    pub currency: Option<Currency>,
}

impl Services {
    /// The report as of now: the period's days are the organization's (its time zone), the
    /// snapshot is taken at the clock's now.
    pub async fn collections_report(
        &self,
        caller: Caller,
        request: ReportRequest,
    ) -> Result<CollectionsReport, Error> {
        let organization = load_organization(&self.store, caller).await?;
        let as_of = self.now();
        let period = ReportPeriod::new(
            request.from_date,
            request.to_date,
            organization.settings.timezone,
            as_of,
        )
        .map_err(|e| Error::field(e.field, e.message))?;
        let query = ReportQuery {
            period,
            as_of,
            currency: request.currency,
        };
        self.store
            .collections_report(caller.organization_id, &query)
            .await
    }
}
