//! The OAuth callback, `GET /oauth/{connector}/callback?...`: the raw query
//! through the extractor the route uses (axum's `Query<BTreeMap<String,
//! String>>`) and then the real `Engine::finish_authorization` on a real
//! store and vault (SQLite in a temporary directory) with the real Twitch
//! connector: the connector name from the path, `state` (single use, looked
//! up in the store), `error` / `error_description` / `denied`, and `code`
//! (exchanged at a token endpoint on a closed local port, so it fails as a
//! refused exchange). Nothing may panic.
//!
//! Input: `{connector}?{query}`. Every `STATE` in the query is replaced by
//! the state of an authorization begun just before, so the fuzzer reaches
//! the paths past the state lookup.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::extract::Query;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::json;
use switchboard_connector_twitch::{TwitchConnector, TwitchEndpoints};
use switchboard_runtime::engine::{Engine, NewConnection, RuntimeConfig};
use switchboard_runtime::registry::Registry;
use switchboard_store::Store;
use switchboard_vault::{KeySource, Vault};

const PUBLIC_URL: &str = "http://127.0.0.1:8080";
/// Nothing listens there: a code exchange fails at once.
const CLOSED: &str = "http://127.0.0.1:9";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

static SETUP: LazyLock<(Arc<Engine>, String)> = LazyLock::new(|| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("switchboard-fuzz-oauth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    RUNTIME.block_on(async {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        let (vault, _) = Vault::open(store.clone(), KeySource::File(dir.join("master.key")))
            .await
            .unwrap();
        let mut registry = Registry::new();
        registry
            .register(Arc::new(TwitchConnector::new(TwitchEndpoints {
                helix: CLOSED.into(),
                id: CLOSED.into(),
                irc: "ws://127.0.0.1:9".into(),
                eventsub: "ws://127.0.0.1:9".into(),
            })))
            .unwrap();
        let engine = Engine::new(
            store,
            Arc::new(vault),
            registry,
            RuntimeConfig {
                media_dir: dir.join("media"),
                ..RuntimeConfig::default()
            },
        );
        let id = engine
            .create_connection(NewConnection {
                connector: "twitch".into(),
                label: "fuzzed".into(),
                enabled: false,
                settings: json!({"client_id": "fuzzclient"}),
                secrets: BTreeMap::from([(
                    "client_secret".to_owned(),
                    SecretString::from("fuzzsecret"),
                )]),
            })
            .await
            .unwrap()
            .connection
            .id;
        (engine, id)
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (connector, query) = text.split_once('?').unwrap_or((text, ""));
    let (engine, connection_id) = &*SETUP;
    RUNTIME.block_on(async {
        let query = if query.contains("STATE") {
            let started = engine
                .begin_authorization(connection_id, PUBLIC_URL)
                .await
                .unwrap();
            let url = url_state(&started.authorize_url);
            query.replace("STATE", &url)
        } else {
            query.to_owned()
        };
        // What the HTTP server would refuse before routing never reaches
        // the handler.
        let Ok(uri) = format!("/oauth/twitch/callback?{query}").parse::<axum::http::Uri>() else {
            return;
        };
        let Ok(Query(params)) = Query::<BTreeMap<String, String>>::try_from_uri(&uri) else {
            return;
        };
        let _ = engine
            .finish_authorization(connector, &params, PUBLIC_URL)
            .await;
    });
});

/// The `state` parameter of an authorize URL.
fn url_state(authorize_url: &str) -> String {
    let query = authorize_url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap_or_default()
        .to_owned()
}
