//! Reading the event log.

use super::paging::PageRequest;
use super::{Caller, Services};
use crate::domain::event::Event;
use crate::error::Error;
use crate::storage::EventFilter;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

impl Services {
    /// A page of events after `after_sequence` (or after the page token's position).
    pub async fn list_events(
        &self,
        caller: Caller,
        filter: &EventFilter,
        after_sequence: i64,
        page: &PageRequest,
    ) -> Result<(Vec<Event>, String), Error> {
        let token_key = (filter, after_sequence);
        let after = page.after_sequence(&token_key)?.unwrap_or(after_sequence);
        let rows = self
            .store
            .list_events(caller.organization_id, filter, after, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, &token_key, |e| e.sequence.to_string()))
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(Box<Event>),
    /// Nothing happened for a while; the stream is alive.
    Heartbeat(DateTime<Utc>),
}

/// Events per read of the log while catching up.
const WATCH_BATCH: u64 = 500;
/// Items buffered per subscriber; a subscriber that reads slower than events arrive waits on
/// this buffer and is then caught up from the log, so nothing is dropped and writers never wait.
const WATCH_BUFFER: usize = 64;
/// Silence after which a heartbeat is sent.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

impl Services {
    /// Follows the event log from `after_sequence` (or from the latest event if `None`):
    /// replays what is stored, then delivers new events as they are committed, in sequence
    /// order, without loss or duplicates. Ends with UNAVAILABLE when the server shuts down; a
    /// subscriber resumes with the last sequence it received.
    pub async fn watch_events(
        &self,
        caller: Caller,
        filter: EventFilter,
        after_sequence: Option<i64>,
    ) -> Result<mpsc::Receiver<Result<WatchItem, Error>>, Error> {
        let mut cursor = match after_sequence {
            Some(after) => after,
            None => {
                self.store
                    .last_event_sequence(caller.organization_id)
                    .await?
            }
        };
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let services = self.clone();
        let mut wakeups = self.store.event_wakeups();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    let message = format!(
                        "the server is shutting down; reconnect with after_sequence = {cursor}"
                    );
                    let _ = sender.send(Err(Error::ShuttingDown(message))).await;
                    return;
                }
                // Mark the current wakeup as seen before reading, so a commit that lands
                // during the read wakes the next wait.
                wakeups.borrow_and_update();
                let events = match services
                    .store
                    .list_events(caller.organization_id, &filter, cursor, WATCH_BATCH)
                    .await
                {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                };
                let full = events.len() as u64 == WATCH_BATCH;
                for event in events {
                    cursor = event.sequence;
                    if sender
                        .send(Ok(WatchItem::Event(Box::new(event))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    changed = wakeups.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => {}
                    _ = sender.closed() => return,
                    _ = tokio::time::sleep(HEARTBEAT) => {
                        if sender.send(Ok(WatchItem::Heartbeat(services.now()))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(receiver)
    }
}
