//! Everything that runs without a request: one runtime loop drives every background job.

pub mod jobs;
pub mod runtime;
