//! Where the service may send a request or point a customer: the one rule for every outbound
//! URL (webhook endpoints, the http payments provider, the payment link template). Only https
//! (http where private targets are allowed), no user name or password, and never a host that
//! is or resolves to an address inside the network (loopback, private, link-local, CGNAT,
//! multicast, unspecified, reserved) unless `DUNNING_ALLOW_PRIVATE_TARGETS` allows it, and never
//! a cloud metadata address. Addresses are compared as parsed, so every spelling (decimal,
//! octal or hex IPv4, IPv4-mapped IPv6, a trailing dot) is the same address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Longest outbound URL accepted.
pub const MAX_URL_LENGTH: usize = 2000;

/// Instance metadata services: never a target, whatever the setting.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, ...
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
];

/// The outbound rule in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Private addresses (and plain http) allowed: tests and on-premises installs whose
    /// payments service and webhook receivers live inside the network.
    pub allow_private: bool,
}

impl TargetPolicy {
    /// `url` if the service may call it (or send a customer to it), otherwise why not.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        if url.len() > MAX_URL_LENGTH || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "must be a URL of at most {MAX_URL_LENGTH} characters without spaces"
            ));
        }
        let parsed = Url::parse(url).map_err(|e| format!("must be an absolute URL ({e})"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err("must be an https URL".into());
        }
        // Where it points before http or https: a metadata address is the reason to give.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        match parsed.host() {
            None => return Err("must name a host".into()),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => self.check_name(name)?,
        }
        if parsed.scheme() == "http" && !self.allow_private {
            return Err(
                "must use https (http only where DUNNING_ALLOW_PRIVATE_TARGETS is on)".into(),
            );
        }
        Ok(parsed)
    }

    /// Whether the service may connect to `ip` (a URL's literal address, or what its name
    /// resolved to when the call is made).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Metadata => Err(format!("{ip} is a cloud metadata address")),
            Class::Internal(_) if self.allow_private => Ok(()),
            Class::Internal(what) => Err(format!(
                "{ip} is {what} (allowed only where DUNNING_ALLOW_PRIVATE_TARGETS is on)"
            )),
        }
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&name.as_str()) {
            return Err(format!("{name} is a cloud metadata service"));
        }
        if self.allow_private {
            return Ok(());
        }
        let internal = name == "localhost"
            || !name.contains('.')
            || [
                ".localhost",
                ".local",
                ".internal",
                ".svc",
                ".lan",
                ".home.arpa",
            ]
            .iter()
            .any(|suffix| name.ends_with(suffix));
        if internal {
            return Err(format!(
                "{name} names a host inside the network (allowed only where \
                 DUNNING_ALLOW_PRIVATE_TARGETS is on)"
            ));
        }
        Ok(())
    }
}

enum Class {
    Public,
    Metadata,
    /// Inside the network, described.
    Internal(&'static str),
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if METADATA_V6.contains(&v6) {
                return Class::Metadata;
            }
            // An IPv4 address written as IPv6 (mapped ::ffff:a.b.c.d, or NAT64 64:ff9b::a.b.c.d)
            // is that IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return classify_v4(Ipv4Addr::new(a, b, c, d));
            }
            if v6.is_loopback() {
                Class::Internal("a loopback address")
            } else if v6.is_unspecified() {
                Class::Internal("the unspecified address")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Class::Internal("a unique local address")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Class::Internal("a link-local address")
            } else if s[0] & 0xff00 == 0xff00 {
                Class::Internal("a multicast address")
            } else if s[0] == 0x2001 && s[1] == 0xdb8 {
                Class::Internal("a documentation address")
            } else if v6.to_ipv4().is_some() {
                // The deprecated IPv4-compatible form ::a.b.c.d.
                Class::Internal("an IPv4-compatible address")
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Class::Metadata
    } else if ip.is_loopback() {
        Class::Internal("a loopback address")
    } else if ip.is_private() {
        Class::Internal("a private address")
    } else if ip.is_link_local() {
        Class::Internal("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Class::Internal("a carrier-grade NAT address")
    } else if a == 0 {
        Class::Internal("the unspecified network")
    } else if ip.is_multicast() {
        Class::Internal("a multicast address")
    } else if a >= 240 {
        Class::Internal("a reserved or broadcast address")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
        Class::Internal("a special-purpose address")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Class::Internal("a documentation address")
    } else {
        Class::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const ON_PREMISES: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    #[test]
    fn metadata_addresses_are_refused_in_every_spelling_and_setting() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "https://2852039166/",
            "https://0xa9fea9fe/",
            "https://0251.0376.0251.0376/",
            "https://169.254.169.254./",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[fd00:ec2::254]/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://METADATA.google.internal./",
            "https://100.100.100.200/",
        ] {
            for policy in [STRICT, ON_PREMISES] {
                let refused = policy.check_url(url).unwrap_err();
                assert!(refused.contains("metadata"), "{url}: {refused}");
            }
        }
    }

    #[test]
    fn internal_addresses_need_the_setting() {
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://169.254.1.1/",
            "https://0.0.0.0/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://localhost/",
            "https://app.localhost/",
            "https://payments.svc/",
            "https://payments/",
            "https://pay.internal/",
        ] {
            assert!(STRICT.check_url(url).is_err(), "{url}");
            assert!(ON_PREMISES.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn public_https_urls_pass() {
        for url in [
            "https://hooks.example.com/dunning",
            "https://93.184.216.34:8443/x?y=1",
            "https://[2606:4700::1111]/",
        ] {
            assert!(STRICT.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn schemes_credentials_and_garbage_are_refused() {
        for (url, why) in [
            ("http://hooks.example.com/", "https"),
            ("javascript:alert(1)", "https"),
            ("ftp://hooks.example.com/", "https"),
            ("https://user:pass@hooks.example.com/", "user name"),
            ("https://user@hooks.example.com/", "user name"),
            ("hooks.example.com/x", "absolute"),
            ("https://hooks.example.com/a b", "spaces"),
            ("https://hooks.example.com/\r\nBcc: x", "spaces"),
        ] {
            let refused = STRICT.check_url(url).unwrap_err();
            assert!(refused.contains(why), "{url}: {refused}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert!(STRICT.check_url(&long).is_err());
        assert!(ON_PREMISES.check_url("http://10.0.0.5:8080/charge").is_ok());
    }
}
