//! The only source of "now". Domain and engine code receive time from a `Clock`; tests drive a
//! `ManualClock`.

use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

/// A new id for a stored row: a UUIDv7, whose leading bits are the wall-clock milliseconds so
/// that ids sort by creation and index well. It is the one place ids are taken from the time;
/// nothing reads those bits back as a time.
#[allow(clippy::disallowed_methods)]
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time, for production.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one reader of the system time: everything else is handed a clock.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
