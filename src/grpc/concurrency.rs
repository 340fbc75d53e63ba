//! Calls in flight per API key: a tower layer that holds a permit of the key's semaphore from
//! the request until its response body ends (so a WatchEvents stream holds one while it is
//! open). A key with none left is answered RESOURCE_EXHAUSTED `KEY_CONCURRENCY_LIMITED` at once.
//! Keys are told apart by their `authorization` metadata; calls without one are not limited
//! here (authentication refuses them).

use http_body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Keys tracked at most; past it, the keys with no call in flight are forgotten first.
const MAX_TRACKED_KEYS: usize = 10_000;

#[derive(Clone)]
pub struct KeyConcurrencyLayer {
    limits: Option<Arc<Limits>>,
}

struct Limits {
    per_key: usize,
    keys: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl KeyConcurrencyLayer {
    /// At most `per_key` calls in flight per key; 0 = unlimited.
    pub fn new(per_key: usize) -> Self {
        Self {
            limits: (per_key > 0).then(|| {
                Arc::new(Limits {
                    per_key,
                    keys: Mutex::new(HashMap::new()),
                })
            }),
        }
    }
}

impl Limits {
    /// A permit for `key`, or `None` when its calls in flight are at the limit.
    fn permit(&self, key: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() >= MAX_TRACKED_KEYS && !keys.contains_key(key) {
                let idle = self.per_key;
                keys.retain(|_, s| s.available_permits() < idle);
            }
            keys.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_key)))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }
}

impl<S> tower::Layer<S> for KeyConcurrencyLayer {
    type Service = KeyConcurrency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyConcurrency {
            inner,
            limits: self.limits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct KeyConcurrency<S> {
    inner: S,
    limits: Option<Arc<Limits>>,
}

impl<S, B> tower::Service<http::Request<B>> for KeyConcurrency<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<PermitBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let key = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let permit = match (&self.limits, key) {
            (Some(limits), Some(key)) => match limits.permit(&key) {
                Some(permit) => Some(permit),
                None => {
                    let refused = too_many_in_flight(limits.per_key);
                    return Box::pin(async move { Ok(refused) });
                }
            },
            _ => None,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| PermitBody {
                inner: body,
                _permit: permit,
            }))
        })
    }
}

fn too_many_in_flight(per_key: usize) -> http::Response<PermitBody> {
    let status: tonic::Status = crate::error::Error::ResourceExhausted {
        reason: crate::error::Reason::KeyConcurrencyLimited,
        message: format!(
            "this API key has {per_key} calls in flight (open WatchEvents streams count); \
             retry when one ends"
        ),
    }
    .into();
    status
        .into_http::<tonic::body::Body>()
        .map(|body| PermitBody {
            inner: body,
            _permit: None,
        })
}

/// A response body that keeps its call's permit until it is dropped.
pub struct PermitBody {
    inner: tonic::body::Body,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Body for PermitBody {
    type Data = <tonic::body::Body as Body>::Data;
    type Error = <tonic::body::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
