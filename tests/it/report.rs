//! GetCollectionsReport through the gRPC API: a dataset built with the public calls (customers,
//! invoices due on chosen dates, two policies, processes started and stepped by the engine on
//! the manual clock, payments, an escalation, a cancellation and a write-off), and every
//! figure of the report checked against values worked out by hand.

use crate::common::engine::*;
use crate::common::policy::{fixed_fee, plain, reminder, step};
use crate::common::{TestServer, assert_error, bad_fields, customer};
use dunning::proto::{self, ActionType, PolicyScope, ProcessState, StepAnchor, TemplateKind};
use tonic::Code;

/// Friendly reminder the day after the due date; a fee and a firm reminder on day 11 (the
/// last step, after which an unpaid process is EXHAUSTED).
fn fee_policy() -> proto::Policy {
    proto::Policy {
        code: "rpt".into(),
        name: "Report".into(),
        scope: PolicyScope::Invoice as i32,
        collection_agency_email: "cases@agency.test".into(),
        steps: vec![
            step(
                "Friendly",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            ),
            step(
                "Fee",
                11,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FirmReminder), fixed_fee("EUR", "5")],
            ),
        ],
        ..Default::default()
    }
}

/// Friendly reminder the day after the due date, write-off five days later.
fn write_off_policy() -> proto::Policy {
    proto::Policy {
        code: "wo".into(),
        name: "Write-off".into(),
        scope: PolicyScope::Invoice as i32,
        steps: vec![
            step(
                "Friendly",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            ),
            step(
                "Write off",
                5,
                StepAnchor::PreviousStep,
                vec![plain(ActionType::WriteOff)],
            ),
        ],
        ..Default::default()
    }
}

