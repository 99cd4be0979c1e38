//! The media store: the files (images, videos) that actions publish, kept in
//! one directory and named by their content.
//!
//! A file's id is the first 32 hex characters of the SHA-256 of its bytes, so
//! uploading the same bytes twice gives the same id and stores them once.
//! Each file `<dir>/<id>` has a JSON sidecar `<dir>/<id>.json` (type, size,
//! the name it was uploaded with, when). The sidecar is written last: a file
//! without one does not exist as far as `get` and `list` are concerned, and
//! the next upload of the same bytes completes it.
//!
//! An upload is streamed to a temporary file in the same directory while it
//! is hashed, its type is read from its first bytes (never trusted from a
//! name or a header), and it is renamed into place only when whole, so a
//! reader never sees half a file and a crash leaves only a temporary file.
//!
//! **Invariant:** no path is built from an id that [`is_media_id`] has not
//! accepted, so an id can never name a file outside the directory.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_core::time::now_ms;
use switchboard_core::{MediaInfo, is_media_id, sniff_media_type};
use tokio::io::AsyncWriteExt;

/// The types the store accepts, as a person reads them.
pub const SUPPORTED_TYPES: &str = "JPEG, PNG, WEBP, GIF, MP4, MOV";

/// How many leading bytes are enough to recognise every supported type.
const SNIFF_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("`{0}` is not a media id: ids are 32 lowercase hex characters")]
    InvalidId(String),
    #[error("media `{0}` does not exist")]
    NotFound(String),
    #[error(
        "the file is larger than the {limit} bytes the media store accepts (limits.media_bytes)"
    )]
    TooLarge { limit: u64 },
    #[error("the file is not a supported media type; send one of: {SUPPORTED_TYPES}")]
    UnsupportedType,
    /// The sender's stream broke off before the end.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("media store: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("media store: the description of `{id}` is unreadable: {message}")]
    Corrupt { id: String, message: String },
}

