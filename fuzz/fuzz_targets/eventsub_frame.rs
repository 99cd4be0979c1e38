//! Twitch EventSub: one WebSocket text frame through the real envelope
//! parser (`eventsub::parse_frame`) and, for notifications, the mapping to
//! the published event (`triggers::map_notification`, via the crate's
//! `fuzzing` entry point). Neither may panic on any frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_twitch::eventsub::{Frame, parse_frame};
use switchboard_connector_twitch::fuzzing::map_notification;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Frame::Notification(notification)) = parse_frame(text)
        && let Some((_, payload)) = map_notification(&notification)
    {
        serde_json::to_string(&payload).expect("an event payload serializes");
    }
});
