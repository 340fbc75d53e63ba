//! `dunning`: a gRPC service that collects overdue invoices.

pub mod app;
pub mod clock;
pub mod config;
pub mod core;
pub mod domain;
pub mod engine;
pub mod error;
pub mod events;
pub mod grpc;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod payments;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod tls;

/// Generated from `proto/dunning/v1`.
#[allow(clippy::all)]
pub mod proto {
    tonic::include_proto!("dunning.v1");
}
