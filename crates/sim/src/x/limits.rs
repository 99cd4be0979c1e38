//! Per-endpoint, per-user rate limits with X's headers.
//!
//! X counts requests per endpoint and per user in fixed windows (15 minutes
//! for the endpoints simulated here). Every response carries
//! `x-rate-limit-limit`, `x-rate-limit-remaining` and `x-rate-limit-reset` (the
//! epoch second when the window ends); a request past the budget gets 429 with
//! `{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}`.
//! A window starts with the first request after the previous one ended.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderName, HeaderValue};

use super::epoch_secs;

/// The rate-limited endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /2/tweets`
    CreatePost,
    /// `DELETE /2/tweets/{id}`
    DeletePost,
    /// `GET /2/tweets/{id}`
    GetPost,
    /// `GET /2/tweets/search/recent`
    SearchRecent,
    /// `GET /2/users/me`
    UsersMe,
    /// `GET /2/users/{id}/mentions`
    Mentions,
    /// `GET /2/users/{id}/tweets`
    UserPosts,
    /// Every `/2/media/upload` call
    MediaUpload,
}

/// A budget of `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    /// `limit` requests per 15 minutes, X's usual window.
    pub const fn per_15_minutes(limit: u32) -> RateLimit {
        RateLimit {
            limit,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Budgets for every endpoint. Defaults are X's per-user limits.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// 100 per 15 min per user.
    pub create_post: RateLimit,
    /// 50 per 15 min per user.
    pub delete_post: RateLimit,
    /// 900 per 15 min per user.
    pub get_post: RateLimit,
    /// 300 per 15 min per user.
    pub search_recent: RateLimit,
    /// 75 per 15 min per user.
    pub users_me: RateLimit,
    /// 300 per 15 min per user.
    pub mentions: RateLimit,
    /// 900 per 15 min per user.
    pub user_posts: RateLimit,
    /// 500 per 15 min per user (every upload call counts).
    pub media_upload: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            create_post: RateLimit::per_15_minutes(100),
            delete_post: RateLimit::per_15_minutes(50),
            get_post: RateLimit::per_15_minutes(900),
            search_recent: RateLimit::per_15_minutes(300),
            users_me: RateLimit::per_15_minutes(75),
            mentions: RateLimit::per_15_minutes(300),
            user_posts: RateLimit::per_15_minutes(900),
            media_upload: RateLimit::per_15_minutes(500),
        }
    }
}

impl RateLimits {
    pub fn get(&self, endpoint: Endpoint) -> RateLimit {
        match endpoint {
            Endpoint::CreatePost => self.create_post,
            Endpoint::DeletePost => self.delete_post,
            Endpoint::GetPost => self.get_post,
            Endpoint::SearchRecent => self.search_recent,
            Endpoint::UsersMe => self.users_me,
            Endpoint::Mentions => self.mentions,
            Endpoint::UserPosts => self.user_posts,
            Endpoint::MediaUpload => self.media_upload,
        }
    }

    /// The same budget on every endpoint (handy for tests).
    pub fn uniform(limit: RateLimit) -> RateLimits {
        RateLimits {
            create_post: limit,
            delete_post: limit,
            get_post: limit,
            search_recent: limit,
            users_me: limit,
            mentions: limit,
            user_posts: limit,
            media_upload: limit,
        }
    }
}

/// What the headers say after a request was counted (or refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds.
    pub reset: u64,
}

impl Quota {
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        [
            ("x-rate-limit-limit", self.limit.to_string()),
            ("x-rate-limit-remaining", self.remaining.to_string()),
            ("x-rate-limit-reset", self.reset.to_string()),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
    }
}

#[derive(Debug)]
struct Window {
    start: SystemTime,
    used: u32,
}

/// Fixed windows keyed by endpoint and user, plus injected exhaustion.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<(Endpoint, String), Window>,
    exhausted_until: HashMap<Endpoint, SystemTime>,
}

impl RateLimiter {
    /// Count one request by `user` on `endpoint`. `Err` carries the quota of a
    /// refused (429) request.
    pub fn take(
        &mut self,
        endpoint: Endpoint,
        user: &str,
        budget: RateLimit,
        now: SystemTime,
    ) -> Result<Quota, Quota> {
        if let Some(until) = self.exhausted_until.get(&endpoint).copied() {
            if now < until {
                return Err(Quota {
                    limit: budget.limit,
                    remaining: 0,
                    reset: ceil_epoch(until),
                });
            }
            self.exhausted_until.remove(&endpoint);
        }
        let window = self
            .windows
            .entry((endpoint, user.to_owned()))
            .or_insert(Window {
                start: now,
                used: 0,
            });
        if now >= window.start + budget.window {
            *window = Window {
                start: now,
                used: 0,
            };
        }
        let reset = ceil_epoch(window.start + budget.window);
        if window.used >= budget.limit {
            return Err(Quota {
                limit: budget.limit,
                remaining: 0,
                reset,
            });
        }
        window.used += 1;
        Ok(Quota {
            limit: budget.limit,
            remaining: budget.limit - window.used,
            reset,
        })
    }

    pub fn exhaust(&mut self, endpoint: Endpoint, until: SystemTime) {
        self.exhausted_until.insert(endpoint, until);
    }

    pub fn clear_exhausted(&mut self) {
        self.exhausted_until.clear();
    }
}

/// Epoch seconds, rounded up so a client waiting until `reset` is never early.
fn ceil_epoch(t: SystemTime) -> u64 {
    let secs = epoch_secs(t);
    let exact = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() == 0)
        .unwrap_or(true);
    if exact { secs } else { secs + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_refuses_until_the_window_ends() {
        let mut limiter = RateLimiter::default();
        let budget = RateLimit {
            limit: 2,
            window: Duration::from_secs(60),
        };
        let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let first = limiter.take(Endpoint::CreatePost, "u", budget, t0).unwrap();
        assert_eq!((first.limit, first.remaining, first.reset), (2, 1, 1_060));
        let second = limiter.take(Endpoint::CreatePost, "u", budget, t0).unwrap();
        assert_eq!(second.remaining, 0);
        let refused = limiter
            .take(
                Endpoint::CreatePost,
                "u",
                budget,
                t0 + Duration::from_secs(59),
            )
            .unwrap_err();
        assert_eq!((refused.remaining, refused.reset), (0, 1_060));
        // Other users and other endpoints have their own budgets.
        assert!(limiter.take(Endpoint::CreatePost, "v", budget, t0).is_ok());
        assert!(limiter.take(Endpoint::DeletePost, "u", budget, t0).is_ok());
        let fresh = limiter
            .take(
                Endpoint::CreatePost,
                "u",
                budget,
                t0 + Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!((fresh.remaining, fresh.reset), (1, 1_120));
    }

    #[test]
    fn injected_exhaustion_refuses_everyone_until_reset() {
        let mut limiter = RateLimiter::default();
        let budget = RateLimit::per_15_minutes(100);
        let t0 = std::time::UNIX_EPOCH + Duration::from_secs(5_000);
        limiter.exhaust(Endpoint::SearchRecent, t0 + Duration::from_millis(1_500));
        let refused = limiter
            .take(Endpoint::SearchRecent, "anyone", budget, t0)
            .unwrap_err();
        assert_eq!(refused.reset, 5_002);
        assert!(
            limiter
                .take(
                    Endpoint::SearchRecent,
                    "anyone",
                    budget,
                    t0 + Duration::from_secs(2)
                )
                .is_ok()
        );
    }
}
