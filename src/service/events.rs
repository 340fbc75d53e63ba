//! Reading the event log.

use super::paging::PageRequest;
use super::{Caller, Services};
use crate::domain::event::Event;
use crate::error::Error;
use crate::storage::EventFilter;

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
