//! The X actions: `x.post`, `x.delete`, `x.search_recent`, `x.me`, and the
//! checks that run before a job exists.
//!
//! # No duplicate posts
//!
//! A post is sent once per attempt, but an attempt can end without knowing
//! whether X created the post: the daemon died after sending `POST /2/tweets`
//! (the job comes back with `recovered`), or the connection dropped or timed
//! out before the answer (the job comes back as attempt 2+). Before sending
//! again in either case, `x.post` reads the account's recent posts and, if
//! one has exactly this text, reports
//! it as the job's result instead of posting. What remains: X rewrites links
//! to t.co, so a text with links is not found by exact match; then X's own
//! duplicate-content check refuses the second post (403), and the job fails
//! with that message rather than posting twice.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{ActionCall, ActionError, MediaInfo, ParamsContext};

use crate::XSession;
use crate::client::{Call, XError};
use crate::media;

/// How far back (pages of 100 posts) a retried post looks for itself.
const LOOKBACK_PAGES: usize = 20;

/// X's longest weighted text for accounts without Premium.
pub const MAX_WEIGHTED_LENGTH: i32 = 280;

/// The weighted length of a post text, counted by twitter-text (the
/// reference implementation X maintains) with configuration v3: URLs count
/// 23, most CJK and emoji count 2.
pub fn weighted_length(text: &str) -> i32 {
    twitter_text::parse(text, twitter_text_config::config_v3(), true).weighted_length
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostParams {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub quote_of: Option<String>,
    #[serde(default)]
    pub media: Vec<String>,
    #[serde(default)]
    pub poll: Option<Poll>,
    #[serde(default)]
    pub reply_settings: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    pub options: Vec<String>,
    pub duration_minutes: u32,
}

fn params<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, ActionError> {
    serde_json::from_value(value.clone()).map_err(|e| ActionError::InvalidParams {
        field: "params".into(),
        message: e.to_string(),
    })
}

/// Checks of `x.post` beyond its schema: X's weighted length, what may be
/// combined, and the media (which must exist and fit X's limits).
pub async fn check_post(params: &Value, ctx: &dyn ParamsContext) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let post: PostParams = match serde_json::from_value(params.clone()) {
        Ok(p) => p,
        Err(e) => return vec![("params".into(), e.to_string())],
    };
    let text = post.text.as_deref().unwrap_or("");
    if text.trim().is_empty() && post.media.is_empty() {
        errors.push((
            "text".into(),
            "give a text, media, or both; an empty post cannot be sent".into(),
        ));
    }
    let length = weighted_length(text);
    if length > MAX_WEIGHTED_LENGTH {
        errors.push((
            "text".into(),
            format!(
                "is {length} characters as X counts them (links count 23, most CJK characters and emoji 2); the limit is {MAX_WEIGHTED_LENGTH}"
            ),
        ));
    }
    let exclusive = [
        ("media", !post.media.is_empty()),
        ("poll", post.poll.is_some()),
        ("quote_of", post.quote_of.is_some()),
    ];
    let given: Vec<&str> = exclusive
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
    if given.len() > 1 {
        errors.push((
            given[1].into(),
            format!(
                "X does not combine {} in one post; send them as separate posts",
                given.join(" and ")
            ),
        ));
    }
    let mut found: Vec<MediaInfo> = Vec::new();
    for (i, id) in post.media.iter().enumerate() {
        match ctx.media(id).await {
            Some(info) => found.push(info),
            None => errors.push((
                format!("media[{i}]"),
                format!("no media with id {id}; upload the file first (POST /api/v1/media or `switchboard media upload`)"),
            )),
        }
    }
    if found.len() == post.media.len() {
        for (i, message) in media::check_media(&found) {
            errors.push((format!("media[{i}]"), message));
        }
    }
    errors
}

