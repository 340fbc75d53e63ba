//! The operator commands of DunningService: validate the process id, the note and the
//! request id, run the command, return the process (and the email it queued).

use super::notifications::notification_to_proto;
use super::processes::process_to_proto;
use super::{Api, authenticate, convert};
use crate::domain::process::command::CommandKind;
use crate::domain::validation::{self, Violations};
use crate::error::Error;
use crate::proto;
use crate::service::processes::{CommandRequest, CommandResult, PaymentPlanTerms, PromiseTerms};
use tonic::{Request, Response, Status};

/// What a command request carries, by field name.
struct Fields<'a> {
    id_field: &'static str,
    id: &'a str,
    note_field: &'static str,
    note: &'a str,
    note_limit: usize,
    request_id: &'a str,
    /// RecordPromiseToPay: the promised date and amount as given.
    promise: Option<(&'a str, &'a str)>,
    /// RecordPaymentPlan: the plan as given.
    plan: Option<&'a proto::RecordPaymentPlanRequest>,
}

impl<'a> Fields<'a> {
    fn id(id_field: &'static str, id: &'a str) -> Self {
        Self {
            id_field,
            id,
            note_field: "note",
            note: "",
            note_limit: 0,
            request_id: "",
            promise: None,
            plan: None,
        }
    }

    fn note(mut self, field: &'static str, note: &'a str, limit: usize) -> Self {
        self.note_field = field;
        self.note = note;
        self.note_limit = limit;
        self
    }

    fn request_id(mut self, request_id: &'a str) -> Self {
        self.request_id = request_id;
        self
    }

    fn promise(mut self, promised_date: &'a str, amount: &'a str) -> Self {
        self.promise = Some((promised_date, amount));
        self
    }

    fn plan(mut self, plan: &'a proto::RecordPaymentPlanRequest) -> Self {
        self.plan = Some(plan);
        self
    }
}

/// The terms of a payment plan as given; dates and amounts are checked by the service (with
/// the process's currency and the customer's time zone), so their errors travel with them.
fn plan_terms(r: &proto::RecordPaymentPlanRequest, v: &mut Violations) -> PaymentPlanTerms {
    let mut days = |field: &str, value: i32| {
        v.check(
            field,
            u32::try_from(value).map_err(|_| "must be 0 or more".to_owned()),
        )
        .unwrap_or(0)
    };
    PaymentPlanTerms {
        grace_days: days("grace_days", r.grace_days),
        reminder_days_before: days("reminder_days_before", r.reminder_days_before),
        instalments: r
            .instalments
            .iter()
            .map(|i| (validation::date(&i.date), i.amount.trim().to_owned()))
            .collect(),
    }
}

async fn run<T>(
    api: &Api,
    request: &Request<T>,
    kind: CommandKind,
    fields: Fields<'_>,
) -> Result<CommandResult, Status> {
    let caller = authenticate(&api.services, request).await?;
    let mut v = Violations::new();
    let process_id = v.check(
        fields.id_field,
        if fields.id.is_empty() {
            Err("is required".to_owned())
        } else {
            fields
                .id
                .parse::<uuid::Uuid>()
                .map_err(|_| format!("`{}` is not an id (UUID)", fields.id))
        },
    );
    let note = v
        .check(
            fields.note_field,
            validation::text_up_to(fields.note, fields.note_limit),
        )
        .unwrap_or_default();
    let request_id = convert::request_id(fields.request_id, &mut v);
    let promise = fields.promise.and_then(|(date, amount)| {
        let date = v.check("promised_date", validation::date(date))?;
        Some(PromiseTerms {
            date,
            amount: amount.trim().to_owned(),
        })
    });
    let payment_plan = fields.plan.map(|plan| plan_terms(plan, &mut v));
    v.finish().map_err(Error::from)?;
    let command = CommandRequest {
        kind,
        process_id: process_id.unwrap_or_default(),
        note,
        request_id,
        promise,
        payment_plan,
    };
    Ok(api.services.processes.run_command(caller, &command).await?)
}

