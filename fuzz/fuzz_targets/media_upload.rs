//! Media upload: the bytes of `POST /api/v1/media` (a raw body, streamed)
//! through the real store (`MediaStore::put`): the type sniffed from the
//! first bytes across chunk boundaries, the size limit, hashing, and the
//! file and its description written. Nothing may panic, and an accepted
//! file must read back with the type `sniff_media_type` gives its bytes.
//!
//! Input: byte 0 is the chunk size (1 to 256), the rest is the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard_core::sniff_media_type;
use switchboard_runtime::media::MediaStore;

/// One directory for the whole run, in memory when the machine has one.
static DIR: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("switchboard-fuzz-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// Small enough that the limit is hit often.
const MAX_BYTES: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let store = MediaStore::new(DIR.clone(), MAX_BYTES);
    let mut stream = futures::stream::iter(
        body.chunks(chunk)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    RUNTIME.block_on(async {
        if let Ok(info) = store.put(Some("upload.bin".into()), &mut stream).await {
            assert!(body.len() as u64 <= MAX_BYTES);
            assert_eq!(
                Some(info.mime_type.as_str()),
                sniff_media_type(&body[..body.len().min(16)])
            );
            // Leave the directory small: every file is deleted again.
            store.delete(&info.id).await.unwrap();
        }
    });
});
