//! Twitch chat: one raw IRC line as it comes off the socket (tags, prefix,
//! command, params) through the real parsers, `parse_tags` and
//! `chat_message_payload`. Neither may panic on any line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_twitch::chat::{chat_message_payload, parse_tags};

fuzz_target!(|data: &[u8]| {
    // The chat socket hands over WebSocket text frames: always UTF-8.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_tags(line);
    if let Ok(payload) = chat_message_payload(line) {
        // What a rule sees is JSON that serializes.
        serde_json::to_string(&payload).expect("a chat payload serializes");
    }
});
