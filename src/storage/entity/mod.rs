//! sea-orm entities, one per table. Timestamps are microseconds since the Unix epoch; money is
//! minor units of the row's currency.

pub mod api_key;
pub mod charge;
pub mod customer;
pub mod dunning_check;
pub mod event;
pub mod idempotency_key;
pub mod invoice;
pub mod notification;
pub mod organization;
pub mod payment;
pub mod payment_request;
pub mod payment_request_invoice;
pub mod policy;
pub mod process;
pub mod process_command;
pub mod process_invoice;
pub mod step_run;
pub mod template_override;
pub mod webhook_delivery;
pub mod webhook_endpoint;
