//! Outgoing HTTP to services the organization runs (its payments service, its webhook
//! receivers): one way to build the clients.

use std::time::Duration;

/// A client whose calls take at most `timeout` (connecting at most 5 s of it), identifying
/// itself as `dunning-<purpose>/<version>`.
pub fn http_client(timeout: Duration, purpose: &str) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(format!("dunning-{purpose}/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the {purpose} HTTP client: {e}"))
}
