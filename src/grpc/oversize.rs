//! A request message over `DUNNING_MAX_REQUEST_BYTES` is refused from its length prefix,
//! before it is read whole. tonic answers OUT_OF_RANGE; gRPC's status code for a message
//! larger than the receiver accepts is RESOURCE_EXHAUSTED, which clients treat as "do not
//! retry as is". This layer gives that code, with an `ErrorInfo` and the limit named.

use crate::error::{Error, Reason};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The start of tonic's message for a request over the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

#[derive(Clone, Default)]
pub struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner }
    }
}

#[derive(Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Oversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            // A refused unary call answers in its headers alone ("trailers-only").
            let found = match tonic::Status::from_header_map(response.headers()) {
                Some(s)
                    if s.code() == tonic::Code::OutOfRange
                        && s.message().starts_with(TONIC_TOO_LARGE) =>
                {
                    s.message().to_owned()
                }
                _ => return Ok(response),
            };
            let status: tonic::Status = Error::ResourceExhausted {
                reason: Reason::MessageTooLarge,
                message: format!(
                    "the request message is larger than this server accepts \
                     (DUNNING_MAX_REQUEST_BYTES): {}",
                    found
                        .trim_start_matches(TONIC_TOO_LARGE)
                        .trim_start_matches(": ")
                ),
            }
            .into();
            let mut replacement = http::HeaderMap::new();
            // Only a complete replacement is applied; otherwise tonic's refusal stands.
            if status.add_header(&mut replacement).is_ok() {
                let headers = response.headers_mut();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    headers.remove(name);
                }
                headers.extend(replacement);
            }
            Ok(response)
        })
    }
}
