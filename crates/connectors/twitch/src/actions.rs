//! The Twitch actions, all through Helix: `twitch.send_chat`,
//! `twitch.shoutout`, `twitch.update_channel`, `twitch.create_clip`,
//! `twitch.ban` and `twitch.timeout`, and the checks that run before a job
//! exists.
//!
//! Chat sends pass the session's chat limiter first (`limits.rs`): a job
//! waits its turn, or is put back (`rate_limited`, no attempt spent) when
//! its turn is further away than `chat.max_wait_secs`. A shoutout cooldown
//! (Helix 429) puts the job back until it ends. A clip is created, then
//! polled with `GET /clips` until Twitch shows it, for up to 15 seconds as
//! Twitch advises; after that it has failed.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_core::{ActionCall, ActionError};

use crate::TwitchSession;
use crate::client::{Call, HelixError};

/// Twitch's longest chat message, in characters.
pub const MAX_CHAT_LENGTH: usize = 500;
/// How long Twitch may take to make a clip.
const CLIP_WAIT: Duration = Duration::from_secs(15);
const CLIP_POLL: Duration = Duration::from_millis(500);
/// A shoutout 429 without a reset header: Twitch's 2-minute cooldown.
const SHOUTOUT_COOLDOWN: Duration = Duration::from_secs(120);

fn invalid(field: &str, message: impl Into<String>) -> ActionError {
    ActionError::InvalidParams {
        field: field.into(),
        message: message.into(),
    }
}

fn text_param<'a>(params: &'a Value, field: &str) -> Option<&'a str> {
    params[field].as_str()
}

/// Checks beyond the JSON schemas, as Twitch counts: `(field, message)`.
pub fn check(action: &str, params: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    match action {
        "twitch.send_chat" => {
            let text = text_param(params, "text").unwrap_or("");
            if text.trim().is_empty() {
                errors.push(("text".into(), "the message is empty".into()));
            }
            let length = text.chars().count();
            if length > MAX_CHAT_LENGTH {
                errors.push((
                    "text".into(),
                    format!("{length} characters; Twitch allows {MAX_CHAT_LENGTH}"),
                ));
            }
        }
        "twitch.update_channel" => {
            if params.get("title").is_none()
                && params.get("category").is_none()
                && params.get("tags").is_none()
            {
                errors.push((
                    "params".into(),
                    "give a title, a category or tags to change".into(),
                ));
            }
            if let Some(title) = text_param(params, "title")
                && title.trim().is_empty()
            {
                errors.push(("title".into(), "the title is empty".into()));
            }
        }
        _ => {}
    }
    errors
}

impl TwitchSession {
    fn check_call(&self, call: &ActionCall) -> Result<(), ActionError> {
        match check(&call.action, &call.params).into_iter().next() {
            Some((field, message)) => Err(invalid(&field, message)),
            None => Ok(()),
        }
    }

    /// The user id of a login (for shoutouts and bans).
    async fn user(&self, field: &str, login: &str) -> Result<(String, String), ActionError> {
        match crate::user_id_of(&self.helix, login).await? {
            Some(user) => Ok(user),
            None => Err(invalid(
                field,
                format!("Twitch has no user named `{login}`"),
            )),
        }
    }

