//! Live fan-out of the event log.
//!
//! One tail reader per organization (started by its first subscriber, stopped after its last
//! one leaves) reads each newly committed batch of events once and broadcasts it to every
//! subscriber of that organization; a commit costs one query however many subscribers there
//! are. The broadcast is bounded and never blocks the tail: a subscriber that falls behind
//! loses its place in the broadcast and fills the gap from the table (see
//! `LiveEvents::watch_events`), so nothing is dropped and writers never wait.

use crate::domain::event::Event;
use crate::domain::query::EventFilter;
use crate::error::Error;
use crate::storage::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Events a subscriber may fall behind the tail before it reads the table instead.
const BROADCAST_CAPACITY: usize = 4096;
/// Events per tail read.
const TAIL_BATCH: u64 = 1000;

/// The tails of this process, one per organization with subscribers.
pub struct EventFeed {
    store: Store,
    tails: Mutex<HashMap<Uuid, broadcast::Sender<Arc<Event>>>>,
    shutdown: watch::Receiver<bool>,
}

impl EventFeed {
    pub fn new(store: Store, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Self {
            store,
            tails: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    /// Subscribes to every event of the organization committed from now on, in sequence
    /// order (with gaps only where the subscriber lagged). Events committed before the call
    /// may also arrive; callers skip what they already have.
    pub async fn subscribe(
        self: &Arc<Self>,
        organization_id: Uuid,
    ) -> Result<broadcast::Receiver<Arc<Event>>, Error> {
        if let Some(sender) = self.lock().get(&organization_id) {
            return Ok(sender.subscribe());
        }
        // A new tail starts after the latest committed event, read before the subscriber
        // reads its own starting point, so no event falls between the two.
        let last = self.store.last_event_sequence(organization_id).await?;
        let mut tails = self.lock();
        if let Some(sender) = tails.get(&organization_id) {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(BROADCAST_CAPACITY);
        tails.insert(organization_id, sender.clone());
        tokio::spawn(self.clone().tail(organization_id, last, sender));
        Ok(receiver)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, broadcast::Sender<Arc<Event>>>> {
        self.tails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the organization's new events whenever events are committed (here or on another
    /// replica) and broadcasts them; ends when nobody listens any more or the server stops.
    async fn tail(
        self: Arc<Self>,
        organization_id: Uuid,
        mut last: i64,
        sender: broadcast::Sender<Arc<Event>>,
    ) {
        let mut wakeups = self.store.event_wakeups();
        let mut shutdown = self.shutdown.clone();
        let everything = EventFilter::default();
        loop {
            // Seen before reading: a commit during the read wakes the next wait.
            wakeups.borrow_and_update();
            match self
                .store
                .list_events(organization_id, &everything, last, None, TAIL_BATCH)
                .await
            {
                Ok(events) => {
                    let full = events.len() as u64 == TAIL_BATCH;
                    for event in events {
                        last = event.sequence;
                        // No receivers is not an error: they are checked below.
                        let _ = sender.send(Arc::new(event));
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(organization = %organization_id, error = %e,
                        "event tail read failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return self.stop(organization_id),
                    }
                }
            }
            {
                let mut tails = self.lock();
                if sender.receiver_count() == 0 {
                    tails.remove(&organization_id);
                    return;
                }
            }
            tokio::select! {
                changed = wakeups.changed() => if changed.is_err() { return self.stop(organization_id) },
                _ = shutdown.wait_for(|stop| *stop) => return self.stop(organization_id),
            }
        }
    }

    /// Forgets a tail; its subscribers see the broadcast close.
    fn stop(&self, organization_id: Uuid) {
        self.lock().remove(&organization_id);
    }
}
