//! The X triggers: `x.mention` (polling `GET /2/users/{id}/mentions`) and
//! `x.search.match` (polling `GET /2/tweets/search/recent` per watch).
//!
//! Each poller runs inside the connection's session, so it stops and starts
//! with the runtime. Its `since_id` cursor is kept in the connection's
//! durable state after every poll, so a restart neither replays old posts
//! nor misses new ones. The first poll of a new cursor only notes where
//! things stand (no events for history). A feature that is off makes no
//! calls at all; a spent rate limit pauses the poller until its reset
//! instead of calling; failures mark the connection `degraded` until a poll
//! succeeds again. The account's own posts carry `is_self: true`.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{ConnectorError, StatusKind};
use tokio_util::sync::CancellationToken;

use crate::XSession;
use crate::client::{Call, XError};

fn default_interval() -> u64 {
    60
}

/// Mention polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MentionsSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
}

impl Default for MentionsSettings {
    fn default() -> Self {
        MentionsSettings {
            enabled: false,
            interval_secs: default_interval(),
        }
    }
}

/// One recent-search watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchWatch {
    pub name: String,
    pub query: String,
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
}

enum Source<'a> {
    Mentions,
    Search(&'a SearchWatch),
}

impl Source<'_> {
    fn state_key(&self) -> String {
        match self {
            Source::Mentions => "mentions.cursor".into(),
            Source::Search(watch) => format!("search.{}.cursor", watch.name),
        }
    }

    fn interval(&self, settings: &crate::XSettings) -> Duration {
        Duration::from_secs(match self {
            Source::Mentions => settings.mentions.interval_secs,
            Source::Search(watch) => watch.interval_secs,
        })
    }
}

/// The `x.mention` / `x.search.match` payload of a post seen by the account
/// `account_id` (`account` is its username). The account's own posts are
/// marked `is_self` (a rule that answers every match would answer itself);
/// rules skip them unless they ask for them.
pub(crate) fn post_payload(post: &Value, account_id: &str, account: &str) -> Value {
    json!({
        "id": post["id"],
        "text": post["text"],
        "author_id": post["author_id"],
        "created_at": post["created_at"],
        "conversation_id": post["conversation_id"],
        "account": account,
        "is_self": post["author_id"].as_str() == Some(account_id),
    })
}

impl XSession {
    /// Run every enabled poller until `cancel`.
    pub(crate) async fn run_triggers(
        &self,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let mut pollers = Vec::new();
        if self.settings.mentions.enabled {
            pollers.push(Box::pin(self.poll(Source::Mentions, cancel.clone())));
        }
        for watch in &self.settings.search_watches {
            pollers.push(Box::pin(self.poll(Source::Search(watch), cancel.clone())));
        }
        if pollers.is_empty() {
            cancel.cancelled().await;
            return Ok(());
        }
        // The first poller to fail for good (credentials) ends the session.
        futures::future::try_join_all(pollers).await.map(|_| ())
    }

    async fn poll(
        &self,
        source: Source<'_>,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let env = &self.ctx.env;
        let key = source.state_key();
        // `None`: never polled; `Some(None)`: polled, nothing seen yet.
        let mut cursor: Option<Option<String>> = match env.load_state(&key).await {
            Ok(Some(state)) => Some(state["since_id"].as_str().map(str::to_owned)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "could not read the poll cursor; starting fresh");
                None
            }
        };
        let interval = source.interval(&self.settings);
        let mut degraded = false;
        loop {
            let since_id = cursor.clone().flatten();
            let wait = match self
                .fetch(&source, since_id.as_deref(), cursor.is_none())
                .await
            {
                Ok((posts, newest)) => {
                    if cursor.is_some() {
                        // Oldest first, as they happened.
                        for post in posts.iter().rev() {
                            self.emit_post(&source, post).await;
                        }
                    }
                    let next = newest.or(since_id);
                    if let Err(error) = env
                        .store_state(&key, Some(json!({ "since_id": next })))
                        .await
                    {
                        tracing::warn!(%error, "could not store the poll cursor");
                    }
                    cursor = Some(next);
                    if degraded {
                        degraded = false;
                        env.report_status(StatusKind::Connected, None).await;
                    }
                    interval
                }
                Err(XError::RateLimited { retry_after, .. }) => {
                    retry_after.max(Duration::from_secs(1))
                }
                Err(XError::NeedsReauth(message)) => {
                    return Err(ConnectorError::NeedsReauth(message));
                }
                Err(error) => {
                    tracing::warn!(%error, "X poll failed");
                    degraded = true;
                    env.report_status(
                        StatusKind::Degraded,
                        Some(format!("polling X failed: {error}; retrying")),
                    )
                    .await;
                    interval
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One page of new posts (newest first) and the newest id.
    async fn fetch(
        &self,
        source: &Source<'_>,
        since_id: Option<&str>,
        first: bool,
    ) -> Result<(Vec<Value>, Option<String>), XError> {
        let mut call = match source {
            Source::Mentions => Call::new(
                Method::GET,
                format!("/2/users/{}/mentions", self.identity.id),
                "GET /2/users/:id/mentions",
            )
            // The first poll only learns the newest id: ask for little.
            .query("max_results", if first { 5 } else { 100 }),
            Source::Search(watch) => Call::new(
                Method::GET,
                "/2/tweets/search/recent",
                "GET /2/tweets/search/recent",
            )
            .query("query", &watch.query)
            .query("max_results", if first { 10 } else { 100 }),
        };
        if let Some(since_id) = since_id {
            call = call.query("since_id", since_id);
        }
        call = call
            .query("post.fields", "created_at,conversation_id")
            .query("expansions", "author_id");
        let answer = self.client.send(call).await?;
        let posts = answer["data"].as_array().cloned().unwrap_or_default();
        let newest = answer["meta"]["newest_id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                posts
                    .first()
                    .and_then(|p| p["id"].as_str().map(str::to_owned))
            });
        Ok((posts, newest))
    }

    async fn emit_post(&self, source: &Source<'_>, post: &Value) {
        let mut payload = post_payload(post, &self.identity.id, &self.identity.username);
        let event_type = match source {
            Source::Mentions => "x.mention",
            Source::Search(watch) => {
                payload["watch"] = json!(watch.name);
                payload["query"] = json!(watch.query);
                "x.search.match"
            }
        };
        self.ctx.env.emit(event_type, payload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_own_posts_are_marked() {
        let post = json!({"id": "1", "text": "hi", "author_id": "42"});
        assert_eq!(post_payload(&post, "42", "me")["is_self"], true);
        assert_eq!(post_payload(&post, "43", "me")["is_self"], false);
        assert_eq!(post_payload(&post, "43", "me")["account"], "me");
    }
}
