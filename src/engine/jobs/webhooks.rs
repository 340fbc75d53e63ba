//! Creates webhook deliveries from the event log and posts the due ones.

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::events::webhooks::WebhookSender;
use crate::service::Jobs;

pub struct WebhookDeliveries {
    pub jobs: Jobs,
    pub sender: WebhookSender,
}

#[async_trait::async_trait]
impl Job for WebhookDeliveries {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.jobs.deliver_due_webhooks(&self.sender).await
    }

    /// Webhooks deliver events: any commit of events may bring work.
    async fn woken(&self) {
        let _ = self.jobs.store().event_wakeups().changed().await;
    }
}
