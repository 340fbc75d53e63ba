//! What every benchmark shares: the databases it runs on.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use dunning::app::{RunningServer, StartOptions};
use dunning::clock::SystemClock;
use dunning::config::Config;
use sea_orm::{ConnectionTrait, Database};
use std::sync::Arc;

/// The real server on 127.0.0.1:0 with the wall clock and no background tasks (a benchmark
/// drives the work itself); `configure` adjusts the configuration (SMTP, ...).
pub async fn start_server(
    database_url: String,
    configure: impl FnOnce(&mut Config),
) -> RunningServer {
    let mut config = Config {
        database_url,
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    configure(&mut config);
    dunning::app::start(
        &config,
        Arc::new(SystemClock),
        StartOptions {
            background_tasks: false,
            metrics: false,
        },
    )
    .await
    .expect("server starts")
}

/// A database a benchmark runs on, removed by `remove`.
pub enum BenchDatabase {
    Sqlite { path: std::path::PathBuf },
    Postgres { admin_url: String, name: String },
}

impl BenchDatabase {
    pub fn label(&self) -> &'static str {
        match self {
            BenchDatabase::Sqlite { .. } => "SQLite",
            BenchDatabase::Postgres { .. } => "PostgreSQL",
        }
    }

    pub fn url(&self) -> String {
        match self {
            BenchDatabase::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
            BenchDatabase::Postgres { admin_url, name } => {
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(admin_url);
                format!("{base}/{name}")
            }
        }
    }

    pub async fn remove(self) {
        match self {
            BenchDatabase::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            BenchDatabase::Postgres { admin_url, name } => {
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("PostgreSQL reachable");
                admin
                    .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                    .await
                    .expect("drop benchmark database");
            }
        }
    }
}

/// A fresh SQLite file, and a fresh PostgreSQL database when `DUNNING_BENCH_POSTGRES_URL` is
/// set (the server it names must be reachable).
pub async fn databases(name: &str) -> Vec<BenchDatabase> {
    let id = format!("{name}_{}", std::process::id());
    // DUNNING_BENCH_ONLY=postgres (or sqlite) measures one database.
    let only = std::env::var("DUNNING_BENCH_ONLY").unwrap_or_default();
    let mut out = Vec::new();
    if only != "postgres" {
        out.push(BenchDatabase::Sqlite {
            path: std::env::temp_dir().join(format!("dunning-{id}.db")),
        });
    }
    if only == "sqlite" {
        return out;
    }
    if let Ok(admin_url) = std::env::var("DUNNING_BENCH_POSTGRES_URL") {
        let name = format!("dunning_{id}");
        let admin = Database::connect(&admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create benchmark database");
        out.push(BenchDatabase::Postgres { admin_url, name });
    }
    out
}
