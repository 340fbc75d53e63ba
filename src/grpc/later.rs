//! RPCs of the contract that later releases implement. They authenticate like every RPC and
//! then answer UNIMPLEMENTED naming the capability, so callers can code against the final API
//! today.

/// Implements a generated service trait: the listed RPCs answer UNIMPLEMENTED with the
/// capability that will provide them; `extra` items (implemented RPCs) are placed as written.
macro_rules! service_with_later_rpcs {
    (
        impl $($trait:ident)::+ for $api:ty {
            later($capability:literal) {
                $($method:ident($request:ident) -> $response:ident;)*
            }
            $($extra:item)*
        }
    ) => {
        #[tonic::async_trait]
        impl $($trait)::+ for $api {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<crate::proto::$request>,
                ) -> Result<tonic::Response<crate::proto::$response>, tonic::Status> {
                    crate::grpc::authenticate(&self.services, &request).await?;
                    Err(crate::error::Error::Unimplemented(format!(
                        "{} is not available yet: it arrives with {}",
                        stringify!($method),
                        $capability
                    ))
                    .into())
                }
            )*
            $($extra)*
        }
    };
}

pub(crate) use service_with_later_rpcs;
