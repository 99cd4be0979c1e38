//! The chat send limiter: never more than Twitch allows, never a message
//! dropped.
//!
//! Twitch counts chat messages per sender in a window: 20 per 30 seconds,
//! 100 when the sender is the channel's broadcaster or a moderator; going
//! over can block the account from chatting for 30 minutes. Each session has
//! one [`ChatLimiter`] that every `twitch.send_chat` passes through:
//!
//! * a send may start while fewer than `messages` sends have *finished*
//!   within the last `per` (plus a small margin) and are still in flight.
//!   Counting from when a send finished, not from when it started, bounds
//!   the moment Twitch saw it from the late side, so however requests are
//!   delayed on the way, no window of `per` at Twitch holds more than
//!   `messages` of ours;
//! * waiting senders are served first come, first served (a fair mutex), so
//!   a burst goes out in order at the highest rate allowed;
//! * a sender that would wait longer than `max_wait` is told how long instead
//!   ([`ChatLimiter::acquire`] returns the estimate), and its job is put back
//!   until then as `RateLimited`, which spends no attempt. Shorter waits are
//!   spent inside the job, whose lease the runner keeps extending.
//!
//! Why not `governor`: its GCRA admits a burst of `messages` and then one
//! message every `per / messages`, which in the first window adds up to
//! almost twice the allowance (20 at once, then 19 more in the next 28.5 s).
//! Twitch's limit is a count in a window, so the count is what we keep.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A send limit: `messages` per window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLimit {
    pub messages: u32,
    pub per: Duration,
}

impl ChatLimit {
    /// Twitch's limit for an ordinary sender.
    pub const USER: ChatLimit = ChatLimit {
        messages: 20,
        per: Duration::from_secs(30),
    };
    /// Twitch's limit for the broadcaster and the channel's moderators.
    pub const MODERATOR: ChatLimit = ChatLimit {
        messages: 100,
        per: Duration::from_secs(30),
    };
}

#[derive(Default)]
struct Window {
    /// When recent sends finished, oldest first.
    finished: VecDeque<Instant>,
    in_flight: u32,
}

pub struct ChatLimiter {
    messages: AtomicU32,
    per: Duration,
    margin: Duration,
    max_wait: Duration,
    /// Held by the sender whose turn it is: first come, first served.
    turn: tokio::sync::Mutex<()>,
    window: Mutex<Window>,
    finished: Notify,
}

/// Permission to send one message. Dropping it records the send as
/// finished now (whether it succeeded or not: Twitch may have counted it).
pub struct Slot<'a> {
    limiter: &'a ChatLimiter,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut window = self.limiter.window.lock().expect("limiter lock poisoned");
        window.in_flight = window.in_flight.saturating_sub(1);
        window.finished.push_back(Instant::now());
        drop(window);
        self.limiter.finished.notify_waiters();
    }
}

impl ChatLimiter {
    pub fn new(limit: ChatLimit, max_wait: Duration) -> ChatLimiter {
        ChatLimiter {
            messages: AtomicU32::new(limit.messages.max(1)),
            per: limit.per,
            // Clock granularity and scheduling jitter: a few percent of the
            // window, at least 50 ms.
            margin: (limit.per / 50).max(Duration::from_millis(50)),
            max_wait,
            turn: tokio::sync::Mutex::new(()),
            window: Mutex::new(Window::default()),
            finished: Notify::new(),
        }
    }

    pub fn limit(&self) -> ChatLimit {
        ChatLimit {
            messages: self.messages.load(Ordering::Relaxed),
            per: self.per,
        }
    }

    /// Raise (or lower) the allowance, for example when chat says the
    /// account moderates the channel.
    pub fn set_messages(&self, messages: u32) {
        self.messages.store(messages.max(1), Ordering::Relaxed);
        self.finished.notify_waiters();
    }

