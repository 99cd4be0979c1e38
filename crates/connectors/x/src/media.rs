//! Media: X's limits, checked before a job exists, and the chunked v2 upload
//! (`initialize`, `append` per segment, `finalize`, then `STATUS` polls until
//! processing succeeds), with progress events on the way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_core::time::now_ms;
use switchboard_core::{MediaInfo, RuntimeEnv};
use tokio::io::AsyncReadExt;

use crate::client::{Body, Call, XClient, XError};

/// Bytes per `append` segment.
pub const SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// Longest wait for X to process a video or GIF.
const PROCESSING_DEADLINE: Duration = Duration::from_secs(15 * 60);
const MEDIA_ENDPOINT: &str = "/2/media/upload";

/// What X accepts in a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Image,
    Gif,
    Video,
}

impl Category {
    pub fn of(mime_type: &str) -> Option<Category> {
        match mime_type {
            "image/jpeg" | "image/png" | "image/webp" => Some(Category::Image),
            "image/gif" => Some(Category::Gif),
            "video/mp4" => Some(Category::Video),
            _ => None,
        }
    }

    pub fn max_bytes(self) -> u64 {
        match self {
            Category::Image => 5 * 1024 * 1024,
            Category::Gif => 15 * 1024 * 1024,
            Category::Video => 512 * 1024 * 1024,
        }
    }

    fn media_category(self) -> &'static str {
        match self {
            Category::Image => "tweet_image",
            Category::Gif => "tweet_gif",
            Category::Video => "tweet_video",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Category::Image => "an image",
            Category::Gif => "a GIF",
            Category::Video => "a video",
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Check a post's media against X's rules: supported types and sizes, and
/// 4 images, or 1 GIF, or 1 video. `(index, message)` per problem.
pub fn check_media(items: &[MediaInfo]) -> Vec<(usize, String)> {
    let mut errors = Vec::new();
    let mut categories = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match Category::of(&item.mime_type) {
            None => errors.push((
                i,
                format!(
                    "media {} is {}, which X does not take in a post: use JPEG, PNG or WEBP images, a GIF, or an MP4 video",
                    item.id, item.mime_type
                ),
            )),
            Some(category) if item.size > category.max_bytes() => errors.push((
                i,
                format!(
                    "media {} is {} bytes; X takes {} of at most {}",
                    item.id,
                    item.size,
                    category.name(),
                    mib(category.max_bytes())
                ),
            )),
            Some(category) => categories.push((i, category)),
        }
    }
    let images = categories
        .iter()
        .filter(|(_, c)| *c == Category::Image)
        .count();
    let motion = categories.len() - images;
    if motion > 0 && categories.len() > 1 {
        let (i, _) = categories
            .iter()
            .find(|(_, c)| *c != Category::Image)
            .expect("counted above");
        errors.push((
            *i,
            "a GIF or a video must be the only media of a post (X takes 4 images, or 1 GIF, or 1 video)".into(),
        ));
    } else if images > 4 {
        errors.push((4, "X takes at most 4 images per post".into()));
    }
    errors
}

/// X media ids already uploaded in this session, by content id, so a retried
/// job does not upload the same file again.
#[derive(Default)]
pub struct UploadCache {
    entries: Mutex<HashMap<String, (String, i64)>>,
}

impl UploadCache {
    fn get(&self, content_id: &str) -> Option<String> {
        let entries = self.entries.lock().expect("upload cache poisoned");
        entries
            .get(content_id)
            .filter(|(_, expires_at)| *expires_at > now_ms() + 60_000)
            .map(|(id, _)| id.clone())
    }

    fn put(&self, content_id: &str, media_id: &str, expires_at: i64) {
        self.entries
            .lock()
            .expect("upload cache poisoned")
            .insert(content_id.to_owned(), (media_id.to_owned(), expires_at));
    }
}

/// Progress of one upload, published as `x.media.progress`.
struct Progress<'a> {
    env: &'a dyn RuntimeEnv,
    job_id: &'a str,
    media: &'a MediaInfo,
}

impl Progress<'_> {
    async fn report(&self, phase: &str, bytes_sent: u64, percent: Option<u64>, media_id: &str) {
        self.env
            .emit(
                "x.media.progress",
                json!({
                    "job_id": self.job_id,
                    "media": self.media.id,
                    "x_media_id": media_id,
                    "phase": phase,
                    "bytes_sent": bytes_sent,
                    "total_bytes": self.media.size,
                    "percent": percent,
                }),
            )
            .await;
    }
}

