//! The rate-limit gate: never spend a request X has told us we do not have.
//!
//! X counts requests per endpoint and per account in windows and says where
//! a window stands on every answer (`x-rate-limit-limit`, `-remaining`,
//! `-reset` in epoch seconds). Each session keeps one bucket per endpoint:
//!
//! * a call is admitted while `in_flight < remaining`, so concurrent callers
//!   never overspend a known budget;
//! * while the budget is unknown (a fresh session, a new window, an answer
//!   without headers) exactly one call at a time goes out as a probe and the
//!   others wait for its answer;
//! * when the budget is spent (`remaining == 0`, or a 429) nobody calls until
//!   the reset: callers get the time to wait and their jobs are put back
//!   until then (without spending an attempt).
//!
//! That is what keeps a 429 storm down to at most one call per window per
//! endpoint and account, however many jobs are queued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use switchboard_core::time::now_ms;
use tokio::sync::Notify;

/// How long a caller waits for an in-flight probe before giving up its turn.
const PROBE_WAIT: Duration = Duration::from_secs(30);
/// Without a reset time, a 429 is assumed to last this long.
const DEFAULT_PENALTY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Bucket {
    limit: Option<u32>,
    remaining: Option<u32>,
    /// Epoch milliseconds when the window ends.
    reset_at: Option<i64>,
    in_flight: u32,
}

impl Bucket {
    fn roll_over(&mut self, now: i64) {
        if self.reset_at.is_some_and(|reset| now >= reset) {
            self.remaining = None;
            self.reset_at = None;
        }
    }
}

/// What the gate says about one endpoint, for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetView {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset_at: Option<i64>,
}

#[derive(Default)]
pub(crate) struct RateGate {
    buckets: Mutex<HashMap<&'static str, Bucket>>,
    changed: Notify,
}

/// Permission for one call; report its answer with [`Ticket::finish`].
/// Dropping it without an answer frees the slot and keeps the budget as it
/// was (the call may or may not have counted).
pub(crate) struct Ticket<'a> {
    gate: &'a RateGate,
    endpoint: &'static str,
    done: bool,
}

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Epoch seconds.
    pub reset: Option<i64>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl LimitHeaders {
    pub(crate) fn read(headers: &HeaderMap) -> LimitHeaders {
        fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
            headers.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        LimitHeaders {
            limit: number(headers, "x-rate-limit-limit"),
            remaining: number(headers, "x-rate-limit-remaining"),
            reset: number(headers, "x-rate-limit-reset"),
            retry_after: number(headers, "retry-after"),
        }
    }
}