fn process(result: CommandResult) -> Option<proto::Process> {
    Some(process_to_proto(result.view))
}

pub async fn pause(
    api: &Api,
    request: Request<proto::PauseProcessRequest>,
) -> Result<Response<proto::PauseProcessResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("id", &r.id).note("note", &r.note, 1000);
    let result = run(api, &request, CommandKind::Pause, fields).await?;
    Ok(Response::new(proto::PauseProcessResponse {
        process: process(result),
    }))
}

pub async fn resume(
    api: &Api,
    request: Request<proto::ResumeProcessRequest>,
) -> Result<Response<proto::ResumeProcessResponse>, Status> {
    let fields = Fields::id("id", &request.get_ref().id);
    let result = run(api, &request, CommandKind::Resume, fields).await?;
    Ok(Response::new(proto::ResumeProcessResponse {
        process: process(result),
    }))
}

pub async fn cancel(
    api: &Api,
    request: Request<proto::CancelProcessRequest>,
) -> Result<Response<proto::CancelProcessResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("id", &r.id).note("reason", &r.reason, 1000);
    let result = run(api, &request, CommandKind::Cancel, fields).await?;
    Ok(Response::new(proto::CancelProcessResponse {
        process: process(result),
    }))
}

pub async fn reset(
    api: &Api,
    request: Request<proto::ResetProcessRequest>,
) -> Result<Response<proto::ResetProcessResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("id", &r.id).request_id(&r.request_id);
    let result = run(api, &request, CommandKind::Reset, fields).await?;
    Ok(Response::new(proto::ResetProcessResponse {
        process: process(result),
    }))
}

pub async fn advance(
    api: &Api,
    request: Request<proto::AdvanceProcessRequest>,
) -> Result<Response<proto::AdvanceProcessResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("id", &r.id).request_id(&r.request_id);
    let result = run(api, &request, CommandKind::Advance, fields).await?;
    Ok(Response::new(proto::AdvanceProcessResponse {
        process: process(result),
    }))
}

pub async fn escalate(
    api: &Api,
    request: Request<proto::EscalateProcessRequest>,
) -> Result<Response<proto::EscalateProcessResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("id", &r.id).note("note", &r.note, 2000);
    let result = run(api, &request, CommandKind::Escalate, fields).await?;
    Ok(Response::new(proto::EscalateProcessResponse {
        notification: result.notification.clone().map(notification_to_proto),
        process: process(result),
    }))
}

pub async fn inform_sales(
    api: &Api,
    request: Request<proto::InformSalesRequest>,
) -> Result<Response<proto::InformSalesResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("process_id", &r.process_id)
        .note("note", &r.note, 2000)
        .request_id(&r.request_id);
    let result = run(api, &request, CommandKind::InformSales, fields).await?;
    Ok(Response::new(proto::InformSalesResponse {
        notification: result.notification.clone().map(notification_to_proto),
        process: process(result),
    }))
}

pub async fn record_promise_to_pay(
    api: &Api,
    request: Request<proto::RecordPromiseToPayRequest>,
) -> Result<Response<proto::RecordPromiseToPayResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("process_id", &r.process_id)
        .note("note", &r.note, 2000)
        .promise(&r.promised_date, &r.amount);
    let result = run(api, &request, CommandKind::PromiseToPay, fields).await?;
    Ok(Response::new(proto::RecordPromiseToPayResponse {
        process: process(result),
    }))
}

pub async fn record_payment_plan(
    api: &Api,
    request: Request<proto::RecordPaymentPlanRequest>,
) -> Result<Response<proto::RecordPaymentPlanResponse>, Status> {
    let r = request.get_ref();
    let fields = Fields::id("process_id", &r.process_id)
        .note("note", &r.note, 2000)
        .request_id(&r.request_id)
        .plan(r);
    let result = run(api, &request, CommandKind::PaymentPlan, fields).await?;
    Ok(Response::new(proto::RecordPaymentPlanResponse {
        process: process(result),
    }))
}
