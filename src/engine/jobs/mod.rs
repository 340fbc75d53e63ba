//! The background jobs: each wraps the use case it runs and says what wakes it.

mod outbox;
mod overdue;
mod payments;
mod processes;
mod webhooks;

pub use outbox::OutboxDelivery;
pub use overdue::OverdueScanner;
pub use payments::PaymentRequests;
pub use processes::DunningEngine;
pub use webhooks::WebhookDeliveries;