impl MediaError {
    /// Stable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::InvalidId(_) => "invalid_input",
            MediaError::NotFound(_) => "not_found",
            MediaError::TooLarge { .. } => "media_too_large",
            MediaError::UnsupportedType => "unsupported_media_type",
            MediaError::Interrupted(_) => "upload_interrupted",
            MediaError::Io { .. } | MediaError::Corrupt { .. } => "internal",
        }
    }

    /// Whether sending or asking again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MediaError::Interrupted(_) | MediaError::Io { .. })
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the sidecar `<id>.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    mime_type: String,
    size: u64,
    name: Option<String>,
    created_at: i64,
}

/// A directory of content-addressed media files; cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl MediaStore {
    /// A store over `dir` (created at the first upload) that refuses files
    /// larger than `max_bytes`. Does no IO.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> MediaStore {
        MediaStore {
            dir: dir.into(),
            max_bytes,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn checked(id: &str) -> Result<(), MediaError> {
        if is_media_id(id) {
            Ok(())
        } else {
            Err(MediaError::InvalidId(id.chars().take(100).collect()))
        }
    }

    fn data_path(&self, id: &str) -> PathBuf {
        debug_assert!(is_media_id(id));
        self.dir.join(id)
    }

    fn sidecar_path(&self, id: &str) -> PathBuf {
        debug_assert!(is_media_id(id));
        self.dir.join(format!("{id}.json"))
    }

    fn info(&self, id: &str, sidecar: Sidecar) -> MediaInfo {
        MediaInfo {
            id: id.to_owned(),
            mime_type: sidecar.mime_type,
            size: sidecar.size,
            name: sidecar.name,
            path: self.data_path(id),
            created_at: sidecar.created_at,
        }
    }

    /// Store an upload, streamed chunk by chunk. See the module docs. The
    /// stream is taken by reference so that the caller can drain what is
    /// left of it after a refusal (an HTTP client still sending would
    /// otherwise see a reset connection instead of the answer).
    pub async fn put<S, B, E>(
        &self,
        name: Option<String>,
        body: &mut S,
    ) -> Result<MediaInfo, MediaError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io_error(&self.dir))?;
        let temp_path = self
            .dir
            .join(format!(".upload-{}", uuid::Uuid::new_v4().simple()));
        let result = self.receive(&temp_path, body).await;
        let (digest, size, mime_type) = match result {
            Ok(received) => received,
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp_path).await;
                return Err(error);
            }
        };
        let id = hex::encode(digest)[..32].to_owned();
        match self.get(&id).await {
            Ok(existing) => {
                // The same bytes are already here: keep the first copy.
                let _ = tokio::fs::remove_file(&temp_path).await;
                return Ok(existing);
            }
            Err(MediaError::NotFound(_)) => {}
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp_path).await;
                return Err(error);
            }
        }
        let data_path = self.data_path(&id);
        if let Err(source) = tokio::fs::rename(&temp_path, &data_path).await {
            let _ = tokio::fs::remove_file(&temp_path).await;
            return Err(MediaError::Io {
                path: data_path,
                source,
            });
        }
        let sidecar = Sidecar {
            mime_type: mime_type.to_owned(),
            size,
            name,
            created_at: now_ms(),
        };
        self.write_sidecar(&id, &sidecar).await?;
        tracing::info!(media = %id, mime_type, size, "media stored");
        Ok(self.info(&id, sidecar))
    }

    /// Copy the stream to `temp_path`, hashing and checking as it comes.
    async fn receive<S, B, E>(
        &self,
        temp_path: &Path,
        body: &mut S,
    ) -> Result<(Vec<u8>, u64, &'static str), MediaError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(temp_path)
            .await
            .map_err(io_error(temp_path))?;
        let mut hasher = Sha256::new();
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut mime_type: Option<&'static str> = None;
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| MediaError::Interrupted(e.to_string()))?;
            let chunk = chunk.as_ref();
            if chunk.is_empty() {
                continue;
            }
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(MediaError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            if mime_type.is_none() {
                let wanted = SNIFF_BYTES - head.len();
                head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
                if head.len() == SNIFF_BYTES {
                    mime_type = Some(sniff_media_type(&head).ok_or(MediaError::UnsupportedType)?);
                }
            }
            hasher.update(chunk);
            file.write_all(chunk).await.map_err(io_error(temp_path))?;
        }
        let mime_type = match mime_type {
            Some(mime_type) => mime_type,
            // A file shorter than the sniff window.
            None => sniff_media_type(&head).ok_or(MediaError::UnsupportedType)?,
        };
        file.flush().await.map_err(io_error(temp_path))?;
        file.sync_all().await.map_err(io_error(temp_path))?;
        Ok((hasher.finalize().to_vec(), size, mime_type))
    }

    async fn write_sidecar(&self, id: &str, sidecar: &Sidecar) -> Result<(), MediaError> {
        let path = self.sidecar_path(id);
        let temp = self
            .dir
            .join(format!(".sidecar-{}", uuid::Uuid::new_v4().simple()));
        let text = serde_json::to_vec_pretty(sidecar).map_err(|e| MediaError::Corrupt {
            id: id.to_owned(),
            message: e.to_string(),
        })?;
        let written = async {
            tokio::fs::write(&temp, &text).await?;
            tokio::fs::rename(&temp, &path).await
        }
        .await;
        if let Err(source) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(MediaError::Io { path, source });
        }
        Ok(())
    }

    /// One file's description.
    pub async fn get(&self, id: &str) -> Result<MediaInfo, MediaError> {
        Self::checked(id)?;
        let path = self.sidecar_path(id);
        let text = match tokio::fs::read(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MediaError::NotFound(id.to_owned()));
            }
            Err(source) => return Err(MediaError::Io { path, source }),
        };
        let sidecar: Sidecar = serde_json::from_slice(&text).map_err(|e| MediaError::Corrupt {
            id: id.to_owned(),
            message: e.to_string(),
        })?;
        let data = self.data_path(id);
        match tokio::fs::metadata(&data).await {
            Ok(_) => Ok(self.info(id, sidecar)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(MediaError::NotFound(id.to_owned()))
            }
            Err(source) => Err(MediaError::Io { path: data, source }),
        }
    }

    /// A file's description and its bytes, opened for reading.
    pub async fn open(&self, id: &str) -> Result<(MediaInfo, tokio::fs::File), MediaError> {
        let info = self.get(id).await?;
        match tokio::fs::File::open(&info.path).await {
            Ok(file) => Ok((info, file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(MediaError::NotFound(id.to_owned()))
            }
            Err(source) => Err(MediaError::Io {
                path: info.path,
                source,
            }),
        }
    }

    /// Every stored file, newest first.
    pub async fn list(&self) -> Result<Vec<MediaInfo>, MediaError> {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(MediaError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_error(&self.dir))? {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_media_id(id) {
                continue;
            }
            match self.get(id).await {
                Ok(info) => found.push(info),
                // Deleted while we looked.
                Err(MediaError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    /// Remove a file and its description.
    pub async fn delete(&self, id: &str) -> Result<(), MediaError> {
        Self::checked(id)?;
        let sidecar = self.sidecar_path(id);
        match tokio::fs::remove_file(&sidecar).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MediaError::NotFound(id.to_owned()));
            }
            Err(source) => {
                return Err(MediaError::Io {
                    path: sidecar,
                    source,
                });
            }
        }
        let data = self.data_path(id);
        match tokio::fs::remove_file(&data).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MediaError::Io { path: data, source }),
        }
        tracing::info!(media = %id, "media deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of a real 1x1 PNG (signature and IHDR chunk).
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

    fn chunks(
        bytes: &[u8],
        size: usize,
    ) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Unpin + use<> {
        let parts: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(size).map(|c| Ok(c.to_vec())).collect();
        futures::stream::iter(parts)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_upload_is_named_by_its_content_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path().join("media"), 1024);
        // Chunks smaller than the sniff window: the type is read across them.
        let first = store
            .put(Some("dot.png".into()), &mut chunks(PNG, 5))
            .await
            .unwrap();
        assert!(is_media_id(&first.id), "{}", first.id);
        let expected = hex::encode(Sha256::digest(PNG));
        assert_eq!(first.id, expected[..32]);
        assert_eq!(first.mime_type, "image/png");
        assert_eq!(first.size, PNG.len() as u64);
        assert_eq!(first.name.as_deref(), Some("dot.png"));
        assert_eq!(std::fs::read(&first.path).unwrap(), PNG);

        let again = store
            .put(Some("copy.png".into()), &mut chunks(PNG, 64))
            .await
            .unwrap();
        assert_eq!(again, first, "the same bytes are the same file");
        assert_eq!(
            files_in(store.dir()),
            vec![first.id.clone(), format!("{}.json", first.id)],
            "stored once, no temporary files left"
        );
        assert_eq!(store.get(&first.id).await.unwrap(), first);
        assert_eq!(store.list().await.unwrap(), vec![first.clone()]);
        let (opened, mut file) = store.open(&first.id).await.unwrap();
        assert_eq!(opened, first);
        let mut content = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut content)
            .await
            .unwrap();
        assert_eq!(content, PNG);

        store.delete(&first.id).await.unwrap();
        assert!(matches!(
            store.get(&first.id).await,
            Err(MediaError::NotFound(_))
        ));
        assert!(matches!(
            store.delete(&first.id).await,
            Err(MediaError::NotFound(_))
        ));
        assert!(files_in(store.dir()).is_empty());
    }

    #[tokio::test]
    async fn unknown_types_and_oversized_files_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path(), 64);

        let text = store
            .put(None, &mut chunks(b"hello, this is plain text", 4))
            .await
            .unwrap_err();
        assert!(matches!(text, MediaError::UnsupportedType), "{text}");
        let message = text.to_string();
        for kind in ["JPEG", "PNG", "WEBP", "GIF", "MP4", "MOV"] {
            assert!(message.contains(kind), "{message}");
        }
        let empty = store.put(None, &mut chunks(b"", 4)).await.unwrap_err();
        assert!(matches!(empty, MediaError::UnsupportedType), "{empty}");

        let mut big = PNG.to_vec();
        big.resize(65, 0);
        let too_large = store.put(None, &mut chunks(&big, 10)).await.unwrap_err();
        assert!(
            matches!(too_large, MediaError::TooLarge { limit: 64 }),
            "{too_large}"
        );
        assert!(too_large.to_string().contains("64 bytes"), "{too_large}");
        big.truncate(64);
        store
            .put(None, &mut chunks(&big, 10))
            .await
            .expect("exactly the limit is fine");

        let broken = futures::stream::iter(vec![
            Ok(PNG[..20].to_vec()),
            Err(std::io::Error::other("connection reset")),
        ]);
        let interrupted = store.put(None, &mut Box::pin(broken)).await.unwrap_err();
        assert!(interrupted.is_retryable(), "{interrupted}");

        assert_eq!(store.list().await.unwrap().len(), 1);
        assert_eq!(
            files_in(store.dir()).len(),
            2,
            "{:?}",
            files_in(store.dir())
        );
    }

    #[tokio::test]
    async fn malformed_ids_never_reach_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path().join("media"), 64);
        for id in [
            "../../../../etc/passwd",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde/",
            "",
        ] {
            assert!(matches!(store.get(id).await, Err(MediaError::InvalidId(_))));
            assert!(matches!(
                store.delete(id).await,
                Err(MediaError::InvalidId(_))
            ));
        }
        assert!(
            store.list().await.unwrap().is_empty(),
            "a missing directory is an empty store"
        );
    }

    #[tokio::test]
    async fn a_file_without_its_description_does_not_exist_until_uploaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path(), 1024);
        let info = store.put(None, &mut chunks(PNG, 100)).await.unwrap();
        // As if the daemon died between the two renames.
        std::fs::remove_file(dir.path().join(format!("{}.json", info.id))).unwrap();
        assert!(matches!(
            store.get(&info.id).await,
            Err(MediaError::NotFound(_))
        ));
        assert!(store.list().await.unwrap().is_empty());
        let again = store.put(None, &mut chunks(PNG, 100)).await.unwrap();
        assert_eq!(again.id, info.id);
        assert_eq!(store.get(&info.id).await.unwrap().id, info.id);
    }
}
