//! Configuration: defaults, then an optional TOML file, then the environment. Secrets may come
//! from files named by `*_FILE` variables (for Kubernetes secrets mounted as files).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The parts of the service one `dunning serve` process runs (`DUNNING_ROLES`, TOML `roles`):
/// `api` serves the gRPC API; `engine` does the background work (the dunning engine, the
/// overdue scanner, email delivery, payment requests, webhook deliveries). Default: both. Any
/// number of processes of either role share one PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub engine: bool,
}

impl Roles {
    pub const BOTH: Roles = Roles {
        api: true,
        engine: true,
    };

    /// `api`, `engine` or `api,engine` (in any order, spaces allowed).
    pub fn parse(text: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            api: false,
            engine: false,
        };
        for role in text.split(',').map(str::trim) {
            match role {
                "api" => roles.api = true,
                "engine" => roles.engine = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`: expected api, engine or api,engine"
                    ));
                }
            }
        }
        Ok(roles)
    }

    /// The roles as `parse` reads them.
    pub fn as_text(self) -> &'static str {
        match (self.api, self.engine) {
            (true, true) => "api,engine",
            (true, false) => "api",
            (false, true) => "engine",
            (false, false) => "",
        }
    }
}

impl<'de> Deserialize<'de> for Roles {
    /// A string (`"api,engine"`) or a list (`["api", "engine"]`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            List(Vec<String>),
        }
        let text = match Given::deserialize(d)? {
            Given::Text(text) => text,
            Given::List(list) => list.join(","),
        };
        Roles::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What this process runs.
    pub roles: Roles,
    /// `sqlite://dunning.db?mode=rwc` (embedded default) or `postgres://...`.
    pub database_url: String,
    /// Address the gRPC server listens on.
    pub grpc_addr: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`/metrics`).
    pub metrics_addr: SocketAddr,
    /// SMTP relay in lettre URL form; unset writes `.eml` files to `outbox_dir`.
    pub smtp_url: Option<String>,
    /// SMTP connections kept open and used in parallel.
    pub smtp_pool_size: u32,
    /// Where the embedded mail transport writes messages.
    pub outbox_dir: PathBuf,
    pub log_format: LogFormat,
    /// How often the overdue scanner looks for invoices whose due date has passed.
    #[serde(with = "seconds")]
    pub overdue_scan_interval: Duration,
    /// How long a charge request to an organization's payments service (`http` provider) may
    /// take; past it the outcome is unknown and the charge is retried with the same key.
    #[serde(with = "seconds")]
    pub payment_timeout: Duration,
    /// How long a webhook endpoint may take to answer one delivery.
    #[serde(with = "seconds")]
    pub webhook_timeout: Duration,
    /// Failed webhook attempts in a row after which an endpoint is disabled.
    pub webhook_failures_before_disable: i32,
    /// How long a replica holds the work it claimed (a due step, a customer to look at, an
    /// email being sent). A replica that dies mid-work leaves it to another after this, so it
    /// must exceed the longest step or SMTP conversation.
    #[serde(with = "seconds")]
    pub claim_lease: Duration,
    /// How long a stopping process (SIGTERM, SIGINT) waits for in-flight requests and the
    /// background rounds it is in before it abandons them.
    #[serde(with = "seconds")]
    pub drain_timeout: Duration,
    /// Calls with a missing or wrong API key one client address may make per minute (and in
    /// a burst) before its calls are refused with RESOURCE_EXHAUSTED for a while.
    pub auth_failures_per_minute: u32,
    /// Calls one API key may make per minute (also its burst); 0 = unlimited.
    pub key_requests_per_minute: u32,
    /// Calls one API key may have in flight (open streams included); 0 = unlimited.
    pub key_concurrency: usize,
    /// Largest request message accepted, in bytes (RESOURCE_EXHAUSTED past it).
    pub max_request_bytes: usize,
    /// gRPC connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Calls (HTTP/2 streams) one connection may have open at once; more wait.
    pub max_streams_per_connection: u32,
    /// An OpenTelemetry collector's OTLP/gRPC address (`http://collector:4317`): spans are
    /// exported there as traces. Unset (the default), nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The gRPC server's certificate chain (PEM); with `tls_key`, the server speaks TLS only.
    /// Read again when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// A CA (PEM): every client must present a certificate it issued, whose common name
    /// names the organization its API keys must belong to.
    pub tls_client_ca: Option<PathBuf>,
    /// Webhook endpoints, the http payments provider and payment links may be inside the
    /// network (private, loopback, link-local addresses; plain http). Off: only public https.
    /// Cloud metadata addresses are refused either way.
    pub allow_private_targets: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            roles: Roles::BOTH,
            database_url: "sqlite://dunning.db?mode=rwc".into(),
            grpc_addr: "127.0.0.1:50051".parse().expect("valid address"),
            metrics_addr: "127.0.0.1:9090".parse().expect("valid address"),
            smtp_url: None,
            smtp_pool_size: 32,
            outbox_dir: PathBuf::from("./outbox"),
            log_format: LogFormat::Text,
            overdue_scan_interval: Duration::from_secs(30),
            payment_timeout: Duration::from_secs(15),
            webhook_timeout: Duration::from_secs(10),
            webhook_failures_before_disable: 50,
            claim_lease: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
            auth_failures_per_minute: crate::service::throttle::DEFAULT_AUTH_FAILURES_PER_MINUTE,
            key_requests_per_minute: 0,
            key_concurrency: 0,
            // A full BatchUpsertInvoices with metadata fits easily.
            max_request_bytes: 8 * 1024 * 1024,
            max_connections: 10_000,
            max_streams_per_connection: 1_000,
            otlp_endpoint: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            allow_private_targets: false,
        }
    }
}

