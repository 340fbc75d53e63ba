//! Notifications: emails in the outbox, their recipients, quiet hours and retry schedule.

use super::organization::QuietHours;
use chrono::{DateTime, Days, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

/// Attempts before a temporarily failing notification is given up as FAILED.
pub const MAX_ATTEMPTS: i32 = 8;
/// First retry delay; doubles each attempt.
const FIRST_RETRY: Duration = Duration::seconds(30);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::hours(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationState {
    Queued,
    Sent,
    Failed,
    Suppressed,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Suppressed => "SUPPRESSED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Sent, Self::Failed, Self::Suppressed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Who receives an email.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipients {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
}

impl Recipients {
    /// To the given addresses, with cc and bcc lists; every address appears once (the first
    /// place it is listed wins: to, then cc, then bcc), compared case-insensitively.
    pub fn new(to: &[String], cc: &[String], bcc_lists: &[&[String]]) -> Recipients {
        let mut seen: Vec<String> = Vec::new();
        let mut take = |list: &mut Vec<String>, address: &String| {
            let key = address.trim().to_ascii_lowercase();
            if !key.is_empty() && !seen.contains(&key) {
                seen.push(key);
                list.push(address.trim().to_owned());
            }
        };
        let mut out = Recipients::default();
        for a in to {
            take(&mut out.to, a);
        }
        for a in cc {
            take(&mut out.cc, a);
        }
        for list in bcc_lists {
            for a in *list {
                take(&mut out.bcc, a);
            }
        }
        out
    }
}

/// An email in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub process_id: Option<Uuid>,
    pub payment_request_id: Option<Uuid>,
    pub invoice_external_ids: Vec<String>,
    /// Template kind, as `TemplateKind::as_str`.
    pub kind: String,
    pub state: NotificationState,
    pub locale: String,
    pub from_name: String,
    pub from_email: String,
    pub reply_to_email: String,
    pub recipients: Recipients,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// Files sent with the email (the agency hand-over's statement).
    pub attachments: Vec<Attachment>,
    pub message_id: String,
    pub attempts: i32,
    pub last_error: String,
    pub suppressed_reason: String,
    pub server_response: String,
    /// When the next attempt is due; set only while QUEUED.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A file sent with an email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub filename: String,
    /// MIME type, e.g. `text/csv; charset=utf-8`.
    pub content_type: String,
    pub content: String,
}

impl Notification {
    /// Stops a queued notification from being sent.
    pub fn suppress(&mut self, reason: &str, now: DateTime<Utc>) {
        self.state = NotificationState::Suppressed;
        self.suppressed_reason = reason.to_owned();
        self.next_attempt_at = None;
        self.updated_at = now;
    }

    /// Forgets who it was sent to and what it said (a customer deletion); the record that a
    /// notification of this kind existed, and its outcome, stay.
    pub fn erase_personal_data(&mut self, now: DateTime<Utc>) {
        self.recipients = Recipients::default();
        self.subject.clear();
        self.text_body.clear();
        self.html_body.clear();
        self.attachments.clear();
        self.updated_at = now;
    }
}

/// The Message-ID of a notification: derived from its id alone, so a re-send after a crash
/// carries the same one and receivers can drop the duplicate.
pub fn message_id(notification_id: Uuid, from_email: &str) -> String {
    let domain = from_email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("dunning.invalid");
    format!("<{}@{domain}>", notification_id.simple())
}

/// The first instant at or after `now` inside the sending window, in the customer's zone.
pub fn next_send_time(now: DateTime<Utc>, tz: Tz, quiet: &QuietHours) -> DateTime<Utc> {
    if !quiet.enabled {
        return now;
    }
    let local = now.with_timezone(&tz);
    let time = local.time();
    if time >= quiet.start && time < quiet.end {
        return now;
    }
    let day = if time < quiet.start {
        local.date_naive()
    } else {
        local
            .date_naive()
            .checked_add_days(Days::new(1))
            .unwrap_or(local.date_naive())
    };
    local_instant(day.and_time(quiet.start), tz).max(now)
}

/// A local wall-clock time as an instant; a time skipped by a DST change moves forward to the
/// first instant that exists.
fn local_instant(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(local + Duration::hours(h)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| local.and_utc())
}

/// Delay before attempt `attempts + 1`, after `attempts` failed: exponential from 30 s, capped
/// at 2 h, with `jitter` in [0, 1) spreading it by ±20 % so that retries after an outage do not
/// arrive all at once.
pub fn retry_delay(attempts: i32, jitter: f64) -> Duration {
    super::backoff::exponential(FIRST_RETRY, MAX_RETRY, attempts, jitter)
}

/// An organization's replacement for a built-in template, in one locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    pub kind: String,
    pub locale: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window() -> QuietHours {
        QuietHours::default()
    }

    #[test]
    fn inside_the_window_sends_now() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 12:00 UTC = 13:00 in Berlin.
        let now = at("2026-11-24T12:00:00Z");
        assert_eq!(next_send_time(now, berlin, &window()), now);
    }

    #[test]
    fn before_and_after_the_window_waits_for_the_next_opening() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 05:00 UTC = 06:00 in Berlin: wait until 08:00 Berlin = 07:00 UTC.
        assert_eq!(
            next_send_time(at("2026-11-24T05:00:00Z"), berlin, &window()),
            at("2026-11-24T07:00:00Z")
        );
        // 20:30 UTC = 21:30 in Berlin: wait until tomorrow 08:00 Berlin.
        assert_eq!(
            next_send_time(at("2026-11-24T20:30:00Z"), berlin, &window()),
            at("2026-11-25T07:00:00Z")
        );
        // End of window is exclusive: 20:00 Berlin is outside.
        assert_eq!(
            next_send_time(at("2026-11-24T19:00:00Z"), berlin, &window()),
            at("2026-11-25T07:00:00Z")
        );
        let disabled = QuietHours {
            enabled: false,
            ..window()
        };
        assert_eq!(
            next_send_time(at("2026-11-24T02:00:00Z"), berlin, &disabled),
            at("2026-11-24T02:00:00Z")
        );
        let custom = QuietHours {
            enabled: true,
            start: NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        };
        assert_eq!(
            next_send_time(at("2026-11-24T00:00:00Z"), chrono_tz::UTC, &custom),
            at("2026-11-24T09:30:00Z")
        );
    }

    #[test]
    fn recipients_are_unique_across_to_cc_and_bcc() {
        let r = Recipients::new(
            &["a@x.io".into()],
            &["A@x.io".into(), "b@x.io".into()],
            &[
                &["b@x.io".into(), "c@x.io".into()],
                &["C@X.io".into(), "d@x.io".into()],
            ],
        );
        assert_eq!(r.to, vec!["a@x.io"]);
        assert_eq!(r.cc, vec!["b@x.io"]);
        assert_eq!(r.bcc, vec!["c@x.io", "d@x.io"]);
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        assert_eq!(retry_delay(1, 0.5), Duration::seconds(30));
        assert_eq!(retry_delay(2, 0.5), Duration::seconds(60));
        assert_eq!(retry_delay(20, 0.5), Duration::hours(2));
        assert!(retry_delay(3, 0.0) < retry_delay(3, 0.99));
        assert_eq!(retry_delay(3, 0.0), Duration::seconds(96));
    }

    #[test]
    fn message_ids_are_deterministic() {
        let id = Uuid::from_u128(7);
        assert_eq!(
            message_id(id, "billing@acme.test"),
            message_id(id, "billing@acme.test")
        );
        assert!(message_id(id, "billing@acme.test").ends_with("@acme.test>"));
        assert!(message_id(id, "").ends_with("@dunning.invalid>"));
    }
}
