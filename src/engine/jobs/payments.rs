//! Charges due payment requests and emails their payment links.

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::payments::Providers;
use crate::service::Jobs;

pub struct PaymentRequests {
    pub jobs: Jobs,
    pub providers: Providers,
}

#[async_trait::async_trait]
impl Job for PaymentRequests {
    fn name(&self) -> &'static str {
        "payment requests"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.jobs
            .process_due_payment_requests(&self.providers)
            .await
    }

    async fn woken(&self) {
        self.jobs.payment_requests_changed().await
    }
}