/// A numeric setting: its variable, its TOML key, the values it takes, and how it reads and
/// writes the configuration. The environment and the TOML file are checked by the same table.
struct Numeric {
    variable: &'static str,
    key: &'static str,
    range: std::ops::RangeInclusive<u64>,
    get: fn(&Config) -> u64,
    set: fn(&mut Config, u64),
}

impl Numeric {
    fn expected(&self) -> String {
        format!("expected {} to {}", self.range.start(), self.range.end())
    }
}

const NUMERIC: [Numeric; 13] = [
    Numeric {
        variable: "DUNNING_SMTP_POOL_SIZE",
        key: "smtp_pool_size",
        range: 1..=100,
        get: |c| c.smtp_pool_size as u64,
        set: |c, n| c.smtp_pool_size = n as u32,
    },
    Numeric {
        variable: "DUNNING_OVERDUE_SCAN_INTERVAL_SECONDS",
        key: "overdue_scan_interval",
        range: 1..=86_400,
        get: |c| c.overdue_scan_interval.as_secs(),
        set: |c, n| c.overdue_scan_interval = Duration::from_secs(n),
    },
    Numeric {
        variable: "DUNNING_PAYMENT_TIMEOUT_SECONDS",
        key: "payment_timeout",
        range: 1..=300,
        get: |c| c.payment_timeout.as_secs(),
        set: |c, n| c.payment_timeout = Duration::from_secs(n),
    },
    Numeric {
        variable: "DUNNING_WEBHOOK_TIMEOUT_SECONDS",
        key: "webhook_timeout",
        range: 1..=60,
        get: |c| c.webhook_timeout.as_secs(),
        set: |c, n| c.webhook_timeout = Duration::from_secs(n),
    },
    Numeric {
        variable: "DUNNING_WEBHOOK_FAILURES_BEFORE_DISABLE",
        key: "webhook_failures_before_disable",
        range: 1..=10_000,
        get: |c| c.webhook_failures_before_disable.max(0) as u64,
        set: |c, n| c.webhook_failures_before_disable = n as i32,
    },
    Numeric {
        variable: "DUNNING_CLAIM_LEASE_SECONDS",
        key: "claim_lease",
        range: 1..=3600,
        get: |c| c.claim_lease.as_secs(),
        set: |c, n| c.claim_lease = Duration::from_secs(n),
    },
    Numeric {
        variable: "DUNNING_DRAIN_TIMEOUT_SECONDS",
        key: "drain_timeout",
        range: 1..=600,
        get: |c| c.drain_timeout.as_secs(),
        set: |c, n| c.drain_timeout = Duration::from_secs(n),
    },
    Numeric {
        variable: "DUNNING_AUTH_FAILURES_PER_MINUTE",
        key: "auth_failures_per_minute",
        range: 1..=1_000_000,
        get: |c| u64::from(c.auth_failures_per_minute),
        set: |c, n| c.auth_failures_per_minute = n as u32,
    },
    Numeric {
        variable: "DUNNING_KEY_REQUESTS_PER_MINUTE",
        key: "key_requests_per_minute",
        range: 0..=10_000_000,
        get: |c| u64::from(c.key_requests_per_minute),
        set: |c, n| c.key_requests_per_minute = n as u32,
    },
    Numeric {
        variable: "DUNNING_KEY_CONCURRENCY",
        key: "key_concurrency",
        range: 0..=100_000,
        get: |c| c.key_concurrency as u64,
        set: |c, n| c.key_concurrency = n as usize,
    },
    Numeric {
        variable: "DUNNING_MAX_CONNECTIONS",
        key: "max_connections",
        range: 1..=1_000_000,
        get: |c| c.max_connections as u64,
        set: |c, n| c.max_connections = n as usize,
    },
    Numeric {
        variable: "DUNNING_MAX_STREAMS_PER_CONNECTION",
        key: "max_streams_per_connection",
        range: 1..=100_000,
        get: |c| u64::from(c.max_streams_per_connection),
        set: |c, n| c.max_streams_per_connection = n as u32,
    },
    Numeric {
        variable: "DUNNING_MAX_REQUEST_BYTES",
        key: "max_request_bytes",
        range: 1024..=67_108_864,
        get: |c| c.max_request_bytes as u64,
        set: |c, n| c.max_request_bytes = n as usize,
    },
];