impl XSession {
    pub(crate) async fn post(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let post: PostParams = params(&call.params)?;
        let text = post.text.clone().unwrap_or_default();
        // An earlier attempt may have created the post without us learning it.
        if (call.recovered || call.attempt > 1)
            && let Some(existing) = self.find_existing(&post, call.created_at).await?
        {
            tracing::info!(post = %existing["id"], "the post was already created by an earlier attempt; not posting again");
            return Ok(existing);
        }
        let mut media_ids = Vec::new();
        for id in &post.media {
            let info = self
                .ctx
                .env
                .media(id)
                .await
                .map_err(|e| ActionError::Permanent(format!("media {id}: {e}")))?;
            let media_id = media::upload(
                &self.client,
                &self.uploads,
                self.ctx.env.as_ref(),
                &call.job_id,
                &info,
            )
            .await?;
            media_ids.push(media_id);
        }
        let mut body = json!({});
        if !text.is_empty() {
            body["text"] = json!(text);
        }
        if let Some(reply_to) = &post.reply_to {
            body["reply"] = json!({ "in_reply_to_tweet_id": reply_to });
        }
        if let Some(quote_of) = &post.quote_of {
            body["quote_tweet_id"] = json!(quote_of);
        }
        if !media_ids.is_empty() {
            body["media"] = json!({ "media_ids": media_ids });
        }
        if let Some(poll) = &post.poll {
            body["poll"] =
                json!({ "options": poll.options, "duration_minutes": poll.duration_minutes });
        }
        if let Some(settings) = &post.reply_settings {
            body["reply_settings"] = json!(settings);
        }
        let answer = self
            .client
            .send(Call::new(Method::POST, "/2/tweets", "POST /2/tweets").json(body))
            .await?;
        let id = answer["data"]["id"]
            .as_str()
            .ok_or_else(|| ActionError::transient("X's answer to the post has no id"))?
            .to_owned();
        Ok(self.post_result(
            &id,
            answer["data"]["text"].as_str().unwrap_or(&text),
            &media_ids,
            false,
        ))
    }

    fn post_result(&self, id: &str, text: &str, media_ids: &[String], recovered: bool) -> Value {
        let mut result = json!({
            "id": id,
            "text": text,
            "account": self.identity.username,
            "url": format!("https://x.com/{}/status/{id}", self.identity.username),
        });
        if !media_ids.is_empty() {
            result["media_ids"] = json!(media_ids);
        }
        if recovered {
            result["recovered"] = json!(true);
        }
        result
    }

