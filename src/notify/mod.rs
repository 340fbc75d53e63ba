//! Dunning notifications: email templates and locale-aware formatting.
pub mod context;
pub mod format;
pub mod templates;
pub mod transport;
