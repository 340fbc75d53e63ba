//! The handler bodies of CreatePolicy, GetPolicy, ListPolicies, UpdatePolicy, ArchivePolicy
//! and AssignPolicy; the conversions are in `convert::policy`.

use super::convert::policy::*;
use super::convert::{self};
use super::{Api, authenticate};
use crate::domain::validation::Violations;
use crate::error::Error;
use crate::proto;
use crate::service::policies::PolicyField;
use tonic::{Request, Response, Status};

fn required_policy(policy: Option<&proto::Policy>) -> Result<&proto::Policy, Error> {
    policy.ok_or_else(|| Error::field("policy", "is required"))
}

fn code_argument(field: &str, code: &str) -> Result<String, Error> {
    policy_code(code).map_err(|e| Error::field(field, e))
}

pub async fn create(
    api: &Api,
    request: Request<proto::CreatePolicyRequest>,
) -> Result<Response<proto::CreatePolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let policy = required_policy(req.policy.as_ref())?;
    let mut v = Violations::new();
    let (code, definition) = policy_from_proto(policy, &mut v, true);
    let request_id = convert::request_id(&req.request_id, &mut v);
    v.finish().map_err(Error::from)?;
    let policy = api
        .services
        .policies
        .create_policy(caller, code, definition, request_id)
        .await?;
    Ok(Response::new(proto::CreatePolicyResponse {
        policy: Some(policy_to_proto(policy)),
    }))
}

pub async fn get(
    api: &Api,
    request: Request<proto::GetPolicyRequest>,
) -> Result<Response<proto::GetPolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let code = code_argument("code", &req.code)?;
    if req.version < 0 {
        return Err(Error::field("version", "must not be negative (0 = the latest)").into());
    }
    let version = (req.version > 0).then_some(req.version);
    let policy = api
        .services
        .policies
        .get_policy(caller, &code, version)
        .await?;
    Ok(Response::new(proto::GetPolicyResponse {
        policy: Some(policy_to_proto(policy)),
    }))
}

pub async fn list(
    api: &Api,
    request: Request<proto::ListPoliciesRequest>,
) -> Result<Response<proto::ListPoliciesResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let page = convert::page(req.page_size, req.page_token)?;
    let (policies, next_page_token) = api
        .services
        .policies
        .list_policies(caller, req.include_archived, &page)
        .await?;
    Ok(Response::new(proto::ListPoliciesResponse {
        policies: policies.into_iter().map(policy_to_proto).collect(),
        next_page_token,
    }))
}

pub async fn update(
    api: &Api,
    request: Request<proto::UpdatePolicyRequest>,
) -> Result<Response<proto::UpdatePolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let policy = required_policy(req.policy.as_ref())?;
    let code = code_argument("policy.code", &policy.code)?;
    let mut v = Violations::new();
    let mut fields = Vec::new();
    for path in convert::mask_paths(req.update_mask.as_ref())? {
        match PolicyField::from_name(&path) {
            Some(field) if !fields.contains(&field) => fields.push(field),
            Some(_) => {}
            None => v.add(
                "update_mask",
                format!(
                    "`{path}` is not an updatable policy field ({})",
                    PolicyField::ALL.map(PolicyField::name).join(", ")
                ),
            ),
        }
    }
    let mut update = empty_definition();
    for field in &fields {
        convert_field(*field, policy, &mut update, &mut v);
    }
    v.finish().map_err(Error::from)?;
    let policy = api
        .services
        .policies
        .update_policy(caller, &code, &update, &fields)
        .await?;
    Ok(Response::new(proto::UpdatePolicyResponse {
        policy: Some(policy_to_proto(policy)),
    }))
}

pub async fn archive(
    api: &Api,
    request: Request<proto::ArchivePolicyRequest>,
) -> Result<Response<proto::ArchivePolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let code = code_argument("code", &request.get_ref().code)?;
    let policy = api.services.policies.archive_policy(caller, &code).await?;
    Ok(Response::new(proto::ArchivePolicyResponse {
        policy: Some(policy_to_proto(policy)),
    }))
}

pub async fn assign(
    api: &Api,
    request: Request<proto::AssignPolicyRequest>,
) -> Result<Response<proto::AssignPolicyResponse>, Status> {
    let caller = authenticate(&api.services, &request).await?;
    let req = request.into_inner();
    let (id, ext) = req
        .customer
        .as_ref()
        .map(convert::OneofKey::parts)
        .unwrap_or_default();
    let customer = convert::customer_ref(id, ext, "customer_")?;
    let policy_code = if req.policy_code.is_empty() {
        String::new()
    } else {
        code_argument("policy_code", &req.policy_code)?
    };
    let assigned = api
        .services
        .processes
        .assign_policy(caller, &customer, &policy_code, req.apply_to_open_processes)
        .await?;
    Ok(Response::new(proto::AssignPolicyResponse {
        customer: Some(super::customers::customer_to_proto(assigned.customer)),
        processes: assigned
            .moved
            .into_iter()
            .map(super::processes::process_to_proto)
            .collect(),
    }))
}
