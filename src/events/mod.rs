//! Delivering the event log: the live fan-out behind WatchEvents, and webhooks.

pub mod feed;
pub mod webhooks;
