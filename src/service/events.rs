//! Reading the event log.

use super::paging::PageRequest;
use crate::clock::Clock;
use crate::core::Caller;
use crate::core::Core;
use crate::domain::event::Event;
use crate::domain::query::EventFilter;
use crate::error::Error;
use crate::events::feed::EventFeed;
use crate::metrics::Metrics;
use crate::storage::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// The event log, page by page (WatchEvents is `LiveEvents`).
#[derive(Clone)]
pub struct Events {
    core: Arc<Core>,
}

impl Events {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

impl Events {
    /// A page of events after `after_sequence` (or after the page token's position).
    pub async fn list_events(
        &self,
        caller: Caller,
        filter: &EventFilter,
        after_sequence: i64,
        page: &PageRequest,
    ) -> Result<(Vec<Event>, String), Error> {
        let token_key = (filter, after_sequence);
        let after = page
            .after_sequence(&(caller.organization_id, &token_key))?
            .unwrap_or(after_sequence);
        let rows = self
            .core
            .store
            .list_events(
                caller.organization_id,
                filter,
                after,
                None,
                page.fetch_limit(),
            )
            .await?;
        Ok(
            page.finish(rows, &(caller.organization_id, &token_key), |e| {
                e.sequence.to_string()
            }),
        )
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// An event, shared with the other subscribers it was broadcast to.
    Event(Arc<Event>),
    /// Nothing happened for a while; the stream is alive.
    Heartbeat(DateTime<Utc>),
}

/// Events per read of the log while catching up.
const WATCH_BATCH: u64 = 500;
/// Items buffered per subscriber. A subscriber that reads slower than events arrive fills this
/// buffer, then falls behind the broadcast, then catches up from the log: nothing is dropped
/// and writers never wait.
const WATCH_BUFFER: usize = 64;
/// Silence after which a heartbeat is sent.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// One subscriber: where it is in the organization's log, and where its items go.
struct Subscriber {
    store: Store,
    clock: Arc<dyn Clock>,
    organization_id: Uuid,
    filter: EventFilter,
    /// Every event of the organization up to here was considered (sent if it matched).
    /// Organization sequences have no gaps, so a broadcast event beyond `cursor + 1` means
    /// this subscriber missed some and reads them from the log.
    cursor: i64,
    sender: mpsc::Sender<Result<WatchItem, Error>>,
    /// When the last item went out: a heartbeat follows after `HEARTBEAT` of silence, however
    /// many events the filter dropped meanwhile.
    last_sent: tokio::time::Instant,
}

/// Why a subscriber stops.
enum Stop {
    /// The client went away.
    Gone,
    Failed(Error),
}

/// Completes when the server starts shutting down.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Subscriber {
    async fn send(&mut self, item: Result<WatchItem, Error>) -> Result<(), Stop> {
        self.sender.send(item).await.map_err(|_| Stop::Gone)?;
        self.last_sent = tokio::time::Instant::now();
        Ok(())
    }

    /// Sends the matching events in (cursor, up_to] from the log and moves the cursor there.
    async fn replay_through(&mut self, up_to: i64) -> Result<(), Stop> {
        while self.cursor < up_to {
            let events = self
                .store
                .list_events(
                    self.organization_id,
                    &self.filter,
                    self.cursor,
                    Some(up_to + 1),
                    WATCH_BATCH,
                )
                .await
                .map_err(Stop::Failed)?;
            let full = events.len() as u64 == WATCH_BATCH;
            for event in events {
                self.cursor = event.sequence;
                self.send(Ok(WatchItem::Event(Arc::new(event)))).await?;
            }
            if !full {
                self.cursor = up_to;
            }
        }
        Ok(())
    }

    /// Handles one broadcast event: skips what was already considered, fills a gap from the
    /// log, then sends it if it matches.
    async fn take(&mut self, event: Arc<Event>) -> Result<(), Stop> {
        if event.sequence <= self.cursor {
            return Ok(());
        }
        if event.sequence > self.cursor + 1 {
            self.replay_through(event.sequence - 1).await?;
        }
        self.cursor = event.sequence;
        if self.filter.matches(&event) {
            self.send(Ok(WatchItem::Event(event))).await?;
        }
        Ok(())
    }

    async fn run(
        mut self,
        start: i64,
        head: i64,
        mut live: broadcast::Receiver<Arc<Event>>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        self.cursor = start;
        self.replay_through(head).await?;
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                _ = stopped(&mut shutdown) => return self.shutting_down().await,
                _ = self.sender.closed() => return Err(Stop::Gone),
                _ = tokio::time::sleep_until(self.last_sent + HEARTBEAT) => {
                    let now = self.clock.now();
                    self.send(Ok(WatchItem::Heartbeat(now))).await?;
                    continue;
                }
            };
            match received {
                Ok(event) => self.take(event).await?,
                // Fell behind the broadcast: the next event received shows the gap, which
                // `take` fills from the log.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return self.shutting_down().await,
            }
        }
    }

    async fn shutting_down(&mut self) -> Result<(), Stop> {
        let message = format!(
            "the server is shutting down; reconnect with after_sequence = {}",
            self.cursor
        );
        self.send(Err(Error::ShuttingDown(message))).await
    }
}

/// The live side: event streams fed by this process's fan-out of the log, ended when the
/// server shuts down.
#[derive(Clone)]
pub struct LiveEvents {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Set when the server shuts down: event streams end so clients can resume elsewhere.
    shutdown: Arc<watch::Sender<bool>>,
    /// The live fan-out of the event log to this process's subscribers.
    feed: Arc<EventFeed>,
    /// Counts the open streams.
    metrics: Arc<Metrics>,
}

impl LiveEvents {
    pub fn new(store: Store, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        let shutdown = Arc::new(watch::channel(false).0);
        let feed = EventFeed::new(store.clone(), shutdown.subscribe());
        Self {
            store,
            clock,
            shutdown,
            feed,
            metrics,
        }
    }

    /// Ends every event stream with UNAVAILABLE (the server is going away).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

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
        let organization_id = caller.organization_id;
        // Subscribe first, then read where the log ends: every later event is broadcast.
        let live = self.feed.subscribe(organization_id).await?;
        let head = self.store.last_event_sequence(organization_id).await?;
        let start = after_sequence.unwrap_or(head);
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let subscriber = Subscriber {
            store: self.store.clone(),
            clock: self.clock.clone(),
            organization_id,
            filter,
            cursor: start,
            sender,
            last_sent: tokio::time::Instant::now(),
        };
        let shutdown = self.shutdown.subscribe();
        let open = self.metrics.watch_stream();
        tokio::spawn(async move {
            let _open = open;
            let errors = subscriber.sender.clone();
            if let Err(Stop::Failed(e)) = subscriber.run(start, head, live, shutdown).await {
                let _ = errors.send(Err(e)).await;
            }
        });
        Ok(receiver)
    }
}
