//! Token buckets: failed authentications per client address (a missing, unknown, revoked or
//! expired key), and calls per API key. While an address has no token left, its calls are
//! refused with RESOURCE_EXHAUSTED before any key is looked up, so a flood of wrong keys costs
//! no database work past the allowance; a key past its rate gets RESOURCE_EXHAUSTED too.

use crate::error::{Error, Reason};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::time::Instant;

/// Buckets kept at most; past it, the buckets that have refilled are dropped first.
const MAX_TRACKED: usize = 10_000;

/// Failed authentications allowed per client address and minute, unless configured.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;

/// The limits on callers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failed authentications per client address and minute.
    pub auth_failures_per_minute: u32,
    /// Calls per API key and minute; 0 = unlimited.
    pub key_requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            key_requests_per_minute: 0,
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// A bucket per key of `K`: a burst of `per_minute` tokens, regained at that rate.
struct Buckets<K> {
    per_minute: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: std::hash::Hash + Eq + Copy> Buckets<K> {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let regained =
            now.duration_since(bucket.refilled_at).as_secs_f64() * self.per_minute / 60.0;
        bucket.tokens = (bucket.tokens + regained).min(self.per_minute);
        bucket.refilled_at = now;
    }

    /// The seconds until `key` has a token again; `None` while it has one (or no bucket).
    fn wait(&self, key: K) -> Option<f64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.get_mut(&key)?;
        self.refill(bucket, Instant::now());
        (bucket.tokens < 1.0).then(|| ((1.0 - bucket.tokens) * 60.0 / self.per_minute).ceil())
    }

    /// Takes a token of `key` (none left: nothing happens).
    fn take(&self, key: K) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            let full = self.per_minute;
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                let regained = now.duration_since(b.refilled_at).as_secs_f64() * per_minute / 60.0;
                b.tokens + regained < full
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            refilled_at: now,
        });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
}

/// Failed authentications per client address.
pub struct AuthThrottle(Buckets<IpAddr>);

impl AuthThrottle {
    pub fn new(per_minute: u32) -> Self {
        Self(Buckets::new(per_minute))
    }

    /// RESOURCE_EXHAUSTED while `client` has used up its failed authentications.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Error> {
        let Some(client) = client else { return Ok(()) };
        match self.0.wait(client) {
            None => Ok(()),
            Some(wait) => Err(Error::ResourceExhausted {
                reason: Reason::TooManyFailedAuthentications,
                message: format!(
                    "too many calls with a missing or wrong API key from {client}; retry in \
                     {wait} s"
                ),
            }),
        }
    }

    /// Counts a failed authentication of `client`.
    pub fn failed(&self, client: Option<IpAddr>) {
        if let Some(client) = client {
            self.0.take(client);
        }
    }
}

/// Calls per API key and minute (`None`: unlimited).
pub struct KeyRateLimit(Option<Buckets<uuid::Uuid>>);

impl KeyRateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self((per_minute > 0).then(|| Buckets::new(per_minute)))
    }

    /// Takes a call of `key` from its allowance, or RESOURCE_EXHAUSTED when it has none left.
    pub fn admit(&self, key: uuid::Uuid) -> Result<(), Error> {
        let Some(buckets) = &self.0 else {
            return Ok(());
        };
        if let Some(wait) = buckets.wait(key) {
            return Err(Error::ResourceExhausted {
                reason: Reason::KeyRateLimited,
                message: format!(
                    "this API key made more than {} calls in a minute; retry in {wait} s",
                    buckets.per_minute
                ),
            });
        }
        buckets.take(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_past_its_rate_waits() {
        let limit = KeyRateLimit::new(2);
        let key = uuid::Uuid::nil();
        limit.admit(key).unwrap();
        limit.admit(key).unwrap();
        assert!(matches!(
            limit.admit(key),
            Err(Error::ResourceExhausted { .. })
        ));
        tokio::time::advance(std::time::Duration::from_secs(31)).await;
        limit.admit(key).unwrap();
        // Unlimited by default.
        let open = KeyRateLimit::new(0);
        for _ in 0..1000 {
            open.admit(key).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_that_keeps_failing_is_held_off_and_regains_its_allowance() {
        let throttle = AuthThrottle::new(3);
        let bad: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let good: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            throttle.check(bad).unwrap();
            throttle.failed(bad);
        }
        assert!(matches!(
            throttle.check(bad),
            Err(Error::ResourceExhausted { .. })
        ));
        throttle.check(good).unwrap();
        // One failure a 20 s comes back at 3 a minute.
        tokio::time::advance(std::time::Duration::from_secs(21)).await;
        throttle.check(bad).unwrap();
        throttle.failed(bad);
        assert!(throttle.check(bad).is_err());
    }
}
