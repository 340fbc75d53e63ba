//! Opaque keyset page tokens.
//!
//! A token names the last row returned and a fingerprint of that key together with the list,
//! the organization and the filters it was issued for, so a token replayed with other
//! filters, on another list or by another organization, or altered, is refused instead of
//! silently skipping rows.

use crate::error::Error;
use crate::error::Reason;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Debug;
use uuid::Uuid;

/// Default number of items of a list page.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Most items of a list page.
pub const MAX_PAGE_SIZE: u64 = 1000;

#[derive(Serialize, Deserialize)]
struct Token {
    /// Last key returned: a row id, or an event sequence.
    k: String,
    /// Filter fingerprint.
    f: String,
}

/// A request for one page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub size: u64,
    pub token: String,
}

impl PageRequest {
    /// `size` 0 means the default; larger than the maximum means the maximum.
    pub fn new(size: u64, token: String) -> Self {
        let size = match size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        Self { size, token }
    }

    /// The id after which this page starts, checked against the filter.
    pub fn after_id(&self, filter: &impl Debug) -> Result<Option<Uuid>, Error> {
        self.after_key(filter)?
            .map(|k| k.parse::<Uuid>().map_err(|_| invalid_token()))
            .transpose()
    }

    /// The sequence after which this page starts.
    pub fn after_sequence(&self, filter: &impl Debug) -> Result<Option<i64>, Error> {
        self.after_key(filter)?
            .map(|k| k.parse::<i64>().map_err(|_| invalid_token()))
            .transpose()
    }

    /// The text key (a code) after which this page starts.
    pub fn after_text(&self, filter: &impl Debug) -> Result<Option<String>, Error> {
        self.after_key(filter)
    }

    fn after_key(&self, filter: &impl Debug) -> Result<Option<String>, Error> {
        if self.token.is_empty() {
            return Ok(None);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(self.token.as_bytes())
            .map_err(|_| invalid_token())?;
        let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid_token())?;
        if token.f != token_fingerprint(&token.k, filter) {
            return Err(Error::InvalidRequest {
                reason: Reason::InvalidPageToken,
                field: "page_token".into(),
                message: "page_token was issued for other filters, another list or another \
                          organization, or was altered"
                    .into(),
            });
        }
        Ok(Some(token.k))
    }

    /// Cuts a page fetched with `size + 1` rows and makes the next token.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        filter: &impl Debug,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, String) {
        if rows.len() as u64 > self.size {
            rows.truncate(self.size as usize);
            let last = rows.last().map(&key).unwrap_or_default();
            let token = Token {
                f: token_fingerprint(&last, filter),
                k: last,
            };
            let json = serde_json::to_vec(&token).unwrap_or_default();
            (rows, URL_SAFE_NO_PAD.encode(json))
        } else {
            (rows, String::new())
        }
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }
}

fn invalid_token() -> Error {
    Error::InvalidRequest {
        reason: Reason::InvalidPageToken,
        field: "page_token".into(),
        message: "page_token is not a token returned by this list".into(),
    }
}

/// What a token's key is bound to: itself, the filter's type (the list) and value (which
/// carries the organization).
fn token_fingerprint<F: Debug>(key: &str, filter: &F) -> String {
    fingerprint(&(key, std::any::type_name::<F>(), filter))
}

/// A short stable hash of a value's debug form.
pub fn fingerprint(value: &impl Debug) -> String {
    let digest = Sha256::digest(format!("{value:?}").as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_filter_check() {
        let page = PageRequest::new(2, String::new());
        let (rows, token) = page.finish(vec![1, 2, 3], &"filter-a", |n| {
            Uuid::from_u128(*n as u128).to_string()
        });
        assert_eq!(rows, vec![1, 2]);
        let next = PageRequest::new(2, token.clone());
        assert_eq!(
            next.after_id(&"filter-a").unwrap(),
            Some(Uuid::from_u128(2))
        );
        assert!(next.after_id(&"filter-b").is_err());
        let altered: Token =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.as_bytes()).unwrap()).unwrap();
        let altered = Token {
            k: Uuid::from_u128(7).to_string(),
            f: altered.f,
        };
        let altered = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).unwrap());
        assert!(PageRequest::new(2, altered).after_id(&"filter-a").is_err());
        assert!(
            next.after_id(&String::from("filter-a")).is_err(),
            "another list"
        );
        assert!(
            PageRequest::new(2, "garbage".into())
                .after_id(&"filter-a")
                .is_err()
        );
        let (_, last) = page.finish(vec![1], &"filter-a", |n| n.to_string());
        assert!(last.is_empty());
    }

    #[test]
    fn sizes_are_defaulted_and_capped() {
        assert_eq!(PageRequest::new(0, String::new()).size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::new(5000, String::new()).size, MAX_PAGE_SIZE);
    }
}
