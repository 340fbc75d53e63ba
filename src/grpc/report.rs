//! GetCollectionsReport: request checks and the report's conversion to the wire.

use super::convert::timestamp;
use super::processes::state_to_proto;
use super::{Api, authenticate};
use crate::domain::money::Currency;
use crate::domain::report::{CollectionsReport, CurrencyReport, PolicyReport, StepReport};
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::service::report::ReportRequest;
use tonic::{Request, Response, Status};

pub async fn get(
    api: &Api,
    request: Request<proto::GetCollectionsReportRequest>,
) -> Result<Response<proto::GetCollectionsReportResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let mut v = Violations::new();
    let date = |field: &str, text: &str, v: &mut Violations| {
        if text.is_empty() {
            None
        } else {
            v.check(field, validation::date(text))
        }
    };
    let from_date = date("from_date", &req.from_date, &mut v);
    let to_date = date("to_date", &req.to_date, &mut v);
    let currency = if req.currency_code.is_empty() {
        None
    } else {
        let found = Currency::from_code(&req.currency_code);
        if found.is_none() {
            v.add(
                "currency_code",
                format!(
                    "`{}` is not an ISO 4217 currency code such as EUR",
                    req.currency_code
                ),
            );
        }
        found
    };
    v.finish().map_err(Error::from)?;
    let report = api
        .services
        .report
        .collections_report(
            caller,
            ReportRequest {
                from_date,
                to_date,
                currency,
            },
        )
        .await?;
    Ok(Response::new(report_to_proto(&report)))
}

fn report_to_proto(r: &CollectionsReport) -> proto::GetCollectionsReportResponse {
    proto::GetCollectionsReportResponse {
        from_date: r.period.from_date.to_string(),
        to_date: r.period.to_date.to_string(),
        as_of_time: timestamp(r.as_of),
        currencies: r.currencies.iter().map(currency_to_proto).collect(),
    }
}

fn currency_to_proto(c: &CurrencyReport) -> proto::CurrencyCollectionsReport {
    let money = |minor: i64| c.currency.format(minor);
    proto::CurrencyCollectionsReport {
        currency_code: c.currency.code().to_owned(),
        overdue_amount: money(c.overdue_minor),
        overdue_invoice_count: c.overdue_invoice_count as i32,
        overdue_customer_count: c.overdue_customer_count as i32,
        aging_buckets: c
            .aging
            .iter()
            .map(|a| proto::AgingBucket {
                label: a.range.label.to_owned(),
                min_days_overdue: a.range.min_days as i32,
                max_days_overdue: a.range.max_days.unwrap_or(0) as i32,
                amount: money(a.amount_minor),
                invoice_count: a.invoice_count as i32,
            })
            .collect(),
        recovered_amount: money(c.recovered_minor),
        recovered_invoice_count: c.recovered_invoice_count as i32,
        fees_booked_amount: money(c.fees_minor),
        interest_booked_amount: money(c.interest_minor),
        written_off_amount: money(c.written_off_minor),
        processes_by_state: c
            .processes_by_state
            .iter()
            .map(|&(state, count)| proto::ProcessStateCount {
                state: state_to_proto(state) as i32,
                count: count as i32,
            })
            .collect(),
        policies: c
            .policies
            .iter()
            .map(|p| policy_to_proto(c.currency, p))
            .collect(),
    }
}

fn policy_to_proto(currency: Currency, p: &PolicyReport) -> proto::PolicyCollectionsReport {
    let money = |minor: i64| currency.format(minor);
    proto::PolicyCollectionsReport {
        policy_code: p.policy_code.clone(),
        policy_version: p.policy_version,
        processes_started: p.started as i32,
        processes_resolved: p.resolved as i32,
        processes_exhausted: p.exhausted as i32,
        processes_escalated: p.escalated as i32,
        processes_cancelled: p.cancelled as i32,
        recovered_amount: money(p.recovered_minor),
        recovered_before_first_step_amount: money(p.recovered_before_first_step_minor),
        cohort_recovered_amount: money(p.cohort_recovered_minor),
        cohort_outstanding_amount: money(p.cohort_outstanding_minor),
        recovery_rate: p.recovery_rate().map(|r| r.to_string()).unwrap_or_default(),
        median_days_to_pay: p
            .median_days_rounded()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        paid_invoice_count: p.paid_invoice_count as i32,
        fees_booked_amount: money(p.fees_minor),
        interest_booked_amount: money(p.interest_minor),
        written_off_amount: money(p.written_off_minor),
        steps: p.steps.iter().map(|s| step_to_proto(currency, s)).collect(),
    }
}

fn step_to_proto(currency: Currency, s: &StepReport) -> proto::StepCollectionsReport {
    proto::StepCollectionsReport {
        step_index: s.step_index,
        step_name: s.step_name.clone(),
        steps_run: s.steps_run as i32,
        recovered_amount: currency.format(s.recovered_minor),
        fees_booked_amount: currency.format(s.fees_minor),
        interest_booked_amount: currency.format(s.interest_minor),
    }
}