/// Upload one stored file to X and wait until it can be posted; returns
/// X's media id.
pub async fn upload(
    client: &XClient,
    cache: &UploadCache,
    env: &dyn RuntimeEnv,
    job_id: &str,
    media: &MediaInfo,
) -> Result<String, XError> {
    if let Some(media_id) = cache.get(&media.id) {
        return Ok(media_id);
    }
    let category = Category::of(&media.mime_type).ok_or_else(|| XError::Rejected {
        status: 415,
        detail: format!("X does not take {} media", media.mime_type),
    })?;
    let progress = Progress { env, job_id, media };
    let init = client
        .send(
            Call::new(Method::POST, "/2/media/upload/initialize", MEDIA_ENDPOINT).json(json!({
                "media_type": media.mime_type,
                "total_bytes": media.size,
                "media_category": category.media_category(),
            })),
        )
        .await?;
    let media_id = init["data"]["id"]
        .as_str()
        .ok_or_else(|| XError::Transient("X's initialize answer has no media id".into()))?
        .to_owned();
    let expires_at = now_ms()
        + init["data"]["expires_after_secs"]
            .as_i64()
            .unwrap_or(86_400)
            * 1000;
    progress.report("uploading", 0, Some(0), &media_id).await;

    let mut file = tokio::fs::File::open(&media.path)
        .await
        .map_err(|e| XError::Rejected {
            status: 410,
            detail: format!(
                "media {} cannot be read from the media store: {e}",
                media.id
            ),
        })?;
    let mut sent = 0u64;
    let mut index = 0u64;
    loop {
        let mut segment = Vec::with_capacity(SEGMENT_BYTES);
        let read = (&mut file)
            .take(SEGMENT_BYTES as u64)
            .read_to_end(&mut segment)
            .await
            .map_err(|e| XError::Transient(format!("reading media {}: {e}", media.id)))?;
        if read == 0 {
            break;
        }
        let mut call = Call::new(
            Method::POST,
            format!("/2/media/upload/{media_id}/append"),
            MEDIA_ENDPOINT,
        );
        call.body = Body::Segment {
            index,
            bytes: segment,
        };
        call.timeout = Duration::from_secs(300);
        client.send(call).await?;
        sent += read as u64;
        index += 1;
        let percent = (sent * 100).checked_div(media.size).unwrap_or(100);
        progress
            .report("uploading", sent, Some(percent), &media_id)
            .await;
    }
    if sent != media.size {
        return Err(XError::Rejected {
            status: 409,
            detail: format!(
                "media {} changed on disk ({} bytes read, {} expected)",
                media.id, sent, media.size
            ),
        });
    }
    let finalize = client
        .send(Call::new(
            Method::POST,
            format!("/2/media/upload/{media_id}/finalize"),
            MEDIA_ENDPOINT,
        ))
        .await?;
    wait_for_processing(client, &progress, &media_id, &finalize["data"]).await?;
    progress
        .report("succeeded", media.size, Some(100), &media_id)
        .await;
    cache.put(&media.id, &media_id, expires_at);
    Ok(media_id)
}

async fn wait_for_processing(
    client: &XClient,
    progress: &Progress<'_>,
    media_id: &str,
    data: &Value,
) -> Result<(), XError> {
    let started = Instant::now();
    let mut info = data["processing_info"].clone();
    loop {
        let state = info["state"].as_str().unwrap_or("succeeded");
        match state {
            "succeeded" => return Ok(()),
            "failed" => {
                let why = info["error"]["message"]
                    .as_str()
                    .unwrap_or("X could not process the file");
                return Err(XError::Rejected {
                    status: 422,
                    detail: format!("media processing failed: {why}"),
                });
            }
            _ => {}
        }
        if started.elapsed() > PROCESSING_DEADLINE {
            return Err(XError::Transient(format!(
                "X is still processing media {media_id} after {} minutes",
                PROCESSING_DEADLINE.as_secs() / 60
            )));
        }
        let percent = info["progress_percent"].as_u64();
        progress
            .report("processing", progress.media.size, percent, media_id)
            .await;
        let wait = info["check_after_secs"].as_u64().unwrap_or(1).clamp(1, 60);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let status = client
            .send(
                Call::new(Method::GET, "/2/media/upload", MEDIA_ENDPOINT)
                    .query("command", "STATUS")
                    .query("media_id", media_id),
            )
            .await?;
        info = status["data"]["processing_info"].clone();
        if info.is_null() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, mime: &str, size: u64) -> MediaInfo {
        MediaInfo {
            id: id.into(),
            mime_type: mime.into(),
            size,
            name: None,
            path: "/nowhere".into(),
            created_at: 0,
        }
    }

    #[test]
    fn four_images_or_one_gif_or_one_video() {
        let png = item("a", "image/png", 1000);
        let gif = item("b", "image/gif", 1000);
        let mp4 = item("c", "video/mp4", 1000);
        assert!(check_media(&[png.clone(), png.clone(), png.clone(), png.clone()]).is_empty());
        assert!(check_media(std::slice::from_ref(&gif)).is_empty());
        assert!(check_media(std::slice::from_ref(&mp4)).is_empty());
        assert_eq!(check_media(&vec![png.clone(); 5]).len(), 1);
        let mixed = check_media(&[png.clone(), mp4.clone()]);
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed[0].0, 1);
        assert!(mixed[0].1.contains("only media"));
    }

    #[test]
    fn sizes_and_types_follow_x() {
        let errors = check_media(&[item("big", "image/png", 6 * 1024 * 1024)]);
        assert!(errors[0].1.contains("at most 5 MB"), "{errors:?}");
        assert!(check_media(&[item("gif", "image/gif", 14 * 1024 * 1024)]).is_empty());
        let errors = check_media(&[item("mov", "video/quicktime", 10)]);
        assert!(errors[0].1.contains("does not take"), "{errors:?}");
    }
}
