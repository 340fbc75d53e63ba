//! The one loop every background job runs in: a round of work; then, unless the round did
//! something (which may have left more due), a wait for the job's wake-up or its tick for work
//! that became due with time. A failed round (database down) is logged and retried after a
//! backoff that doubles up to a ceiling, so an outage is not hammered; the loop never exits on
//! its own, only when told to stop.

use crate::error::Error;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// The first wait after a failed round; doubled per further failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A background job.
#[async_trait::async_trait]
pub trait Job: Send + Sync + 'static {
    /// The job's name in logs and metrics.
    fn name(&self) -> &'static str;

    /// One round of work; returns how many items it worked on.
    async fn round(&self) -> Result<usize, Error>;

    /// Completes when new work may have arrived (a commit that queued some). Jobs without
    /// such a signal keep the default, which never completes.
    async fn woken(&self) {
        std::future::pending::<()>().await
    }

    /// How long to wait at most between rounds for work that becomes due with time.
    fn tick(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// How long to wait after a round that found nothing: the tick, or less when the job
    /// knows work falls due sooner.
    async fn idle_wait(&self) -> Duration {
        self.tick()
    }
}

/// The wait after `failures` failed rounds in a row.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(5))
        .min(MAX_BACKOFF)
}

/// Runs `job` until `stopped` turns true.
pub fn spawn(
    job: Arc<dyn Job>,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            // Measures the round's duration; no rule reads it as a time.
            #[allow(clippy::disallowed_methods)]
            let started = std::time::Instant::now();
            let result = job
                .round()
                .instrument(tracing::info_span!("round", job = job.name()))
                .await;
            metrics.count_worker_round(
                job.name(),
                result.as_ref().map(|n| *n).map_err(|_| ()),
                started.elapsed().as_secs_f64(),
            );
            let wait = match result {
                Ok(n) if n > 0 => {
                    failures = 0;
                    if *stopped.borrow() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    job.idle_wait().await
                }
                Err(e) => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(job = job.name(), error = %e, retry_in = ?wait, "background round failed");
                    wait
                }
            };
            tokio::select! {
                _ = job.woken(), if failures == 0 => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(6), Duration::from_secs(30));
        assert_eq!(backoff(60), Duration::from_secs(30));
    }

    /// Fails its first two rounds, then reports work once, then idles.
    struct Flaky {
        rounds: AtomicUsize,
        wake: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Job for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn round(&self) -> Result<usize, Error> {
            match self.rounds.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Error::Unavailable("database down".into())),
                2 => Ok(1),
                _ => Ok(0),
            }
        }
        async fn woken(&self) {
            self.wake.notified().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_rounds_back_off_and_the_loop_recovers_and_stops() {
        let job = Arc::new(Flaky {
            rounds: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
        });
        let metrics = Arc::new(Metrics::default());
        let (stop, stopped) = watch::channel(false);
        let task = spawn(job.clone(), metrics.clone(), stopped);
        // Two failures: 1 s then 2 s of backoff (a plain 1 s tick would have run 4 rounds by
        // 2.5 s); then a round with work runs the next at once.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(job.rounds.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(job.rounds.load(Ordering::SeqCst), 4);
        // Idle: a wake-up runs a round before the tick.
        job.wake.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(job.rounds.load(Ordering::SeqCst), 5);
        let text = metrics.render();
        assert!(text.contains("dunning_background_failures_total{worker=\"flaky\"} 2\n"));
        assert!(text.contains("dunning_background_items_total{worker=\"flaky\"} 1\n"));
        stop.send_replace(true);
        task.await.unwrap();
    }
}
