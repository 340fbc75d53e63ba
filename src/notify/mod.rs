//! Dunning notifications: email templates and locale-aware formatting.
pub mod format;
pub mod templates;
pub mod transport;
