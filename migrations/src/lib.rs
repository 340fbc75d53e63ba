//! Database migrations for the dunning service, one file per migration.
//! Run by `dunning migrate` and at start-up.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial_schema;
mod m20261124_000002_notifications;
mod m20261124_000003_payment_requests;
mod m20261124_000004_webhooks;
mod m20261202_000001_policies;
mod m20261203_000001_processes;
mod m20261203_000002_notification_attachments;
mod m20261204_000001_process_commands;
mod m20261204_000002_promises;
mod m20261205_000001_charge_policy;
mod m20261205_000001_report_indexes;
mod m20261205_000002_promise_made_at;
mod m20261206_000001_payment_plans;
mod m20261206_000002_report_copies;
mod m20261206_000003_key_scopes;
mod m20261207_000001_trace_context;
mod m20261207_000002_profile_window;

/// The ordered list of every migration the service knows.
pub struct Migrator;

/// Attributing stored payments to processes and steps (the report benchmark seeds with it).
pub use m20261206_000002_report_copies::ATTRIBUTE_PAYMENTS;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial_schema::Migration),
            Box::new(m20261124_000002_notifications::Migration),
            Box::new(m20261124_000003_payment_requests::Migration),
            Box::new(m20261124_000004_webhooks::Migration),
            Box::new(m20261202_000001_policies::Migration),
            Box::new(m20261203_000001_processes::Migration),
            Box::new(m20261203_000002_notification_attachments::Migration),
            Box::new(m20261204_000001_process_commands::Migration),
            Box::new(m20261204_000002_promises::Migration),
            Box::new(m20261205_000001_charge_policy::Migration),
            Box::new(m20261205_000002_promise_made_at::Migration),
            Box::new(m20261205_000001_report_indexes::Migration),
            Box::new(m20261206_000001_payment_plans::Migration),
            Box::new(m20261206_000002_report_copies::Migration),
            Box::new(m20261206_000003_key_scopes::Migration),
            Box::new(m20261207_000001_trace_context::Migration),
            Box::new(m20261207_000002_profile_window::Migration),
        ]
    }
}
