//! Media upload v2: initialize, append chunks, finalize, poll STATUS.
//!
//! An upload is a session owned by the user who initialized it:
//!
//! 1. `POST /2/media/upload/initialize` (JSON `media_type`, `total_bytes`,
//!    `media_category`) checks X's type and size limits (images 5 MB as JPEG,
//!    PNG or WEBP; GIF 15 MB; video 512 MB MP4) and answers
//!    `{"data":{"id","media_key","expires_after_secs"}}`.
//! 2. `POST /2/media/upload/{id}/append` (multipart `segment_index` and
//!    `media`, or JSON with base64 `media`) takes segments in order: the next
//!    index, or the last one again (a retry replaces it). Anything else, or
//!    more bytes than announced, is refused.
//! 3. `POST /2/media/upload/{id}/finalize` requires exactly `total_bytes` and
//!    checks the first bytes look like the announced type (JPEG, PNG, WEBP, GIF
//!    or an MP4 `ftyp` box). Images are ready at once; GIFs and videos answer
//!    `processing_info {state: pending, check_after_secs}`.
//! 4. `GET /2/media/upload?command=STATUS&media_id=` moves a processing upload
//!    through `in_progress` (with `progress_percent`) to `succeeded` once
//!    [`MediaConfig::processing_time`](super::MediaConfig) has passed since
//!    finalize, or to `failed` for bytes that are not the announced type or
//!    when a `Fault::MediaProcessingFailure` is queued.
//!
//! A post may only reference media that has `succeeded`, belongs to the
//! poster and has not expired: up to 4 images, or 1 GIF, or 1 video.

use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use super::api::call;
use super::auth::Caller;
use super::error::ApiError;
use super::limits::Endpoint;
use super::server::Incoming;
use super::{Sim, State as SimState, epoch_secs};

pub const IMAGE_MAX_BYTES: u64 = 5 * 1024 * 1024;
pub const GIF_MAX_BYTES: u64 = 15 * 1024 * 1024;
pub const VIDEO_MAX_BYTES: u64 = 512 * 1024 * 1024;

const SCOPES: &[&str] = &["media.write"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Image,
    Gif,
    Video,
}

impl Category {
    fn max_bytes(self) -> u64 {
        match self {
            Category::Image => IMAGE_MAX_BYTES,
            Category::Gif => GIF_MAX_BYTES,
            Category::Video => VIDEO_MAX_BYTES,
        }
    }

    /// X's media key prefixes: 3 photo, 16 animated GIF, 7 video.
    fn key_prefix(self) -> u32 {
        match self {
            Category::Image => 3,
            Category::Gif => 16,
            Category::Video => 7,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum UploadState {
    Uploading,
    Processing { since: Instant, fail: bool },
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
pub(crate) struct Upload {
    pub id: String,
    pub media_key: String,
    pub owner: String,
    pub media_type: String,
    pub category: Category,
    pub total_bytes: u64,
    segments: Vec<u64>,
    head: Vec<u8>,
    pub state: UploadState,
    pub created: Instant,
}

impl Upload {
    fn received(&self) -> u64 {
        self.segments.iter().sum()
    }

    fn expires_after_secs(&self, lifetime: Duration) -> u64 {
        lifetime.saturating_sub(self.created.elapsed()).as_secs()
    }
}

/// `POST /2/media/upload/initialize`
pub(crate) async fn initialize(State(sim): State<Sim>, req: Incoming) -> Response {
    call(
        &sim,
        &req,
        Endpoint::MediaUpload,
        SCOPES,
        |state, caller| {
            let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::invalid_request(&[format!("Request body is not valid JSON: {e}")])
            })?;
            let media_type = body["media_type"]
                .as_str()
                .ok_or_else(|| ApiError::invalid_request(&["The `media_type` field is required."]))?
                .to_ascii_lowercase();
            let total_bytes = body["total_bytes"]
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiError::invalid_request(&[
                        "The `total_bytes` field is required and must be positive.",
                    ])
                })?;
            let category = category_for(body["media_category"].as_str(), &media_type)?;
            if total_bytes > category.max_bytes() {
                return Err(ApiError::invalid_request(&[format!(
                    "File size exceeds {} bytes, the limit for {media_type}.",
                    category.max_bytes()
                )]));
            }
            let id = state.next_id().to_string();
            let upload = Upload {
                media_key: format!("{}_{id}", category.key_prefix()),
                id: id.clone(),
                owner: caller.user_id.clone(),
                media_type,
                category,
                total_bytes,
                segments: Vec::new(),
                head: Vec::new(),
                state: UploadState::Uploading,
                created: Instant::now(),
            };
            let data = json!({
                "id": id,
                "media_key": upload.media_key,
                "expires_after_secs": state.config.media.expires_after.as_secs(),
            });
            state.uploads.insert(id, upload);
            Ok((StatusCode::OK, json!({ "data": data })))
        },
    )
}

