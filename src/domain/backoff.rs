//! Retry timing shared by every outgoing side effect (emails, charges, webhooks).

use chrono::Duration;

/// Delay before the next try after `failures` failed ones (at least 1): `first`, doubling per
/// failure, capped at `cap`, spread by `jitter` in [0, 1) over ±20 % so that retries after an
/// outage do not all arrive at once.
pub fn exponential(first: Duration, cap: Duration, failures: i32, jitter: f64) -> Duration {
    let exponent = (failures.max(1) - 1).min(20) as u32;
    let base = first
        .checked_mul(2i32.pow(exponent))
        .unwrap_or(cap)
        .min(cap);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Duration::milliseconds((base.num_milliseconds() as f64 * factor) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_spreads() {
        let (first, cap) = (Duration::seconds(30), Duration::hours(1));
        assert_eq!(exponential(first, cap, 1, 0.5), Duration::seconds(30));
        assert_eq!(exponential(first, cap, 3, 0.5), Duration::seconds(120));
        assert_eq!(exponential(first, cap, 40, 0.5), cap);
        assert_eq!(exponential(first, cap, 1, 0.0), Duration::seconds(24));
        assert!(exponential(first, cap, 1, 0.999) < Duration::seconds(36));
    }
}