async fn pay_in(s: &TestServer, invoice: &str, id: &str, amount: &str, currency: &str) {
    s.invoices()
        .record_payment(proto::RecordPaymentRequest {
            invoice: Some(proto::record_payment_request::Invoice::InvoiceExternalId(
                invoice.into(),
            )),
            payment_external_id: id.into(),
            amount: amount.into(),
            currency_code: currency.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn report(
    s: &TestServer,
    from: &str,
    to: &str,
    currency: &str,
) -> Result<proto::GetCollectionsReportResponse, tonic::Status> {
    Ok(s.dunning()
        .get_collections_report(proto::GetCollectionsReportRequest {
            from_date: from.into(),
            to_date: to.into(),
            currency_code: currency.into(),
        })
        .await?
        .into_inner())
}

/// Moves the clock by whole days (it stays at noon) with every background job run each day.
async fn days(s: &TestServer, n: i64) {
    use dunning::clock::Clock;
    live_until(s, s.clock.now() + chrono::Duration::days(n)).await;
}

/// (label, amount, invoices) of each aging bucket.
fn buckets(c: &proto::CurrencyCollectionsReport) -> Vec<(String, i32, i32, String, i32)> {
    c.aging_buckets
        .iter()
        .map(|b| {
            (
                b.label.clone(),
                b.min_days_overdue,
                b.max_days_overdue,
                b.amount.clone(),
                b.invoice_count,
            )
        })
        .collect()
}

fn states(c: &proto::CurrencyCollectionsReport) -> Vec<(ProcessState, i32)> {
    c.processes_by_state
        .iter()
        .map(|p| (ProcessState::try_from(p.state).unwrap(), p.count))
        .collect()
}

fn steps(p: &proto::PolicyCollectionsReport) -> Vec<(i32, String, i32, String, String)> {
    p.steps
        .iter()
        .map(|s| {
            (
                s.step_index,
                s.step_name.clone(),
                s.steps_run,
                s.recovered_amount.clone(),
                s.fees_booked_amount.clone(),
            )
        })
        .collect()
}

/// The dataset (the clock starts on 2026-11-24 at noon UTC; every customer in UTC unless
/// said otherwise):
/// - c1: inv_a 100.00 and inv_b 200.00 due 11-20 under `rpt`; c2: inv_c 300.00 due 11-22
///   and inv_d 50.00 due 11-30 under `rpt`; c3: inv_e 400.00 due 11-20 under `wo`;
/// - c4 (excluded from dunning, so no process): EUR invoices for every aging bucket and its
///   boundaries, one disputed, one not due, and a JPY invoice partly paid;
/// - c5 in Pacific/Auckland (excluded): 7.00 due 12-05, already overdue there at 12-05 noon
///   UTC (01:00 on 12-06 in Auckland), while the same date is not overdue in UTC.
async fn dataset(s: &TestServer) {
    create_policy(s, fee_policy()).await;
    create_policy(s, write_off_policy()).await;
    use_default_policy(s, "rpt").await;
    for c in ["c1", "c2", "c3"] {
        create_customer(s, customer(c)).await;
    }
    let excluded = |id: &str, tz: &str| proto::Customer {
        dunning_excluded: true,
        timezone: tz.into(),
        ..customer(id)
    };
    create_customer(s, excluded("c4", "UTC")).await;
    create_customer(s, excluded("c5", "Pacific/Auckland")).await;
    upsert(s, invoice_of("inv_a", "c1", "100.00", "EUR", "2026-11-20")).await;
    upsert(s, invoice_of("inv_b", "c1", "200.00", "EUR", "2026-11-20")).await;
    upsert(s, invoice_of("inv_c", "c2", "300.00", "EUR", "2026-11-22")).await;
    upsert(s, invoice_of("inv_d", "c2", "50.00", "EUR", "2026-11-30")).await;
    upsert(
        s,
        proto::Invoice {
            policy_code: "wo".into(),
            ..invoice_of("inv_e", "c3", "400.00", "EUR", "2026-11-20")
        },
    )
    .await;
    for (ext, total, due) in [
        ("inv_f", "1000.00", "2026-07-01"), // 157 days on 12-05: 90+
        ("inv_g", "70.00", "2026-09-20"),   // 76: 61-90
        ("inv_h", "30.00", "2026-10-20"),   // 46: 31-60
        ("inv_m", "10.00", "2026-11-05"),   // 30: 1-30
        ("inv_n", "20.00", "2026-11-04"),   // 31: 31-60
        ("inv_p", "1.00", "2026-09-06"),    // 90: 61-90
        ("inv_q", "2.00", "2026-09-05"),    // 91: 90+
        ("inv_k", "80.00", "2026-12-10"),   // not due
    ] {
        upsert(
            s,
            proto::Invoice {
                issue_date: "2026-06-01".into(),
                ..invoice_of(ext, "c4", total, "EUR", due)
            },
        )
        .await;
    }
    upsert(
        s,
        proto::Invoice {
            disputed: true,
            ..invoice_of("inv_z", "c4", "999.00", "EUR", "2026-11-01")
        },
    )
    .await;
    upsert(s, invoice_of("inv_j", "c4", "5000", "JPY", "2026-11-01")).await;
    upsert(s, invoice_of("inv_t", "c5", "7.00", "EUR", "2026-12-05")).await;

    // 11-24 12:00: processes for inv_a, inv_b, inv_c (rpt) and inv_e (wo); each runs step 0.
    run_everything(s).await;
    s.clock.set(at("2026-11-24T13:00:00Z"));
    pay(s, "inv_a", "pay_a1", "40.00").await; // after step 0 ran: attributed to it
    pay_in(s, "inv_j", "pay_j1", "1000", "JPY").await; // no process
    s.clock.set(at("2026-11-24T12:00:00Z"));
    days(s, 2).await;
    // 11-26 12:00: inv_a settled (its process resolves, 2.0 days after it started); inv_c's
    // process cancelled.
    pay(s, "inv_a", "pay_a2", "60.00").await;
    let c = process_of(s, "c2", "inv_c").await;
    s.dunning()
        .cancel_process(proto::CancelProcessRequest {
            id: c.id,
            reason: "customer in talks".into(),
        })
        .await
        .unwrap();
    // 11-29: inv_e written off by `wo` step 1. 12-01: inv_b's step 1 books the fee (the
    // process is EXHAUSTED); inv_d's process starts and runs step 0.
    days(s, 5).await;
    let b = process_of(s, "c1", "inv_b").await;
    assert_eq!(b.state, ProcessState::Exhausted as i32, "{b:?}");
    // 12-02: a part of inv_b after its step 1; inv_c paid in part after its cancellation.
    days(s, 1).await;
    pay(s, "inv_b", "pay_b1", "50.00").await;
    pay(s, "inv_c", "pay_c1", "100.00").await;
    // 12-03: inv_c changed since its cancellation, so a second process starts for it; its
    // step 0 is superseded by step 1 (due that day), which books a fee: EXHAUSTED. inv_b
    // handed over. 12-04: inv_d settled, 3.0 days after its process started.
    days(s, 1).await;
    let again = processes(s, "c2").await;
    let second = again
        .iter()
        .find(|p| p.state == ProcessState::Exhausted as i32)
        .expect("second process of inv_c");
    let second = s
        .dunning()
        .get_process(proto::GetProcessRequest {
            id: second.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    assert_eq!(
        statuses(&second.history[0]),
        [(ActionType::SendReminder as i32, SKIPPED)]
    );
    s.dunning()
        .escalate_process(proto::EscalateProcessRequest {
            id: b.id,
            note: String::new(),
        })
        .await
        .unwrap();
    days(s, 1).await;
    pay(s, "inv_d", "pay_d1", "50.00").await;
    days(s, 1).await; // 12-05 12:00
}

/// The process of `customer` covering `invoice`.
async fn process_of(s: &TestServer, customer: &str, invoice: &str) -> proto::Process {
    let found = processes(s, customer)
        .await
        .into_iter()
        .find(|p| p.invoice_external_ids.iter().any(|i| i == invoice))
        .unwrap_or_else(|| panic!("no process for {invoice}"));
    s.dunning()
        .get_process(proto::GetProcessRequest { id: found.id })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap()
}

async fn report_figures_match_the_hand_computed_dataset(s: &TestServer) {
    dataset(s).await;
    let r = report(s, "2026-11-24", "2026-12-05", "").await.unwrap();
    assert_eq!(
        (r.from_date.as_str(), r.to_date.as_str()),
        ("2026-11-24", "2026-12-05")
    );
    assert_eq!(
        r.as_of_time.unwrap().seconds,
        at("2026-12-05T12:00:00Z").timestamp()
    );
    let codes: Vec<&str> = r
        .currencies
        .iter()
        .map(|c| c.currency_code.as_str())
        .collect();
    assert_eq!(codes, ["EUR", "JPY"]);
    let eur = &r.currencies[0];
    // Open and overdue: inv_b 150, inv_c 200, and c4/c5's 1000 + 70 + 30 + 10 + 20 + 1 + 2 + 7.
    assert_eq!(eur.overdue_amount, "1490.00");
    assert_eq!(eur.overdue_invoice_count, 10);
    assert_eq!(eur.overdue_customer_count, 4);
    let s2 = |x: &str| x.to_string();
    assert_eq!(
        buckets(eur),
        vec![
            (s2("not due"), 0, 0, s2("80.00"), 1),
            (s2("1-30"), 1, 30, s2("367.00"), 4),
            (s2("31-60"), 31, 60, s2("50.00"), 2),
            (s2("61-90"), 61, 90, s2("71.00"), 2),
            (s2("90+"), 91, 0, s2("1002.00"), 2),
        ]
    );
    // Payments of the period on overdue invoices: 40 + 60 (a), 50 (b), 100 (c), 50 (d).
    assert_eq!(eur.recovered_amount, "300.00");
    assert_eq!(eur.recovered_invoice_count, 2);
    assert_eq!(eur.fees_booked_amount, "10.00");
    assert_eq!(eur.interest_booked_amount, "0.00");
    assert_eq!(eur.written_off_amount, "400.00");
    assert_eq!(
        states(eur),
        vec![
            (ProcessState::Active, 0),
            (ProcessState::Paused, 0),
            (ProcessState::Resolved, 3),
            (ProcessState::Exhausted, 1),
            (ProcessState::Escalated, 1),
            (ProcessState::Cancelled, 1),
        ]
    );
    let policies: Vec<(&str, i32)> = eur
        .policies
        .iter()
        .map(|p| (p.policy_code.as_str(), p.policy_version))
        .collect();
    assert_eq!(policies, [("rpt", 1), ("wo", 1)]);
    let rpt = &eur.policies[0];
    assert_eq!(
        (
            rpt.processes_started,
            rpt.processes_resolved,
            rpt.processes_exhausted,
            rpt.processes_escalated,
            rpt.processes_cancelled
        ),
        (5, 2, 2, 1, 1)
    );
    // While open: a's 100 and d's 50 (step 0), b's 50 (step 1); c's 100 came after its
    // cancellation.
    assert_eq!(rpt.recovered_amount, "200.00");
    assert_eq!(rpt.recovered_before_first_step_amount, "0.00");
    assert_eq!(rpt.cohort_recovered_amount, "200.00");
    // Still owed: b 150, c 200 for each of its two processes.
    assert_eq!(rpt.cohort_outstanding_amount, "550.00");
    assert_eq!(rpt.recovery_rate, "0.2667");
    // a after 2 days, d after 3.
    assert_eq!(rpt.median_days_to_pay, "2.50");
    assert_eq!(rpt.paid_invoice_count, 2);
    assert_eq!(rpt.fees_booked_amount, "10.00");
    assert_eq!(rpt.written_off_amount, "0.00");
    // Step 0 ran for a, b, c and d (the second process of c superseded it: not a run).
    assert_eq!(
        steps(rpt),
        vec![
            (0, s2("Friendly"), 4, s2("150.00"), s2("0.00")),
            (1, s2("Fee"), 2, s2("50.00"), s2("10.00")),
        ]
    );
    let wo = &eur.policies[1];
    assert_eq!(
        (
            wo.processes_started,
            wo.processes_resolved,
            wo.processes_exhausted,
            wo.processes_escalated,
            wo.processes_cancelled
        ),
        (1, 1, 0, 0, 0)
    );
    assert_eq!(wo.recovered_amount, "0.00");
    assert_eq!(wo.cohort_outstanding_amount, "400.00");
    assert_eq!(wo.recovery_rate, "0.0000");
    assert_eq!(wo.median_days_to_pay, "");
    assert_eq!(wo.paid_invoice_count, 0);
    assert_eq!(wo.written_off_amount, "400.00");
    assert_eq!(
        steps(wo),
        vec![
            (0, s2("Friendly"), 1, s2("0.00"), s2("0.00")),
            (1, s2("Write off"), 1, s2("0.00"), s2("0.00")),
        ]
    );
    let jpy = &r.currencies[1];
    assert_eq!(
        (
            jpy.overdue_amount.as_str(),
            jpy.overdue_invoice_count,
            jpy.overdue_customer_count,
            jpy.recovered_amount.as_str()
        ),
        ("4000", 1, 1, "1000")
    );
    assert_eq!(jpy.aging_buckets[2].amount, "4000");
    assert!(jpy.policies.is_empty());

    // One currency only.
    let only = report(s, "2026-11-24", "2026-12-05", "JPY").await.unwrap();
    assert_eq!(only.currencies.len(), 1);
    assert_eq!(only.currencies[0], *jpy);

    // A later start leaves out what happened before 11-27.
    let late = report(s, "2026-11-27", "2026-12-05", "EUR").await.unwrap();
    let eur = &late.currencies[0];
    assert_eq!(
        eur.overdue_amount, "1490.00",
        "the snapshot does not depend on the period"
    );
    assert_eq!(eur.recovered_amount, "200.00");
    let rpt = &eur.policies[0];
    assert_eq!(
        (
            rpt.processes_started,
            rpt.processes_resolved,
            rpt.processes_cancelled
        ),
        (2, 1, 0)
    );
    assert_eq!(rpt.recovered_amount, "100.00");
    assert_eq!(rpt.median_days_to_pay, "3.00");
    assert_eq!(
        steps(rpt),
        vec![
            (0, s2("Friendly"), 1, s2("50.00"), s2("0.00")),
            (1, s2("Fee"), 2, s2("50.00"), s2("10.00")),
        ]
    );

    // A step that ran before the period still gets the payments after it, under its name.
    let last = report(s, "2026-12-04", "2026-12-05", "EUR").await.unwrap();
    let rpt = &last.currencies[0].policies[0];
    assert_eq!(
        steps(rpt),
        vec![(0, s2("Friendly"), 0, s2("50.00"), s2("0.00"))]
    );

    // Defaults: the 30 days up to today.
    let default = report(s, "", "", "").await.unwrap();
    assert_eq!(
        (default.from_date.as_str(), default.to_date.as_str()),
        ("2026-11-06", "2026-12-05")
    );
}

async fn bad_report_requests_name_the_field(s: &TestServer) {
    for (from, to, currency, field) in [
        ("2026-13-01", "", "", "from_date"),
        ("", "5.12.2026", "", "to_date"),
        ("2026-12-02", "2026-12-01", "", "from_date"),
        ("2025-01-01", "2026-01-02", "", "to_date"),
        ("", "", "EURO", "currency_code"),
    ] {
        let status = assert_error(
            report(s, from, to, currency).await,
            Code::InvalidArgument,
            "VALIDATION_FAILED",
        );
        assert_eq!(bad_fields(&status), [field], "{from} {to} {currency}");
    }
    // An empty organization has an empty report.
    let empty = report(s, "", "", "").await.unwrap();
    assert!(empty.currencies.is_empty());
    assert_eq!(empty.to_date, "2026-11-24");
}

on_both_backends!(
    report_figures_match_the_hand_computed_dataset,
    bad_report_requests_name_the_field,
);
