//! The gRPC surface: the only module that sees generated types. Handlers authenticate,
//! validate and convert, call a use case, and convert back.

pub mod codec;
mod commands;
mod concurrency;
mod convert;
mod customers;
mod dunning;
mod events;
mod invoices;
mod notifications;
mod organizations;
mod oversize;
mod payment_requests;
mod policies;
mod processes;
mod report;
mod simulation;
mod status;
mod webhooks;

use crate::config::Roles;
use crate::domain::access::Scope;
use crate::error::Error;
use crate::proto;
use crate::service::Caller;
use crate::service::{LiveEvents, Services};
use tonic::Request;
use tonic::service::Routes;

use crate::error::Reason;
pub use concurrency::KeyConcurrencyLayer;
pub use oversize::OversizeLayer;
pub use status::ERROR_DOMAIN;

/// The descriptor set served by reflection (written by build.rs).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dunning_descriptor.bin"));

/// Implements every dunning.v1 service over the use cases.
#[derive(Clone)]
pub struct Api {
    services: Services,
    live: LiveEvents,
}

/// The scope an RPC needs, by its method name: reads need `read`; policies, their assignment,
/// webhooks (they hold signing secrets), template overrides and the organization's settings
/// need `admin`; the payments service's report of a charge needs `payments`; everything else
/// (syncing customers, invoices and payments, operator commands) needs `write`.
pub fn scope_of_method(method: &str) -> Scope {
    const ADMIN: [&str; 9] = [
        "UpdateOrganization",
        "SetTemplateOverride",
        "DeleteTemplateOverride",
        "CreatePolicy",
        "UpdatePolicy",
        "ArchivePolicy",
        "AssignPolicy",
        "RotateWebhookSecret",
        "DeleteWebhookEndpoint",
    ];
    if ADMIN.contains(&method)
        || method.contains("WebhookEndpoint")
        || method == "ListWebhookDeliveries"
    {
        Scope::Admin
    } else if method == "RecordPaymentResult" {
        Scope::Payments
    } else if ["Get", "List", "Watch", "Preview", "Simulate"]
        .iter()
        .any(|read| method.starts_with(read))
    {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// The RPC a request message is for: each RPC takes its own `<Method>Request` message (buf's
/// RPC_REQUEST_STANDARD_NAME rule holds on `proto/`).
fn method_of<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    let name = name.rsplit("::").next().unwrap_or(name);
    name.strip_suffix("Request").unwrap_or(name)
}

/// Resolves the `authorization: Bearer <key>` metadata to the caller's organization, checking
/// that the key has the scope the RPC needs (PERMISSION_DENIED otherwise). A client address
/// that keeps failing is refused for a while before any key is looked up.
pub(crate) async fn authenticate<T>(
    services: &Services,
    request: &Request<T>,
) -> Result<Caller, Error> {
    if !services.started() {
        return Err(Error::Starting(
            "the server is starting (migrating its database); retry in a moment".into(),
        ));
    }
    let client = request.remote_addr().map(|a| a.ip());
    let throttle = services.auth.throttle();
    throttle.check(client)?;
    let mut result = authenticate_key(services, request).await;
    if let (Ok(caller), Some(certificates)) = (&result, request.peer_certs()) {
        let organization = certificates
            .first()
            .and_then(|certificate| crate::tls::organization_of(certificate));
        if let Err(e) = services
            .auth
            .check_certificate(*caller, organization.as_deref())
            .await
        {
            result = Err(e);
        }
    }
    match &result {
        Ok(caller) => {
            tracing::Span::current().record("organization", caller.organization_id.to_string());
        }
        Err(Error::Unauthenticated { .. }) => throttle.failed(client),
        Err(_) => {}
    }
    result
}

/// The caller of the key in `request`'s metadata, with the scope its RPC needs.
async fn authenticate_key<T>(services: &Services, request: &Request<T>) -> Result<Caller, Error> {
    let missing = || Error::Unauthenticated {
        reason: Reason::ApiKeyMissing,
        message: "send metadata `authorization: Bearer <api key>`".into(),
    };
    let header = request
        .metadata()
        .get("authorization")
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(missing)?;
    let method = method_of::<T>();
    services
        .auth
        .authorize(key, scope_of_method(method), method)
        .await
}

/// The path of every RPC this server answers (`/package.Service/Method`): the contract's, and
/// health's and reflection's. Metrics label only these by name.
pub fn rpc_paths() -> Vec<String> {
    use prost::Message;
    let mut paths: Vec<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) {
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    paths
}

/// The health service name under which a process with the engine role reports SERVING (its
/// background work runs); unknown in a process without it.
pub const ENGINE_HEALTH_SERVICE: &str = "dunning.engine";

/// What health reports SERVING, to report NOT_SERVING instead once the process drains.
#[derive(Clone)]
pub struct Health {
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
}

impl Health {
    /// Every service this process reported, and the server as a whole, at `status`.
    async fn set(&self, status: tonic_health::ServingStatus) {
        for service in self.services.iter().copied().chain([""]) {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// SERVING: the process has started.
    pub async fn serving(&self) {
        self.set(tonic_health::ServingStatus::Serving).await
    }

    /// NOT_SERVING: load balancers and probes stop sending work here while it drains.
    pub async fn draining(&self) {
        self.set(tonic_health::ServingStatus::NotServing).await
    }
}

/// Health and reflection (which need no key), and every service of the API when the process
/// has the `api` role. Health reports each API service, and `dunning.engine` for the engine
/// role.
pub async fn routes(
    services: Services,
    live: LiveEvents,
    roles: Roles,
    max_request_bytes: usize,
) -> (Routes, Health) {
    use proto::{
        customer_service_server::CustomerServiceServer,
        dunning_service_server::DunningServiceServer, invoice_service_server::InvoiceServiceServer,
        organization_service_server::OrganizationServiceServer,
        payment_request_service_server::PaymentRequestServiceServer,
        webhook_service_server::WebhookServiceServer,
    };
    use tonic::server::NamedService;
    let api = Api { services, live };
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let mut reported = Vec::new();
    if roles.api {
        reported.extend([
            OrganizationServiceServer::<Api>::NAME,
            CustomerServiceServer::<Api>::NAME,
            InvoiceServiceServer::<Api>::NAME,
            PaymentRequestServiceServer::<Api>::NAME,
            DunningServiceServer::<Api>::NAME,
            WebhookServiceServer::<Api>::NAME,
        ]);
    }
    if roles.engine {
        reported.push(ENGINE_HEALTH_SERVICE);
    }
    let health = Health {
        reporter,
        services: reported,
    };
    // NOT_SERVING until the process has started (its database migrated).
    health.set(tonic_health::ServingStatus::NotServing).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // The error details every status carries, so that grpcurl and buf curl decode them.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("descriptor set compiled by build.rs is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("descriptor set compiled by build.rs is valid");

    macro_rules! limited {
        ($server:ident) => {
            $server::new(api.clone()).max_decoding_message_size(max_request_bytes)
        };
    }
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    if !roles.api {
        // Anything but health and reflection is an API call sent to the wrong process.
        let router = routes.into_axum_router().fallback(|| async {
            tonic::Status::unimplemented(
                "this process runs the engine role only (DUNNING_ROLES=engine): send API \
                 calls to a process with the api role",
            )
            .into_http::<tonic::body::Body>()
        });
        return (Routes::from(router), health);
    }
    let routes = routes
        .add_service(limited!(OrganizationServiceServer))
        .add_service(limited!(CustomerServiceServer))
        .add_service(limited!(InvoiceServiceServer))
        .add_service(limited!(PaymentRequestServiceServer))
        .add_service(limited!(DunningServiceServer))
        .add_service(limited!(WebhookServiceServer));
    (routes, health)
}

#[cfg(test)]
mod scope_tests {
    use super::*;
    use prost::Message;

    /// Every RPC of the contract maps to a scope by the rule above, and its request message is
    /// named after it (so `method_of` finds it).
    #[test]
    fn every_rpc_has_its_scope() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        let mut scopes = std::collections::BTreeMap::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let name = method.name().to_owned();
                    assert!(
                        method.input_type().ends_with(&format!(".{name}Request")),
                        "{name} takes {}",
                        method.input_type()
                    );
                    scopes.insert(name.clone(), scope_of_method(&name));
                }
            }
        }
        assert!(scopes.len() > 50, "{}", scopes.len());
        for (method, scope) in [
            ("ListProcesses", Scope::Read),
            ("WatchEvents", Scope::Read),
            ("GetCollectionsReport", Scope::Read),
            ("SimulatePolicy", Scope::Read),
            ("UpsertInvoice", Scope::Write),
            ("RecordPayment", Scope::Write),
            ("PauseProcess", Scope::Write),
            ("RecordPaymentResult", Scope::Payments),
            ("CreatePolicy", Scope::Admin),
            ("AssignPolicy", Scope::Admin),
            ("ListWebhookEndpoints", Scope::Admin),
            ("UpdateOrganization", Scope::Admin),
            ("GetOrganization", Scope::Read),
        ] {
            assert_eq!(scopes[method], scope, "{method}");
        }
        assert_eq!(method_of::<proto::ListProcessesRequest>(), "ListProcesses");
    }
}
