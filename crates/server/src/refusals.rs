//! Refused requests in the audit trail, summarised rather than one row per request: refused
//! tokens (`auth.refused`, user `-`: a refused token speaks for no one) and requests for another
//! user's job (`job.foreign`, the requesting user) are counted per (action, user, reason) and
//! minute, and each counter becomes one audit record (`detail`: how many, and why) once its
//! minute is over. The summary is flushed when a later minute's refusal arrives, by the sweeper,
//! and on shutdown.
//!
//! Memory is bounded: at most [`MAX_COUNTERS`] counters a minute; further distinct ones are
//! counted under one `other` counter per action. Reasons are the service's own messages,
//! shortened; the token itself is never stored.

use std::collections::BTreeMap;
use std::sync::Mutex;

use fzip_store::jobs::AuditRecord;

/// Distinct (action, user, reason) counters kept for one minute.
pub const MAX_COUNTERS: usize = 64;
const MINUTE_MS: i64 = 60_000;
/// Longest user or reason kept, in characters.
const MAX_TEXT: usize = 120;

/// A refused token.
pub const AUTH_REFUSED: &str = "auth.refused";
/// A request for a job that belongs to another user (answered like a missing one: 404).
pub const JOB_FOREIGN: &str = "job.foreign";

type Key = (&'static str, String, String);

/// The counters of the current minute.
#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    counts: BTreeMap<Key, u64>,
}

fn short(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(MAX_TEXT).collect();
        s.push('…');
        s
    }
}

impl Window {
    fn drain(&mut self) -> Vec<AuditRecord> {
        let at = self.minute.saturating_mul(MINUTE_MS);
        let start = chrono::DateTime::from_timestamp_millis(at)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((action, user, reason), n)| AuditRecord {
                at,
                user_id: user,
                action: action.to_string(),
                job_id: None,
                outcome: if action == AUTH_REFUSED {
                    "UNAUTHORIZED".into()
                } else {
                    "NOT_FOUND".into()
                },
                detail: Some(format!(
                    "{n} request{} in the minute from {start}: {reason}",
                    if n == 1 { "" } else { "s" }
                )),
                source: Some("summary".into()),
            })
            .collect()
    }
}

impl Refusals {
    /// Counts one refusal at `now` (ms); returns the records of a minute that is over.
    pub fn note(
        &self,
        now: i64,
        action: &'static str,
        user: &str,
        reason: &str,
    ) -> Vec<AuditRecord> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let minute = now.div_euclid(MINUTE_MS);
        let done = if minute != w.minute {
            let done = w.drain();
            w.minute = minute;
            done
        } else {
            Vec::new()
        };
        let mut key = (action, short(user), short(reason));
        if !w.counts.contains_key(&key) && w.counts.len() >= MAX_COUNTERS {
            key = (
                action,
                "-".into(),
                "other refusals (too many distinct users or reasons this minute)".into(),
            );
        }
        *w.counts.entry(key).or_insert(0) += 1;
        done
    }

    /// The records of minutes over at `now` (every counter with `i64::MAX`, on shutdown).
    pub fn flush(&self, now: i64) -> Vec<AuditRecord> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.div_euclid(MINUTE_MS) > w.minute {
            w.drain()
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_counter_and_minute() {
        let r = Refusals::default();
        let t0: i64 = 1_700_000_040_000; // some minute
        let minute = t0 - t0.rem_euclid(MINUTE_MS);
        for i in 0..1000 {
            assert!(r.note(minute + i, AUTH_REFUSED, "-", "expired").is_empty());
        }
        assert!(r.note(minute + 5, JOB_FOREIGN, "bob", "job j1").is_empty());
        assert!(r.flush(minute + 59_999).is_empty());
        let mut records = r.note(minute + MINUTE_MS, AUTH_REFUSED, "-", "expired");
        records.sort_by(|a, b| a.action.cmp(&b.action));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].action, AUTH_REFUSED);
        assert!(
            records[0]
                .detail
                .as_deref()
                .unwrap_or("")
                .starts_with("1000 requests")
        );
        assert_eq!(records[1].user_id, "bob");
        assert_eq!(r.flush(i64::MAX).len(), 1);
        assert!(r.flush(i64::MAX).is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let r = Refusals::default();
        for i in 0..10_000 {
            r.note(
                0,
                AUTH_REFUSED,
                "-",
                &format!("no signing key k{i} is known"),
            );
        }
        let records = r.flush(i64::MAX);
        assert_eq!(records.len(), MAX_COUNTERS + 1);
        let other = records
            .iter()
            .find(|r| r.detail.as_deref().unwrap_or("").contains("other refusals"))
            .map(|r| r.detail.clone().unwrap_or_default());
        assert!(
            other
                .unwrap_or_default()
                .starts_with(&format!("{} requests", 10_000 - MAX_COUNTERS))
        );
    }
}