fn category_for(category: Option<&str>, media_type: &str) -> Result<Category, ApiError> {
    const IMAGES: &[&str] = &["image/jpeg", "image/pjpeg", "image/png", "image/webp"];
    let unsupported = |what: &str| {
        ApiError::invalid_request(&[format!(
            "media_type [{media_type}] is not supported for {what}: images must be JPEG, PNG or WEBP, GIFs image/gif, videos video/mp4."
        )])
    };
    let inferred = match category {
        Some("tweet_image") => "image",
        Some("tweet_gif") => "gif",
        Some("tweet_video" | "amplify_video") => "video",
        Some(other) => {
            return Err(ApiError::invalid_request(&[format!(
                "media_category [{other}] cannot be attached to a post."
            )]));
        }
        None if media_type == "image/gif" => "gif",
        None if media_type.starts_with("video/") => "video",
        None => "image",
    };
    match inferred {
        "image" if IMAGES.contains(&media_type) => Ok(Category::Image),
        // A GIF uploaded as tweet_image is a still image, with the image limit.
        "image" if media_type == "image/gif" => Ok(Category::Image),
        "gif" if media_type == "image/gif" => Ok(Category::Gif),
        "video" if media_type == "video/mp4" => Ok(Category::Video),
        other => Err(unsupported(other)),
    }
}

/// `POST /2/media/upload/{id}/append`
pub(crate) async fn append(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(
        &sim,
        &req,
        Endpoint::MediaUpload,
        SCOPES,
        |state, caller| {
            let (segment_index, chunk) = read_segment(&req)?;
            let lifetime = state.config.media.expires_after;
            let upload = owned_upload(state, caller, &id)?;
            if !matches!(upload.state, UploadState::Uploading) {
                return Err(ApiError::invalid_request(&[format!(
                    "Upload [{id}] is already finalized; start a new upload."
                )]));
            }
            let next = upload.segments.len() as u64;
            let retry = next > 0 && segment_index == next - 1;
            if segment_index != next && !retry {
                return Err(ApiError::invalid_parameter(
                    "segment_index",
                    &segment_index.to_string(),
                    &format!(
                        "Segment index {segment_index} is out of order: the next segment is {next}."
                    ),
                ));
            }
            let before = if retry {
                upload.received() - upload.segments[next as usize - 1]
            } else {
                upload.received()
            };
            let len = chunk.len() as u64;
            if before + len > upload.total_bytes {
                return Err(ApiError::invalid_request(&[format!(
                    "Segments exceed the declared total_bytes ({}).",
                    upload.total_bytes
                )]));
            }
            if retry {
                upload.segments[next as usize - 1] = len;
            } else {
                upload.segments.push(len);
            }
            if segment_index == 0 {
                upload.head = chunk.iter().take(16).copied().collect();
            }
            let expires_at = epoch_secs(SystemTime::now()) + upload.expires_after_secs(lifetime);
            Ok((StatusCode::OK, json!({"data": {"expires_at": expires_at}})))
        },
    )
}

/// The segment index and bytes of an append request (multipart or JSON).
fn read_segment(req: &Incoming) -> Result<(u64, Vec<u8>), ApiError> {
    let content_type = req.content_type().to_owned();
    let lowered = content_type.to_ascii_lowercase();
    let (index, media) = if lowered.starts_with("multipart/form-data") {
        let parts = parse_multipart(&content_type, &req.body)
            .map_err(|e| ApiError::invalid_request(&[e]))?;
        let field = |name: &str| parts.iter().find(|p| p.name == name);
        let index =
            field("segment_index").map(|p| String::from_utf8_lossy(&p.data).trim().to_owned());
        let media = match (field("media"), field("media_data")) {
            (Some(p), _) => Some(p.data.clone()),
            (None, Some(p)) => Some(decode_base64(&p.data)?),
            (None, None) => None,
        };
        (index, media)
    } else if lowered.starts_with("application/json") {
        let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::invalid_request(&[format!("Request body is not valid JSON: {e}")])
        })?;
        let index = match &body["segment_index"] {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let media = match body["media"].as_str() {
            Some(b64) => Some(decode_base64(b64.as_bytes())?),
            None => None,
        };
        (index, media)
    } else {
        return Err(ApiError::invalid_request(&[
            "Append takes a multipart/form-data body with `segment_index` and `media`.",
        ]));
    };
    let index = index
        .ok_or_else(|| ApiError::invalid_request(&["The `segment_index` field is required."]))?;
    let index: u64 = index.parse().ok().filter(|i| *i <= 999).ok_or_else(|| {
        ApiError::invalid_parameter(
            "segment_index",
            &index,
            "segment_index must be an integer from 0 to 999.",
        )
    })?;
    let media =
        media.ok_or_else(|| ApiError::invalid_request(&["The `media` field is required."]))?;
    if media.is_empty() {
        return Err(ApiError::invalid_request(&[
            "The `media` segment is empty.",
        ]));
    }
    Ok((index, media))
}

