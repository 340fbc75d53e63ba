//! Outgoing HTTP to services the organization runs (its payments service, its webhook
//! receivers): one client, which calls only where the outbound rule (`domain::target`) allows.
//! The URL is checked again at each call (a literal address, the scheme), names are resolved
//! by a resolver that drops every address the rule refuses (so a name that resolves to the
//! metadata service or into the network, at store time or later, is never connected to), and
//! redirects are not followed.

use crate::domain::target::TargetPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP client for one purpose, bound to the outbound rule.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    targets: TargetPolicy,
}

impl Outbound {
    /// A client whose calls take at most `timeout` (connecting at most 5 s of it), identifying
    /// itself as `dunning-<purpose>/<version>`.
    pub fn new(timeout: Duration, purpose: &str, targets: TargetPolicy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(format!("dunning-{purpose}/{}", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { targets }))
            .build()
            .map_err(|e| format!("cannot build the {purpose} HTTP client: {e}"))?;
        Ok(Self { client, targets })
    }

    /// A POST to `url`, passing the current trace on; refused (with the reason) when the rule
    /// does not allow `url`.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let url = self
            .targets
            .check_url(url)
            .map_err(|why| format!("not called: the URL {why}"))?;
        Ok(crate::telemetry::with_trace(self.client.post(url)))
    }
}

/// What went wrong with a call, with its causes (the resolver's refusal among them).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names with the system resolver and keeps only the addresses the rule allows.
struct CheckedResolver {
    targets: TargetPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.targets;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(targets, &host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `resolved` the rule allows; an error naming the host when none is left.
fn allowed_addresses(
    targets: TargetPolicy,
    host: &str,
    resolved: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let mut refusals = Vec::new();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match targets.check_ip(addr.ip()) {
            Ok(()) => true,
            Err(why) => {
                refusals.push(why);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "{host} resolves to no address this service may call: {}",
            if refusals.is_empty() {
                "no address at all".to_owned()
            } else {
                refusals.join("; ")
            }
        )
        .into());
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[tokio::test]
    async fn a_name_resolving_into_the_network_is_not_connected_to() {
        let strict = CheckedResolver {
            targets: TargetPolicy::default(),
        };
        let refused = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("loopback"), "{refused}");
        let on_premises = CheckedResolver {
            targets: TargetPolicy {
                allow_private: true,
            },
        };
        let addrs: Vec<SocketAddr> = on_premises
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn of_mixed_answers_only_the_public_addresses_are_kept() {
        let resolved = vec![
            "169.254.169.254:0".parse().unwrap(),
            "93.184.216.34:0".parse().unwrap(),
            "10.0.0.1:0".parse().unwrap(),
        ];
        let kept = allowed_addresses(TargetPolicy::default(), "rebind.example", resolved).unwrap();
        assert_eq!(kept, vec!["93.184.216.34:0".parse().unwrap()]);
        let metadata_only = vec!["169.254.169.254:0".parse().unwrap()];
        let on_premises = TargetPolicy {
            allow_private: true,
        };
        assert!(allowed_addresses(on_premises, "rebind.example", metadata_only).is_err());
    }
}
