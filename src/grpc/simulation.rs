//! SimulatePolicy: validates the request, lets the engine run it (rolled back), converts the
//! timeline.

use super::convert::policy::{action_to_proto, policy_code, policy_from_proto, policy_to_proto};
use super::convert::{self, timestamp};
use super::processes::{charge_to_proto, state_to_proto};
use super::{Api, authenticate};
use crate::domain::invoice::CollectionMethod;
use crate::domain::notification::Notification;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::proto::simulate_policy_request::PolicySource;
use crate::service::processes::simulate::{
    HypotheticalInvoice, SimulatedAction, SimulatedPolicy, SimulatedStep, SimulationRequest,
    check_simulated_invoices,
};
use tonic::{Request, Response, Status};

pub async fn simulate(
    api: &Api,
    request: Request<proto::SimulatePolicyRequest>,
) -> Result<Response<proto::SimulatePolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let mut v = Violations::new();
    let policy = match &req.policy_source {
        None => {
            v.add("policy_code", "give policy_code or an inline policy");
            None
        }
        Some(PolicySource::PolicyCode(code)) => {
            let code = v.check("policy_code", policy_code(code));
            if req.policy_version < 0 {
                v.add("policy_version", "must not be negative (0 = the latest)");
            }
            let version = (req.policy_version > 0).then_some(req.policy_version);
            code.map(|code| SimulatedPolicy::Stored { code, version })
        }
        Some(PolicySource::Policy(policy)) => {
            let (code, definition) = policy_from_proto(policy, &mut v, false);
            Some(SimulatedPolicy::Inline { code, definition })
        }
    };
    let invoices: Vec<HypotheticalInvoice> = req
        .invoices
        .iter()
        .enumerate()
        .filter_map(|(i, invoice)| hypothetical_invoice(i, invoice, &mut v))
        .collect();
    for (i, external_id) in req.invoice_external_ids.iter().enumerate() {
        v.check(
            &format!("invoice_external_ids[{i}]"),
            validation::external_id(external_id),
        );
    }
    check_simulated_invoices(&invoices, &req.invoice_external_ids, &mut v);
    let customer_external_id = (!req.customer_external_id.is_empty())
        .then(|| {
            v.check(
                "customer_external_id",
                validation::external_id(&req.customer_external_id),
            )
        })
        .flatten();
    let timezone = (!req.timezone.is_empty())
        .then(|| v.check("timezone", validation::timezone(&req.timezone)))
        .flatten();
    let start = req
        .start_time
        .as_ref()
        .and_then(|t| convert::instant("start_time", t, &mut v));
    v.finish().map_err(Error::from)?;
    let Some(policy) = policy else {
        return Err(Error::field("policy_code", "is required").into());
    };
    let simulation = api
        .services
        .processes
        .simulate_policy(
            caller,
            SimulationRequest {
                policy,
                invoices,
                stored_invoice_external_ids: req.invoice_external_ids,
                customer_external_id,
                start,
                timezone,
                has_payment_method: req.has_payment_method,
            },
        )
        .await?;
    Ok(Response::new(proto::SimulatePolicyResponse {
        policy: Some(policy_to_proto(simulation.policy)),
        timeline: simulation.timeline.into_iter().map(step_to_proto).collect(),
        skipped_invoices: simulation
            .skipped
            .into_iter()
            .map(|(external_id, reason)| proto::SimulationSkip {
                external_id,
                reason,
            })
            .collect(),
    }))
}

fn hypothetical_invoice(
    index: usize,
    invoice: &proto::SimulationInvoice,
    v: &mut Violations,
) -> Option<HypotheticalInvoice> {
    let field = |name: &str| format!("invoices[{index}].{name}");
    let label = if invoice.external_id.is_empty() {
        Some(format!("invoice-{}", index + 1))
    } else {
        v.check(
            &field("external_id"),
            validation::external_id(&invoice.external_id),
        )
    };
    let currency = convert::currency(&field("currency_code"), &invoice.currency_code, v);
    let amount = convert::amount(&field("amount_due"), &invoice.amount_due, currency, v);
    if amount.is_some_and(|a| a <= 0) {
        v.add(field("amount_due"), "must be positive");
    }
    let due_date = v.check(&field("due_date"), validation::date(&invoice.due_date));
    let collection_method = match proto::CollectionMethod::try_from(invoice.collection_method) {
        Ok(proto::CollectionMethod::Unspecified | proto::CollectionMethod::Automatic) => {
            Some(CollectionMethod::Automatic)
        }
        Ok(proto::CollectionMethod::Manual) => Some(CollectionMethod::Manual),
        Err(_) => {
            v.add(
                field("collection_method"),
                "is not a known collection method",
            );
            None
        }
    };
    Some(HypotheticalInvoice {
        label: label?,
        currency: currency?,
        amount_due_minor: amount.filter(|a| *a > 0)?,
        due_date: due_date?,
        collection_method: collection_method?,
    })
}

fn step_to_proto(step: SimulatedStep) -> proto::TimelineEntry {
    let currency = step.currency;
    proto::TimelineEntry {
        process_number: step.process_number as i32,
        invoice_external_ids: step.invoice_labels,
        currency_code: currency.code().to_owned(),
        step_index: step.step_index as i32,
        step_name: step.step_name,
        scheduled_time: timestamp(step.at),
        actions: step
            .actions
            .into_iter()
            .map(|a| action_to_simulated(a, currency))
            .collect(),
        charges: step.charges.iter().map(charge_to_proto).collect(),
        amount_due: currency.format(step.amount_due_minor),
        total_charges: currency.format(step.total_charges_minor),
        state_after: state_to_proto(step.state_after) as i32,
    }
}

fn action_to_simulated(
    a: SimulatedAction,
    currency: crate::domain::money::Currency,
) -> proto::SimulatedAction {
    let wire = action_to_proto(&a.action);
    proto::SimulatedAction {
        r#type: wire.r#type,
        condition: wire.condition,
        template_kind: wire.template_kind,
        executed: a.executed,
        detail: a.detail,
        charge_amount: a
            .charge_minor
            .map(|m| currency.format(m))
            .unwrap_or_default(),
        email: a.email.map(email_to_proto),
    }
}

fn email_to_proto(n: Notification) -> proto::SimulatedEmail {
    proto::SimulatedEmail {
        template_kind: super::convert::kind_to_proto(&n.kind) as i32,
        locale: n.locale,
        subject: n.subject,
        to: n.recipients.to,
        cc: n.recipients.cc,
        bcc: n.recipients.bcc,
        send_time: convert::optional_timestamp(n.next_attempt_at),
        text_body: n.text_body,
        state: super::notifications::state_to_proto(n.state) as i32,
    }
}
