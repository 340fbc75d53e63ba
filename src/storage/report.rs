//! The collections report's aggregate queries. Each statement groups by currency (and policy
//! version and step where it applies) inside the database and reads an indexed range: the
//! organization's open invoices, or rows whose time falls in the period (payments by
//! `paid_at`, processes by `started_at` / `ended_at`, step runs by `executed_at`, charges by
//! `booked_at`, report events by `occurred_at`; migration `m20261205_000001_report_indexes`).
//! What comes back is one row per group, never a row per invoice or payment.

use super::processes::SUPERSEDED_OUTCOMES;
use super::{Backend, Store, corrupt, db_error, to_micros};
use crate::domain::money::Currency;
use crate::domain::process::state::ProcessState;
use crate::domain::report::{
    AGING_RANGES, CollectionsReport, PolicyKey, ReportBuilder, ReportQuery, median_days,
};
use crate::error::Error;
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement, TransactionTrait, Value};
use uuid::Uuid;

/// The events the report counts; the partial index `ix_events_report` holds exactly these
/// (SQLite uses a partial index only when the query repeats its condition).
const REPORT_EVENTS: &str =
    "e.event_type IN ('invoice.written_off', 'process.exhausted', 'process.escalated')";

/// Set (for its transaction) before each statement of the report on PostgreSQL. The
/// statements are aggregates of a few hundred thousand rows at most, cheaper to run than
/// PostgreSQL's JIT compiler (which their cost estimates trigger) is to compile them: with JIT
/// the report took 30 % longer, half a second of one statement being compilation. And they
/// run at once, so they already use every core: parallel workers would only add their cost.
pub const POSTGRES_REPORT_SETTINGS: [&str; 2] = [
    "SET LOCAL jit = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
];

/// The parts of the report, one statement each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Open invoices: amount and count per aging range.
    Snapshot,
    /// Customers with overdue invoices.
    OverdueCustomers,
    /// Payments of the period on invoices overdue when paid.
    Payments,
    /// Invoices that became PAID in the period after they were overdue.
    PaidInvoices,
    /// Processes in an open state now.
    OpenProcesses,
    /// Processes that ended in the period.
    EndedProcesses,
    /// Processes started in the period.
    StartedProcesses,
    /// Processes started in the period: what was paid while they were open.
    CohortRecovered,
    /// Processes started in the period: what their invoices still owe.
    CohortOutstanding,
    /// Exhausted and escalated processes, written-off invoices (from the event log).
    Events,
    /// Fees and interest booked in the period, per policy step.
    Charges,
    /// Step runs executed in the period.
    StepRuns,
    /// Payments of the period while a process was open, per step they are attributed to.
    Recovered,
    /// Median days from process start to payment.
    Median,
}

const PARTS: [Part; 14] = [
    Part::Snapshot,
    Part::OverdueCustomers,
    Part::Payments,
    Part::PaidInvoices,
    Part::OpenProcesses,
    Part::EndedProcesses,
    Part::StartedProcesses,
    Part::CohortRecovered,
    Part::CohortOutstanding,
    Part::Events,
    Part::Charges,
    Part::StepRuns,
    Part::Recovered,
    Part::Median,
];