fn decode_base64(data: &[u8]) -> Result<Vec<u8>, ApiError> {
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::invalid_request(&["The `media` field is not valid base64."]))
}

/// `POST /2/media/upload/{id}/finalize`
pub(crate) async fn finalize(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(
        &sim,
        &req,
        Endpoint::MediaUpload,
        SCOPES,
        |state, caller| {
            let lifetime = state.config.media.expires_after;
            let check_after = state.config.media.check_after_secs;
            let fail_next = state.media_failures > 0;
            let upload = owned_upload(state, caller, &id)?;
            if !matches!(upload.state, UploadState::Uploading) {
                return Err(ApiError::invalid_request(&[format!(
                    "Upload [{id}] is already finalized."
                )]));
            }
            if upload.received() != upload.total_bytes {
                return Err(ApiError::invalid_request(&[format!(
                    "Segments do not add up to provided total file size: received {} of {} bytes.",
                    upload.received(),
                    upload.total_bytes
                )]));
            }
            let looks_right = magic_matches(&upload.media_type, &upload.head);
            let mut data = json!({
                "id": upload.id,
                "media_key": upload.media_key,
                "size": upload.total_bytes,
                "expires_after_secs": upload.expires_after_secs(lifetime),
            });
            let mut consumed_failure = false;
            match upload.category {
                Category::Image => {
                    if !looks_right {
                        upload.state = UploadState::Failed;
                        return Err(ApiError::invalid_request(&[format!(
                            "InvalidMedia: the uploaded bytes are not a valid {}.",
                            upload.media_type
                        )]));
                    }
                    upload.state = UploadState::Succeeded;
                    data["image"] = json!({"image_type": upload.media_type});
                }
                Category::Gif | Category::Video => {
                    consumed_failure = fail_next;
                    upload.state = UploadState::Processing {
                        since: Instant::now(),
                        fail: fail_next || !looks_right,
                    };
                    data["processing_info"] =
                        json!({"state": "pending", "check_after_secs": check_after});
                }
            }
            if consumed_failure {
                state.media_failures -= 1;
            }
            Ok((StatusCode::OK, json!({ "data": data })))
        },
    )
}

/// `GET /2/media/upload?command=STATUS&media_id=`
pub(crate) async fn status(State(sim): State<Sim>, req: Incoming) -> Response {
    call(
        &sim,
        &req,
        Endpoint::MediaUpload,
        SCOPES,
        |state, caller| {
            let query = super::auth::form_pairs(req.uri.query().unwrap_or("").as_bytes());
            let id = query
                .iter()
                .find(|(k, _)| k == "media_id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let lifetime = state.config.media.expires_after;
            let processing_time = state.config.media.processing_time;
            let check_after = state.config.media.check_after_secs;
            let upload = owned_upload(state, caller, &id)?;
            if let UploadState::Processing { since, fail } = upload.state
                && since.elapsed() >= processing_time
            {
                upload.state = if fail {
                    UploadState::Failed
                } else {
                    UploadState::Succeeded
                };
            }
            let processing_info = match &upload.state {
                UploadState::Uploading => {
                    return Err(ApiError::invalid_request(&[format!(
                        "Upload [{id}] has not been finalized."
                    )]));
                }
                UploadState::Processing { since, .. } => {
                    let elapsed = since.elapsed().as_millis();
                    let total = processing_time.as_millis().max(1);
                    let percent = (elapsed * 100 / total).clamp(1, 99) as u64;
                    json!({"state": "in_progress", "check_after_secs": check_after, "progress_percent": percent})
                }
                UploadState::Succeeded => json!({"state": "succeeded", "progress_percent": 100}),
                UploadState::Failed => json!({"state": "failed", "progress_percent": 100}),
            };
            let mut data = json!({
                "id": upload.id,
                "media_key": upload.media_key,
                "size": upload.total_bytes,
                "expires_after_secs": upload.expires_after_secs(lifetime),
                "processing_info": processing_info,
            });
            if upload.category == Category::Video {
                data["video"] = json!({"video_type": upload.media_type});
            }
            Ok((StatusCode::OK, json!({ "data": data })))
        },
    )
}

fn owned_upload<'a>(
    state: &'a mut SimState,
    caller: &Caller,
    id: &str,
) -> Result<&'a mut Upload, ApiError> {
    let lifetime = state.config.media.expires_after;
    match state.uploads.get_mut(id) {
        Some(upload) if upload.owner == caller.user_id && upload.created.elapsed() < lifetime => {
            Ok(upload)
        }
        _ => Err(ApiError::invalid_parameter(
            "media_id",
            id,
            &format!("Media [{id}] does not exist, has expired or belongs to another account."),
        )),
    }
}

