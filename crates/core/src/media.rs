//! Media files as the daemon's media store keeps them: content-addressed by
//! a 32-hex id (the first 128 bits of the SHA-256 of the bytes), with the
//! type read from the bytes themselves rather than trusted from a file name.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One stored media file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// 32 lowercase hex characters.
    pub id: String,
    /// MIME type detected from the content, such as `image/png`.
    pub mime_type: String,
    pub size: u64,
    /// The name it was uploaded with, if any (informational).
    pub name: Option<String>,
    /// Where the bytes are on disk.
    pub path: PathBuf,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// True for a well-formed media id: 32 lowercase hex characters.
pub fn is_media_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The MIME type of a media file from its first bytes (magic numbers), for
/// the types the connectors can publish: JPEG, PNG, GIF, WEBP, MP4 and
/// QuickTime video. `None` for anything else.
pub fn sniff_media_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    // ISO base media file: a box size, then `ftyp` and a major brand.
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(if &head[8..12] == b"qt  " {
            "video/quicktime"
        } else {
            "video/mp4"
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_32_lowercase_hex() {
        assert!(is_media_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_media_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_media_id("0123456789abcdef"));
        assert!(!is_media_id("../../../../etc/passwd0123456789a"));
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(
            sniff_media_type(b"\xFF\xD8\xFF\xE0rest"),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff_media_type(b"\x89PNG\r\n\x1a\n...."),
            Some("image/png")
        );
        assert_eq!(sniff_media_type(b"GIF89a......"), Some("image/gif"));
        assert_eq!(
            sniff_media_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(
            sniff_media_type(b"\0\0\0\x18ftypmp42\0\0"),
            Some("video/mp4")
        );
        assert_eq!(
            sniff_media_type(b"\0\0\0\x14ftypqt  \0\0"),
            Some("video/quicktime")
        );
        assert_eq!(sniff_media_type(b"BM\0\0\0\0"), None);
        assert_eq!(sniff_media_type(b"hello world"), None);
        assert_eq!(sniff_media_type(b""), None);
    }
}