    pub(crate) async fn send_chat(&self, call: &ActionCall) -> Result<Value, ActionError> {
        self.check_call(call)?;
        let text = text_param(&call.params, "text").unwrap_or("");
        let mut body = json!({
            "broadcaster_id": self.identity.channel_id,
            "sender_id": self.identity.user_id,
            "message": text,
        });
        if let Some(parent) = text_param(&call.params, "reply_to") {
            body["reply_parent_message_id"] = json!(parent);
        }
        let slot = self
            .limiter
            .acquire()
            .await
            .map_err(|retry_after| ActionError::RateLimited {
                message: format!(
                    "the chat send queue is full ({} messages per {}s); this message waits its turn",
                    self.limiter.limit().messages,
                    self.limiter.limit().per.as_secs()
                ),
                retry_after,
            })?;
        let answer = self
            .helix
            .send(Call::new(Method::POST, "/chat/messages").json(body))
            .await;
        drop(slot);
        let answer = answer?;
        let data = &answer["data"][0];
        if data["is_sent"].as_bool() == Some(false) {
            let code = data["drop_reason"]["code"].as_str().unwrap_or("unknown");
            let message = data["drop_reason"]["message"]
                .as_str()
                .unwrap_or("no reason given");
            if code.contains("rate") {
                return Err(ActionError::RateLimited {
                    message: format!("Twitch dropped the message ({code}: {message})"),
                    retry_after: self.limiter.limit().per,
                });
            }
            return Err(ActionError::Permanent(format!(
                "Twitch did not send the message ({code}: {message})"
            )));
        }
        let message_id = data["message_id"]
            .as_str()
            .ok_or_else(|| ActionError::transient("Twitch's answer has no message_id"))?;
        Ok(json!({
            "message_id": message_id,
            "channel": self.identity.channel_login,
        }))
    }