/// Check the media a post wants to attach; returns their media keys.
pub(crate) fn check_attachable(
    state: &SimState,
    caller: &Caller,
    ids: &[String],
) -> Result<Vec<String>, ApiError> {
    let lifetime = state.config.media.expires_after;
    let mut categories = Vec::new();
    let mut keys = Vec::new();
    for id in ids {
        let upload = state
            .uploads
            .get(id)
            .filter(|u| u.owner == caller.user_id && u.created.elapsed() < lifetime)
            .ok_or_else(|| {
                ApiError::invalid_request(&[format!(
                    "Your media IDs are invalid: [{id}] does not exist, has expired or belongs to another account."
                )])
            })?;
        if !matches!(upload.state, UploadState::Succeeded) {
            let state = match upload.state {
                UploadState::Uploading => "not finalized",
                UploadState::Processing { .. } => "still processing (poll STATUS until succeeded)",
                UploadState::Failed => "failed processing",
                UploadState::Succeeded => unreachable!(),
            };
            return Err(ApiError::invalid_request(&[format!(
                "Your media IDs are invalid: media [{id}] is {state}."
            )]));
        }
        categories.push(upload.category);
        keys.push(upload.media_key.clone());
    }
    let images = categories.iter().filter(|c| **c == Category::Image).count();
    let others = categories.len() - images;
    if (others > 0 && categories.len() > 1) || images > 4 {
        return Err(ApiError::invalid_request(&[
            "A post carries up to 4 images, or 1 GIF, or 1 video, not a mix.",
        ]));
    }
    Ok(keys)
}

fn magic_matches(media_type: &str, head: &[u8]) -> bool {
    match media_type {
        "image/jpeg" | "image/pjpeg" => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => head.starts_with(&[0x89, b'P', b'N', b'G']),
        "image/webp" => head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP"),
        "image/gif" => head.starts_with(b"GIF8"),
        "video/mp4" => head.get(4..8) == Some(b"ftyp"),
        _ => false,
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// Parse a `multipart/form-data` body (RFC 7578) given its `Content-Type`.
pub(crate) fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
        .ok_or("multipart body without a boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut pos =
        find(body, &delimiter, 0).ok_or("multipart boundary not found")? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        pos += line_break_len(&body[pos..]);
        let headers_end =
            find(body, b"\r\n\r\n", pos).ok_or("multipart part without a blank line")?;
        let headers = String::from_utf8_lossy(&body[pos..headers_end]).into_owned();
        let data_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let data_end =
            find(body, &closing, data_start).ok_or("multipart part is not terminated")?;
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or("multipart part without Content-Disposition")?;
        let param = |name: &str| {
            disposition.split(';').skip(1).find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name").ok_or("multipart part without a name")?,
            filename: param("filename"),
            data: body[data_start..data_end].to_vec(),
        });
        pos = data_end + closing.len();
    }
}

fn line_break_len(s: &[u8]) -> usize {
    if s.starts_with(b"\r\n") {
        2
    } else if s.starts_with(b"\n") {
        1
    } else {
        0
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multipart_fields_and_files() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"segment_index\"\r\n\r\n3\r\n\
--b\r\nContent-Disposition: form-data; name=\"media\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--a\x00\xff\r\n--b--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=\"b\"", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "segment_index");
        assert_eq!(parts[0].data, b"3");
        assert_eq!(parts[1].filename.as_deref(), Some("x.bin"));
        assert_eq!(parts[1].data, b"\r\n--a\x00\xff");
        assert!(parse_multipart("multipart/form-data", body).is_err());
    }

    #[test]
    fn categories_follow_x_limits() {
        assert_eq!(
            category_for(Some("tweet_image"), "image/png").unwrap(),
            Category::Image
        );
        assert_eq!(category_for(None, "image/gif").unwrap(), Category::Gif);
        assert_eq!(
            category_for(Some("tweet_video"), "video/mp4").unwrap(),
            Category::Video
        );
        assert!(category_for(Some("tweet_video"), "image/png").is_err());
        assert!(category_for(Some("tweet_image"), "image/bmp").is_err());
        assert!(category_for(Some("dm_image"), "image/png").is_err());
    }

    #[test]
    fn magic_bytes() {
        assert!(magic_matches("video/mp4", b"\x00\x00\x00\x18ftypisom"));
        assert!(!magic_matches("video/mp4", b"not a video at all"));
        assert!(magic_matches("image/png", b"\x89PNG\r\n\x1a\n"));
        assert!(magic_matches("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 "));
    }
}