/// `:name` placeholders turned into the backend's positional ones (`$1` / `?1`), bound to
/// the named values; a name used twice is bound twice.
fn statement(backend: Backend, sql: &str, params: &[(&str, Value)]) -> Statement {
    let mut text = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find(':') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        match params.iter().find(|(name, _)| *name == &after[..len]) {
            Some((_, value)) if len > 0 => {
                values.push(value.clone());
                let marker = if backend == Backend::Postgres {
                    '$'
                } else {
                    '?'
                };
                text.push_str(&format!("{marker}{}", values.len()));
                rest = &after[len..];
            }
            _ => {
                text.push(':');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    let db = match backend {
        Backend::Postgres => DatabaseBackend::Postgres,
        Backend::Sqlite => DatabaseBackend::Sqlite,
    };
    Statement::from_sql_and_values(db, text, values)
}

/// The SQL of one part.
fn part_sql(backend: Backend, part: Part) -> String {
    let sum = |expr: &str| format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)");
    let currency = |col: &str| format!("(:currency = '' OR {col} = :currency)");
    // A run superseded by the catch-up rule did not execute.
    let executed_run = format!("sr.outcomes NOT LIKE '{SUPERSEDED_OUTCOMES}'");
    match part {
        // One row per (currency, aging range): the ranges are contiguous and ordered from
        // the newest overdue instant down, so the first lower bound passed names the range.
        Part::Snapshot => {
            let mut range = String::from("CAST(CASE");
            for (i, r) in AGING_RANGES.iter().enumerate() {
                match r.overdue_at_bounds(chrono::DateTime::UNIX_EPOCH).0 {
                    Some(_) => range.push_str(&format!(" WHEN overdue_at > :lower{i} THEN {i}")),
                    None => range.push_str(&format!(" ELSE {i}")),
                }
            }
            range.push_str(" END AS BIGINT)");
            format!(
                "SELECT currency_code, {range} AS aging_range, {} AS amount, CAST(COUNT(*) AS \
                 BIGINT) AS invoices FROM invoices WHERE organization_id = :org AND state = \
                 'OPEN' AND disputed = false AND amount_due_minor > 0 AND {} GROUP BY 1, 2",
                sum("amount_due_minor"),
                currency("currency_code")
            )
        }
        // Grouped by customer within a currency in the index's order: streamed, not hashed.
        Part::OverdueCustomers => format!(
            "SELECT currency_code, CAST(COUNT(*) AS BIGINT) AS customers FROM (SELECT \
             currency_code, customer_id FROM invoices WHERE organization_id = :org AND state = \
             'OPEN' AND disputed = false AND amount_due_minor > 0 AND overdue_at <= :as_of AND \
             {} GROUP BY currency_code, customer_id) AS overdue GROUP BY currency_code",
            currency("currency_code")
        ),
        // The payment keeps its invoice's overdue instant from when it was paid.
        Part::Payments => format!(
            "SELECT pay.currency_code, {} AS amount FROM payments pay WHERE pay.organization_id \
             = :org AND pay.paid_at >= :start AND pay.paid_at < :end AND pay.paid_at >= \
             pay.invoice_overdue_at AND {} GROUP BY pay.currency_code",
            sum("pay.amount_minor"),
            currency("pay.currency_code")
        ),
        Part::PaidInvoices => format!(
            "SELECT currency_code, CAST(COUNT(*) AS BIGINT) AS invoices FROM invoices WHERE \
             organization_id = :org AND state = 'PAID' AND paid_at >= :start AND paid_at < :end \
             AND paid_at >= overdue_at AND {} GROUP BY currency_code",
            currency("currency_code")
        ),
        Part::OpenProcesses => format!(
            "SELECT currency_code, state, CAST(COUNT(*) AS BIGINT) AS processes FROM processes \
             WHERE organization_id = :org AND state IN ('ACTIVE', 'PAUSED', 'EXHAUSTED', \
             'ESCALATED') AND {} GROUP BY currency_code, state",
            currency("currency_code")
        ),
        Part::EndedProcesses => format!(
            "SELECT currency_code, policy_code, policy_version, state, CAST(COUNT(*) AS BIGINT) \
             AS processes FROM processes WHERE organization_id = :org AND ended_at >= :start AND \
             ended_at < :end AND {} GROUP BY currency_code, policy_code, policy_version, state",
            currency("currency_code")
        ),
        Part::StartedProcesses => format!(
            "SELECT currency_code, policy_code, policy_version, CAST(COUNT(*) AS BIGINT) AS \
             processes FROM processes WHERE organization_id = :org AND started_at >= :start AND \
             started_at < :end AND {} GROUP BY currency_code, policy_code, policy_version",
            currency("currency_code")
        ),
        // The payments attributed to the cohort's processes (see `Recovered`).
        Part::CohortRecovered => format!(
            "SELECT p.currency_code, p.policy_code, p.policy_version, {} AS recovered FROM \
             processes p JOIN payments pay ON pay.process_id = p.id WHERE p.organization_id = \
             :org AND p.started_at >= :start AND p.started_at < :end AND pay.process_id IS NOT \
             NULL AND {} GROUP BY p.currency_code, p.policy_code, p.policy_version",
            sum("pay.amount_minor"),
            currency("p.currency_code")
        ),
        Part::CohortOutstanding => format!(
            "SELECT p.currency_code, p.policy_code, p.policy_version, {} AS outstanding FROM \
             processes p JOIN process_invoices pi ON pi.process_id = p.id JOIN invoices i ON i.id \
             = pi.invoice_id WHERE p.organization_id = :org AND p.started_at >= :start AND \
             p.started_at < :end AND {} GROUP BY p.currency_code, p.policy_code, \
             p.policy_version",
            sum("CASE WHEN i.state IN ('OPEN', 'WRITTEN_OFF') THEN i.amount_due_minor ELSE 0 END"),
            currency("p.currency_code")
        ),
        // A write-off's event carries its currency and amount: no invoice is looked up.
        Part::Events => format!(
            "SELECT currency_code, policy_code, policy_version, event_type, \
             CAST(COUNT(DISTINCT process_id) AS BIGINT) AS processes, {} AS amount FROM (SELECT \
             COALESCE(p.currency_code, e.currency_code) AS currency_code, p.policy_code, \
             p.policy_version, e.event_type, e.process_id, CASE WHEN e.event_type = \
             'invoice.written_off' THEN e.amount_minor END AS amount FROM events e LEFT JOIN \
             processes p ON p.id = e.process_id WHERE e.organization_id = :org AND \
             {REPORT_EVENTS} AND e.occurred_at >= :start AND e.occurred_at < :end) AS \
             reported WHERE {} GROUP BY currency_code, policy_code, policy_version, event_type",
            sum("amount"),
            currency("currency_code")
        ),
        Part::Charges => format!(
            "SELECT p.currency_code, p.policy_code, p.policy_version, c.step_index, c.kind, {} AS \
             amount FROM charges c JOIN processes p ON p.id = c.process_id WHERE \
             c.organization_id = :org AND c.booked_at >= :start AND c.booked_at < :end AND {} \
             GROUP BY p.currency_code, p.policy_code, p.policy_version, c.step_index, c.kind",
            sum("c.amount_minor"),
            currency("p.currency_code")
        ),
        Part::StepRuns => format!(
            "SELECT p.currency_code, p.policy_code, p.policy_version, sr.step_index, \
             MAX(sr.step_name) AS step_name, CAST(COUNT(*) AS BIGINT) AS runs FROM step_runs sr \
             JOIN processes p ON p.id = sr.process_id WHERE sr.organization_id = :org AND \
             sr.executed_at >= :start AND sr.executed_at < :end AND {executed_run} AND {} GROUP \
             BY p.currency_code, p.policy_code, p.policy_version, sr.step_index",
            currency("p.currency_code")
        ),
        // Each payment of the period was attributed when it was recorded to the process open
        // on its invoice and the last step that process had executed (-1: none yet).
        Part::Recovered => format!(
            "SELECT p.currency_code, p.policy_code, p.policy_version, pay.process_step_index AS \
             step_index, {} AS amount FROM payments pay JOIN processes p ON p.id = \
             pay.process_id WHERE pay.organization_id = :org AND pay.paid_at >= :start AND \
             pay.paid_at < :end AND pay.process_id IS NOT NULL AND {} GROUP BY p.currency_code, \
             p.policy_code, p.policy_version, pay.process_step_index",
            sum("pay.amount_minor"),
            currency("p.currency_code")
        ),
        Part::Median => {
            let paid = format!(
                "SELECT p.currency_code, p.policy_code, p.policy_version, i.paid_at - \
                 p.started_at AS d FROM invoices i JOIN process_invoices pi ON pi.invoice_id = \
                 i.id JOIN processes p ON p.id = pi.process_id WHERE i.organization_id = :org \
                 AND i.state = 'PAID' AND i.paid_at >= :start AND i.paid_at < :end AND \
                 p.started_at <= i.paid_at AND (p.ended_at IS NULL OR i.paid_at <= p.ended_at) \
                 AND {}",
                currency("p.currency_code")
            );
            match backend {
                Backend::Postgres => format!(
                    "SELECT currency_code, policy_code, policy_version, CAST(COUNT(*) AS BIGINT) \
                     AS invoices, percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS median FROM \
                     ({paid}) AS paid GROUP BY currency_code, policy_code, policy_version"
                ),
                // No percentile function: number the values per group and average the middle
                // one (odd count) or two (even count).
                Backend::Sqlite => format!(
                    "SELECT currency_code, policy_code, policy_version, CAST(MAX(n) AS BIGINT) \
                     AS invoices, AVG(d) AS median FROM (SELECT currency_code, policy_code, \
                     policy_version, d, ROW_NUMBER() OVER (PARTITION BY currency_code, \
                     policy_code, policy_version ORDER BY d) AS rn, COUNT(*) OVER (PARTITION BY \
                     currency_code, policy_code, policy_version) AS n FROM ({paid}) AS paid) AS \
                     ranked WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY currency_code, \
                     policy_code, policy_version"
                ),
            }
        }
    }
}

/// The report's statements with their values bound, in the order [`Conn::collections_report`]
/// runs them. Public so that the benchmark can time the same SQL on a bare connection.
pub fn collections_report_statements(
    backend: Backend,
    organization_id: Uuid,
    query: &ReportQuery,
) -> Vec<Statement> {
    PARTS
        .iter()
        .map(|&part| part_statement(backend, part, organization_id, query))
        .collect()
}

fn part_statement(
    backend: Backend,
    part: Part,
    organization_id: Uuid,
    query: &ReportQuery,
) -> Statement {
    let mut params: Vec<(String, Value)> = vec![
        ("org".into(), organization_id.into()),
        ("start".into(), to_micros(query.period.start).into()),
        ("end".into(), to_micros(query.period.end).into()),
        ("as_of".into(), to_micros(query.as_of).into()),
        (
            "currency".into(),
            query.currency.map_or("", |c| c.code()).to_owned().into(),
        ),
    ];
    for (i, range) in AGING_RANGES.iter().enumerate() {
        let (lower, upper) = range.overdue_at_bounds(query.as_of);
        if let Some(lower) = lower {
            params.push((format!("lower{i}"), to_micros(lower).into()));
        }
        if let Some(upper) = upper {
            params.push((format!("upper{i}"), to_micros(upper).into()));
        }
    }
    let named: Vec<(&str, Value)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    statement(backend, &part_sql(backend, part), &named)
}

fn currency_of(row: &QueryResult) -> Result<Currency, Error> {
    let code: String = row.try_get("", "currency_code").map_err(db_error)?;
    Currency::from_code(&code).ok_or_else(|| corrupt("currency", code))
}

fn policy_of(row: &QueryResult) -> Result<PolicyKey, Error> {
    Ok((
        currency_of(row)?,
        row.try_get("", "policy_code").map_err(db_error)?,
        row.try_get("", "policy_version").map_err(db_error)?,
    ))
}

fn int(row: &QueryResult, column: &str) -> Result<i64, Error> {
    row.try_get("", column).map_err(db_error)
}

fn state_of(row: &QueryResult) -> Result<ProcessState, Error> {
    let text: String = row.try_get("", "state").map_err(db_error)?;
    ProcessState::parse(&text).ok_or_else(|| corrupt("process state", text))
}

/// Adds the rows of one part to the report.
fn collect(part: Part, rows: &[QueryResult], report: &mut ReportBuilder) -> Result<(), Error> {
    for row in rows {
        match part {
            Part::Snapshot => {
                let c = report.currency(currency_of(row)?);
                let range = int(row, "aging_range")?;
                let amount = int(row, "amount")?;
                let invoices = int(row, "invoices")?;
                let figure = usize::try_from(range)
                    .ok()
                    .and_then(|i| c.aging.get_mut(i))
                    .ok_or_else(|| corrupt("aging range", range))?;
                figure.amount_minor = amount;
                figure.invoice_count = invoices;
                // Every range but "not due" is overdue.
                if figure.range.min_days > 0 {
                    c.overdue_minor += amount;
                    c.overdue_invoice_count += invoices;
                }
            }
            Part::OverdueCustomers => {
                report.currency(currency_of(row)?).overdue_customer_count = int(row, "customers")?
            }
            Part::Payments => {
                report.currency(currency_of(row)?).recovered_minor = int(row, "amount")?
            }
            Part::PaidInvoices => {
                report.currency(currency_of(row)?).recovered_invoice_count = int(row, "invoices")?
            }
            Part::OpenProcesses => {
                report.add_state_count(currency_of(row)?, state_of(row)?, int(row, "processes")?)
            }
            Part::EndedProcesses => {
                let key = policy_of(row)?;
                let state = state_of(row)?;
                let count = int(row, "processes")?;
                report.add_state_count(key.0, state, count);
                let policy = report.policy(&key);
                match state {
                    ProcessState::Resolved => policy.resolved += count,
                    ProcessState::Cancelled => policy.cancelled += count,
                    // An open state with an end time does not exist; nothing to count.
                    _ => {}
                }
            }
            Part::StartedProcesses => {
                report.policy(&policy_of(row)?).started = int(row, "processes")?
            }
            Part::CohortRecovered => {
                report.policy(&policy_of(row)?).cohort_recovered_minor = int(row, "recovered")?
            }
            Part::CohortOutstanding => {
                report.policy(&policy_of(row)?).cohort_outstanding_minor = int(row, "outstanding")?
            }
            Part::Events => {
                let currency = currency_of(row)?;
                let event_type: String = row.try_get("", "event_type").map_err(db_error)?;
                let code: Option<String> = row.try_get("", "policy_code").map_err(db_error)?;
                let version: Option<i32> = row.try_get("", "policy_version").map_err(db_error)?;
                let processes = int(row, "processes")?;
                let amount = int(row, "amount")?;
                if event_type == "invoice.written_off" {
                    report.currency(currency).written_off_minor += amount;
                }
                let (Some(code), Some(version)) = (code, version) else {
                    continue;
                };
                let policy = report.policy(&(currency, code, version));
                match event_type.as_str() {
                    "invoice.written_off" => policy.written_off_minor += amount,
                    "process.exhausted" => policy.exhausted += processes,
                    "process.escalated" => policy.escalated += processes,
                    _ => {}
                }
            }
            Part::Charges => {
                let key = policy_of(row)?;
                let step: i32 = row.try_get("", "step_index").map_err(db_error)?;
                let kind: String = row.try_get("", "kind").map_err(db_error)?;
                report.add_charges(&key, step, kind == "FEE", int(row, "amount")?);
            }
            Part::StepRuns => {
                let key = policy_of(row)?;
                let index: i32 = row.try_get("", "step_index").map_err(db_error)?;
                let step = report.step(&key, index);
                step.step_name = row.try_get("", "step_name").map_err(db_error)?;
                step.steps_run = int(row, "runs")?;
            }
            Part::Recovered => {
                let key = policy_of(row)?;
                let index: i32 = row.try_get("", "step_index").map_err(db_error)?;
                let amount = int(row, "amount")?;
                let policy = report.policy(&key);
                policy.recovered_minor += amount;
                if index < 0 {
                    policy.recovered_before_first_step_minor += amount;
                } else {
                    report.step(&key, index).recovered_minor += amount;
                }
            }
            Part::Median => {
                let key = policy_of(row)?;
                let median: f64 = row.try_get("", "median").map_err(db_error)?;
                let policy = report.policy(&key);
                policy.paid_invoice_count = int(row, "invoices")?;
                policy.median_days_to_pay = Some(median_days(median));
            }
        }
    }
    Ok(())
}

impl Store {
    /// The collections report of the organization, one aggregate statement per part. On
    /// PostgreSQL the statements run at once, each on its own pooled connection (the parts
    /// are independent reads); SQLite has one connection, so there they run one after the
    /// other. Each statement sees the data committed when it starts.
    pub async fn collections_report(
        &self,
        organization_id: Uuid,
        query: &ReportQuery,
    ) -> Result<CollectionsReport, Error> {
        let backend = self.backend();
        let run = |part: Part| async move {
            let statement = part_statement(backend, part, organization_id, query);
            let rows = match backend {
                Backend::Postgres => {
                    let tx = self.conn.begin().await.map_err(db_error)?;
                    for setting in POSTGRES_REPORT_SETTINGS {
                        tx.execute_unprepared(setting).await.map_err(db_error)?;
                    }
                    let rows = tx.query_all_raw(statement).await.map_err(db_error)?;
                    tx.commit().await.map_err(db_error)?;
                    rows
                }
                Backend::Sqlite => self.conn.query_all_raw(statement).await.map_err(db_error)?,
            };
            Ok::<_, Error>((part, rows))
        };
        let results = match backend {
            Backend::Postgres => futures_util::future::try_join_all(PARTS.map(run)).await?,
            Backend::Sqlite => {
                let mut results = Vec::with_capacity(PARTS.len());
                for part in PARTS {
                    results.push(run(part).await?);
                }
                results
            }
        };
        let mut report = ReportBuilder::default();
        for (part, rows) in results {
            collect(part, &rows, &mut report)?;
        }
        Ok(report.finish(query.period, query.as_of))
    }
}