    pub(crate) async fn shoutout(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let to = text_param(&call.params, "to").ok_or_else(|| invalid("to", "required"))?;
        let (to_id, to_login) = self.user("to", to).await?;
        let call = Call::new(Method::POST, "/chat/shoutouts")
            .query("from_broadcaster_id", &self.identity.channel_id)
            .query("to_broadcaster_id", &to_id)
            .query("moderator_id", &self.identity.user_id);
        match self.helix.send_with(call, SHOUTOUT_COOLDOWN).await {
            Ok(_) => Ok(json!({"to": to_login, "to_user_id": to_id})),
            Err(HelixError::RateLimited {
                retry_after,
                message,
                ..
            }) => Err(ActionError::RateLimited {
                message: format!(
                    "Twitch's shoutout cooldown is running ({message}); the shoutout waits for it"
                ),
                retry_after,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A category name → (id, name): the exact name first, else the best
    /// search result (an exact case-insensitive match, or the first).
    async fn category(&self, name: &str) -> Result<(String, String), ActionError> {
        let exact = self
            .helix
            .send(Call::get("/games").query("name", name))
            .await?;
        if let Some(game) = exact["data"].as_array().and_then(|d| d.first())
            && let Some(id) = game["id"].as_str()
        {
            return Ok((
                id.to_owned(),
                game["name"].as_str().unwrap_or(name).to_owned(),
            ));
        }
        let found = self
            .helix
            .send(
                Call::get("/search/categories")
                    .query("query", name)
                    .query("first", 10),
            )
            .await?;
        let results = found["data"].as_array().cloned().unwrap_or_default();
        let best = results
            .iter()
            .find(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .or_else(|| results.first());
        match best.and_then(|c| Some((c["id"].as_str()?, c["name"].as_str().unwrap_or(name)))) {
            Some((id, found_name)) => Ok((id.to_owned(), found_name.to_owned())),
            None => Err(invalid(
                "category",
                format!("Twitch has no category named or like `{name}`"),
            )),
        }
    }

    pub(crate) async fn update_channel(&self, call: &ActionCall) -> Result<Value, ActionError> {
        self.check_call(call)?;
        let mut body = serde_json::Map::new();
        let mut result = json!({"title": null, "category": null, "tags": null});
        if let Some(title) = text_param(&call.params, "title") {
            body.insert("title".into(), json!(title));
            result["title"] = json!(title);
        }
        if let Some(name) = text_param(&call.params, "category") {
            let (id, name) = self.category(name).await?;
            body.insert("game_id".into(), json!(id));
            result["category"] = json!({"id": id, "name": name});
        }
        if let Some(tags) = call.params.get("tags") {
            body.insert("tags".into(), tags.clone());
            result["tags"] = tags.clone();
        }
        self.helix
            .send(
                Call::new(Method::PATCH, "/channels")
                    .query("broadcaster_id", &self.identity.channel_id)
                    .json(Value::Object(body)),
            )
            .await?;
        Ok(result)
    }

    pub(crate) async fn create_clip(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let has_delay = call.params["has_delay"].as_bool().unwrap_or(false);
        let created = self
            .helix
            .send(
                Call::new(Method::POST, "/clips")
                    .query("broadcaster_id", &self.identity.channel_id)
                    .query("has_delay", has_delay),
            )
            .await?;
        let id = created["data"][0]["id"]
            .as_str()
            .ok_or_else(|| ActionError::transient("Twitch's clip answer has no id"))?
            .to_owned();
        let edit_url = created["data"][0]["edit_url"].as_str().map(str::to_owned);
        let deadline = tokio::time::Instant::now() + CLIP_WAIT;
        loop {
            tokio::time::sleep(CLIP_POLL).await;
            let found = self
                .helix
                .send(Call::get("/clips").query("id", &id))
                .await?;
            if let Some(clip) = found["data"].as_array().and_then(|d| d.first())
                && let Some(url) = clip["url"].as_str()
            {
                return Ok(json!({
                    "id": id,
                    "url": url,
                    "edit_url": edit_url,
                    "title": clip["title"],
                    "created_at": clip["created_at"],
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ActionError::Permanent(format!(
                    "Twitch did not finish clip {id} within {}s, so it has failed (is the channel live?)",
                    CLIP_WAIT.as_secs()
                )));
            }
        }
    }

    /// `twitch.ban` (no duration) and `twitch.timeout`.
    pub(crate) async fn ban(
        &self,
        call: &ActionCall,
        duration_secs: Option<u64>,
    ) -> Result<Value, ActionError> {
        let login = text_param(&call.params, "user").ok_or_else(|| invalid("user", "required"))?;
        let (user_id, login) = self.user("user", login).await?;
        let mut data = json!({"user_id": user_id});
        if let Some(duration) = duration_secs {
            data["duration"] = json!(duration);
        }
        if let Some(reason) = text_param(&call.params, "reason") {
            data["reason"] = json!(reason);
        }
        let answer = self
            .helix
            .send(
                Call::new(Method::POST, "/moderation/bans")
                    .query("broadcaster_id", &self.identity.channel_id)
                    .query("moderator_id", &self.identity.user_id)
                    .json(json!({ "data": data })),
            )
            .await;
        match answer {
            Ok(answer) => Ok(json!({
                "user_id": user_id,
                "user": login,
                "end_time": answer["data"][0]["end_time"],
            })),
            // A retried ban of someone already banned is done.
            Err(HelixError::Rejected { message, .. })
                if duration_secs.is_none()
                    && message.to_ascii_lowercase().contains("already banned") =>
            {
                Ok(json!({"user_id": user_id, "user": login, "end_time": null, "already": true}))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_counted_in_characters_as_twitch_counts() {
        assert!(check("twitch.send_chat", &json!({"text": "hi"})).is_empty());
        assert!(check("twitch.send_chat", &json!({"text": "é".repeat(500)})).is_empty());
        let errors = check("twitch.send_chat", &json!({"text": "é".repeat(501)}));
        assert_eq!(errors[0].0, "text");
        assert!(errors[0].1.contains("501"), "{errors:?}");
        assert_eq!(
            check("twitch.send_chat", &json!({"text": "   "}))[0].0,
            "text"
        );
    }

    #[test]
    fn a_channel_update_must_change_something() {
        assert_eq!(check("twitch.update_channel", &json!({}))[0].0, "params");
        assert!(check("twitch.update_channel", &json!({"category": "Art"})).is_empty());
        assert_eq!(
            check("twitch.update_channel", &json!({"title": " "}))[0].0,
            "title"
        );
    }
}
