//! The integration tests: one binary (one compile and link of the shared harness in
//! `common/`), a module per area. Each test starts the real server on 127.0.0.1:0 over its own
//! database (SQLite, and PostgreSQL for the `postgres::` variants) and calls it over TCP.

#[macro_use]
mod common;

mod abuse;
mod cli;
mod commands;
mod customers;
mod engine_replicas;
mod events;
mod faults;
mod hostile;
mod invoices;
mod metrics;
mod notifications;
mod payment_plans;
mod payment_requests;
mod policies;
mod processes;
mod readme;
mod report;
mod roles;
mod secrets;
mod simulation;
mod targets;
mod tls;
mod traces;
mod validation;
mod webhooks;
