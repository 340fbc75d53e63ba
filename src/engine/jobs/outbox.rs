//! Delivers due emails from the outbox.

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::notify::transport::Mailer;
use crate::service::Jobs;
use std::sync::Arc;

pub struct OutboxDelivery {
    pub jobs: Jobs,
    pub mailer: Arc<dyn Mailer>,
}

#[async_trait::async_trait]
impl Job for OutboxDelivery {
    fn name(&self) -> &'static str {
        "outbox delivery"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.jobs.deliver_due_notifications(&self.mailer).await
    }

    async fn woken(&self) {
        self.jobs.outbox_changed().await
    }
}