    /// The account's post with exactly this text created since the job was,
    /// if any. (The OpenAPI document offers no field for reply and quote
    /// targets, so the text decides, as it does for X's own duplicate
    /// check.) Pages back through the timeline until posts are older than
    /// the job, at most [`LOOKBACK_PAGES`] pages of 100.
    async fn find_existing(
        &self,
        post: &PostParams,
        job_created_at: i64,
    ) -> Result<Option<Value>, ActionError> {
        let text = post.text.clone().unwrap_or_default();
        // Allow for clocks that differ between us and X.
        let since = job_created_at - 5 * 60 * 1000;
        let mut token: Option<String> = None;
        for _ in 0..LOOKBACK_PAGES {
            let mut call = Call::new(
                Method::GET,
                format!("/2/users/{}/tweets", self.identity.id),
                "GET /2/users/:id/tweets",
            )
            .query("max_results", 100)
            .query("post.fields", "created_at");
            if let Some(token) = &token {
                call = call.query("pagination_token", token);
            }
            let answer = self.client.send(call).await?;
            let posts = answer["data"].as_array().cloned().unwrap_or_default();
            if let Some(found) = posts
                .iter()
                .find(|p| p["text"].as_str() == Some(text.as_str()))
            {
                let id = found["id"].as_str().unwrap_or_default();
                return Ok(Some(self.post_result(id, &text, &[], true)));
            }
            let older_than_job = posts
                .last()
                .and_then(|p| p["created_at"].as_str())
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| at.timestamp_millis() < since);
            token = answer["meta"]["next_token"].as_str().map(str::to_owned);
            if older_than_job || token.is_none() {
                break;
            }
        }
        Ok(None)
    }

    pub(crate) async fn delete(&self, call: &ActionCall) -> Result<Value, ActionError> {
        #[derive(Deserialize)]
        struct Params {
            id: String,
        }
        let p: Params = params(&call.params)?;
        let result = self
            .client
            .send(Call::new(
                Method::DELETE,
                format!("/2/tweets/{}", p.id),
                "DELETE /2/tweets/:id",
            ))
            .await;
        match result {
            Ok(answer) => Ok(json!({
                "id": p.id,
                "deleted": answer["data"]["deleted"].as_bool().unwrap_or(true),
            })),
            // Gone already: an earlier, interrupted attempt deleted it.
            Err(XError::Rejected { status: 404, .. }) if call.recovered || call.attempt > 1 => {
                Ok(json!({ "id": p.id, "deleted": true }))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn search_recent(&self, call: &ActionCall) -> Result<Value, ActionError> {
        #[derive(Deserialize)]
        struct Params {
            query: String,
            #[serde(default)]
            max_results: Option<u32>,
        }
        let p: Params = params(&call.params)?;
        let answer = self
            .client
            .send(
                Call::new(
                    Method::GET,
                    "/2/tweets/search/recent",
                    "GET /2/tweets/search/recent",
                )
                .query("query", &p.query)
                .query("max_results", p.max_results.unwrap_or(10).clamp(10, 100))
                .query("post.fields", "created_at")
                .query("expansions", "author_id"),
            )
            .await?;
        Ok(json!({
            "posts": answer["data"].as_array().cloned().unwrap_or_default(),
            "result_count": answer["meta"]["result_count"].as_u64().unwrap_or(0),
            "newest_id": answer["meta"]["newest_id"],
        }))
    }

    pub(crate) async fn me(&self) -> Result<Value, ActionError> {
        let identity = crate::fetch_identity(&self.client, crate::auth::REFRESH_MARGIN).await?;
        Ok(json!({ "id": identity.id, "username": identity.username, "name": identity.name }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_counted_the_way_x_counts_it() {
        assert_eq!(weighted_length("hello"), 5);
        // A link counts 23 however long it is.
        assert_eq!(
            weighted_length("see https://example.com/a/very/long/path/indeed?x=1"),
            4 + 23
        );
        // CJK characters count 2.
        assert_eq!(weighted_length("日本語"), 6);
        assert_eq!(weighted_length(&"a".repeat(280)), 280);
        assert_eq!(weighted_length(&"字".repeat(141)), 282);
    }

    struct NoMedia;

    #[async_trait::async_trait]
    impl ParamsContext for NoMedia {
        async fn media(&self, _id: &str) -> Option<MediaInfo> {
            None
        }
    }

    #[tokio::test]
    async fn bad_posts_name_their_field() {
        let errors = check_post(&json!({"text": "字".repeat(141)}), &NoMedia).await;
        assert_eq!(errors[0].0, "text");
        assert!(errors[0].1.contains("282"), "{errors:?}");

        let errors = check_post(&json!({"text": ""}), &NoMedia).await;
        assert_eq!(errors[0].0, "text");

        let errors = check_post(
            &json!({"text": "hi", "media": ["0123456789abcdef0123456789abcdef"]}),
            &NoMedia,
        )
        .await;
        assert_eq!(errors[0].0, "media[0]");
        assert!(errors[0].1.contains("upload the file first"), "{errors:?}");

        let errors = check_post(
            &json!({"text": "hi", "quote_of": "1", "poll": {"options": ["a", "b"], "duration_minutes": 60}}),
            &NoMedia,
        )
        .await;
        assert_eq!(errors[0].0, "quote_of");

        assert!(
            check_post(&json!({"text": "fine"}), &NoMedia)
                .await
                .is_empty()
        );
    }
}
