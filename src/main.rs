//! The `dunning` command line. No logic here: it parses arguments and calls the library.

use clap::{Parser, Subcommand};
use dunning::clock::{Clock, SystemClock};
use dunning::config::{Config, LogFormat};
use dunning::domain::access::Scopes;
use dunning::service::Services;
use dunning::storage::Store;
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DUNNING_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn services(config: &Config) -> Result<Services, dunning::error::Error> {
    let store = Store::connect(&config.database_url).await?;
    Ok(Services::new(store, Arc::new(SystemClock)))
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
    init_logging(config.log_format);
    for name in dunning::config::unknown_variables(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(
            variable = %name,
            "unknown DUNNING_* variable ignored (the README's configuration table lists the \
             settings)"
        );
    }
    match cli.command {
        Command::Serve => {
            let services = services(&config).await?;
            if let Some((org, key)) = services.auth.ensure_first_organization().await? {
                eprintln!(
                    "Created organization `{}`. Its API key (shown once, store it now):",
                    org.settings.name
                );
                println!("{}", key.plain_text);
            }
            services.store().clone().close().await;
            dunning::app::run(&config, Arc::new(SystemClock), shutdown_signal()).await?;
        }
        Command::Migrate => {
            Store::connect(&config.database_url).await?;
            eprintln!("migrations applied");
        }
        Command::Org {
            command: OrgCommand::Create { name },
        } => {
            let (_, key) = services(&config)
                .await?
                .auth
                .create_organization(&name)
                .await?;
            println!("{}", key.plain_text);
        }
        Command::Key { command } => {
            let services = services(&config).await?;
            match command {
                KeyCommand::Create {
                    org,
                    scopes,
                    expires_in_days,
                } => {
                    let scopes = Scopes::parse(&scopes).map_err(|e| format!("--scopes: {e}"))?;
                    let expires_at = expires_in_days
                        .map(|days| SystemClock.now() + chrono::Duration::days(i64::from(days)));
                    let key = services
                        .auth
                        .create_scoped_api_key(&org, scopes, expires_at)
                        .await?;
                    println!("{}", key.plain_text);
                }
                KeyCommand::List { org } => {
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
                            "{}\t{}…\t{}\t{}\t{}\texpires {}",
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
