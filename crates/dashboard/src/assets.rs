//! The dashboard's static files, embedded in the binary. Each is served at
//! `/assets/<stem>.<first 10 hex of its SHA-256>.<ext>` with a one-year
//! immutable cache: a new build changes the name, never the content behind a
//! name.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        stem: "app",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        stem: "app",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        stem: "icon",
        ext: "svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

fn names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILES
            .iter()
            .map(|a| {
                let digest = hex::encode(Sha256::digest(a.body));
                format!("{}.{}.{}", a.stem, &digest[..10], a.ext)
            })
            .collect()
    })
}

/// The URL of an embedded file, by its plain name (`app.js`).
pub fn url(plain: &str) -> String {
    let index = FILES
        .iter()
        .position(|a| format!("{}.{}", a.stem, a.ext) == plain)
        .unwrap_or_else(|| panic!("no embedded asset named {plain}"));
    format!("/assets/{}", names()[index])
}

pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    match names().iter().position(|n| *n == name) {
        Some(index) => {
            let asset = &FILES[index];
            (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                asset.body,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_carry_the_content_hash() {
        let js = super::url("app.js");
        assert!(
            js.starts_with("/assets/app.") && js.ends_with(".js"),
            "{js}"
        );
        assert_eq!(js.len(), "/assets/app.".len() + 10 + ".js".len());
    }
}
