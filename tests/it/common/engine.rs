//! What the engine tests share: setting up policies, customers and invoices through the API,
//! driving the manual clock and the background jobs, and reading processes and events.
#![allow(dead_code)]

use super::payments;
use super::policy::{fixed_fee, reminder, step};
use super::smtp::SmtpServer;
use super::{TestServer, customer, invoice};
use chrono::{DateTime, Duration, Utc};
use dunning::proto::{self, ActionOutcomeStatus, PolicyScope, StepAnchor, TemplateKind};

pub async fn create_policy(s: &TestServer, policy: proto::Policy) {
    s.dunning()
        .create_policy(proto::CreatePolicyRequest {
            policy: Some(policy),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

pub async fn use_default_policy(s: &TestServer, code: &str) {
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                default_policy_code: code.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["default_policy_code".into()],
            }),
        })
        .await
        .unwrap();
}

pub async fn use_http_provider(s: &TestServer, url: &str) {
    s.organizations()
        .update_organization(proto::UpdateOrganizationRequest {
            organization: Some(proto::Organization {
                payment_provider: Some(proto::PaymentProviderSettings {
                    provider: "http".into(),
                    http_url: url.into(),
                    http_secret: payments::SECRET.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["payment_provider".into()],
            }),
        })
        .await
        .unwrap();
}

pub async fn create_customer(s: &TestServer, c: proto::Customer) {
    s.customers()
        .create_customer(proto::CreateCustomerRequest {
            customer: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

pub async fn upsert(s: &TestServer, inv: proto::Invoice) {
    s.invoices()
        .upsert_invoice(proto::UpsertInvoiceRequest { invoice: Some(inv) })
        .await
        .unwrap();
}

pub fn invoice_of(
    ext: &str,
    customer: &str,
    total: &str,
    currency: &str,
    due: &str,
) -> proto::Invoice {
    proto::Invoice {
        total_amount: total.into(),
        currency_code: currency.into(),
        due_date: due.into(),
        issue_date: "2026-09-01".into(),
        collection_method: proto::CollectionMethod::Automatic as i32,
        ..invoice(ext, customer)
    }
}

pub async fn pay(s: &TestServer, invoice: &str, id: &str, amount: &str) {
    s.invoices()
        .record_payment(proto::RecordPaymentRequest {
            invoice: Some(proto::record_payment_request::Invoice::InvoiceExternalId(
                invoice.into(),
            )),
            payment_external_id: id.into(),
            amount: amount.into(),
            currency_code: "EUR".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

pub async fn processes(s: &TestServer, customer: &str) -> Vec<proto::Process> {
    s.dunning()
        .list_processes(proto::ListProcessesRequest {
            customer_external_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .processes
}

pub async fn only_process(s: &TestServer, customer: &str) -> proto::Process {
    let listed = processes(s, customer).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    s.dunning()
        .get_process(proto::GetProcessRequest {
            id: listed[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap()
}

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Moves the clock to noon of each day up to `until` and does every day what the background
/// jobs would: engine rounds, charges, engine again (charge outcomes), outbox delivery.
pub async fn live_until(s: &TestServer, until: DateTime<Utc>) {
    use dunning::clock::Clock;
    while s.clock.now() < until {
        s.clock.advance(Duration::days(1));
        run_everything(s).await;
    }
}

pub async fn run_everything(s: &TestServer) {
    for _ in 0..5 {
        let work = s.run_engine().await + s.process_payments().await + s.deliver().await;
        if work == 0 {
            return;
        }
    }
}

/// The process events of the log, with the step index of step events.
pub async fn process_events(s: &TestServer) -> Vec<String> {
    s.events()
        .await
        .into_iter()
        .filter(|e| {
            [
                "process.",
                "fee.",
                "interest.",
                "sales.",
                "suspension.",
                "invoice.written_off",
            ]
            .iter()
            .any(|p| e.r#type.starts_with(p))
        })
        .map(|e| match &e.payload {
            Some(proto::event::Payload::Process(p)) if e.r#type == "process.step_executed" => {
                format!("{} {}", e.r#type, p.step_index)
            }
            Some(proto::event::Payload::Charge(c)) => format!("{} {}", e.r#type, c.amount),
            _ => e.r#type.clone(),
        })
        .collect()
}

pub fn statuses(run: &proto::StepRun) -> Vec<(i32, i32)> {
    run.action_outcomes
        .iter()
        .map(|o| (o.action_type, o.status))
        .collect()
}

pub const SUCCEEDED: i32 = ActionOutcomeStatus::Succeeded as i32;
pub const PENDING: i32 = ActionOutcomeStatus::Pending as i32;
pub const FAILED: i32 = ActionOutcomeStatus::Failed as i32;
pub const SKIPPED: i32 = ActionOutcomeStatus::Skipped as i32;

/// A customer with a sales rep and a card that the payments service (started here, used
/// through the http provider) declines softly. Returns the payments service.
pub async fn customer_with_declining_card(
    s: &TestServer,
    external_id: &str,
) -> super::payments::PaymentsServer {
    let psp = super::payments::PaymentsServer::start().await;
    psp.set_mode(super::payments::Mode::Decline {
        code: "insufficient_funds".into(),
        hard: false,
    });
    use_http_provider(s, &psp.url).await;
    create_customer(
        s,
        proto::Customer {
            sales_rep_email: "rep@acme.test".into(),
            payment_method: Some(proto::PaymentMethod {
                provider: "http".into(),
                token: "pm_1".into(),
            }),
            ..super::customer(external_id)
        },
    )
    .await;
    psp
}

/// Friendly on day 1, firm with a fee on day 15 (due-date steps), final notice ten days
/// after the firm one (a previous-step delay), and an agency address.
pub fn three_steps(code: &str, agency: &str) -> proto::Policy {
    proto::Policy {
        code: code.into(),
        name: "Three steps".into(),
        scope: PolicyScope::Invoice as i32,
        collection_agency_email: agency.into(),
        steps: vec![
            step(
                "Friendly",
                1,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FriendlyReminder)],
            ),
            step(
                "Firm",
                15,
                StepAnchor::DueDate,
                vec![reminder(TemplateKind::FirmReminder), fixed_fee("EUR", "10")],
            ),
            step(
                "Final",
                10,
                StepAnchor::PreviousStep,
                vec![reminder(TemplateKind::FinalNotice)],
            ),
        ],
        ..Default::default()
    }
}

/// A customer with a sales rep and one EUR 100.00 invoice due 2026-11-20 under
/// `three_steps`; the first step has run (one email). Returns the process.
pub async fn running_process(s: &TestServer, smtp: &SmtpServer, cus: &str) -> proto::Process {
    if s.dunning()
        .get_policy(proto::GetPolicyRequest {
            code: "ops".into(),
            ..Default::default()
        })
        .await
        .is_err()
    {
        create_policy(s, three_steps("ops", "cases@agency.test")).await;
        use_default_policy(s, "ops").await;
    }
    create_customer(
        s,
        proto::Customer {
            sales_rep_email: "rep@acme.test".into(),
            ..customer(cus)
        },
    )
    .await;
    let before = smtp.received().len();
    upsert(
        s,
        invoice_of(&format!("inv_{cus}"), cus, "100.00", "EUR", "2026-11-20"),
    )
    .await;
    run_everything(s).await;
    assert_eq!(smtp.received().len(), before + 1);
    let p = only_process(s, cus).await;
    assert_eq!(p.current_step_index, 1);
    p
}

/// A process as GetProcess returns it.
pub async fn get(s: &TestServer, id: &str) -> proto::Process {
    s.dunning()
        .get_process(proto::GetProcessRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap()
}

/// Excludes customer `external_id` from dunning (reason "insolvency").
pub async fn exclude_customer(s: &TestServer, external_id: &str) {
    s.customers()
        .update_customer(proto::UpdateCustomerRequest {
            customer: Some(proto::Customer {
                external_id: external_id.into(),
                dunning_excluded: true,
                dunning_excluded_reason: "insolvency".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["dunning_excluded".into(), "dunning_excluded_reason".into()],
            }),
        })
        .await
        .unwrap();
}
