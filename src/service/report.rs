//! The collections report: figures per currency, policy version and step, computed by the
//! store's aggregate queries for a period of the organization's days.

use crate::core::Caller;
use crate::core::Core;
use crate::core::lookup::load_organization;
use crate::domain::money::Currency;
use crate::domain::report::{CollectionsReport, ReportPeriod, ReportQuery};
use crate::error::Error;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Arc;

/// The collections report.
#[derive(Clone)]
pub struct Report {
    core: Arc<Core>,
}

impl Report {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

/// What a caller asks the report for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRequest {
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    pub currency: Option<Currency>,
}

impl Report {
    /// The report as of now: the period's days are the organization's (its time zone), the
    /// snapshot is taken at the clock's now.
    pub async fn collections_report(
        &self,
        caller: Caller,
        request: ReportRequest,
    ) -> Result<CollectionsReport, Error> {
        let organization = load_organization(&self.core.store, caller).await?;
        let as_of = self.core.now();
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
        let mut report = self
            .core
            .store
            .collections_report(caller.organization_id, &query)
            .await?;
        self.name_steps(caller, &mut report).await?;
        Ok(report)
    }

    /// Names each step from its policy version: a step with payments attributed to it but
    /// no run in the period has no run to take its name from. One lookup per policy version.
    async fn name_steps(
        &self,
        caller: Caller,
        report: &mut CollectionsReport,
    ) -> Result<(), Error> {
        let mut names: HashMap<(String, i32), Vec<String>> = HashMap::new();
        for currency in &mut report.currencies {
            for policy in &mut currency.policies {
                let key = (policy.policy_code.clone(), policy.policy_version);
                if !names.contains_key(&key) {
                    let steps = self
                        .core
                        .store
                        .find_policy(caller.organization_id, &key.0, Some(key.1), false)
                        .await?
                        .map(|p| p.definition.steps.into_iter().map(|s| s.name).collect())
                        .unwrap_or_default();
                    names.insert(key.clone(), steps);
                }
                let steps = &names[&key];
                for step in &mut policy.steps {
                    if let Some(name) = usize::try_from(step.step_index)
                        .ok()
                        .and_then(|i| steps.get(i))
                    {
                        step.step_name.clone_from(name);
                    }
                }
            }
        }
        Ok(())
    }
}