    /// How long until a send may start, or `None` if it may start now (and
    /// then it is counted as in flight). `Some(None)`: only sends in flight
    /// are in the way; wait for one to finish.
    fn try_take(&self, now: Instant) -> Result<(), Option<Duration>> {
        let messages = self.messages.load(Ordering::Relaxed) as usize;
        let horizon = self.per + self.margin;
        let mut window = self.window.lock().expect("limiter lock poisoned");
        while window
            .finished
            .front()
            .is_some_and(|at| now.duration_since(*at) >= horizon)
        {
            window.finished.pop_front();
        }
        let used = window.finished.len() + window.in_flight as usize;
        if used < messages {
            window.in_flight += 1;
            return Ok(());
        }
        // The oldest send that must leave the window before we may go.
        let must_leave = used - messages;
        match window.finished.get(must_leave) {
            Some(at) => Err(Some((*at + horizon).saturating_duration_since(now))),
            None => Err(None),
        }
    }

    /// Wait for a slot. `Err(wait)` when the wait would exceed `max_wait`:
    /// roughly how long until the caller should come back.
    pub async fn acquire(&self) -> Result<Slot<'_>, Duration> {
        let deadline = Instant::now() + self.max_wait;
        let _turn = match tokio::time::timeout_at(deadline, self.turn.lock()).await {
            Ok(turn) => turn,
            // Everybody ahead of us is waiting too: about one window.
            Err(_) => return Err(self.per),
        };
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let now = Instant::now();
            match self.try_take(now) {
                Ok(()) => return Ok(Slot { limiter: self }),
                Err(Some(wait)) => {
                    if now + wait > deadline {
                        return Err(wait);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = finished => {}
                    }
                }
                Err(None) => {
                    if tokio::time::timeout_at(deadline, finished).await.is_err() {
                        return Err(self.per);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The most sends that finished within any window of `per`.
    fn most_in_any_window(times: &[Instant], per: Duration) -> usize {
        let mut most = 0;
        for (i, start) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < per)
                .count();
            most = most.max(n);
        }
        most
    }

    #[tokio::test]
    async fn a_burst_goes_out_within_the_limit_and_none_is_dropped() {
        let limit = ChatLimit {
            messages: 5,
            per: Duration::from_millis(300),
        };
        let limiter = Arc::new(ChatLimiter::new(limit, Duration::from_secs(3600)));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..23u64)
            .map(|n| {
                let limiter = limiter.clone();
                let sent = sent.clone();
                tokio::spawn(async move {
                    let slot = limiter.acquire().await.expect("no give-up");
                    // The request takes a while; Twitch sees it somewhere
                    // between start and finish.
                    tokio::time::sleep(Duration::from_millis(5 + (n % 3) * 10)).await;
                    sent.lock().unwrap().push(Instant::now());
                    drop(slot);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let mut times = sent.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 23, "none dropped");
        assert!(most_in_any_window(&times, limit.per) <= 5);
        // 23 messages at 5 per window need at least 4 full windows.
        assert!(times[22].duration_since(times[0]) >= limit.per * 4);
    }

    #[tokio::test]
    async fn senders_are_served_in_arrival_order() {
        let limiter = Arc::new(ChatLimiter::new(
            ChatLimit {
                messages: 2,
                per: Duration::from_millis(100),
            },
            Duration::from_secs(3600),
        ));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..8 {
            let limiter = limiter.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _slot = limiter.acquire().await.unwrap();
                order.lock().unwrap().push(n);
            }));
            // Arrivals a moment apart: each is queued before the next comes.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_wait_longer_than_allowed_is_returned_instead() {
        let limiter = ChatLimiter::new(
            ChatLimit {
                messages: 1,
                per: Duration::from_secs(30),
            },
            Duration::from_millis(50),
        );
        drop(limiter.acquire().await.unwrap());
        match limiter.acquire().await {
            Err(wait) => {
                assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(31))
            }
            Ok(_) => panic!("the window is full"),
        }
    }

    #[tokio::test]
    async fn raising_the_allowance_lets_waiters_go() {
        let limiter = Arc::new(ChatLimiter::new(
            ChatLimit {
                messages: 1,
                per: Duration::from_secs(3600),
            },
            Duration::from_secs(7200),
        ));
        drop(limiter.acquire().await.unwrap());
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { drop(limiter.acquire().await.unwrap()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the window is full");
        limiter.set_messages(100);
        // Without the raise this would wait an hour.
        waiter.await.unwrap();
        assert_eq!(limiter.limit().messages, 100);
    }
}
