//! Pure business rules: no I/O, no clock reads, no transport or storage types.

pub mod access;
pub mod backoff;
pub mod charges;
pub mod customer;
pub mod event;
pub mod invoice;
pub mod money;
pub mod notification;
pub mod organization;
pub mod overdue;
pub mod payment_request;
pub mod policy;
pub mod process;
pub mod profile;
pub mod query;
pub mod report;
pub mod segment;
pub mod signature;
pub mod target;
pub mod template;
pub mod validation;
pub mod webhook;
