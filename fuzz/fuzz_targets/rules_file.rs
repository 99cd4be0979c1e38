//! The rules file: YAML or TOML text through the real parser
//! (`rules::model::parse_rules`) and, when it parses, the whole-set
//! validation the daemon runs on load (`rules::compile::compile`: names,
//! event types, connections, conditions, templates, action parameters and
//! the line lookup of each problem), against a registry of real connectors
//! (webhook, system, Twitch) and two connections. Nothing may panic.
//!
//! Input: byte 0 picks the format (even: YAML, odd: TOML), the rest is the
//! file.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use switchboard_connector_system::{SystemConnector, WebhookConnector};
use switchboard_connector_twitch::{TwitchConnector, TwitchEndpoints};
use switchboard_core::Connection;
use switchboard_runtime::registry::Registry;
use switchboard_runtime::rules::compile::compile;
use switchboard_runtime::rules::model::{RuleSource, RulesFormat, parse_rules};
use switchboard_runtime::rules::template::environment;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::new();
    registry
        .register(Arc::new(WebhookConnector::new()))
        .unwrap();
    registry.register(Arc::new(SystemConnector::new())).unwrap();
    registry
        .register(Arc::new(TwitchConnector::new(TwitchEndpoints {
            helix: "http://127.0.0.1:9".into(),
            id: "http://127.0.0.1:9".into(),
            irc: "ws://127.0.0.1:9".into(),
            eventsub: "ws://127.0.0.1:9".into(),
        })))
        .unwrap();
    registry
});

static CONNECTIONS: LazyLock<Vec<Connection>> = LazyLock::new(|| {
    let connection = |id: &str, connector: &str, label: &str| {
        serde_json::from_value(json!({
            "id": id, "connector": connector, "label": label, "enabled": true,
            "settings": {},
            "status": {"kind": "connected", "reason": null, "since": 0},
            "created_at": 0, "updated_at": 0,
        }))
        .unwrap()
    };
    vec![
        connection("0190a0a0-0000-7000-8000-000000000001", "webhook", "hooks"),
        connection("0190a0a0-0000-7000-8000-000000000002", "twitch", "me"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The daemon reads the file as UTF-8 and refuses anything else.
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector % 2 == 0 {
        RulesFormat::Yaml
    } else {
        RulesFormat::Toml
    };
    let Ok(rules) = parse_rules(text, format) else {
        return;
    };
    let rules = rules.into_iter().map(|r| (r, RuleSource::File)).collect();
    let _ = compile(
        rules,
        &REGISTRY,
        &CONNECTIONS,
        &environment(),
        Some((text, format)),
    );
});
