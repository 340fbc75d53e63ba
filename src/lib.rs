//! `dunning`: a gRPC service that collects overdue invoices.

pub mod clock;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod storage;

pub mod proto {
    tonic::include_proto!("dunning.v1");
}
