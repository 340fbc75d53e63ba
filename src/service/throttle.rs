//! Throttling of failed authentications per client address: a token bucket per address that
//! failed (a missing, unknown, revoked or expired key). While an address has no token left,
//! its calls are refused with RESOURCE_EXHAUSTED before any key is looked up, so a flood of
//! wrong keys costs no database work past the allowance. Addresses that never fail have no
//! bucket.

use crate::error::{Error, Reason};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::time::Instant;

/// Buckets kept at most; past it, the buckets that have refilled are dropped first.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Failed authentications allowed per client address and minute, unless configured.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

pub struct AuthThrottle {
    /// The burst an address may fail with, and how many failures a minute it regains.
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthThrottle {
    pub fn new(per_minute: u32) -> Self {
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

    /// RESOURCE_EXHAUSTED while `client` has used up its failed authentications.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Error> {
        let Some(client) = client else { return Ok(()) };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get_mut(&client) else {
            return Ok(());
        };
        self.refill(bucket, Instant::now());
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) * 60.0 / self.per_minute).ceil();
        Err(Error::ResourceExhausted {
            reason: Reason::TooManyFailedAuthentications,
            message: format!(
                "too many calls with a missing or wrong API key from {client}; retry in {wait} s"
            ),
        })
    }

    /// Counts a failed authentication of `client`.
    pub fn failed(&self, client: Option<IpAddr>) {
        let Some(client) = client else { return };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&client) {
            let full = self.per_minute;
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                let regained = now.duration_since(b.refilled_at).as_secs_f64() * per_minute / 60.0;
                b.tokens + regained < full
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.per_minute,
            refilled_at: now,
        });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