impl RateGate {
    /// Wait for permission to call `endpoint`, or learn how long the budget
    /// stays spent.
    pub(crate) async fn admit(&self, endpoint: &'static str) -> Result<Ticket<'_>, Duration> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            {
                let mut buckets = self.buckets.lock().expect("rate gate poisoned");
                let bucket = buckets.entry(endpoint).or_default();
                let now = now_ms();
                bucket.roll_over(now);
                match bucket.remaining {
                    Some(0) => {
                        let reset = bucket.reset_at.unwrap_or(now);
                        return Err(Duration::from_millis((reset - now).max(0) as u64));
                    }
                    budget => {
                        // Unknown budget: one probe at a time.
                        if bucket.in_flight < budget.unwrap_or(1) {
                            bucket.in_flight += 1;
                            return Ok(Ticket {
                                gate: self,
                                endpoint,
                                done: false,
                            });
                        }
                    }
                }
                // Register before unlocking so no wake-up is missed.
                notified.as_mut().enable();
            }
            if tokio::time::timeout(PROBE_WAIT, notified).await.is_err() {
                return Err(Duration::from_secs(1));
            }
        }
    }

    /// Where `endpoint`'s budget stands.
    pub fn view(&self, endpoint: &'static str) -> BudgetView {
        let mut buckets = self.buckets.lock().expect("rate gate poisoned");
        let bucket = buckets.entry(endpoint).or_default();
        bucket.roll_over(now_ms());
        BudgetView {
            limit: bucket.limit,
            remaining: bucket.remaining,
            reset_at: bucket.reset_at,
        }
    }

    /// Time until `endpoint` may be called again, if its budget is spent.
    pub(crate) fn blocked_for(&self, endpoint: &'static str) -> Option<Duration> {
        let view = self.view(endpoint);
        match (view.remaining, view.reset_at) {
            (Some(0), Some(reset)) => Some(Duration::from_millis((reset - now_ms()).max(0) as u64)),
            _ => None,
        }
    }

    fn release(&self, endpoint: &'static str, answer: Option<(u16, LimitHeaders)>) {
        let mut buckets = self.buckets.lock().expect("rate gate poisoned");
        let bucket = buckets.entry(endpoint).or_default();
        bucket.in_flight = bucket.in_flight.saturating_sub(1);
        if let Some((status, headers)) = answer {
            let now = now_ms();
            let reset_at = headers.reset.map(|s| s * 1000);
            if let Some(limit) = headers.limit {
                bucket.limit = Some(limit);
            }
            match (headers.remaining, reset_at) {
                (Some(remaining), Some(reset)) => {
                    match bucket.reset_at {
                        // Answers of one window can arrive out of order: the
                        // smallest remaining count is the latest.
                        Some(known) if known == reset => {
                            bucket.remaining =
                                Some(bucket.remaining.map_or(remaining, |r| r.min(remaining)));
                        }
                        Some(known) if known > reset => {}
                        _ => {
                            bucket.remaining = Some(remaining);
                            bucket.reset_at = Some(reset);
                        }
                    }
                }
                (Some(remaining), None) => bucket.remaining = Some(remaining),
                _ => {}
            }
            if status == 429 {
                // Retry-After wins; a reset already passed (clocks differ)
                // still waits a moment; no information at all waits longer.
                let until = match (headers.retry_after, reset_at) {
                    (Some(secs), _) => now + secs as i64 * 1000,
                    (None, Some(reset)) => reset.max(now + 1000),
                    (None, None) => now + DEFAULT_PENALTY.as_millis() as i64,
                };
                bucket.remaining = Some(0);
                bucket.reset_at = Some(bucket.reset_at.map_or(until, |r| r.max(until)));
            }
        }
        drop(buckets);
        self.changed.notify_waiters();
    }
}

impl Ticket<'_> {
    /// Report the answer's status and rate-limit headers.
    pub(crate) fn finish(mut self, status: u16, headers: LimitHeaders) {
        self.done = true;
        self.gate.release(self.endpoint, Some((status, headers)));
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.gate.release(self.endpoint, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(remaining: u32, reset_in_secs: i64) -> LimitHeaders {
        LimitHeaders {
            limit: Some(100),
            remaining: Some(remaining),
            reset: Some(now_ms() / 1000 + reset_in_secs),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn an_unknown_budget_lets_one_probe_out_at_a_time() {
        let gate = RateGate::default();
        let probe = gate.admit("post").await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(50), gate.admit("post")).await;
        assert!(second.is_err(), "a second call waited for the probe");
        probe.finish(200, headers(5, 900));
        let a = gate.admit("post").await.unwrap();
        let b = gate.admit("post").await.unwrap();
        assert_eq!(gate.view("post").remaining, Some(5));
        drop((a, b));
    }

    #[tokio::test]
    async fn a_known_budget_is_never_overspent_by_calls_in_flight() {
        let gate = RateGate::default();
        gate.admit("post")
            .await
            .unwrap()
            .finish(200, headers(2, 900));
        let a = gate.admit("post").await.unwrap();
        let b = gate.admit("post").await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), gate.admit("post")).await;
        assert!(third.is_err(), "two calls in flight spend a budget of two");
        a.finish(200, headers(1, 900));
        b.finish(200, headers(0, 900));
        let wait = gate.admit("post").await.err().expect("the budget is spent");
        assert!(wait > Duration::from_secs(890), "{wait:?}");
    }

    #[tokio::test]
    async fn a_429_blocks_until_the_reset_or_retry_after() {
        let gate = RateGate::default();
        let mut answer = headers(0, 3);
        answer.retry_after = Some(10);
        gate.admit("search").await.unwrap().finish(429, answer);
        let wait = gate.blocked_for("search").unwrap();
        assert!(wait > Duration::from_secs(8), "{wait:?}");
        // Other endpoints are not affected.
        assert!(gate.admit("post").await.is_ok());
    }

    #[tokio::test]
    async fn a_passed_reset_opens_a_new_window_with_one_probe() {
        let gate = RateGate::default();
        gate.admit("me").await.unwrap().finish(200, headers(0, -1));
        let probe = gate.admit("me").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gate.admit("me"))
                .await
                .is_err()
        );
        drop(probe);
        assert!(gate.admit("me").await.is_ok());
    }
}
