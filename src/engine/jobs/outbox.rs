//! Delivers due emails from the outbox.

use crate::engine::runtime::Job;
use crate::error::Error;
use crate::notify::transport::Mailer;
use crate::service::Services;
use std::sync::Arc;

pub struct OutboxDelivery {
    pub services: Services,
    pub mailer: Arc<dyn Mailer>,
}

#[async_trait::async_trait]
impl Job for OutboxDelivery {
    fn name(&self) -> &'static str {
        "outbox delivery"
    }

    async fn round(&self) -> Result<usize, Error> {
        self.services.deliver_due_notifications(&self.mailer).await
    }

    async fn woken(&self) {
        self.services.outbox_changed().await
    }
}