/// Every environment variable the service reads, with its TOML key (`None`: environment
/// only). The README's configuration table lists exactly these (a test checks it).
pub const SETTINGS: &[(&str, Option<&str>)] = &[
    ("DUNNING_ROLES", Some("roles")),
    ("DUNNING_DATABASE_URL", Some("database_url")),
    ("DUNNING_GRPC_ADDR", Some("grpc_addr")),
    ("DUNNING_METRICS_ADDR", Some("metrics_addr")),
    ("DUNNING_SMTP_URL", Some("smtp_url")),
    ("DUNNING_SMTP_POOL_SIZE", Some("smtp_pool_size")),
    ("DUNNING_OUTBOX_DIR", Some("outbox_dir")),
    ("DUNNING_LOG_FORMAT", Some("log_format")),
    (
        "DUNNING_OVERDUE_SCAN_INTERVAL_SECONDS",
        Some("overdue_scan_interval"),
    ),
    ("DUNNING_PAYMENT_TIMEOUT_SECONDS", Some("payment_timeout")),
    ("DUNNING_WEBHOOK_TIMEOUT_SECONDS", Some("webhook_timeout")),
    (
        "DUNNING_WEBHOOK_FAILURES_BEFORE_DISABLE",
        Some("webhook_failures_before_disable"),
    ),
    ("DUNNING_CLAIM_LEASE_SECONDS", Some("claim_lease")),
    ("DUNNING_DRAIN_TIMEOUT_SECONDS", Some("drain_timeout")),
    (
        "DUNNING_AUTH_FAILURES_PER_MINUTE",
        Some("auth_failures_per_minute"),
    ),
    (
        "DUNNING_KEY_REQUESTS_PER_MINUTE",
        Some("key_requests_per_minute"),
    ),
    ("DUNNING_KEY_CONCURRENCY", Some("key_concurrency")),
    ("DUNNING_MAX_REQUEST_BYTES", Some("max_request_bytes")),
    ("DUNNING_MAX_CONNECTIONS", Some("max_connections")),
    (
        "DUNNING_MAX_STREAMS_PER_CONNECTION",
        Some("max_streams_per_connection"),
    ),
    ("DUNNING_OTLP_ENDPOINT", Some("otlp_endpoint")),
    ("DUNNING_TLS_CERT", Some("tls_cert")),
    ("DUNNING_TLS_KEY", Some("tls_key")),
    ("DUNNING_TLS_CLIENT_CA", Some("tls_client_ca")),
    (
        "DUNNING_ALLOW_PRIVATE_TARGETS",
        Some("allow_private_targets"),
    ),
    ("DUNNING_LOG", None),
    ("DUNNING_CONFIG", None),
];

