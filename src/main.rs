//! The `dunning` command line. No logic here: it parses arguments and calls the library.

use clap::{Parser, Subcommand};
use dunning::app::StartOptions;
use dunning::clock::{Clock, SystemClock};
use dunning::config::Config;
use dunning::domain::access::Scopes;
use dunning::service::Services;
use dunning::storage::Store;
use dunning::telemetry::Telemetry;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "dunning",
    version,
    about = "gRPC service that collects overdue invoices"
)]
struct Cli {
    /// TOML configuration file; environment variables (DUNNING_*) override it.
    #[arg(long, global = true, env = "DUNNING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve gRPC (creating a first organization on an empty database).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization; prints its first API key alone on standard output.
    Create { name: String },
    /// List the organizations (name, id, created).
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issue a new API key for an organization; prints the key alone on standard output.
    Create {
        #[arg(long)]
        org: String,
        /// What the key may call: read (dashboards, stream subscribers), write (billing sync,
        /// operator commands), payments (the payments service reporting results), admin
        /// (policies, webhooks, templates, settings); comma-separated.
        #[arg(long, default_value = "read,write,payments,admin")]
        scopes: String,
        /// Days until the key stops working; without it, it works until revoked.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List an organization's keys (id, prefix, scopes, created, revoked, expiry).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key by id.
    Revoke { key_id: uuid::Uuid },
}

/// The use cases over the configured database, which must exist already: a command run in
/// the wrong folder must not leave an empty `dunning.db` behind.
async fn services(config: &Config) -> Result<Services, Box<dyn std::error::Error>> {
    if let Some(path) = sqlite_file(&config.database_url)
        && !path.exists()
    {
        return Err(format!(
            "no database at {} (DUNNING_DATABASE_URL is {}): run `dunning serve` or `dunning \
             migrate` there first, or point DUNNING_DATABASE_URL at the service's database",
            path.display(),
            config.database_url
        )
        .into());
    }
    let store = Store::connect(&config.database_url).await?;
    Ok(Services::new(store, Arc::new(SystemClock)))
}

/// The file of a `sqlite://` URL (none for an in-memory database or another backend).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(cli.config.as_deref())?;
    // Traces are exported by the server only; other commands just log.
    let otlp = match &cli.command {
        Command::Serve => config.otlp_endpoint.as_deref(),
        _ => None,
    };
    let telemetry = Telemetry::init(config.log_format, otlp)?;
    let result = command(cli.command, &config).await;
    telemetry.shutdown().await;
    result
}

async fn command(command: Command, config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    for name in dunning::config::unknown_variables(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(
            variable = %name,
            "unknown DUNNING_* variable ignored (the README's configuration table lists the \
             settings)"
        );
    }
    match command {
        Command::Serve => {
            let server = dunning::app::start(
                config,
                Arc::new(SystemClock),
                StartOptions {
                    background_tasks: true,
                    metrics: true,
                },
            )
            .await?;
            match server.services().auth.ensure_first_organization().await? {
                Some((org, key)) => {
                    tracing::info!(organization = %org.settings.name,
                        "created the first organization; its API key is printed on standard \
                         output, once: store it now");
                    println!("{}", key.plain_text);
                }
                None => tracing::info!(
                    "the database has organizations already, so no API key is printed; \
                     `dunning key create --org <name>` issues one (`dunning org list` names them)"
                ),
            }
            shutdown_signal().await;
            tracing::info!("shutting down");
            server.shutdown().await;
        }
        Command::Migrate => {
            Store::connect(&config.database_url).await?;
            eprintln!("migrations applied");
        }
        Command::Org {
            command: OrgCommand::Create { name },
        } => {
            let (_, key) = services(config)
                .await?
                .auth
                .create_organization(&name)
                .await?;
            println!("{}", key.plain_text);
        }
        Command::Org {
            command: OrgCommand::List,
        } => {
            println!("NAME\tID\tCREATED");
            for org in services(config).await?.auth.list_organizations().await? {
                println!(
                    "{}\t{}\t{}",
                    org.settings.name,
                    org.id,
                    org.created_at.to_rfc3339()
                );
            }
        }
        Command::Key { command } => {
            let services = services(config).await?;
            match command {
                KeyCommand::Create {
                    org,
                    scopes,
                    expires_in_days,
                } => {
                    let scopes = Scopes::parse(&scopes).map_err(|e| format!("--scopes: {e}"))?;
                    if expires_in_days == Some(0) {
                        return Err("--expires-in-days: must be at least 1 (leave it out for a \
                                    key that works until revoked)"
                            .into());
                    }
                    let expires_at = expires_in_days
                        .map(|days| SystemClock.now() + chrono::Duration::days(i64::from(days)));
                    let key = services
                        .auth
                        .create_scoped_api_key(&org, scopes, expires_at)
                        .await?;
                    println!("{}", key.plain_text);
                }
                KeyCommand::List { org } => {
                    println!("ID\tPREFIX\tSCOPES\tCREATED\tREVOKED\tEXPIRES");
                    for key in services.auth.list_api_keys(&org).await? {
                        let revoked = key
                            .revoked_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "-".into());
                        let expires = key
                            .expires_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{}\t{}…\t{}\t{}\t{}\t{}",
                            key.id,
                            key.prefix,
                            key.scopes.to_text(),
                            key.created_at.to_rfc3339(),
                            revoked,
                            expires
                        );
                    }
                }
                KeyCommand::Revoke { key_id } => {
                    services.auth.revoke_api_key(key_id).await?;
                    eprintln!("revoked {key_id}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