/// Settings whose value may come from a file named by the variable with `_FILE` appended.
const SECRET_SETTINGS: [&str; 2] = ["DUNNING_DATABASE_URL", "DUNNING_SMTP_URL"];

/// The `DUNNING_*` variable names among `names` that the service does not read (a typo, or a
/// setting of another version): each is worth a warning at start.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = |name: &str| {
        SETTINGS.iter().any(|(setting, _)| *setting == name)
            || SECRET_SETTINGS
                .iter()
                .any(|secret| name.strip_suffix("_FILE") == Some(*secret))
    };
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("DUNNING_") && !known(name))
        .collect();
    unknown.sort();
    unknown
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, overlaid with `file` (if given), overlaid with the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                let config: Config = toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                config.check_ranges(path)?;
                config
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Where the gRPC server's TLS material is, if it speaks TLS: a certificate and its key
    /// come together, and client certificates need a server certificate.
    pub fn tls(&self) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
        match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(cert), Some(key), client_ca) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.clone(),
            })),
            (None, None, None) => Ok(None),
            (None, None, Some(_)) => Err(ConfigError(
                "tls_client_ca (DUNNING_TLS_CLIENT_CA) needs the server's own certificate: set \
                 tls_cert and tls_key (DUNNING_TLS_CERT, DUNNING_TLS_KEY) too"
                    .into(),
            )),
            _ => Err(ConfigError(
                "tls_cert and tls_key (DUNNING_TLS_CERT, DUNNING_TLS_KEY) are set together: the \
                 certificate chain and its private key, both PEM files"
                    .into(),
            )),
        }
    }

    /// The numeric values of a TOML file, checked with the ranges the environment has.
    fn check_ranges(&self, path: &Path) -> Result<(), ConfigError> {
        for setting in &NUMERIC {
            let n = (setting.get)(self);
            if !setting.range.contains(&n) {
                return Err(ConfigError(format!(
                    "{}: {} = {n}: {}",
                    path.display(),
                    setting.key,
                    setting.expected()
                )));
            }
        }
        Ok(())
    }

    /// Applies `DUNNING_*` variables read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let secret = |name: &str| -> Result<Option<String>, ConfigError> {
            if let Some(value) = var(name) {
                return Ok(Some(value));
            }
            match var(&format!("{name}_FILE")) {
                Some(path) => std::fs::read_to_string(&path)
                    .map(|s| Some(s.trim().to_owned()))
                    .map_err(|e| ConfigError(format!("{name}_FILE={path}: {e}"))),
                None => Ok(None),
            }
        };
        let addr = |name: &str, value: String| {
            value
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError(format!("{name}={value}: {e}")))
        };
        if let Some(url) = secret("DUNNING_DATABASE_URL")? {
            self.database_url = url;
        }
        if let Some(v) = var("DUNNING_ROLES") {
            self.roles =
                Roles::parse(&v).map_err(|e| ConfigError(format!("DUNNING_ROLES={v}: {e}")))?;
        }
        if let Some(v) = var("DUNNING_GRPC_ADDR") {
            self.grpc_addr = addr("DUNNING_GRPC_ADDR", v)?;
        }
        if let Some(v) = var("DUNNING_METRICS_ADDR") {
            self.metrics_addr = addr("DUNNING_METRICS_ADDR", v)?;
        }
        if let Some(url) = secret("DUNNING_SMTP_URL")? {
            self.smtp_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(v) = var("DUNNING_OTLP_ENDPOINT") {
            self.otlp_endpoint = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let valid = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !valid {
                return Err(ConfigError(format!(
                    "otlp_endpoint (DUNNING_OTLP_ENDPOINT) = {endpoint}: expected the http:// \
                     or https:// address of an OTLP/gRPC collector, like http://collector:4317"
                )));
            }
        }
        for (variable, setting) in [
            ("DUNNING_TLS_CERT", &mut self.tls_cert),
            ("DUNNING_TLS_KEY", &mut self.tls_key),
            ("DUNNING_TLS_CLIENT_CA", &mut self.tls_client_ca),
        ] {
            if let Some(v) = var(variable) {
                *setting = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
            }
        }
        self.tls()?;
        if let Some(v) = var("DUNNING_ALLOW_PRIVATE_TARGETS") {
            self.allow_private_targets = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                other => {
                    return Err(ConfigError(format!(
                        "DUNNING_ALLOW_PRIVATE_TARGETS={other}: expected true or false"
                    )));
                }
            };
        }
        if let Some(v) = var("DUNNING_OUTBOX_DIR") {
            self.outbox_dir = PathBuf::from(v);
        }
        if let Some(v) = var("DUNNING_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => {
                    return Err(ConfigError(format!(
                        "DUNNING_LOG_FORMAT={other}: expected json or text"
                    )));
                }
            };
        }
        for setting in NUMERIC {
            if let Some(v) = var(setting.variable) {
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| setting.range.contains(n))
                    .ok_or_else(|| {
                        ConfigError(format!("{}={v}: {}", setting.variable, setting.expected()))
                    })?;
                (setting.set)(self, n);
            }
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "database_url must start with sqlite: or postgres://".into(),
            ));
        }
        Ok(())
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn environment_overrides_defaults() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("DUNNING_DATABASE_URL", "postgres://u@h/db"),
            ("DUNNING_GRPC_ADDR", "0.0.0.0:6000"),
            ("DUNNING_LOG_FORMAT", "json"),
        ]);
        let mut config = Config::default();
        config
            .apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(config.database_url, "postgres://u@h/db");
        assert_eq!(config.grpc_addr.port(), 6000);
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("dunning-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db");
        std::fs::write(&file, "postgres://secret@h/db\n").unwrap();
        let path = file.to_string_lossy().to_string();
        let mut config = Config::default();
        config
            .apply_env(|k| (k == "DUNNING_DATABASE_URL_FILE").then(|| path.clone()))
            .unwrap();
        assert_eq!(config.database_url, "postgres://secret@h/db");
    }

    #[test]
    fn an_otlp_endpoint_must_be_an_http_address() {
        let with = |value: &str| {
            let mut config = Config::default();
            config
                .apply_env(|k| (k == "DUNNING_OTLP_ENDPOINT").then(|| value.to_owned()))
                .map(|()| config.otlp_endpoint)
        };
        assert_eq!(
            with("http://127.0.0.1:4317").unwrap().as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(with("").unwrap(), None, "empty turns it off");
        let refused = with("collector:4317").unwrap_err().to_string();
        assert!(refused.contains("DUNNING_OTLP_ENDPOINT"), "{refused}");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut config = Config::default();
        assert!(
            config
                .apply_env(|k| (k == "DUNNING_GRPC_ADDR").then(|| "nope".into()))
                .is_err()
        );
        assert!(
            config
                .apply_env(|k| (k == "DUNNING_LOG_FORMAT").then(|| "xml".into()))
                .is_err()
        );
        assert!(
            config
                .apply_env(|k| (k == "DUNNING_DATABASE_URL").then(|| "mysql://x".into()))
                .is_err()
        );
    }

    #[test]
    fn the_file_and_the_environment_share_ranges() {
        let dir = std::env::temp_dir().join(format!("dunning-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dunning.toml");
        std::fs::write(&file, "smtp_pool_size = 0\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.ends_with("smtp_pool_size = 0: expected 1 to 100"),
            "{err}"
        );
        let mut config = Config::default();
        let err = config
            .apply_env(|k| (k == "DUNNING_SMTP_POOL_SIZE").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(": DUNNING_SMTP_POOL_SIZE=0: expected 1 to 100"),
            "{err}"
        );
        std::fs::write(&file, "claim_lease = 7200\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.ends_with("claim_lease = 7200: expected 1 to 3600"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn roles_are_api_engine_or_both() {
        let roles = |text: &str| {
            let mut config = Config::default();
            config
                .apply_env(|k| (k == "DUNNING_ROLES").then(|| text.to_owned()))
                .map(|()| config.roles)
        };
        assert_eq!(Config::default().roles, Roles::BOTH);
        assert_eq!(
            roles("engine").unwrap(),
            Roles {
                api: false,
                engine: true
            }
        );
        assert_eq!(roles("engine, api").unwrap(), Roles::BOTH);
        let refused = roles("workers").unwrap_err().to_string();
        assert!(refused.contains("DUNNING_ROLES=workers"), "{refused}");
        assert!(roles("").is_err());
        let config: Config = toml::from_str("roles = [\"api\"]").unwrap();
        assert_eq!(config.roles.as_text(), "api");
        assert!(toml::from_str::<Config>("roles = \"api,cron\"").is_err());
    }

    #[test]
    fn unknown_variables_are_found() {
        let names = [
            "DUNNING_GRPC_ADDR",
            "DUNNING_SMTP_URL_FILE",
            "DUNNING_GRPC_ADRR",
            "DUNNING_GRPC_ADDR_FILE",
            "HOME",
        ]
        .map(String::from);
        assert_eq!(
            unknown_variables(names),
            ["DUNNING_GRPC_ADDR_FILE", "DUNNING_GRPC_ADRR"]
        );
    }

    /// The README's configuration table and the code list the same settings, so neither
    /// drifts from the other.
    #[test]
    fn the_readme_lists_every_setting() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("| Environment | TOML key |")
            .expect("configuration table");
        let rows: Vec<(String, Option<String>)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let env = cells[1].split('`').nth(1).unwrap_or_default().to_owned();
                let toml = cells[2].split('`').nth(1).map(str::to_owned);
                (env, toml)
            })
            .collect();
        let documented: Vec<(String, Option<String>)> = rows
            .into_iter()
            .filter(|(env, _)| env != "DUNNING_CONFIG")
            .collect();
        let coded: Vec<(String, Option<String>)> = SETTINGS
            .iter()
            .filter(|(env, _)| *env != "DUNNING_CONFIG")
            .map(|(env, toml)| (env.to_string(), toml.map(str::to_owned)))
            .collect();
        assert_eq!(documented, coded);
        // Every TOML key of the table is one the configuration file accepts.
        for (_, key) in SETTINGS {
            if let Some(key) = key {
                let text = format!("{key} = 0");
                let refused = toml::from_str::<Config>(&text)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(!refused.contains("unknown field"), "{key}: {refused}");
            }
        }
    }

    #[test]
    fn toml_file_is_read() {
        let text = "database_url = \"sqlite::memory:\"\ngrpc_addr = \"127.0.0.1:7000\"\noverdue_scan_interval = 5\n";
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.grpc_addr.port(), 7000);
        assert_eq!(config.overdue_scan_interval, Duration::from_secs(5));
    }
}
